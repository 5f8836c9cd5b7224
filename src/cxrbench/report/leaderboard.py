"""Section part: a task's leaderboard, which opens its section (results/leaderboard/<task>/,
metrics/leaderboard_<task>.json): each model's mean score per seed, and each challenger's difference from the
baseline per class (object) with its interval, the baseline's seed-to-seed spread beside it."""

from __future__ import annotations

from dataclasses import dataclass

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from cxrbench import artefacts
from cxrbench.leaderboard import MEAN
from cxrbench.nodules import FP_PER_IMAGE
from cxrbench.report.document import Report
from cxrbench.report.run import Run
from cxrbench.vocabulary import LABELS, PUBLISHED_OBJECTS


@dataclass(frozen=True)
class Board:
    task: str
    unit: str  # a row of comparisons.csv: class or object
    measure: str  # auc or jaccard
    label: str  # how people call the measure
    units: tuple[str, ...]
    cases: str  # what the test set is made of
    tests: str  # how a challenger is compared
    headline: str = MEAN  # the unit models are ranked by: the mean over the others, or the only one
    scored: str = "the mean"  # what the headline unit is, in words
    unit_words: str = ""  # how people call a unit, when not its column name

    @property
    def per(self) -> str:
        return self.unit_words or self.unit


BOARDS = {
    "classifier": Board("classifier", "class", "auc", "AUC", LABELS, "test images",
                        "DeLong's test per class, a paired bootstrap over patients for the mean AUC, Holm-adjusted"),
    "segmenter": Board("segmenter", "object", "jaccard", "Jaccard", tuple(PUBLISHED_OBJECTS),
                       "cases (each tested by the model of the other fold, scored at 1024 px)",
                       "Wilcoxon's signed-rank test over cases per object and for the mean, Holm-adjusted",
                       scored="the mean over the lung fields, the heart and the clavicles"),
    "nodule_classifier": Board("nodule_classifier", "task", "auc", "malignancy AUC", (), "nodule cases (each scored "
                               "out of fold)", "DeLong's test, Holm-adjusted", headline="malignancy",
                               scored="malignant vs benign"),
    "nodule_heatmap": Board("nodule_heatmap", "fp_per_image", "sensitivity", "FROC sensitivity",
                            tuple(f"{fp:g}" for fp in FP_PER_IMAGE), "cases (each scored out of fold)",
                            "a paired bootstrap over cases at each false-positive rate and for the mean, Holm-adjusted",
                            scored="the mean over 1, 2 and 4 false positives per image",
                            unit_words="false-positive rate"),
}


def section(report: Report, run: Run, task: str) -> None:
    board = BOARDS[task]
    folder = artefacts.RESULTS_LEADERBOARD[task]
    table = run.csv(folder / "leaderboard.csv")
    runs = run.csv(folder / "runs.csv")
    compared = run.csv(folder / "comparisons.csv")
    metrics = run.json(artefacts.METRICS_LEADERBOARD[task])
    seeds = metrics["seeds"]
    report.paragraph(f"Leaderboard ({board.label}): {len(table)} model{'s' if len(table) > 1 else ''} x {seeds} seed"
                     f"{'s' if seeds > 1 else ''}, trained by one recipe and scored on the same {metrics['test_cases']} "
                     f"{board.cases}; the baseline is {metrics['baseline']} (model.{task}). Differences from it: "
                     f"{board.tests}.")
    report.figure(leaderboard_figure(runs, compared, metrics["baseline"], board),
                  f"Mean {board.label} of every (model, seed) with each model's mean over its seeds; and each "
                  f"challenger's difference from the baseline (seed-averaged, 95% interval), "
                  f"{f'per {board.per} and for ' if board.units else 'for '}{board.scored}, with the baseline's "
                  "seed-to-seed sd as a grey band around zero", f"{task.replace('_', '-')}-leaderboard")
    report.table(leaderboard_rows(table, board), f"Leaderboard: {board.label} ({board.scored}) over seeds (mean, sd, "
                 "range), and against the baseline the difference with its 95% interval and Holm-adjusted p-value")
    if len(compared):
        report.table(compared.round(4).astype(object).fillna("–"),
                     f"Every challenger against the baseline{f' per {board.per} and for ' if board.units else ' for '}"
                     f"{board.scored}, with both models' seed-to-seed sd", folded=True)


