"""Report pieces for the localisation and expert-label evaluations: comparison tables and figures.

Each function takes what a stage wrote (metrics JSON as a dict, CSVs as DataFrames, or the stage's results
folder) and returns a pandas table or a matplotlib figure for `cxrbench.report.Report`. Every table row names
the split it used; a published row is comparable with ours only when it used the same split and our run used
real data, and its `comparable` cell says why not otherwise. Published rows from another split come last.
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.patches as patches  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from cxrbench import published  # noqa: E402
from cxrbench.vocabulary import BOX_LABELS  # noqa: E402

OURS = "cxrbench (this run)"
LOCALISATION_SPLIT = "bbox_list_2017"
EXPERT_SPLIT = "google_test"
BOX_SPACE = 1024  # BBox_List_2017 boxes are in the NIH images' 1024-pixel space (cxrbench.cam.BOX_SPACE)
OVERLAP_NAMES = {"iobb": "T(IoBB)", "iou": "T(IoU)"}
EXAMPLE_COLUMNS = 4  # a class's best and worst example sit side by side
MEASURE_NAMES = {"accuracy": "accuracy", "avg_fp": "avg false positives / image"}
# The stage's finding names -> the published tables' (and Google's files') spelling.
FINDING_NAMES = {"Fracture": "Fracture", "Pneumothorax": "Pneumothorax", "Airspace_Opacity": "Airspace opacity",
                 "Nodule_Mass": "Nodule/mass", "Abnormal": "Abnormal"}
SET_NAMES = {"four_findings": "four-findings test set", "all_findings": "all-findings test set (PA)"}
PANELS = [("four_findings", "Pneumothorax"), ("four_findings", "Airspace_Opacity"), ("four_findings", "Nodule_Mass"),
          ("four_findings", "Fracture"), ("all_findings", "Abnormal")]


def _text(value: Any) -> str:
    return "" if value is None or (isinstance(value, float) and np.isnan(value)) else str(value)


def _source(row: pd.Series) -> str:
    """'Wang et al. 2017, ChestX-ray14 model [P]': who, which model, and whether read in the primary source."""
    method = _text(row["method"])
    return f"{row['source']}{', ' + method if method else ''} [{row['marker']}]"


def comparability(published_split: str, our_split: str, synthetic: bool, caveat: str = "") -> str:
    if published_split != our_split:
        return f"no: different split ({published_split})"
    if synthetic:
        return "no: synthetic data"
    return f"no: {caveat}" if caveat else "yes"


def _our_split(split: str, synthetic: bool) -> str:
    return f"{split} (synthetic data)" if synthetic else split


def apart_last(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows on another split after the rest (stable otherwise)."""
    other_split = frame["comparable"].str.startswith("no: different split")
    return pd.concat([frame[~other_split], frame[other_split]], ignore_index=True)


def localisation_table(metrics: dict[str, Any], overlap: str = "iobb", *, synthetic: bool) -> pd.DataFrame:
    """Our accuracy and average false positives per image for the eight box classes at every threshold of
    `overlap` ('iobb': Wang et al.'s Table 19; 'iou'), each followed by the published rows at the same
    threshold and their difference from ours (ours - published)."""
    if overlap not in OVERLAP_NAMES:
        raise ValueError(f"overlap must be one of {sorted(OVERLAP_NAMES)}, got {overlap!r}")
    threshold_column = OVERLAP_NAMES[overlap]
    rows_of_paper = published.load(task="nih_localisation")
    left_out = metrics["left_out_outside_split"]["boxes"]
    caveat = f"{left_out} boxes outside our split" if left_out else ""
    rows: list[dict[str, Any]] = []
    for threshold in metrics["thresholds"][overlap]:
        key = format(threshold, "g")
        for measure, measure_name in MEASURE_NAMES.items():
            ours = {label: metrics["per_class"][label][overlap][key][measure] if metrics["per_class"][label]["boxes"]
                    else np.nan for label in BOX_LABELS}
            head = {threshold_column: threshold, "measure": measure_name}
            rows.append({**head, "source": OURS, "split": _our_split(LOCALISATION_SPLIT, synthetic),
                         "comparable": "", **ours, "note": ""})
            matching = rows_of_paper[(rows_of_paper["metric"] == f"{measure}_{overlap}")
                                     & np.isclose(rows_of_paper["threshold"], threshold)]
            for _, group in matching.groupby(["source", "method", "citation"], sort=False, dropna=False):
                values = dict(zip(group["label"], group["value"]))
                first = group.iloc[0]
                comparable = comparability(first["split"], LOCALISATION_SPLIT, synthetic, caveat)
                rows.append({**head, "source": _source(first), "split": first["split"], "comparable": comparable,
                             **{label: values.get(label, np.nan) for label in BOX_LABELS}, "note": _text(first["note"])})
                rows.append({**head, "source": f"ours - {first['source']}", "split": "", "comparable": comparable,
                             **{label: ours[label] - values.get(label, np.nan) for label in BOX_LABELS}, "note": ""})
    return apart_last(pd.DataFrame(rows))


