"""Section SCR segmentation: per-object overlap, the comparison with the published SCR results and the best and
worst test cases (metrics/segmenter.json, results/segmenter/)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from cxrbench import artefacts, store
from cxrbench.published import load as load_published
from cxrbench.report.comparison import OURS, Beside, Published, comparison_table
from cxrbench.report.document import Report
from cxrbench.report.run import Run
from cxrbench.vocabulary import OBJECTS

SCR_SPLIT = "scr_folds"
SCR_GROUPS = {"lungs": ("right lung", "left lung"), "heart": ("heart",), "clavicles": ("right clavicle", "left clavicle")}


def section(report: Report, run: Run) -> None:
    report.heading("SCR segmentation")
    seg = run.json(artefacts.METRICS_SEGMENTER)
    report.table(segmenter_table(seg), f"Per object at {seg['size']} px ({seg['pixel_mm']} mm pixels), mean over test images")
    report.paragraph(f"Pixel error over the five labels: {seg['overall']['pixel_error']['mean']:.4f} "
                     f"(sd {seg['overall']['pixel_error']['sd'] or 0:.4f}).")
    cases = run.csv(artefacts.RESULTS_SEGMENTER / "cases.csv")
    report.table(segmenter_comparison(cases, seg, load_published(task="scr_segmentation"), run.synthetic,
                                      run.network_name(artefacts.MODEL_SEGMENTER)),
                 "Beside the published SCR results (lungs = mean of both lung fields per image)")
    lungs = cases[cases["object"].str.endswith("lung")].groupby("case")["jaccard"].mean().sort_values()
    chosen = [lungs.index[-1], lungs.index[0]]
    row_of = dict(zip(run.jsrt_index["case"], run.jsrt_index["row"]))
    jsrt_store = run.path(artefacts.STORE_JSRT)
    report.figure(overlay_figure(store.open_array(store.find_images(jsrt_store)),
                                 store.open_array(store.find_masks(jsrt_store)),
                                 np.load(next(run.path(artefacts.RESULTS_SEGMENTER).glob("predictions_*.npy")),
                                         mmap_mode="r"),
                                 [row_of[c] for c in chosen], [f"best: {chosen[0]}", f"worst: {chosen[1]}"]),
                  "Best and worst test cases by lung Jaccard (solid: reference, dashed: prediction)")


def segmenter_table(metrics: dict) -> pd.DataFrame:
    rows = []
    for obj in OBJECTS:
        m = metrics["overall"]["objects"][obj]
        rows.append({"object": obj, "Jaccard": m["jaccard"]["mean"], "Jaccard sd": m["jaccard"]["sd"],
                     "Dice": m["dice"]["mean"], "contour mm": m["contour_mm"]["mean"],
                     **{f"Jaccard test {f}": metrics["by_test_fold"][f]["objects"][obj]["jaccard"]["mean"]
                        for f in sorted(metrics["by_test_fold"])}})
    return pd.DataFrame(rows).astype(float, errors="ignore")


def segmenter_comparison(cases: pd.DataFrame, metrics: dict, published: pd.DataFrame, synthetic: bool,
                         network: str) -> pd.DataFrame:
    """Jaccard per object group and pixel error (mean over images) beside the published SCR rows."""
    ours = {"source": OURS, "method": network, "split": SCR_SPLIT}
    for group, objects in SCR_GROUPS.items():
        ours[f"Jaccard {group}"] = cases[cases["object"].isin(objects)].groupby("case")["jaccard"].mean().mean()
    ours["pixel error"] = metrics["overall"]["pixel_error"]["mean"]
    papers = []
    for _, row in published.iterrows():
        column = {"jaccard": f"Jaccard {row['label']}", "pixel_error": "pixel error"}.get(row["metric"])
        if column:
            papers.append(Published({"source": row["source"], "method": row["method"], "split": row["split"],
                                     column: row["value"]}))
    return comparison_table([Beside([ours], papers)], [*ours, "comparable"], our_split=SCR_SPLIT, synthetic=synthetic)


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
