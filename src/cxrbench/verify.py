"""`cxrbench verify <dataset> <path>`: check a user's copy of a dataset without running the pipeline.

Uses the same checks as the acquire stages (the readers' verify_tree functions) and adds what a person wants
to see: what was found, counted, and which published form each metadata file has.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from cxrbench.acquire.nih_archives import ARCHIVES, find_local_copy
from cxrbench.datasets import google_labels, jsrt, nih, scr
from cxrbench.errors import DataError

GOOGLE_FILES: dict[str, tuple[str, Callable]] = {
    "four_findings_readers": ("four_findings_expert_labels/individual_readers.csv", google_labels.read_four_findings_readers),
    "four_findings_test": ("four_findings_expert_labels/test_labels.csv", google_labels.read_four_findings_labels),
    "four_findings_validation": ("four_findings_expert_labels/validation_labels.csv", google_labels.read_four_findings_labels),
    "all_findings_readers": ("all_findings_expert_labels/test_individual_readers.csv", google_labels.read_all_findings_readers),
    "all_findings_test": ("all_findings_expert_labels/test_labels.csv", google_labels.read_all_findings_labels),
}


def _jsrt(path: Path) -> tuple[dict[str, Any], list[str]]:
    images = jsrt.find_images(path)
    found: dict[str, Any] = {"images": len(images),
                             "nodule_images": sum(stem.startswith("JPCLN") for stem in images),
                             "non_nodule_images": sum(stem.startswith("JPCNN") for stem in images),
                             "image_format": sorted({p.suffix.lower() for p in images.values()})}
    try:
        meta = jsrt.read_metadata(path)
        found.update(metadata_rows=len(meta), nodules=int(meta["nodule"].sum()),
                     malignant=int((meta["malignancy"] == "malignant").sum()))
    except DataError:
        pass  # verify_tree reports it
    return found, jsrt.verify_tree(path)


def _scr(path: Path) -> tuple[dict[str, Any], list[str]]:
    folds = {f"fold{fold}_masks": len(list((path / "scratch" / f"fold{fold}" / "masks").rglob("*.gif"))) for fold in (1, 2)}
    return {**folds, "second_observer": scr.observer2_root(path) is not None}, scr.verify_tree(path)


def _nih_archives(path: Path) -> tuple[list[str], list[str]]:
    """The official image archives in `path` (either accepted name) and problems: missing ones, wrong sizes.
    Their md5s are checked when the acquire stage unpacks them (hashing 45 GB here would take minutes)."""
    found, problems = [], []
    for archive in ARCHIVES:
        copy = find_local_copy(path, archive)
        if copy is None:
            problems.append(f"{path}: archive {archive.file_name} (or {archive.batch_script_name}) is missing")
        elif copy.stat().st_size != archive.size:
            problems.append(f"{copy}: {copy.stat().st_size} bytes, the published archive has {archive.size}")
        else:
            found.append(copy.name)
    return found, problems


def _nih(path: Path) -> tuple[dict[str, Any], list[str]]:
    found = _nih_found(path)
    if not (path / nih.IMAGES_DIR).is_dir() and any(find_local_copy(path, archive) for archive in ARCHIVES):
        # Archives as downloaded, not unpacked yet (source=local unpacks them): check them and the metadata.
        found["archives"], problems = _nih_archives(path)
        return found, problems + nih.verify_tree(path, images=[])
    return found, nih.verify_tree(path)


def _nih_found(path: Path) -> dict[str, Any]:
    found: dict[str, Any] = {"images": len(list((path / nih.IMAGES_DIR).glob("*.png")))}
    entry = nih.find_data_entry(path)
    if entry is not None:
        try:
            table = nih.read_data_entry(entry)
            found.update(metadata=entry.name, metadata_form=table.attrs["form"], metadata_rows=len(table),
                         patients=int(table["patient"].nunique()), impossible_ages=int((table["age_flag"] != "").sum()))
        except DataError:
            pass  # verify_tree reports it
    for name in (nih.TRAIN_VAL_LIST, nih.TEST_LIST):
        if (path / name).is_file():
            found[name] = len(nih.read_split_list(path / name))
    return found


def _google(path: Path) -> tuple[dict[str, Any], list[str]]:
    found, problems = {}, []
    for key, (relative, read) in GOOGLE_FILES.items():
        try:
            found[key] = len(read(path / relative))
        except (DataError, FileNotFoundError) as err:
            problems.append(str(err))
    return found, problems


CHECKS = {"jsrt": _jsrt, "scr": _scr, "nih": _nih, "google": _google}


def verify(dataset: str, path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_dir():
        return {"dataset": dataset, "path": str(path), "found": {}, "problems": [f"{path}: folder not found"]}
    found, problems = CHECKS[dataset](path)
    return {"dataset": dataset, "path": str(path), "found": found, "problems": problems}


def format_report(result: dict[str, Any]) -> str:
    lines = [f"{result['dataset']} at {result['path']}:"]
    lines += [f"  {key}: {value}" for key, value in result["found"].items()]
    if result["problems"]:
        lines.append(f"  {len(result['problems'])} problem(s):")
        lines += [f"    - {problem}" for problem in result["problems"]]
    else:
        lines.append("  no problems found")
    return "\n".join(lines)
