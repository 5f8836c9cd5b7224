"""The JSRT nodule models' leaderboards: every cell of the nodule classifier's and of the nodule heat map's
benchmark matrices (cxrbench.matrix) scored out of fold on the same cases (each case by the model of the fold that
held it out), each model's scores as mean and standard deviation over its seeds, and every challenger compared
with its baseline (model.nodule_classifier, model.nodule_heatmap) on those cases.

- nodule_classifier, malignant vs benign on the nodule ROIs: the AUC; DeLong's test of the difference of the
  seed-averaged AUCs (a contrast over DeLong's covariance of every cell's AUC, as for the NIH classes).
- nodule_heatmap, nodule localisation: the FROC sensitivity at 1, 2 and 4 false positives per image and their
  mean (the FROC score, as the CPM of the ANODE09 and LUNA16 challenges averages sensitivities at fixed false
  positives per image); a paired bootstrap over cases (every cell's FROC recomputed on the same case resamples,
  cxrbench.metrics.froc.weighted_sensitivity_at): a percentile interval of the difference of seed-averaged
  sensitivities and the two-sided bootstrap p-value.
- Holm's correction over the challengers (and, for the FROC points, over challengers x points).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cxrbench import artefacts, matrix, seed_streams, store
from cxrbench.errors import DataError
from cxrbench.leaderboard import (
    MEAN,
    bootstrap_p,
    contrast_weights,
    headline,
    leaderboard_table,
    require_cells,
    seed_spread,
    with_holm,
)
from cxrbench.metrics.froc import weighted_sensitivity_at
from cxrbench.metrics.paired import auc_covariance, contrast
from cxrbench.metrics.roc import percentile_interval, resample_indices, unit_counts
from cxrbench.nodules import FP_PER_IMAGE, nodule_truths, task_cases
from cxrbench.nodules.scores import candidate_hits

CLASSIFIER, HEATMAP = "nodule_classifier", "nodule_heatmap"
TASKS = (CLASSIFIER, HEATMAP)
CLASSIFIED = "malignancy"  # what the nodule classifiers score
POINTS = tuple(f"{fp:g}" for fp in FP_PER_IMAGE)  # the FROC's operating points, false positives per image
UNIT = {CLASSIFIER: "task", HEATMAP: "fp_per_image"}
MEASURE = {CLASSIFIER: "auc", HEATMAP: "sensitivity"}
HEADLINE = {CLASSIFIER: CLASSIFIED, HEATMAP: MEAN}  # the row each model is ranked by


def comparison_columns(task: str) -> list[str]:
    measure = MEASURE[task]
    return ["challenger", UNIT[task], f"baseline_{measure}", f"challenger_{measure}", "difference", "ci_low",
            "ci_high", "p_value", "p_holm", "method", "baseline_seed_sd", "challenger_seed_sd"]


def finish(task: str, cells: list[matrix.Cell], runs: pd.DataFrame, rows: list[dict[str, Any]],
           cases: int) -> tuple[dict[str, pd.DataFrame], dict[str, Any]]:
    unit, measure, baseline = UNIT[task], MEASURE[task], cells[0].model
    spread = seed_spread(runs, unit, measure)
    sd = spread.set_index(["model", unit])[f"{measure}_sd"]
    for row in rows:
        row["baseline_seed_sd"] = sd[(baseline, row[unit])]
        row["challenger_seed_sd"] = sd[(row["challenger"], row[unit])]
    compared = with_holm(rows, unit, comparison_columns(task))
    board = leaderboard_table(spread, compared, baseline, unit, measure, HEADLINE[task])
    seeds = sum(cell.model == baseline for cell in cells)
    return ({"leaderboard": board, "comparisons": compared, "runs": runs},
            headline(board, measure, baseline, seeds, cases))


def rank_classifiers(params: dict[str, Any], root: Path = Path(".")) -> tuple[dict[str, pd.DataFrame], dict[str, Any]]:
    """The nodule classifiers' leaderboard tables and headline metrics for a finished run."""
    cells = matrix.cells(params, CLASSIFIER)
    require_cells(cells, root)
    labelled = task_cases(store.read_index(root / artefacts.STORE_JSRT), CLASSIFIED)
    scores = np.stack([_task_scores(root / cell.scored, labelled["case"]) for cell in cells])
    aucs, cov = auc_covariance(labelled[["label"]].to_numpy(), scores[:, :, None])
    runs = pd.DataFrame({"model": [c.model for c in cells], "seed": [c.seed for c in cells], "task": CLASSIFIED,
                         "auc": aucs[:, 0].round(6)})
    rows = []
    for model in list(dict.fromkeys(c.model for c in cells))[1:]:
        paired = contrast(aucs, cov, contrast_weights(cells, cells[0].model, model), params["evaluate"]["bootstrap"]["alpha"])
        rows.append({"challenger": model, "task": CLASSIFIED, "baseline_auc": paired.auc_a[0],
                     "challenger_auc": paired.auc_b[0], "difference": paired.difference[0], "ci_low": paired.ci_low[0],
                     "ci_high": paired.ci_high[0], "p_value": paired.p_value[0], "method": "DeLong"})
    return finish(CLASSIFIER, cells, runs, rows, len(labelled))


