"""Section part: the NIH classifier's leaderboard, which opens the NIH section (results/leaderboard/,
metrics/leaderboard_classifier.json): each model's mean AUC per seed, and each challenger's difference from the
baseline per class with its interval, the seed-to-seed spread beside it."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from cxrbench import artefacts
from cxrbench.leaderboard import MEAN, TABLES
from cxrbench.report.document import Report
from cxrbench.report.run import Run
from cxrbench.vocabulary import LABELS


def section(report: Report, run: Run) -> None:
    board = run.csv(artefacts.RESULTS_LEADERBOARD / TABLES["leaderboard"])
    runs = run.csv(artefacts.RESULTS_LEADERBOARD / TABLES["runs"])
    compared = run.csv(artefacts.RESULTS_LEADERBOARD / TABLES["comparisons"])
    metrics = run.json(artefacts.METRICS_LEADERBOARD)
    seeds = metrics["seeds"]
    report.paragraph(f"Leaderboard: {len(board)} model{'s' if len(board) > 1 else ''} x {seeds} seed"
                     f"{'s' if seeds > 1 else ''}, trained by one recipe and scored on the same {metrics['test_images']} "
                     f"test images; the baseline is {metrics['baseline']} (model.classifier). Differences from it: "
                     "DeLong's test per class, a paired bootstrap over patients for the mean AUC, Holm-adjusted.")
    report.figure(leaderboard_figure(runs, compared, metrics["baseline"]),
                  "Mean AUC of every (model, seed) with each model's mean over its seeds; and each challenger's "
                  "difference from the baseline (seed-averaged AUC, 95% interval) per class and for the mean, with "
                  "the baseline's seed-to-seed sd as a grey band around zero", "nih-leaderboard")
    report.table(leaderboard_rows(board), "Leaderboard: mean AUC over seeds (sd, range), and against the baseline the "
                 "difference with its 95% interval and Holm-adjusted p-value")
    if len(compared):
        report.table(compared.round(4).astype(object).fillna("–"),
                     "Every challenger against the baseline per class (DeLong) and for the mean AUC (paired patient "
                     "bootstrap), with both models' seed-to-seed sd", folded=True)


def leaderboard_rows(board: pd.DataFrame) -> pd.DataFrame:
    def interval(row: pd.Series) -> str:
        return "–" if pd.isna(row["difference"]) else f"{row['difference']:+.3f} ({row['ci_low']:+.3f} to {row['ci_high']:+.3f})"

    return pd.DataFrame({
        "model": board["model"], "role": board["role"], "seeds": board["seeds"],
        "mean AUC": board["mean_auc"].map("{:.3f}".format),
        "sd over seeds": board["mean_auc_sd"].map(lambda v: "–" if pd.isna(v) else f"{v:.3f}"),
        "range": [f"{lo:.3f}-{hi:.3f}" for lo, hi in zip(board["mean_auc_min"], board["mean_auc_max"])],
        "vs baseline (95% CI)": board.apply(interval, axis=1),
        "p (Holm)": board["p_holm"].map(lambda v: "–" if pd.isna(v) else f"{v:.3g}")})


def leaderboard_figure(runs: pd.DataFrame, compared: pd.DataFrame, baseline: str):
    """Left: mean AUC per seed (dots) and over seeds (bar) per model. Right (with challengers): difference from
    the baseline per class and for the mean, a marker and interval per challenger."""
    means = runs[runs["class"] == MEAN]
    models = list(dict.fromkeys(means["model"]))
    panels = 2 if len(compared) else 1
    fig, axes = plt.subplots(1, panels, figsize=(4.2 + 5.2 * (panels - 1), max(2.6, 0.5 * len(models) + 1.6) if
                                                 panels == 1 else 0.34 * (len(LABELS) + 1) + 1.6),
                             squeeze=False, width_ratios=[1, 1.25][:panels])
    ax = axes[0, 0]
    for position, model in enumerate(models):
        values = means.loc[means["model"] == model, "auc"].to_numpy()
        ax.barh(position, values.mean(), color="C0" if model == baseline else "C1", alpha=0.35, height=0.6)
        ax.scatter(values, np.full(len(values), position), color="black", s=18, zorder=3)
    ax.set(yticks=range(len(models)), yticklabels=models, xlabel="test mean AUC", title="Per seed and mean")
    low = means["auc"].min()
    ax.set_xlim(max(0.0, low - 0.05), min(1.0, means["auc"].max() + 0.02))
    ax.invert_yaxis()
    ax.grid(axis="x", lw=0.4, alpha=0.5)
    if panels == 2:
        ax = axes[0, 1]
        classes = [*LABELS, MEAN]
        y = np.arange(len(classes))[::-1].astype(float)
        challengers = list(dict.fromkeys(compared["challenger"]))
        spread = runs[runs["model"] == baseline].groupby("class")["auc"].std().reindex(classes).to_numpy()
        ax.barh(y, 2 * np.nan_to_num(spread), left=-np.nan_to_num(spread), color="grey", alpha=0.25, height=0.8,
                label=f"{baseline}: ±1 sd over seeds")
        for number, challenger in enumerate(challengers):
            rows = compared[compared["challenger"] == challenger].set_index("class").reindex(classes)
            offset = (number - (len(challengers) - 1) / 2) * 0.22
            d = rows["difference"].to_numpy(float)
            ax.errorbar(d, y + offset, xerr=np.vstack([d - rows["ci_low"], rows["ci_high"] - d]).clip(min=0),
                        fmt="o", ms=4, capsize=2, lw=1.2, color=f"C{number + 1}", label=challenger)
        ax.axvline(0, color="black", lw=0.8)
        ax.set(yticks=y, yticklabels=classes, xlabel=f"AUC difference from {baseline}", title="Against the baseline")
        ax.grid(axis="x", lw=0.4, alpha=0.5)
        ax.legend(fontsize=7, loc="lower right", frameon=False)
    fig.tight_layout()
    return fig
