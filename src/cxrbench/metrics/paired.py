"""Paired comparison of two models scored on the same images: DeLong's test for correlated ROC curves, and
Holm's correction for many comparisons.

DeLong, DeLong and Clarke-Pearson (Biometrics 1988) estimate the covariance of two AUCs measured on the same
cases from each case's placement value: for a positive, the share of negatives it outscores (ties 1/2); for a
negative, the share of positives that outscore it. Sun and Xu (IEEE Signal Processing Letters 2014) showed
that the placement values are differences of midranks, so a class costs three sorts per model instead of
the positives x negatives comparisons of the definition:

    V10_i = (rank of positive i among all - its rank among positives) / n_negatives
    V01_j = 1 - (rank of negative j among all - its rank among negatives) / n_positives

and AUC = mean(V10) = mean(V01). With S10, S01 the covariance matrices of the models' V10 and V01,
Cov(AUC) = S10 / m + S01 / n (m positives, n negatives); the difference of two models is then tested as a
normal deviate.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

_NORMAL = NormalDist()
ROUNDING = 1e-12


@dataclass(frozen=True)
class PairedAuc:
    """Per class (arrays of length k): both AUCs, their difference (b - a) with its standard error, a normal
    interval of level 1 - alpha, and the two-sided p-value of DeLong's test of no difference."""

    auc_a: np.ndarray
    auc_b: np.ndarray
    difference: np.ndarray
    standard_error: np.ndarray
    ci_low: np.ndarray
    ci_high: np.ndarray
    p_value: np.ndarray


def midranks(values: np.ndarray) -> np.ndarray:
    """Ranks 1..n along the last axis, ties given the mean of the ranks they span."""
    order = np.argsort(values, axis=-1, kind="stable")
    ordered = np.take_along_axis(values, order, axis=-1)
    n = values.shape[-1]
    # ties: each run of equal values gets the mean of its 1-based positions
    new_run = np.ones(ordered.shape, dtype=bool)
    new_run[..., 1:] = ordered[..., 1:] != ordered[..., :-1]
    run_id = np.cumsum(new_run, axis=-1) - 1
    positions = np.broadcast_to(np.arange(1, n + 1, dtype=np.float64), ordered.shape)
    ranks_sorted = np.empty(ordered.shape, dtype=np.float64)
    for row in np.ndindex(ordered.shape[:-1]):  # models x classes: a handful of rows
        ids = run_id[row]
        sums = np.bincount(ids, weights=positions[row])
        counts = np.bincount(ids)
        ranks_sorted[row] = (sums / counts)[ids]
    ranks = np.empty_like(ranks_sorted)
    np.put_along_axis(ranks, order, ranks_sorted, axis=-1)
    return ranks


