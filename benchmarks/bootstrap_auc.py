"""Time bootstrap ROC AUC intervals: a loop of sklearn calls against cxrbench's vectorised version.

Both use the same resamples (`resample_indices`), so their intervals must agree to float rounding.
Default size is the NIH official test set's shape, 25,596 images x 14 labels, 1,000 resamples, with
labels drawn at the NIH release's per-class prevalences and scores rounded to 3 decimals (so there
are ties, as with low-precision model outputs). At full size the naive loop runs on a subset of the
resamples and its time is scaled up; the output says so.

    python benchmarks/bootstrap_auc.py            # full size
    python benchmarks/bootstrap_auc.py --quick    # small, naive loop over every resample

The last line is `RESULT bootstrap_auc ratio=... naive_s=... vectorised_s=... max_abs_diff=... n=... k=... resamples=...`.
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
from sklearn.exceptions import UndefinedMetricWarning
from sklearn.metrics import roc_auc_score

from cxrbench import published
from cxrbench.metrics.roc import bootstrap_auc, percentile_interval, resample_indices


def nih_prevalences() -> np.ndarray:
    """Per-class image shares of the whole NIH release (published totals / 112,120 images)."""
    counts = published.load(task="nih_dataset").query("source == 'NIH release page'")
    by_label = counts.set_index("label")["value"]
    return by_label[published.labels("nih_classification")].to_numpy() / 112_120


def synthetic_scores(n: int, k: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    prevalence = np.resize(nih_prevalences(), k)
    y = (rng.random((n, k)) < prevalence).astype(np.int8)
    logits = rng.normal(size=(n, k)) + 1.2 * y
    return y, np.round(1 / (1 + np.exp(-logits)), 3)


def naive_replicates(y: np.ndarray, scores: np.ndarray, draws: np.ndarray) -> np.ndarray:
    """One sklearn call per resample (the reference implementation); NaN where a class is absent."""
    with warnings.catch_warnings():
        # a rare class missing from a resample is expected here; sklearn then returns NaN for it
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        return np.stack([roc_auc_score(y[rows], scores[rows], average=None) for rows in draws])


def max_abs_difference(a: np.ndarray, b: np.ndarray) -> float:
    """Largest difference where both are defined; inf if they are undefined (NaN) in different places."""
    a, b = np.asarray(a), np.asarray(b)
    if not np.array_equal(np.isnan(a), np.isnan(b)):
        return np.inf
    defined = ~np.isnan(a)
    return float(np.abs(a[defined] - b[defined]).max(initial=0.0))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small problem, naive loop over every resample")
    parser.add_argument("--n", type=int, help="images (default 25,596; 2,000 with --quick)")
    parser.add_argument("--k", type=int, default=14, help="labels")
    parser.add_argument("--resamples", type=int, help="bootstrap resamples (default 1,000; 200 with --quick)")
    parser.add_argument("--naive-resamples", type=int,
                        help="resamples the naive loop runs, time scaled to all (default: all with --quick, else 100)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    n = args.n or (2_000 if args.quick else 25_596)
    n_resamples = args.resamples or (200 if args.quick else 1_000)
    n_naive = min(args.naive_resamples or (n_resamples if args.quick else 100), n_resamples)

    y, scores = synthetic_scores(n, args.k, args.seed)
    print(f"data: {n} images x {args.k} labels, positives per label {y.sum(axis=0).tolist()}", flush=True)

    start = time.perf_counter()
    result = bootstrap_auc(y, scores, n_resamples=n_resamples, seed=args.seed)
    vectorised_s = time.perf_counter() - start
    print(f"vectorised: {n_resamples} resamples in {vectorised_s:.2f} s", flush=True)

    draws = resample_indices(n, n_naive, args.seed)
    start = time.perf_counter()
    naive = naive_replicates(y, scores, draws)
    naive_measured_s = time.perf_counter() - start
    naive_s = naive_measured_s * n_resamples / n_naive
    if n_naive < n_resamples:
        print(f"naive: {n_naive} of {n_resamples} resamples in {naive_measured_s:.2f} s, "
              f"scaled x{n_resamples / n_naive:g} to {naive_s:.1f} s; intervals compared over those "
              f"{n_naive} resamples", flush=True)
    else:
        print(f"naive: {n_naive} resamples in {naive_s:.2f} s", flush=True)

    vectorised = result["replicates"][:n_naive]
    replicate_diff = max_abs_difference(naive, vectorised)
    interval_diff = max(
        max_abs_difference(naive_bound, vectorised_bound)
        for naive_bound, vectorised_bound in zip(
            percentile_interval(naive, result["alpha"]), percentile_interval(vectorised, result["alpha"])
        )
    )
    print(f"max abs difference: per-resample AUCs {replicate_diff:.3g}, interval bounds {interval_diff:.3g}")
    if interval_diff > 1e-6:
        raise SystemExit(f"FAILED: intervals differ by {interval_diff:.3g} > 1e-6")
    print(f"RESULT bootstrap_auc ratio={naive_s / vectorised_s:.1f} naive_s={naive_s:.2f} "
          f"vectorised_s={vectorised_s:.2f} max_abs_diff={interval_diff:.3g} n={n} k={args.k} "
          f"resamples={n_resamples}")


if __name__ == "__main__":
    main()
