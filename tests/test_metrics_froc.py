"""FROC for nodule candidates: a hand case and a brute-force comparison."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cxrbench.metrics.froc import froc, sensitivity_at


def _hand_case() -> tuple[pd.DataFrame, pd.DataFrame]:
    truths = pd.DataFrame(
        {"image": ["n1", "n2"], "x": [100.0, 50.0], "y": [100.0, 50.0], "radius_px": [10.0, 5.0]}
    )
    candidates = pd.DataFrame(
        [
            ("n1", 102, 101, 0.9),  # hits nodule n1
            ("n1", 105, 100, 0.8),  # hits n1 again: ignored, not a false positive
            ("x3", 10, 10, 0.7),  # image without nodule: false positive
            ("n2", 60, 60, 0.6),  # 14.1 px from n2's nodule, radius 5: false positive
            ("n2", 53, 54, 0.5),  # exactly 5 px: a hit
            ("x4", 0, 0, 0.5),  # false positive tied in score with the hit
            ("x3", 100, 100, 0.3),  # n1's coordinates but another image: false positive
            ("n1", 300, 300, 0.2),  # false positive on a nodule image
        ],
        columns=["image", "x", "y", "score"],
    )
    return candidates, truths


def test_froc_hand_case():
    candidates, truths = _hand_case()
    curve = froc(candidates, truths, n_images=4)
    np.testing.assert_array_equal(curve.thresholds, [np.inf, 0.9, 0.8, 0.7, 0.6, 0.5, 0.3, 0.2])
    np.testing.assert_allclose(curve.sensitivity, [0, 0.5, 0.5, 0.5, 0.5, 1, 1, 1])
    np.testing.assert_allclose(curve.fp_per_image, np.array([0, 0, 0, 1, 2, 3, 4, 5]) / 4)
    assert curve.n_nodules == 2 and curve.n_images == 4
    np.testing.assert_allclose(sensitivity_at(curve, fps=(0, 0.5, 0.74, 0.75, 2)), [0.5, 0.5, 0.5, 1, 1])


def _brute_force(candidates: pd.DataFrame, truths: pd.DataFrame, n_images: int, threshold: float) -> tuple[float, float]:
    kept = candidates[candidates["score"] >= threshold]
    detected = set()
    false_positives = 0
    for candidate in kept.itertuples():
        on_image = truths[truths["image"] == candidate.image]
        near = np.hypot(on_image["x"] - candidate.x, on_image["y"] - candidate.y) <= on_image["radius_px"]
        detected.update(on_image.index[near])
        false_positives += not near.any()
    return false_positives / n_images, len(detected) / len(truths)


def test_froc_equals_brute_force_on_random_candidates():
    rng = np.random.default_rng(0)
    n_images = 30
    truths = pd.DataFrame({
        "image": rng.choice(n_images, 20, replace=False),
        "x": rng.uniform(0, 200, 20), "y": rng.uniform(0, 200, 20), "radius_px": rng.uniform(5, 25, 20),
    })
    # candidates near nodules (some inside, some not) and scattered ones, scores with ties
    near = truths.sample(60, replace=True, random_state=1)
    candidates = pd.concat([
        pd.DataFrame({"image": near["image"].to_numpy(),
                      "x": near["x"].to_numpy() + rng.normal(0, 12, 60),
                      "y": near["y"].to_numpy() + rng.normal(0, 12, 60)}),
        pd.DataFrame({"image": rng.integers(0, n_images, 90), "x": rng.uniform(0, 200, 90),
                      "y": rng.uniform(0, 200, 90)}),
    ], ignore_index=True).assign(score=np.round(rng.random(150), 1))
    curve = froc(candidates, truths, n_images)
    assert 0 < curve.sensitivity[-1] < 1 and len(curve.thresholds) > 5  # hits, misses and ties all occur
    for threshold, fp_per_image, sensitivity in zip(curve.thresholds[1:], curve.fp_per_image[1:], curve.sensitivity[1:]):
        assert (fp_per_image, sensitivity) == pytest.approx(_brute_force(candidates, truths, n_images, threshold))


def test_froc_rejects_missing_columns_and_too_few_images():
    candidates, truths = _hand_case()
    with pytest.raises(ValueError, match="radius_px"):
        froc(candidates, truths.drop(columns="radius_px"), n_images=4)
    with pytest.raises(ValueError, match="n_images"):
        froc(candidates, truths, n_images=3)
