"""External validation (stage evaluate_external): the JSRT images brought to the NIH store's convention, worked out
by hand, and on the session's tiny run every JSRT case scored, the AUCs those scores give by scikit-learn."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from cxrbench.stages.evaluate_external import to_nih_convention


def test_twelve_bit_display_values_become_eight_bit_and_are_area_resampled():
    images = np.array([[[0, 4095, 2048, 2048], [4095, 0, 2048, 2048], [0, 0, 4095, 4095], [0, 0, 4095, 4095]]],
                      dtype=np.uint16)
    same = to_nih_convention(images, 4)
    assert same.dtype == np.uint8 and same[0, 0].tolist() == [0, 255, 128, 128]  # 2048 * 255 / 4095 = 127.5 -> 128
    half = to_nih_convention(images, 2)
    np.testing.assert_array_equal(half[0], [[128, 128], [0, 255]])  # the mean of each 2 x 2 block of the 8-bit image


@pytest.mark.e2e
def test_every_jsrt_case_is_scored_and_the_aucs_are_those_of_the_scores(tiny_run):
    metrics = json.loads((tiny_run / "metrics/external_jsrt.json").read_text())
    scores = pd.read_csv(tiny_run / "results/external/jsrt_scores.csv")
    index = pd.read_csv(tiny_run / "data/store/jsrt/index.csv")
    assert sorted(scores["case"]) == sorted(index["case"]) and metrics["cases"] == len(index)
    np.testing.assert_allclose(scores["score"], scores[["score_Nodule", "score_Mass"]].max(axis=1))
    assert metrics["auc"] == pytest.approx(roc_auc_score(scores["nodule"], scores["score"]), abs=1e-6)
    for level, summary in metrics["by_subtlety"].items():
        group = scores[(scores["subtlety"] == float(level)) | (scores["nodule"] == 0)]
        assert summary["auc"] == pytest.approx(roc_auc_score(group["nodule"], group["score"]), abs=1e-6)
