"""The NIH classifier's predictions format and how it is scored, shared by evaluate_classifier and by anyone
scoring their own model's predictions (`cxrbench score classifier FILE`, `cxrbench.data.score_classifier`).

The format (results/classifier/predictions.csv): one row per test image, columns `image`, `patient`, the 14
labels (0/1, our store's) and `score_<label>` for each label (any finite number that ranks images: a
probability or a logit). Outside code needs `image` and the 14 `score_` columns; the truth and the patient
always come from the run's own store and split, never from the file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cxrbench import seed_streams
from cxrbench.errors import DataError
from cxrbench.fileio import metric_value
from cxrbench.metrics.roc import bootstrap_auc, unit_groups
from cxrbench.vocabulary import LABELS

SCORE_COLUMNS = [f"score_{label}" for label in LABELS]


def predictions_frame(index: pd.DataFrame, rows: np.ndarray, scores: np.ndarray) -> pd.DataFrame:
    """Our predictions of the store `rows`, in the format above."""
    frame = index.loc[rows, ["image", "patient", *LABELS]].reset_index(drop=True)
    frame[list(LABELS)] = frame[list(LABELS)].astype(np.uint8)
    return pd.concat([frame, pd.DataFrame(scores.round(6), columns=SCORE_COLUMNS)], axis=1)


def read_predictions(path: str | Path, index: pd.DataFrame, test_rows: np.ndarray) -> np.ndarray:
    """Scores (len(test_rows), 14) of a predictions file, in the order of `test_rows`: it must hold every test
    image once, the 14 score columns, and finite scores."""
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "predictions file not found", "write one row per test image: image, score_<label> x 14")
    frame = pd.read_csv(path)
    missing_columns = [c for c in ("image", *SCORE_COLUMNS) if c not in frame.columns]
    if missing_columns:
        raise DataError(path, f"missing columns {missing_columns}", f"name them as {SCORE_COLUMNS[:2]} ... (one per "
                        "NIH label, spelt as in Data_Entry_2017)")
    expected = index.set_index("row").loc[test_rows, "image"].to_numpy()
    duplicated = frame["image"][frame["image"].duplicated()].tolist()
    absent, extra = sorted(set(expected) - set(frame["image"])), sorted(set(frame["image"]) - set(expected))
    if duplicated or absent or extra:
        problems = [f"{label} ({len(names)}): {', '.join(map(str, names[:3]))}{', ...' if len(names) > 3 else ''}"
                    for label, names in (("repeated", duplicated), ("test images without a row", absent),
                                         ("rows of images outside the test part", extra)) if names]
        raise DataError(path, "not one row per test image: " + "; ".join(problems),
                        "score exactly the images of the test part of data/splits/nih.csv")
    scores = frame.set_index("image").loc[expected, SCORE_COLUMNS].to_numpy(np.float64)
    if not np.isfinite(scores).all():
        bad = frame["image"][~np.isfinite(frame[SCORE_COLUMNS].to_numpy(np.float64)).all(axis=1)].tolist()
        raise DataError(path, f"{len(bad)} rows with a missing or infinite score, e.g. {bad[:3]}",
                        "give every test image a finite score for every label")
    return scores


def classifier_metrics(y: np.ndarray, scores: np.ndarray, patients: np.ndarray, bootstrap: dict[str, Any],
                       seed: int) -> dict[str, Any]:
    """results/classifier/auc.json (metrics/classifier.json keeps the mean): per-class and mean AUC with bootstrap intervals (over images or patients, as
    `bootstrap.unit` says), seeded from the run's seed."""
    stream = int(np.random.SeedSequence([seed, seed_streams.BOOTSTRAP_CLASSIFIER]).generate_state(1)[0])
    boot = bootstrap_auc(y, scores, n_resamples=bootstrap["resamples"], alpha=bootstrap["alpha"],
                         groups=unit_groups(bootstrap["unit"], patients), seed=stream)
    per_class = {label: {"auc": metric_value(boot["auc"][k]), "ci_low": metric_value(boot["ci_low"][k]),
                         "ci_high": metric_value(boot["ci_high"][k]), "positives": int(y[:, k].sum())}
                 for k, label in enumerate(LABELS)}
    return {"test_images": int(len(y)), "mean_auc": metric_value(boot["mean_auc"]),
            "mean_auc_ci": [metric_value(boot["mean_ci_low"]), metric_value(boot["mean_ci_high"])],
            "bootstrap": {"resamples": bootstrap["resamples"], "alpha": bootstrap["alpha"], "unit": bootstrap["unit"],
                          "units": int(boot["n_units"])},
            "per_class": per_class}