def leaderboard_rows(table: pd.DataFrame, board: Board) -> pd.DataFrame:
    def interval(row: pd.Series) -> str:
        if pd.isna(row["difference"]):
            return "–"
        return f"{row['difference']:+.3f} ({row['ci_low']:+.3f} to {row['ci_high']:+.3f})"

    mean = f"mean_{board.measure}"
    return pd.DataFrame({
        "model": table["model"], "role": table["role"], "seeds": table["seeds"],
        f"mean {board.label}": table[mean].map(lambda v: "–" if pd.isna(v) else f"{v:.3f}"),
        "sd over seeds": table[f"{mean}_sd"].map(lambda v: "–" if pd.isna(v) else f"{v:.3f}"),
        "range": ["–" if pd.isna(lo) else f"{lo:.3f}-{hi:.3f}" for lo, hi in zip(table[f"{mean}_min"],
                                                                                  table[f"{mean}_max"])],
        "vs baseline (95% CI)": table.apply(interval, axis=1),
        "p (Holm)": table["p_holm"].map(lambda v: "–" if pd.isna(v) else f"{v:.3g}")})


def leaderboard_figure(runs: pd.DataFrame, compared: pd.DataFrame, baseline: str, board: Board):
    """Left: the mean over classes (objects) per seed (dots) and over seeds (bar) per model. Right (with
    challengers): difference from the baseline per class (object) and for the mean, a marker and interval per
    challenger."""
    means = runs[runs[board.unit] == board.headline]
    models = list(dict.fromkeys(means["model"]))
    units = [*board.units, board.headline]
    panels = 2 if len(compared) else 1
    height = 0.34 * len(units) + 1.6 if panels == 2 else max(2.4, 0.5 * len(models) + 1.4)
    fig, axes = plt.subplots(1, panels, figsize=(4.2 + 5.2 * (panels - 1), height), squeeze=False,
                             width_ratios=[1, 1.25][:panels])
    ax = axes[0, 0]
    for position, model in enumerate(models):
        values = means.loc[means["model"] == model, board.measure].to_numpy()
        ax.barh(position, values.mean(), color="C0" if model == baseline else "C1", alpha=0.35, height=0.5)
        ax.scatter(values, np.full(len(values), position), color="black", s=18, zorder=3)
    ax.set(yticks=range(len(models)), yticklabels=models, xlabel=f"mean {board.label}" if board.units else board.label,
           title="Per seed and mean")
    ax.set_xlim(max(0.0, means[board.measure].min() - 0.05), min(1.0, means[board.measure].max() + 0.02))
    ax.invert_yaxis()
    ax.grid(axis="x", lw=0.4, alpha=0.5)
    if panels == 2:
        ax = axes[0, 1]
        y = np.arange(len(units))[::-1].astype(float)
        challengers = list(dict.fromkeys(compared["challenger"]))
        spread = runs[runs["model"] == baseline].groupby(board.unit)[board.measure].std().reindex(units).to_numpy()
        ax.barh(y, 2 * np.nan_to_num(spread), left=-np.nan_to_num(spread), color="grey", alpha=0.25, height=0.8,
                label=f"{baseline}: ±1 sd over seeds")
        for number, challenger in enumerate(challengers):
            rows = compared[compared["challenger"] == challenger].set_index(board.unit).reindex(units)
            offset = (number - (len(challengers) - 1) / 2) * 0.22
            d = rows["difference"].to_numpy(float)
            ax.errorbar(d, y + offset, xerr=np.vstack([d - rows["ci_low"], rows["ci_high"] - d]).clip(min=0),
                        fmt="o", ms=4, capsize=2, lw=1.2, color=f"C{number + 1}", label=challenger)
        ax.axvline(0, color="black", lw=0.8)
        ax.set(yticks=y, yticklabels=units, xlabel=f"{board.label} difference from {baseline}",
               title="Against the baseline")
        ax.grid(axis="x", lw=0.4, alpha=0.5)
        ax.legend(fontsize=7, loc="lower right", frameon=False)
    fig.tight_layout()
    return fig
