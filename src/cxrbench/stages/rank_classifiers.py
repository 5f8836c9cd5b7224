"""Stage rank_classifiers: the NIH classifier's leaderboard over every cell of its benchmark matrix
(cxrbench.leaderboard.classifier): train_classifier's test predictions (results/classifier/predictions.csv) and
those of every benchmark_classifier stage. Fails naming any cell whose predictions are missing.

Writes results/leaderboard/classifier/: leaderboard.csv (a row per model: mean AUC over seeds with sd and range,
difference from the baseline with interval and Holm-adjusted p-value), comparisons.csv (per challenger and class,
DeLong; the mean AUC by paired patient bootstrap) and runs.csv (every cell's AUC per class); and
metrics/leaderboard_classifier.json (per model its mean AUC and sd over seeds; per challenger the difference).
"""

from __future__ import annotations

from typing import Any

from cxrbench import leaderboard
from cxrbench.leaderboard import classifier
from cxrbench.stages._app import run_stage


def rank(params: dict[str, Any]) -> None:
    leaderboard.write(classifier.TASK, classifier.MEASURE, *classifier.rank(params))


def main() -> None:
    run_stage("rank_classifiers", rank)


if __name__ == "__main__":
    main()