def rank_heatmaps(params: dict[str, Any], root: Path = Path(".")) -> tuple[dict[str, pd.DataFrame], dict[str, Any]]:
    """The nodule heat maps' leaderboard tables and headline metrics for a finished run."""
    cells = matrix.cells(params, HEATMAP)
    require_cells(cells, root)
    index = store.read_index(root / artefacts.STORE_JSRT)
    cases = index["case"].to_numpy()
    truths = nodule_truths(index)
    bootstrap = params["evaluate"]["bootstrap"]
    stream = int(np.random.SeedSequence([params["seed"], seed_streams.BOOTSTRAP_LEADERBOARD]).generate_state(1)[0])
    draws = resample_indices(len(cases), bootstrap["resamples"], stream)
    resampled = unit_counts(draws, len(cases)).T  # (resamples, cases): how often each case was drawn
    observed, replicates = [], []
    for cell in cells:
        candidates = pd.read_csv(root / cell.scored.parent / matrix.CANDIDATES)
        arrays = (pd.Index(cases).get_indexer(candidates["case"]), candidates["score"].to_numpy(np.float64),
                  candidate_hits(candidates, truths), pd.Index(cases).get_indexer(truths["image"]))
        observed.append(weighted_sensitivity_at(*arrays, np.ones((1, len(cases))), FP_PER_IMAGE)[0])
        replicates.append(weighted_sensitivity_at(*arrays, resampled, FP_PER_IMAGE))
    observed, replicates = np.array(observed), np.array(replicates)  # (cells, points), (cells, resamples, points)
    # the FROC score: the mean over the points, per cell and resample
    observed = np.concatenate([observed, observed.mean(axis=1, keepdims=True)], axis=1)
    replicates = np.concatenate([replicates, replicates.mean(axis=2, keepdims=True)], axis=2)
    points = [*POINTS, MEAN]
    runs = pd.DataFrame([{"model": cell.model, "seed": cell.seed, "fp_per_image": point,
                          "sensitivity": round(float(value), 6)}
                         for cell, values in zip(cells, observed, strict=True) for point, value in zip(points, values)])
    rows = []
    for model in list(dict.fromkeys(c.model for c in cells))[1:]:
        weights = contrast_weights(cells, cells[0].model, model)
        differences = np.einsum("c,crp->rp", weights, replicates)
        low, high = percentile_interval(differences, bootstrap["alpha"])
        baseline_mean, challenger_mean = (np.maximum(sign * weights, 0) @ observed for sign in (-1, 1))
        for k, point in enumerate(points):
            rows.append({"challenger": model, "fp_per_image": point, "baseline_sensitivity": baseline_mean[k],
                         "challenger_sensitivity": challenger_mean[k], "difference": weights @ observed[:, k],
                         "ci_low": low[k], "ci_high": high[k], "p_value": bootstrap_p(differences[:, k]),
                         "method": f"paired bootstrap over cases ({bootstrap['resamples']} resamples)"})
    return finish(HEATMAP, cells, runs, rows, len(cases))


RANK = {CLASSIFIER: rank_classifiers, HEATMAP: rank_heatmaps}


def _task_scores(path: Path, cases: pd.Series) -> np.ndarray:
    """A cell's out-of-fold scores of the classified task, in the order of `cases`."""
    frame = pd.read_csv(path)
    scored = frame[frame["task"] == CLASSIFIED].set_index("case")["score"]
    missing = sorted(set(cases) - set(scored.index))
    if missing:
        raise DataError(path, f"no {CLASSIFIED} score for {len(missing)} cases: {', '.join(missing[:5])}",
                        "rerun the stage that wrote it")
    return scored.reindex(cases).to_numpy(np.float64)

