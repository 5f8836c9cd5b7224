"""Are a classifier's probabilities honest? Reliability (observed frequency against mean predicted probability
in bins), expected calibration error and Brier score, per class.

Binning: 10 equal-width bins of the predicted probability on [0, 1] (the last bin includes 1). The expected
calibration error (Naeini et al. 2015; Guo et al. 2017) is the bin-count-weighted mean of |observed frequency -
mean predicted probability| over the non-empty bins. The Brier score is the mean squared difference between
probability and 0/1 outcome.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

BINS = 10


def bin_index(probabilities: np.ndarray, bins: int = BINS) -> np.ndarray:
    """Bin of each probability: floor(p * bins), with p = 1 in the last bin."""
    return np.minimum((np.asarray(probabilities, dtype=np.float64) * bins).astype(np.int64), bins - 1)


def reliability(y: np.ndarray, probabilities: np.ndarray, bins: int = BINS) -> pd.DataFrame:
    """Per non-empty bin of one class: bin, lower and upper edge, count, mean predicted probability, observed
    frequency of the positive outcome."""
    p, y = np.asarray(probabilities, dtype=np.float64), np.asarray(y, dtype=np.float64)
    index = bin_index(p, bins)
    count = np.bincount(index, minlength=bins)
    predicted = np.bincount(index, weights=p, minlength=bins)
    observed = np.bincount(index, weights=y, minlength=bins)
    filled = count > 0
    edges = np.arange(bins + 1) / bins
    return pd.DataFrame({"bin": np.flatnonzero(filled), "lower": edges[:-1][filled], "upper": edges[1:][filled],
                         "count": count[filled], "mean_predicted": predicted[filled] / count[filled],
                         "observed": observed[filled] / count[filled]})


def expected_calibration_error(y: np.ndarray, probabilities: np.ndarray, bins: int = BINS) -> float:
    table = reliability(y, probabilities, bins)
    weights = table["count"] / table["count"].sum()
    return float((weights * (table["observed"] - table["mean_predicted"]).abs()).sum())


def brier_score(y: np.ndarray, probabilities: np.ndarray) -> float:
    return float(np.mean((np.asarray(probabilities, dtype=np.float64) - np.asarray(y, dtype=np.float64)) ** 2))
