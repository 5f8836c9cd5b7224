"""Split tables (image, patient, part) and the leakage check every split stage runs before writing."""

from __future__ import annotations

import numpy as np
import pandas as pd

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
