"""Stage write_report: one self-contained HTML page (results/report.html) and a Markdown summary
(results/report.md) of the datasets the run used (`datasets`, named on top with what was left out and why):
dataset counts, how the splits were made, dataset statistics, training curves, benchmark tables next to the
published results, ROC curves, example images with their labels and masks, and the parameters and input hashes
that produced them. The sections live in cxrbench.report; this stage chooses them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cxrbench.fileio import write_text
from cxrbench.report import (
    classification,
    datasets,
    expert_labels,
    label_quality,
    localisation,
    nodules,
    provenance,
    segmentation,
    training,
)
from cxrbench.report.document import Report
from cxrbench.report.run import Run
from cxrbench.stages._app import run_stage

log = logging.getLogger(__name__)
OUT = Path("results")
SYNTHETIC_BANNER = ("SYNTHETIC DATA: phantoms in the datasets' formats, not real radiographs. Published numbers are "
                    "shown for layout only and are not comparable.")
Section = Callable[[Report, Run], None]


def sections(used: list[str]) -> list[Section]:
    """The report's sections in order, those of datasets not used left out (jsrt comes with scr: config.validate;
    google only counts with nih)."""
    chosen = [datasets.section, training.section]
    if "nih" in used:
        chosen += [classification.section, localisation.section]
        if "google" in used:
            chosen += [expert_labels.section, label_quality.section]
    if "jsrt" in used:
        chosen += [segmentation.section, nodules.section]
    return [*chosen, provenance.section]


def write(params: dict[str, Any]) -> None:
    run = Run(params)
    report = Report("cxrbench benchmark report", SYNTHETIC_BANNER if run.synthetic else None)
    report.paragraph(datasets.datasets_used(run.datasets))
    for section in sections(run.datasets):
        section(report, run)
    write_text(OUT / "report.html", report.html())
    write_text(OUT / "report.md", report.markdown())
    log.info("wrote %s and %s", OUT / "report.html", OUT / "report.md")


def main() -> None:
    run_stage("write_report", write)


if __name__ == "__main__":
    main()
