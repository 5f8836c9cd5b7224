"""How the JSRT nodule tasks are scored, shared by evaluate_nodules and by anyone scoring their own model's
out-of-fold predictions (`cxrbench score nodules`, `cxrbench.data.score_nodules`).

- Classification: AUC with a 95% bootstrap interval over cases (vectorised, seeded), pooled over the folds, plus
  the per-fold AUCs, for each task of TASKS; the nodule task also per subtlety (the nodules of one subtlety
  against every case without a nodule, as in the JSRT observer study).
- Localisation: FROC of the candidates against the nodule centres (a hit lies within the nodule's radius), with
  the sensitivity at FP_PER_IMAGE false positives per image over all cases, overall and by subtlety.

The formats (results/nodules/): task scores, one row per case of each task (`case`, `task`, `score`: any number
that ranks cases; `fold`, the split's fold that held the case out); candidates, any number per case (`case`, `x`,
`y` on the JSRT 2048 grid, `score`). The labels, folds and nodule positions always come from the run's store and
split, never from the files.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cxrbench import seed_streams
from cxrbench.errors import DataError
from cxrbench.fileio import metric_value
from cxrbench.metrics.froc import FrocCurve, froc, sensitivity_at
from cxrbench.nodules import FP_PER_IMAGE, TASKS, nodule_truths, task_cases
from cxrbench.nodules.case_aucs import auc_summary, by_subtlety


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


def classification_metrics(predictions: pd.DataFrame, index: pd.DataFrame, boot_cfg: dict[str, Any],
                           seed: int, task_models: dict[str, str]) -> dict[str, Any]:
    """AUC summaries per task (with the model that scored it), and the nodule task's per subtlety."""
    boot_seed = int(np.random.SeedSequence([seed, seed_streams.BOOTSTRAP_NODULES]).generate_state(1)[0])
    scored_by = {task: predictions[predictions["task"] == task] for task in TASKS}
    metrics = {task: {"model": task_models[task],
                      **auc_summary(scored["label"].to_numpy(), scored["score"].to_numpy(),
                                    scored["fold"].to_numpy(), boot_cfg, boot_seed)}
               for task, scored in scored_by.items()}
    metrics["nodule_by_subtlety"] = by_subtlety(scored_by["nodule"], index, boot_cfg, boot_seed)
    return metrics


def froc_summary(curve: FrocCurve) -> dict[str, Any]:
    sensitivities = sensitivity_at(curve, FP_PER_IMAGE)
    return {"nodules": curve.n_nodules,
            "sensitivity_at_fp_per_image": {f"{fp:g}": metric_value(s)
                                            for fp, s in zip(FP_PER_IMAGE, sensitivities)},
            "max_sensitivity": metric_value(curve.sensitivity[-1]),
            "fp_per_image_at_max": metric_value(curve.fp_per_image[-1])}


@dataclass
class Scored:
    metrics: dict[str, Any]  # results/nodules/scores.json without the stage's own keys (candidates, bootstrap)
    predictions: pd.DataFrame  # the task scores with their labels, sorted by task and case
    candidates: pd.DataFrame  # sorted by case, best first
    hits: np.ndarray  # per candidate, the index into nodule_truths of the nodule it hits, or -1
    curves: dict[str, FrocCurve]


def score(scores: pd.DataFrame, candidates: pd.DataFrame, index: pd.DataFrame, boot_cfg: dict[str, Any], seed: int,
          task_models: dict[str, str]) -> Scored:
    """Score out-of-fold task scores and heat-map candidates (the formats above) against the store's `index`."""
    labels = pd.concat([task_cases(index, task).assign(task=task) for task in TASKS])
    predictions = (scores.merge(labels[["case", "task", "label"]], on=["case", "task"], validate="one_to_one")
                   .sort_values(["task", "case"], ignore_index=True))
    truths = nodule_truths(index)
    candidates = candidates.sort_values(["case", "score"], ascending=[True, False], ignore_index=True)
    curves = froc_curves(candidates, truths, n_images=len(index))
    metrics = {"cases": int(len(index)), "nodules": int(len(truths)), "folds": int(scores["fold"].nunique()),
               "classification": classification_metrics(predictions, index, boot_cfg, seed, task_models),
               "froc": {group: froc_summary(curve) for group, curve in curves.items()}}
    return Scored(metrics, predictions, candidates, candidate_hits(candidates, truths), curves)


def read_task_scores(path: str | Path, index: pd.DataFrame, split: pd.DataFrame) -> pd.DataFrame:
    """(case, task, fold, score) of a task-scores file: one finite score for every case of each task, the fold
    the run's split held it out in."""
    frame = _read_csv(path, ["case", "task", "score"])
    expected = split[["case", "task", "fold"]]
    keys = ["case", "task"]
    merged = expected.merge(frame[[*keys, "score"]], on=keys, how="outer", indicator=True)
    missing = merged[merged["_merge"] == "left_only"]
    extra = merged[merged["_merge"] == "right_only"]
    duplicated = frame[frame.duplicated(keys, keep=False)]
    if len(missing) or len(extra) or len(duplicated):
        problems = [f"{what} ({len(rows)}): {', '.join(f'{r.case}/{r.task}' for r in rows.head(5).itertuples())}"
                    for what, rows in (("cases of a task without a score", missing),
                                       ("rows for no case of a task", extra), ("repeated rows", duplicated)) if len(rows)]
        raise DataError(path, "not one score per case of each task: " + "; ".join(problems),
                        "write one row per case and task of data/splits/jsrt_nodules.csv")
    if not np.isfinite(frame["score"].to_numpy(np.float64)).all():
        raise DataError(path, "scores must be finite numbers", "replace NaN or infinite scores")
    return merged[["case", "task", "fold", "score"]].astype({"fold": int, "score": np.float64})


def read_candidates(path: str | Path, index: pd.DataFrame) -> pd.DataFrame:
    """(case, x, y, score) of a candidates file: cases of the store, finite numbers."""
    frame = _read_csv(path, ["case", "x", "y", "score"])
    unknown = sorted(set(frame["case"]) - set(index["case"]))
    if unknown:
        raise DataError(path, f"cases not in the store ({len(unknown)}): {', '.join(map(str, unknown[:5]))}",
                        "name JSRT cases as the store's index.csv does (e.g. JPCLN001)")
    values = frame[["x", "y", "score"]].to_numpy(np.float64)
    if not np.isfinite(values).all():
        raise DataError(path, "x, y and score must be finite numbers", "drop or fix the rows with NaN or inf")
    return frame[["case", "x", "y", "score"]].astype({"x": np.float64, "y": np.float64, "score": np.float64})


def _read_csv(path: str | Path, columns: list[str]) -> pd.DataFrame:
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "file not found", f"write a CSV with the columns {columns}")
    frame = pd.read_csv(path)
    missing = [column for column in columns if column not in frame.columns]
    if missing:
        raise DataError(path, f"missing columns {missing}", f"write a CSV with the columns {columns}")
    return frame
