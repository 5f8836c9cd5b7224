"""Split tables (image, patient, part), the leakage check every split stage runs before writing, and the store rows
of a split's part or fold."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from cxrbench import artefacts
from cxrbench.errors import DataError


def check_no_leakage(split: pd.DataFrame, source: str) -> None:
    """Fail naming the patients if any patient has images in more than one part."""
    parts_per_patient = split.groupby("patient")["part"].nunique()
    leaking = parts_per_patient[parts_per_patient > 1].index.tolist()
    if leaking:
        shown = ", ".join(map(str, leaking[:20])) + (" ..." if len(leaking) > 20 else "")
        raise DataError(
            source,
            f"patient-level leakage: {len(leaking)} patients have images in more than one part: {shown}",
            "splits must be made by patient; check the split lists and the patient ids in the metadata",
        )


def carve_patients(patients: np.ndarray, fraction: float, rng: np.random.Generator) -> np.ndarray:
    """A seeded random `fraction` of the unique patients (at least one), returned sorted."""
    unique = np.unique(patients)
    n_pick = max(1, int(round(fraction * len(unique))))
    return np.sort(rng.choice(unique, size=n_pick, replace=False))


def require_held_out(labelled: pd.DataFrame, split: pd.DataFrame, source: str | Path,
                     split_file: str | Path = artefacts.SPLIT_NIH) -> None:
    """Refuse images the classifier was fitted or selected on.

    `labelled` has columns image and patient; DataError naming `source` if any of its images, or any of its
    patients, is in the train or val part of `split` (image, patient, part).
    """
    fitted = split[split["part"] != "test"]
    images = labelled.loc[labelled["image"].isin(fitted["image"]), "image"].unique()
    fitted_patients = fitted["patient"].astype(np.int64)
    patients = labelled.loc[labelled["patient"].astype(np.int64).isin(fitted_patients), "patient"].unique()
    found = [f"{len(ids)} {what}(s) (e.g. {', '.join(map(str, ids[:3]))})"
             for what, ids in (("image", images), ("patient", patients)) if len(ids)]
    if found:
        raise DataError(
            source,
            f"{' and '.join(found)} listed here are in the train/val parts of {split_file}; the classifier was trained "
            "or selected on them, so scoring them would overstate it",
            "evaluate only on held-out images: keep these labels with the official test list "
            "(data/raw/nih/test_list.txt) unchanged and rerun split_nih",
        )


def split_rows(index: pd.DataFrame, split: pd.DataFrame, part: str) -> np.ndarray:
    """Store rows (ascending) of the images of one part of a split table (image, part); `index` maps image to row."""
    row_of = dict(zip(index["image"], index["row"]))
    return np.sort(np.array([row_of[i] for i in split.loc[split["part"] == part, "image"]], dtype=np.int64))


def fold_rows(index: pd.DataFrame, split: pd.DataFrame, fold: int) -> np.ndarray:
    """Store rows (ascending) of the cases of one fold of a split table (case, fold); `index` maps case to row."""
    cases = split.loc[split["fold"] == fold, "case"]
    return np.sort(index.loc[index["case"].isin(cases), "row"].to_numpy(np.int64))


def random_patient_parts(patients: np.ndarray, fractions: dict[str, float], rng: np.random.Generator,
                         pinned_test: np.ndarray | list = ()) -> pd.Series:
    """A seeded random train/val/test part for every unique patient, by patient fractions (CheXNet style).

    `fractions` has train, val and test summing to 1. Patients in `pinned_test` go to test and count towards
    its share (the rest of test is drawn at random); if they alone exceed it, test is just them. Returns the
    part indexed by patient, sorted by patient, so the same seed and patients give the same parts.
    """
    unique = np.unique(patients)
    pinned = np.intersect1d(unique, np.asarray(pinned_test, dtype=unique.dtype))
    n_test = max(int(round(fractions["test"] * len(unique))), len(pinned))
    n_val = int(round(fractions["val"] * len(unique)))
    shuffled = rng.permutation(np.setdiff1d(unique, pinned))
    drawn_test = n_test - len(pinned)
    parts = pd.Series("train", index=pd.Index(unique, name="patient"), name="part")
    parts[np.concatenate([pinned, shuffled[:drawn_test]])] = "test"
    parts[shuffled[drawn_test:drawn_test + n_val]] = "val"
    return parts


def label_disagreements(current: pd.DataFrame, other: pd.DataFrame) -> pd.DataFrame:
    """Images whose label sets differ between two versions of the NIH metadata (as from nih.read_data_entry).

    One row per image of `current` that `other` labels differently or does not list: image, labels (in
    `current`), other_labels ('' where absent). Label order within Finding Labels does not matter.
    """
    def label_sets(table: pd.DataFrame) -> pd.Series:
        return table.set_index("image")["finding_labels"].str.split("|").map(lambda labels: "|".join(sorted(labels)))

    ours, theirs = label_sets(current), label_sets(other).reindex(current["image"]).fillna("")
    differs = ours.to_numpy() != theirs.to_numpy()
    return pd.DataFrame({"image": ours.index[differs], "labels": ours.to_numpy()[differs],
                         "other_labels": theirs.to_numpy()[differs]})
