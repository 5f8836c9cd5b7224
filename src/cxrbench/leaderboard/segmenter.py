"""The SCR segmenter's leaderboard: every cell of its benchmark matrix (cxrbench.matrix) scored on the same 247
(synthetic: all) cases in the two-fold protocol, each model's mean Jaccard per published object (lung fields,
heart, clavicles, at 1024 px as cxrbench.segmentation_scores scores them) as mean and standard deviation over its
seeds, and every challenger compared with the baseline (model.segmenter) case by case.

Per object (and for the mean over the objects): each case's Jaccard averaged over a model's seeds, the
challenger's minus the baseline's; the mean of those differences with a percentile bootstrap interval over cases,
and the two-sided p-value of Wilcoxon's signed-rank test of the paired differences (no assumption of
normality: Jaccards crowd against 1). Holm's correction over the challengers for the mean, and over challengers x
objects for the objects.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import wilcoxon

from cxrbench import matrix, seed_streams
from cxrbench.leaderboard import MEAN, headline, leaderboard_table, require_cells, seed_spread, with_holm
from cxrbench.metrics.roc import percentile_interval
from cxrbench.vocabulary import PUBLISHED_OBJECTS

TASK, UNIT, MEASURE = "segmenter", "object", "jaccard"
COMPARISON_COLUMNS = ["challenger", "object", "baseline_jaccard", "challenger_jaccard", "difference", "ci_low",
                      "ci_high", "p_value", "p_holm", "method", "baseline_seed_sd", "challenger_seed_sd", "cases"]


def read_cases(params: dict[str, Any], root: Path = Path(".")) -> pd.DataFrame:
    """model, seed, case, object (the published objects, then MEAN: their mean), jaccard: every cell's per-case
    Jaccards."""
    cells = matrix.cells(params, TASK)
    require_cells(cells, root)
    frames = []
    for cell in cells:
        cases = pd.read_csv(root / cell.scored)[["case", "object", "jaccard"]]
        cases = cases[cases["object"].isin(PUBLISHED_OBJECTS)]
        mean = cases.groupby("case", sort=False, as_index=False)["jaccard"].mean().assign(object=MEAN)
        frames.append(pd.concat([cases, mean], ignore_index=True).assign(model=cell.model, seed=cell.seed))
    return pd.concat(frames, ignore_index=True)


def runs_table(cases: pd.DataFrame) -> pd.DataFrame:
    """model, seed, object, jaccard (mean over the cases), cases: one row per cell and object."""
    runs = cases.groupby(["model", "seed", "object"], sort=False)["jaccard"].agg(jaccard="mean", cases="count")
    return runs.reset_index().round({"jaccard": 6})


def paired(differences: np.ndarray, resamples: int, alpha: float, seed: int) -> tuple[float, float, float]:
    """(low, high, p): the percentile bootstrap interval of the mean of per-case differences and Wilcoxon's
    signed-rank p-value (1 when every difference is 0)."""
    rng = np.random.default_rng(seed)
    means = differences[rng.integers(0, len(differences), size=(resamples, len(differences)))].mean(axis=1)
    low, high = percentile_interval(means[:, None], alpha)
    p = 1.0 if not np.any(differences) else float(wilcoxon(differences, zero_method="zsplit").pvalue)
    return float(low[0]), float(high[0]), p


def comparisons(cases: pd.DataFrame, spread: pd.DataFrame, baseline: str, bootstrap: dict[str, Any],
                seed: int) -> pd.DataFrame:
    """Per challenger and object (and MEAN): both seed-averaged Jaccards, the mean per-case difference (challenger
    - baseline) with its interval, Wilcoxon's p and Holm's adjusted p, and both models' seed-to-seed sd."""
    by_case = cases.groupby(["model", "object", "case"], sort=False)["jaccard"].mean().sort_index()
    sd = spread.set_index(["model", UNIT])[f"{MEASURE}_sd"]
    stream = int(np.random.SeedSequence([seed, seed_streams.BOOTSTRAP_LEADERBOARD]).generate_state(1)[0])
    rows = []
    for model in [m for m in dict.fromkeys(cases["model"]) if m != baseline]:
        for obj in [*PUBLISHED_OBJECTS, MEAN]:
            ours, theirs = by_case.loc[(model, obj)], by_case.loc[(baseline, obj)]
            differences = (ours - theirs.reindex(ours.index)).to_numpy()
            low, high, p = paired(differences, bootstrap["resamples"], bootstrap["alpha"], stream)
            rows.append({"challenger": model, "object": obj, "baseline_jaccard": theirs.mean(),
                         "challenger_jaccard": ours.mean(), "difference": differences.mean(), "ci_low": low,
                         "ci_high": high, "p_value": p, "method": "Wilcoxon signed-rank over cases",
                         "baseline_seed_sd": sd[(baseline, obj)], "challenger_seed_sd": sd[(model, obj)],
                         "cases": len(differences)})
    return with_holm(rows, UNIT, COMPARISON_COLUMNS)


def rank(params: dict[str, Any], root: Path = Path(".")) -> tuple[dict[str, pd.DataFrame], dict[str, Any]]:
    """The leaderboard's tables (leaderboard, comparisons, runs) and its headline metrics for a finished run."""
    cases = read_cases(params, root)
    runs = runs_table(cases)
    spread = seed_spread(runs, UNIT, MEASURE)
    baseline = matrix.cells(params, TASK)[0].model
    compared = comparisons(cases, spread, baseline, params["evaluate"]["bootstrap"], params["seed"])
    board = leaderboard_table(spread, compared, baseline, UNIT, MEASURE)
    return ({"leaderboard": board, "comparisons": compared, "runs": runs},
            headline(board, MEASURE, baseline, len(params["benchmark"]["seeds"]), int(cases["case"].nunique())))
