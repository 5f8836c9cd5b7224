"""Section NIH ChestX-ray14 classification: per-class AUC beside the published results, ROC curves, the
reliability of the probabilities, AUC and underdiagnosis by subgroup, the classifier on the JSRT images (external
validation, when the run has JSRT), and test images with their labels and top
prediction (results/classifier/: auc.json, subgroups.json and the tables; plots/classifier_roc.csv,
metrics/calibration.json, plots/classifier_reliability.csv, metrics/external_jsrt.json)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from cxrbench import artefacts, store
from cxrbench.metrics.roc import roc_curve_points
from cxrbench.published import MEAN_LABEL
from cxrbench.published import load as load_published
from cxrbench.report import leaderboard
from cxrbench.report.comparison import OURS, Beside, Published, comparison_table
from cxrbench.report.datasets import nih_split_name
from cxrbench.report.document import Report
from cxrbench.report.run import Run
from cxrbench.vocabulary import LABELS


def section(report: Report, run: Run) -> None:
    report.heading("NIH ChestX-ray14 classification")
    leaderboard.section(report, run, "classifier")
    report.paragraph(f"The baseline ({run.network_name(artefacts.MODEL_CLASSIFIER)}, master seed) beside the published "
                     "results, and the analyses below, are of train_classifier's model.")
    metrics = run.json(artefacts.RESULTS_CLASSIFIER / artefacts.CLASSIFIER_AUC)
    published = load_published(task="nih_classification")
    split = nih_split_name(run.nih_split)
    ci = (f"95% bootstrap CI, {metrics['bootstrap']['resamples']} resamples of "
          f"{metrics['bootstrap']['unit']}s")
    report.figure(forest_figure(metrics, published, split),
                  f"Per-class ROC AUC on {metrics['test_images']} test images ({ci}) and the published per-class "
                  "AUCs; hollow markers: another split than ours", "nih-forest")
    comparison = classifier_comparison(metrics, published, run.synthetic, split,
                                       run.network_name(artefacts.MODEL_CLASSIFIER))
    per_class = comparison[comparison[list(LABELS)].notna().any(axis=1)]
    report.table(by_class(per_class), "Per-class ROC AUC beside the published per-class results, a column per source",
                 folded=True)
    report.table(comparison[["source", "method", "split", "mean", "mean 95% CI", "comparable", "published - ours"]],
                 f"Mean ROC AUC beside every published mean ({ci})", folded=True)
    report.figure(roc_figure(run.csv(artefacts.PLOT_CLASSIFIER_ROC), metrics), "ROC curves on the test part",
                  "nih-roc")
    nih_images = store.open_array(store.find_images(run.path(artefacts.STORE_NIH)))
    predictions = run.csv(artefacts.RESULTS_CLASSIFIER / "predictions.csv")
    report.figure(nih_examples_figure(nih_images, predictions, run.nih_index),
                  "Test images with true labels and the top prediction", "nih-examples")
    calibration = run.json(artefacts.METRICS_CALIBRATION)
    report.figure(reliability_figure(run.csv(artefacts.PLOT_CLASSIFIER_RELIABILITY)),
                  f"Reliability of the probabilities ({calibration['bins']} equal-width bins): mean ECE "
                  + ", ".join(f"{part} {calibration[part]['mean_ece']:.3f} (Brier {calibration[part]['mean_brier']:.3f})"
                              for part in ("val", "test")), "nih-reliability")
    report.table(run.csv(artefacts.RESULTS_CLASSIFIER / "calibration.csv").round(4),
                 "Expected calibration error and Brier score per class")
    by_group = run.csv(artefacts.RESULTS_CLASSIFIER / "subgroups.csv", dtype={"group": str})
    groups = run.json(artefacts.RESULTS_CLASSIFIER / artefacts.SUBGROUPS)
    report.figure(subgroups_figure(by_group, groups),
                  "Test mean AUC by sex, age band, view and follow-ups (95% bootstrap CI over patients; hollow: too "
                  "few patients for an interval) and the underdiagnosis rate: of the images with a finding, the share "
                  f"called \"No Finding\" (no-finding score >= {groups['no_finding_threshold']}, chosen on validation)",
                  "nih-subgroups")
    if "jsrt" in run.datasets:
        external = run.json(artefacts.METRICS_EXTERNAL)
        report.figure(external_figure(run.csv(artefacts.RESULTS_EXTERNAL / "jsrt_scores.csv"), external),
                      f"External validation: JSRT nodule vs no nodule by the NIH classifier's {external['score']} "
                      f"(images brought to the NIH "
                      f"store's convention, {external['size']} px), overall and per subtlety against every case "
                      "without a nodule; 95% bootstrap CI over cases", "external-jsrt")
    report.table(by_group, "Test AUC per class and subgroup", folded=True)


def by_class(comparison: pd.DataFrame) -> pd.DataFrame:
    """Per-class AUCs turned for reading on a screen: the split, then a row per class and the mean, a column per
    source."""
    names = [f"{row['source']}: {row['method']}" if isinstance(row["method"], str) and row["method"] else row["source"]
             for _, row in comparison.iterrows()]
    turned = comparison[["split", *LABELS, "mean"]].set_axis(names).T
    return turned.rename_axis("class").reset_index().astype(object).fillna("–")


def forest_figure(metrics: dict, published: pd.DataFrame, our_split: str):
    """Our AUC and its interval per class (and the mean), with every published per-class AUC as a marker per
    paper; filled where the paper used our split, hollow where not."""
    classes = [*LABELS, MEAN_LABEL]
    y = np.arange(len(classes))[::-1]
    fig, ax = plt.subplots(figsize=(9, 0.42 * len(classes) + 1.6))
    ours = [metrics["per_class"][label]["auc"] for label in LABELS] + [metrics["mean_auc"]]
    low = [metrics["per_class"][label]["ci_low"] for label in LABELS] + [metrics["mean_auc_ci"][0]]
    high = [metrics["per_class"][label]["ci_high"] for label in LABELS] + [metrics["mean_auc_ci"][1]]
    ours, low, high = (np.array(v, dtype=float) for v in (ours, low, high))
    markers = "os^vD<>ph*XP"
    papers = published[published["label"].isin(classes)].groupby(["source", "method", "split"], sort=False,
                                                                   dropna=False)
    for number, ((source, method, split), rows) in enumerate(papers):
        values = dict(zip(rows["label"], rows["value"]))
        colour = f"C{number % 10}"
        name = f"{source}{', ' + method if isinstance(method, str) else ''} ({split})"
        ax.scatter([values.get(label, np.nan) for label in classes], y, marker=markers[number % len(markers)], s=30,
                   facecolors=colour if split == our_split else "none", edgecolors=colour, linewidths=1, label=name,
                   zorder=2)
    ax.errorbar(ours, y, xerr=np.vstack([ours - low, high - ours]).clip(min=0), fmt="o", color="black", ms=6,
                capsize=3, lw=1.6, label="ours (95% CI)", zorder=3)
    ax.axhline(0.5, color="grey", lw=0.6)
    ax.set(yticks=y, yticklabels=classes, xlabel="ROC AUC", title="NIH ChestX-ray14: per-class AUC")
    ax.grid(axis="x", lw=0.4, alpha=0.5)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1), frameon=False)
    return fig


def classifier_comparison(metrics: dict, published: pd.DataFrame, synthetic: bool, our_split: str,
                          network: str) -> pd.DataFrame:
    """Our per-class AUC beside every published row, with the split each used and the difference in mean."""
    ours = {"source": OURS, "method": network, "split": our_split,
            **{label: metrics["per_class"][label]["auc"] for label in LABELS},
            "mean": metrics["mean_auc"], "mean 95% CI": "{:.3f}-{:.3f}".format(*metrics["mean_auc_ci"])}
    papers = []
    for (source, method, split), group in published.groupby(["source", "method", "split"], sort=False, dropna=False):
        values = dict(zip(group["label"], group["value"]))
        mean = values.get(MEAN_LABEL, np.nan)
        papers.append(Published({"source": source, "method": method, "split": split,
                                 **{label: values.get(label, np.nan) for label in LABELS}, "mean": mean,
                                 "published - ours": round(mean - metrics["mean_auc"], 3)}))
    columns = ["source", "method", "split", *LABELS, "mean", "mean 95% CI", "comparable", "published - ours"]
    table = comparison_table([Beside([ours], papers)], columns, our_split=our_split, synthetic=synthetic)
    return table.astype({label: float for label in LABELS})


def roc_figure(roc: pd.DataFrame, metrics: dict):
    fig, ax = plt.subplots(figsize=(5, 4.6))
    for label, group in roc.groupby("class", sort=False):
        ax.plot(group["fpr"], group["tpr"], lw=1, label=f"{label} ({metrics['per_class'][label]['auc']:.2f})")
    ax.plot([0, 1], [0, 1], color="grey", ls=":")
    ax.set(xlabel="1 - specificity", ylabel="sensitivity", title="NIH test ROC curves (AUC)")
    ax.legend(fontsize=7, loc="lower right")
    return fig


def nih_examples_figure(images: np.ndarray, predictions: pd.DataFrame, index: pd.DataFrame, n: int = 8):
    row_of = dict(zip(index["image"], index["row"]))
    picks = predictions.iloc[np.linspace(0, len(predictions) - 1, n).astype(int)]
    fig, axes = plt.subplots(2, n // 2, figsize=(8.6, 5.6))
    for ax, (_, p) in zip(axes.ravel(), picks.iterrows()):
        ax.imshow(images[row_of[p["image"]]], cmap="gray")
        truth = [label for label in LABELS if p[label] == 1] or ["No Finding"]
        top = max(LABELS, key=lambda label: p[f"score_{label}"])
        ax.set_title(f"{p['image']}\ntrue: {', '.join(truth)}\ntop: {top} {p[f'score_{top}']:.2f}", fontsize=7)
        ax.axis("off")
    return fig


def reliability_figure(curves: pd.DataFrame):
    """Observed frequency against mean predicted probability per class, validation dashed, test solid."""
    fig, axes = plt.subplots(2, 7, figsize=(14, 4.4), sharex=True, sharey=True)
    for ax, label in zip(axes.flat, LABELS, strict=True):
        ax.plot([0, 1], [0, 1], color="grey", lw=0.8)
        for part, style in (("val", "--"), ("test", "-")):
            curve = curves[(curves["class"] == label) & (curves["part"] == part)]
            ax.plot(curve["mean_predicted"], curve["observed"], style, marker=".", label=part)
        ax.set_title(label, fontsize=8)
    axes[0, 0].legend(fontsize=7)
    fig.supxlabel("mean predicted probability")
    fig.supylabel("observed frequency")
    fig.tight_layout()
    return fig


def subgroups_figure(by_group: pd.DataFrame, groups: dict):
    """Per attribute and group: the mean AUC with its interval (hollow without one) and the underdiagnosis rate."""
    means = by_group[by_group["class"] == "mean"].iloc[::-1].reset_index(drop=True)
    y = np.arange(len(means))
    fig, (left, right) = plt.subplots(1, 2, figsize=(7.2, 0.28 * len(means) + 1.4), sharey=True,
                                      gridspec_kw={"width_ratios": [3, 2]})
    for attribute, colour in zip(means["attribute"].unique(), ("C0", "C1", "C2", "C3")):
        rows = means[means["attribute"] == attribute]
        at = y[rows.index]
        auc = rows["auc"].to_numpy(np.float64)
        interval = ~rows["small"].to_numpy(bool)
        left.errorbar(auc[interval], at[interval], fmt="o", color=colour, capsize=2,
                      xerr=np.vstack([auc - rows["ci_low"], rows["ci_high"] - auc])[:, interval].clip(min=0))
        left.scatter(auc[~interval], at[~interval], facecolors="none", edgecolors=colour)
        rates = [groups[attribute][group]["underdiagnosis_rate"] for group in rows["group"]]
        right.barh(at, [np.nan if rate is None else rate for rate in rates], color=colour)
    labels = [f"{r.attribute}: {r.group} ({r.images})" for r in means.itertuples()]
    left.axvline(0.5, color="grey", lw=0.6, ls=":")
    left.set(yticks=y, yticklabels=labels, xlim=(-0.02, 1.02), xlabel="mean ROC AUC (95% CI)",
             title="AUC by subgroup (images)")
    right.set(xlim=(0, 1), xlabel="images with a finding\ncalled \"No Finding\"", title="underdiagnosis")
    fig.tight_layout()
    return fig


def external_figure(scores: pd.DataFrame, metrics: dict):
    """The ROC curve of the classifier's nodule score on JSRT, and the AUC overall and per subtlety."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(6.4, 3.4), gridspec_kw={"width_ratios": [1, 1.3]})
    labels = scores["nodule"].to_numpy()
    if 0 < labels.sum() < len(labels):
        fpr, tpr, _ = roc_curve_points(labels, scores["score"].to_numpy(np.float64))
        left.plot(fpr, tpr, color="black", label=f"AUC {metrics['auc']:.3f}")
        left.legend(fontsize=8, loc="lower right")
    left.plot([0, 1], [0, 1], color="grey", ls=":", lw=0.8)
    left.set(xlabel="1 - specificity", ylabel="sensitivity", title=f"JSRT, {metrics['cases']} cases")
    rows = [("all nodules", metrics)] + [(f"subtlety {level}", m) for level, m in metrics["by_subtlety"].items()]
    y = np.arange(len(rows))[::-1]
    for at, (_, m) in zip(y, rows):
        if m["auc"] is None:
            continue
        low, high = (m["ci_low"], m["ci_high"]) if m["ci_low"] is not None else (m["auc"], m["auc"])
        right.errorbar([m["auc"]], [at], xerr=[[m["auc"] - low], [high - m["auc"]]], fmt="o", color="black", capsize=2)
    right.axvline(0.5, color="grey", lw=0.6, ls=":")
    right.set(yticks=y, yticklabels=[f"{name} ({m['positives']})" for name, m in rows], xlim=(-0.02, 1.02),
              xlabel="ROC AUC (95% CI)", title="by subtlety (nodules)")
    fig.tight_layout()
    return fig
