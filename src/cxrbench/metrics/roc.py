"""ROC AUC per class, bootstrap confidence intervals, ROC curves and reader operating points.

The AUC is the Mann-Whitney statistic: the share of (positive, negative) pairs in which the positive
scores higher, ties counted 1/2, which is what `sklearn.metrics.roc_auc_score` computes.

A bootstrap resample is a multiset of images, so instead of copying scores we weight each image by
how often it was drawn. With the negatives of a label sorted by score once, and for every positive
the two positions where its score enters that sorted list (before and after the negatives it ties),
the weighted statistic of a whole chunk of resamples is one gather, one cumulative sum and one
weighted sum over int32 count matrices:

    2 * sum_{p,q} w_p w_q ([s_p > s_q] + [s_p = s_q] / 2) = sum_p w_p (W_neg(< s_p) + W_neg(<= s_p))

The sums are exact integers, so the AUC differs from sklearn's by float rounding only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class _LabelOrder:
    """What one label's AUC needs that does not depend on the resample weights."""

    positives: np.ndarray  # image indices of the positives
    negatives: np.ndarray  # image indices of the negatives, in ascending score order
    below: np.ndarray  # per positive: how many sorted negatives score strictly lower
    below_or_tied: np.ndarray  # per positive: how many sorted negatives score lower or equal


def _as_binary(values: np.ndarray, name: str) -> np.ndarray:
    values = np.asarray(values)
    if not np.isin(values, (0, 1)).all():
        raise ValueError(f"{name} must be 0/1 (or boolean)")
    return values.astype(bool)


