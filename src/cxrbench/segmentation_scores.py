"""The SCR segmenter's predictions format and how it is scored, shared by evaluate_segmenter, every cell of the
segmenter's benchmark matrix, and anyone scoring their own model's masks (`cxrbench score segmenter FILE`,
`cxrbench.data.score_segmenter`).

Scored as van Ginneken, Stegmann & Loog (2006) and the SCR site score: binary masks at the reference masks' own
1024 x 1024 px (0.35 mm pixels), each case in the fold where it is tested (SCR's two folds, data/splits/scr.csv:
train on one, test on the other, both ways), on the published objects (the lung fields and the clavicles each
both of their masks as one object, the heart) and on the four single lungs and clavicles
(cxrbench.vocabulary.SCORED_OBJECTS): Jaccard (the paper's Omega), Dice and the mean contour distance in mm per
object, and the SCR site's pixel error over the five labels. The reference masks come from the run's own store
(reference_masks_1024.npy, decode_jsrt).

Predictions at a store's smaller size S are brought up to 1024 px by bilinear interpolation, pixel centres aligned
(both grids cover the same field of view; torch's `align_corners=False`), then thresholded at 0.5: our models'
sigmoid probabilities (cxrbench.scr_segmenter), and an outside file's 0/1 masks the same way. A store mask that
makes this round trip (S px by area and majority, then back) does not reproduce the reference exactly: its
Jaccard (`round_trip`) is the most a model trained at S can be expected to reach.

The format: one `.npy` array holding a mask of each of the five SCR objects (cxrbench.vocabulary.OBJECTS, in that
order) for every JSRT case of the store, in the store's row order (index.csv), at the store's size S or at 1024:
either `(cases, 5, size, size)` of 0/1 or bool, or our packed `(cases, size, size)` uint8 with bit k set where
object k is (results/segmenter/predictions_1024.npy, `store.pack_masks`).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from cxrbench import store
from cxrbench.errors import DataError
from cxrbench.metrics.overlap import (
    dice,
    jaccard,
    mean_contour_distance,
    merge_objects,
    pixel_error,
    scr_pixel_mm,
    summarise,
)
from cxrbench.splits import fold_rows
from cxrbench.vocabulary import OBJECTS, PUBLISHED_OBJECTS, SCORED_OBJECTS, SCR_MASK_SIZE

# (test fold, the fold its model trained on): SCR's two-fold protocol, each fold the test set once
TEST_FOLDS = ((2, 1), (1, 2))
INTERPOLATION = "bilinear interpolation of the probabilities to 1024 px (pixel centres aligned), threshold 0.5"
# each scored object's planes among OBJECTS
MEMBERS = [[OBJECTS.index(o) for o in PUBLISHED_OBJECTS.get(name, (name,))] for name in SCORED_OBJECTS]
_CHUNK = 8  # cases brought up to 1024 px at a time (5 float maps of 4 MB each per case)
_FIX = ("save one mask per object and JSRT case, in the store's row order (index.csv) at the store's size or at "
        "1024 px: (cases, 5, size, size) 0/1, or packed (cases, size, size) uint8 with bit k = object k")


def to_reference_size(probabilities: torch.Tensor) -> torch.Tensor:
    """(n, k, S, S) probabilities (or 0/1 masks as floats) -> (n, k, 1024, 1024) bool: bilinear interpolation with
    pixel centres aligned, then >= 0.5. At 1024 px already, only thresholded."""
    if probabilities.shape[-1] != SCR_MASK_SIZE:
        probabilities = F.interpolate(probabilities, size=(SCR_MASK_SIZE, SCR_MASK_SIZE), mode="bilinear",
                                      align_corners=False)
    return probabilities >= 0.5


def packed_to_reference_size(packed: np.ndarray) -> np.ndarray:
    """Packed (cases, S, S) uint8 masks -> packed (cases, 1024, 1024) uint8, each object's 0/1 mask brought up by
    `to_reference_size` (a few cases at a time: memory stays flat)."""
    if packed.shape[-1] == SCR_MASK_SIZE:
        return np.asarray(packed)
    out = np.empty((len(packed), SCR_MASK_SIZE, SCR_MASK_SIZE), dtype=np.uint8)
    for start in range(0, len(packed), _CHUNK):
        masks = torch.from_numpy(store.unpack_masks(np.asarray(packed[start:start + _CHUNK]), len(OBJECTS)))
        out[start:start + _CHUNK] = store.pack_masks(to_reference_size(masks.float()).numpy())
    return out


def case_table(index: pd.DataFrame, rows: np.ndarray, predicted: np.ndarray, reference: np.ndarray,
               fold: int) -> pd.DataFrame:
    """One row per case of `rows` and scored object: Jaccard, Dice, mean contour distance (mm) and the case's pixel
    error over the five labels; `predicted` and `reference` are packed (cases, 1024, 1024) uint8 in store order."""
    pixel_mm = scr_pixel_mm(SCR_MASK_SIZE)
    records = []
    for row in rows:
        pred, ref = (store.unpack_masks(np.asarray(masks[row]), len(OBJECTS)) for masks in (predicted, reference))
        error = pixel_error(pred, ref)
        pred_objects, ref_objects = merge_objects(pred, MEMBERS), merge_objects(ref, MEMBERS)
        jaccards, dices = jaccard(pred_objects, ref_objects), dice(pred_objects, ref_objects)
        for k, obj in enumerate(SCORED_OBJECTS):
            records.append({"case": index.at[row, "case"], "test_fold": fold, "object": obj,
                            "jaccard": float(jaccards[k]), "dice": float(dices[k]),
                            "contour_mm": mean_contour_distance(pred_objects[k], ref_objects[k], pixel_mm),
                            "pixel_error": error})
    return pd.DataFrame(records)


def segmenter_metrics(cases: pd.DataFrame, store_size: int) -> dict:
    """results/segmenter/scores.json: mean and sd over the test images per scored object and of the pixel error,
    overall and per test fold, from `case_table` rows."""
    def measures(frame: pd.DataFrame) -> dict:
        by_object = dict(list(frame.groupby("object", sort=False)))
        per_object = {obj: {m: _stats(by_object[obj][m]) for m in ("jaccard", "dice", "contour_mm")}
                      for obj in SCORED_OBJECTS}
        return {"objects": per_object, "pixel_error": _stats(frame.drop_duplicates("case")["pixel_error"])}

    return {"store_size": int(store_size), "scored_size": SCR_MASK_SIZE, "pixel_mm": scr_pixel_mm(SCR_MASK_SIZE),
            "interpolation": INTERPOLATION, "overall": measures(cases),
            "by_test_fold": {f"fold{f}": measures(g) for f, g in cases.groupby("test_fold")}}


def headline(metrics: dict) -> dict:
    """metrics/segmenter.json: the overall mean Jaccard and contour distance of the published objects and the mean
    pixel error, with the store's size (the scores are at 1024 px)."""
    overall = metrics["overall"]
    return {"store_size": metrics["store_size"], "pixel_error": overall["pixel_error"]["mean"],
            **{measure: {obj: overall["objects"][obj][measure]["mean"] for obj in PUBLISHED_OBJECTS}
               for measure in ("jaccard", "contour_mm")}}


