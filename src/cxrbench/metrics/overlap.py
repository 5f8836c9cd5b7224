"""Segmentation measures of the SCR benchmark (van Ginneken, Stegmann & Loog 2006).

Masks are boolean arrays (..., H, W). Overlap Omega is the Jaccard index TP / (TP + FP + FN); Dice is
2 TP / (2 TP + FP + FN); the mean absolute contour distance is in millimetres; the SCR site ranks
methods by pixel error, the share of pixels where any of the five label maps disagrees.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
from scipy.spatial import cKDTree

from cxrbench.vocabulary import SCR_MASK_SIZE, SCR_PIXEL_MM


def scr_pixel_mm(mask_size: int) -> float:
    """Pixel size in mm of an SCR mask (1024 px of 0.35 mm) resampled to `mask_size` x `mask_size`."""
    return SCR_PIXEL_MM * SCR_MASK_SIZE / mask_size


def merge_objects(masks: np.ndarray, members: list[list[int]]) -> np.ndarray:
    """(..., len(members), H, W) bool: per entry of `members`, the union of those object planes of the
    (..., k, H, W) `masks` (lung fields = right | left lung)."""
    return np.stack([np.logical_or.reduce(masks[..., planes, :, :], axis=-3) for planes in members], axis=-3)


def _check_masks(pred: np.ndarray, ref: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pred, ref = np.asarray(pred), np.asarray(ref)
    if pred.shape != ref.shape or pred.ndim < 2:
        raise ValueError(f"masks must have the same shape (..., H, W): got {pred.shape} and {ref.shape}")
    if pred.dtype != bool or ref.dtype != bool:
        raise ValueError(f"masks must be boolean (threshold them first): got {pred.dtype} and {ref.dtype}")
    return pred, ref


def _overlap_counts(pred: np.ndarray, ref: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(|pred & ref|, |pred| + |ref|) per mask, summed over the last two axes."""
    pred, ref = _check_masks(pred, ref)
    intersection = np.count_nonzero(pred & ref, axis=(-2, -1))
    sizes = np.count_nonzero(pred, axis=(-2, -1)) + np.count_nonzero(ref, axis=(-2, -1))
    return intersection, sizes


def jaccard(pred: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """Jaccard index (SCR's Omega) per mask over the leading axes; shape pred.shape[:-2].

    Two empty masks agree perfectly, so their Jaccard is defined as 1.0 (not 0/0).
    """
    intersection, sizes = _overlap_counts(pred, ref)
    union = sizes - intersection
    return np.where(union > 0, intersection / np.maximum(union, 1), 1.0)


def dice(pred: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """Dice coefficient per mask over the leading axes; shape pred.shape[:-2]. Empty vs empty is 1.0."""
    intersection, sizes = _overlap_counts(pred, ref)
    return np.where(sizes > 0, 2 * intersection / np.maximum(sizes, 1), 1.0)


def _boundary(mask: np.ndarray) -> np.ndarray:
    """Foreground pixels with a 4-neighbour in the background; outside the image counts as background."""
    cross = cv2.getStructuringElement(cv2.MORPH_CROSS, (3, 3))
    eroded = cv2.erode(mask.astype(np.uint8), cross, borderType=cv2.BORDER_CONSTANT, borderValue=0)
    return mask & ~eroded.astype(bool)


def _mean_distance(points: np.ndarray, to: np.ndarray) -> float:
    """Mean exact Euclidean distance (pixels) from each of the (n, 2) integer `points` to the nearest of `to`.

    A k-d tree over the contour's pixels: at SCR's 1024 px a distance transform of the whole image costs
    about 30 times as much. Exact in float64 (integer coordinates), so the metrics stay byte-identical."""
    distances, _ = cKDTree(to).query(points)
    return float(distances.mean(dtype=np.float64))


def mean_contour_distance(pred: np.ndarray, ref: np.ndarray, pixel_mm: float) -> float:
    """Symmetric mean absolute contour distance between two 2-D masks, in mm.

    Contours are the masks' boundary pixels (4-connected inner boundary). Each contour pixel's
    distance to the nearest pixel of the other contour is averaged per direction, and the result is
    the mean of the two directions: (mean_{a in dA} d(a, dB) + mean_{b in dB} d(b, dA)) / 2, times
    `pixel_mm` (0.35 at SCR's 1024 px; use `scr_pixel_mm(size)` at other sizes).
    Both masks empty gives 0.0; exactly one empty gives inf (the object was missed entirely, which a
    mean over images should show rather than silently skip).
    """
    pred, ref = _check_masks(pred, ref)
    if pred.ndim != 2:
        raise ValueError(f"mean_contour_distance takes one 2-D mask pair, got shape {pred.shape}")
    pred_contour, ref_contour = _boundary(pred), _boundary(ref)
    if not pred_contour.any() or not ref_contour.any():
        return 0.0 if pred_contour.any() == ref_contour.any() else math.inf
    pred_points, ref_points = np.argwhere(pred_contour), np.argwhere(ref_contour)
    pred_to_ref, ref_to_pred = _mean_distance(pred_points, ref_points), _mean_distance(ref_points, pred_points)
    return float((pred_to_ref + ref_to_pred) / 2 * pixel_mm)


def pixel_error(pred5: np.ndarray, ref5: np.ndarray) -> float:
    """The SCR site's pixel error: share of pixels where any label map disagrees with the reference.

    `pred5` and `ref5` are boolean (L, H, W) stacks of one image's label maps (L = 5 in SCR: right
    lung, left lung, heart, right clavicle, left clavicle; overlapping objects such as a clavicle over
    a lung are separate maps, so a pixel is wrong if any one of its memberships is wrong).
    """
    pred5, ref5 = _check_masks(pred5, ref5)
    if pred5.ndim != 3:
        raise ValueError(f"pixel_error takes one image's (labels, H, W) stacks, got shape {pred5.shape}")
    return float(np.mean(np.any(pred5 != ref5, axis=0)))


def summarise(values: np.ndarray) -> dict[str, float | int]:
    """{'mean', 'sd', 'n'} of per-image values, sd with ddof=1 as in 'mean (sd)' tables; sd is NaN for n < 2."""
    values = np.asarray(values, dtype=np.float64).ravel()
    if values.size == 0:
        raise ValueError("summarise needs at least one value")
    sd = float(values.std(ddof=1)) if values.size > 1 else math.nan
    return {"mean": float(values.mean()), "sd": sd, "n": int(values.size)}
