"""Stage evaluate_expert_labels: the NIH classifier against Google's radiologist labels of NIH test images.

Four findings (Majkowska et al. 2019, 1,962 test images, adjudicated by three radiologists): ROC AUC with a
95% bootstrap interval (over images, or patients with evaluate.bootstrap.unit=patient) of the classifier's
score for each finding, the 14 NIH outputs mapped as FINDING_SCORES says (the maximum of the listed labels'
probabilities). Fracture has no NIH counterpart and is reported as not available.
All findings (Nabulsi et al. 2021, 810 PA test images, majority of three radiologists): AUC of the
normal/abnormal scores in ABNORMAL_SCORES, built from the 14 probabilities.
Both label sets: on the same test images, the same scores' AUC against NIH's own labels (for a finding, any of
its FINDING_SCORES labels; for Abnormal, not "No Finding"; on the all-findings set also each of the 14 findings),
beside the AUC against the experts: the gap is what NIH's label noise does to the score. The four findings and
Abnormal go to the metrics, every row to results/expert_labels/label_sets.csv.
Readers: each radiologist's sensitivity and specificity against the reference (metrics.roc.operating_point), and
the same over all their reads pooled. The four-findings readers are the radiologists whose independent first
reads started each image's adjudication, so they are not independent of the reference (their points are
optimistic); on the all-findings set the two radiologists outside the ground-truth majority are the comparison
radiologists. HEDGE ("uncertain if present") counts as a positive call: the reader would not rule it out.

Only test-part images are scored, and the stage refuses to run (DataError) if any labelled image or patient is
in the train or val part of data/splits/nih.csv: the classifier was fitted or selected there. Labelled images
outside the split altogether (quarantined by decode_nih, a view not in split.nih.views, or not decoded because
source.archives selected other archives) are left out, counted and logged.

Writes metrics/expert_labels.json (the AUCs), results/expert_labels/scores.json (with intervals, counts and every
reader's operating point), plots/expert_labels_roc.csv (set, finding, score, fpr, tpr),
plots/expert_labels_readers.csv (one operating point per set, finding and reader, and the pooled reads) and
results/expert_labels/scores.csv (per set, finding, score and image: the reference and the score) and
results/expert_labels/label_sets.csv (per finding: AUC against the experts and against NIH, with intervals).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cxrbench import artefacts, seed_streams
from cxrbench.datasets import google_labels
from cxrbench.errors import DataError
from cxrbench.fileio import atomic_path, metric_value, write_json
from cxrbench.label_quality import NIH_LABELS_OF
from cxrbench.metrics.roc import bootstrap_auc, operating_point, roc_curve_points, unit_groups
from cxrbench.splits import require_held_out
from cxrbench.stages._app import run_stage
from cxrbench.vocabulary import LABELS

log = logging.getLogger(__name__)
GOOGLE = artefacts.RAW["google"]
FOUR_FINDINGS_LABELS = GOOGLE / google_labels.FOUR_FINDINGS_TEST
FOUR_FINDINGS_READERS = GOOGLE / "four_findings_expert_labels" / "individual_readers.csv"
ALL_FINDINGS_LABELS = GOOGLE / google_labels.ALL_FINDINGS_TEST
ALL_FINDINGS_READERS = GOOGLE / "all_findings_expert_labels" / "test_individual_readers.csv"
SPLIT = artefacts.SPLIT_NIH
PREDICTIONS = artefacts.RESULTS_CLASSIFIER / "predictions.csv"
OUT = artefacts.RESULTS_EXPERT_LABELS
ROC_PLOT = artefacts.PLOT_EXPERT_LABELS_ROC
READERS_PLOT = artefacts.PLOT_EXPERT_LABELS_READERS
ROC_COLUMNS = ["set", "finding", "score", "fpr", "tpr"]

FOUR_FINDINGS_SET, ALL_FINDINGS_SET = "four_findings", "all_findings"
ABNORMAL = "Abnormal"
# Which NIH outputs answer each Google finding (their maximum probability); empty: no NIH counterpart.
FINDING_SCORES = NIH_LABELS_OF
NOT_AVAILABLE = "not available: no NIH ChestX-ray14 label corresponds to it"
NIH_LABEL_PREFIX = "nih_"  # NIH's own 0/1 labels of the scored images, beside the experts' columns
LABEL_SET_COLUMNS = ["set", "finding", "score", "images", "expert_positives", "auc_expert", "auc_expert_ci_low",
                     "auc_expert_ci_high", "nih_positives", "auc_nih", "auc_nih_ci_low", "auc_nih_ci_high"]


def any_finding(probabilities: np.ndarray) -> np.ndarray:
    """P(at least one of the 14 findings) if the outputs were independent: 1 - prod(1 - p)."""
    return 1.0 - np.prod(1.0 - probabilities, axis=1)


def max_finding(probabilities: np.ndarray) -> np.ndarray:
    """The most probable finding's probability: max p."""
    return probabilities.max(axis=1)


