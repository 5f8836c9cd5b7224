"""Time DeLong's paired test of every pair of models: cxrbench's midrank placement values against their
definition (every positive against every negative), on the same data, checking both give the same AUCs,
covariances and p-values.

Default size: the NIH official test set's shape, 25,596 images x 14 labels at the NIH release's prevalences,
three models (three pairs), scores rounded to 3 decimals (ties, as with low-precision outputs).

    python benchmarks/paired_auc.py            # full size
    python benchmarks/paired_auc.py --quick    # 4,000 images

The last line is `RESULT paired_auc ratio=... reference_s=... midrank_s=... max_abs_diff=... n=... k=... pairs=...`.
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import result_line  # noqa: E402
from bootstrap_auc import nih_prevalences  # noqa: E402

from cxrbench.metrics.paired import (  # noqa: E402
    auc_covariance,
    holm,
    paired_from_covariance,
    placement_values_by_pairs,
)


def models_on_one_test_set(n: int, k: int, models: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Labels (n, k) and scores (models, n, k): models of rising quality sharing part of their errors."""
    rng = np.random.default_rng(seed)
    y = rng.random((n, k)) < np.resize(nih_prevalences(), k)
    shared = rng.normal(size=(n, k))
    scores = np.stack([(1.0 + 0.1 * m) * y + 0.6 * shared + rng.normal(size=(n, k)) for m in range(models)])
    return y, (1 / (1 + np.exp(-scores))).round(3)


def all_pairs(y: np.ndarray, scores: np.ndarray, placements=None) -> tuple[np.ndarray, np.ndarray, list]:
    auc, cov = auc_covariance(y, scores) if placements is None else auc_covariance(y, scores, placements)
    pairs = [paired_from_covariance(auc, cov, a, b) for a, b in itertools.combinations(range(len(scores)), 2)]
    return auc, cov, pairs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="4,000 images instead of 25,596")
    parser.add_argument("--n", type=int, default=None)
    parser.add_argument("--k", type=int, default=14)
    parser.add_argument("--models", type=int, default=3)
    args = parser.parse_args()
    n = args.n or (4_000 if args.quick else 25_596)
    y, scores = models_on_one_test_set(n, args.k, args.models, seed=0)
    print(f"data: {n} images x {args.k} labels x {args.models} models, positives per label "
          f"{y.sum(axis=0).tolist()}", flush=True)

    started = time.perf_counter()
    auc, cov, pairs = all_pairs(y, scores)
    p_holm = holm(np.concatenate([pair.p_value for pair in pairs]))
    midrank_s = time.perf_counter() - started
    print(f"midrank placement values: {len(pairs)} pairs in {midrank_s:.3f} s", flush=True)

    started = time.perf_counter()
    reference_auc, reference_cov, reference_pairs = all_pairs(y, scores, placement_values_by_pairs)
    reference_s = time.perf_counter() - started
    print(f"placement values by definition: {len(pairs)} pairs in {reference_s:.2f} s", flush=True)

    diff = max(np.nanmax(np.abs(auc - reference_auc)), np.nanmax(np.abs(cov - reference_cov)),
               *(np.nanmax(np.abs(p.p_value - r.p_value)) for p, r in zip(pairs, reference_pairs, strict=True)))
    print(f"max abs difference (AUCs, covariances, p-values): {diff:.3g}; "
          f"{int(np.sum(p_holm < 0.05))} of {p_holm.size} class comparisons significant after Holm")
    if diff > 1e-9:
        raise SystemExit(f"the two implementations disagree by {diff:.3g}")
    print(result_line("paired_auc", reference_s / midrank_s, {
        "reference_s": round(reference_s, 2), "midrank_s": round(midrank_s, 3), "max_abs_diff": f"{diff:.1e}",
        "n": n, "k": args.k, "pairs": len(pairs)}))


if __name__ == "__main__":
    main()
