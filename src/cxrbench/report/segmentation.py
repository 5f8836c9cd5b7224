"""Section SCR segmentation: the segmenter's leaderboard, the resolution the scores are at and the cap the store puts
on them, the Jaccard of every test case beside the human observer and the best published method, the best, median
and worst test cases, then the comparison with every published row and the per-object table
(results/segmenter/scores.json, results/segmenter/)."""

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
from cxrbench.vocabulary import OBJECTS, PUBLISHED_OBJECTS, SCORED_OBJECTS

SCR_SPLIT = "scr_folds"


def section(report: Report, run: Run) -> None:
    report.heading("SCR segmentation")
    leaderboard.section(report, run, "segmenter")
    report.paragraph(f"The baseline ({run.network_name(artefacts.MODEL_SEGMENTER)}, master seed) beside the published "
                     "results, and the figures below, are of train_segmenter's models.")
    seg = run.json(artefacts.RESULTS_SEGMENTER / artefacts.SCORES)
    cases = run.csv(artefacts.RESULTS_SEGMENTER / "cases.csv")
    published = load_published(task="scr_segmentation")
    report.paragraph(resolution_text(seg))
    report.figure(jaccard_figure(cases, published, seg.get("second_observer")),
                  "Jaccard per test case (dots) for each published object and each single one, with the published "
                  "means of the human observer (dashed black) and the best published method (lines), and SCR's "
                  "second observer on these cases where the copy has one (dotted grey)", "scr-jaccard")
    lung_fields = jaccard_by_case(cases)["lung fields"]
    chosen = best_median_worst(lung_fields)
    row_of = dict(zip(run.jsrt_index["case"], run.jsrt_index["row"]))
    jsrt_store = run.path(artefacts.STORE_JSRT)
    report.figure(overlay_figure(store.open_array(store.find_images(jsrt_store)),
                                 store.open_array(store.find_reference_masks(jsrt_store)),
                                 np.load(next(run.path(artefacts.RESULTS_SEGMENTER).glob("predictions_*.npy")),
                                         mmap_mode="r"),
                                 [row_of[case] for case in chosen.values()],
                                 [f"{which}: {case}\nlung fields Jaccard {lung_fields[case]:.3f}"
                                  for which, case in chosen.items()]),
                  "Best, median and worst test cases by the lung fields' Jaccard (solid: reference, dashed: "
                  "prediction, both at 1024 px)", "scr-cases")
    report.table(segmenter_comparison(seg, published, run.synthetic, run.network_name(artefacts.MODEL_SEGMENTER)),
                 "Beside the published SCR results: each published object's Jaccard and mean contour distance (mean "
                 "over test images, sd in brackets) and the pixel error over the five labels")
    report.table(segmenter_table(seg), f"Per object at {seg['scored_size']} px ({seg['pixel_mm']} mm pixels), mean "
                 "over test images, with the Jaccard of the store's own masks after the round trip (the cap)")


def resolution_text(seg: dict) -> str:
    """Where the scores come from and the cap the store's resolution implies, in words."""
    cap = seg["round_trip"]
    return (f"The networks segment the store's {seg['store_size']} px images; as the SCR benchmark scores, every "
            f"case is scored at the reference masks' {seg['scored_size']} px ({seg['pixel_mm']} mm pixels) by "
            f"{seg['interpolation']}. The store's own reference masks, taken to {seg['store_size']} px and back the "
            "same way, reach a Jaccard of " + ", ".join(f"{cap[obj]:.3f} for the {obj}" for obj in PUBLISHED_OBJECTS)
            + f": no model trained at {seg['store_size']} px can be expected to do better."
            + ("" if "second_observer" not in seg else " SCR's second observer, scored the same way against the "
               "first on these cases (the benchmark's human observer), reaches " + ", ".join(
                   f"{seg['second_observer']['objects'][obj]['jaccard']['mean']:.3f} for the {obj}"
                   for obj in PUBLISHED_OBJECTS) + "."))


def jaccard_by_case(cases: pd.DataFrame) -> pd.DataFrame:
    """Per case (rows) the Jaccard of each scored object, published objects first."""
    return cases.pivot(index="case", columns="object", values="jaccard")[list(SCORED_OBJECTS)]


