"""SCR measures on hand-made masks with known answers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from cxrbench.metrics.overlap import (
    dice,
    jaccard,
    mean_contour_distance,
    pixel_error,
    scr_pixel_mm,
    summarise,
)


def _disk(size: int, centre_x: float, centre_y: float, radius: float) -> np.ndarray:
    rows, columns = np.mgrid[:size, :size]
    return (columns - centre_x) ** 2 + (rows - centre_y) ** 2 <= radius**2


def _rectangle(size: int, top: int, left: int, height: int, width: int) -> np.ndarray:
    mask = np.zeros((size, size), dtype=bool)
    mask[top : top + height, left : left + width] = True
    return mask


def test_jaccard_and_dice_of_overlapping_squares():
    pred = _rectangle(10, 0, 0, 4, 4)  # 16 px
    ref = _rectangle(10, 2, 2, 4, 4)  # 16 px, 4 shared
    assert jaccard(pred, ref) == pytest.approx(4 / 28)
    assert dice(pred, ref) == pytest.approx(8 / 32)


def test_overlap_is_vectorised_over_leading_axes_and_defines_empty_as_perfect():
    square = _rectangle(8, 1, 1, 4, 4)
    empty = np.zeros((8, 8), dtype=bool)
    pred = np.stack([np.stack([square, empty]), np.stack([square, square])])  # (2 images, 2 objects, H, W)
    ref = np.stack([np.stack([square, empty]), np.stack([empty, _rectangle(8, 1, 1, 2, 4)])])
    np.testing.assert_allclose(jaccard(pred, ref), [[1.0, 1.0], [0.0, 0.5]])
    np.testing.assert_allclose(dice(pred, ref), [[1.0, 1.0], [0.0, 2 / 3]])


def test_overlap_rejects_non_boolean_or_mismatched_masks():
    with pytest.raises(ValueError, match="boolean"):
        jaccard(np.ones((4, 4), np.uint8), np.ones((4, 4), np.uint8))
    with pytest.raises(ValueError, match="same shape"):
        dice(np.ones((4, 4), bool), np.ones((4, 5), bool))


@pytest.mark.parametrize("grow", [2, 5, 10])
def test_contour_distance_of_concentric_disks_is_the_radius_difference(grow):
    inner, outer = _disk(256, 128, 128, 60), _disk(256, 128, 128, 60 + grow)
    distance = mean_contour_distance(inner, outer, pixel_mm=0.35)
    assert distance == pytest.approx(grow * 0.35, rel=0.08)


@pytest.mark.parametrize("shift", [4, 10])
def test_contour_distance_of_shifted_disk(shift):
    # each contour point of a circle lies |shift * cos(angle)| from the shifted circle (to first
    # order), whose mean over the circle is 2 * shift / pi: a shift of d is ~0.64 d, not d
    disk, shifted = _disk(256, 128, 128, 60), _disk(256, 128 + shift, 128, 60)
    distance = mean_contour_distance(disk, shifted, pixel_mm=1.0)
    assert distance == pytest.approx(2 * shift / math.pi, rel=0.08)
    assert mean_contour_distance(shifted, disk, pixel_mm=1.0) == pytest.approx(distance, abs=1e-12)


def test_contour_distance_is_zero_for_equal_masks_and_handles_empty_ones():
    square = _rectangle(16, 3, 3, 8, 8)
    empty = np.zeros_like(square)
    assert mean_contour_distance(square, square, pixel_mm=0.35) == 0.0
    assert mean_contour_distance(empty, empty, pixel_mm=0.35) == 0.0
    assert mean_contour_distance(square, empty, pixel_mm=0.35) == math.inf


def test_contour_distance_of_nested_squares_is_exact():
    small, large = _rectangle(16, 6, 6, 4, 4), _rectangle(16, 4, 4, 8, 8)
    # small -> large: all 12 contour pixels lie 2 px inside the large contour.
    # large -> small: of its 28 contour pixels, 16 face the small square's sides (2 px), the 8 beside
    # the corners are sqrt(5) from the small square's corners, the 4 corners 2 * sqrt(2).
    large_to_small = (16 * 2 + 8 * math.sqrt(5) + 4 * 2 * math.sqrt(2)) / 28
    expected = (2.0 + large_to_small) / 2
    assert mean_contour_distance(small, large, pixel_mm=1.0) == pytest.approx(expected, rel=1e-6)


def test_scr_pixel_size_scales_with_resolution():
    assert scr_pixel_mm(1024) == 0.35
    assert scr_pixel_mm(256) == pytest.approx(1.4)


def test_pixel_error_counts_a_pixel_once_whatever_labels_disagree():
    ref = np.zeros((5, 4, 5), dtype=bool)
    ref[0, :2, :2] = True  # right lung
    ref[3, 0, :3] = True  # right clavicle over the lung
    pred = ref.copy()
    assert pixel_error(pred, ref) == 0.0
    pred[0, 0, 0] = False  # lung wrong at (0, 0)
    pred[3, 0, 0] = False  # clavicle also wrong at (0, 0): still one pixel
    pred[2, 3, 4] = True  # heart wrong at (3, 4)
    assert pixel_error(pred, ref) == pytest.approx(2 / 20)
    assert pixel_error(~ref, ref) == 1.0


def test_pixel_error_wants_one_label_stack():
    with pytest.raises(ValueError, match="labels, H, W"):
        pixel_error(np.zeros((4, 4), bool), np.zeros((4, 4), bool))


def test_summarise_uses_sample_standard_deviation():
    assert summarise([1.0, 2.0, 3.0, 4.0]) == {"mean": 2.5, "sd": pytest.approx(1.2909944487), "n": 4}
    single = summarise([0.9])
    assert single["mean"] == 0.9 and math.isnan(single["sd"]) and single["n"] == 1
