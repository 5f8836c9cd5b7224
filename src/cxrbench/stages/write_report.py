"""Stage write_report: one self-contained HTML page (results/report.html) and a Markdown report
(results/report.md, its figures as PNG files in results/figures/) of the datasets the run used (`datasets`).
On top the summary: per task our headline figure beside the best published and the human readers' figures, and
what the run was made of; then per task its figures (ROC, FROC, forest and box plots, examples) with the tables
folded under them, then training curves, the datasets and their splits, and the parameters and input hashes that
produced them. The sections live in cxrbench.report; this stage chooses them. The summary's figures also go to
metrics/summary.json, the run's one DVC metrics file (what `dvc metrics show` and `dvc exp show` compare).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from cxrbench import artefacts
from cxrbench.fileio import atomic_path, write_json, write_text
from cxrbench.report import (
    classification,
    datasets,
    expert_labels,
    label_quality,
    localisation,
    nodules,
    provenance,
    segmentation,
    summary,
    training,
)
from cxrbench.report.document import Report
from cxrbench.report.run import Run
from cxrbench.stages._app import run_stage

log = logging.getLogger(__name__)
SYNTHETIC_BANNER = ("SYNTHETIC DATA: phantoms in the datasets' formats, not real radiographs. Published numbers are "
                    "shown for layout only and are not comparable.")
Section = Callable[[Report, Run], None]


def sections(used: list[str]) -> list[Section]:
    """The report's sections in order, those of datasets not used left out (jsrt comes with scr: config.validate;
    google only counts with nih): the summary, the results per task, then how they were made."""
    chosen = [summary.section]
    if "nih" in used:
        chosen += [classification.section, localisation.section]
        if "google" in used:
            chosen += [expert_labels.section, label_quality.section]
    if "jsrt" in used:
        chosen += [segmentation.section, nodules.section]
    return [*chosen, training.section, datasets.section, provenance.section]


def write(params: dict[str, Any]) -> None:
    run = Run(params)
    report = Report("cxrbench benchmark report", SYNTHETIC_BANNER if run.synthetic else None)
    for section in sections(run.datasets):
        section(report, run)
    with atomic_path(artefacts.REPORT_FIGURES, is_dir=True) as figures:
        for name, png in report.figures.items():
            (figures / name).write_bytes(png)
    write_text(artefacts.REPORT_HTML, report.html())
    write_text(artefacts.REPORT_MD, report.markdown())
    write_json(artefacts.METRICS_SUMMARY, summary.headline_metrics(run))
    log.info("wrote %s, %s and %d figures in %s", artefacts.REPORT_HTML, artefacts.REPORT_MD, len(report.figures),
             artefacts.REPORT_FIGURES)


def main() -> None:
    run_stage("write_report", write)


if __name__ == "__main__":
    main()