def _check_labels_scores(y: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return (bool (n, k), float64 (n, k)); a 1-D pair is one class."""
    y = _as_binary(y, "labels")
    scores = np.asarray(scores, dtype=np.float64)
    if y.shape != scores.shape or y.ndim not in (1, 2):
        raise ValueError(f"labels {y.shape} and scores {scores.shape} must have the same shape (n,) or (n, k)")
    if not np.isfinite(scores).all():
        raise ValueError("scores must be finite (found NaN or infinity)")
    if y.ndim == 1:
        y, scores = y[:, None], scores[:, None]
    return y, scores


def _label_orders(y: np.ndarray, scores: np.ndarray) -> list[_LabelOrder]:
    orders = []
    for label_y, label_s in zip(y.T, scores.T):
        positives = np.flatnonzero(label_y)
        negatives = np.flatnonzero(~label_y)
        negatives = negatives[np.argsort(label_s[negatives], kind="stable")]
        sorted_negative_scores = label_s[negatives]
        orders.append(
            _LabelOrder(
                positives=positives,
                negatives=negatives,
                below=np.searchsorted(sorted_negative_scores, label_s[positives], side="left"),
                below_or_tied=np.searchsorted(sorted_negative_scores, label_s[positives], side="right"),
            )
        )
    return orders


def _weighted_auc(order: _LabelOrder, counts: np.ndarray) -> np.ndarray:
    """AUC of one label for every column of `counts` (n_images, n_resamples) of image multiplicities."""
    n_columns = counts.shape[1]
    # cumulative[j] = total weight of the j lowest-scoring negatives. It is at most a resample's
    # image count, so int32 holds it, and int32 halves the time of this cumsum, the bootstrap's hot loop.
    cumulative = np.zeros((len(order.negatives) + 1, n_columns), dtype=np.int32)
    np.cumsum(counts[order.negatives], axis=0, out=cumulative[1:])
    positive_weight = counts[order.positives].astype(np.int64)
    # per positive: 2 x (negative weight below it) + (negative weight tied with it)
    twice_wins_plus_ties = cumulative[order.below].astype(np.int64) + cumulative[order.below_or_tied]
    twice_u = np.einsum("pc,pc->c", positive_weight, twice_wins_plus_ties)  # twice Mann-Whitney U
    pairs = positive_weight.sum(axis=0) * cumulative[-1].astype(np.int64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(pairs > 0, twice_u / (2.0 * pairs), np.nan)


def _auc_matrix(orders: list[_LabelOrder], counts: np.ndarray) -> np.ndarray:
    """(n_resamples, k) AUCs for image multiplicities `counts` (n_images, n_resamples)."""
    return np.stack([_weighted_auc(order, counts) for order in orders], axis=1)


def roc_auc(y: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Per-class ROC AUC of `scores` (n, k) against 0/1 labels `y` (n, k), ties counted 1/2.

    Returns shape (k,); NaN for a class without positives or without negatives. A 1-D pair gives
    shape (1,).
    """
    y, scores = _check_labels_scores(y, scores)
    ones = np.ones((y.shape[0], 1), dtype=np.int32)
    return _auc_matrix(_label_orders(y, scores), ones)[0]


def _group_codes(n: int, groups: np.ndarray | None) -> tuple[np.ndarray, int]:
    """Per image, the index of its resampling unit (itself, or its group in np.unique order)."""
    if groups is None:
        return np.arange(n), n
    groups = np.asarray(groups)
    if groups.shape != (n,):
        raise ValueError(f"groups must have one entry per image: shape ({n},), got {groups.shape}")
    unique, codes = np.unique(groups, return_inverse=True)
    return codes, len(unique)


def resample_indices(
    n: int, n_resamples: int, seed: int, groups: np.ndarray | None = None
) -> np.ndarray:
    """Bootstrap draws, shape (n_resamples, n_units), int32, from numpy.random.default_rng(seed).

    Without `groups` the units are the n images. With `groups` (one id per image, e.g. patient ids)
    the units are the distinct groups in `np.unique(groups)` order; a resample takes every image of
    each drawn group, as often as the group was drawn. Row b is resample b, so a reference loop and
    `bootstrap_auc` called with the same arguments use identical resamples.
    """
    return _draw_units(_group_codes(n, groups)[1], n_resamples, seed)


def _draw_units(n_units: int, n_resamples: int, seed: int) -> np.ndarray:
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be at least 1, got {n_resamples}")
    rng = np.random.default_rng(seed)
    return rng.integers(0, n_units, size=(n_resamples, n_units), dtype=np.int32)


def unit_counts(draws: np.ndarray, n_units: int) -> np.ndarray:
    """(n_units, n_draw_rows) int32: how often each unit was drawn in each row of `draws`."""
    n_rows = draws.shape[0]
    flat = (draws + (np.arange(n_rows, dtype=np.int64) * n_units)[:, None]).ravel()
    counts = np.bincount(flat, minlength=n_rows * n_units).astype(np.int32)
    return np.ascontiguousarray(counts.reshape(n_rows, n_units).T)


def _row_nanmean(values: np.ndarray) -> np.ndarray:
    """Mean over the last axis ignoring NaN; NaN where a row has no finite value."""
    finite = ~np.isnan(values)
    with np.errstate(invalid="ignore"):
        return np.where(finite, values, 0.0).sum(axis=-1) / finite.sum(axis=-1)


def percentile_interval(replicates: np.ndarray, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """Per column (low, high) percentile interval over the non-NaN replicates (numpy's linear
    percentile at alpha/2 and 1 - alpha/2); NaN for a column without any. Shape (k,) each for
    `replicates` (n_resamples, k)."""
    replicates = replicates.reshape(replicates.shape[0], -1)
    low = np.full(replicates.shape[1], np.nan)
    high = np.full(replicates.shape[1], np.nan)
    has_value = (~np.isnan(replicates)).any(axis=0)
    if has_value.any():
        bounds = np.nanpercentile(
            replicates[:, has_value], [100 * alpha / 2, 100 * (1 - alpha / 2)], axis=0
        )
        low[has_value], high[has_value] = bounds
    return low, high


def unit_groups(unit: str, patients: np.ndarray) -> np.ndarray | None:
    """The `groups` argument of `bootstrap_auc` for a configured resampling unit: None for 'image', the patient
    ids for 'patient' (then every image of a drawn patient comes along, as when patients were sampled)."""
    if unit not in ("image", "patient"):
        raise ValueError(f"bootstrap unit must be 'image' or 'patient', got {unit!r}")
    return None if unit == "image" else np.asarray(patients)


def bootstrap_auc(
    y: np.ndarray,
    scores: np.ndarray,
    *,
    n_resamples: int = 1000,
    seed: int = 0,
    groups: np.ndarray | None = None,
    chunk: int = 100,
    alpha: float = 0.05,
) -> dict[str, Any]:
    """Per-class AUC with percentile bootstrap confidence intervals, and the same for the class mean.

    Resamples come from `resample_indices(n, n_resamples, seed, groups)`; with `groups` whole groups
    (e.g. patients) are resampled, which is the right unit when one patient has several images.
    Memory: the int32 draws (4 * n_units * n_resamples bytes) plus, per `chunk` of resamples
    processed together, int32 counts and their cumulative sums (a few times 4 * n * chunk bytes).
    A resample in which a class has no positives (or no negatives) gives NaN for that class; the
    interval uses the other resamples (`n_valid` says how many) and the mean AUC of a resample is
    the mean over its defined classes.

    Returns a dict: `auc`, `ci_low`, `ci_high` (each shape (k,)), `n_valid` (k,), `mean_auc`,
    `mean_ci_low`, `mean_ci_high` (floats), `replicates` (n_resamples, k), `n_resamples`,
    `alpha`, `seed`, and `unit` ('image' or 'group') with `n_units`.
    """
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    if chunk < 1:
        raise ValueError(f"chunk must be at least 1, got {chunk}")
    y, scores = _check_labels_scores(y, scores)
    n = y.shape[0]
    unit_of_image, n_units = _group_codes(n, groups)
    orders = _label_orders(y, scores)
    point = _auc_matrix(orders, np.ones((n, 1), dtype=np.int32))[0]

    draws = _draw_units(n_units, n_resamples, seed)  # what resample_indices(n, n_resamples, seed, groups) returns
    replicates = np.empty((n_resamples, y.shape[1]))
    for start in range(0, n_resamples, chunk):
        stop = min(start + chunk, n_resamples)
        image_counts = unit_counts(draws[start:stop], n_units)
        if groups is not None:
            image_counts = image_counts[unit_of_image]
        replicates[start:stop] = _auc_matrix(orders, image_counts)

    ci_low, ci_high = percentile_interval(replicates, alpha)
    mean_low, mean_high = percentile_interval(_row_nanmean(replicates), alpha)
    return {
        "auc": point,
        "ci_low": ci_low,
        "ci_high": ci_high,
        "n_valid": (~np.isnan(replicates)).sum(axis=0),
        "mean_auc": float(_row_nanmean(point)),
        "mean_ci_low": float(mean_low[0]),
        "mean_ci_high": float(mean_high[0]),
        "replicates": replicates,
        "n_resamples": n_resamples,
        "alpha": alpha,
        "seed": seed,
        "unit": "image" if groups is None else "group",
        "n_units": n_units,
    }


def roc_curve_points(y: np.ndarray, s: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ROC curve of scores `s` (n,) against 0/1 labels `y` (n,): (fpr, tpr, thresholds).

    One point per distinct score, highest first (an image is called positive when its score is
    >= the threshold), preceded by (0, 0) at threshold +inf; the same points as
    `sklearn.metrics.roc_curve(..., drop_intermediate=False)`.
    """
    y, s = _check_labels_scores(y, s)
    if y.shape[1] != 1:
        raise ValueError(f"roc_curve_points takes one class: 1-D labels and scores, got shape {y.shape}")
    y, s = y[:, 0], s[:, 0]
    n_positive = int(y.sum())
    if n_positive in (0, len(y)):
        raise ValueError("a ROC curve needs at least one positive and one negative")
    order = np.argsort(-s, kind="stable")
    sorted_scores = s[order]
    last_of_each_score = np.r_[np.flatnonzero(np.diff(sorted_scores)), len(s) - 1]
    true_positives = np.cumsum(y[order])[last_of_each_score]
    false_positives = last_of_each_score + 1 - true_positives
    fpr = np.r_[0.0, false_positives / (len(y) - n_positive)]
    tpr = np.r_[0.0, true_positives / n_positive]
    return fpr, tpr, np.r_[np.inf, sorted_scores[last_of_each_score]]


def operating_point(y_true: np.ndarray, y_pred: np.ndarray) -> tuple[float, float]:
    """(sensitivity, specificity) of binary calls `y_pred` against `y_true` (both 0/1, shape (n,)).

    For plotting a reader or a thresholded model on a ROC plot at (1 - specificity, sensitivity).
    NaN for sensitivity without positives, for specificity without negatives.
    """
    y_true, y_pred = _as_binary(y_true, "y_true"), _as_binary(y_pred, "y_pred")
    if y_true.shape != y_pred.shape or y_true.ndim != 1:
        raise ValueError(f"y_true {y_true.shape} and y_pred {y_pred.shape} must both have shape (n,)")
    n_positive = y_true.sum()
    n_negative = y_true.size - n_positive
    sensitivity = (y_pred & y_true).sum() / n_positive if n_positive else np.nan
    specificity = (~y_pred & ~y_true).sum() / n_negative if n_negative else np.nan
    return float(sensitivity), float(specificity)
