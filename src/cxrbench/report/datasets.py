"""The report's opening line (which datasets the run used, which not, and what that left out) and its section
Datasets: counts, how each split was made (data/splits/nih.json, the SCR folds) and the describe_datasets
statistics (results/datasets/*.json) as tables and figures, for the datasets used."""

from __future__ import annotations

from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from cxrbench import artefacts
from cxrbench.report.document import Report
from cxrbench.report.run import Run
from cxrbench.stats import cooccurrence_figure
from cxrbench.vocabulary import LABELS

OFFICIAL = "official"
PARTS = ("train", "val", "test")
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


def section(report: Report, run: Run) -> None:
    """Datasets: counts, splits and statistics of the datasets used (jsrt comes with scr: config.validate)."""
    jsrt_index = run.jsrt_index if "jsrt" in run.datasets else None
    report.heading("Datasets")
    report.table(dataset_counts(jsrt_index, run.nih_index if "nih" in run.datasets else None), "Counts")
    _splits(report, run.nih_split if "nih" in run.datasets else None, jsrt_index)
    _statistics(report, run)


def dataset_counts(jsrt_index: pd.DataFrame | None, nih_index: pd.DataFrame | None) -> pd.DataFrame:
    rows = []
    if jsrt_index is not None:
        folds = jsrt_index["fold"]
        rows += [{"dataset": "JSRT", "images": len(jsrt_index), "patients": len(jsrt_index),
                  "detail": f"{int(jsrt_index['nodule'].sum())} with a nodule, "
                            f"{int((~jsrt_index['nodule'].astype(bool)).sum())} without"},
                 {"dataset": "SCR", "images": len(jsrt_index), "patients": len(jsrt_index),
                  "detail": f"5 objects per image; fold 1: {int((folds == 1).sum())}, "
                            f"fold 2: {int((folds == 2).sum())}"}]
    if nih_index is not None:
        rows.append({"dataset": "NIH ChestX-ray14", "images": len(nih_index),
                     "patients": int(nih_index["patient"].nunique()),
                     "detail": f"{int((nih_index[list(LABELS)].sum(axis=1) == 0).sum())} No Finding"})
    return pd.DataFrame(rows)


def nih_split_name(info: dict[str, Any]) -> str:
    """The split our NIH results are on, in published/results.yaml's vocabulary where it truly is one of them:
    'official' only for the official lists with every view and every image; a random draw of ours is never
    the authors' random split."""
    if info["scheme"] != OFFICIAL:
        return "random_patient (this run's own draw)"
    restrictions = [f"{'+'.join(info['views'])} only"] if set(info["views"]) != {"PA", "AP"} else []
    if "archive_subset" in info:
        restrictions.append(f"the {info['archive_subset']['images']} images of the archives selected")
    if "labels_agree_with" in info:
        restrictions.append(f"labels agreeing with {info['labels_agree_with']['file']}")
    return OFFICIAL + (f" ({', '.join(restrictions)})" if restrictions else "")


def nih_split_method(info: dict[str, Any]) -> str:
    """One sentence per choice that made the NIH split, from nih.json."""
    views = "+".join(info["views"])
    if info["scheme"] == OFFICIAL:
        text = (f"NIH, official split: test = test_list.txt; validation = {info['val_fraction']:.0%} of the patients "
                f"of train_val_list.txt drawn with seed {info['seed']} (stream {info['seed_stream']}); views {views}.")
    else:
        shares = "/".join(f"{100 * info['fractions_of_patients'][p]:g}" for p in ("train", "val", "test"))
        pinned = "; ".join(f"{name} ({s['images']} images, {s['patients']} patients)"
                           for name, s in info["pinned_to_test"].items())
        text = (f"NIH, random split by patient (CheXNet style): train/val/test {shares}% of the patients, seed "
                f"{info['seed']} (stream {info['seed_stream']}); views {views}. Pinned to test, because they are "
                f"scored later: {pinned or 'none found'}.")
    if "archive_subset" in info:
        text += (f" Only the {info['archive_subset']['images']} images of the archives source.archives selected "
                 f"(listed in {info['archive_subset']['file']}).")
    if "labels_agree_with" in info:
        agree = info["labels_agree_with"]
        text += (f" Left out: {agree['images_excluded']} images whose labels in {agree['current']} differ from "
                 f"{agree['file']}.")
    return text + " Source files and their sha256 are in data/splits/nih.json."


