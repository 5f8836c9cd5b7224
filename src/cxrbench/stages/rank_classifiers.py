"""Stage rank_classifiers: the NIH classifier's leaderboard over every cell of the benchmark matrix
(cxrbench.leaderboard): train_classifier's test predictions (results/classifier/predictions.csv) and those of
every benchmark_classifier stage. Fails naming any cell whose predictions are missing.

Writes results/leaderboard/: classifier.csv (a row per model: mean AUC over seeds with sd and range, difference
from the baseline with interval and Holm-adjusted p-value), comparisons.csv (per challenger and class, DeLong;
the mean AUC by paired patient bootstrap) and runs.csv (every cell's AUC per class); and
metrics/leaderboard_classifier.json (per model its mean AUC and sd over seeds; per challenger the difference).
"""

from __future__ import annotations

import logging
from typing import Any

from cxrbench import artefacts, leaderboard
from cxrbench.fileio import atomic_path, write_json
from cxrbench.stages._app import run_stage

log = logging.getLogger(__name__)


def rank(params: dict[str, Any]) -> None:
    tables, metrics = leaderboard.rank(params)
    for _, row in tables["leaderboard"].iterrows():
        log.info("%s (%s): mean AUC %.4f over %d seeds (sd %s)", row["model"], row["role"], row["mean_auc"],
                 row["seeds"], "-" if row["seeds"] < 2 else f"{row['mean_auc_sd']:.4f}")
    with atomic_path(artefacts.RESULTS_LEADERBOARD, is_dir=True) as out:
        for name, file in leaderboard.TABLES.items():
            tables[name].to_csv(out / file, index=False, lineterminator="\n")
    write_json(artefacts.METRICS_LEADERBOARD, metrics)


def main() -> None:
    run_stage("rank_classifiers", rank)


if __name__ == "__main__":
    main()