def localisation_examples_figure(results_dir: str | Path):
    """Per class the best and the worst localised test image (by IoU): the radiograph, the class activation
    map, the ground-truth boxes (solid) and the detected boxes (dashed), from results/localisation/."""
    results_dir = Path(results_dir)
    examples = pd.read_csv(results_dir / "examples.csv")
    radiographs = np.load(results_dir / "example_images.npy")
    heatmaps = np.load(results_dir / "example_heatmaps.npy")
    boxes = pd.read_csv(results_dir / "boxes.csv")
    columns = min(EXAMPLE_COLUMNS, len(examples))
    rows = -(-len(examples) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(3.2 * columns, 3.4 * rows), squeeze=False)
    scale = radiographs.shape[-1] / BOX_SPACE
    for ax in axes.ravel():
        ax.axis("off")
    for ax, example, radiograph, heatmap in zip(axes.ravel(), examples.itertuples(), radiographs, heatmaps):
        ax.imshow(radiograph, cmap="gray", vmin=0, vmax=255)
        ax.imshow(heatmap, cmap="jet", alpha=0.3, vmin=0, vmax=255)
        shown = boxes[(boxes["image"] == example.image) & (boxes["label"] == example.label)]
        for box in shown.itertuples():
            truth = box.kind == "truth"
            ax.add_patch(patches.Rectangle((box.x * scale, box.y * scale), box.w * scale, box.h * scale, fill=False,
                                           edgecolor="lime" if truth else "red", linestyle="-" if truth else "--",
                                           linewidth=1.5 if truth else 1.0))
        ax.set_title(f"{example.label}, {example.which}: {example.image}\nbest box IoU {example.iou:.2f}", fontsize=8)
    fig.suptitle("Class activation maps; green: true box, red dashed: detected boxes", fontsize=9)
    return fig


def _expert_rows(metrics: dict[str, Any], synthetic: bool) -> list[dict[str, Any]]:
    """Our results in the expert-label table's long form (kind: 'model' or 'radiologists')."""
    split = _our_split(EXPERT_SPLIT, synthetic)
    four, every = metrics["four_findings"], metrics["all_findings"]
    rows = []
    for finding, result in four["findings"].items():
        name = FINDING_NAMES[finding]
        if result["available"]:
            rows.append({"finding": name, "metric": "roc_auc", "kind": "model", "source": f"{OURS}: {result['score']}",
                         "split": split, "value": result["auc"], "95% CI": _interval(result),
                         "note": f"{result['images']} images, {result['positives']} positive"})
        else:
            rows.append({"finding": name, "metric": "roc_auc", "kind": "model", "source": OURS, "split": split,
                         "value": np.nan, "95% CI": "", "note": result["reason"]})
    for finding, result in four["readers_pooled"].items():
        rows += _reader_rows(FINDING_NAMES[finding], result, "radiologists, pooled first reads of the adjudication "
                             "panel", split, "the reference was adjudicated from these reads: optimistic")
    for result in every["abnormal"].values():
        rows.append({"finding": "Abnormal", "metric": "roc_auc", "kind": "model", "source": f"{OURS}: {result['score']}",
                     "split": split, "value": result["auc"], "95% CI": _interval(result),
                     "note": f"{result['images']} PA images, {result['positives']} abnormal"})
    pooled = every["comparison_radiologists"].get("pooled")
    if pooled:
        rows += _reader_rows("Abnormal", pooled, "comparison radiologists (2), pooled", split,
                             "the two readers outside the ground-truth majority")
    return rows


def _left_out_caveat(metrics: dict[str, Any], finding: str) -> str:
    """Why a set we scored only in part is not the published one (its labelled images outside our split)."""
    left_out = metrics["all_findings" if finding == "Abnormal" else "four_findings"]["left_out_outside_split"]
    return f"{left_out} labelled images outside our split" if left_out else ""


def _interval(result: dict[str, Any]) -> str:
    return "" if result["ci_low"] is None else f"{result['ci_low']:.3f}-{result['ci_high']:.3f}"


def _reader_rows(finding: str, result: dict[str, Any], source: str, split: str, note: str) -> list[dict[str, Any]]:
    return [{"finding": finding, "metric": metric, "kind": "radiologists", "source": source, "split": split,
             "value": result[metric], "95% CI": "", "note": f"{result['reads']} reads; {note}"}
            for metric in ("sensitivity", "specificity")]


