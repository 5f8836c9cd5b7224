"""JSRT nodule tasks: what the split, training and evaluation stages share, and the report's pieces.

Two classification tasks, each cross-validated by case (data/splits/jsrt_nodules.csv):
    nodule       nodule vs no nodule, every case;
    malignancy   malignant vs benign, the nodule cases only.
And nodule localisation: a MONAI U-Net predicts a heat map with a Gaussian blob at each nodule's centre (the
metadata x, y on the 2048 grid, scaled to the store's size; the blob's sigma is the nodule's radius, from
size_mm at 0.175 mm per pixel). The local maxima of the heat map become scored candidates, scored by FROC
against the nodule centres (a candidate hits a nodule within the nodule's radius).

Coordinates: store pixel j covers JSRT pixels [j * f, (j + 1) * f) with f = 2048 / size, so JSRT pixel
coordinate x maps to (x + 0.5) / f - 0.5 in store pixels and back.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from monai.networks.nets import DenseNet, UNet

from cxrbench import store
from cxrbench.datasets import jsrt
from cxrbench.metrics.froc import FrocCurve, sensitivity_at

if TYPE_CHECKING:
    from matplotlib.figure import Figure

TASKS = ("nodule", "malignancy")
FP_PER_IMAGE = (1.0, 2.0, 4.0)  # the benchmark's FROC operating points (false positives per image)
JSRT_MAX = float(jsrt.MAX_VALUE)


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
    return jsrt.SIZE / size


def to_store_coords(jsrt_xy: np.ndarray, size: int) -> np.ndarray:
    return (np.asarray(jsrt_xy, dtype=np.float64) + 0.5) / jsrt_pixels_per_store_pixel(size) - 0.5


def to_jsrt_coords(store_xy: np.ndarray, size: int) -> np.ndarray:
    return (np.asarray(store_xy, dtype=np.float64) + 0.5) * jsrt_pixels_per_store_pixel(size) - 0.5


def nodule_radius_jsrt_px(size_mm: np.ndarray) -> np.ndarray:
    """Nodule radius in JSRT pixels (0.175 mm) from its diameter in millimetres."""
    return np.asarray(size_mm, dtype=np.float64) / 2 / jsrt.PIXEL_MM


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


def build_classifier(cfg: dict[str, Any]) -> torch.nn.Module:
    """MONAI DenseNet on one grey channel with one logit; init_features 64, growth_rate 32 and block_config
    (6, 12, 24, 16) make it DenseNet-121, smaller values a net that trains in seconds on a CPU."""
    return DenseNet(spatial_dims=2, in_channels=1, out_channels=1, init_features=cfg["init_features"],
                    growth_rate=cfg["growth_rate"], block_config=tuple(cfg["block_config"]))


def build_heatmap_model(cfg: dict[str, Any]) -> torch.nn.Module:
    """MONAI U-Net with one logit map. Batch norm (not MONAI's default instance norm) so that a model
    trained on patches normalises whole images at inference exactly as it did in training."""
    channels = tuple(cfg["channels"])
    return UNet(spatial_dims=2, in_channels=1, out_channels=1, channels=channels,
                strides=(2,) * (len(channels) - 1), num_res_units=cfg["res_units"], norm="batch")


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


@dataclass
class ReportPieces:
    """What the report shows for the JSRT nodule tasks: (caption, table) and (matplotlib figure, caption)."""

    tables: list[tuple[str, pd.DataFrame]] = field(default_factory=list)
    figures: list[tuple[Figure, str]] = field(default_factory=list)


MODEL_TITLES = {"nodule_classifier": ("nodule vs no nodule", "DenseNet classifier"),
                "nodule_heatmap": ("nodule vs no nodule", "heat-map U-Net (best candidate's score)"),
                "malignancy_classifier": ("malignant vs benign", "DenseNet classifier")}
# The observer study's Az of its lowest and highest subtlety groups (1: extremely subtle, 5: obvious)
_OBSERVER_STUDY_SUBTLETY = {"roc_az_lowest_subtlety_group": "1", "roc_az_highest_subtlety_group": "5"}


def froc_curve_from_table(curves: pd.DataFrame, group: str, n_nodules: int, n_images: int) -> FrocCurve:
    """A FROC curve back from results/nodules/froc.csv (one row per point, grouped)."""
    points = curves[curves["group"] == group]
    return FrocCurve(fp_per_image=points["fp_per_image"].to_numpy(), sensitivity=points["sensitivity"].to_numpy(),
                     thresholds=points["threshold"].to_numpy(), n_nodules=n_nodules, n_images=n_images)


def classification_table(metrics: dict[str, Any]) -> pd.DataFrame:
    rows = []
    for name, (task, model) in MODEL_TITLES.items():
        m = metrics["classification"][name]
        rows.append({"task": task, "model": model, "cases": m["cases"], "positives": m["positives"],
                     "AUC": _number(m["auc"]), "95% CI": _interval(m["ci_low"], m["ci_high"])})
    return pd.DataFrame(rows)


def froc_table(metrics: dict[str, Any]) -> pd.DataFrame:
    rows = []
    for group, m in metrics["froc"].items():
        sensitivities = {f"sensitivity at {fp} FP/image": _number(value)
                         for fp, value in m["sensitivity_at_fp_per_image"].items()}
        rows.append({"nodules": group, "count": m["nodules"], **sensitivities,
                     "max sensitivity": _number(m["max_sensitivity"])})
    return pd.DataFrame(rows)


def published_table(published: pd.DataFrame, metrics: dict[str, Any], curves: pd.DataFrame,
                    synthetic: bool) -> pd.DataFrame:
    """Every published JSRT nodule row beside our number for the same measure where we have one. All of
    them used the paper's own protocol, none our k-fold split, so none is directly comparable."""
    overall = froc_curve_from_table(curves, "all", metrics["nodules"], metrics["cases"])
    by_subtlety = metrics["classification"]["nodule_classifier_by_subtlety"]
    rows = []
    for row in published.itertuples(index=False):
        ours, ours_ci, measure = np.nan, "", ""
        if row.metric == "sensitivity_at_fp_per_image":
            ours = float(sensitivity_at(overall, [row.threshold])[0])
            measure = f"FROC sensitivity at {row.threshold:g} FP/image, all nodules"
        elif _OBSERVER_STUDY_SUBTLETY.get(row.metric) in by_subtlety:
            level = _OBSERVER_STUDY_SUBTLETY[row.metric]
            m = by_subtlety[level]
            ours, ours_ci = _number(m["auc"]), _interval(m["ci_low"], m["ci_high"])
            measure = f"classifier AUC, subtlety {level} nodules vs cases without a nodule"
        split_note = "paper's own protocol" if row.split == "paper_protocol" else f"split {row.split}"
        rows.append({"source": row.source, "method": row.method, "metric": row.metric,
                     "FP/image": row.threshold, "published": row.value, "ours": ours, "ours 95% CI": ours_ci,
                     "ours - published": ours - row.value, "our measure": measure or "not measured",
                     "comparable": f"no: {split_note}" + ("; synthetic data" if synthetic else "")})
    return pd.DataFrame(rows)


def froc_figure(curves: pd.DataFrame, published: pd.DataFrame) -> Figure:
    from matplotlib.figure import Figure  # matplotlib only where a report is drawn, not in training

    fig = Figure(figsize=(6.5, 4.5))
    ax = fig.subplots()
    for group, points in curves.groupby("group", sort=False):
        ax.step(points["fp_per_image"], points["sensitivity"], where="post", label=f"ours: {group}",
                lw=2.2 if group == "all" else 1.0, color="black" if group == "all" else None)
    cad = published[published["metric"] == "sensitivity_at_fp_per_image"]
    for (source, method), points in cad.groupby(["source", "method"], sort=False):
        ax.plot(points["threshold"], points["value"], marker="o", ls="--", label=f"{source} ({method}), own protocol")
    for fp in FP_PER_IMAGE:
        ax.axvline(fp, color="grey", lw=0.5, ls=":")
    ax.set(xlabel="false positives per image", ylabel="sensitivity", ylim=(0, 1.02),
           xlim=(0, max([8.0, *cad["threshold"]])), title="JSRT nodule FROC (out of fold)")
    ax.legend(fontsize=7, loc="lower right")
    return fig


def examples_figure(images: np.ndarray, index: pd.DataFrame, candidates: pd.DataFrame, n: int = 4,
                    shown: int = 3) -> Figure:
    """Held-out nodule cases from the most to the least obvious: the true nodule (circle) and the best
    `shown` candidates (crosses with their scores; green where they hit the nodule)."""
    from matplotlib.figure import Figure
    from matplotlib.patches import Circle

    nodule_cases = index[index["nodule"].astype(bool)].sort_values(["subtlety", "case"], ascending=[False, True])
    picks = nodule_cases.iloc[np.unique(np.linspace(0, len(nodule_cases) - 1, n).round().astype(int))]
    size = images.shape[-1]
    fig = Figure(figsize=(3.2 * len(picks), 3.6))
    for ax, case in zip(np.atleast_1d(fig.subplots(1, len(picks))), picks.itertuples(index=False)):
        ax.imshow(images[case.row], cmap="gray")
        centre = to_store_coords([case.x, case.y], size)
        radius = nodule_radius_jsrt_px(case.size_mm) / jsrt_pixels_per_store_pixel(size)
        ax.add_patch(Circle((centre[0], centre[1]), radius, fill=False, color="red", lw=1.2))
        best = candidates[candidates["case"] == case.case].nlargest(shown, "score")
        for cand in best.itertuples(index=False):
            x, y = to_store_coords([cand.x, cand.y], size)
            colour = "lime" if cand.hit else "yellow"
            ax.plot(x, y, "+", color=colour, ms=9, mew=1.5)
            ax.annotate(f"{cand.score:.2f}", (x, y), color=colour, fontsize=7, xytext=(3, 3),
                        textcoords="offset points")
        ax.set_title(f"{case.case}: subtlety {int(case.subtlety)}, {case.size_mm:g} mm", fontsize=8)
        ax.axis("off")
    return fig


def report_pieces(published: pd.DataFrame, *, synthetic: bool, root: Path = Path(".")) -> ReportPieces:
    """Tables and figures of the JSRT nodule results for the report, from the outputs of evaluate_nodules.

    `published` is `cxrbench.published.load(task="jsrt_nodules")`; `synthetic` marks the comparison as made
    on synthetic data. Reads metrics/nodules.json, results/nodules/ and the JSRT store under `root`.
    """
    metrics = json.loads((root / "metrics" / "nodules.json").read_text())
    curves = pd.read_csv(root / "results" / "nodules" / "froc.csv")
    candidates = pd.read_csv(root / "results" / "nodules" / "candidates.csv")
    jsrt_store = root / "data" / "store" / "jsrt"
    index = store.read_index(jsrt_store)
    folds = f"{metrics['folds']} folds by case, every case scored by the models that did not train on it"
    pieces = ReportPieces()
    pieces.tables.append((f"JSRT nodule classification: out-of-fold ROC AUC ({folds}), 95% bootstrap CI over cases",
                          classification_table(metrics)))
    pieces.tables.append((f"JSRT nodule localisation: FROC sensitivity ({metrics['cases']} images, "
                          f"{metrics['nodules']} nodules; a candidate hits within the nodule's radius)",
                          froc_table(metrics)))
    pieces.tables.append(("Published JSRT nodule results beside ours (each paper used its own protocol: "
                          "not comparable)", published_table(published, metrics, curves, synthetic)))
    pieces.figures.append((froc_figure(curves, published), "FROC curves of the heat-map candidates, overall and "
                           "by subtlety, with published CAD points"))
    pieces.figures.append((examples_figure(store.open_array(store.find_images(jsrt_store)), index, candidates),
                           "Held-out nodule cases: true nodule (red circle) and the best candidates (green: hit)"))
    return pieces


def _number(value: float | None) -> float:
    return np.nan if value is None else float(value)


def _interval(low: float | None, high: float | None) -> str:
    return "" if low is None or high is None else f"{low:.3f}-{high:.3f}"
