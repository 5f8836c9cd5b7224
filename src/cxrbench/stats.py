"""Dataset statistics for NIH ChestX-ray14, JSRT and SCR, and the NIH release page's co-occurrence table.

Everything here returns plain dicts of Python numbers (JSON-ready, keyed by label names) or pandas tables;
the `format_*` functions turn them into the readable text `cxrbench stats` prints.

The release page's co-occurrence matrix (`published/nih_cooccurrence.csv`, copied from the page's section
A.2 with its totals row) is symmetric, and its diagonal is NOT the class totals: it is the number of images
whose only label is that class. Evidence, computed on Data_Entry_2017_v2020.csv (112,120 images):

    candidate for the diagonal           sum |candidate - published| over 14   largest
    images with only that label          49                                    15 (Pneumonia)
    images carrying the label (totals)   50,202                                10,342
    images listing it first              20,785                                7,333

The single-label counts agree exactly for Fibrosis (727) and Hernia (110) and are within 15 elsewhere; the
largest gap is Pneumonia, the class v2020 added most labels to (1,431 vs 1,353 images).

Which file the published table was computed from: not v2020. Against v2020 every off-diagonal cell and
every total of ours is >= the published one (50 of the 91 pairs and 8 of the 14 totals larger, none
smaller), which is what adding labels to an older file does; and the 15 pairs among the six classes that
have no boxes (Consolidation .. Hernia) agree exactly, as they should if v2020's additions (labels put on
images that have boxes, per the release notes) were all of the eight boxed classes. The published table therefore comes from the original labels of
October 2017, whose totals it matches on 13 of 14 classes (Infiltration: 19,871 on the page,
19,870 in the file). `compare_with_published` reaches its verdict from the numbers of whichever file it is
given, by these same tests.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
import pandas as pd
from matplotlib import colors
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from cxrbench import store
from cxrbench.datasets import jsrt, nih, scr
from cxrbench.errors import DataError
from cxrbench.fileio import sha256_file

# Named here, not imported from cxrbench.published: that package reads results.yaml, which statistics never use
# (a stage depends on the data files its modules name: cxrbench.pipeline_code).
PUBLISHED_COOCCURRENCE_PATH = Path(__file__).with_name("published") / "nih_cooccurrence.csv"
PUBLISHED_SOURCE = "NIH release page (nihcc.app.box.com/v/ChestXray-NIHCC), section A.2, October 2017"
TOTALS_ROW = "total"
SHORT_NAMES = dict(
    zip(
        nih.LABELS,
        ("Atel", "Card", "Eff", "Infil", "Mass", "Nod", "Pneu", "Ptx", "Cons", "Edema", "Emph", "Fib", "PT", "Hern"),
    )
)
IMPOSSIBLE_AGE_YEARS = nih.IMPOSSIBLE_AGE_YEARS
DECADES = 10  # age bins 0-9 .. 90-99, then one bin up to the impossible-age threshold
NODULE_SIZE_EDGES_MM = (0.0, 10.0, 15.0, 20.0, 25.0, 30.0, math.inf)
SUBTLETY_NAMES = {1: "extremely subtle", 2: "very subtle", 3: "subtle", 4: "relatively obvious", 5: "obvious"}
SCR_FIELD_MM = scr.MASK_SIZE * scr.PIXEL_MM  # both the JSRT and SCR grids cover 358.4 mm
_PART_ORDER = ("train", "val", "test")
_AREA_CHUNK = 16  # cases per pass over a mask array: bounds the temporaries on a memory-mapped store


# ---------------------------------------------------------------------------------------------- helpers


def _counts(values: pd.Series, order: list | tuple | None = None) -> dict[str, int]:
    """Value counts as {str(value): int}, in `order` (zeros kept) or sorted by value."""
    counts = values.value_counts()
    keys = list(order) if order is not None else sorted(counts.index)
    return {str(key): int(counts.get(key, 0)) for key in keys}


def _summary(values: np.ndarray) -> dict[str, float | int | None]:
    """count, min, median, mean, sd (n-1) and max of the finite values; None where there are none."""
    finite = np.asarray(values, dtype=np.float64)
    finite = finite[np.isfinite(finite)]
    if finite.size == 0:
        return {"count": 0, "min": None, "median": None, "mean": None, "sd": None, "max": None}
    return {
        "count": int(finite.size),
        "min": float(finite.min()),
        "median": float(np.median(finite)),
        "mean": float(finite.mean()),
        "sd": float(finite.std(ddof=1)) if finite.size > 1 else None,
        "max": float(finite.max()),
    }


def _age_bin_names() -> list[str]:
    return [f"{10 * d}-{10 * d + 9}" for d in range(DECADES)] + [f"{10 * DECADES}-{IMPOSSIBLE_AGE_YEARS}"]


def age_distribution(ages: np.ndarray, impossible: np.ndarray, ids: pd.DataFrame) -> dict[str, Any]:
    """Ages in years binned by decade, with the impossible ones counted and listed (not binned, not hidden).

    `ages` may hold NaN for unknown ages (counted as `unknown`); `impossible` marks the rows to report
    instead of binning; `ids` (one row per age) identifies each listed row, e.g. image and patient.
    """
    ages = np.asarray(ages, dtype=np.float64)
    impossible = np.asarray(impossible, dtype=bool)
    known = np.isfinite(ages)
    plausible = known & ~impossible
    decade = np.minimum(np.floor(ages[plausible] / 10).astype(np.int64), DECADES)
    listed = ids.loc[known & impossible].assign(age_years=ages[known & impossible])
    return {
        "bins": dict(zip(_age_bin_names(), np.bincount(decade, minlength=DECADES + 1).tolist())),
        "unknown": int((~known).sum()),
        "plausible": _summary(ages[plausible]),
        "impossible": {
            "threshold_years": IMPOSSIBLE_AGE_YEARS,
            "count": int(len(listed)),
            "rows": listed.to_dict(orient="records"),
        },
    }


def _label_frame(matrix: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame(matrix, index=list(nih.LABELS), columns=list(nih.LABELS))


def _nested(frame: pd.DataFrame) -> dict[str, dict[str, int]]:
    """A labelled square table as {row label: {column label: int}}."""
    return {str(row): {str(col): int(v) for col, v in values.items()} for row, values in frame.iterrows()}


# --------------------------------------------------------------------------------------------- NIH


def cooccurrence(labels: np.ndarray) -> pd.DataFrame:
    """14 x 14 image counts with both labels (`M.T @ M`); the diagonal is the class totals."""
    multi_hot = np.asarray(labels, dtype=np.int64)
    return _label_frame(multi_hot.T @ multi_hot)


def single_label_counts(labels: np.ndarray) -> np.ndarray:
    """Images per class whose only label is that class (the release page's diagonal)."""
    multi_hot = np.asarray(labels, dtype=np.int64)
    return multi_hot[multi_hot.sum(axis=1) == 1].sum(axis=0)


def release_page_matrix(labels: np.ndarray) -> pd.DataFrame:
    """Our co-occurrence in the release page's convention: the diagonal holds single-label counts."""
    matrix = cooccurrence(labels).to_numpy(copy=True)
    np.fill_diagonal(matrix, single_label_counts(labels))
    return _label_frame(matrix)


def _per_split(df: pd.DataFrame, labels: np.ndarray, split: pd.DataFrame) -> dict[str, Any]:
    """Images, patients, No Finding and per-class counts and prevalence for each part of a split table."""
    missing = {"image", "part"} - set(split.columns)
    if missing:
        raise ValueError(f"split table lacks columns {sorted(missing)}; expected image, part (and patient)")
    rows = pd.Index(df["image"]).get_indexer(split["image"])
    if (rows < 0).any():
        unknown = split.loc[rows < 0, "image"].tolist()
        raise ValueError(f"{len(unknown)} split images are not in the metadata, e.g. {unknown[:5]}")
    parts = split["part"].astype(str).to_numpy()
    patients = split["patient"].to_numpy() if "patient" in split.columns else df["patient"].to_numpy()[rows]
    names = [p for p in _PART_ORDER if p in set(parts)] + sorted(set(parts) - set(_PART_ORDER))
    per_part = pd.DataFrame(labels[rows], columns=list(nih.LABELS)).groupby(parts).sum()
    result: dict[str, Any] = {}
    for name in names:
        in_part = parts == name
        totals = per_part.loc[name]
        images = int(in_part.sum())
        result[name] = {
            "images": images,
            "patients": int(pd.unique(patients[in_part]).size),
            "no_finding": int((labels[rows[in_part]].sum(axis=1) == 0).sum()),
            "class_totals": {label: int(totals[label]) for label in nih.LABELS},
            "prevalence": {label: float(totals[label]) / images for label in nih.LABELS},
        }
    return {"parts": result, "metadata_images_in_no_part": int(len(df) - pd.unique(rows).size)}


def _box_statistics(df: pd.DataFrame, labels: np.ndarray, boxes: pd.DataFrame) -> dict[str, Any]:
    """Boxes and boxed images per class, and boxes that disagree with the metadata."""
    rows = pd.Index(df["image"]).get_indexer(boxes["image"])
    known = rows >= 0
    columns = pd.Index(nih.LABELS).get_indexer(boxes["label"])
    # A box whose class is missing from its image's Finding Labels: the 2017 file has some, v2020 none.
    unlabelled = labels[rows[known], columns[known]] == 0
    per_class = boxes.groupby("label")["image"]
    return {
        "boxes": int(len(boxes)),
        "images": int(boxes["image"].nunique()),
        "boxes_per_class": {label: int(per_class.size().get(label, 0)) for label in nih.BOX_LABELS},
        "images_per_class": {label: int(per_class.nunique().get(label, 0)) for label in nih.BOX_LABELS},
        "boxes_on_images_not_in_metadata": int((~known).sum()),
        "boxes_whose_class_is_not_in_finding_labels": int(unlabelled.sum()),
    }


def nih_statistics(
    df: pd.DataFrame, bbox: pd.DataFrame | None = None, split: pd.DataFrame | None = None
) -> dict[str, Any]:
    """Statistics of an NIH metadata table as returned by `nih.read_data_entry`.

    Keys: form, images, patients, images_per_patient (summary), no_finding, class_totals and
    patients_per_class (keyed by the 14 labels), labels_per_image ({"0": n, ...}; 0 is No Finding), views,
    sex, age (decade bins; impossible ages, as flagged by the reader, counted and listed by image),
    cooccurrence ({label: {label: images with both}}, diagonal = class_totals); with `bbox` (as from
    `nih.read_bbox`) also boxes; with `split` (columns image, part, optionally patient) also splits.
    Raises ValueError when the split names images the metadata does not hold.
    """
    labels = nih.label_matrix(df)
    per_image = labels.sum(axis=1, dtype=np.int64)
    totals = labels.sum(axis=0, dtype=np.int64)
    patients_with = pd.DataFrame(labels, columns=list(nih.LABELS)).groupby(df["patient"].to_numpy()).max().sum()
    images_per_patient = df.groupby("patient").size().to_numpy()
    stats: dict[str, Any] = {
        "form": df.attrs.get("form"),
        "images": int(len(df)),
        "patients": int(df["patient"].nunique()),
        "images_per_patient": _summary(images_per_patient),
        "no_finding": int((df["finding_labels"] == nih.NO_FINDING).sum()),
        "class_totals": {label: int(n) for label, n in zip(nih.LABELS, totals)},
        "patients_per_class": {label: int(patients_with[label]) for label in nih.LABELS},
        "labels_per_image": {str(k): int(n) for k, n in enumerate(np.bincount(per_image, minlength=1))},
        "views": _counts(df["view"], ("PA", "AP")),
        "sex": _counts(df["sex"], ("M", "F")),
        "age": age_distribution(
            df["age_years"].to_numpy(), (df["age_flag"] == "impossible").to_numpy(), df[["image", "patient"]]
        ),
        "cooccurrence": _nested(cooccurrence(labels)),
    }
    if bbox is not None:
        stats["boxes"] = _box_statistics(df, labels, bbox)
    if split is not None:
        stats["splits"] = _per_split(df, labels, split)
    return stats


def read_published_cooccurrence(path: str | Path = PUBLISHED_COOCCURRENCE_PATH) -> tuple[pd.DataFrame, pd.Series]:
    """The release page's 14 x 14 table (diagonal = single-label images) and its totals row, validated."""
    path = Path(path)
    fix = "restore src/cxrbench/published/nih_cooccurrence.csv from the repository"
    try:
        table = pd.read_csv(path, index_col=0, dtype=str, keep_default_na=False)
    except FileNotFoundError:
        raise DataError(path, "the published co-occurrence table is missing", fix) from None
    expected_rows = list(nih.LABELS) + [TOTALS_ROW]
    if list(table.columns) != list(nih.LABELS) or list(table.index) != expected_rows:
        raise DataError(path, f"expected a header 'label' + the 14 labels and rows {expected_rows}", fix)
    if not table.apply(lambda column: column.str.fullmatch(r"\d+")).all().all():
        raise DataError(path, "expected whole non-negative numbers in every cell", fix)
    numbers = table.astype(np.int64)
    matrix, totals = numbers.loc[list(nih.LABELS)], numbers.loc[TOTALS_ROW]
    if not np.array_equal(matrix.values, matrix.values.T):
        raise DataError(path, "the 14 x 14 table is not symmetric, as the published one is", fix)
    return matrix, totals.rename("total")


@dataclass(frozen=True)
class CooccurrenceComparison:
    """The release page's table next to ours (same convention: diagonal = single-label images)."""

    form: str | None
    published: pd.DataFrame
    published_totals: pd.Series
    ours: pd.DataFrame
    our_totals: pd.Series
    verdict: str

    @property
    def differences(self) -> pd.DataFrame:
        return self.ours - self.published

    @property
    def totals_differences(self) -> pd.Series:
        return self.our_totals - self.published_totals

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": PUBLISHED_SOURCE,
            "diagonal": "images whose only label is the class",
            "cells_differing": int((self.differences.values != 0).sum()),
            "totals_differing": int((self.totals_differences != 0).sum()),
            "published": _nested(self.published),
            "published_totals": {k: int(v) for k, v in self.published_totals.items()},
            "ours": _nested(self.ours),
            "difference": _nested(self.differences),
            "totals_difference": {k: int(v) for k, v in self.totals_differences.items()},
            "verdict": self.verdict,
        }

    def format(self) -> str:
        def block(title: str, matrix: pd.DataFrame, totals: pd.Series) -> str:
            shown = pd.concat([matrix, totals.to_frame().T]).rename(columns=SHORT_NAMES)
            return f"{title}\n{shown.to_string()}"

        return "\n\n".join(
            [
                block(f"Published co-occurrence ({PUBLISHED_SOURCE}); diagonal = images with only that label; "
                      "last row = class totals", self.published, self.published_totals),
                block(f"Ours ({self.form or 'unknown form'}), same convention", self.ours, self.our_totals),
                block("Ours - published", self.differences, self.totals_differences),
                self.verdict,
            ]
        )


