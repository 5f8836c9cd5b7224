"""The NIH classifier's leaderboard: every cell of the benchmark matrix (cxrbench.matrix) scored on the same test
images, each model's AUCs as mean and standard deviation over its seeds, and every challenger compared with the
baseline (model.classifier) on those images.

- Per class: DeLong's test (cxrbench.metrics.paired.contrast) of the difference of the seed-averaged AUCs, whose
  variance is the quadratic form of DeLong's covariance of every cell's AUC (all cells score the same images).
- Mean AUC over the classes: a paired bootstrap over patients (every cell's AUCs on the same resamples, the
  difference of the seed-averaged means per resample): a percentile interval, and the two-sided p-value twice the
  share of resamples on the far side of zero.
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
from cxrbench.errors import DataError
from cxrbench.fileio import metric_value
from cxrbench.metrics.paired import auc_covariance, contrast, holm
from cxrbench.metrics.roc import bootstrap_auc, percentile_interval
from cxrbench.predictions import read_predictions
from cxrbench.splits import split_rows
from cxrbench.vocabulary import LABELS

MEAN = "mean"  # the class column's value for the mean AUC over the classes
TABLES = {"leaderboard": "classifier.csv", "comparisons": "comparisons.csv", "runs": "runs.csv"}  # results/leaderboard/


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
    cells = matrix.cells(params)
    missing = [cell for cell in cells if not (root / cell.predictions).is_file()]
    if missing:
        raise DataError(root / missing[0].predictions,
                        f"missing for {len(missing)} of the {len(cells)} cells of the benchmark matrix: "
                        + ", ".join(f"{c.name} ({c.predictions})" for c in missing),
                        "run their stages first (`dvc repro` or `snakemake --cores N` runs "
                        + ", ".join("train_classifier and evaluate_classifier" if c.main else c.stage for c in missing)
                        + ")")
    index, split = store.read_index(root / artefacts.STORE_NIH), pd.read_csv(root / artefacts.SPLIT_NIH)
    rows = split_rows(index, split, "test")
    return Scored(cells, index[list(LABELS)].to_numpy(np.uint8)[rows], index["patient"].to_numpy()[rows],
                  np.stack([read_predictions(root / cell.predictions, index, rows) for cell in cells]))


def runs_table(scored: Scored, aucs: np.ndarray) -> pd.DataFrame:
    """model, seed, class (the labels, then MEAN), auc: one row per cell and class."""
    rows = []
    for cell, auc in zip(scored.cells, aucs, strict=True):
        for label, value in zip([*LABELS, MEAN], [*auc, np.nanmean(auc)], strict=True):
            rows.append({"model": cell.model, "seed": cell.seed, "class": label, "auc": round(float(value), 6)})
    return pd.DataFrame(rows)


def seed_spread(runs: pd.DataFrame) -> pd.DataFrame:
    """model, class, seeds, auc_mean, auc_sd (NaN with one seed), auc_min, auc_max."""
    grouped = runs.groupby(["model", "class"], sort=False)["auc"]
    table = grouped.agg(seeds="count", auc_mean="mean", auc_sd="std", auc_min="min", auc_max="max").reset_index()
    return table.round({"auc_mean": 6, "auc_sd": 6})


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


def comparisons(scored: Scored, aucs: np.ndarray, cov: np.ndarray, spread: pd.DataFrame,
                bootstrap: dict[str, Any], seed: int) -> pd.DataFrame:
    """Per challenger and class (and MEAN): both seed-averaged AUCs, their difference (challenger - baseline) with
    its interval, the p-value and Holm's adjusted p-value, the method, and both models' seed-to-seed sd."""
    alpha = bootstrap["alpha"]
    replicates = mean_auc_replicates(scored, bootstrap, seed) if len(scored.models) > 1 else None
    sd = spread.set_index(["model", "class"])["auc_sd"]
    base = scored.of(scored.baseline)
    rows = []
    for model in scored.models[1:]:
        weights = np.zeros(len(scored.cells))
        weights[base], weights[scored.of(model)] = -1 / len(base), 1 / len(scored.of(model))
        per_class = contrast(aucs, cov, weights, alpha)
        for k, label in enumerate(LABELS):
            rows.append({"challenger": model, "class": label, "baseline_auc": per_class.auc_a[k],
                         "challenger_auc": per_class.auc_b[k], "difference": per_class.difference[k],
                         "ci_low": per_class.ci_low[k], "ci_high": per_class.ci_high[k],
                         "p_value": per_class.p_value[k], "method": "DeLong"})
        mean_aucs = np.nanmean(aucs, axis=1)
        difference = weights @ mean_aucs
        resampled = weights @ replicates
        low, high = percentile_interval(resampled[:, None], alpha)
        far_side = min(np.mean(resampled <= 0), np.mean(resampled >= 0))
        rows.append({"challenger": model, "class": MEAN, "baseline_auc": mean_aucs[base].mean(),
                     "challenger_auc": mean_aucs[scored.of(model)].mean(), "difference": difference,
                     "ci_low": low[0], "ci_high": high[0], "p_value": min(1.0, 2 * far_side),
                     "method": f"paired bootstrap over patients ({bootstrap['resamples']} resamples)"})
    columns = ["challenger", "class", "baseline_auc", "challenger_auc", "difference", "ci_low", "ci_high", "p_value",
               "p_holm", "method", "baseline_seed_sd", "challenger_seed_sd"]
    if not rows:
        return pd.DataFrame(columns=columns)
    table = pd.DataFrame(rows)
    is_mean = table["class"] == MEAN
    table["p_holm"] = np.nan
    table.loc[is_mean, "p_holm"] = holm(table.loc[is_mean, "p_value"].to_numpy())
    table.loc[~is_mean, "p_holm"] = holm(table.loc[~is_mean, "p_value"].to_numpy())
    table["baseline_seed_sd"] = [sd[(scored.baseline, label)] for label in table["class"]]
    table["challenger_seed_sd"] = [sd[(model, label)] for model, label in zip(table["challenger"], table["class"])]
    return table[columns].round(6)


def leaderboard_table(spread: pd.DataFrame, compared: pd.DataFrame, baseline: str) -> pd.DataFrame:
    """One row per model, best mean AUC first: its seeds, mean AUC (mean, sd, range over seeds), and against the
    baseline its difference with interval and Holm-adjusted p-value."""
    means = spread[spread["class"] == MEAN].set_index("model")
    versus = compared[compared["class"] == MEAN].set_index("challenger")
    rows = []
    for model, row in means.iterrows():
        against = versus.loc[model] if model in versus.index else None
        rows.append({"model": model, "role": "baseline" if model == baseline else "challenger",
                     "seeds": int(row["seeds"]), "mean_auc": row["auc_mean"], "mean_auc_sd": row["auc_sd"],
                     "mean_auc_min": row["auc_min"], "mean_auc_max": row["auc_max"],
                     "difference": np.nan if against is None else against["difference"],
                     "ci_low": np.nan if against is None else against["ci_low"],
                     "ci_high": np.nan if against is None else against["ci_high"],
                     "p_holm": np.nan if against is None else against["p_holm"]})
    return pd.DataFrame(rows).sort_values("mean_auc", ascending=False, kind="stable").reset_index(drop=True)


def headline(board: pd.DataFrame, scored: Scored) -> dict[str, Any]:
    """metrics/leaderboard_classifier.json: per model its mean AUC over seeds and their sd; per challenger the
    difference from the baseline, its interval and Holm-adjusted p-value."""
    models = {row["model"]: {"mean_auc": metric_value(row["mean_auc"]), "mean_auc_sd": metric_value(row["mean_auc_sd"])}
              for _, row in board.iterrows()}
    versus = {row["model"]: {"difference": metric_value(row["difference"]),
                             "ci": [metric_value(row["ci_low"]), metric_value(row["ci_high"])],
                             "p_holm": metric_value(row["p_holm"])}
              for _, row in board.iterrows() if row["role"] == "challenger"}
    return {"baseline": scored.baseline, "seeds": len(scored.of(scored.baseline)), "test_images": int(len(scored.y)),
            "models": models, "vs_baseline": versus}


def rank(params: dict[str, Any], root: Path = Path(".")) -> tuple[dict[str, pd.DataFrame], dict[str, Any]]:
    """The leaderboard's tables (leaderboard, comparisons, runs) and its headline metrics for a finished run."""
    scored = read_scored(params, root)
    aucs, cov = auc_covariance(scored.y, scored.scores)
    runs = runs_table(scored, aucs)
    spread = seed_spread(runs)
    compared = comparisons(scored, aucs, cov, spread, params["evaluate"]["bootstrap"], params["seed"])
    board = leaderboard_table(spread, compared, scored.baseline)
    return {"leaderboard": board, "comparisons": compared, "runs": runs}, headline(board, scored)
