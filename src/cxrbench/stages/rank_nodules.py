"""Stage rank_nodules: the JSRT nodule models' leaderboards over every cell of their benchmark matrices
(cxrbench.leaderboard.nodules): evaluate_nodules' out-of-fold scores and candidates (results/nodules/) and those of
every benchmark_nodule_classifier and benchmark_nodule_heatmap stage. Fails naming any cell whose scores are missing.

Writes, for nodule_classifier (malignancy AUC, DeLong) and nodule_heatmap (FROC sensitivities at 1, 2 and 4 false
positives per image and their mean, paired case bootstrap): results/leaderboard/<task>/ (leaderboard.csv,
comparisons.csv, runs.csv) and metrics/leaderboard_<task>.json.
"""

from __future__ import annotations

from typing import Any

from cxrbench import leaderboard
from cxrbench.leaderboard import nodules
from cxrbench.stages._app import run_stage


def rank(params: dict[str, Any]) -> None:
    for task in nodules.TASKS:
        leaderboard.write(task, nodules.MEASURE[task], *nodules.RANK[task](params))


def main() -> None:
    run_stage("rank_nodules", rank)


if __name__ == "__main__":
    main()
