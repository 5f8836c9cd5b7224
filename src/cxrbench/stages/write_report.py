"""Stage write_report: one self-contained HTML page (results/report.html) and a Markdown summary
(results/report.md) of the datasets the run used (`datasets`, named on top with what was left out and why):
dataset counts, how the splits were made, dataset statistics, training curves, benchmark tables next to the
published results, ROC curves, example images with their labels and masks, and the parameters and input hashes
that produced them.
"""

from __future__ import annotations

import hashlib
import json
import logging
import subprocess
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import yaml

from cxrbench import __version__, artefacts, store
from cxrbench.fileio import write_text
from cxrbench.nodules_report import report_pieces as nodule_report_pieces
from cxrbench.published import MEAN_LABEL
from cxrbench.published import load as load_published
from cxrbench.report import Report
from cxrbench.report_sections import (
    apart_last,
    comparability,
    expert_labels_table,
    expert_roc_figure,
    localisation_examples_figure,
    localisation_table,
)
from cxrbench.report_statistics import nih_split_name, splits_section, statistics_section
from cxrbench.stages._app import run_stage
from cxrbench.vocabulary import LABELS, OBJECTS

log = logging.getLogger(__name__)
OUT = Path("results")
DATASET_NAMES = {"jsrt": "JSRT", "scr": "SCR", "nih": "NIH ChestX-ray14", "google": "Google's expert labels for NIH"}
# What a dataset's absence leaves out of the report, in one sentence each (google only matters with nih).
LEFT_OUT = {
    "jsrt": "SCR segmentation and the JSRT nodule tasks are left out (JSRT and SCR are not in `datasets`).",
    "nih": "NIH classification, localisation and the expert-label evaluation are left out (NIH is not in `datasets`).",
    "google": "The evaluation against Google's expert labels is left out: their files were not given (they are "
              "released through a Google form; add google to `datasets` and set source.google to use them).",
}


def datasets_used(datasets: list[str]) -> str:
    """Which datasets this run used, which not, and what their absence leaves out."""
    used = ", ".join(DATASET_NAMES[name] for name in DATASET_NAMES if name in datasets)
    unused = [name for name in DATASET_NAMES if name not in datasets]
    text = f"Datasets used: {used}."
    if unused:
        text += f" Not used: {', '.join(DATASET_NAMES[name] for name in unused)}."
        text += "".join(f" {LEFT_OUT[name]}" for name in LEFT_OUT
                        if name in unused and (name != "google" or "nih" in datasets))
    return text


def dataset_counts(jsrt_index: pd.DataFrame | None, nih_index: pd.DataFrame | None) -> pd.DataFrame:
    rows = []
    if jsrt_index is not None:
        folds = jsrt_index["fold"]
        rows += [{"dataset": "JSRT", "images": len(jsrt_index), "patients": len(jsrt_index),
                  "detail": f"{int(jsrt_index['nodule'].sum())} with a nodule, "
                            f"{int((~jsrt_index['nodule'].astype(bool)).sum())} without"},
                 {"dataset": "SCR", "images": len(jsrt_index), "patients": len(jsrt_index),
                  "detail": f"5 objects per image; fold 1: {int((folds == 1).sum())}, fold 2: {int((folds == 2).sum())}"}]
    if nih_index is not None:
        rows.append({"dataset": "NIH ChestX-ray14", "images": len(nih_index), "patients": int(nih_index["patient"].nunique()),
                     "detail": f"{int((nih_index[list(LABELS)].sum(axis=1) == 0).sum())} No Finding"})
    return pd.DataFrame(rows)


def curves_figure(directory: Path, title: str):
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for tsv in sorted((directory / "plots" / "metrics").rglob("*.tsv")):
        name = tsv.relative_to(directory / "plots" / "metrics").with_suffix("").as_posix()
        if name == "lr":
            continue
        frame = pd.read_csv(tsv, sep="\t")
        ax.plot(frame["step"] + 1, frame[frame.columns[-1]], marker="o", label=name)
    ax.set(xlabel="epoch", title=title)
    ax.legend(fontsize=8)
    return fig


