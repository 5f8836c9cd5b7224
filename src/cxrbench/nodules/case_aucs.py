"""AUC summaries of scores given to JSRT cases, with a bootstrap interval over cases: pooled (and per fold), and per
subtlety against every case without a nodule, as in the JSRT observer study. Shared by the nodule tasks' scoring
(cxrbench.nodules.scores) and the external validation of the NIH classifier (stage evaluate_external), which
must not depend on the FROC code the nodule scoring also uses.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from cxrbench.fileio import metric_value
from cxrbench.metrics.roc import bootstrap_auc, roc_auc


def auc_summary(labels: np.ndarray, scores: np.ndarray, folds: np.ndarray | None, boot_cfg: dict[str, Any],
                seed: int) -> dict[str, Any]:
    boot = bootstrap_auc(labels, scores, n_resamples=boot_cfg["resamples"], alpha=boot_cfg["alpha"], seed=seed)
    summary = {"cases": int(len(labels)), "positives": int(labels.sum()), "auc": metric_value(boot["auc"][0]),
               "ci_low": metric_value(boot["ci_low"][0]), "ci_high": metric_value(boot["ci_high"][0])}
    if folds is not None:
        summary["per_fold"] = {str(fold): metric_value(roc_auc(labels[folds == fold], scores[folds == fold])[0])
                               for fold in np.unique(folds)}
    return summary


def by_subtlety(scored: pd.DataFrame, index: pd.DataFrame, boot_cfg: dict[str, Any], seed: int) -> dict[str, Any]:
    """Nodule-task AUC per subtlety: that subtlety's nodule cases against every case without a nodule."""
    subtlety = scored["case"].map(index.set_index("case")["subtlety"])
    summaries = {}
    for level in sorted(subtlety.dropna().unique()):
        group = scored[(subtlety == level) | (scored["label"] == 0)]
        summaries[str(int(level))] = auc_summary(group["label"].to_numpy(), group["score"].to_numpy(), None,
                                                 boot_cfg, seed)
    return summaries