def expert_labels_table(metrics: dict[str, Any], *, synthetic: bool) -> pd.DataFrame:
    """Our AUCs (with 95% bootstrap intervals) on Google's expert labels and the radiologists' pooled operating
    points, beside the published rows for the same finding and metric, with the difference (ours - published)
    where we have the same kind of result (model or radiologists)."""
    ours = _expert_rows(metrics, synthetic)
    rows_of_paper = published.load(task="google_expert_labels")
    table = []
    for finding in FINDING_NAMES.values():
        own = [row for row in ours if row["finding"] == finding]
        table += [{**row, "ours - published": np.nan, "comparable": ""} for row in own]
        for _, paper in rows_of_paper[rows_of_paper["label"] == finding].iterrows():
            kind = "radiologists" if paper["method"] == "radiologists" else "model"
            same = [row["value"] for row in own if row["metric"] == paper["metric"] and row["kind"] == kind]
            table.append({"finding": finding, "metric": paper["metric"], "kind": kind, "source": _source(paper),
                          "split": paper["split"], "value": paper["value"], "95% CI": "",
                          "note": _text(paper["note"]),
                          "ours - published": same[0] - paper["value"] if len(same) == 1 else np.nan,
                          "comparable": comparability(paper["split"], EXPERT_SPLIT, synthetic,
                                                      _left_out_caveat(metrics, finding))})
    columns = ["finding", "metric", "source", "split", "value", "95% CI", "ours - published", "comparable", "note"]
    return apart_last(pd.DataFrame(table)[columns])


def expert_roc_figure(roc: pd.DataFrame, readers: pd.DataFrame, metrics: dict[str, Any], *, synthetic: bool):
    """ROC curves of the classifier against the expert labels, one panel per finding, with every reader's
    operating point, the pooled reads and the published operating points (plots/expert_labels_roc.csv and
    plots/expert_labels_readers.csv)."""
    fig, axes = plt.subplots(2, 3, figsize=(12, 8.6))
    axes[-1, -1].axis("off")
    paper = published.load(task="google_expert_labels")
    for ax, (set_name, finding) in zip(axes.ravel(), PANELS):
        name = FINDING_NAMES[finding]
        results = (list(metrics["all_findings"]["abnormal"].values()) if set_name == "all_findings"
                   else [metrics["four_findings"]["findings"][finding]])
        curves = roc[(roc["set"] == set_name) & (roc["finding"] == finding)]
        for score, curve in curves.groupby("score", sort=False):
            auc = next(result["auc"] for result in results if result.get("score") == score)
            name_of_score = "" if len(results) == 1 else f" {score}"
            ax.plot(curve["fpr"], curve["tpr"], lw=1.2, label=f"model{name_of_score}: AUC {auc:.3f}")
        if curves.empty:
            reason = results[0].get("reason", "no ROC curve: one class only")
            ax.text(0.5, 0.45, textwrap.fill(f"model: {reason}", 32), ha="center", va="center", fontsize=8)
        points = readers[(readers["set"] == set_name) & (readers["finding"] == finding)]
        single, pooled = points[points["reader"] != "pooled"], points[points["reader"] == "pooled"]
        role = single["role"].iloc[0] if len(single) else "none"
        ax.scatter(single["fpr"], single["tpr"], s=14, color="tab:orange", alpha=0.7,
                   label=f"{len(single)} radiologists: {role}")
        ax.scatter(pooled["fpr"], pooled["tpr"], s=80, marker="*", color="tab:red", label="radiologists, pooled reads")
        for (source, method, split), group in paper[paper["label"] == name].groupby(["source", "method", "split"],
                                                                                     sort=False):
            values = dict(zip(group["metric"], group["value"]))
            if {"sensitivity", "specificity"} <= set(values):
                flag = "" if split == EXPERT_SPLIT and not synthetic else ", not comparable"
                ax.scatter(1 - values["specificity"], values["sensitivity"], s=40, color="black",
                           marker="P" if method == "radiologists" else "x", label=f"{source} {method} ({split}{flag})")
        ax.plot([0, 1], [0, 1], color="grey", ls=":", lw=0.8)
        single_score = len(results) == 1 and "score" in results[0]
        score_line = f"\nscore: {textwrap.shorten(results[0]['score'], 60)}" if single_score else ""
        ax.set(xlim=(0, 1), ylim=(0, 1.01), xlabel="1 - specificity", ylabel="sensitivity")
        ax.set_title(f"{name}: {SET_NAMES[set_name]}, {metrics[set_name]['images']} images{score_line}", fontsize=9)
        ax.legend(fontsize=6, loc="lower right")
    fig.suptitle(f"Classifier against Google's expert labels (split: {_our_split(EXPERT_SPLIT, synthetic)})",
                 fontsize=10)
    fig.tight_layout()
    return fig