def roc_figure(roc: pd.DataFrame, metrics: dict):
    fig, ax = plt.subplots(figsize=(6, 6))
    for label, group in roc.groupby("class", sort=False):
        ax.plot(group["fpr"], group["tpr"], lw=1, label=f"{label} ({metrics['per_class'][label]['auc']:.2f})")
    ax.plot([0, 1], [0, 1], color="grey", ls=":")
    ax.set(xlabel="1 - specificity", ylabel="sensitivity", title="NIH test ROC curves (AUC)")
    ax.legend(fontsize=7, loc="lower right")
    return fig


def classifier_comparison(metrics: dict, published: pd.DataFrame, synthetic: bool, our_split: str) -> pd.DataFrame:
    """Our per-class AUC beside every published row, with the split each used and the difference in mean."""
    ours = {"source": "cxrbench (this run)", "method": "DenseNet-121", "split": our_split,
            **{label: metrics["per_class"][label]["auc"] for label in LABELS},
            "mean": metrics["mean_auc"], "mean 95% CI": "{:.3f}-{:.3f}".format(*metrics["mean_auc_ci"])}
    rows = [ours]
    for (source, method, split), group in published.groupby(["source", "method", "split"], sort=False, dropna=False):
        values = dict(zip(group["label"], group["value"]))
        mean = values.get(MEAN_LABEL, np.nan)
        rows.append({"source": source, "method": method, "split": split,
                     **{label: values.get(label, np.nan) for label in LABELS}, "mean": mean,
                     "published - ours": round(mean - metrics["mean_auc"], 3),
                     "comparable": comparability(split, our_split, synthetic)})
    ours["comparable"] = ""
    return apart_last(pd.DataFrame(rows).astype({label: float for label in LABELS}))


def segmenter_table(metrics: dict) -> pd.DataFrame:
    rows = []
    for obj in OBJECTS:
        m = metrics["overall"]["objects"][obj]
        rows.append({"object": obj, "Jaccard": m["jaccard"]["mean"], "Jaccard sd": m["jaccard"]["sd"],
                     "Dice": m["dice"]["mean"], "contour mm": m["contour_mm"]["mean"],
                     **{f"Jaccard test {f}": metrics["by_test_fold"][f]["objects"][obj]["jaccard"]["mean"]
                        for f in sorted(metrics["by_test_fold"])}})
    return pd.DataFrame(rows).astype(float, errors="ignore")


SCR_GROUPS = {"lungs": ("right lung", "left lung"), "heart": ("heart",), "clavicles": ("right clavicle", "left clavicle")}


def segmenter_comparison(cases: pd.DataFrame, metrics: dict, published: pd.DataFrame, synthetic: bool) -> pd.DataFrame:
    """Jaccard per object group and pixel error (mean over images) beside the published SCR rows."""
    ours = {"source": "cxrbench (this run)", "method": "U-Net", "split": "scr_folds"}
    for group, objects in SCR_GROUPS.items():
        ours[f"Jaccard {group}"] = cases[cases["object"].isin(objects)].groupby("case")["jaccard"].mean().mean()
    ours["pixel error"] = metrics["overall"]["pixel_error"]["mean"]
    rows = [ours]
    for _, row in published.iterrows():
        column = {"jaccard": f"Jaccard {row['label']}", "pixel_error": "pixel error"}.get(row["metric"])
        if column:
            rows.append({"source": row["source"], "method": row["method"], "split": row["split"], column: row["value"],
                         "comparable": comparability(row["split"], "scr_folds", synthetic)})
    ours["comparable"] = ""
    return apart_last(pd.DataFrame(rows))


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


def overlay_figure(images: np.ndarray, masks: np.ndarray, predictions: np.ndarray, rows: list[int], titles: list[str]):
    fig, axes = plt.subplots(1, len(rows), figsize=(3.2 * len(rows), 3.6))
    colours = plt.cm.tab10(np.arange(len(OBJECTS)))
    for ax, row, title in zip(np.atleast_1d(axes), rows, titles):
        ax.imshow(images[row], cmap="gray")
        truth, pred = store.unpack_masks(masks[row], len(OBJECTS)), store.unpack_masks(predictions[row], len(OBJECTS))
        for k in range(len(OBJECTS)):
            ax.contour(truth[k], levels=[0.5], colors=[colours[k]], linewidths=1)
            ax.contour(pred[k], levels=[0.5], colors=[colours[k]], linewidths=1, linestyles="dashed")
        ax.set_title(title, fontsize=8)
        ax.axis("off")
    return fig