def _verdict(differences: np.ndarray, totals_differences: np.ndarray, form: str | None) -> str:
    """Which labels the published table was computed from, judged from the differences alone."""
    this_file = f"this file ({form or 'unknown form'})"
    if not differences.any() and not totals_differences.any():
        return f"The published table matches {this_file} exactly, totals included."
    pairs = differences[~np.eye(len(nih.LABELS), dtype=bool)]
    row, col = np.unravel_index(np.argmax(np.abs(differences)), differences.shape)
    facts = (
        f"The published table does not match {this_file}: {int((differences != 0).sum())} of "
        f"{differences.size} cells and {int((totals_differences != 0).sum())} of {len(totals_differences)} "
        f"class totals differ (largest cell difference {int(differences[row, col]):+d}, "
        f"{nih.LABELS[row]} / {nih.LABELS[col]})."
    )
    # Single-label counts (the diagonal) can move either way when labels are added, so only pair
    # counts and totals tell the direction of a revision.
    if (pairs >= 0).all() and (totals_differences >= 0).all():
        return (
            f"{facts} Every pair count and class total here is at least the published one: the pattern of "
            "labels added after publication. The published table comes from an earlier version of the labels "
            "than this file: the original Data_Entry_2017.csv of October 2017 (whose totals the release page "
            "matches on 13 of 14 classes), not the 2020 revision, which added labels on boxed images."
        )
    if (pairs <= 0).all() and (totals_differences <= 0).all():
        return (
            f"{facts} Every pair count and class total here is at most the published one: this file holds "
            "fewer labels than the published table (a subset of the images, or labels removed)."
        )
    return (
        f"{facts} The differences go both ways, so no single revision that only added (or only removed) "
        "labels explains them. The release page's totals are documented to match the original 2017 file "
        "on 13 of 14 classes (Infiltration 19,871 published, 19,870 in the file)."
    )


