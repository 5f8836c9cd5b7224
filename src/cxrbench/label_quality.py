"""How good NIH ChestX-ray14's labels are: its NLP-mined labels against Google's radiologists on the same images.
No images and no model: the NIH metadata (Data_Entry) and Google's label files only.

Sets and findings (Google's, with the NIH labels whose union answers each):
- four findings (Majkowska et al. 2019; test and validation images, adjudicated by three radiologists):
  Pneumothorax = Pneumothorax, Nodule or mass = Nodule | Mass, Airspace opacity = the union the expert-label
  evaluation scores (NIH_LABELS_OF). Fracture has no NIH label and is left out. Images whose finding was not
  adjudicated (NA) are left out of that finding.
- all findings (Nabulsi et al. 2021; 810 PA test images, majority of three radiologists): each of the 14 NIH
  findings against the same label, and Abnormal = any finding (NIH: not "No Finding").

Per finding: images, expert positives, NIH positives, both; NIH's sensitivity (of the expert positives, the
share NIH labels) and positive predictive value (of NIH's positives, the share the experts confirm); Cohen's
kappa with a percentile bootstrap interval over patients (an image's labels are not independent of the other
images of its patient). A measure whose denominator is zero is NaN.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cxrbench import seed_streams
from cxrbench.datasets import google_labels, nih
from cxrbench.metrics.roc import percentile_interval, resample_indices
from cxrbench.vocabulary import LABELS

FOUR_FINDINGS_SET, ALL_FINDINGS_SET = "four_findings", "all_findings"
ABNORMAL = "Abnormal"
# Google's finding -> the NIH labels whose union (labels) or maximum (scores) answers it; empty: none does.
NIH_LABELS_OF: dict[str, tuple[str, ...]] = {
    "Fracture": (),
    "Pneumothorax": ("Pneumothorax",),
    "Airspace_Opacity": ("Consolidation", "Pneumonia", "Infiltration", "Edema", "Atelectasis"),
    "Nodule_Mass": ("Nodule", "Mass"),
}
COLUMNS = ["set", "finding", "nih_labels", "images", "expert_positive", "nih_positive", "both_positive",
           "sensitivity", "ppv", "kappa", "kappa_ci_low", "kappa_ci_high"]


def kappa(cells: np.ndarray) -> np.ndarray:
    """Cohen's kappa of 2 x 2 tables given as (..., 4) counts: both positive, NIH only, expert only, neither."""
    both, nih_only, expert_only, neither = np.moveaxis(np.asarray(cells, dtype=np.float64), -1, 0)
    n = both + nih_only + expert_only + neither
    observed = (both + neither) / n
    chance = ((both + nih_only) * (both + expert_only) + (expert_only + neither) * (nih_only + neither)) / n**2
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(chance < 1, (observed - chance) / (1 - chance), np.nan)


def agreement(nih_positive: np.ndarray, expert_positive: np.ndarray, patients: np.ndarray,
              bootstrap: dict[str, Any], seed: int) -> dict[str, Any]:
    """One finding's counts, sensitivity, PPV and kappa (with its interval) over paired 0/1 labels."""
    a, e = np.asarray(nih_positive, dtype=bool), np.asarray(expert_positive, dtype=bool)
    cell_of_image = np.select([a & e, a & ~e, ~a & e], [0, 1, 2], default=3)
    units, unit_of_image = np.unique(patients, return_inverse=True)
    per_unit = np.zeros((len(units), 4), dtype=np.int64)
    np.add.at(per_unit, (unit_of_image, cell_of_image), 1)
    cells = per_unit.sum(axis=0)
    draws = resample_indices(len(units), bootstrap["resamples"], seed)
    low, high = percentile_interval(kappa(per_unit[draws].sum(axis=1))[:, None], bootstrap["alpha"])
    with np.errstate(divide="ignore", invalid="ignore"):
        return {"images": int(len(a)), "expert_positive": int(e.sum()), "nih_positive": int(a.sum()),
                "both_positive": int(cells[0]), "sensitivity": cells[0] / e.sum() if e.sum() else np.nan,
                "ppv": cells[0] / a.sum() if a.sum() else np.nan, "kappa": float(kappa(cells)),
                "kappa_ci_low": float(low[0]), "kappa_ci_high": float(high[0])}


def label_quality(entries: pd.DataFrame, four_findings: pd.DataFrame, all_findings: pd.DataFrame,
                  bootstrap: dict[str, Any], seed: int) -> pd.DataFrame:
    """The table of COLUMNS for both sets: `entries` as nih.read_data_entry returns them, `four_findings` the
    adjudicated labels of google_labels.read_four_findings_labels (test and validation together),
    `all_findings` those of read_all_findings_labels. Labelled images missing from `entries` are left out."""
    nih_labels = pd.DataFrame(nih.label_matrix(entries).astype(bool), columns=list(LABELS), index=entries["image"])
    patient_of = entries.set_index("image")["patient"]
    rows = []
    four = four_findings[four_findings["image"].isin(nih_labels.index)]
    for finding, sources in NIH_LABELS_OF.items():
        if not sources:
            continue
        judged = four[four[finding].notna()]
        ours = nih_labels.loc[judged["image"], list(sources)].any(axis=1).to_numpy()
        rows.append({"set": FOUR_FINDINGS_SET, "finding": finding, "nih_labels": " | ".join(sources),
                     **agreement(ours, judged[finding].astype(bool).to_numpy(),
                                 patient_of.loc[judged["image"]].to_numpy(), bootstrap, seed)})
    every = all_findings[all_findings["image"].isin(nih_labels.index)]
    ours_all = nih_labels.loc[every["image"]]
    patients = patient_of.loc[every["image"]].to_numpy()
    for finding in (ABNORMAL, *LABELS):
        ours = ours_all.any(axis=1) if finding == ABNORMAL else ours_all[finding]
        rows.append({"set": ALL_FINDINGS_SET, "finding": finding,
                     "nih_labels": "not No Finding" if finding == ABNORMAL else finding,
                     **agreement(ours.to_numpy(), every[finding].astype(bool).to_numpy(), patients, bootstrap, seed)})
    return pd.DataFrame(rows, columns=COLUMNS)


def from_files(metadata: str | Path, google: str | Path, bootstrap: dict[str, Any], seed: int) -> pd.DataFrame:
    """`label_quality` of a Data_Entry file and a google_expert_labels/ folder, each checked as the pipeline
    checks them; the bootstrap seeded from the master `seed`'s own stream."""
    google = Path(google)
    four = pd.concat([google_labels.read_four_findings_labels(google / name) for name in
                      (google_labels.FOUR_FINDINGS_TEST, google_labels.FOUR_FINDINGS_VALIDATION)], ignore_index=True)
    every = google_labels.read_all_findings_labels(google / google_labels.ALL_FINDINGS_TEST)
    stream = int(np.random.SeedSequence([seed, seed_streams.BOOTSTRAP_LABEL_QUALITY]).generate_state(1)[0])
    return label_quality(nih.read_data_entry(metadata), four, every, bootstrap, stream)


def format_table(table: pd.DataFrame) -> str:
    """The table for a terminal: proportions and kappa to 3 decimals, the interval beside kappa."""
    shown = table.assign(kappa=[f"{k:.3f} ({lo:.3f}-{hi:.3f})" for k, lo, hi in
                                table[["kappa", "kappa_ci_low", "kappa_ci_high"]].to_numpy()])
    shown = shown.drop(columns=["kappa_ci_low", "kappa_ci_high"]).round({"sensitivity": 3, "ppv": 3})
    return shown.to_string(index=False)