def best_median_worst(scores: pd.Series) -> dict[str, str]:
    """The cases (index of `scores`) with the highest, the median and the lowest score, each named once: with
    fewer than three cases the repeated ones are left out."""
    ranked = scores.dropna().sort_values(kind="stable")
    chosen: dict[str, str] = {}
    for which, position in (("best", len(ranked) - 1), ("median", len(ranked) // 2), ("worst", 0)):
        if ranked.index[position] not in chosen.values():
            chosen[which] = ranked.index[position]
    return chosen


def jaccard_figure(cases: pd.DataFrame, published: pd.DataFrame, second_observer: dict | None = None) -> Figure:
    """A box plot of the per-case Jaccard of each scored object with the cases as dots, and over each published
    object's box the human observer's Jaccard (dashed black) and the best published method's, on the SCR folds
    (`observer_and_best`); over every box the mean Jaccard of SCR's second observer on these cases, when given
    (scores.json's `second_observer`, dotted grey)."""
    scores = jaccard_by_case(cases)
    # a gap after the published objects
    positions = {name: n + (n >= len(PUBLISHED_OBJECTS)) for n, name in enumerate(scores.columns)}
    fig = Figure(figsize=(12, 4.3), layout="constrained")
    ax = fig.subplots()
    ax.boxplot([scores[name].dropna() for name in positions], positions=list(positions.values()), widths=0.6,
               showfliers=False, medianprops={"color": "black"})
    jitter = np.random.default_rng(0).uniform(-0.18, 0.18, len(scores))  # fixed seed: the same figure every run
    for name, x in positions.items():
        ax.scatter(x + jitter, scores[name], s=12, color="tab:blue", alpha=0.6, zorder=3,
                   label="ours, one dot per test case" if x == 0 else None)
    rows = observer_and_best(published)
    # the lines over one box side by side, so that close values stay apart
    slot = rows.groupby("label").cumcount().to_numpy()
    slots = rows.groupby("label")["label"].transform("size").to_numpy()
    others = iter(f"C{n}" for n in range(1, 10))
    colours: dict[str, str] = {}
    for row, k, n in zip(rows.itertuples(index=False), slot, slots):
        paper = f"{row.source}, {row.method}" if cell_text(row.method) else row.source
        observer = row.method == "human observer"
        first = paper not in colours  # named once in the legend
        if first:
            colours[paper] = "black" if observer else next(others)
        left = positions[row.label] - 0.4 + 0.8 * k / n
        ax.hlines(row.value, left, left + 0.8 / n, colors=colours[paper], linestyles=(0, (2, 1)) if observer else "-",
                  linewidth=2.5, zorder=4, label=paper if first else None)
    if second_observer is not None:
        for name, x in positions.items():
            ax.hlines(second_observer["objects"][name]["jaccard"]["mean"], x - 0.4, x + 0.4, colors="grey",
                      linestyles=(0, (1, 1)), linewidth=2, zorder=4,
                      label="SCR's second observer on these cases" if x == 0 else None)
    ax.set_xticks(list(positions.values()), [f"{name}\n(both as one)" if len(PUBLISHED_OBJECTS.get(name, ())) > 1
                                             else name for name in positions])
    ax.set(ylabel="Jaccard (intersection over union)", ylim=(0, 1.02),
           title=f"SCR at 1024 px: Jaccard per test case ({len(scores)} cases)")
    ax.grid(axis="y", alpha=0.3)
    fig.legend(loc="outside right upper", fontsize=8)  # beside the axes: it hides no case
    return fig


def observer_and_best(published: pd.DataFrame) -> pd.DataFrame:
    """Per published object, the human observer's Jaccard and the best published method's (first of equals), both
    on the SCR folds: what our Jaccard stands beside."""
    jaccard = published[(published["metric"] == "jaccard") & (published["split"] == SCR_SPLIT)
                        & published["label"].isin(PUBLISHED_OBJECTS)]
    observer = jaccard["method"] == "human observer"
    best = jaccard[~observer].sort_values("value", ascending=False, kind="stable").drop_duplicates("label")
    return pd.concat([jaccard[observer], best]).sort_values("label", key=lambda s: s.map(list(PUBLISHED_OBJECTS).index),
                                                            kind="stable")


def segmenter_table(metrics: dict) -> pd.DataFrame:
    rows = []
    for obj in SCORED_OBJECTS:
        m = metrics["overall"]["objects"][obj]
        rows.append({"object": obj, "Jaccard": m["jaccard"]["mean"], "Jaccard sd": m["jaccard"]["sd"],
                     "Dice": m["dice"]["mean"], "contour mm": m["contour_mm"]["mean"],
                     "cases missed": m["contour_mm"].get("missed", 0),
                     **{f"Jaccard test {f}": metrics["by_test_fold"][f]["objects"][obj]["jaccard"]["mean"]
                        for f in sorted(metrics["by_test_fold"])},
                     "store's masks (cap)": metrics["round_trip"][obj],
                     **({"second observer": metrics["second_observer"]["objects"][obj]["jaccard"]["mean"]}
                        if "second_observer" in metrics else {})})
    return pd.DataFrame(rows).astype(float, errors="ignore")


MEASURES = {"jaccard": "Jaccard", "mean_contour_distance_mm": "contour mm", "pixel_error": "pixel error"}


def segmenter_comparison(metrics: dict, published: pd.DataFrame, synthetic: bool, network: str) -> pd.DataFrame:
    """Each published object's Jaccard and mean contour distance and the pixel error (mean over images, the sd in
    brackets), ours first (and SCR's second observer on the same cases, when the copy has one), then every
    published row: one row per method, a column per measure and object."""
    def cell(mean: float | None, sd: float | None) -> str:
        if mean is None or pd.isna(mean):
            return "–"
        return f"{mean:.3f}" + ("" if sd is None or pd.isna(sd) else f" ({sd:.3f})")

    def our_row(method: str, scores: dict) -> dict:
        cells = {"source": OURS, "method": method, "split": SCR_SPLIT}
        for obj in PUBLISHED_OBJECTS:
            for measure, key in (("jaccard", "jaccard"), ("mean_contour_distance_mm", "contour_mm")):
                m = scores["objects"][obj][key]
                cells[f"{MEASURES[measure]} {obj}"] = cell(m["mean"], m["sd"])
        return {**cells, "pixel error": cell(scores["pixel_error"]["mean"], scores["pixel_error"]["sd"])}

    ours = [our_row(network, metrics["overall"])]
    if "second_observer" in metrics:
        ours.append(our_row("SCR's second observer", metrics["second_observer"]))
    columns = list(ours[0])
    papers: dict[tuple, dict] = {}  # one row per (source, method, split): its measures side by side
    for row in published[published["metric"].isin(MEASURES)].itertuples(index=False):
        column = "pixel error" if row.metric == "pixel_error" else f"{MEASURES[row.metric]} {row.label}"
        key = (row.source, cell_text(row.method), row.split, row.marker)
        papers.setdefault(key, {"source": f"{row.source} [{row.marker}]", "method": cell_text(row.method),
                                "split": row.split})[column] = cell(row.value, row.sd)
    table = comparison_table([Beside(ours, [Published(row) for row in papers.values()])], [*columns, "comparable"],
                             our_split=SCR_SPLIT, synthetic=synthetic)
    return table.fillna("")


def overlay_figure(images: np.ndarray, masks: np.ndarray, predictions: np.ndarray, rows: list[int], titles: list[str]):
    """The store's images of `rows` with the packed reference masks and predictions (both at 1024 px) as contours
    over them: the image is stretched over the masks' grid (both cover the same field of view)."""
    size = masks.shape[-1]
    fig, axes = plt.subplots(1, len(rows), figsize=(3.2 * len(rows), 3.8), layout="constrained")
    colours = plt.cm.tab10(np.arange(len(OBJECTS)))
    for ax, row, title in zip(np.atleast_1d(axes), rows, titles):
        ax.imshow(images[row], cmap="gray", extent=(-0.5, size - 0.5, size - 0.5, -0.5))
        truth, pred = store.unpack_masks(masks[row], len(OBJECTS)), store.unpack_masks(predictions[row], len(OBJECTS))
        for k in range(len(OBJECTS)):
            ax.contour(truth[k], levels=[0.5], colors=[colours[k]], linewidths=1)
            ax.contour(pred[k], levels=[0.5], colors=[colours[k]], linewidths=1, linestyles="dashed")
        ax.set_title(title, fontsize=8)
        ax.axis("off")
    fig.legend([Line2D([], [], color=colour) for colour in colours], OBJECTS, loc="outside lower center",
               ncols=len(OBJECTS), fontsize=8)
    return fig
