"""Section Weakly supervised localisation (BBox_List_2017): the accuracy of the classifier's class activation maps
against the overlap threshold beside the published points, the best and worst localised image per class, then
accuracy and false positives beside Wang et al.'s tables (results/localisation/)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib.patches as patches
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

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
from cxrbench.vocabulary import BOX_LABELS

LOCALISATION_SPLIT = "bbox_list_2017"
BOX_SPACE = 1024  # BBox_List_2017 boxes are in the NIH images' 1024-pixel space (cxrbench.cam.BOX_SPACE)
OVERLAP_NAMES = {"iobb": "T(IoBB)", "iou": "T(IoU)"}
EXAMPLE_COLUMNS = 8  # a class's best and worst example sit side by side
MEASURE_NAMES = {"accuracy": "accuracy", "avg_fp": "avg false positives / image"}


def section(report: Report, run: Run) -> None:
    report.heading("Weakly supervised localisation (BBox_List_2017)")
    localisation = run.json(artefacts.RESULTS_LOCALISATION / artefacts.SCORES)
    rows_of_paper = published.load(task="nih_localisation")
    report.figure(accuracy_figure(localisation, rows_of_paper, "iobb"),
                  "Localisation accuracy per class against the T(IoBB) threshold: ours (line) and the published "
                  "accuracies (markers); T(IoU) in the second table below", "localisation-accuracy-iobb")
    report.figure(localisation_examples_figure(run.path(artefacts.RESULTS_LOCALISATION)),
                  "Best and worst localised test image per class (solid: true box, dashed: detected)",
                  "localisation-examples")
    report.table(localisation_table(localisation, "iobb", synthetic=run.synthetic),
                 "Accuracy / average false positives per image at T(IoBB), class activation maps of the classifier")
    report.table(localisation_table(localisation, "iou", synthetic=run.synthetic), "The same at T(IoU)")


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
    blocks = []
    for threshold in metrics["thresholds"][overlap]:
        key = format(threshold, "g")
        for measure, measure_name in MEASURE_NAMES.items():
            ours = {label: metrics["per_class"][label][overlap][key][measure] if metrics["per_class"][label]["boxes"]
                    else np.nan for label in BOX_LABELS}
            head = {threshold_column: threshold, "measure": measure_name}
            matching = rows_of_paper[(rows_of_paper["metric"] == f"{measure}_{overlap}")
                                     & np.isclose(rows_of_paper["threshold"], threshold)]
            papers = []
            for _, group in matching.groupby(["source", "method", "citation"], sort=False, dropna=False):
                values = dict(zip(group["label"], group["value"]))
                first = group.iloc[0]
                papers.append(Published(
                    {**head, "source": published_source(first), "split": first["split"],
                     **{label: values.get(label, np.nan) for label in BOX_LABELS}, "note": cell_text(first["note"])},
                    [{**head, "source": f"ours - {first['source']}", "split": "",
                      **{label: ours[label] - values.get(label, np.nan) for label in BOX_LABELS}, "note": ""}]))
            blocks.append(Beside([{**head, "source": OURS, "split": our_split_name(LOCALISATION_SPLIT, synthetic),
                                   **ours, "note": ""}], papers, caveat))
    columns = [threshold_column, "measure", "source", "split", "comparable", *BOX_LABELS, "note"]
    return comparison_table(blocks, columns, our_split=LOCALISATION_SPLIT, synthetic=synthetic)


def accuracy_figure(metrics: dict[str, Any], rows_of_paper: pd.DataFrame, overlap: str = "iobb") -> Figure:
    """One panel per box class: our accuracy at every threshold of `overlap` (a line; a class without boxes in
    our split says so instead) and the published `accuracy_<overlap>` rows (markers, one kind per source)."""
    if overlap not in OVERLAP_NAMES:
        raise ValueError(f"overlap must be one of {sorted(OVERLAP_NAMES)}, got {overlap!r}")
    thresholds = metrics["thresholds"][overlap]
    papers = rows_of_paper[rows_of_paper["metric"] == f"accuracy_{overlap}"]
    # (apply on no rows gives a frame, not a column)
    papers = papers.assign(paper=papers.apply(published_source, axis=1) if len(papers) else "")
    # the same marker and colour for a source in every panel
    styles = {paper: {"marker": marker, "color": f"C{n}"}
              for n, (paper, marker) in enumerate(zip(papers["paper"].unique(), "sD^vPX*h"))}
    fig = Figure(figsize=(12, 4.3), layout="constrained")
    axes = fig.subplots(2, len(BOX_LABELS) // 2, sharex=True, sharey=True)
    for ax, label in zip(axes.ravel(), BOX_LABELS):
        scores = metrics["per_class"][label]
        boxes = scores["boxes"]
        if boxes:
            ax.plot(thresholds, [scores[overlap][format(t, "g")]["accuracy"] for t in thresholds], color="black",
                    marker="o", ms=4, label="ours")
        for row in papers[papers["label"] == label].itertuples(index=False):
            ax.plot(row.threshold, row.value, ls="none", ms=7, mfc="none", mew=1.5, zorder=3, label=row.paper,
                    **styles[row.paper])
        ax.set_title(f"{label}: {boxes} box{'es' * (boxes != 1)}" if boxes else f"{label}: no box in our split",
                     fontsize=9)
        ax.grid(alpha=0.3)
    for ax in axes[-1]:
        ax.set_xlabel(f"{OVERLAP_NAMES[overlap]} threshold")
    for ax in axes[:, 0]:
        ax.set_ylabel("accuracy")
    axes[0, 0].set(ylim=(-0.03, 1.05), xlim=(0, 1))
    # one legend for all panels, below them, so that it hides no point; ours first
    legend = {}
    for ax in axes.ravel():
        legend.update(zip(*reversed(ax.get_legend_handles_labels())))
    legend = dict(sorted(legend.items(), key=lambda item: item[0] != "ours"))
    if legend:
        fig.legend(legend.values(), legend.keys(), loc="outside lower center", ncols=len(legend), fontsize=8)
    fig.suptitle(f"Weakly supervised localisation: accuracy per class against the {OVERLAP_NAMES[overlap]} "
                 f"threshold", fontsize=10)
    return fig


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
    fig, axes = plt.subplots(rows, columns, figsize=(1.75 * columns, 2.1 * rows + 0.3), squeeze=False,
                             layout="constrained")
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
        ax.set_title(f"{example.label}, {example.which}\n{example.image}\nbest box IoU {example.iou:.2f}", fontsize=7)
    fig.suptitle("Class activation maps; green: true box, red dashed: detected boxes", fontsize=9)
    return fig
