"""Metrics: ROC AUC with bootstrap intervals, SCR overlap and contour distance, box localisation, FROC."""

from cxrbench.metrics.froc import FrocCurve, froc, sensitivity_at
from cxrbench.metrics.localisation import heatmap_to_boxes, iobb, iou, localisation_accuracy
from cxrbench.metrics.overlap import (
    dice,
    jaccard,
    mean_contour_distance,
    pixel_error,
    scr_pixel_mm,
    summarise,
)
from cxrbench.metrics.roc import (
    bootstrap_auc,
    operating_point,
    percentile_interval,
    resample_indices,
    roc_auc,
    roc_curve_points,
)

__all__ = [
    "FrocCurve",
    "bootstrap_auc",
    "dice",
    "froc",
    "heatmap_to_boxes",
    "iobb",
    "iou",
    "jaccard",
    "localisation_accuracy",
    "mean_contour_distance",
    "operating_point",
    "percentile_interval",
    "pixel_error",
    "resample_indices",
    "roc_auc",
    "roc_curve_points",
    "scr_pixel_mm",
    "sensitivity_at",
    "summarise",
]