def score_masks(predicted: np.ndarray, index: pd.DataFrame, split: pd.DataFrame, reference: np.ndarray,
                store_size: int) -> tuple[dict, pd.DataFrame]:
    """Metrics and the per-case table of the packed `predicted` masks ((cases, 1024, 1024) uint8, store order)
    against the store's packed 1024 px `reference`, each case in its test fold; `store_size` is the size the
    predictions were made at, for the record."""
    tables = [case_table(index, fold_rows(index, split, test_fold), predicted, reference, test_fold)
              for test_fold, _ in TEST_FOLDS]
    cases = pd.concat(tables, ignore_index=True).round(6)
    return segmenter_metrics(cases, store_size), cases


def round_trip(store_masks: np.ndarray, index: pd.DataFrame, split: pd.DataFrame, reference: np.ndarray) -> dict:
    """Per scored object, the mean Jaccard of the store's own reference masks (packed, S px) brought back up to
    1024 px against the originals: the cap the store's resolution puts on any model trained on it."""
    metrics, _ = score_masks(packed_to_reference_size(store_masks), index, split, reference, store_masks.shape[-1])
    return {obj: m["jaccard"]["mean"] for obj, m in metrics["overall"]["objects"].items()}


def read_masks(path: str | Path, cases: int, store_size: int) -> np.ndarray:
    """The packed masks at 1024 px ((cases, 1024, 1024) uint8) of a predictions file in the format above (at the
    store's size or at 1024 px), or a DataError saying what is wrong with it."""
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "predictions file not found", _FIX)
    try:
        masks = np.load(path, mmap_mode="r", allow_pickle=False)
    except ValueError as err:
        raise DataError(path, f"not a NumPy .npy array ({err})", _FIX) from err
    sizes = sorted({store_size, SCR_MASK_SIZE})
    size = masks.shape[-1] if masks.ndim else None
    packed, unpacked = (cases, size, size), (cases, len(OBJECTS), size, size)
    if size not in sizes or masks.shape not in (packed, unpacked):
        expected = " or ".join(f"{(cases, len(OBJECTS), s, s)} (or packed {(cases, s, s)} uint8)" for s in sizes)
        raise DataError(path, f"shape {masks.shape}: expected {expected} for the store's {cases} cases", _FIX)
    if masks.shape == packed:
        if masks.dtype != np.uint8:
            raise DataError(path, f"packed masks must be uint8, found {masks.dtype}", _FIX)
        if masks.max(initial=0) >= 1 << len(OBJECTS):
            raise DataError(path, f"packed masks use bits beyond the {len(OBJECTS)} objects", _FIX)
        return packed_to_reference_size(masks)
    if masks.dtype != bool and not np.isin(masks, (0, 1)).all():
        raise DataError(path, "masks must be 0/1 or bool; threshold your probabilities first", _FIX)
    return packed_to_reference_size(np.stack([store.pack_masks(np.asarray(case, dtype=bool)) for case in masks]))


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
