"""Does the NIH classifier work equally for every group of patients? Test AUC per class and mean by sex, age band,
view and number of follow-ups, with percentile bootstrap intervals over patients, and the underdiagnosis rate of
Seyyed-Kalantari et al. (Nature Medicine 2021): of the test images that carry a finding, the share the model
calls "No Finding", per group.

The model has no "No Finding" output: an image's no-finding score is the probability that none of the 14 findings
is present, prod(1 - p_k), and it is called "No Finding" when that score reaches the threshold that maximises the
F1 score of "No Finding" on the validation part (Seyyed-Kalantari et al. chose their operating point on validation
too). A group whose bootstrap cannot give an interval (fewer than MIN_PATIENTS patients, or one class only in
every resample) keeps its point estimate and is marked `small`, never left out.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd

from cxrbench import seed_streams
from cxrbench.fileio import metric_value
from cxrbench.metrics.roc import bootstrap_auc, roc_auc
from cxrbench.vocabulary import LABELS

AGE_BANDS = ((0, "0-19"), (20, "20-39"), (40, "40-59"), (60, "60-79"), (80, "80+"))  # lower bound (years), name
FOLLOW_UP_BANDS = ((0, "0"), (1, "1-4"), (5, "5-19"), (20, "20+"))  # the image's follow-up number
ATTRIBUTES = ("sex", "age", "view", "follow-ups")
MIN_PATIENTS = 5  # fewer patients than this: no interval is attempted
COLUMNS = ["attribute", "group", "images", "patients", "class", "positives", "auc", "ci_low", "ci_high", "small"]


def _band(values: pd.Series, bands: tuple[tuple[int, str], ...]) -> pd.Series:
    bounds = [lower for lower, _ in bands]
    return pd.Series(np.asarray([name for _, name in bands])[np.searchsorted(bounds, values.to_numpy(), "right") - 1],
                     index=values.index)


def groups_of(images: pd.DataFrame) -> pd.DataFrame:
    """Per image (rows of the store index: sex, age_years, view, follow_up) its group for each attribute."""
    return pd.DataFrame({"sex": images["sex"], "age": _band(images["age_years"].clip(lower=0), AGE_BANDS),
                         "view": images["view"], "follow-ups": _band(images["follow_up"], FOLLOW_UP_BANDS)})


def memberships(images: pd.DataFrame) -> Iterator[tuple[str, str, np.ndarray]]:
    """(attribute, group, which of `images` belong to it) for every group of every attribute, groups in order."""
    for attribute, membership in groups_of(images).items():
        for group in sorted(membership.unique(), key=str):
            yield attribute, str(group), (membership == group).to_numpy()


def no_finding_score(probabilities: np.ndarray) -> np.ndarray:
    """The probability that none of the findings is present, were the outputs independent."""
    return np.prod(1.0 - probabilities, axis=1)


def no_finding_threshold(y: np.ndarray, probabilities: np.ndarray) -> float:
    """The no-finding score threshold with the best F1 for "No Finding" (no label set) on these images; the
    lowest such threshold on ties; 1.0 (never call "No Finding") when no image is free of findings."""
    truth = ~y.any(axis=1)
    score = no_finding_score(probabilities)
    if not truth.any():
        return 1.0
    candidates = np.unique(score)
    called = score[None, :] >= candidates[:, None]
    true_positive = (called & truth).sum(axis=1)
    f1 = 2 * true_positive / (called.sum(axis=1) + truth.sum())
    return float(candidates[np.argmax(f1)])


def underdiagnosis(y: np.ndarray, probabilities: np.ndarray, threshold: float) -> tuple[float, int]:
    """Of the images with a finding, the share called "No Finding" (NaN without one), and how many images that
    share is of."""
    ill = y.any(axis=1)
    if not ill.any():
        return np.nan, 0
    return float((no_finding_score(probabilities[ill]) >= threshold).mean()), int(ill.sum())


def subgroup_table(y: np.ndarray, probabilities: np.ndarray, images: pd.DataFrame, bootstrap: dict[str, Any],
                   seed: int) -> pd.DataFrame:
    """Per attribute, group and class (and the mean over classes, class "mean") the test AUC with its patient
    bootstrap interval; `images` are the store index rows of `y`'s images, in order."""
    stream = int(np.random.SeedSequence([seed, seed_streams.BOOTSTRAP_SUBGROUPS]).generate_state(1)[0])
    patients = images["patient"].to_numpy()
    rows = []
    for attribute, group, members in memberships(images):
        n_patients = len(np.unique(patients[members]))
        head = {"attribute": attribute, "group": group, "images": int(members.sum()), "patients": n_patients}
        auc, low, high, mean = _aucs(y[members], probabilities[members], patients[members],
                                     bootstrap if n_patients >= MIN_PATIENTS else None, stream)
        for k, label in enumerate(LABELS):
            rows.append({**head, "class": label, "positives": int(y[members, k].sum()),
                         **_cells(auc[k], low[k], high[k])})
        rows.append({**head, "class": "mean", "positives": int(y[members].any(axis=1).sum()), **_cells(*mean)})
    table = pd.DataFrame(rows)
    table["small"] = table["ci_low"].isna()
    return table[COLUMNS]


