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
Writes metrics/nodules.json (DVC metrics), plots/nodules_froc.csv (DVC plot of the overall FROC) and
results/nodules/{predictions.csv, candidates.csv, froc.csv} for the report (cxrbench.report.nodules).
"""

from __future__ import annotations

import json
import logging
from typing import Any

import numpy as np
import pandas as pd
import torch

from cxrbench import artefacts, engine, nodules, seed_streams, store, training
from cxrbench.fileio import atomic_path, metric_value, write_json
from cxrbench.metrics.froc import FrocCurve, froc, sensitivity_at
from cxrbench.metrics.roc import bootstrap_auc, roc_auc
from cxrbench.models import networks
from cxrbench.stages._app import run_stage
from cxrbench.vocabulary import JSRT_MAX, JSRT_PIXEL_MM

log = logging.getLogger(__name__)
STORE = artefacts.STORE_JSRT
SPLIT = artefacts.SPLIT_JSRT_NODULES
MODELS = artefacts.MODEL_NODULES
RESULTS = artefacts.RESULTS_NODULES
INFERENCE_BATCH = 16


def load_model(spec: dict[str, Any], config: dict[str, Any], name: str, runtime: dict[str, Any],
               device: torch.device) -> torch.nn.Module:
    return networks.load_trained(config["networks"][spec["kind"]], MODELS / f"{name}.pt", runtime, device)


def held_out_rows(split: pd.DataFrame, index: pd.DataFrame, task: str, fold: int) -> np.ndarray:
    cases = split.loc[(split["task"] == task) & (split["fold"] == fold), "case"]
    return np.sort(index.loc[index["case"].isin(cases), "row"].to_numpy(np.int64))


def out_of_fold(config: dict[str, Any], index: pd.DataFrame, split: pd.DataFrame, images: np.ndarray,
                rois: np.ndarray, candidate_cfg: dict[str, Any], runtime: dict[str, Any],
                device: torch.device) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Every case scored by the model whose test fold holds it: task scores (case, task, fold, score; the nodule
    task's score is the heat map's peak) and heat-map candidates (case, fold, x, y on the 2048 grid, score)."""
    size = config["size"]
    store_pixel_mm = JSRT_PIXEL_MM * nodules.jsrt_pixels_per_store_pixel(size)
    case_of_row = index.set_index("row")["case"]
    scores, candidates = [], []
    for name, spec in config["models"].items():
        rows = held_out_rows(split, index, spec["task"], spec["fold"])
        model = load_model(spec, config, name, runtime, device)
        norm = (spec["mean"], spec["std"])
        if spec["kind"] == "classifier":
            logits = engine.predict(model, rois, rows, JSRT_MAX, norm, runtime, device, INFERENCE_BATCH)[:, 0]
        else:
            output = engine.predict(model, images, rows, JSRT_MAX, norm, runtime, device, INFERENCE_BATCH)[:, 0]
            logits = output.flatten(1).amax(dim=1)
            found = nodules.find_candidates(output, candidate_cfg["max_per_image"],
                                            candidate_cfg["min_distance_mm"] / store_pixel_mm)
            candidates.append(pd.DataFrame({"case": case_of_row[rows[found["item"]]].to_numpy(), "fold": spec["fold"],
                                            "x": nodules.to_jsrt_coords(found["x"], size),
                                            "y": nodules.to_jsrt_coords(found["y"], size), "score": found["score"]}))
        scores.append(pd.DataFrame({"case": case_of_row[rows].to_numpy(), "task": spec["task"], "fold": spec["fold"],
                                    "score": torch.sigmoid(logits).numpy().astype(np.float64)}))
    return pd.concat(scores, ignore_index=True), pd.concat(candidates, ignore_index=True)


def candidate_hits(candidates: pd.DataFrame, truths: pd.DataFrame) -> np.ndarray:
    """For each candidate, the index into `truths` of the nodule it hits (within its radius), or -1."""
    pairs = (candidates[["case", "x", "y"]].assign(candidate=np.arange(len(candidates)))
             .merge(truths[["image", "x", "y", "radius_px"]].assign(nodule=np.arange(len(truths))),
                    left_on="case", right_on="image", suffixes=("", "_nodule")))
    within = np.hypot(pairs["x"] - pairs["x_nodule"], pairs["y"] - pairs["y_nodule"]) <= pairs["radius_px"]
    hit = np.full(len(candidates), -1, dtype=np.int64)
    hit[pairs.loc[within, "candidate"].to_numpy()] = pairs.loc[within, "nodule"].to_numpy()
    return hit


def froc_curves(candidates: pd.DataFrame, truths: pd.DataFrame, n_images: int) -> dict[str, FrocCurve]:
    """The overall FROC and one per subtlety present. A subtlety's curve drops the candidates that hit nodules
    of other subtleties (neither hits nor false positives for it), so its false positives are the overall ones."""
    hit = candidate_hits(candidates, truths)
    hit_subtlety = np.where(hit >= 0, truths["subtlety"].to_numpy()[hit], 0)
    frame = candidates.rename(columns={"case": "image"})
    curves = {"all": froc(frame, truths, n_images)}
    for subtlety in sorted(truths["subtlety"].unique()):
        keep = (hit_subtlety == 0) | (hit_subtlety == subtlety)
        curves[f"subtlety {subtlety}"] = froc(frame[keep], truths[truths["subtlety"] == subtlety], n_images)
    return curves


