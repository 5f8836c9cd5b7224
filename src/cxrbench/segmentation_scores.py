"""The SCR segmenter's predictions format and how it is scored, shared by evaluate_segmenter and by anyone scoring
their own model's masks (`cxrbench score segmenter FILE`, `cxrbench.data.score_segmenter`).

The format: one `.npy` array holding a mask of each of the five SCR objects (cxrbench.vocabulary.OBJECTS, in that
order) for every JSRT case of the store, in the store's row order (index.csv) and at its size S: either
`(cases, 5, S, S)` of 0/1 or bool, or our packed `(cases, S, S)` uint8 with bit k set where object k is
(results/segmenter/predictions_<S>.npy, `store.pack_masks`). Each case is scored in the fold where it is tested
(SCR's two folds, data/splits/scr.csv); the reference masks always come from the run's own store.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from cxrbench import store
from cxrbench.errors import DataError
from cxrbench.metrics.overlap import dice, jaccard, mean_contour_distance, pixel_error, scr_pixel_mm, summarise
from cxrbench.splits import fold_rows
from cxrbench.vocabulary import OBJECTS

# (test fold, the fold its model trained on): SCR's two-fold protocol, each fold the test set once
TEST_FOLDS = ((2, 1), (1, 2))
_FIX = ("save one mask per object and JSRT case, in the store's row order (index.csv) at its size: "
        "(cases, 5, S, S) 0/1, or packed (cases, S, S) uint8 with bit k = object k")


def case_table(index: pd.DataFrame, rows: np.ndarray, pred: np.ndarray, ref: np.ndarray, pixel_mm: float,
               fold: int) -> pd.DataFrame:
    """One row per case of `rows` and object: Jaccard, Dice, mean contour distance (mm) and the case's pixel
    error over the five labels; `pred` and `ref` are (len(rows), 5, S, S) bool."""
    records = []
    for i, row in enumerate(rows):
        errors = pixel_error(pred[i], ref[i])
        for k, obj in enumerate(OBJECTS):
            records.append({"case": index.at[row, "case"], "test_fold": fold, "object": obj,
                            "jaccard": float(jaccard(pred[i, k], ref[i, k])), "dice": float(dice(pred[i, k], ref[i, k])),
                            "contour_mm": mean_contour_distance(pred[i, k], ref[i, k], pixel_mm), "pixel_error": errors})
    return pd.DataFrame(records)


def segmenter_metrics(cases: pd.DataFrame, size: int) -> dict:
    """results/segmenter/scores.json: mean and sd over the test images per object and of the pixel error, overall
    and per test fold, from `case_table` rows."""
    def measures(frame: pd.DataFrame) -> dict:
        per_object = {obj: {m: _stats(g[m]) for m in ("jaccard", "dice", "contour_mm")} for obj, g in frame.groupby("object")}
        return {"objects": per_object, "pixel_error": _stats(frame.drop_duplicates("case")["pixel_error"])}

    return {"size": int(size), "pixel_mm": round(scr_pixel_mm(size), 6), "overall": measures(cases),
            "by_test_fold": {f"fold{f}": measures(g) for f, g in cases.groupby("test_fold")}}


def headline(metrics: dict) -> dict:
    """metrics/segmenter.json: the overall mean Jaccard per object and mean pixel error, at the scored size."""
    overall = metrics["overall"]
    return {"size": metrics["size"], "pixel_mm": metrics["pixel_mm"], "pixel_error": overall["pixel_error"]["mean"],
            "jaccard": {obj: m["jaccard"]["mean"] for obj, m in overall["objects"].items()}}


def score_masks(predicted: np.ndarray, index: pd.DataFrame, split: pd.DataFrame,
                reference: np.ndarray) -> tuple[dict, pd.DataFrame]:
    """Metrics and the per-case table of the packed `predicted` masks ((cases, S, S) uint8, store order) against
    the store's packed `reference`, each case in its test fold (unpacked a fold at a time)."""
    size = reference.shape[-1]
    tables = []
    for test_fold, _ in TEST_FOLDS:
        rows = fold_rows(index, split, test_fold)
        pred, ref = (store.unpack_masks(masks[rows], len(OBJECTS)) for masks in (predicted, reference))
        tables.append(case_table(index, rows, pred, ref, scr_pixel_mm(size), test_fold))
    cases = pd.concat(tables, ignore_index=True).round(6)
    return segmenter_metrics(cases, size), cases


def read_masks(path: str | Path, cases: int, size: int) -> np.ndarray:
    """The packed masks ((cases, size, size) uint8) of a predictions file in the format above, or a DataError
    saying what is wrong with it."""
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "predictions file not found", _FIX)
    try:
        masks = np.load(path, mmap_mode="r", allow_pickle=False)
    except ValueError as err:
        raise DataError(path, f"not a NumPy .npy array ({err})", _FIX) from err
    packed = (cases, size, size)
    unpacked = (cases, len(OBJECTS), size, size)
    if masks.shape == packed and masks.dtype == np.uint8:
        if masks.max(initial=0) >= 1 << len(OBJECTS):
            raise DataError(path, f"packed masks use bits beyond the {len(OBJECTS)} objects", _FIX)
        return np.asarray(masks)
    if masks.shape != unpacked:
        raise DataError(path, f"shape {masks.shape}: expected {unpacked} (or packed {packed} uint8) for the "
                              f"store's {cases} cases at {size} px", _FIX)
    if masks.dtype != bool and not np.isin(masks, (0, 1)).all():
        raise DataError(path, "masks must be 0/1 or bool; threshold your probabilities first", _FIX)
    return np.stack([store.pack_masks(np.asarray(case, dtype=bool)) for case in masks])


def _stats(values: pd.Series) -> dict:
    """mean/sd/n rounded; an undefined sd (one image) becomes JSON null. A contour distance is infinite for an
    object missed entirely (cxrbench.metrics.overlap): then mean and sd are null too, and `missed` counts the
    cases (the key is there only when there are some)."""
    values = values.to_numpy(dtype=np.float64)
    with np.errstate(invalid="ignore"):  # inf - inf in the sd of a missed object: undefined, as said
        summary = summarise(values)
    stats = {k: (None if not math.isfinite(v) else round(float(v), 6)) if isinstance(v, float) else v
             for k, v in summary.items()}
    missed = int(np.isinf(values).sum())
    return {**stats, "missed": missed} if missed else stats
