"""ROC AUC, bootstrap intervals, ROC curves and operating points against sklearn and hand cases."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn.exceptions import UndefinedMetricWarning
from sklearn.metrics import roc_auc_score, roc_curve

from cxrbench.metrics.roc import (
    bootstrap_auc,
    operating_point,
    percentile_interval,
    resample_indices,
    roc_auc,
    roc_curve_points,
    unit_groups,
)


def _labels_and_scores(n: int, k: int, seed: int, decimals: int | None = 2) -> tuple[np.ndarray, np.ndarray]:
    """Labels with varied prevalence, informative scores, rounded so that many scores tie."""
    rng = np.random.default_rng(seed)
    y = (rng.random((n, k)) < np.linspace(0.05, 0.5, k)).astype(int)
    scores = rng.normal(size=(n, k)) + y
    return y, scores if decimals is None else np.round(scores, decimals)


def _naive_replicates(y: np.ndarray, scores: np.ndarray, resamples: list[np.ndarray]) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        return np.stack([roc_auc_score(y[rows], scores[rows], average=None) for rows in resamples])


@pytest.mark.parametrize("decimals", [None, 1, 0])
def test_roc_auc_equals_sklearn_with_and_without_ties(decimals):
    y, scores = _labels_and_scores(500, 6, seed=1, decimals=decimals)
    np.testing.assert_allclose(roc_auc(y, scores), roc_auc_score(y, scores, average=None), rtol=0, atol=1e-12)


def test_roc_auc_constant_scores_give_one_half_and_degenerate_classes_nan():
    y = np.array([[1, 0, 1], [0, 0, 1], [1, 0, 1], [0, 0, 1]])
    scores = np.array([[0.3, 0.1, 0.2], [0.3, 0.5, 0.4], [0.3, 0.2, 0.9], [0.3, 0.7, 0.1]])
    auc = roc_auc(y, scores)
    assert auc[0] == 0.5
    assert np.isnan(auc[1]) and np.isnan(auc[2])  # no positives / no negatives


def test_roc_auc_hand_case_and_one_dimensional_input():
    # positives 0.8, 0.4; negatives 0.4, 0.1: pairs won 1 + 1 + 0.5 (tie) + 1 of 4
    assert roc_auc(np.array([1, 1, 0, 0]), np.array([0.8, 0.4, 0.4, 0.1])).tolist() == [0.875]


@pytest.mark.parametrize(
    "y, scores, message",
    [
        (np.array([0, 2, 1]), np.array([0.1, 0.2, 0.3]), "0/1"),
        (np.array([0, 1, 1]), np.array([0.1, np.nan, 0.3]), "finite"),
        (np.array([0, 1, 1]), np.array([[0.1], [0.2], [0.3]]), "same shape"),
    ],
)
def test_roc_auc_rejects_bad_input(y, scores, message):
    with pytest.raises(ValueError, match=message):
        roc_auc(y, scores)


def test_bootstrap_equals_naive_sklearn_loop_on_the_same_resamples():
    y, scores = _labels_and_scores(300, 5, seed=2)
    result = bootstrap_auc(y, scores, n_resamples=40, seed=7, chunk=16)
    naive = _naive_replicates(y, scores, list(resample_indices(300, 40, 7)))
    np.testing.assert_allclose(result["replicates"], naive, rtol=0, atol=1e-10)
    naive_low, naive_high = percentile_interval(naive, 0.05)
    np.testing.assert_allclose(result["ci_low"], naive_low, rtol=0, atol=1e-10)
    np.testing.assert_allclose(result["ci_high"], naive_high, rtol=0, atol=1e-10)
    naive_mean_low, naive_mean_high = np.percentile(naive.mean(axis=1), [2.5, 97.5])
    assert result["mean_ci_low"] == pytest.approx(naive_mean_low, abs=1e-10)
    assert result["mean_ci_high"] == pytest.approx(naive_mean_high, abs=1e-10)
    np.testing.assert_allclose(result["auc"], roc_auc_score(y, scores, average=None), atol=1e-12)
    assert result["mean_auc"] == pytest.approx(result["auc"].mean(), abs=1e-15)
    assert (result["ci_low"] <= result["auc"]).all() and (result["auc"] <= result["ci_high"]).all()


def test_bootstrap_is_deterministic_and_independent_of_chunk_size():
    y, scores = _labels_and_scores(200, 3, seed=3)
    first = bootstrap_auc(y, scores, n_resamples=30, seed=11, chunk=7)
    again = bootstrap_auc(y, scores, n_resamples=30, seed=11, chunk=30)
    other_seed = bootstrap_auc(y, scores, n_resamples=30, seed=12)
    np.testing.assert_array_equal(first["replicates"], again["replicates"])
    assert not np.array_equal(first["replicates"], other_seed["replicates"])


def test_bootstrap_rare_class_missing_from_some_resamples_is_nan_there_only():
    rng = np.random.default_rng(4)
    y = np.zeros((60, 2), dtype=int)
    y[:30, 0] = 1
    y[0, 1] = 1  # one positive: absent from about a third of resamples
    scores = rng.random((60, 2))
    result = bootstrap_auc(y, scores, n_resamples=50, seed=0)
    naive = _naive_replicates(y, scores, list(resample_indices(60, 50, 0)))
    np.testing.assert_array_equal(np.isnan(result["replicates"]), np.isnan(naive))
    assert result["n_valid"][0] == 50 and 0 < result["n_valid"][1] < 50
    assert np.isfinite([result["ci_low"][1], result["ci_high"][1], result["mean_ci_low"]]).all()
    # the mean of a resample where class 1 is missing is class 0 alone
    missing = np.isnan(result["replicates"][:, 1])
    per_resample_mean = np.where(missing, result["replicates"][:, 0], result["replicates"].mean(axis=1))
    assert result["mean_ci_low"] == pytest.approx(np.percentile(per_resample_mean, 2.5), abs=1e-12)


def test_patient_bootstrap_resamples_whole_groups():
    y, scores = _labels_and_scores(120, 3, seed=5)
    groups = np.random.default_rng(5).integers(0, 40, size=120).astype(str)  # about 3 images per patient
    draws = resample_indices(120, 25, seed=9, groups=groups)
    unique_groups, codes = np.unique(groups, return_inverse=True)
    assert draws.shape == (25, len(unique_groups))
    members = [np.flatnonzero(codes == g) for g in range(len(unique_groups))]
    resamples = [np.concatenate([members[g] for g in row]) for row in draws]
    result = bootstrap_auc(y, scores, n_resamples=25, seed=9, groups=groups)
    assert result["unit"] == "group" and result["n_units"] == len(unique_groups)
    np.testing.assert_allclose(result["replicates"], _naive_replicates(y, scores, resamples), rtol=0, atol=1e-10)


def test_patient_bootstrap_of_duplicated_images_equals_image_bootstrap():
    # every patient has three identical images: resampling whole patients weights each image x3,
    # which leaves every AUC unchanged; splitting a patient's images would not
    y, scores = _labels_and_scores(80, 2, seed=6)
    patient = np.repeat(np.arange(80), 3)
    by_patient = bootstrap_auc(np.repeat(y, 3, axis=0), np.repeat(scores, 3, axis=0),
                               n_resamples=20, seed=1, groups=patient)
    by_image = bootstrap_auc(y, scores, n_resamples=20, seed=1)
    np.testing.assert_allclose(by_patient["replicates"], by_image["replicates"], rtol=0, atol=1e-15)


def test_configured_unit_selects_patient_groups():
    patients = np.array(["p1", "p1", "p2"])
    assert unit_groups("image", patients) is None
    np.testing.assert_array_equal(unit_groups("patient", patients), patients)
    with pytest.raises(ValueError, match="'image' or 'patient'"):
        unit_groups("case", patients)


def test_resample_indices_reject_mismatched_groups():
    with pytest.raises(ValueError, match="one entry per image"):
        resample_indices(10, 5, 0, groups=np.arange(9))


def test_roc_curve_points_equal_sklearn_and_integrate_to_auc():
    y, scores = _labels_and_scores(400, 1, seed=8, decimals=1)
    fpr, tpr, thresholds = roc_curve_points(y[:, 0], scores[:, 0])
    sk_fpr, sk_tpr, sk_thresholds = roc_curve(y[:, 0], scores[:, 0], drop_intermediate=False)
    np.testing.assert_allclose(fpr, sk_fpr, atol=1e-15)
    np.testing.assert_allclose(tpr, sk_tpr, atol=1e-15)
    np.testing.assert_array_equal(thresholds, sk_thresholds)
    assert np.trapezoid(tpr, fpr) == pytest.approx(roc_auc(y, scores)[0], abs=1e-12)


def test_roc_curve_points_need_both_classes():
    with pytest.raises(ValueError, match="positive and one negative"):
        roc_curve_points(np.ones(4), np.arange(4.0))


def test_operating_point_hand_case():
    y_true = np.array([1, 1, 1, 1, 0, 0, 0, 0, 0])
    y_pred = np.array([1, 1, 1, 0, 1, 0, 0, 0, 0])
    assert operating_point(y_true, y_pred) == pytest.approx((0.75, 0.8))
    sensitivity, specificity = operating_point(np.zeros(3), np.array([0, 1, 0]))
    assert np.isnan(sensitivity) and specificity == pytest.approx(2 / 3)
