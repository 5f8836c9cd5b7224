"""Calibration measures (cxrbench.metrics.calibration) against hand-worked examples and scikit-learn."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.calibration import calibration_curve
from sklearn.metrics import brier_score_loss

from cxrbench.metrics.calibration import brier_score, expected_calibration_error, reliability


def test_ece_of_a_hand_worked_example():
    # bin 1 ([0.1, 0.2)): p 0.1, 0.1, outcomes 0, 1 -> observed 0.5, predicted 0.1, |gap| 0.4, weight 2/5
    # bin 9 ([0.9, 1.0]): p 0.9, 1.0, 0.95, outcomes 1, 1, 0 -> observed 2/3, predicted 0.95, |gap| 0.2833, weight 3/5
    p = np.array([0.1, 0.1, 0.9, 1.0, 0.95])
    y = np.array([0, 1, 1, 1, 0])
    assert expected_calibration_error(y, p) == pytest.approx(0.4 * 2 / 5 + (0.95 - 2 / 3) * 3 / 5)
    table = reliability(y, p)
    assert table["bin"].tolist() == [1, 9] and table["count"].tolist() == [2, 3]


def test_a_calibrated_forecaster_has_a_small_ece_and_a_confident_wrong_one_a_large():
    rng = np.random.default_rng(0)
    p = rng.random(20_000)
    y = rng.random(20_000) < p
    assert expected_calibration_error(y, p) < 0.02
    assert expected_calibration_error(y, np.where(p > 0.5, 0.0, 1.0)) > 0.4


def test_brier_and_the_reliability_curve_are_scikit_learns():
    rng = np.random.default_rng(1)
    p = rng.random(500) ** 2
    y = rng.random(500) < 0.3
    assert brier_score(y, p) == pytest.approx(brier_score_loss(y, p))
    observed, predicted = calibration_curve(y, p, n_bins=10, strategy="uniform")
    table = reliability(y, p)
    np.testing.assert_allclose(table["observed"], observed)
    np.testing.assert_allclose(table["mean_predicted"], predicted)