def _splits(report: Report, info: dict[str, Any] | None, scr_index: pd.DataFrame | None) -> None:
    """The NIH split (from nih.json) and the SCR folds, for the datasets used (None: not used)."""
    report.heading("Splits")
    if info is not None:
        report.table(pd.DataFrame([{"part": part, **counts} for part, counts in _in_part_order(info["counts"])]),
                     nih_split_method(info))
    if scr_index is not None:
        folds = scr_index.groupby("fold").size()
        report.paragraph("SCR: the two published folds (odd / even JSRT case numbers), "
                         + ", ".join(f"fold {fold}: {n} cases" for fold, n in folds.items())
                         + "; each fold is the test set once.")


def _in_part_order(per_part: dict[str, Any]) -> list[tuple[str, Any]]:
    """train, val, test first (JSON files keep keys sorted), then any other part."""
    return sorted(per_part.items(),
                  key=lambda item: (PARTS.index(item[0]) if item[0] in PARTS else len(PARTS), item[0]))


def nih_summary_table(stats: dict[str, Any]) -> pd.DataFrame:
    age, images = stats["age"], stats["images"]
    rows = {
        "images": images, "patients": stats["patients"], "No Finding": stats["no_finding"],
        **{f"view {k}": n for k, n in stats["views"].items()}, **{f"sex {k}": n for k, n in stats["sex"].items()},
        "age median (years)": age["plausible"]["median"], "ages unknown": age["unknown"],
        f"impossible ages (> {age['impossible']['threshold_years']} years)": age["impossible"]["count"],
    }
    return pd.DataFrame({"": list(rows), "value": pd.Series(list(rows.values()), dtype=object)})


def nih_class_table(stats: dict[str, Any]) -> pd.DataFrame:
    """Per class: images, share, patients and the prevalence in each part of the split (%)."""
    table = pd.DataFrame({"images": stats["class_totals"], "patients": stats["patients_per_class"]}).loc[list(LABELS)]
    table.insert(1, "% of images", 100 * table["images"] / max(stats["images"], 1))
    for part, part_stats in _in_part_order(stats["splits"]["parts"]):
        table[f"{part} %"] = [100 * part_stats["prevalence"][label] for label in table.index]
    return table.rename_axis("label").reset_index()


def prevalence_figure(stats: dict[str, Any]) -> Figure:
    """Per class, the share of images carrying it in each part of the NIH split (grouped horizontal bars)."""
    parts = _in_part_order(stats["splits"]["parts"])
    positions = np.arange(len(LABELS))[::-1]  # the first class on top, as in the table
    height = 0.8 / len(parts)
    fig = Figure(figsize=(6, 5.4), layout="constrained")
    ax = fig.subplots()
    for n, (part, part_stats) in enumerate(parts):
        # parts from top to bottom within a class, in the legend's order
        offset = (len(parts) / 2 - n - 0.5) * height
        ax.barh(positions + offset, [100 * part_stats["prevalence"][label] for label in LABELS], height=height,
                label=f"{part} ({part_stats['images']} images)")
    ax.set_yticks(positions, LABELS)
    ax.set(xlabel="images carrying the label (%)", ylim=(-0.6, len(LABELS) - 0.4),
           title="NIH label prevalence per split part")
    ax.grid(axis="x", alpha=0.3)
    fig.legend(loc="outside lower center", ncols=len(parts), fontsize=9)  # below the axes: it hides no bar
    return fig