ABNORMAL_SCORES: dict[str, Callable[[np.ndarray], np.ndarray]] = {"1 - prod(1 - p)": any_finding, "max p": max_finding}
READER_ROLES = {FOUR_FINDINGS_SET: "adjudication panel (first reads)", ALL_FINDINGS_SET: "comparison radiologist"}


def _score_columns(labels: tuple[str, ...] | list[str]) -> list[str]:
    return [f"score_{label}" for label in labels]


def finding_score_name(finding: str) -> str:
    """How the classifier scores a four-findings finding, e.g. 'max(Nodule, Mass)'."""
    sources = FINDING_SCORES[finding]
    return sources[0] if len(sources) == 1 else f"max({', '.join(sources)})"


def scored_test_images(
    labelled: pd.DataFrame, split: pd.DataFrame, predictions: pd.DataFrame, source: str | Path
) -> tuple[pd.DataFrame, int]:
    """The labelled images of the test part with the classifier's 14 scores joined, and how many labelled
    images were outside the split (quarantined, of an excluded view or not decoded). Refuses train/val images."""
    require_held_out(labelled, split, source)
    in_test = labelled["image"].isin(split.loc[split["part"] == "test", "image"])
    log.info("%s: %d of %d labelled images are outside the split (quarantined, of an excluded view or outside the "
             "archives source.archives selected) and left out", source, (~in_test).sum(), len(labelled))
    unscored = labelled.loc[in_test & ~labelled["image"].isin(predictions["image"]), "image"]
    if len(unscored):
        raise DataError(
            PREDICTIONS,
            f"{len(unscored)} test-part image(s) with expert labels in {source} have no score, e.g. {unscored.iloc[0]}",
            "rerun evaluate_classifier: its predictions must cover the whole test part of data/splits/nih.csv",
        )
    scored = labelled[in_test].merge(predictions[["image", *_score_columns(LABELS)]]
                                     .join(predictions[list(LABELS)].add_prefix(NIH_LABEL_PREFIX)),
                                     on="image", how="left", validate="one_to_one")
    return scored.reset_index(drop=True), int((~in_test).sum())


class _Evaluation:
    """Collects AUCs, ROC points and image-level scores of one run."""

    def __init__(self, bootstrap: dict[str, Any], seed: int):
        self.bootstrap, self.seed = bootstrap, seed
        self.roc: list[pd.DataFrame] = []
        self.scores: list[pd.DataFrame] = []
        self.label_sets: list[dict[str, Any]] = []

    def score(self, set_name: str, finding: str, score_name: str, images: pd.DataFrame, truth: np.ndarray,
              score: np.ndarray) -> dict[str, Any]:
        """AUC with its bootstrap interval; records the ROC curve (when defined) and the scores."""
        auc, ci_low, ci_high = self.auc(images, truth, score)
        positives = int(truth.sum())
        if 0 < positives < len(truth):
            fpr, tpr, _ = roc_curve_points(truth, score)
            self.roc.append(pd.DataFrame(dict(zip(ROC_COLUMNS, (set_name, finding, score_name, fpr.round(6),
                                                                 tpr.round(6))))))
        self.scores.append(pd.DataFrame({"set": set_name, "finding": finding, "score_name": score_name,
                                         "image": images["image"].to_numpy(), "patient": images["patient"].to_numpy(),
                                         "truth": truth.astype(np.uint8), "score": score.round(6)}))
        return {"score": score_name, "auc": auc, "ci_low": ci_low, "ci_high": ci_high, "images": len(truth),
                "positives": positives, "negatives": len(truth) - positives}

    def auc(self, images: pd.DataFrame, truth: np.ndarray, score: np.ndarray) -> tuple[float | None, ...]:
        """AUC and its bootstrap interval (None where undefined), resampling as evaluate.bootstrap says."""
        boot = bootstrap_auc(truth, score, n_resamples=self.bootstrap["resamples"], alpha=self.bootstrap["alpha"],
                             groups=unit_groups(self.bootstrap["unit"], images["patient"].to_numpy()), seed=self.seed)
        return tuple(metric_value(boot[key][0]) for key in ("auc", "ci_low", "ci_high"))

    def both_label_sets(self, set_name: str, finding: str, score_name: str, images: pd.DataFrame,
                        expert: np.ndarray, nih: np.ndarray, score: np.ndarray) -> dict[str, Any]:
        """The same scores' AUC against the experts' and against NIH's labels of the same images."""
        row = {"set": set_name, "finding": finding, "score": score_name, "images": len(score),
               "expert_positives": int(expert.sum()), "nih_positives": int(nih.sum())}
        for name, truth in (("expert", expert), ("nih", nih)):
            row.update(zip((f"auc_{name}", f"auc_{name}_ci_low", f"auc_{name}_ci_high"),
                           self.auc(images, truth, score)))
        self.label_sets.append(row)
        return {"auc_expert": row["auc_expert"], "auc_nih": row["auc_nih"], "images": row["images"]}


