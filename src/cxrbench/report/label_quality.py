"""Section Label quality: NIH's NLP-mined labels against Google's radiologists on the same images (stage
assess_labels: results/label_quality/table.csv), as a forest plot of Cohen's kappa with its interval and
NIH's sensitivity and positive predictive value per finding, then the table."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from cxrbench import artefacts
from cxrbench.label_quality import FOUR_FINDINGS_SET
from cxrbench.report.document import Report
from cxrbench.report.run import Run

SET_NAMES = {"four_findings": "four findings (test + validation, adjudicated)",
             "all_findings": "all findings (810 PA test images, majority of 3)"}


def section(report: Report, run: Run) -> None:
    report.heading("Label quality: NIH labels against Google's radiologists")
    table = run.csv(artefacts.RESULTS_LABEL_QUALITY / "table.csv")
    report.paragraph("How often NIH's labels, mined from the reports by NLP, agree with radiologists reading the same "
                     "images: of the experts' positives, the share NIH also labels (sensitivity); of NIH's positives, "
                     "the share the experts confirm (PPV); and Cohen's kappa, with a 95% bootstrap interval over "
                     "patients. Every score computed against NIH's labels inherits this noise.")
    report.figure(agreement_figure(table), "Agreement of NIH's labels with the radiologists, per finding", "label-agreement")
    report.table(table.round(3), "NIH labels against the expert labels, per finding")


def agreement_figure(table: pd.DataFrame):
    """Kappa (point and interval) and sensitivity / PPV, one row per set and finding."""
    rows = table.iloc[::-1].reset_index(drop=True)
    labels = [f"{r.finding} ({'4' if r.set == FOUR_FINDINGS_SET else 'all'})" for r in rows.itertuples()]
    y = np.arange(len(rows))
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 0.24 * len(rows) + 1.3), sharey=True)
    errors = np.vstack([rows["kappa"] - rows["kappa_ci_low"], rows["kappa_ci_high"] - rows["kappa"]]).clip(min=0)
    left.errorbar(rows["kappa"], y, xerr=errors, fmt="o", color="black", capsize=2)
    left.axvline(0, color="grey", lw=0.8)
    left.set(yticks=y, yticklabels=labels, xlabel="Cohen's kappa (95% CI)", title="agreement")
    right.scatter(rows["sensitivity"], y, marker="o", label="sensitivity")
    right.scatter(rows["ppv"], y, marker="s", label="PPV")
    right.set(xlim=(-0.02, 1.02), xlabel="share", title="NIH's labels against the experts")
    right.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    return fig