def _aucs(y: np.ndarray, probabilities: np.ndarray, patients: np.ndarray, bootstrap: dict[str, Any] | None,
          seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, tuple[float, float, float]]:
    """Per-class AUC, interval bounds (NaN without `bootstrap`) and (mean AUC, its bounds)."""
    if bootstrap is None:
        auc = roc_auc(y, probabilities)
        nan = np.full(len(auc), np.nan)
        defined = auc[~np.isnan(auc)]
        return auc, nan, nan, (float(defined.mean()) if len(defined) else np.nan, np.nan, np.nan)
    boot = bootstrap_auc(y, probabilities, n_resamples=bootstrap["resamples"], alpha=bootstrap["alpha"],
                         groups=patients, seed=seed)
    return boot["auc"], boot["ci_low"], boot["ci_high"], (boot["mean_auc"], boot["mean_ci_low"], boot["mean_ci_high"])


def _cells(auc: float, low: float, high: float) -> dict[str, Any]:
    return {"auc": metric_value(auc), "ci_low": metric_value(low), "ci_high": metric_value(high)}


def subgroup_metrics(table: pd.DataFrame, y: np.ndarray, probabilities: np.ndarray, images: pd.DataFrame,
                     threshold: float) -> dict[str, Any]:
    """results/classifier/subgroups.json: per attribute and group the mean AUC with its interval and the
    underdiagnosis rate."""
    means = table[table["class"] == "mean"].set_index(["attribute", "group"])
    metrics: dict[str, Any] = {"no_finding_threshold": metric_value(threshold), **{a: {} for a in ATTRIBUTES}}
    for attribute, group, members in memberships(images):
        rate, ill = underdiagnosis(y[members], probabilities[members], threshold)
        mean = means.loc[(attribute, group)]
        metrics[attribute][group] = {
            "images": int(mean["images"]), "mean_auc": metric_value(mean["auc"]),
            "mean_auc_ci": None if mean["small"] else [float(mean["ci_low"]), float(mean["ci_high"])],
            "underdiagnosis_rate": metric_value(rate), "images_with_a_finding": ill}
    return metrics


def headline(metrics: dict[str, Any]) -> dict[str, Any]:
    """metrics/subgroups.json: per attribute the gap between its groups (highest minus lowest, over the groups with
    a value) in mean AUC and in underdiagnosis rate, and the threshold; the groups' figures stay in
    results/classifier/subgroups.json."""
    def gap(values: list[float | None]) -> float | None:
        present = [v for v in values if v is not None]
        return metric_value(max(present) - min(present)) if len(present) > 1 else None

    return {"no_finding_threshold": metrics["no_finding_threshold"],
            **{attribute: {"mean_auc_gap": gap([g["mean_auc"] for g in metrics[attribute].values()]),
                           "underdiagnosis_gap": gap([g["underdiagnosis_rate"] for g in metrics[attribute].values()])}
               for attribute in ATTRIBUTES}}