def compare_with_published(
    df: pd.DataFrame, path: str | Path = PUBLISHED_COOCCURRENCE_PATH
) -> CooccurrenceComparison:
    """Compare the release page's co-occurrence table with the one computed from `df`, cell by cell."""
    published_matrix, published_totals = read_published_cooccurrence(path)
    labels = nih.label_matrix(df)
    ours = release_page_matrix(labels)
    our_totals = pd.Series(labels.sum(axis=0, dtype=np.int64), index=list(nih.LABELS), name="total")
    verdict = _verdict(
        (ours - published_matrix).to_numpy(), (our_totals - published_totals).to_numpy(), df.attrs.get("form")
    )
    return CooccurrenceComparison(df.attrs.get("form"), published_matrix, published_totals, ours, our_totals, verdict)


def describe_nih(
    metadata: str | Path, bbox: str | Path | None = None, split: str | Path | None = None
) -> tuple[dict[str, Any], CooccurrenceComparison]:
    """Statistics of NIH metadata files as one JSON-ready document (inputs with sha256, statistics, the
    comparison with the release page), and that comparison. DataError when the split does not fit."""
    entries = nih.read_data_entry(metadata)
    boxes = nih.read_bbox(bbox) if bbox else None
    split_table = read_split_table(split) if split else None
    try:
        statistics = nih_statistics(entries, boxes, split_table)
    except ValueError as error:  # only the split can disagree with the metadata
        raise DataError(split, str(error), "use a split table made from this metadata file") from None
    comparison = compare_with_published(entries)
    inputs = {"metadata": metadata, "bbox": bbox, "split": split}
    return {
        "dataset": "nih",
        "inputs": {role: {"file": Path(path).name, "sha256": sha256_file(path)} for role, path in inputs.items() if path},
        "statistics": statistics,
        "published_comparison": comparison.to_dict(),
    }, comparison


