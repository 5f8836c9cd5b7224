"""Stage describe_datasets: statistics of every dataset the run uses (`datasets`), after the splits.

NIH (from the Data_Entry version in data/raw/nih): images, patients, labels per class and per image, views,
sex, ages with the impossible ones listed, boxes, per-part prevalence of data/splits/nih.csv, and the 14 x 14
co-occurrence compared cell by cell with the NIH release page. JSRT: nodules by subtlety, size, malignancy and
location. SCR: object areas per fold. All computed by cxrbench.stats, as `cxrbench stats` does.

Writes metrics/datasets.json (headline numbers for `dvc metrics`) and results/datasets/ (nih.json, jsrt.json,
scr.json with everything, plus nih_prevalence.csv and nih_cooccurrence.csv / _published.csv / _difference.csv
in the release page's convention: diagonal = images with only that label), each for the datasets used only.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pandas as pd

from cxrbench import artefacts, stats
from cxrbench.datasets import jsrt, nih, scr
from cxrbench.errors import DataError
from cxrbench.fileio import atomic_path, write_json
from cxrbench.stages._app import run_stage

log = logging.getLogger(__name__)
NIH_RAW = artefacts.RAW["nih"]
NIH_SPLIT = artefacts.SPLIT_NIH
JSRT_RAW = artefacts.RAW["jsrt"]
JSRT_STORE = artefacts.STORE_JSRT
OUT = artefacts.RESULTS_DATASETS
METRICS = artefacts.METRICS_DATASETS


def nih_headline(nih_doc: dict[str, Any]) -> dict[str, Any]:
    """The few numbers worth tracking across runs (`dvc metrics diff`); the full tables stay in results/."""
    nih_stats, comparison = nih_doc["statistics"], nih_doc["published_comparison"]
    return {
        "images": nih_stats["images"], "patients": nih_stats["patients"], "no_finding": nih_stats["no_finding"],
        "impossible_ages": nih_stats["age"]["impossible"]["count"],
        "cooccurrence_cells_differing_from_published": comparison["cells_differing"],
        "class_totals_differing_from_published": comparison["totals_differing"],
    }


def jsrt_scr_headline(jsrt_stats: dict[str, Any], scr_stats: dict[str, Any]) -> dict[str, Any]:
    return {
        "jsrt": {"cases": jsrt_stats["cases"], "nodule_cases": jsrt_stats["nodule_cases"], **jsrt_stats["malignancy"]},
        "scr": {"cases": scr_stats["groups"]["all"]["cases"],
                "mean_area_mm2": {obj: round(scr_stats["groups"]["all"]["area_mm2"][obj]["mean"], 1) for obj in scr.OBJECTS}},
    }


def _label_table_csv(path: Path, table: pd.DataFrame) -> None:
    with atomic_path(path) as tmp:
        table.to_csv(tmp, index_label="label", lineterminator="\n")


def write_nih(out: Path) -> dict[str, Any]:
    """NIH's statistics into `out`; its headline numbers."""
    metadata = nih.find_data_entry(NIH_RAW)
    if metadata is None:
        raise DataError(NIH_RAW, f"no metadata file ({' or '.join(nih.DATA_ENTRY_NAMES)})", "rerun acquire_nih")
    bbox = NIH_RAW / nih.BBOX_NAME
    log.info("NIH statistics of %s", metadata)
    nih_doc, comparison = stats.describe_nih(metadata, bbox if bbox.is_file() else None, NIH_SPLIT)
    log.info("%s", comparison.verdict)
    parts = nih_doc["statistics"]["splits"]["parts"]
    write_json(out / "nih.json", nih_doc)
    _label_table_csv(out / "nih_prevalence.csv", pd.DataFrame({part: s["prevalence"] for part, s in parts.items()}))
    for name, table in (("", comparison.ours), ("_published", comparison.published),
                        ("_difference", comparison.differences)):
        _label_table_csv(out / f"nih_cooccurrence{name}.csv", table)
    return nih_headline(nih_doc)


def write_jsrt_scr(out: Path) -> dict[str, Any]:
    """JSRT's and SCR's statistics into `out`; their headline numbers."""
    log.info("JSRT statistics of %s", JSRT_RAW)
    jsrt_stats = stats.jsrt_statistics(jsrt.read_metadata(JSRT_RAW))
    log.info("SCR object areas from %s", JSRT_STORE)
    scr_stats = stats.scr_statistics(*stats.scr_masks_from_store(JSRT_STORE))
    write_json(out / "jsrt.json", {"dataset": "jsrt", "statistics": jsrt_stats})
    write_json(out / "scr.json", {"dataset": "scr", "statistics": scr_stats})
    return jsrt_scr_headline(jsrt_stats, scr_stats)


def describe(params: dict[str, Any]) -> None:
    headline: dict[str, Any] = {}
    with atomic_path(OUT, is_dir=True) as out:
        if "jsrt" in params["datasets"]:  # with scr: config.validate keeps the two together
            headline.update(write_jsrt_scr(out))
        if "nih" in params["datasets"]:
            headline["nih"] = write_nih(out)
    write_json(METRICS, dict(sorted(headline.items())))


def main() -> None:
    run_stage("describe_datasets", describe)


if __name__ == "__main__":
    main()
