"""The NIH classifier's leaderboard: every cell of its benchmark matrix (cxrbench.matrix) scored on the same test
images, each model's AUCs as mean and standard deviation over its seeds, and every challenger compared with the
baseline (model.classifier) on those images.

- Per class: DeLong's test (cxrbench.metrics.paired.contrast) of the difference of the seed-averaged AUCs, whose
  variance is the quadratic form of DeLong's covariance of every cell's AUC (all cells score the same images).
- Mean AUC over the classes: a paired bootstrap over patients (every cell's AUCs on the same resamples, the
  difference of the seed-averaged means per resample): a percentile interval, and the two-sided p-value twice the
  share of resamples on the far side of zero, one added to that count and to the resamples (so never 0).
- Holm's correction over the challengers for the mean AUC, and over challengers x classes for the classes.

The test set's sampling variability is what the tests measure, given the trained models; the seed-to-seed
standard deviation of each model stands beside each difference, so a difference smaller than the seed noise reads
as such.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cxrbench import artefacts, matrix, seed_streams, store
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
from cxrbench.metrics.paired import auc_covariance, contrast
from cxrbench.metrics.roc import bootstrap_auc, percentile_interval
from cxrbench.predictions import read_predictions
from cxrbench.splits import split_rows
from cxrbench.vocabulary import LABELS

TASK, UNIT, MEASURE = "classifier", "class", "auc"


@dataclass
class Scored:
    """Every cell's test scores (cells, images, classes), the test labels (images, classes) and patients."""

    cells: list[matrix.Cell]
    y: np.ndarray
    patients: np.ndarray
    scores: np.ndarray

    @property
    def models(self) -> list[str]:
        return list(dict.fromkeys(cell.model for cell in self.cells))

    @property
    def baseline(self) -> str:
        return self.models[0]

    def of(self, model: str) -> np.ndarray:
        """Indices of the model's cells."""
        return np.array([i for i, cell in enumerate(self.cells) if cell.model == model])


def read_scored(params: dict[str, Any], root: Path = Path(".")) -> Scored:
    """Every cell's test predictions in a run under `root`; fails naming every cell whose file is missing."""
    cells = matrix.cells(params, TASK)
    require_cells(cells, root)
    index, split = store.read_index(root / artefacts.STORE_NIH), pd.read_csv(root / artefacts.SPLIT_NIH)
    rows = split_rows(index, split, "test")
    return Scored(cells, index[list(LABELS)].to_numpy(np.uint8)[rows], index["patient"].to_numpy()[rows],
                  np.stack([read_predictions(root / cell.scored, index, rows) for cell in cells]))


def runs_table(scored: Scored, aucs: np.ndarray) -> pd.DataFrame:
    """model, seed, class (the labels, then MEAN), auc: one row per cell and class."""
    rows = []
    for cell, auc in zip(scored.cells, aucs, strict=True):
        for label, value in zip([*LABELS, MEAN], [*auc, np.nanmean(auc)], strict=True):
            rows.append({"model": cell.model, "seed": cell.seed, "class": label, "auc": round(float(value), 6)})
    return pd.DataFrame(rows)


def mean_auc_replicates(scored: Scored, bootstrap: dict[str, Any], seed: int) -> np.ndarray:
    """(cells, resamples): each cell's mean AUC over the classes on the same patient resamples."""
    stream = int(np.random.SeedSequence([seed, seed_streams.BOOTSTRAP_LEADERBOARD]).generate_state(1)[0])
    replicates = []
    for scores in scored.scores:
        boot = bootstrap_auc(scored.y, scores, n_resamples=bootstrap["resamples"], alpha=bootstrap["alpha"],
                             groups=scored.patients, seed=stream)
        with np.errstate(invalid="ignore"):
            replicates.append(np.nanmean(boot["replicates"], axis=1))
    return np.stack(replicates)


COMPARISON_COLUMNS = ["challenger", "class", "baseline_auc", "challenger_auc", "difference", "ci_low", "ci_high",
                      "p_value", "p_holm", "method", "baseline_seed_sd", "challenger_seed_sd"]


def comparisons(scored: Scored, aucs: np.ndarray, cov: np.ndarray, spread: pd.DataFrame,
                bootstrap: dict[str, Any], seed: int) -> pd.DataFrame:
    """Per challenger and class (and MEAN): both seed-averaged AUCs, their difference (challenger - baseline) with
    its interval, the p-value and Holm's adjusted p-value, the method, and both models' seed-to-seed sd."""
    alpha = bootstrap["alpha"]
    replicates = mean_auc_replicates(scored, bootstrap, seed) if len(scored.models) > 1 else None
    sd = spread.set_index(["model", "class"])["auc_sd"]
    base = scored.of(scored.baseline)
    mean_aucs = np.nanmean(aucs, axis=1)
    rows = []
    for model in scored.models[1:]:
        weights = contrast_weights(scored.cells, scored.baseline, model)
        per_class = contrast(aucs, cov, weights, alpha)
        for k, label in enumerate(LABELS):
            rows.append({"challenger": model, "class": label, "baseline_auc": per_class.auc_a[k],
                         "challenger_auc": per_class.auc_b[k], "difference": per_class.difference[k],
                         "ci_low": per_class.ci_low[k], "ci_high": per_class.ci_high[k],
                         "p_value": per_class.p_value[k], "method": "DeLong"})
        difference = weights @ mean_aucs
        resampled = weights @ replicates
        low, high = percentile_interval(resampled[:, None], alpha)
        rows.append({"challenger": model, "class": MEAN, "baseline_auc": mean_aucs[base].mean(),
                     "challenger_auc": mean_aucs[scored.of(model)].mean(), "difference": difference,
                     "ci_low": low[0], "ci_high": high[0], "p_value": bootstrap_p(resampled),
                     "method": f"paired bootstrap over patients ({bootstrap['resamples']} resamples)"})
    for row in rows:
        row["baseline_seed_sd"] = sd[(scored.baseline, row["class"])]
        row["challenger_seed_sd"] = sd[(row["challenger"], row["class"])]
    return with_holm(rows, UNIT, COMPARISON_COLUMNS)


def rank(params: dict[str, Any], root: Path = Path(".")) -> tuple[dict[str, pd.DataFrame], dict[str, Any]]:
    """The leaderboard's tables (leaderboard, comparisons, runs) and its headline metrics for a finished run."""
    scored = read_scored(params, root)
    aucs, cov = auc_covariance(scored.y, scored.scores)
    runs = runs_table(scored, aucs)
    spread = seed_spread(runs, UNIT, MEASURE)
    compared = comparisons(scored, aucs, cov, spread, params["evaluate"]["bootstrap"], params["seed"])
    board = leaderboard_table(spread, compared, scored.baseline, UNIT, MEASURE)
    return ({"leaderboard": board, "comparisons": compared, "runs": runs},
            headline(board, MEASURE, scored.baseline, len(scored.of(scored.baseline)), len(scored.y)))
