"""JSRT nodule tasks: what the split, training and evaluation stages share (the report's section is in
cxrbench.report.nodules, so that these stages do not depend on the metrics and plotting code).

Two classification tasks, each cross-validated by case (data/splits/jsrt_nodules.csv):
    nodule       nodule vs no nodule, every case, scored by the heat-map model's peak (the usual CAD image score);
    malignancy   malignant vs benign, the nodule cases only, scored by a small DenseNet on the nodule's region of
                 interest (the store's full-resolution crop at the metadata centre, see decode_jsrt), as JSRT
                 malignancy is classified on nodule ROIs.
And nodule localisation: a MONAI U-Net predicts a heat map with a Gaussian blob at each nodule's centre (the
metadata x, y on the 2048 grid, scaled to the store's size; the blob's sigma is the nodule's radius, from
size_mm at 0.175 mm per pixel). The local maxima of the heat map become scored candidates, scored by FROC
against the nodule centres (a candidate hits a nodule within the nodule's radius).

Coordinates: store pixel j covers JSRT pixels [j * f, (j + 1) * f) with f = 2048 / size, so JSRT pixel
coordinate x maps to (x + 0.5) / f - 0.5 in store pixels and back.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from cxrbench.vocabulary import JSRT_PIXEL_MM, JSRT_SIZE

TASKS = ("nodule", "malignancy")
FP_PER_IMAGE = (1.0, 2.0, 4.0)  # the benchmark's FROC operating points (false positives per image)


def task_models(networks: dict[str, Any]) -> dict[str, str]:
    """What scores each task, named by the networks in models/nodules/config.json."""
    return {"nodule": f"{networks['heatmap']['name']} heat map (peak response)",
            "malignancy": f"{networks['classifier']['name']} on the nodule ROI"}


def task_cases(index: pd.DataFrame, task: str) -> pd.DataFrame:
    """A task's cases from the JSRT store index: case, row (in the store) and label (0/1), in index order."""
    nodule = index["nodule"].astype(bool).to_numpy()
    if task == "nodule":
        cases, label = index, nodule
    elif task == "malignancy":
        cases = index[nodule]
        label = cases["malignancy"].eq("malignant").to_numpy()
    else:
        raise ValueError(f"unknown task {task!r}; known: {TASKS}")
    return pd.DataFrame({"case": cases["case"].to_numpy(), "row": cases["row"].to_numpy(np.int64),
                         "label": label.astype(np.int64)})


def jsrt_pixels_per_store_pixel(size: int) -> float:
    return JSRT_SIZE / size


def to_store_coords(jsrt_xy: np.ndarray, size: int) -> np.ndarray:
    return (np.asarray(jsrt_xy, dtype=np.float64) + 0.5) / jsrt_pixels_per_store_pixel(size) - 0.5


def to_jsrt_coords(store_xy: np.ndarray, size: int) -> np.ndarray:
    return (np.asarray(store_xy, dtype=np.float64) + 0.5) * jsrt_pixels_per_store_pixel(size) - 0.5


def nodule_radius_jsrt_px(size_mm: np.ndarray) -> np.ndarray:
    """Nodule radius in JSRT pixels (0.175 mm) from its diameter in millimetres."""
    return np.asarray(size_mm, dtype=np.float64) / 2 / JSRT_PIXEL_MM


def nodule_truths(index: pd.DataFrame) -> pd.DataFrame:
    """The nodules as FROC truths on the 2048 grid: image (case), x, y, radius_px, subtlety."""
    nodules = index[index["nodule"].astype(bool)]
    return pd.DataFrame({
        "image": nodules["case"].to_numpy(),
        "x": nodules["x"].to_numpy(np.float64),
        "y": nodules["y"].to_numpy(np.float64),
        "radius_px": nodule_radius_jsrt_px(nodules["size_mm"]),
        "subtlety": nodules["subtlety"].to_numpy(np.int64),
    })


@dataclass(frozen=True)
class HeatmapTargets:
    """Per store row: the blob centre in store pixels (NaN for a case without a nodule) and its sigma."""

    centre_x: np.ndarray
    centre_y: np.ndarray
    sigma: np.ndarray

    @classmethod
    def from_index(cls, index: pd.DataFrame, size: int, min_sigma: float = 1.0) -> HeatmapTargets:
        """Targets for every row of the store (index sorted by row); sigma = nodule radius, at least
        `min_sigma` store pixels so that the smallest nodules still cover a few pixels."""
        index = index.sort_values("row")
        nodule = index["nodule"].astype(bool).to_numpy()
        x = np.where(nodule, index["x"].to_numpy(np.float64, na_value=np.nan), np.nan)
        y = np.where(nodule, index["y"].to_numpy(np.float64, na_value=np.nan), np.nan)
        radius = nodule_radius_jsrt_px(index["size_mm"].to_numpy(np.float64, na_value=np.nan))
        sigma = np.fmax(radius / jsrt_pixels_per_store_pixel(size), min_sigma)
        return cls(to_store_coords(x, size), to_store_coords(y, size), np.where(nodule, sigma, min_sigma))

    def render(self, rows: np.ndarray, ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
        """Heat maps of the store rows `rows` over the pixel windows ys (n, h) x xs (n, w), float32 (n, h, w):
        exp(-d^2 / 2 sigma^2) around each centre, zero without a nodule. Separable: the outer product of one
        Gaussian per axis."""
        sigma = self.sigma[rows, None]
        along_y = np.exp(-((ys - self.centre_y[rows, None]) ** 2) / (2 * sigma**2))
        along_x = np.exp(-((xs - self.centre_x[rows, None]) ** 2) / (2 * sigma**2))
        maps = along_y[:, :, None] * along_x[:, None, :]
        return np.nan_to_num(maps, nan=0.0).astype(np.float32)


def find_candidates(logits: torch.Tensor, max_per_image: int, min_distance: float) -> pd.DataFrame:
    """Scored nodule candidates from heat-map logits of shape (n, S, S).

    A candidate is a local maximum: the highest logit within `min_distance` store pixels (a square window of
    half-width floor(min_distance)). Each image keeps its `max_per_image` best; of equal maxima closer than
    `min_distance` (a plateau) only the best-ranked survives. Returns item (0..n-1, the image's position in
    `logits`), x, y (store pixels) and score (the sigmoid of the logit), best first within each image.
    """
    n, height, width = logits.shape
    window = 2 * int(min_distance) + 1
    logits = logits.float()
    pooled = F.max_pool2d(logits[:, None], window, stride=1, padding=window // 2)[:, 0]
    peaks = torch.where(logits == pooled, logits, torch.tensor(-torch.inf))
    values, flat = peaks.flatten(1).topk(min(max_per_image, height * width), dim=1)  # sorted: best first
    y, x = torch.div(flat, width, rounding_mode="floor"), flat % width
    # two maxima within min_distance lie in each other's window, so they can only be a tie: keep the first
    dx, dy = (x[:, :, None] - x[:, None, :]).float(), (y[:, :, None] - y[:, None, :]).float()
    close = torch.hypot(dx, dy) <= min_distance
    ranked_before = torch.ones(values.shape[1], values.shape[1], dtype=torch.bool).triu(diagonal=1)
    keep = torch.isfinite(values) & ~(close & ranked_before).any(dim=1)
    item = torch.arange(n)[:, None].expand_as(values)
    return pd.DataFrame({
        "item": item[keep].numpy().astype(np.int64),
        "x": x[keep].numpy().astype(np.float64),
        "y": y[keep].numpy().astype(np.float64),
        "score": torch.sigmoid(values[keep]).numpy().astype(np.float64),
    })
