"""Leaderboards of the benchmark matrices (cxrbench.matrix): every cell of a task scored on the same test cases,
each model's scores as mean and standard deviation over its seeds, and every challenger compared with the
baseline (model.<task>) on those cases, Holm-adjusted, with the seed-to-seed spread beside each difference.
`classifier` ranks the NIH classifiers by AUC, `segmenter` the SCR segmenters by Jaccard. The pieces both use
are here: what a missing cell says, the spread over seeds, the table of models, the headline metrics."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cxrbench import artefacts, matrix
from cxrbench.errors import DataError
from cxrbench.fileio import atomic_path, metric_value, write_json
from cxrbench.metrics.paired import holm

MEAN = "mean"  # the class / object column's value for the mean over the classes or objects
# results/leaderboard/<task>/<table>.csv
TABLES = ("leaderboard", "comparisons", "runs")


def require_cells(cells: list[matrix.Cell], root: Path) -> None:
    """Fail naming every cell whose scores are missing, and the stages that write them."""
    missing = [cell for cell in cells if not (root / cell.scored).is_file()]
    if missing:
        raise DataError(root / missing[0].scored,
                        f"missing for {len(missing)} of the {len(cells)} cells of the {cells[0].task} benchmark "
                        "matrix: " + ", ".join(f"{c.name} ({c.scored})" for c in missing),
                        "run their stages first (`dvc repro` or `snakemake --cores N` runs "
                        + ", ".join(" and ".join(matrix.MAIN_STAGES[c.task]) if c.main else c.stage for c in missing) + ")")


def significant(p: float) -> float | None:
    """A p-value to 3 significant digits (six decimals would make 3.6e-08 a 0); None (JSON null) where undefined."""
    return None if p != p else float(f"{p:.3g}")


def seed_spread(runs: pd.DataFrame, unit: str, measure: str) -> pd.DataFrame:
    """model, <unit>, seeds, <measure>_mean, _sd (NaN with one seed), _min, _max over the seeds."""
    grouped = runs.groupby(["model", unit], sort=False)[measure]
    table = grouped.agg(seeds="count", mean="mean", sd="std", min="min", max="max").reset_index()
    table = table.rename(columns={s: f"{measure}_{s}" for s in ("mean", "sd", "min", "max")})
    return table.round({f"{measure}_mean": 6, f"{measure}_sd": 6})


def with_holm(rows: list[dict[str, Any]], unit: str, columns: list[str]) -> pd.DataFrame:
    """The comparisons with Holm's adjusted p-values: over the challengers for the MEAN rows, over challengers x
    classes (objects) for the others."""
    if not rows:
        return pd.DataFrame(columns=columns)
    table = pd.DataFrame(rows)
    is_mean = table[unit] == MEAN
    table["p_holm"] = np.nan
    for family in (is_mean, ~is_mean):
        if family.any():
            table.loc[family, "p_holm"] = holm(table.loc[family, "p_value"].to_numpy())
    p_values = ["p_value", "p_holm"]
    table = table[columns].round({c: 6 for c in columns if c not in p_values})
    table[p_values] = table[p_values].map(significant)
    return table


def bootstrap_p(resampled: np.ndarray) -> float:
    """Two-sided p-value of no difference from bootstrap replicates of a difference: twice the share on the far
    side of zero, with one added to that count and to the resamples (Davison and Hinkley 1997), so never 0;
    resamples where the difference is undefined (NaN) are left out."""
    resampled = resampled[~np.isnan(resampled)]
    far_side = (min(np.sum(resampled <= 0), np.sum(resampled >= 0)) + 1) / (len(resampled) + 1)
    return min(1.0, 2 * far_side)


def contrast_weights(cells: list[matrix.Cell], baseline: str, challenger: str) -> np.ndarray:
    """Weights over the cells: the challenger's seed average minus the baseline's."""
    models = np.array([cell.model for cell in cells])
    weights = np.zeros(len(cells))
    weights[models == baseline] = -1 / np.sum(models == baseline)
    weights[models == challenger] = 1 / np.sum(models == challenger)
    return weights


def leaderboard_table(spread: pd.DataFrame, compared: pd.DataFrame, baseline: str, unit: str, measure: str,
                      headline_unit: str = MEAN) -> pd.DataFrame:
    """One row per model, best first: its seeds, its headline measure (by default the mean over the classes or
    objects) as mean, sd and range over seeds, and against the baseline its difference with interval and
    Holm-adjusted p-value."""
    means = spread[spread[unit] == headline_unit].set_index("model")
    versus = compared[compared[unit] == headline_unit].set_index("challenger")
    rows = []
    for model, row in means.iterrows():
        against = versus.loc[model] if model in versus.index else None
        rows.append({"model": model, "role": "baseline" if model == baseline else "challenger",
                     "seeds": int(row["seeds"]), **{f"mean_{measure}{s}": row[f"{measure}_{k}"] for s, k in
                                                    (("", "mean"), ("_sd", "sd"), ("_min", "min"), ("_max", "max"))},
                     **{key: np.nan if against is None else against[key]
                        for key in ("difference", "ci_low", "ci_high", "p_holm")}})
    return pd.DataFrame(rows).sort_values(f"mean_{measure}", ascending=False, kind="stable").reset_index(drop=True)


def headline(board: pd.DataFrame, measure: str, baseline: str, seeds: int, cases: int) -> dict[str, Any]:
    """metrics/leaderboard_<task>.json: per model its mean measure over seeds and their sd; per challenger the
    difference from the baseline, its interval and Holm-adjusted p-value."""
    models = {row["model"]: {f"mean_{measure}": metric_value(row[f"mean_{measure}"]),
                             f"mean_{measure}_sd": metric_value(row[f"mean_{measure}_sd"])}
              for _, row in board.iterrows()}
    versus = {row["model"]: {"difference": metric_value(row["difference"]),
                             "ci": [metric_value(row["ci_low"]), metric_value(row["ci_high"])],
                             "p_holm": significant(row["p_holm"])}
              for _, row in board.iterrows() if row["role"] == "challenger"}
    return {"baseline": baseline, "seeds": seeds, "test_cases": cases, "models": models, "vs_baseline": versus}


def write(task: str, measure: str, tables: dict[str, pd.DataFrame], metrics: dict[str, Any]) -> None:
    """results/leaderboard/<task>/{leaderboard, comparisons, runs}.csv and metrics/leaderboard_<task>.json."""
    log = logging.getLogger(__name__)
    for _, row in tables["leaderboard"].iterrows():
        sd = "-" if row["seeds"] < 2 else f"{row[f'mean_{measure}_sd']:.4f}"
        log.info("%s %s (%s): mean %s %.4f over %d seeds (sd %s)", task, row["model"], row["role"], measure,
                 row[f"mean_{measure}"], row["seeds"], sd)
    with atomic_path(artefacts.RESULTS_LEADERBOARD[task], is_dir=True) as out:
        for name in TABLES:
            tables[name].to_csv(out / f"{name}.csv", index=False, lineterminator="\n")
    write_json(artefacts.METRICS_LEADERBOARD[task], metrics)
