"""Stage evaluate_nodules: out-of-fold ROC AUC of the JSRT nodule tasks and FROC of the heat-map candidates, every
case scored by the models that did not train on it.

- Classification: AUC with a 95% bootstrap interval over cases (vectorised, seeded), pooled over the folds, plus
  the per-fold AUCs, for `nodule` (nodule vs no nodule; an image's score is the heat-map model's peak, i.e. its
  best candidate's score) and `malignancy` (malignant vs benign; the ROI classifier's score); the nodule task
  also per subtlety (the nodules of one subtlety against every case without a nodule, as in the JSRT observer
  study).
- Localisation: FROC of the candidates against the nodule centres (a hit lies within the nodule's radius), with
  the sensitivity at 1, 2 and 4 false positives per image over all cases, overall and by subtlety (a subtlety's
  curve counts its own nodules; candidates on other nodules are neither hits nor false positives there, so all
  curves share the overall false-positive axis).
Writes metrics/nodules.json (DVC metrics: AUCs and FROC sensitivities), plots/nodules_froc.csv (DVC plot of the
overall FROC) and results/nodules/{scores.json (every figure: per fold, per subtlety, candidates), predictions.csv,
candidates.csv, froc.csv} for the report (cxrbench.report.nodules).
"""

from __future__ import annotations

import json
import logging
from typing import Any

import numpy as np
import pandas as pd

from cxrbench import artefacts, nodules, store, training
from cxrbench.fileio import atomic_path, write_json
from cxrbench.metrics.froc import FrocCurve
from cxrbench.nodules import models
from cxrbench.nodules import scores as scores_of_nodules
from cxrbench.stages._app import run_stage

log = logging.getLogger(__name__)
STORE = artefacts.STORE_JSRT
SPLIT = artefacts.SPLIT_JSRT_NODULES
MODELS = artefacts.MODEL_NODULES
RESULTS = artefacts.RESULTS_NODULES


def write_results(metrics: dict[str, Any], predictions: pd.DataFrame, candidates: pd.DataFrame, hit: np.ndarray,
                  curves: dict[str, FrocCurve]) -> None:
    overall = pd.DataFrame({"fp_per_image": curves["all"].fp_per_image, "sensitivity": curves["all"].sensitivity})
    with atomic_path(artefacts.PLOT_NODULES_FROC) as tmp:
        overall.to_csv(tmp, index=False, lineterminator="\n", float_format="%.6f")
    points = pd.concat([pd.DataFrame({"group": group, "threshold": curve.thresholds, "fp_per_image": curve.fp_per_image,
                                      "sensitivity": curve.sensitivity}) for group, curve in curves.items()])
    csv = {"index": False, "lineterminator": "\n", "float_format": "%.6f"}
    with atomic_path(RESULTS, is_dir=True) as out:
        write_json(out / artefacts.SCORES, metrics)
        predictions.to_csv(out / "predictions.csv", **csv)
        candidates.assign(hit=(hit >= 0).astype(int)).to_csv(out / "candidates.csv", **csv)
        points.to_csv(out / "froc.csv", **csv)


def evaluate(params: dict[str, Any]) -> None:
    runtime = {**params["train"]["runtime"], "compile": False}  # one pass per model: not worth compiling
    device = training.setup_torch(runtime, params["seed"])
    config = json.loads((MODELS / "config.json").read_text())
    index, split = store.read_index(STORE).sort_values("row", ignore_index=True), pd.read_csv(SPLIT)
    images, rois = store.open_array(store.find_images(STORE)), store.open_array(store.find_nodule_rois(STORE))
    candidate_cfg = params["nodules"]["candidates"]
    scores, candidates = models.out_of_fold(MODELS, index, split, images, rois, candidate_cfg, runtime, device)

    scored = scores_of_nodules.score(scores, candidates, index, params["evaluate"]["bootstrap"], params["seed"],
                                     nodules.task_models(config["networks"]))
    metrics = {**scored.metrics, "candidates": {**candidate_cfg, "total": int(len(scored.candidates))},
               "bootstrap": {**params["evaluate"]["bootstrap"], "unit": "case"}}
    for name, summary in metrics["classification"].items():
        if name.endswith("_by_subtlety"):
            continue
        log.info("%s (%s): AUC %s (95%% CI %s-%s) over %d cases", name, summary["model"], summary["auc"],
                 summary["ci_low"], summary["ci_high"], summary["cases"])
    log.info("FROC sensitivity at 1/2/4 false positives per image: %s",
             metrics["froc"]["all"]["sensitivity_at_fp_per_image"])
    write_json(artefacts.METRICS_NODULES, headline(metrics))
    write_results(metrics, scored.predictions, scored.candidates, scored.hits, scored.curves)


def headline(metrics: dict[str, Any]) -> dict[str, Any]:
    """metrics/nodules.json: both tasks' out-of-fold AUC with its interval and the FROC sensitivities; per fold,
    per subtlety and the candidates in results/nodules/scores.json."""
    tasks = metrics["classification"]
    return {"cases": metrics["cases"], "folds": metrics["folds"],
            **{task: {key: tasks[task][key] for key in ("auc", "ci_low", "ci_high")} for task in ("nodule", "malignancy")},
            "froc_sensitivity_at_fp_per_image": metrics["froc"]["all"]["sensitivity_at_fp_per_image"]}


def main() -> None:
    run_stage("evaluate_nodules", evaluate)


if __name__ == "__main__":
    main()