def input_hashes(datasets: list[str]) -> pd.DataFrame:
    rows = []
    for manifest in sorted(artefacts.MANIFESTS[name] for name in datasets):
        table = pd.read_csv(manifest)
        digest = hashlib.sha256("\n".join(table["file"] + " " + table["sha256"]).encode()).hexdigest()
        rows.append({"dataset": manifest.stem, "files": len(table), "bytes": int(table["bytes"].sum()), "sha256 of manifest": digest})
    return pd.DataFrame(rows)


def code_version() -> str:
    """The checkout the report was made from (`git describe --always --dirty`), or why there is none."""
    try:
        described = subprocess.run(["git", "describe", "--always", "--dirty", "--abbrev=12"], capture_output=True,
                                   text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as err:
        return f"unknown ({err})"
    return described.stdout.strip() if described.returncode == 0 else "unknown (not a git checkout)"


def nih_sections(report: Report, nih_index: pd.DataFrame, split_info: dict, synthetic: bool) -> None:
    """Classification, its ROC curves and examples, and the localisation of BBox_List_2017's boxes."""
    report.heading("NIH ChestX-ray14 classification")
    metrics = json.loads(artefacts.METRICS_CLASSIFIER.read_text())
    published = load_published(task="nih_classification")
    report.table(classifier_comparison(metrics, published, synthetic, nih_split_name(split_info)),
                 f"Per-class ROC AUC on {metrics['test_images']} test images (95% bootstrap CI of the mean, "
                 f"{metrics['bootstrap']['resamples']} resamples of {metrics['bootstrap']['unit']}s) beside published results")
    report.figure(roc_figure(pd.read_csv(artefacts.PLOT_CLASSIFIER_ROC), metrics), "ROC curves on the test part")
    nih_images = store.open_array(store.find_images(artefacts.STORE_NIH))
    predictions = pd.read_csv(artefacts.RESULTS_CLASSIFIER / "predictions.csv")
    report.figure(nih_examples_figure(nih_images, predictions, nih_index), "Test images with true labels and the top prediction")

    report.heading("Weakly supervised localisation (BBox_List_2017)")
    localisation = json.loads(artefacts.METRICS_LOCALISATION.read_text())
    report.table(localisation_table(localisation, "iobb", synthetic=synthetic),
                 "Accuracy / average false positives per image at T(IoBB), class activation maps of the classifier")
    report.table(localisation_table(localisation, "iou", synthetic=synthetic), "The same at T(IoU)")
    report.figure(localisation_examples_figure(artefacts.RESULTS_LOCALISATION),
                  "Best and worst localised test image per class (solid: true box, dashed: detected)")


def expert_labels_section(report: Report, synthetic: bool) -> None:
    report.heading("Google expert labels")
    expert = json.loads(artefacts.METRICS_EXPERT_LABELS.read_text())
    report.table(expert_labels_table(expert, synthetic=synthetic), "Classifier against the adjudicated expert labels")
    report.figure(expert_roc_figure(pd.read_csv(artefacts.PLOT_EXPERT_LABELS_ROC),
                                    pd.read_csv(artefacts.PLOT_EXPERT_LABELS_READERS, dtype={"reader": str}), expert,
                                    synthetic=synthetic),
                  "ROC curves against the expert labels, with the individual radiologists as points")


def segmenter_section(report: Report, jsrt_index: pd.DataFrame, synthetic: bool) -> None:
    report.heading("SCR segmentation")
    seg = json.loads(artefacts.METRICS_SEGMENTER.read_text())
    report.table(segmenter_table(seg), f"Per object at {seg['size']} px ({seg['pixel_mm']} mm pixels), mean over test images")
    report.paragraph(f"Pixel error over the five labels: {seg['overall']['pixel_error']['mean']:.4f} "
                     f"(sd {seg['overall']['pixel_error']['sd'] or 0:.4f}).")
    cases = pd.read_csv(artefacts.RESULTS_SEGMENTER / "cases.csv")
    report.table(segmenter_comparison(cases, seg, load_published(task="scr_segmentation"), synthetic),
                 "Beside the published SCR results (lungs = mean of both lung fields per image)")
    lungs = cases[cases["object"].str.endswith("lung")].groupby("case")["jaccard"].mean().sort_values()
    chosen = [lungs.index[-1], lungs.index[0]]
    row_of = dict(zip(jsrt_index["case"], jsrt_index["row"]))
    report.figure(overlay_figure(store.open_array(store.find_images(artefacts.STORE_JSRT)),
                                 store.open_array(store.find_masks(artefacts.STORE_JSRT)),
                                 np.load(next(artefacts.RESULTS_SEGMENTER.glob("predictions_*.npy")), mmap_mode="r"),
                                 [row_of[c] for c in chosen], [f"best: {chosen[0]}", f"worst: {chosen[1]}"]),
                  "Best and worst test cases by lung Jaccard (solid: reference, dashed: prediction)")


def nodules_section(report: Report, synthetic: bool) -> None:
    report.heading("JSRT nodules")
    nodule_pieces = nodule_report_pieces(load_published(task="jsrt_nodules"), synthetic=synthetic)
    for caption, table in nodule_pieces.tables:
        report.table(table, caption)
    report.figure(curves_figure(artefacts.LIVE_NODULES, "JSRT nodule models"),
                  "JSRT nodule models: training loss per epoch, mean over the folds")
    for fig, caption in nodule_pieces.figures:
        report.figure(fig, caption)


def write(params: dict[str, Any]) -> None:
    datasets, synthetic = params["datasets"], params["source"]["kind"] == "synthetic"
    with_jsrt, with_nih = "jsrt" in datasets, "nih" in datasets  # jsrt comes with scr (config.validate)
    banner = ("SYNTHETIC DATA: phantoms in the datasets' formats, not real radiographs. Published numbers are shown "
              "for layout only and are not comparable.") if synthetic else None
    report = Report("cxrbench benchmark report", banner)
    report.paragraph(datasets_used(datasets))
    jsrt_index = store.read_index(artefacts.STORE_JSRT) if with_jsrt else None
    nih_index = store.read_index(artefacts.STORE_NIH) if with_nih else None
    split_info = json.loads(artefacts.SPLIT_NIH_INFO.read_text()) if with_nih else None

    report.heading("Datasets")
    report.table(dataset_counts(jsrt_index, nih_index), "Counts")
    splits_section(report, split_info, jsrt_index)
    statistics_section(report, artefacts.RESULTS_DATASETS, datasets)

    report.heading("Training")
    if with_nih:
        report.figure(curves_figure(artefacts.LIVE_CLASSIFIER, "NIH classifier"),
                      "NIH classifier: loss and validation AUC per epoch")
    if with_jsrt:
        report.figure(curves_figure(artefacts.LIVE_SEGMENTER, "SCR segmenter"),
                      "SCR segmenter: training loss per epoch, one model per fold")
    if with_nih:
        nih_sections(report, nih_index, split_info, synthetic)
        if "google" in datasets:
            expert_labels_section(report, synthetic)
    if with_jsrt:
        segmenter_section(report, jsrt_index, synthetic)
        nodules_section(report, synthetic)

    report.heading("Provenance")
    report.table(input_hashes(datasets), "Inputs (from the acquire manifests)")
    report.paragraph(f"cxrbench {__version__}, code {code_version()}; the parameters below are exactly "
                     "those of this run.")
    report.preformatted(yaml.safe_dump(params, sort_keys=False), "params.yaml")

    write_text(OUT / "report.html", report.html())
    write_text(OUT / "report.md", report.markdown())
    log.info("wrote %s and %s", OUT / "report.html", OUT / "report.md")


def main() -> None:
    run_stage("write_report", write)


if __name__ == "__main__":
    main()
