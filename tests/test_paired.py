"""DeLong's paired test and Holm's correction (cxrbench.metrics.paired): pROC's published paired tests reproduced on
its data, the midrank placement values equal their definition, the AUCs equal scikit-learn's, the test holds its
level under the null, a contrast of seed-averaged AUCs is the covariance's quadratic form, and Holm matches a hand
computation."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import rankdata
from sklearn.metrics import roc_auc_score

from cxrbench.metrics.paired import (
    auc_covariance,
    contrast,
    delong,
    holm,
    midranks,
    placement_values,
    placement_values_by_pairs,
)
from helpers import asah


def test_midranks_are_scipys_average_ranks():
    values = np.random.default_rng(0).integers(0, 6, size=(3, 40)).astype(float)  # many ties
    np.testing.assert_array_equal(midranks(values), np.stack([rankdata(row) for row in values]))


def test_placement_values_equal_their_definition_with_ties():
    rng = np.random.default_rng(1)
    positive, negative = rng.integers(0, 5, size=(2, 37)).astype(float), rng.integers(0, 5, size=(2, 53)).astype(float)
    for fast, slow in zip(placement_values(positive, negative), placement_values_by_pairs(positive, negative, chunk=8)):
        np.testing.assert_allclose(fast, slow, rtol=0, atol=1e-12)


def test_aucs_are_sklearns_and_the_covariance_is_the_reference_one():
    rng = np.random.default_rng(2)
    y = rng.random((500, 4)) < [0.05, 0.2, 0.5, 0.8]
    scores = np.stack([y + rng.normal(0, s, y.shape) for s in (0.8, 1.2, 2.0)]).round(1)  # ties too
    auc, cov = auc_covariance(y, scores)
    reference_auc, reference_cov = auc_covariance(y, scores, placement_values_by_pairs)
    for model in range(3):
        np.testing.assert_allclose(auc[model], [roc_auc_score(y[:, c], scores[model, :, c]) for c in range(4)],
                                   rtol=0, atol=1e-12)
    np.testing.assert_allclose(auc, reference_auc, rtol=0, atol=1e-12)
    np.testing.assert_allclose(cov, reference_cov, rtol=0, atol=1e-12)
    assert np.all(np.linalg.eigvalsh(cov) > -1e-15)  # covariance matrices


def test_identical_models_do_not_differ_and_a_class_without_negatives_is_nan():
    rng = np.random.default_rng(3)
    y = np.column_stack([rng.random(100) < 0.3, np.ones(100, dtype=bool)])
    scores = rng.random((100, 2))
    result = delong(y, scores, scores)
    assert result.difference[0] == 0 and result.p_value[0] == 1.0
    assert np.isnan(result.p_value[1]) and np.isnan(result.auc_a[1])


def test_the_test_holds_its_level_under_the_null_and_finds_a_real_difference():
    rng = np.random.default_rng(4)
    null_p, alternative_p = [], []
    for _ in range(300):
        y = rng.random(300) < 0.3
        signal = y + rng.normal(0, 1, 300)
        a, b = signal + rng.normal(0, 1, 300), signal + rng.normal(0, 1, 300)  # equally good, correlated
        null_p.append(delong(y, a, b).p_value[0])
        alternative_p.append(delong(y, a, signal).p_value[0])  # b lacks a's extra noise
    assert 0.02 <= np.mean(np.array(null_p) < 0.05) <= 0.09
    assert np.mean(np.array(alternative_p) < 0.05) > 0.7  # 0.80 with this seed


def test_the_interval_covers_the_difference_it_is_centred_on():
    rng = np.random.default_rng(5)
    y = rng.random((400, 1)) < 0.4
    a, b = y + rng.normal(0, 1.5, y.shape), y + rng.normal(0, 1, y.shape)
    result = delong(y, a, b, alpha=0.05)
    assert result.ci_low[0] < result.difference[0] < result.ci_high[0]
    assert result.difference[0] == pytest.approx(result.auc_b[0] - result.auc_a[0])
    z = result.difference[0] / result.standard_error[0]
    assert result.ci_high[0] - result.difference[0] == pytest.approx(1.959964 * result.standard_error[0], rel=1e-6)
    assert result.p_value[0] < 0.05 if abs(z) > 1.96 else result.p_value[0] >= 0.05


def test_holm_matches_a_hand_computation_and_keeps_nan():
    adjusted = holm(np.array([0.01, 0.04, 0.03, 0.005, np.nan]))
    # sorted 0.005, 0.01, 0.03, 0.04 times 4, 3, 2, 1 = 0.02, 0.03, 0.06, 0.04 -> running max 0.02, 0.03, 0.06, 0.06
    np.testing.assert_allclose(adjusted[:4], [0.03, 0.06, 0.06, 0.02])
    assert np.isnan(adjusted[4])
    assert holm(np.array([0.9, 0.8]))[0] == 1.0


@pytest.mark.parametrize(("first", "second", "published"), asah.PUBLISHED, ids=lambda v: v if isinstance(v, str) else "")
def test_delong_reproduces_procs_published_paired_tests_on_its_asah_data(first, second, published):
    """pROC's roc.test on its aSAH data (see tests/helpers/asah.py): a worked example computed by another
    implementation, with heavy ties (wfns is a 1-5 grade), published to 15 digits in pROC's test suite."""
    y = np.array(asah.OUTCOME)
    result = delong(y, np.array(getattr(asah, second), dtype=float), np.array(getattr(asah, first), dtype=float))
    for name, auc in ((first, result.auc_b[0]), (second, result.auc_a[0])):
        assert round(auc, 4 if name != "NDKA" else 3) == asah.PRINTED_AUC[name]
    assert result.difference[0] / result.standard_error[0] == pytest.approx(published["z"], rel=1e-12)
    assert result.p_value[0] == pytest.approx(published["p"], rel=1e-9)
    assert (result.ci_low[0], result.ci_high[0]) == pytest.approx(published["ci"], rel=1e-12)


def test_a_contrast_of_seed_averaged_aucs_is_the_covariance_s_quadratic_form():
    """contrast(): two seeds per model, +1/2 and -1/2 weights. Its difference is the difference of the means of the
    AUCs, its variance w' Cov w from the O(n^2) definition of the placement values; for two models it is delong()."""
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, size=(300, 2))
    scores = y[None] * rng.uniform(0.2, 1.0, size=(4, 1, 2)) + rng.normal(size=(4, 300, 2))
    auc, cov = auc_covariance(y, scores, placements=placement_values_by_pairs)
    weights = np.array([-0.5, -0.5, 0.5, 0.5])
    result = contrast(auc, cov, weights)
    np.testing.assert_allclose(result.difference, auc[2:].mean(axis=0) - auc[:2].mean(axis=0))
    np.testing.assert_allclose(result.standard_error ** 2, [weights @ cov[c] @ weights for c in range(2)])
    np.testing.assert_allclose(result.auc_a, auc[:2].mean(axis=0))
    pair = delong(y, scores[0], scores[3])
    single = contrast(auc, cov, np.array([-1.0, 0, 0, 1.0]))
    np.testing.assert_allclose(single.p_value, pair.p_value, rtol=1e-10)
    with pytest.raises(ValueError, match="sum to zero"):
        contrast(auc, cov, np.array([1.0, 0, 0, 0]))
