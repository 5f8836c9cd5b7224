"""Stage evaluate_classifier: per-class ROC AUC of the NIH classifier on the test part, with 95% bootstrap
intervals (vectorised, seeded) over images or, with evaluate.bootstrap.unit=patient, over patients.

Calibration of the probabilities on the validation and test parts (cxrbench.metrics.calibration: 10 equal-width
bins): metrics/calibration.json (mean ECE and Brier score over the classes, per part), results/classifier/
calibration.csv (per part and class) and plots/classifier_reliability.csv (the reliability curves).

Subgroups (cxrbench.subgroups): test AUC per class and mean by sex, age band, view and follow-ups with patient
bootstrap intervals, and the underdiagnosis rate at the no-finding threshold chosen on validation:
metrics/subgroups.json (per attribute the gap between groups in mean AUC and underdiagnosis),
results/classifier/subgroups.json (per group) and results/classifier/subgroups.csv (per group and class).

Writes metrics/classifier.json (DVC metrics: the mean AUC), results/classifier/auc.json (per class, with
intervals), plots/classifier_roc.csv (DVC plots: ROC points per class) and results/classifier/predictions.csv
(image, patient, true labels and scores: the format of cxrbench.predictions, which also scores other models'
predictions the same way).
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd

from cxrbench import artefacts, nih_classifier, subgroups
from cxrbench.fileio import atomic_path, metric_value, write_json
from cxrbench.metrics.calibration import BINS, brier_score, expected_calibration_error, reliability
from cxrbench.metrics.roc import roc_curve_points
from cxrbench.predictions import classifier_metrics, predictions_frame
from cxrbench.stages._app import run_stage
from cxrbench.vocabulary import LABELS

log = logging.getLogger(__name__)
MODEL = artefacts.MODEL_CLASSIFIER
# metrics/classifier.json: the mean AUC and how its interval was drawn; per class in results/classifier/auc.json
HEADLINE = ("test_images", "mean_auc", "mean_auc_ci", "bootstrap")


def roc_points(y: np.ndarray, scores: np.ndarray) -> pd.DataFrame:
    frames = []
    for k, label in enumerate(LABELS):
        if 0 < y[:, k].sum() < len(y):
            fpr, tpr, _ = roc_curve_points(y[:, k], scores[:, k])
            frames.append(pd.DataFrame({"class": label, "fpr": fpr.round(6), "tpr": tpr.round(6)}))
    return pd.concat(frames, ignore_index=True)


def calibration(y_by_part: dict[str, np.ndarray], p_by_part: dict[str, np.ndarray]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(per part and class: ECE and Brier score; per part, class and bin: the reliability curve)."""
    scores, curves = [], []
    for part, y in y_by_part.items():
        for k, label in enumerate(LABELS):
            p = p_by_part[part][:, k]
            scores.append({"part": part, "class": label, "positives": int(y[:, k].sum()),
                           "ece": expected_calibration_error(y[:, k], p), "brier": brier_score(y[:, k], p)})
            curves.append(reliability(y[:, k], p).assign(part=part, **{"class": label}))
    curve_columns = ["part", "class", "bin", "lower", "upper", "count", "mean_predicted", "observed"]
    return pd.DataFrame(scores), pd.concat(curves, ignore_index=True)[curve_columns]


def evaluate(params: dict[str, Any]) -> None:
    scorer = nih_classifier.Scorer(MODEL, params["train"]["runtime"], params["seed"])
    index, rows = scorer.index, scorer.rows("test")
    y, scores = scorer.labels("test"), scorer.scores("test")
    val_scores = scorer.scores("val")
    calibration_table, reliability_curves = calibration({"val": scorer.labels("val"), "test": y},
                                                        {"val": val_scores, "test": scores})
    metrics = classifier_metrics(y, scores, index["patient"].to_numpy()[rows], params["evaluate"]["bootstrap"],
                                 params["seed"])
    log.info("test mean AUC %.4f (95%% CI %.4f-%.4f) over %d images", metrics["mean_auc"], *metrics["mean_auc_ci"],
             len(rows))
    write_json(artefacts.METRICS_CLASSIFIER, {key: metrics[key] for key in HEADLINE})
    with atomic_path(artefacts.PLOT_CLASSIFIER_ROC) as tmp:
        roc_points(y, scores).to_csv(tmp, index=False, lineterminator="\n")
    by_part = calibration_table.groupby("part", sort=False)[["ece", "brier"]].mean()
    write_json(artefacts.METRICS_CALIBRATION, {"bins": BINS, **{part: {"mean_ece": metric_value(row["ece"]),
                                                                       "mean_brier": metric_value(row["brier"])}
                                                                for part, row in by_part.iterrows()}})
    with atomic_path(artefacts.PLOT_CLASSIFIER_RELIABILITY) as tmp:
        reliability_curves.round(6).to_csv(tmp, index=False, lineterminator="\n")
    test_images = index.loc[rows]
    threshold = subgroups.no_finding_threshold(scorer.labels("val"), val_scores)
    by_group = subgroups.subgroup_table(y, scores, test_images, params["evaluate"]["bootstrap"], params["seed"])
    by_group_metrics = subgroups.subgroup_metrics(by_group, y, scores, test_images, threshold)
    write_json(artefacts.METRICS_SUBGROUPS, subgroups.headline(by_group_metrics))
    predictions = predictions_frame(index, rows, scores)
    with atomic_path(artefacts.RESULTS_CLASSIFIER, is_dir=True) as out:
        predictions.to_csv(out / "predictions.csv", index=False, lineterminator="\n", float_format="%.6f")
        calibration_table.round(6).to_csv(out / "calibration.csv", index=False, lineterminator="\n")
        by_group.to_csv(out / "subgroups.csv", index=False, lineterminator="\n")
        write_json(out / artefacts.CLASSIFIER_AUC, metrics)
        write_json(out / artefacts.SUBGROUPS, by_group_metrics)


def main() -> None:
    run_stage("evaluate_classifier", evaluate)


if __name__ == "__main__":
    main()
