"""FROC for nodule candidates: a hand case and a brute-force comparison."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cxrbench.metrics.froc import froc, sensitivity_at, weighted_sensitivity_at


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


def _random_case(seed: int = 0, n_images: int = 30) -> tuple[pd.DataFrame, pd.DataFrame]:
    """At most one nodule per image (as JSRT), candidates near nodules and scattered, scores with ties."""
    rng = np.random.default_rng(seed)
    truths = pd.DataFrame({"image": rng.choice(n_images, 12, replace=False), "x": rng.uniform(0, 200, 12),
                           "y": rng.uniform(0, 200, 12), "radius_px": rng.uniform(8, 25, 12)})
    near = truths.sample(30, replace=True, random_state=seed)
    candidates = pd.concat([
        pd.DataFrame({"image": near["image"].to_numpy(), "x": near["x"].to_numpy() + rng.normal(0, 12, 30),
                      "y": near["y"].to_numpy() + rng.normal(0, 12, 30)}),
        pd.DataFrame({"image": rng.integers(0, n_images, 60), "x": rng.uniform(0, 200, 60),
                      "y": rng.uniform(0, 200, 60)}),
    ], ignore_index=True).assign(score=np.round(rng.random(90), 1))
    return candidates, truths


def _hits(candidates: pd.DataFrame, truths: pd.DataFrame) -> np.ndarray:
    hit = np.full(len(candidates), -1)
    for i, c in enumerate(candidates.itertuples()):
        for j, t in enumerate(truths.itertuples()):
            if c.image == t.image and np.hypot(c.x - t.x, c.y - t.y) <= t.radius_px:
                hit[i] = j
    return hit


def test_weighted_sensitivity_is_the_froc_of_the_images_copied_as_often_as_weighed():
    """A case bootstrap's FROC, computed for many resamples at once, against froc() on each resample built for
    real (every image copied as often as drawn, its nodules and candidates with it)."""
    n_images, fps = 30, (0.5, 1, 2, 4)
    candidates, truths = _random_case(n_images=n_images)
    arrays = (candidates["image"].to_numpy(), candidates["score"].to_numpy(), _hits(candidates, truths),
              truths["image"].to_numpy())
    ones = weighted_sensitivity_at(*arrays, np.ones((1, n_images)), fps)[0]
    np.testing.assert_array_equal(ones, sensitivity_at(froc(candidates, truths, n_images), fps))
    rng = np.random.default_rng(3)
    draws = rng.integers(0, n_images, size=(5, n_images))
    weights = np.stack([np.bincount(draw, minlength=n_images) for draw in draws])
    resampled = weighted_sensitivity_at(*arrays, weights, fps)
    for draw, got in zip(draws, resampled, strict=True):
        copies = [(copy, image) for copy, image in enumerate(draw)]
        built_candidates = pd.concat([candidates[candidates["image"] == image].assign(image=copy)
                                      for copy, image in copies], ignore_index=True)
        built_truths = pd.concat([truths[truths["image"] == image].assign(image=copy)
                                  for copy, image in copies], ignore_index=True)
        if len(built_truths) == 0:
            assert np.isnan(got).all()
            continue
        np.testing.assert_allclose(got, sensitivity_at(froc(built_candidates, built_truths, n_images), fps))


def test_froc_rejects_missing_columns_and_too_few_images():
    candidates, truths = _hand_case()
    with pytest.raises(ValueError, match="radius_px"):
        froc(candidates, truths.drop(columns="radius_px"), n_images=4)
    with pytest.raises(ValueError, match="n_images"):
        froc(candidates, truths, n_images=3)