def positive_call(answers: pd.Series) -> np.ndarray:
    """A reader's answers as binary calls: YES, and HEDGE where the finding allows it, are positive."""
    if isinstance(answers.dtype, pd.CategoricalDtype):
        return (answers >= "HEDGE").to_numpy(dtype=bool)
    return answers.to_numpy(dtype=bool)


def reader_points(reads: pd.DataFrame, reference: pd.DataFrame, findings: list[str], set_name: str) -> pd.DataFrame:
    """Sensitivity and specificity of every reader's calls against `reference`, per finding, and of all reads
    pooled (reader 'pooled'). Only reads of images in `reference` (with a known reference value) count."""
    merged = reads[["image", "reader", *findings]].merge(reference[["image", *findings]], on="image",
                                                         suffixes=("_read", ""))
    rows = []
    for finding in findings:
        known = merged[merged[finding].notna()]
        truth = known[finding].to_numpy(dtype=bool)
        calls = positive_call(known[f"{finding}_read"])
        groups = [*known.groupby("reader", sort=True).indices.items(), ("pooled", np.arange(len(known)))]
        for reader, members in groups:
            sensitivity, specificity = operating_point(truth[members], calls[members])
            positives = int(truth[members].sum())
            rows.append({"set": set_name, "finding": finding, "reader": str(reader), "role": READER_ROLES[set_name],
                         "reads": len(members), "positives": positives, "negatives": len(members) - positives,
                         "sensitivity": round(sensitivity, 6), "specificity": round(specificity, 6),
                         "fpr": round(1.0 - specificity, 6), "tpr": round(sensitivity, 6)})
    return pd.DataFrame(rows)


def _pooled(readers: pd.DataFrame, set_name: str) -> dict[str, dict[str, Any]]:
    pooled = readers[(readers["set"] == set_name) & (readers["reader"] == "pooled")]
    return {row.finding: {"sensitivity": metric_value(row.sensitivity), "specificity": metric_value(row.specificity),
                          "reads": int(row.reads)} for row in pooled.itertuples()}


