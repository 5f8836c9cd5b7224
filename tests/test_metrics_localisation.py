"""Box overlaps, heatmap-to-box conversion and Wang et al.'s localisation accuracy."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cxrbench.metrics.localisation import heatmap_to_boxes, iobb, iou, localisation_accuracy


def test_iou_and_iobb_hand_cases():
    gt = np.array([0.0, 0.0, 10.0, 10.0])
    overlapping = np.array([5.0, 5.0, 10.0, 10.0])  # 25 px shared, union 175
    inside = np.array([2.0, 2.0, 4.0, 2.0])  # wholly inside gt, area 8
    assert iou(gt, overlapping) == pytest.approx(25 / 175)
    assert iobb(gt, overlapping) == pytest.approx(25 / 100)
    assert iou(gt, inside) == pytest.approx(8 / 100)
    assert iobb(gt, inside) == 1.0  # intersection over the detected box, not over the union
    assert iobb(inside, gt) == pytest.approx(8 / 100)


def test_overlaps_are_zero_for_disjoint_touching_and_empty_boxes():
    gt = np.array([0.0, 0.0, 10.0, 10.0])
    assert iou(gt, [20.0, 0.0, 5.0, 5.0]) == 0.0
    assert iou(gt, [10.0, 0.0, 5.0, 5.0]) == 0.0  # shares an edge only
    assert iobb(gt, [3.0, 3.0, 0.0, 4.0]) == 0.0  # a zero-area detection localises nothing
    assert iou([0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]) == 0.0


def test_overlaps_broadcast_to_all_pairs():
    gts = np.array([[0, 0, 10, 10], [100, 100, 20, 20]], dtype=float)
    dets = np.array([[0, 0, 10, 10], [105, 105, 10, 10], [50, 50, 1, 1]], dtype=float)
    pairwise = iobb(gts[:, None], dets[None])
    assert pairwise.shape == (2, 3)
    np.testing.assert_allclose(pairwise, [[1, 0, 0], [0, 1, 0]])
    np.testing.assert_allclose(iou(gts[:, None], dets[None]), [[1, 0, 0], [0, 0.25, 0]])


def test_heatmap_to_boxes_thresholds_each_region_and_scales_to_the_image():
    heatmap = np.zeros((8, 8))
    heatmap[1:3, 1:4] = 1.0  # strong region: rows 1-2, columns 1-3
    heatmap[5:7, 5:6] = 0.5  # weak region: rows 5-6, column 5
    heatmap[6, 6] = 0.5  # diagonal neighbour joins the weak region (8-connectivity)
    boxes = heatmap_to_boxes(heatmap, threshold_frac=0.4, image_size=1024)  # 128 px per cell
    np.testing.assert_array_equal(boxes, [[128, 128, 384, 256], [640, 640, 256, 256]])
    strong_only = heatmap_to_boxes(heatmap, threshold_frac=0.9, image_size=1024)
    np.testing.assert_array_equal(strong_only, [[128, 128, 384, 256]])


def test_heatmap_to_boxes_with_two_thresholds_returns_each_box_once():
    heatmap = np.zeros((4, 4))
    heatmap[0, 0] = 1.0
    heatmap[2:4, 2:4] = 0.5
    # 60/255 keeps both regions, 180/255 only the corner: the corner box appears once
    boxes = heatmap_to_boxes(heatmap, image_size=4)
    np.testing.assert_array_equal(boxes, [[0, 0, 1, 1], [2, 2, 2, 2]])


def test_heatmap_to_boxes_of_a_constant_map_is_empty():
    assert heatmap_to_boxes(np.full((7, 7), 0.3)).shape == (0, 4)


def test_localisation_accuracy_and_false_positives_by_hand():
    gt = {
        "a.png": np.array([[0, 0, 100, 100]], dtype=float),
        "b.png": np.array([[0, 0, 100, 100], [500, 500, 100, 100]], dtype=float),
    }
    det = {
        # IoBB 1.0 with the gt box (a small box inside it) and one box far away
        "a.png": np.array([[10, 10, 20, 20], [800, 800, 50, 50]], dtype=float),
        # IoBB 0.3 with the first gt box: 30 of 100 px of a 10 x 10 box straddling its edge
        "b.png": np.array([[97, 0, 10, 10]], dtype=float),
    }
    result = localisation_accuracy(gt, det, metric="iobb", thresholds=[0.1, 0.25, 0.5])
    np.testing.assert_allclose(result["accuracy"], [2 / 3, 2 / 3, 1 / 3])
    # false positives: the far box always; the straddling box once T >= 0.3
    np.testing.assert_allclose(result["avg_fp"], [1 / 2, 1 / 2, 2 / 2])
    assert result["n_boxes"] == 3 and result["n_images"] == 2

    by_iou = localisation_accuracy(gt, det, metric="iou", thresholds=[0.03, 0.1])
    # IoU of the inner box is 400/10000 = 0.04, of the straddling one 30/10070
    np.testing.assert_allclose(by_iou["accuracy"], [1 / 3, 0])


def test_localisation_counts_images_without_detections_as_misses():
    gt = {"a.png": np.array([[0, 0, 10, 10]], dtype=float), "b.png": np.array([[0, 0, 10, 10]], dtype=float)}
    result = localisation_accuracy(gt, {"a.png": gt["a.png"]}, thresholds=[0.5])
    assert result["accuracy"].tolist() == [0.5] and result["avg_fp"].tolist() == [0.0]


def test_localisation_rejects_detections_on_images_without_ground_truth():
    gt = {"a.png": np.array([[0, 0, 10, 10]], dtype=float)}
    with pytest.raises(ValueError, match="without ground truth"):
        localisation_accuracy(gt, {"z.png": gt["a.png"]})
    with pytest.raises(ValueError, match="metric"):
        localisation_accuracy(gt, {}, metric="dice")


def test_perfect_and_displaced_detections_on_the_real_box_list(shared_nih):
    boxes = pd.read_csv(shared_nih / "BBox_List_2017.csv").rename(columns={"Bbox [x": "x", "h]": "h"})
    assert boxes["Finding Label"].value_counts().to_dict() == {
        "Atelectasis": 180, "Effusion": 153, "Cardiomegaly": 146, "Infiltrate": 123,
        "Pneumonia": 120, "Pneumothorax": 98, "Mass": 85, "Nodule": 79,
    }
    for label, rows in boxes.groupby("Finding Label"):
        gt = {image: group[["x", "y", "w", "h"]].to_numpy(float) for image, group in rows.groupby("Image Index")}
        perfect = localisation_accuracy(gt, gt, metric="iou", thresholds=[0.1, 0.5, 0.9])
        assert perfect["accuracy"].tolist() == [1.0, 1.0, 1.0], label
        assert perfect["avg_fp"].tolist() == [0.0, 0.0, 0.0], label
        assert perfect["n_images"] == rows["Image Index"].nunique()
        # each box moved diagonally past its own far corner no longer overlaps itself
        moved = {image: np.c_[b[:, :2] + b[:, 2:] + 1, b[:, 2:]] for image, b in gt.items()}
        missed = localisation_accuracy(gt, moved, metric="iobb", thresholds=[0.1])
        assert missed["accuracy"][0] < 0.1 and missed["avg_fp"][0] > 0.9, label
