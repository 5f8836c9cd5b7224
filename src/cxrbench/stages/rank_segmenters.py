"""Stage rank_segmenters: the SCR segmenter's leaderboard over every cell of its benchmark matrix
(cxrbench.leaderboard.segmenter): evaluate_segmenter's per-case scores (results/segmenter/cases.csv) and those of
every benchmark_segmenter stage. Fails naming any cell whose scores are missing.

Writes results/leaderboard/segmenter/: leaderboard.csv (a row per model: mean Jaccard over the objects and seeds
with sd and range, difference from the baseline with interval and Holm-adjusted p-value), comparisons.csv (per
challenger and object, Wilcoxon's signed-rank test over cases) and runs.csv (every cell's mean Jaccard per
object); and metrics/leaderboard_segmenter.json.
"""

from __future__ import annotations

from typing import Any

from cxrbench import leaderboard
from cxrbench.leaderboard import segmenter
from cxrbench.stages._app import run_stage


def rank(params: dict[str, Any]) -> None:
    leaderboard.write(segmenter.TASK, segmenter.MEASURE, *segmenter.rank(params))


def main() -> None:
    run_stage("rank_segmenters", rank)


if __name__ == "__main__":
    main()