def auc_summary(labels: np.ndarray, scores: np.ndarray, folds: np.ndarray | None, boot_cfg: dict[str, Any],
                seed: int) -> dict[str, Any]:
    boot = bootstrap_auc(labels, scores, n_resamples=boot_cfg["resamples"], alpha=boot_cfg["alpha"], seed=seed)
    summary = {"cases": int(len(labels)), "positives": int(labels.sum()), "auc": metric_value(boot["auc"][0]),
               "ci_low": metric_value(boot["ci_low"][0]), "ci_high": metric_value(boot["ci_high"][0])}
    if folds is not None:
        summary["per_fold"] = {str(fold): metric_value(roc_auc(labels[folds == fold], scores[folds == fold])[0])
                               for fold in np.unique(folds)}
    return summary


def by_subtlety(scored: pd.DataFrame, index: pd.DataFrame, boot_cfg: dict[str, Any], seed: int) -> dict[str, Any]:
    """Nodule-task AUC per subtlety: that subtlety's nodule cases against every case without a nodule."""
    subtlety = scored["case"].map(index.set_index("case")["subtlety"])
    summaries = {}
    for level in sorted(subtlety.dropna().unique()):
        group = scored[(subtlety == level) | (scored["label"] == 0)]
        summaries[str(int(level))] = auc_summary(group["label"].to_numpy(), group["score"].to_numpy(), None,
                                                 boot_cfg, seed)
    return summaries


def classification_metrics(predictions: pd.DataFrame, index: pd.DataFrame, boot_cfg: dict[str, Any],
                           seed: int, task_models: dict[str, str]) -> dict[str, Any]:
    """AUC summaries per task (with the model that scored it), and the nodule task's per subtlety."""
    boot_seed = int(np.random.SeedSequence([seed, seed_streams.BOOTSTRAP_NODULES]).generate_state(1)[0])
    scored_by = {task: predictions[predictions["task"] == task] for task in nodules.TASKS}
    metrics = {task: {"model": task_models[task],
                      **auc_summary(scored["label"].to_numpy(), scored["score"].to_numpy(),
                                    scored["fold"].to_numpy(), boot_cfg, boot_seed)}
               for task, scored in scored_by.items()}
    metrics["nodule_by_subtlety"] = by_subtlety(scored_by["nodule"], index, boot_cfg, boot_seed)
    return metrics


def froc_summary(curve: FrocCurve) -> dict[str, Any]:
    sensitivities = sensitivity_at(curve, nodules.FP_PER_IMAGE)
    return {"nodules": curve.n_nodules,
            "sensitivity_at_fp_per_image": {f"{fp:g}": metric_value(s)
                                            for fp, s in zip(nodules.FP_PER_IMAGE, sensitivities)},
            "max_sensitivity": metric_value(curve.sensitivity[-1]),
            "fp_per_image_at_max": metric_value(curve.fp_per_image[-1])}


def write_results(predictions: pd.DataFrame, candidates: pd.DataFrame, hit: np.ndarray,
                  curves: dict[str, FrocCurve]) -> None:
    overall = pd.DataFrame({"fp_per_image": curves["all"].fp_per_image, "sensitivity": curves["all"].sensitivity})
    with atomic_path(artefacts.PLOT_NODULES_FROC) as tmp:
        overall.to_csv(tmp, index=False, lineterminator="\n", float_format="%.6f")
    points = pd.concat([pd.DataFrame({"group": group, "threshold": curve.thresholds, "fp_per_image": curve.fp_per_image,
                                      "sensitivity": curve.sensitivity}) for group, curve in curves.items()])
    csv = {"index": False, "lineterminator": "\n", "float_format": "%.6f"}
    with atomic_path(RESULTS, is_dir=True) as out:
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
    scores, candidates = out_of_fold(config, index, split, images, rois, candidate_cfg, runtime, device)

    labels = pd.concat([nodules.task_cases(index, task).assign(task=task) for task in nodules.TASKS])
    predictions = (scores.merge(labels[["case", "task", "label"]], on=["case", "task"], validate="one_to_one")
                   .sort_values(["task", "case"], ignore_index=True))
    truths = nodules.nodule_truths(index)
    candidates = candidates.sort_values(["case", "score"], ascending=[True, False], ignore_index=True)
    curves = froc_curves(candidates, truths, n_images=len(index))
    metrics = {"cases": int(len(index)), "nodules": int(len(truths)), "folds": len(config["folds"]),
               "classification": classification_metrics(predictions, index, params["evaluate"]["bootstrap"],
                                                         params["seed"], nodules.task_models(config["networks"])),
               "froc": {group: froc_summary(curve) for group, curve in curves.items()},
               "candidates": {**candidate_cfg, "total": int(len(candidates))},
               "bootstrap": {**params["evaluate"]["bootstrap"], "unit": "case"}}
    for name, summary in metrics["classification"].items():
        if name.endswith("_by_subtlety"):
            continue
        log.info("%s (%s): AUC %s (95%% CI %s-%s) over %d cases", name, summary["model"], summary["auc"],
                 summary["ci_low"], summary["ci_high"], summary["cases"])
    log.info("FROC sensitivity at 1/2/4 false positives per image: %s",
             metrics["froc"]["all"]["sensitivity_at_fp_per_image"])
    write_json(artefacts.METRICS_NODULES, metrics)
    write_results(predictions, candidates, candidate_hits(candidates, truths), curves)


def main() -> None:
    run_stage("evaluate_nodules", evaluate)


if __name__ == "__main__":
    main()
