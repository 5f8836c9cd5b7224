"""Stage split_nih: the NIH image split, by one of two schemes (split.nih.scheme).

- official: test = test_list.txt; validation = a seeded random share of the patients of train_val_list.txt.
- random_patients: CheXNet style, a seeded random train/val/test split of all patients by patient fractions.
  The patients of every test set scored later (BBox_List_2017 for localisation, Google's four-findings and
  all-findings test sets) are pinned to test, so no later evaluation meets an image or patient the
  classifier was fitted or selected on.

Both keep only the views in split.nih.views, leave out images the decoder quarantined and, with
split.nih.labels_agree_with, images whose labels differ between the metadata in use and that other version
of Data_Entry (e.g. the 181 labels v2020 added on boxed images). With source.archives they split the images of
the selected archives (the store's); the official lists' other images are left out and counted, and Google's
labelled patients stay pinned to test even when their labelled images are outside the subset, since
evaluate_expert_labels checks every labelled patient. Writes data/splits/nih.csv (image, patient,
part) and data/splits/nih.json (how it was made: scheme, seed, fractions, views, pinned and excluded images,
sha256 of every file read, counts). Fails, naming the patients, if any patient would be in two parts, and
naming the images if a scored test set reaches train or val.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cxrbench import artefacts, seed_streams, store
from cxrbench.datasets import google_labels, nih
from cxrbench.errors import DataError
from cxrbench.fileio import atomic_path, sha256_file, write_json
from cxrbench.splits import (
    carve_patients,
    check_no_leakage,
    label_disagreements,
    random_patient_parts,
    require_held_out,
)
from cxrbench.stages._app import run_stage

log = logging.getLogger(__name__)
RAW = artefacts.RAW["nih"]
GOOGLE = artefacts.RAW["google"]
# Sets scored later against data/splits/nih.csv; each must stay in the test part.
SCORED_TEST_SETS = {
    "localisation boxes": (RAW / nih.BBOX_NAME, nih.read_bbox),
    "Google four findings test": (GOOGLE / "four_findings_expert_labels" / "test_labels.csv",
                                  google_labels.read_four_findings_labels),
    "Google all findings test": (GOOGLE / "all_findings_expert_labels" / "test_labels.csv",
                                 google_labels.read_all_findings_labels),
}
OUT = artefacts.SPLIT_NIH
PARTS = ("train", "val", "test")
METHODS = {
    "official": "official lists; validation = seeded random patients of train_val_list",
    "random_patients": "seeded random split by patient (CheXNet style); scored test sets pinned to test",
}


def _rng(seed: int) -> np.random.Generator:
    return np.random.default_rng([seed, seed_streams.SPLIT_NIH])


def eligible_images(index: pd.DataFrame, views: list[str], excluded: set[str] | frozenset = frozenset()) -> pd.DataFrame:
    """image and patient of the decoded images (ok) of the chosen views, minus `excluded`."""
    keep = (index["ok"] == 1) & index["view"].isin(views) & ~index["image"].isin(excluded)
    return index.loc[keep, ["image", "patient"]]


def _finished(table: pd.DataFrame) -> pd.DataFrame:
    return table[["image", "patient", "part"]].sort_values("image", ignore_index=True)


def official_split(index: pd.DataFrame, train_val: list[str], test: list[str], cfg: dict, seed: int,
                   excluded: set[str] | frozenset = frozenset()) -> pd.DataFrame:
    """The official lists, with a seeded patient-level validation carve-out of train_val."""
    listed = pd.concat([pd.DataFrame({"image": train_val, "part": "train"}), pd.DataFrame({"image": test, "part": "test"})])
    unknown = sorted(set(listed["image"]) - set(index["image"]))
    if unknown:
        raise DataError(RAW, f"{len(unknown)} images in the split lists are not in the metadata, e.g. {unknown[:5]}",
                        "use the split lists and Data_Entry file from the same release")
    table = eligible_images(index, cfg["views"], excluded).merge(listed, on="image", how="inner", validate="one_to_one")
    train_patients = table.loc[table["part"] == "train", "patient"].to_numpy()
    val_patients = carve_patients(train_patients, cfg["val_fraction"], _rng(seed))
    table.loc[(table["part"] == "train") & table["patient"].isin(val_patients), "part"] = "val"
    return _finished(table)


def listed_in_copy(path: Path) -> list[str]:
    """The images of an official split list that this NIH copy holds (with source.archives, its subset)."""
    names = pd.Series(nih.read_split_list(path))
    return names[nih.in_archive_subset(names, RAW, f"images of {path.name}")].tolist()


def random_patient_split(index: pd.DataFrame, cfg: dict, seed: int, pinned_test: np.ndarray | list = (),
                         excluded: set[str] | frozenset = frozenset()) -> pd.DataFrame:
    """Every eligible image, its patient drawn into train/val/test by split.nih.fractions; `pinned_test`
    patients go to test."""
    total = sum(cfg["fractions"].values())
    if not np.isclose(total, 1.0):
        raise DataError("params.yaml", f"split.nih.fractions {cfg['fractions']} sum to {total:g}",
                        "give train, val and test shares of patients that sum to 1 (e.g. 0.7, 0.1, 0.2)")
    table = eligible_images(index, cfg["views"], excluded)
    parts = random_patient_parts(table["patient"].to_numpy(), cfg["fractions"], _rng(seed), pinned_test)
    return _finished(table.assign(part=table["patient"].map(parts)))


def scored_test_sets(index: pd.DataFrame, datasets: list[str]) -> dict[str, tuple[Path, pd.DataFrame]]:
    """The test sets evaluated later that exist in this copy: name -> (file, image and patient). Google's only
    when `datasets` lists google (a raw folder left by an earlier run is not scored, so not pinned)."""
    found = {}
    for name, (path, read) in SCORED_TEST_SETS.items():
        if path.is_file() and (path.is_relative_to(RAW) or "google" in datasets):
            table = read(path)
            if "patient" not in table.columns:  # the box list names images only
                table = table.merge(index[["image", "patient"]], on="image", how="inner")
            found[name] = (path, table[["image", "patient"]].drop_duplicates())
    return found


def labels_disagreeing(other_name: str | None) -> tuple[pd.DataFrame | None, dict[str, Path]]:
    """Images whose labels differ between the metadata in use and data/raw/nih/<other_name>, and that file."""
    if other_name is None:
        return None, {}
    current, other = nih.find_data_entry(RAW), RAW / other_name
    if current is None or current.name == other_name:
        raise DataError(other, f"split.nih.labels_agree_with names the metadata already in use ({other_name})",
                        "name the other version of Data_Entry (Data_Entry_2017.csv or Data_Entry_2017_v2020.csv)")
    if not other.is_file():
        raise DataError(other, "split.nih.labels_agree_with names a file that is not in the NIH copy",
                        f"put {other_name} beside {current.name} in source.nih and rerun acquire_nih, or set "
                        "split.nih.labels_agree_with: null")
    return label_disagreements(nih.read_data_entry(current), nih.read_data_entry(other)), {"other": other}


def describe(cfg: dict, seed: int, table: pd.DataFrame, sources: dict[str, Path], pinned: dict[str, pd.DataFrame],
             disagreeing: pd.DataFrame | None) -> dict[str, Any]:
    """nih.json: everything needed to remake the split and to say how it was made."""
    counts = {part: {"images": int((table["part"] == part).sum()),
                     "patients": int(table.loc[table["part"] == part, "patient"].nunique())} for part in PARTS}
    info: dict[str, Any] = {"scheme": cfg["scheme"], "method": METHODS[cfg["scheme"]], "seed": seed,
                            "seed_stream": seed_streams.SPLIT_NIH, "views": cfg["views"]}
    if cfg["scheme"] == "official":
        info["val_fraction"] = cfg["val_fraction"]
    else:
        info["fractions_of_patients"] = cfg["fractions"]
        info["pinned_to_test"] = {name: {"images": int(len(t)), "patients": int(t["patient"].nunique())}
                                  for name, t in pinned.items()}
    if "archive_subset" in sources:
        info["archive_subset"] = {"file": sources["archive_subset"].name,
                                  "images": int(len(pd.read_csv(sources["archive_subset"])))}
    if disagreeing is not None:
        info["labels_agree_with"] = {
            "file": sources["other"].name, "current": sources["metadata"].name,
            "images_excluded": int(len(disagreeing)),
            "examples": disagreeing.head(20).to_dict(orient="records"),
        }
    info["counts"] = counts
    info["sources"] = {str(path): sha256_file(path) for path in sources.values()}
    return info


def split(params: dict[str, Any]) -> None:
    cfg, seed = params["split"]["nih"], params["seed"]
    index = store.read_index(artefacts.STORE_NIH)
    disagreeing, versions = labels_disagreeing(cfg["labels_agree_with"])
    excluded = frozenset(disagreeing["image"]) if disagreeing is not None else frozenset()
    if disagreeing is not None:
        log.info("%d images have other labels in %s: left out", len(excluded), versions["other"].name)
    scored = scored_test_sets(index, params["datasets"])
    sources = {"metadata": nih.find_data_entry(RAW), **versions, **{name: path for name, (path, _) in scored.items()}}
    if (RAW / nih.ARCHIVE_SUBSET).is_file():
        sources["archive_subset"] = RAW / nih.ARCHIVE_SUBSET
    pinned: dict[str, pd.DataFrame] = {}
    if cfg["scheme"] == "official":
        lists = {name: RAW / name for name in (nih.TRAIN_VAL_LIST, nih.TEST_LIST)}
        sources.update(lists)
        table = official_split(index, listed_in_copy(lists[nih.TRAIN_VAL_LIST]), listed_in_copy(lists[nih.TEST_LIST]),
                               cfg, seed, excluded)
    else:
        pinned = {name: frame for name, (_, frame) in scored.items()}
        pinned_patients = np.concatenate([np.zeros(0, np.int64), *(f["patient"].to_numpy(np.int64) for f in pinned.values())])
        table = random_patient_split(index, cfg, seed, pinned_patients, excluded)
    check_no_leakage(table, str(OUT))
    for path, frame in scored.values():
        require_held_out(frame, table, path, split_file=str(OUT))
    info = describe(cfg, seed, table, sources, pinned, disagreeing)
    for part, c in info["counts"].items():
        log.info("%s: %d images, %d patients", part, c["images"], c["patients"])
    with atomic_path(OUT) as tmp:
        table.to_csv(tmp, index=False, lineterminator="\n")
    write_json(OUT.with_suffix(".json"), info)


def main() -> None:
    run_stage("split_nih", split)


if __name__ == "__main__":
    main()