def placement_values(positive: np.ndarray, negative: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(V10, V01) of each model: `positive` (models, m) and `negative` (models, n) scores of one class."""
    m, n = positive.shape[-1], negative.shape[-1]
    combined = midranks(np.concatenate([positive, negative], axis=-1))
    v10 = (combined[..., :m] - midranks(positive)) / n
    v01 = 1.0 - (combined[..., m:] - midranks(negative)) / m
    return v10, v01


def placement_values_by_pairs(positive: np.ndarray, negative: np.ndarray,
                              chunk: int = 1024) -> tuple[np.ndarray, np.ndarray]:
    """`placement_values` by their definition, every positive against every negative (O(m n), in chunks of
    positives): the reference the tests and benchmarks/paired_auc.py hold the midrank version to."""
    v10 = np.empty(positive.shape)
    v01 = np.zeros(negative.shape)
    for start in range(0, positive.shape[-1], chunk):
        block = positive[..., start:start + chunk, None]
        wins = (block > negative[..., None, :]) + 0.5 * (block == negative[..., None, :])
        v10[..., start:start + chunk] = wins.mean(axis=-1)
        v01 += wins.sum(axis=-2)
    return v10, v01 / positive.shape[-1]


def auc_covariance(y: np.ndarray, scores: np.ndarray,
                   placements: Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]] = placement_values,
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Per class, the AUCs of every model and DeLong's covariance matrix of them: `y` (n_images, k) 0/1 labels,
    `scores` (models, n_images, k) on the same images. Returns auc (models, k) and cov (k, models, models);
    NaN for a class without both positives and negatives. `placements` computes (V10, V01) (a reference
    implementation can be put in its place)."""
    y, scores = np.asarray(y).astype(bool), np.asarray(scores, dtype=np.float64)
    if y.ndim != 2 or scores.shape[1:] != y.shape:
        raise ValueError(f"labels {y.shape} and scores {scores.shape} must be (n, k) and (models, n, k)")
    n_models, k = scores.shape[0], y.shape[1]
    auc, cov = np.full((n_models, k), np.nan), np.full((k, n_models, n_models), np.nan)
    for c in range(k):
        positive = y[:, c]
        m, n = int(positive.sum()), int((~positive).sum())
        if m < 2 or n < 2:  # a covariance needs two of each
            continue
        v10, v01 = placements(scores[:, positive, c], scores[:, ~positive, c])
        auc[:, c] = v10.mean(axis=1)
        cov[c] = np.atleast_2d(np.cov(v10)) / m + np.atleast_2d(np.cov(v01)) / n
    return auc, cov


def delong(y: np.ndarray, scores_a: np.ndarray, scores_b: np.ndarray, alpha: float = 0.05) -> PairedAuc:
    """DeLong's paired test of models a and b per class: `y` (n_images, k) 0/1 labels, scores (n_images, k)."""
    y, scores_a, scores_b = (np.asarray(a) for a in (y, scores_a, scores_b))
    if y.ndim == 1:
        y, scores_a, scores_b = y[:, None], scores_a[:, None], scores_b[:, None]
    if not (y.shape == scores_a.shape == scores_b.shape):
        raise ValueError(f"labels {y.shape} and scores {scores_a.shape}, {scores_b.shape} must have one shape")
    auc, cov = auc_covariance(y, np.stack([scores_a, scores_b]))
    return paired_from_covariance(auc, cov, 0, 1, alpha)


def paired_from_covariance(auc: np.ndarray, cov: np.ndarray, a: int, b: int, alpha: float = 0.05) -> PairedAuc:
    """Model b against model a, per class, from `auc_covariance`'s output."""
    weights = np.zeros(auc.shape[0])
    weights[a], weights[b] = -1.0, 1.0
    return contrast(auc, cov, weights, alpha)


def contrast(auc: np.ndarray, cov: np.ndarray, weights: np.ndarray, alpha: float = 0.05) -> PairedAuc:
    """DeLong's test of a linear combination of the models' AUCs, per class: `weights` (models,) summing to zero,
    e.g. +1/2 on two seeds of model b and -1/2 on two seeds of model a tests the difference of their seed-averaged
    AUCs. Its variance is w' Cov w, Cov from `auc_covariance`. auc_a / auc_b of the result are the weighted means
    of the negative and the positive weights' models."""
    weights = np.asarray(weights, dtype=np.float64)
    if weights.shape != (auc.shape[0],) or not np.isclose(weights.sum(), 0.0):
        raise ValueError(f"weights must be one per model ({auc.shape[0]}) and sum to zero, got {weights}")
    # AUCs are ratios of counts: below ROUNDING a difference or standard error is the sum's rounding, i.e. zero
    difference = _zero_below_rounding(weights @ auc)
    se = _zero_below_rounding(np.sqrt(np.maximum(np.einsum("i,kij,j->k", weights, cov, weights), 0.0)))
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.abs(difference) / se
    # a difference without variance (identical scores): p = 1 when there is no difference at all
    p = np.where(se > 0, 2 * (1 - _normal_cdf(z)), np.where(difference == 0, 1.0, 0.0))
    p = np.where(np.isfinite(difference), p, np.nan)
    half = _NORMAL.inv_cdf(1 - alpha / 2) * se
    negative, positive = np.minimum(weights, 0), np.maximum(weights, 0)
    return PairedAuc(negative @ auc / negative.sum(), positive @ auc / positive.sum(), difference, se,
                     difference - half, difference + half, p)


def _zero_below_rounding(values: np.ndarray) -> np.ndarray:
    return np.where(np.abs(values) < ROUNDING, 0.0, values)


def _normal_cdf(z: np.ndarray) -> np.ndarray:
    return np.vectorize(_NORMAL.cdf, otypes=[np.float64])(np.nan_to_num(z, nan=0.0, posinf=1e9))


def holm(p_values: np.ndarray) -> np.ndarray:
    """Holm's step-down adjustment (family-wise error), in the input's order; NaN stays NaN and is not counted."""
    p = np.asarray(p_values, dtype=np.float64)
    adjusted = np.full(p.shape, np.nan)
    finite = np.flatnonzero(np.isfinite(p))
    order = finite[np.argsort(p[finite], kind="stable")]
    steps = (len(order) - np.arange(len(order))) * p[order]
    adjusted[order] = np.minimum(np.maximum.accumulate(steps), 1.0)
    return adjusted
