"""Section SCR segmentation: the Jaccard of every test case beside the published SCR results, the best, median and
worst test cases, then the per-object overlap and the comparison tables (results/segmenter/scores.json,
results/segmenter/)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from cxrbench import artefacts, store
from cxrbench.published import load as load_published
from cxrbench.report import leaderboard
from cxrbench.report.comparison import OURS, Beside, Published, cell_text, comparison_table
from cxrbench.report.document import Report
from cxrbench.report.run import Run
from cxrbench.vocabulary import OBJECTS

SCR_SPLIT = "scr_folds"
SCR_GROUPS = {"lungs": ("right lung", "left lung"), "heart": ("heart",),
              "clavicles": ("right clavicle", "left clavicle")}


def section(report: Report, run: Run) -> None:
    report.heading("SCR segmentation")
    leaderboard.section(report, run, "segmenter")
    report.paragraph(f"The baseline ({run.network_name(artefacts.MODEL_SEGMENTER)}, master seed) beside the published "
                     "results, and the figures below, are of train_segmenter's models.")
    seg = run.json(artefacts.RESULTS_SEGMENTER / artefacts.SCORES)
    cases = run.csv(artefacts.RESULTS_SEGMENTER / "cases.csv")
    published = load_published(task="scr_segmentation")
    report.figure(jaccard_figure(cases, published),
                  "Jaccard per test case (dots) for each object and for the groups of the published tables, "
                  "with the published means (lines; dashed black: the human observer)", "scr-jaccard")
    lungs = cases[cases["object"].str.endswith("lung")].groupby("case")["jaccard"].mean()
    chosen = best_median_worst(lungs)
    row_of = dict(zip(run.jsrt_index["case"], run.jsrt_index["row"]))
    jsrt_store = run.path(artefacts.STORE_JSRT)
    report.figure(overlay_figure(store.open_array(store.find_images(jsrt_store)),
                                 store.open_array(store.find_masks(jsrt_store)),
                                 np.load(next(run.path(artefacts.RESULTS_SEGMENTER).glob("predictions_*.npy")),
                                         mmap_mode="r"),
                                 [row_of[case] for case in chosen.values()],
                                 [f"{which}: {case}\nlung Jaccard {lungs[case]:.3f}"
                                  for which, case in chosen.items()]),
                  "Best, median and worst test cases by lung Jaccard (solid: reference, dashed: prediction)",
                  "scr-cases")
    report.table(segmenter_table(seg),
                 f"Per object at {seg['size']} px ({seg['pixel_mm']} mm pixels), mean over test images")
    report.paragraph(f"Pixel error over the five labels: {seg['overall']['pixel_error']['mean']:.4f} "
                     f"(sd {seg['overall']['pixel_error']['sd'] or 0:.4f}).")
    report.table(segmenter_comparison(cases, seg, published, run.synthetic,
                                      run.network_name(artefacts.MODEL_SEGMENTER)),
                 "Beside the published SCR results (lungs = mean of both lung fields per image)")


def best_median_worst(scores: pd.Series) -> dict[str, str]:
    """The cases (index of `scores`) with the highest, the median and the lowest score, each named once: with
    fewer than three cases the repeated ones are left out."""
    ranked = scores.dropna().sort_values(kind="stable")
    chosen: dict[str, str] = {}
    for which, position in (("best", len(ranked) - 1), ("median", len(ranked) // 2), ("worst", 0)):
        if ranked.index[position] not in chosen.values():
            chosen[which] = ranked.index[position]
    return chosen


def group_jaccards(cases: pd.DataFrame) -> pd.DataFrame:
    """Per case (rows) the Jaccard of each object and of each group of SCR_GROUPS (the mean of its objects)."""
    per_object = cases.pivot(index="case", columns="object", values="jaccard")
    groups = {group: per_object[list(objects)].mean(axis=1) for group, objects in SCR_GROUPS.items()}
    return per_object[list(OBJECTS)].assign(**groups)


def jaccard_figure(cases: pd.DataFrame, published: pd.DataFrame) -> Figure:
    """A box plot of the per-case Jaccard of each object and group with the cases as dots, and the published
    Jaccards of the groups as short lines over their box (dashed black: the human observer)."""
    scores = group_jaccards(cases)
    positions = {name: n + (n >= len(OBJECTS)) for n, name in enumerate(scores.columns)}  # a gap before the groups
    fig = Figure(figsize=(12, 4.3), layout="constrained")
    ax = fig.subplots()
    ax.boxplot([scores[name].dropna() for name in positions], positions=list(positions.values()), widths=0.6,
               showfliers=False, medianprops={"color": "black"})
    jitter = np.random.default_rng(0).uniform(-0.18, 0.18, len(scores))  # fixed seed: the same figure every run
    for name, x in positions.items():
        ax.scatter(x + jitter, scores[name], s=12, color="tab:blue", alpha=0.6, zorder=3,
                   label="ours, one dot per test case" if x == 0 else None)
    rows = published[(published["metric"] == "jaccard") & published["label"].isin(positions)]
    # the lines over one box side by side, so that close values stay apart
    slot = rows.groupby("label").cumcount().to_numpy()
    slots = rows.groupby("label")["label"].transform("size").to_numpy()
    others = iter(f"C{n}" for n in range(1, 10))
    colours: dict[str, str] = {}
    for row, k, n in zip(rows.itertuples(index=False), slot, slots):
        paper = f"{row.source}, {row.method}" if cell_text(row.method) else row.source
        if row.split != SCR_SPLIT:
            paper += " (own protocol)"
        observer = row.method == "human observer"
        first = paper not in colours  # named once in the legend
        if first:
            colours[paper] = "black" if observer else next(others)
        left = positions[row.label] - 0.4 + 0.8 * k / n
        ax.hlines(row.value, left, left + 0.8 / n, colors=colours[paper], linestyles=(0, (2, 1)) if observer else "-",
                  linewidth=2.5, zorder=4, label=paper if first else None)
    ax.set_xticks(list(positions.values()), list(positions))
    ax.set(ylabel="Jaccard (intersection over union)", ylim=(0, 1.02),
           title=f"SCR segmentation: Jaccard per test case ({len(scores)} cases); lungs, clavicles: mean of both")
    ax.grid(axis="y", alpha=0.3)
    fig.legend(loc="outside right upper", fontsize=8)  # beside the axes: it hides no case
    return fig


def segmenter_table(metrics: dict) -> pd.DataFrame:
    rows = []
    for obj in OBJECTS:
        m = metrics["overall"]["objects"][obj]
        rows.append({"object": obj, "Jaccard": m["jaccard"]["mean"], "Jaccard sd": m["jaccard"]["sd"],
                     "Dice": m["dice"]["mean"], "contour mm": m["contour_mm"]["mean"],
                     "cases missed": m["contour_mm"].get("missed", 0),
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
    fig, axes = plt.subplots(1, len(rows), figsize=(3.2 * len(rows), 3.8), layout="constrained")
    colours = plt.cm.tab10(np.arange(len(OBJECTS)))
    for ax, row, title in zip(np.atleast_1d(axes), rows, titles):
        ax.imshow(images[row], cmap="gray")
        truth, pred = store.unpack_masks(masks[row], len(OBJECTS)), store.unpack_masks(predictions[row], len(OBJECTS))
        for k in range(len(OBJECTS)):
            ax.contour(truth[k], levels=[0.5], colors=[colours[k]], linewidths=1)
            ax.contour(pred[k], levels=[0.5], colors=[colours[k]], linewidths=1, linestyles="dashed")
        ax.set_title(title, fontsize=8)
        ax.axis("off")
    fig.legend([Line2D([], [], color=colour) for colour in colours], OBJECTS, loc="outside lower center",
               ncols=len(OBJECTS), fontsize=8)
    return fig
