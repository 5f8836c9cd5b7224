"""Subgroup analysis (cxrbench.subgroups) against independent computations on fixed data: the bands, the
validation threshold worked out by hand, the underdiagnosis rate counted by hand, and every group's AUC against
scikit-learn on that group's images; small groups keep their estimate and are marked."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from cxrbench import subgroups
from cxrbench.vocabulary import LABELS

BOOTSTRAP = {"resamples": 200, "alpha": 0.05}


def test_ages_and_follow_ups_fall_in_their_bands():
    images = pd.DataFrame({"sex": ["M"] * 7, "view": ["PA"] * 7, "age_years": [0.5, 19.9, 20, 59, 60, 80, 130],
                           "follow_up": [0, 1, 4, 5, 19, 20, 150]})
    groups = subgroups.groups_of(images)
    assert list(groups["age"]) == ["0-19", "0-19", "20-39", "40-59", "60-79", "80+", "80+"]
    assert list(groups["follow-ups"]) == ["0", "1-4", "1-4", "5-19", "5-19", "20+", "20+"]


def test_the_no_finding_threshold_maximises_f1_on_validation_by_hand():
    # no-finding scores prod(1 - p): 0.9, 0.8, 0.6, 0.3 (one output each); images 0 and 2 have no finding
    probabilities = np.zeros((4, len(LABELS)))
    probabilities[:, 0] = [0.1, 0.2, 0.4, 0.7]
    y = np.zeros((4, len(LABELS)), dtype=np.uint8)
    y[[1, 3], 0] = 1
    # thresholds 0.9: F1 2*1/(1+2) = 0.667; 0.8: 2*1/(2+2) = 0.5; 0.6: 2*2/(3+2) = 0.8; 0.3: 2*2/(4+2) = 0.667
    assert subgroups.no_finding_threshold(y, probabilities) == pytest.approx(0.6)
    rate, ill = subgroups.underdiagnosis(y, probabilities, 0.6)
    assert (rate, ill) == (0.5, 2)  # image 1 (score 0.8) is called "No Finding", image 3 (0.3) is not
    assert subgroups.no_finding_threshold(np.ones_like(y), probabilities) == 1.0  # nobody healthy: never call it


def fixed_test_set(n: int = 240, seed: int = 3) -> tuple[np.ndarray, np.ndarray, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    patients = rng.integers(0, 90, n)
    images = pd.DataFrame({"patient": patients, "sex": np.where(patients % 2, "M", "F"),
                           "age_years": (patients * 7) % 95, "view": np.where(rng.random(n) < 0.3, "AP", "PA"),
                           "follow_up": rng.integers(0, 30, n)})
    y = (rng.random((n, len(LABELS))) < 0.3).astype(np.uint8)
    scores = np.clip(0.3 * y + rng.random((n, len(LABELS))) * 0.8, 0, 1)
    return y, scores, images


def test_every_groups_auc_is_the_auc_of_its_images_and_small_groups_are_marked():
    y, scores, images = fixed_test_set()
    images.loc[:2, "view"] = "LL"  # a group of three images of at most three patients: too small for an interval
    table = subgroups.subgroup_table(y, scores, images, BOOTSTRAP, seed=0)
    groups = subgroups.groups_of(images)
    for (attribute, group), rows in table.groupby(["attribute", "group"]):
        members = (groups[attribute].astype(str) == group).to_numpy()
        by_class = rows.set_index("class")
        for k, label in enumerate(LABELS):
            truth = y[members, k]
            if 0 < truth.sum() < len(truth):
                assert by_class.loc[label, "auc"] == pytest.approx(roc_auc_score(truth, scores[members, k]), abs=1e-6)
        assert by_class.loc["mean", "images"] == members.sum()
    small = table[(table["attribute"] == "view") & (table["group"] == "LL")]
    assert small["small"].all() and small["ci_low"].isna().all() and small["auc"].notna().any()
    big = table[(table["attribute"] == "view") & (table["group"] == "PA") & (table["class"] == "mean")].iloc[0]
    assert not big["small"] and big["ci_low"] <= big["auc"] <= big["ci_high"]
    again = subgroups.subgroup_table(y, scores, images, BOOTSTRAP, seed=0)
    pd.testing.assert_frame_equal(table, again)  # seeded


def test_the_metrics_hold_each_groups_mean_and_underdiagnosis():
    y, scores, images = fixed_test_set()
    table = subgroups.subgroup_table(y, scores, images, BOOTSTRAP, seed=0)
    metrics = subgroups.subgroup_metrics(table, y, scores, images, threshold=0.05)
    female = (images["sex"] == "F").to_numpy()
    rate, ill = subgroups.underdiagnosis(y[female], scores[female], 0.05)
    assert metrics["sex"]["F"]["underdiagnosis_rate"] == pytest.approx(rate, abs=1e-6)
    assert metrics["sex"]["F"]["images_with_a_finding"] == ill == y[female].any(axis=1).sum()
    assert set(metrics) == {"no_finding_threshold", *subgroups.ATTRIBUTES}
    mean = table[(table["attribute"] == "age") & (table["group"] == "20-39") & (table["class"] == "mean")].iloc[0]
    assert metrics["age"]["20-39"]["mean_auc"] == mean["auc"] and metrics["age"]["20-39"]["mean_auc_ci"][0] == mean["ci_low"]
