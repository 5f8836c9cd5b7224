"""Stage assess_labels: how good NIH ChestX-ray14's NLP-mined labels are, against Google's radiologists on the
same images (cxrbench.label_quality: sensitivity, positive predictive value and Cohen's kappa with a bootstrap
interval over patients, per finding of the four-findings and all-findings sets). No images and no model: it
reads the NIH metadata in data/raw/nih and Google's label files in data/raw/google.

Writes results/label_quality/table.csv (every finding) and metrics/label_quality.json (the headline kappas).
`cxrbench stats labels` prints the same table from any copy of the files, without the pipeline.
"""

from __future__ import annotations

import logging
from typing import Any

from cxrbench import artefacts, label_quality
from cxrbench.datasets import nih
from cxrbench.errors import DataError
from cxrbench.fileio import atomic_path, metric_value, write_json
from cxrbench.stages._app import run_stage

log = logging.getLogger(__name__)


def headline(table) -> dict[str, Any]:
    """Kappa of each four-findings finding and of Abnormal, and the median kappa over the 14 findings."""
    four = table[table["set"] == label_quality.FOUR_FINDINGS_SET].set_index("finding")["kappa"]
    every = table[table["set"] == label_quality.ALL_FINDINGS_SET].set_index("finding")["kappa"]
    return {"four_findings_kappa": {finding: metric_value(k) for finding, k in four.items()},
            "abnormal_kappa": metric_value(every[label_quality.ABNORMAL]),
            "median_kappa_14_findings": metric_value(every.drop(label_quality.ABNORMAL).median())}


def assess(params: dict[str, Any]) -> None:
    metadata = nih.find_data_entry(artefacts.RAW["nih"])
    if metadata is None:
        raise DataError(artefacts.RAW["nih"], f"no metadata file ({' or '.join(nih.DATA_ENTRY_NAMES)})",
                        "rerun acquire_nih")
    table = label_quality.from_files(metadata, artefacts.RAW["google"], params["evaluate"]["bootstrap"], params["seed"])
    log.info("NIH labels against Google's radiologists:\n%s", label_quality.format_table(table))
    write_json(artefacts.METRICS_LABEL_QUALITY, headline(table))
    with atomic_path(artefacts.RESULTS_LABEL_QUALITY, is_dir=True) as out:
        table.round(6).to_csv(out / "table.csv", index=False, lineterminator="\n")


def main() -> None:
    run_stage("assess_labels", assess)


if __name__ == "__main__":
    main()