def evaluate(params: dict[str, Any]) -> None:
    split, predictions = pd.read_csv(SPLIT), pd.read_csv(PREDICTIONS)
    seed = int(np.random.SeedSequence([params["seed"], seed_streams.BOOTSTRAP_EXPERT_LABELS]).generate_state(1)[0])
    bootstrap = params["evaluate"]["bootstrap"]
    run = _Evaluation(bootstrap, seed)

    four, four_outside = scored_test_images(google_labels.read_four_findings_labels(FOUR_FINDINGS_LABELS), split,
                                            predictions, FOUR_FINDINGS_LABELS)
    four_metrics: dict[str, Any] = {}
    both_sets: dict[str, Any] = {}  # per finding: AUC against the experts and against NIH's labels
    for finding, sources in FINDING_SCORES.items():
        if not sources:
            four_metrics[finding] = {"auc": None, "available": False, "reason": NOT_AVAILABLE}
            continue
        known = four[four[finding].notna()]
        score = known[_score_columns(sources)].to_numpy(np.float64).max(axis=1)
        expert = known[finding].to_numpy(dtype=bool)
        four_metrics[finding] = {"available": True, **run.score(FOUR_FINDINGS_SET, finding, finding_score_name(finding),
                                                               known, expert, score)}
        nih = known[[NIH_LABEL_PREFIX + label for label in sources]].to_numpy(dtype=bool).any(axis=1)
        both_sets[finding] = run.both_label_sets(FOUR_FINDINGS_SET, finding, finding_score_name(finding), known,
                                                 expert, nih, score)

    every, all_outside = scored_test_images(google_labels.read_all_findings_labels(ALL_FINDINGS_LABELS), split,
                                            predictions, ALL_FINDINGS_LABELS)
    probabilities = every[_score_columns(LABELS)].to_numpy(np.float64)
    abnormal = every[ABNORMAL].to_numpy(dtype=bool)
    abnormal_metrics = {name: run.score(ALL_FINDINGS_SET, ABNORMAL, name, every, abnormal, combine(probabilities))
                        for name, combine in ABNORMAL_SCORES.items()}
    nih_abnormal = every[[NIH_LABEL_PREFIX + label for label in LABELS]].to_numpy(dtype=bool).any(axis=1)
    first_abnormal_score = next(iter(ABNORMAL_SCORES))
    both_sets[ABNORMAL] = run.both_label_sets(ALL_FINDINGS_SET, ABNORMAL, first_abnormal_score, every, abnormal,
                                              nih_abnormal, ABNORMAL_SCORES[first_abnormal_score](probabilities))
    for label in LABELS:  # the all-findings radiologists labelled each of NIH's 14 findings too (table only)
        run.both_label_sets(ALL_FINDINGS_SET, label, label, every, every[label].to_numpy(dtype=bool),
                            every[NIH_LABEL_PREFIX + label].to_numpy(dtype=bool), every[f"score_{label}"].to_numpy())

    four_reads = google_labels.read_four_findings_readers(FOUR_FINDINGS_READERS)
    all_reads = google_labels.read_all_findings_readers(ALL_FINDINGS_READERS)
    comparison_reads = all_reads[~all_reads["reader"].isin(google_labels.GROUND_TRUTH_READERS)]
    readers = pd.concat([
        reader_points(four_reads[four_reads["set"] == "test"], four, list(FINDING_SCORES), FOUR_FINDINGS_SET),
        reader_points(comparison_reads, every, [ABNORMAL], ALL_FINDINGS_SET),
    ], ignore_index=True)

    metrics = {
        "split": "test part of data/splits/nih.csv (official test list)",
        "bootstrap": {"resamples": bootstrap["resamples"], "alpha": bootstrap["alpha"], "unit": bootstrap["unit"]},
        "hedge_counts_as": "positive",
        FOUR_FINDINGS_SET: {"images": len(four), "left_out_outside_split": four_outside, "findings": four_metrics,
                            "readers_pooled": _pooled(readers, FOUR_FINDINGS_SET)},
        ALL_FINDINGS_SET: {"images": len(every), "left_out_outside_split": all_outside,
                           "abnormal": abnormal_metrics,
                           "comparison_radiologists": {
                               row.reader: {"sensitivity": metric_value(row.sensitivity),
                                            "specificity": metric_value(row.specificity), "reads": int(row.reads)}
                               for row in readers[readers["set"] == ALL_FINDINGS_SET].itertuples()}},
        "against_both_label_sets": both_sets,
    }
    for finding, result in four_metrics.items():
        if result["available"]:
            log.info("four findings, %s: AUC %s (%s-%s) on %d images", finding, result["auc"], result["ci_low"],
                     result["ci_high"], result["images"])
    for name, result in abnormal_metrics.items():
        log.info("all findings, abnormal by %s: AUC %s on %d images", name, result["auc"], result["images"])

    write_json(artefacts.METRICS_EXPERT_LABELS, headline(metrics))
    roc = pd.concat(run.roc, ignore_index=True) if run.roc else pd.DataFrame(columns=ROC_COLUMNS)
    for path, table in ((ROC_PLOT, roc), (READERS_PLOT, readers)):
        with atomic_path(path) as tmp:
            table.to_csv(tmp, index=False, lineterminator="\n")
    with atomic_path(OUT, is_dir=True) as out:
        write_json(out / artefacts.SCORES, metrics)
        pd.concat(run.scores, ignore_index=True).to_csv(out / "scores.csv", index=False, lineterminator="\n",
                                                        float_format="%.6f")
        pd.DataFrame(run.label_sets, columns=LABEL_SET_COLUMNS).to_csv(out / "label_sets.csv", index=False,
                                                                         lineterminator="\n")


def headline(metrics: dict[str, Any]) -> dict[str, Any]:
    """metrics/expert_labels.json: the AUC per four finding and of the abnormal scores, and against both label sets
    the AUC per finding; intervals, counts and the readers in results/expert_labels/scores.json."""
    return {"four_findings_auc": {finding: result["auc"] for finding, result in
                                  metrics[FOUR_FINDINGS_SET]["findings"].items()},
            "abnormal_auc": {name: result["auc"] for name, result in metrics[ALL_FINDINGS_SET]["abnormal"].items()},
            "against_both_label_sets": {finding: {"auc_expert": result["auc_expert"], "auc_nih": result["auc_nih"]}
                                        for finding, result in metrics["against_both_label_sets"].items()}}


def main() -> None:
    run_stage("evaluate_expert_labels", evaluate)


if __name__ == "__main__":
    main()
