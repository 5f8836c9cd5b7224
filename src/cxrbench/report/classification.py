"""Section NIH ChestX-ray14 classification: per-class AUC beside the published results, ROC curves, the
reliability of the probabilities, and test images with their labels and top prediction (metrics/classifier.json,
plots/classifier_roc.csv, metrics/calibration.json, plots/classifier_reliability.csv, results/classifier/)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from cxrbench import artefacts, store
from cxrbench.published import MEAN_LABEL
from cxrbench.published import load as load_published
from cxrbench.report.comparison import OURS, Beside, Published, comparison_table
from cxrbench.report.datasets import nih_split_name
from cxrbench.report.document import Report
from cxrbench.report.run import Run
from cxrbench.vocabulary import LABELS


def section(report: Report, run: Run) -> None:
    report.heading("NIH ChestX-ray14 classification")
    metrics = run.json(artefacts.METRICS_CLASSIFIER)
    published = load_published(task="nih_classification")
    report.table(classifier_comparison(metrics, published, run.synthetic, nih_split_name(run.nih_split),
                                       run.network_name(artefacts.MODEL_CLASSIFIER)),
                 f"Per-class ROC AUC on {metrics['test_images']} test images (95% bootstrap CI of the mean, "
                 f"{metrics['bootstrap']['resamples']} resamples of {metrics['bootstrap']['unit']}s) beside published results")
    report.figure(roc_figure(run.csv(artefacts.PLOT_CLASSIFIER_ROC), metrics), "ROC curves on the test part")
    calibration = run.json(artefacts.METRICS_CALIBRATION)
    report.figure(reliability_figure(run.csv(artefacts.PLOT_CLASSIFIER_RELIABILITY)),
                  f"Reliability of the probabilities ({calibration['bins']} equal-width bins): mean ECE "
                  + ", ".join(f"{part} {calibration[part]['mean_ece']:.3f} (Brier {calibration[part]['mean_brier']:.3f})"
                              for part in ("val", "test")))
    report.table(run.csv(artefacts.RESULTS_CLASSIFIER / "calibration.csv").round(4),
                 "Expected calibration error and Brier score per class")
    nih_images = store.open_array(store.find_images(run.path(artefacts.STORE_NIH)))
    predictions = run.csv(artefacts.RESULTS_CLASSIFIER / "predictions.csv")
    report.figure(nih_examples_figure(nih_images, predictions, run.nih_index),
                  "Test images with true labels and the top prediction")


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
    fig, ax = plt.subplots(figsize=(6, 6))
    for label, group in roc.groupby("class", sort=False):
        ax.plot(group["fpr"], group["tpr"], lw=1, label=f"{label} ({metrics['per_class'][label]['auc']:.2f})")
    ax.plot([0, 1], [0, 1], color="grey", ls=":")
    ax.set(xlabel="1 - specificity", ylabel="sensitivity", title="NIH test ROC curves (AUC)")
    ax.legend(fontsize=7, loc="lower right")
    return fig


def nih_examples_figure(images: np.ndarray, predictions: pd.DataFrame, index: pd.DataFrame, n: int = 8):
    row_of = dict(zip(index["image"], index["row"]))
    picks = predictions.iloc[np.linspace(0, len(predictions) - 1, n).astype(int)]
    fig, axes = plt.subplots(2, n // 2, figsize=(12, 6.5))
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
