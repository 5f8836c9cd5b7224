"""Free-response ROC (FROC) for JSRT nodule detection: sensitivity against false positives per image."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class FrocCurve:
    """One point per distinct candidate score (highest first), after a (0, 0) point at +inf.

    Point i is what a detector reports when it keeps the candidates scoring >= thresholds[i].
    """

    fp_per_image: np.ndarray
    sensitivity: np.ndarray
    thresholds: np.ndarray
    n_nodules: int
    n_images: int


def _require_columns(frame: pd.DataFrame, columns: Sequence[str], name: str) -> None:
    missing = [column for column in columns if column not in frame.columns]
    if missing:
        raise ValueError(f"{name} lacks column(s) {missing}; expected {list(columns)}")


def froc(candidates: pd.DataFrame, truths: pd.DataFrame, n_images: int) -> FrocCurve:
    """FROC curve of scored nodule candidates against true nodules.

    `candidates` has columns image, x, y, score (one row per detection); `truths` has image, x, y,
    radius_px (one row per nodule; JSRT has at most one per image). `n_images` counts every evaluated
    image, including those without nodules or without candidates (JSRT: 247).

    A candidate hits a nodule when it lies within the nodule's radius (distance <= radius_px) on the
    same image. A nodule is detected at threshold t when some candidate hitting it scores >= t; it is
    counted once however many candidates hit it. A candidate that hits any nodule is never a false
    positive (extra hits on an already detected nodule are ignored, as is usual for JSRT CAD); every
    other candidate scoring >= t is a false positive.
    """
    _require_columns(candidates, ("image", "x", "y", "score"), "candidates")
    _require_columns(truths, ("image", "x", "y", "radius_px"), "truths")
    if len(truths) == 0:
        raise ValueError("froc needs at least one true nodule")
    if n_images < 1 or n_images < truths["image"].nunique() or n_images < candidates["image"].nunique():
        raise ValueError(f"n_images={n_images} is fewer than the images in candidates or truths")
    scores = candidates["score"].to_numpy(dtype=np.float64)
    if not np.isfinite(scores).all():
        raise ValueError("candidate scores must be finite")

    # every candidate paired with every nodule on its image
    pairs = (
        candidates[["image", "x", "y"]].assign(candidate=np.arange(len(candidates)))
        .merge(truths[["image", "x", "y", "radius_px"]].assign(nodule=np.arange(len(truths))),
               on="image", suffixes=("", "_nodule"))
    )
    distance = np.hypot(pairs["x"].to_numpy(float) - pairs["x_nodule"].to_numpy(float),
                        pairs["y"].to_numpy(float) - pairs["y_nodule"].to_numpy(float))
    hits = pairs[distance <= pairs["radius_px"].to_numpy(float)]
    hit_candidate = hits["candidate"].to_numpy()
    hit_nodule = hits["nodule"].to_numpy()

    # a nodule's detection score is the best score among the candidates that hit it
    nodule_score = np.full(len(truths), -np.inf)
    np.maximum.at(nodule_score, hit_nodule, scores[hit_candidate])
    is_false_positive = np.ones(len(candidates), dtype=bool)
    is_false_positive[hit_candidate] = False

    thresholds = np.unique(scores)[::-1]
    # counts of values >= each threshold, via sorted arrays
    detected = len(truths) - np.searchsorted(np.sort(nodule_score), thresholds, side="left")
    false_positives = np.count_nonzero(is_false_positive) - np.searchsorted(
        np.sort(scores[is_false_positive]), thresholds, side="left"
    )
    return FrocCurve(
        fp_per_image=np.r_[0.0, false_positives / n_images],
        sensitivity=np.r_[0.0, detected / len(truths)],
        thresholds=np.r_[np.inf, thresholds],
        n_nodules=len(truths),
        n_images=n_images,
    )


def sensitivity_at(curve: FrocCurve, fps: Sequence[float] = (1, 2, 4)) -> np.ndarray:
    """Highest sensitivity the curve reaches with at most `fps` false positives per image (each).

    The curve is a step function of the candidate threshold, so this is the best operating point at
    or below each budget; no interpolation between points.
    """
    fps = np.asarray(fps, dtype=np.float64)
    if (fps < 0).any():
        raise ValueError(f"false-positive budgets must be >= 0, got {fps}")
    # fp_per_image is non-decreasing along the curve: the last point within budget is the best
    last_within = np.searchsorted(curve.fp_per_image, fps, side="right") - 1
    return curve.sensitivity[last_within]


def weighted_sensitivity_at(candidate_image: np.ndarray, scores: np.ndarray, hit_nodule: np.ndarray,
                            nodule_image: np.ndarray, weights: np.ndarray,
                            fps: Sequence[float] = (1, 2, 4)) -> np.ndarray:
    """`sensitivity_at(froc(...), fps)` for many reweightings of the images at once: row r of `weights`
    (resamples, images) counts each image's copies in resample r (a case bootstrap), every copy bringing its
    nodules and its false positives; shape (resamples, len(fps)), NaN where a resample holds no nodule.

    Candidates are given as arrays: their image (an index into the columns of `weights`), score, and the nodule
    they hit (an index into `nodule_image`, -1 for none; as froc decides hits). The images per resample are the
    sum of its row. With a row of ones this is sensitivity_at(froc(...)) exactly (tests hold it to that)."""
    weights = np.asarray(weights, dtype=np.float64)
    thresholds = np.unique(scores)[::-1]
    nodule_score = np.full(len(nodule_image), -np.inf)
    hits = hit_nodule >= 0
    np.maximum.at(nodule_score, hit_nodule[hits], scores[hits])

    def weight_at_or_above(event_score: np.ndarray, event_image: np.ndarray) -> np.ndarray:
        """(resamples, 1 + thresholds): the weight of the events scoring >= each threshold, after a 0 at +inf."""
        order = np.argsort(-event_score, kind="stable")
        cumulative = np.concatenate([np.zeros((len(weights), 1)), np.cumsum(weights[:, event_image[order]], axis=1)],
                                    axis=1)
        above = np.searchsorted(-event_score[order], -thresholds, side="right")
        return np.concatenate([np.zeros((len(weights), 1)), cumulative[:, above]], axis=1)

    false_positives = weight_at_or_above(scores[~hits], candidate_image[~hits])
    detected = weight_at_or_above(nodule_score, nodule_image)
    images = weights.sum(axis=1, keepdims=True)
    nodules = weights[:, nodule_image].sum(axis=1)
    result = np.empty((len(weights), len(fps)))
    for k, fp in enumerate(fps):
        # false positives grow along the thresholds: the last point within the budget is the best
        last_within = np.sum(false_positives <= fp * images, axis=1) - 1
        with np.errstate(invalid="ignore", divide="ignore"):
            result[:, k] = detected[np.arange(len(weights)), last_within] / nodules
    return result
