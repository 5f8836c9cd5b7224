"""Section Google expert labels: the classifier's AUCs and the radiologists' operating points on Google's
adjudicated labels for NIH beside the published ones, and the ROC curves with every reader as a point
(results/expert_labels/scores.json, plots/expert_labels_roc.csv, plots/expert_labels_readers.csv)."""

from __future__ import annotations

import textwrap
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from cxrbench import artefacts, published
from cxrbench.report.comparison import (
    OURS,
    Beside,
    Published,
    cell_text,
    comparison_table,
    our_split_name,
    published_source,
)
from cxrbench.report.document import Report
from cxrbench.report.run import Run

EXPERT_SPLIT = "google_test"
# The stage's finding names -> the published tables' (and Google's files') spelling.
FINDING_NAMES = {"Fracture": "Fracture", "Pneumothorax": "Pneumothorax", "Airspace_Opacity": "Airspace opacity",
                 "Nodule_Mass": "Nodule/mass", "Abnormal": "Abnormal"}
SET_NAMES = {"four_findings": "four-findings test set", "all_findings": "all-findings test set (PA)"}
PANELS = [("four_findings", "Pneumothorax"), ("four_findings", "Airspace_Opacity"), ("four_findings", "Nodule_Mass"),
          ("four_findings", "Fracture"), ("all_findings", "Abnormal")]
COLUMNS = ["finding", "metric", "source", "split", "value", "95% CI", "ours - published", "comparable", "note"]


def section(report: Report, run: Run) -> None:
    report.heading("Google expert labels")
    expert = run.json(artefacts.RESULTS_EXPERT_LABELS / artefacts.SCORES)
    report.figure(expert_roc_figure(run.csv(artefacts.PLOT_EXPERT_LABELS_ROC),
                                    run.csv(artefacts.PLOT_EXPERT_LABELS_READERS, dtype={"reader": str}), expert,
                                    synthetic=run.synthetic),
                  "ROC curves against the expert labels, with the individual radiologists as points", "expert-roc")
    both = run.csv(artefacts.RESULTS_EXPERT_LABELS / "label_sets.csv")
    report.figure(label_sets_figure(both), "The same scores on the same test images, against the experts' labels and "
                  "against NIH's (95% bootstrap intervals): the gap is what NIH's label noise does to an AUC",
                  "expert-vs-nih-labels")
    report.table(expert_labels_table(expert, synthetic=run.synthetic), "Classifier against the adjudicated expert labels")
    report.table(both.round(3), "AUC against the experts' labels and against NIH's, per finding", folded=True)


def _expert_rows(metrics: dict[str, Any], synthetic: bool) -> list[dict[str, Any]]:
    """Our results in the expert-label table's long form (kind: 'model' or 'radiologists')."""
    split = our_split_name(EXPERT_SPLIT, synthetic)
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
    blocks = []
    for finding in FINDING_NAMES.values():
        own = [row for row in ours if row["finding"] == finding]
        papers = []
        for _, paper in rows_of_paper[rows_of_paper["label"] == finding].iterrows():
            kind = "radiologists" if paper["method"] == "radiologists" else "model"
            same = [row["value"] for row in own if row["metric"] == paper["metric"] and row["kind"] == kind]
            papers.append(Published({"finding": finding, "metric": paper["metric"], "source": published_source(paper),
                                     "split": paper["split"], "value": paper["value"], "95% CI": "",
                                     "note": cell_text(paper["note"]),
                                     "ours - published": same[0] - paper["value"] if len(same) == 1 else np.nan}))
        blocks.append(Beside(own, papers, _left_out_caveat(metrics, finding)))
    return comparison_table(blocks, COLUMNS, our_split=EXPERT_SPLIT, synthetic=synthetic)


def expert_roc_figure(roc: pd.DataFrame, readers: pd.DataFrame, metrics: dict[str, Any], *, synthetic: bool):
    """ROC curves of the classifier against the expert labels, one panel per finding, with every reader's
    operating point, the pooled reads and the published operating points (plots/expert_labels_roc.csv and
    plots/expert_labels_readers.csv)."""
    fig, axes = plt.subplots(2, 3, figsize=(8.6, 6.0))
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
        ax.set_title(f"{name}: {SET_NAMES[set_name]}, {metrics[set_name]['images']} images{score_line}", fontsize=7.5)
        ax.legend(fontsize=6, loc="lower right")
    fig.suptitle(f"Classifier against Google's expert labels (split: {our_split_name(EXPERT_SPLIT, synthetic)})",
                 fontsize=10)
    fig.tight_layout()
    return fig


def label_sets_figure(both: pd.DataFrame):
    """Per finding, the AUC (and interval) of the same scores against the experts' and against NIH's labels
    (results/expert_labels/label_sets.csv)."""
    rows = both.iloc[::-1].reset_index(drop=True)
    y = np.arange(len(rows))
    fig, ax = plt.subplots(figsize=(5.4, 0.3 * len(rows) + 1.4))
    for offset, (name, marker, colour) in zip((0.15, -0.15), (("expert", "o", "black"), ("nih", "s", "tab:orange"))):
        auc = rows[f"auc_{name}"].to_numpy(np.float64)
        low, high = rows[f"auc_{name}_ci_low"].to_numpy(np.float64), rows[f"auc_{name}_ci_high"].to_numpy(np.float64)
        ax.errorbar(auc, y + offset, xerr=np.vstack([auc - low, high - auc]).clip(min=0), fmt=marker, color=colour,
                    capsize=2, label={"expert": "against the experts", "nih": "against NIH's labels"}[name])
    labels = [f"{'all findings: ' if r.set == 'all_findings' else ''}{FINDING_NAMES.get(r.finding, r.finding)} "
              f"({r.images})" for r in rows.itertuples()]
    ax.axvline(0.5, color="grey", lw=0.6, ls=":")
    ax.set(yticks=y, yticklabels=labels, xlim=(0, 1.02), xlabel="ROC AUC (95% CI)")
    ax.set_title("One model, two reference standards (images)", pad=20)
    ax.legend(fontsize=8, loc="lower center", bbox_to_anchor=(0.5, 1.0), ncols=2, frameon=False)  # hides no point
    fig.tight_layout()
    return fig
