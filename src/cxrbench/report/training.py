"""Section Training: the loss and validation curves dvclive logged per epoch, for the models of the datasets used."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd

from cxrbench import artefacts
from cxrbench.report.document import Report
from cxrbench.report.run import Run


def section(report: Report, run: Run) -> None:
    report.heading("Training")
    if "nih" in run.datasets:
        report.figure(curves_figure(run.path(artefacts.LIVE_CLASSIFIER), "NIH classifier"),
                      "NIH classifier: loss and validation AUC per epoch")
    if "jsrt" in run.datasets:
        report.figure(curves_figure(run.path(artefacts.LIVE_SEGMENTER), "SCR segmenter"),
                      "SCR segmenter: training loss per epoch, one model per fold")


def curves_figure(directory: Path, title: str):
    """Every metric a dvclive folder logged per epoch, the learning rate left out."""
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for tsv in sorted((directory / "plots" / "metrics").rglob("*.tsv")):
        name = tsv.relative_to(directory / "plots" / "metrics").with_suffix("").as_posix()
        if name == "lr":
            continue
        frame = pd.read_csv(tsv, sep="\t")
        ax.plot(frame["step"] + 1, frame[frame.columns[-1]], marker="o", label=name)
    ax.set(xlabel="epoch", title=title)
    ax.legend(fontsize=8)
    return fig