def age_histogram(age: dict[str, Any], title: str):
    fig, ax = plt.subplots(figsize=(6, 3))
    # the bins come back from JSON in key order ("100-120" before "20-29"): order them by their lower bound
    bins = sorted(age["bins"].items(), key=lambda item: int(item[0].split("-")[0]))
    ax.bar([name for name, _ in bins], [count for _, count in bins], color="steelblue")
    ax.set(xlabel="age (years)", ylabel="images", title=title)
    ax.tick_params(axis="x", labelrotation=45)
    return fig


def _square(nested: dict[str, dict[str, int]]) -> pd.DataFrame:
    return pd.DataFrame.from_dict(nested, orient="index")


def _statistics(report: Report, run: Run) -> None:
    """The describe_datasets outputs of the datasets used: NIH tables, age histogram, co-occurrence heat maps and
    the comparison with the release page; JSRT nodules; SCR object areas per fold."""
    directory = artefacts.RESULTS_DATASETS
    report.heading("Dataset statistics")
    if "nih" in run.datasets:
        _nih_statistics(report, run.json(directory / "nih.json"))
    if "jsrt" in run.datasets:
        _jsrt_scr_statistics(report, run.json(directory / "jsrt.json")["statistics"],
                             run.json(directory / "scr.json")["statistics"])


def _nih_statistics(report: Report, nih_doc: dict[str, Any]) -> None:
    stats, comparison = nih_doc["statistics"], nih_doc["published_comparison"]
    form = stats["form"]
    report.figure(prevalence_figure(stats), "Share of the images carrying each label, per part of the NIH split",
                  "nih-prevalence")
    report.figure(age_histogram(stats["age"], "NIH patient age per image"),
                  "NIH ages by decade; impossible ages are counted in the summary table below, not binned", "nih-age")
    report.figure(cooccurrence_figure(_square(stats["cooccurrence"]), f"NIH label co-occurrence ({form}), images"),
                  "Images carrying both labels; the diagonal is the class totals", "nih-cooccurrence")
    report.figure(cooccurrence_figure(_square(comparison["difference"]), "Ours - NIH release page", diverging=True),
                  "Co-occurrence minus the release page's table (its diagonal: images with only that label)",
                  "nih-cooccurrence-difference")
    report.paragraph(f"Against the NIH release page: {comparison['verdict']}")
    report.table(nih_summary_table(stats), f"NIH ChestX-ray14 ({nih_doc['inputs']['metadata']['file']}, form {form})")
    report.table(nih_class_table(stats), "NIH labels: images and patients per class, prevalence per split part")
    report.table(pd.DataFrame({"labels per image": list(stats["labels_per_image"]),
                               "images": list(stats["labels_per_image"].values())}),
                 "NIH labels per image (0 = No Finding)", folded=True)


def _jsrt_scr_statistics(report: Report, jsrt_stats: dict[str, Any], scr_stats: dict[str, Any]) -> None:
    subtlety = _square(jsrt_stats["subtlety_by_malignancy"]).rename_axis("subtlety").reset_index()
    report.table(subtlety, f"JSRT: {jsrt_stats['nodule_cases']} nodule cases by subtlety and malignancy "
                           f"({jsrt_stats['non_nodule_cases']} cases without a nodule)", folded=True)
    size = jsrt_stats["size_mm"]
    report.table(pd.DataFrame({"size (mm)": list(size["bins"]), "nodules": list(size["bins"].values())}),
                 f"JSRT nodule size ({size['unknown']} unknown)", folded=True)
    report.table(pd.DataFrame({"location": list(jsrt_stats["location"]),
                               "nodules": list(jsrt_stats["location"].values())}),
                 "JSRT nodule location", folded=True)
    areas = pd.DataFrame({f"{group} ({g['cases']} cases)": {obj: s["mean"] for obj, s in g["area_mm2"].items()}
                          for group, g in scr_stats["groups"].items()})
    report.table(areas.rename_axis("object").reset_index(), "SCR object areas, mean mm^2 per fold", folded=True)
