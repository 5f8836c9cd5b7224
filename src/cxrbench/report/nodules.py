"""Section JSRT nodules: FROC and ROC curves, held-out examples, then the split, AUC and FROC
tables and the comparison with the published JSRT results, from what split_jsrt, train_nodules and
evaluate_nodules wrote.

Every published JSRT nodule result used its paper's own protocol, none our k-fold split, so all of them are
labelled not comparable (cxrbench.report.comparison).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.patches import Circle

from cxrbench import artefacts, store
from cxrbench.metrics.froc import FrocCurve, sensitivity_at
from cxrbench.metrics.roc import roc_curve_points
from cxrbench.nodules import (
    FP_PER_IMAGE,
    jsrt_pixels_per_store_pixel,
    nodule_radius_jsrt_px,
    to_store_coords,
)
from cxrbench.published import load as load_published
from cxrbench.report import leaderboard
from cxrbench.report.comparison import Beside, Published, comparison_table, our_split_name
from cxrbench.report.document import Report
from cxrbench.report.run import Run

NODULE_SPLIT = "jsrt_nodule_folds"  # our split's name in the comparison (data/splits/jsrt_nodules.csv)

TASK_TITLES = {"nodule": "nodule vs no nodule", "malignancy": "malignant vs benign"}
# The observer study's Az of its lowest and highest subtlety groups (1: extremely subtle, 5: obvious)
_OBSERVER_STUDY_SUBTLETY = {"roc_az_lowest_subtlety_group": "1", "roc_az_highest_subtlety_group": "5"}


def froc_curve_from_table(curves: pd.DataFrame, group: str, n_nodules: int, n_images: int) -> FrocCurve:
    """A FROC curve back from results/nodules/froc.csv (one row per point, grouped)."""
    points = curves[curves["group"] == group]
    return FrocCurve(fp_per_image=points["fp_per_image"].to_numpy(), sensitivity=points["sensitivity"].to_numpy(),
                     thresholds=points["threshold"].to_numpy(), n_nodules=n_nodules, n_images=n_images)


def classification_table(metrics: dict[str, Any]) -> pd.DataFrame:
    rows = []
    for task, title in TASK_TITLES.items():
        m = metrics["classification"][task]
        rows.append({"task": title, "model": m["model"], "cases": m["cases"], "positives": m["positives"],
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
    """Every published JSRT nodule row beside our number for the same measure where we have one, the
    difference, and both splits: a row on another split than ours is labelled not comparable."""
    overall = froc_curve_from_table(curves, "all", metrics["nodules"], metrics["cases"])
    by_subtlety = metrics["classification"]["nodule_by_subtlety"]
    papers = []
    for row in published.itertuples(index=False):
        ours, ours_ci, measure = np.nan, "", ""
        if row.metric == "sensitivity_at_fp_per_image":
            ours = float(sensitivity_at(overall, [row.threshold])[0])
            measure = f"FROC sensitivity at {row.threshold:g} FP/image, all nodules"
        elif _OBSERVER_STUDY_SUBTLETY.get(row.metric) in by_subtlety:
            level = _OBSERVER_STUDY_SUBTLETY[row.metric]
            m = by_subtlety[level]
            ours, ours_ci = _number(m["auc"]), _interval(m["ci_low"], m["ci_high"])
            measure = f"heat-map peak AUC, subtlety {level} nodules vs cases without a nodule"
        papers.append(Published({"source": row.source, "method": row.method, "metric": row.metric,
                                 "FP/image": row.threshold, "published": row.value, "split": row.split, "ours": ours,
                                 "ours 95% CI": ours_ci, "ours - published": ours - row.value,
                                 "our measure": measure or "not measured",
                                 "our split": our_split_name(NODULE_SPLIT, synthetic)}))
    columns = ["source", "method", "metric", "FP/image", "published", "split", "ours", "ours 95% CI",
               "ours - published", "our measure", "our split", "comparable"]
    # our numbers sit in the published rows: no paper used our split, so there is no row of ours alone
    return comparison_table([Beside([], papers)], columns, our_split=NODULE_SPLIT, synthetic=synthetic)


def split_table(split_info: dict[str, Any]) -> pd.DataFrame:
    """Cases and positives per task and fold, from data/splits/jsrt_nodules.json."""
    return pd.DataFrame([{"task": task, "stratified by": info["strata"], "fold": fold, "cases": counts["cases"],
                          "positives": counts["positives"]}
                         for task, info in split_info["tasks"].items() for fold, counts in info["per_fold"].items()])


def froc_figure(curves: pd.DataFrame, published: pd.DataFrame) -> Figure:
    fig = Figure(figsize=(7, 4.6), layout="constrained")
    ax = fig.subplots()
    for group, points in curves.groupby("group", sort=False):
        ax.step(points["fp_per_image"], points["sensitivity"], where="post", label=f"ours: {group}",
                lw=2.2 if group == "all" else 1.0, color="black" if group == "all" else None)
    cad = published[published["metric"] == "sensitivity_at_fp_per_image"]
    for (source, method), points in cad.groupby(["source", "method"], sort=False):
        ax.plot(points["threshold"], points["value"], marker="o", ls="--", label=f"{source} ({method}), own protocol")
    for fp in FP_PER_IMAGE:
        ax.axvline(fp, color="grey", lw=0.5, ls=":")
    # the y axis starts a little below 0 so that a curve at sensitivity 0 is not hidden by it
    ax.set(xlabel="false positives per image", ylabel="sensitivity", ylim=(-0.02, 1.02),
           xlim=(0, max([8.0, *cad["threshold"]])), title="JSRT nodule FROC (out of fold)")
    fig.legend(fontsize=7, loc="outside right upper")  # beside the axes: it hides no curve
    return fig


def roc_figure(predictions: pd.DataFrame, metrics: dict[str, Any]) -> Figure:
    """The out-of-fold ROC curve of each classification task in `predictions` (results/nodules/predictions.csv),
    with its AUC from results/nodules/scores.json in the legend ("undefined" where it is: one class only)."""
    fig = Figure(figsize=(5.2, 4.6), layout="constrained")
    ax = fig.subplots()
    for task, title in TASK_TITLES.items():
        scored = predictions[predictions["task"] == task]
        if scored.empty:
            continue
        auc = metrics["classification"][task]["auc"]
        name = (f"{title}: AUC {auc:.3f}" if auc is not None else f"{title}: AUC undefined") + f", {len(scored)} cases"
        if scored["label"].nunique() == 2:
            false_positive_rate, true_positive_rate, _ = roc_curve_points(scored["label"].to_numpy(),
                                                                          scored["score"].to_numpy())
            ax.plot(false_positive_rate, true_positive_rate, lw=1.8, label=name)
        else:  # one class only: no curve to draw, the legend still names the task
            ax.plot([], [], label=name)
    ax.plot([0, 1], [0, 1], color="grey", lw=0.8, ls=":", label="chance")
    ax.set(xlabel="false positive rate (1 - specificity)", ylabel="true positive rate (sensitivity)",
           xlim=(-0.01, 1.01), ylim=(-0.01, 1.01), aspect="equal", title="JSRT nodule classification ROC (out of fold)")
    fig.legend(fontsize=8, loc="outside lower center")  # below the axes: it hides no curve
    return fig


def examples_figure(images: np.ndarray, index: pd.DataFrame, candidates: pd.DataFrame, n: int = 4,
                    shown: int = 3) -> Figure:
    """Held-out nodule cases from the most to the least obvious: the true nodule (circle) and the best
    `shown` candidates (crosses with their scores; green where they hit the nodule)."""
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


def section(report: Report, run: Run) -> None:
    report.heading("JSRT nodules")
    for task in ("nodule_heatmap", "nodule_classifier"):
        leaderboard.section(report, run, task)
    split_info = run.json(artefacts.SPLIT_JSRT_NODULES_INFO)
    metrics = run.json(artefacts.RESULTS_NODULES / artefacts.SCORES)
    curves = run.csv(artefacts.RESULTS_NODULES / "froc.csv")
    published = load_published(task="jsrt_nodules")
    folds = f"{metrics['folds']} folds by case, every case scored by the models that did not train on it"
    report.figure(froc_figure(curves, published),
                  "FROC curves of the heat-map candidates, overall and by subtlety, with published CAD points",
                  "jsrt-froc")
    report.figure(roc_figure(run.csv(artefacts.RESULTS_NODULES / "predictions.csv"), metrics),
                  f"ROC curves of the nodule classifications ({folds})", "jsrt-roc")
    jsrt_store = run.path(artefacts.STORE_JSRT)
    report.figure(examples_figure(store.open_array(store.find_images(jsrt_store)), run.jsrt_index,
                                  run.csv(artefacts.RESULTS_NODULES / "candidates.csv")),
                  "Held-out nodule cases: true nodule (red circle) and the best candidates (green: hit)",
                  "jsrt-examples")
    report.table(split_table(split_info), f"JSRT nodule split: stratified k-fold by case (seed {split_info['seed']}, "
                                          f"{split_info['folds']} folds per task)", folded=True)
    report.table(classification_table(metrics),
                 f"JSRT nodule classification: out-of-fold ROC AUC ({folds}), 95% bootstrap CI over cases")
    report.table(froc_table(metrics), f"JSRT nodule localisation: FROC sensitivity ({metrics['cases']} images, "
                                      f"{metrics['nodules']} nodules; a candidate hits within the nodule's radius)")
    report.table(published_table(published, metrics, curves, run.synthetic),
                 "Published JSRT nodule results beside ours (each paper used its own protocol: not comparable)")


def _number(value: float | None) -> float:
    return np.nan if value is None else float(value)


def _interval(low: float | None, high: float | None) -> str:
    return "" if low is None or high is None else f"{low:.3f}-{high:.3f}"