def cooccurrence_figure(table: pd.DataFrame, title: str, *, diverging: bool | None = None) -> Figure:
    """Heat map of a labelled square table with every count written in its cell (Agg canvas, no pyplot).

    Counts use a sequential colour map, differences (`diverging`; by default: tables with a negative cell) a
    diverging one centred on zero; both on a symmetric-log scale so the large diagonal does not wash out the pair
    counts.
    """
    values = table.to_numpy(dtype=np.float64)
    largest = max(float(np.abs(values).max()), 1.0)
    if diverging is None:
        diverging = bool((values < 0).any())
    cmap = matplotlib.colormaps["RdBu_r" if diverging else "viridis"]
    norm = colors.SymLogNorm(linthresh=1.0, vmin=-largest if diverging else 0.0, vmax=largest, base=10)
    figure = Figure(figsize=(5.7, 5.0), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    image = axes.imshow(values, cmap=cmap, norm=norm)
    ticks = np.arange(len(table))
    axes.set_xticks(ticks, [SHORT_NAMES.get(str(c), str(c)) for c in table.columns], rotation=45, ha="right")
    axes.set_yticks(ticks, [str(r) for r in table.index])
    rgba = cmap(norm(values))
    dark = rgba[..., :3] @ np.array([0.299, 0.587, 0.114]) < 0.5
    for (row, col), value in np.ndenumerate(values):
        axes.text(col, row, f"{value:.0f}", ha="center", va="center", fontsize=5.5,
                  color="white" if dark[row, col] else "black")
    axes.set_title(title)
    figure.colorbar(image, ax=axes, shrink=0.8, label="images")
    return figure


def format_nih_statistics(stats: dict[str, Any]) -> str:
    """The NIH statistics as readable text."""
    images = stats["images"]

    def share(n: int) -> str:
        return f"{n:,} ({100 * n / images:.1f}%)" if images else f"{n:,}"

    per_patient = stats["images_per_patient"]
    lines = [
        f"images {images:,}, patients {stats['patients']:,} (images per patient: median "
        f"{per_patient['median']:g}, max {per_patient['max']:g}); metadata form: {stats['form']}",
        f"No Finding: {share(stats['no_finding'])}",
        "",
        pd.DataFrame(
            {
                "images": stats["class_totals"],
                "% of images": {k: 100 * v / images if images else 0.0 for k, v in stats["class_totals"].items()},
                "patients": stats["patients_per_class"],
            }
        ).to_string(float_format=lambda v: f"{v:.2f}"),
        "",
        "labels per image: " + ", ".join(f"{k}: {n:,}" for k, n in stats["labels_per_image"].items()),
        "views: " + ", ".join(f"{k} {share(n)}" for k, n in stats["views"].items()),
        "sex: " + ", ".join(f"{k} {share(n)}" for k, n in stats["sex"].items()),
        _format_age(stats["age"]),
        "",
        "co-occurrence (images with both labels; diagonal = class totals):",
        pd.DataFrame(stats["cooccurrence"]).T.rename(columns=SHORT_NAMES).to_string(),
    ]
    if "boxes" in stats:
        boxes = stats["boxes"]
        lines += [
            "",
            f"boxes: {boxes['boxes']:,} on {boxes['images']:,} images; per class "
            + ", ".join(f"{SHORT_NAMES[k]} {n}" for k, n in boxes["boxes_per_class"].items()),
            f"  boxes on images not in the metadata: {boxes['boxes_on_images_not_in_metadata']}; "
            f"boxes whose class is not in the image's Finding Labels: "
            f"{boxes['boxes_whose_class_is_not_in_finding_labels']}",
        ]
    if "splits" in stats:
        parts = stats["splits"]["parts"]
        prevalence = pd.DataFrame({part: s["prevalence"] for part, s in parts.items()}).rename(index=SHORT_NAMES)
        lines += [
            "",
            "splits: " + "; ".join(f"{p} {s['images']:,} images, {s['patients']:,} patients, "
                                   f"No Finding {s['no_finding']:,}" for p, s in parts.items())
            + f"; metadata images in no part: {stats['splits']['metadata_images_in_no_part']:,}",
            "prevalence per part (%):",
            (100 * prevalence).to_string(float_format=lambda v: f"{v:.2f}"),
        ]
    return "\n".join(lines)


def _format_age(age: dict[str, Any]) -> str:
    summary, impossible = age["plausible"], age["impossible"]
    text = "age (years): " + (
        f"min {summary['min']:g}, median {summary['median']:g}, max {summary['max']:g}; " if summary["count"] else ""
    )
    text += ", ".join(f"{k}: {n:,}" for k, n in age["bins"].items())
    if age["unknown"]:
        text += f"; unknown {age['unknown']:,}"
    text += f"\nimpossible ages (> {impossible['threshold_years']} years): {impossible['count']}"
    for row in impossible["rows"]:
        text += "\n  " + ", ".join(f"{k} {v:g}" if isinstance(v, float) else f"{k} {v}" for k, v in row.items())
    return text


# -------------------------------------------------------------------------------------------- JSRT


def _location_group(location: pd.Series) -> pd.Series:
    """Lower-case location without segment notes: 'l.upper lobe(S5)' and 'L.Upper lobe' both -> 'l.upper lobe'."""
    stripped = location.str.lower().str.replace(r"\(.*?\)", "", regex=True)
    return stripped.str.split().str.join(" ").replace("", "unrecorded")


def jsrt_statistics(metadata: pd.DataFrame) -> dict[str, Any]:
    """Statistics of the JSRT metadata table from `jsrt.read_metadata`.

    Keys: cases, nodule_cases, non_nodule_cases, sex, age (decade bins, unknown ages counted), and for the
    nodule cases: subtlety ({"1 extremely subtle": n, ...}), size_mm (bins (0,10], (10,15] .. (30,inf),
    unknown count and summary), malignancy, location (segment notes dropped, see `_location_group`) and
    subtlety_by_malignancy.
    """
    nodules = metadata[metadata["nodule"]]
    ages = metadata["age"].astype("Float64").to_numpy(dtype=np.float64, na_value=np.nan)
    sizes = nodules["size_mm"].to_numpy(dtype=np.float64)
    size_bins = pd.cut(pd.Series(sizes), bins=list(NODULE_SIZE_EDGES_MM), right=True)
    subtlety = nodules["subtlety"].astype(int).map(lambda s: f"{s} {SUBTLETY_NAMES[s]}")
    subtlety_names = [f"{s} {name}" for s, name in SUBTLETY_NAMES.items()]
    by_malignancy = pd.crosstab(subtlety, nodules["malignancy"]).reindex(
        index=subtlety_names, columns=["malignant", "benign"], fill_value=0
    )
    return {
        "cases": int(len(metadata)),
        "nodule_cases": int(len(nodules)),
        "non_nodule_cases": int((~metadata["nodule"]).sum()),
        "sex": _counts(metadata["sex"], ("male", "female")),
        "age": age_distribution(ages, np.isfinite(ages) & (ages > IMPOSSIBLE_AGE_YEARS), metadata[["case"]]),
        "subtlety": _counts(subtlety, subtlety_names),
        "size_mm": {
            "bins": {str(interval): int(n) for interval, n in size_bins.value_counts(sort=False).items()},
            "unknown": int(np.isnan(sizes).sum()),
            "summary": _summary(sizes),
        },
        "malignancy": _counts(nodules["malignancy"], ("malignant", "benign")),
        "location": _counts(_location_group(nodules["location"])),
        "subtlety_by_malignancy": _nested(by_malignancy),
    }


def format_jsrt_statistics(stats: dict[str, Any]) -> str:
    """The JSRT statistics as readable text."""
    size = stats["size_mm"]
    return "\n".join(
        [
            f"cases {stats['cases']}: {stats['nodule_cases']} with a nodule, {stats['non_nodule_cases']} without",
            "sex: " + ", ".join(f"{k} {n}" for k, n in stats["sex"].items()),
            _format_age(stats["age"]),
            "",
            "nodules by subtlety and malignancy:",
            pd.DataFrame(stats["subtlety_by_malignancy"]).T.assign(
                all=lambda t: t.sum(axis=1)).to_string(),
            "",
            "nodule size (mm): " + ", ".join(f"{k}: {n}" for k, n in size["bins"].items())
            + (f"; unknown {size['unknown']}" if size["unknown"] else "")
            + (f"; median {size['summary']['median']:g}, mean {size['summary']['mean']:.1f}"
               if size["summary"]["count"] else ""),
            "malignancy: " + ", ".join(f"{k} {n}" for k, n in stats["malignancy"].items()),
            "location: " + ", ".join(f"{k} {n}" for k, n in stats["location"].items()),
        ]
    )


# --------------------------------------------------------------------------------------------- SCR


def _scr_pixel_mm(packed: np.ndarray, pixel_mm: float | None) -> float:
    return SCR_FIELD_MM / packed.shape[1] if pixel_mm is None else float(pixel_mm)


def scr_object_areas(packed: np.ndarray, pixel_mm: float | None = None) -> np.ndarray:
    """(n, 5) float64 object areas in mm^2 from bit-packed masks (n, S, S) uint8, bit i = scr.OBJECTS[i].

    `pixel_mm` defaults to the grid's pixel size for the SCR field of view (358.4 mm / S). Works through
    the array in chunks, so a memory-mapped store is never loaded whole.
    """
    if packed.ndim != 3 or packed.shape[1] != packed.shape[2] or packed.dtype != np.uint8:
        raise ValueError(f"expected bit-packed masks of shape (n, S, S) and dtype uint8, got {packed.shape} {packed.dtype}")
    pixel_mm = _scr_pixel_mm(packed, pixel_mm)
    bits = 1 << np.arange(len(scr.OBJECTS), dtype=np.uint8)
    pixels = np.empty((len(packed), len(bits)), dtype=np.int64)
    for start in range(0, len(packed), _AREA_CHUNK):
        chunk = np.asarray(packed[start : start + _AREA_CHUNK])
        for column, bit in enumerate(bits):
            pixels[start : start + len(chunk), column] = np.count_nonzero(chunk & bit, axis=(1, 2))
    return pixels * pixel_mm**2


def scr_statistics(packed: np.ndarray, folds: np.ndarray | list[int], pixel_mm: float | None = None) -> dict[str, Any]:
    """Object areas (mm^2) per SCR fold and over all cases: summary per object, and cases per fold."""
    folds = np.asarray(folds)
    if len(folds) != len(packed):
        raise ValueError(f"{len(folds)} folds given for {len(packed)} mask images")
    areas = scr_object_areas(packed, pixel_mm)
    groups = {f"fold {fold}": folds == fold for fold in sorted(set(folds.tolist()))}
    groups["all"] = np.ones(len(folds), dtype=bool)
    return {
        "pixel_mm": _scr_pixel_mm(packed, pixel_mm),
        "groups": {
            name: {
                "cases": int(chosen.sum()),
                "area_mm2": {obj: _summary(areas[chosen, i]) for i, obj in enumerate(scr.OBJECTS)},
            }
            for name, chosen in groups.items()
        },
    }


def format_scr_statistics(stats: dict[str, Any]) -> str:
    """The SCR area statistics as readable text: one table of mean (sd) per object and group."""
    def mean_sd(summary: dict[str, Any]) -> str:
        if not summary["count"]:
            return "-"
        return f"{summary['mean']:.0f}" + (f" ({summary['sd']:.0f})" if summary["sd"] is not None else "")

    table = pd.DataFrame(
        {
            f"{name} ({group['cases']})": {obj: mean_sd(summary) for obj, summary in group["area_mm2"].items()}
            for name, group in stats["groups"].items()
        }
    )
    return f"object area, mm^2, mean (sd), pixel {stats['pixel_mm']:g} mm; cases per group in brackets\n" + table.to_string()


# ------------------------------------------------------------------------------------------ inputs


def read_split_table(path: str | Path) -> pd.DataFrame:
    """A split table CSV (as the split stages write: image, part, optionally patient), parts as strings."""
    path = Path(path)
    fix = "pass a split table with columns image and part (e.g. data/splits/nih.csv from the split stage)"
    try:
        table = pd.read_csv(path, dtype={"image": str, "part": str})
    except FileNotFoundError:
        raise DataError(path, "split table not found", fix) from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        raise DataError(path, f"cannot be read as CSV: {error}", fix) from None
    missing = {"image", "part"} - set(table.columns)
    if missing:
        raise DataError(path, f"missing columns {sorted(missing)}; found {list(table.columns)}", fix)
    if table["image"].duplicated().any():
        repeated = table.loc[table["image"].duplicated(), "image"].tolist()
        raise DataError(path, f"{len(repeated)} images listed more than once, e.g. {repeated[:5]}", fix)
    return table


def scr_masks_from_store(store_dir: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """(packed masks memory map, SCR fold per row) from the decode stage's JSRT store."""
    store_dir = Path(store_dir)
    fix = "run the decode_jsrt stage (dvc repro decode_jsrt) or point --store at data/store/jsrt"
    try:
        masks = store.open_array(store.find_masks(store_dir))
        index = store.read_index(store_dir)
    except (FileNotFoundError, ValueError) as error:
        raise DataError(store_dir, f"not a decoded JSRT store: {error}", fix) from None
    if "fold" not in index.columns or len(index) != len(masks):
        raise DataError(
            store_dir / store.INDEX,
            f"expected one row per mask image ({len(masks)}) with a 'fold' column; found {len(index)} rows, "
            f"columns {list(index.columns)}",
            fix,
        )
    return masks, index["fold"].to_numpy()


def scr_masks_from_download(scr_dir: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """(packed masks, SCR fold per case) read from a SCR copy's GIFs, for every case with any mask there."""
    scr_dir = Path(scr_dir)
    stems = {path.stem for path in scr_dir.glob("scratch/fold[12]/masks/*/*.gif")}
    cases = [case for case in jsrt.CASES if case in stems]
    if not cases:
        raise DataError(scr_dir, "no SCR masks found (expected scratch/fold1/masks/<object>/<case>.gif)", scr.GET_FILES)
    scr.require_tree(scr_dir, cases)
    packed = np.stack([store.pack_masks(scr.read_case_masks(scr_dir, case)) for case in cases])
    return packed, np.array([scr.fold_of(case) for case in cases])
