"""Weakly supervised localisation on NIH BBox_List_2017, as evaluated by Wang et al. 2017.

Wang et al., "ChestX-ray8: Hospital-scale chest X-ray database and benchmarks on weakly-supervised
classification and localization of common thorax diseases", CVPR 2017 (arXiv 1705.02315), turn a
class heatmap into boxes and score each ground-truth box by its overlap with the detected boxes,
either as IoU or as IoBB (intersection over the detected box's area). Boxes are (x, y, w, h) with
(x, y) the top-left corner, in the 1024 x 1024 pixel space of the NIH images.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import cv2
import numpy as np

# Wang et al. 2017 (Sec. 4, bounding-box generation) normalise the heatmap to [0, 255] and threshold
# it at 60 and at 180, taking boxes around the isolated regions of each binary map.
WANG_THRESHOLDS = (60 / 255, 180 / 255)
# The T(IoBB) values of Wang et al.'s localisation tables.
WANG_IOBB_THRESHOLDS = (0.1, 0.25, 0.5, 0.75, 0.9)


def heatmap_to_boxes(
    heatmap: np.ndarray,
    *,
    threshold_frac: float | Sequence[float] = WANG_THRESHOLDS,
    image_size: int = 1024,
) -> np.ndarray:
    """Boxes (m, 4) as float (x, y, w, h) in `image_size` pixel space from a 2-D class heatmap.

    Following Wang et al. 2017: min-max normalise the heatmap to [0, 1], keep the pixels >= each
    threshold fraction, and box every 8-connected region of each binary map. Boxes found at several
    thresholds are all returned, duplicates once. A heatmap of any resolution is scaled to the image
    (a box covers whole heatmap cells). A constant heatmap has no region and gives no boxes.
    """
    heatmap = np.asarray(heatmap, dtype=np.float64)
    if heatmap.ndim != 2 or not np.isfinite(heatmap).all():
        raise ValueError(f"heatmap must be a finite 2-D array, got shape {heatmap.shape}")
    low, high = heatmap.min(), heatmap.max()
    if high == low:
        return np.empty((0, 4))
    normalised = (heatmap - low) / (high - low)
    scale = np.array([image_size / heatmap.shape[1], image_size / heatmap.shape[0]] * 2)
    boxes = []
    for fraction in np.atleast_1d(threshold_frac):
        binary = (normalised >= fraction).astype(np.uint8)
        _, _, stats, _ = cv2.connectedComponentsWithStats(binary, connectivity=8)
        # row 0 is the background component
        boxes.append(stats[1:, [cv2.CC_STAT_LEFT, cv2.CC_STAT_TOP, cv2.CC_STAT_WIDTH, cv2.CC_STAT_HEIGHT]])
    stacked = np.concatenate(boxes).astype(np.float64) * scale
    _, first = np.unique(stacked, axis=0, return_index=True)
    return stacked[np.sort(first)]


def _intersection_area(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape[-1] != 4 or b.shape[-1] != 4:
        raise ValueError(f"boxes must be (..., 4) arrays of (x, y, w, h), got {a.shape} and {b.shape}")
    width = np.minimum(a[..., 0] + a[..., 2], b[..., 0] + b[..., 2]) - np.maximum(a[..., 0], b[..., 0])
    height = np.minimum(a[..., 1] + a[..., 3], b[..., 1] + b[..., 3]) - np.maximum(a[..., 1], b[..., 1])
    return np.clip(width, 0, None) * np.clip(height, 0, None)


def _area(boxes: np.ndarray) -> np.ndarray:
    boxes = np.asarray(boxes, dtype=np.float64)
    return boxes[..., 2] * boxes[..., 3]


def iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Intersection over union of (x, y, w, h) boxes, broadcast over leading axes.

    For all pairs use `iou(a[:, None], b[None])` -> (len(a), len(b)). Zero union gives 0.
    """
    intersection = _intersection_area(a, b)
    union = _area(a) + _area(b) - intersection
    return np.divide(intersection, union, out=np.zeros_like(intersection), where=union > 0)


def iobb(gt: np.ndarray, det: np.ndarray) -> np.ndarray:
    """Intersection over the DETECTED box's area (Wang et al.'s IoBB), broadcast over leading axes.

    A detected box of zero area gives 0.
    """
    intersection = _intersection_area(gt, det)
    det_area = np.broadcast_to(_area(det), intersection.shape)
    return np.divide(intersection, det_area, out=np.zeros_like(intersection), where=det_area > 0)


_OVERLAPS = {"iobb": iobb, "iou": iou}


def localisation_accuracy(
    gt_boxes_by_image: Mapping[str, np.ndarray],
    det_boxes_by_image: Mapping[str, np.ndarray],
    *,
    metric: str = "iobb",
    thresholds: Sequence[float] = WANG_IOBB_THRESHOLDS,
) -> dict[str, np.ndarray | int]:
    """Wang et al.'s localisation accuracy and average false positives for ONE class.

    `gt_boxes_by_image` maps each image that has ground-truth boxes of this class to its (m, 4)
    boxes; `det_boxes_by_image` maps images to the (d, 4) boxes detected from this class's heatmap
    (an image missing there has no detections). Only the ground-truth images are evaluated, as in
    Wang et al.; detections on any other image raise ValueError rather than being dropped silently.

    At threshold T, with overlap = `metric` ('iobb': intersection over the detected box's area,
    'iou': intersection over union):
    - a ground-truth box is correctly localised when some detected box on its image has overlap > T;
      accuracy = correctly localised ground-truth boxes / all ground-truth boxes;
    - a detected box is a false positive when its overlap with every ground-truth box on its image is
      <= T; avg_fp = false positives / number of evaluated images.

    Returns {'thresholds', 'accuracy', 'avg_fp'} (arrays over thresholds), 'n_boxes', 'n_images'.
    """
    if metric not in _OVERLAPS:
        raise ValueError(f"metric must be one of {sorted(_OVERLAPS)}, got {metric!r}")
    unexpected = sorted(set(det_boxes_by_image) - set(gt_boxes_by_image))
    if unexpected:
        raise ValueError(
            f"detections for {len(unexpected)} image(s) without ground truth of this class "
            f"(e.g. {unexpected[0]!r}); Wang et al. evaluate only images with ground-truth boxes"
        )
    if not gt_boxes_by_image:
        raise ValueError("no ground-truth boxes given")
    thresholds = np.asarray(thresholds, dtype=np.float64)
    overlap = _OVERLAPS[metric]
    best_per_gt, best_per_det = [], []
    for image, gt in gt_boxes_by_image.items():
        gt = np.asarray(gt, dtype=np.float64).reshape(-1, 4)
        det = np.asarray(det_boxes_by_image.get(image, np.empty((0, 4))), dtype=np.float64).reshape(-1, 4)
        pairwise = overlap(gt[:, None], det[None])  # (m, d)
        best_per_gt.append(pairwise.max(axis=1, initial=0.0))
        best_per_det.append(pairwise.max(axis=0, initial=0.0))
    best_gt = np.concatenate(best_per_gt)
    best_det = np.concatenate(best_per_det)
    correct = (best_gt[None] > thresholds[:, None]).sum(axis=1)
    false_positives = (best_det[None] <= thresholds[:, None]).sum(axis=1)
    return {
        "thresholds": thresholds,
        "accuracy": correct / len(best_gt),
        "avg_fp": false_positives / len(gt_boxes_by_image),
        "n_boxes": len(best_gt),
        "n_images": len(gt_boxes_by_image),
    }
