"""Stage split_nih: the official NIH test list, and a seeded patient-level validation carve-out of train_val.

Writes data/splits/nih.csv (image, patient, part in train/val/test) and data/splits/nih.json (how it was
made: seed, fraction, views, sha256 of the source lists and the counts). Images the decoder quarantined and
views not in split.nih.views are left out. The stage fails, naming the patients, if any patient would be in
two parts.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cxrbench import store
from cxrbench.datasets import nih
from cxrbench.errors import DataError
from cxrbench.fileio import atomic_path, sha256_file, write_json
from cxrbench.splits import carve_patients, check_no_leakage
from cxrbench.stages._app import run_stage

log = logging.getLogger(__name__)
RAW = Path("data/raw/nih")
OUT = Path("data/splits/nih.csv")
SPLIT_SEED_STREAM = 101  # distinct stream of the master seed, so other seeded stages do not shift the split


def make_split(index: pd.DataFrame, train_val: list[str], test: list[str], cfg: dict, seed: int) -> pd.DataFrame:
    listed = pd.concat([pd.DataFrame({"image": train_val, "part": "train"}), pd.DataFrame({"image": test, "part": "test"})])
    unknown = sorted(set(listed["image"]) - set(index["image"]))
    if unknown:
        raise DataError(RAW, f"{len(unknown)} images in the split lists are not in the metadata, e.g. {unknown[:5]}",
                        "use the split lists and Data_Entry file from the same release")
    table = index[["image", "patient", "view", "ok"]].merge(listed, on="image", how="inner", validate="one_to_one")
    table = table[(table["ok"] == 1) & table["view"].isin(cfg["views"])]
    train_patients = table.loc[table["part"] == "train", "patient"].to_numpy()
    val_patients = carve_patients(train_patients, cfg["val_fraction"], np.random.default_rng([seed, SPLIT_SEED_STREAM]))
    table.loc[(table["part"] == "train") & table["patient"].isin(val_patients), "part"] = "val"
    return table[["image", "patient", "part"]].sort_values("image", ignore_index=True)


def split(params: dict[str, Any]) -> None:
    cfg = params["split"]["nih"]
    index = store.read_index("data/store/nih")
    lists = {name: RAW / f"{name}.txt" for name in ("train_val_list", "test_list")}
    table = make_split(index, nih.read_split_list(lists["train_val_list"]), nih.read_split_list(lists["test_list"]),
                       cfg, params["seed"])
    check_no_leakage(table, str(OUT))
    counts = {part: {"images": int((table["part"] == part).sum()),
                     "patients": int(table.loc[table["part"] == part, "patient"].nunique())}
              for part in ("train", "val", "test")}
    for part, c in counts.items():
        log.info("%s: %d images, %d patients", part, c["images"], c["patients"])
    with atomic_path(OUT) as tmp:
        table.to_csv(tmp, index=False, lineterminator="\n")
    write_json(OUT.with_suffix(".json"), {
        "method": "official lists; validation = seeded random patients of train_val_list",
        "seed": params["seed"], "seed_stream": SPLIT_SEED_STREAM, "val_fraction": cfg["val_fraction"],
        "views": cfg["views"], "counts": counts,
        "sources": {path.name: sha256_file(path) for path in lists.values()},
    })


def main() -> None:
    run_stage("split_nih", split)


if __name__ == "__main__":
    main()
