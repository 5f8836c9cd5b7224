"""The first screen: per task that ran, our headline figure with its interval beside the best published figure of
the same measure (the best comparable one when there is one), the human readers' figure where one was published,
and whether the comparison holds; then what the run was made of (data, datasets, splits, commit, parameters).

A reader who stops here knows the result. Each headline is read from the metrics the task's evaluation wrote and
from published/results.yaml, as the task's own section does; the sections below give the detail.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from cxrbench import artefacts, published
from cxrbench.published import MEAN_LABEL
from cxrbench.report import leaderboard
from cxrbench.report.comparison import comparability, published_source
from cxrbench.report.datasets import datasets_used, nih_split_name
from cxrbench.report.document import Report
from cxrbench.report.expert_labels import EXPERT_SPLIT
from cxrbench.report.localisation import LOCALISATION_SPLIT
from cxrbench.report.nodules import NODULE_SPLIT
from cxrbench.report.provenance import code_version
from cxrbench.report.run import Run
from cxrbench.report.segmentation import SCR_SPLIT, jaccard_by_case
from cxrbench.vocabulary import BOX_LABELS, PUBLISHED_OBJECTS

COLUMNS = ["task", "measure", "ours", "95% CI", "best published (same measure)", "human readers", "comparable"]
HEADLINE_IOBB = 0.5  # the T(IoBB) of the localisation headline: Wang et al.'s middle threshold
HEADLINE_FP_PER_IMAGE = 2  # FROC sensitivity at 2 false positives per image: the operating point CAD papers quote


@dataclass
class Headline:
    key: str  # its name in metrics/summary.json, "<dataset>.<measure>", short: DVC's tables put them side by side
    task: str
    measure: str
    ours: float | None
    interval: str  # "0.612-0.701 (bootstrap over patients)", or why there is none
    best_published: str  # "0.841: Rajpurkar et al. 2017, CheXNet [P] (official)", or "none published"
    readers: str
    comparable: str  # "yes", or "no: <why>"

    def row(self) -> dict[str, object]:
        return dict(zip(COLUMNS, (self.task, self.measure, np.nan if self.ours is None else self.ours, self.interval,
                                  self.best_published, self.readers, self.comparable)))


def best_published(rows: pd.DataFrame, our_split: str, synthetic: bool, *, caveat: str = "") -> tuple[str, str]:
    """The highest of `rows` (one measure), preferring those on our split, as text, and whether it is comparable."""
    if rows.empty:
        return "none published", "no published figure"
    on_ours = rows[rows["split"] == our_split]
    pool = on_ours if len(on_ours) else rows
    best = pool.loc[pool["value"].idxmax()]
    return (f"{best['value']:.3f}: {published_source(best)} ({best['split']})",
            comparability(best["split"], our_split, synthetic, caveat))


def _interval(low: float | None, high: float | None, how: str) -> str:
    return "–" if low is None or high is None else f"{low:.3f}-{high:.3f} ({how})"


def nih_classification(run: Run) -> list[Headline]:
    metrics = run.json(artefacts.RESULTS_CLASSIFIER / artefacts.CLASSIFIER_AUC)
    split = nih_split_name(run.nih_split)
    rows = published.load(task="nih_classification")
    text, comparable = best_published(rows[(rows["label"] == MEAN_LABEL) & (rows["metric"] == "roc_auc")], split,
                                      run.synthetic)
    return [Headline("nih.mean_auc", "NIH ChestX-ray14 classification",
                     f"mean ROC AUC of the 14 findings, {metrics['test_images']} test images, split {split}",
                     metrics["mean_auc"],
                     _interval(*metrics["mean_auc_ci"], f"bootstrap over {metrics['bootstrap']['unit']}s"), text,
                     "no reader study for the 14 labels", comparable)]


def nih_localisation(run: Run) -> list[Headline]:
    metrics = run.json(artefacts.RESULTS_LOCALISATION / artefacts.SCORES)
    key = format(HEADLINE_IOBB, "g")
    scored = [label for label in BOX_LABELS if metrics["per_class"][label]["boxes"]]
    measure = f"accuracy at T(IoBB) {key}, mean over the {len(scored)} box classes with test boxes"
    if not scored or HEADLINE_IOBB not in metrics["thresholds"]["iobb"]:
        return [Headline("nih.loc_acc", "Weakly supervised localisation", measure, None, "–", "–", "–",
                         "no: no test image has a box" if not scored else f"no: T(IoBB) {key} not scored")]
    ours = float(np.mean([metrics["per_class"][label]["iobb"][key]["accuracy"] for label in scored]))
    rows = published.load(task="nih_localisation")
    rows = rows[(rows["metric"] == "accuracy_iobb") & np.isclose(rows["threshold"], HEADLINE_IOBB)
                & rows["label"].isin(scored)]
    # a paper's mean over the same classes as ours, from its per-class values
    means = (rows.groupby(["source", "method", "marker", "split"], dropna=False)["value"].agg(["mean", "count"])
             .reset_index())
    means = means[means["count"] == len(scored)].rename(columns={"mean": "value"})
    left_out = metrics["left_out_outside_split"]["boxes"]
    text, comparable = best_published(means, LOCALISATION_SPLIT, run.synthetic,
                                      caveat=f"{left_out} boxes outside our split" if left_out else "")
    return [Headline("nih.loc_acc", "Weakly supervised localisation", measure, ours, "–", text, "–", comparable)]


def external_validation(run: Run) -> list[Headline]:
    metrics = run.json(artefacts.METRICS_EXTERNAL)
    return [Headline("nih.jsrt_auc", "External validation (NIH classifier on JSRT)", f"ROC AUC nodule vs no nodule by "
                     f"{metrics['score']}, {metrics['cases']} JSRT cases", metrics["auc"],
                     _interval(metrics["ci_low"], metrics["ci_high"], "bootstrap over cases"), "none published",
                     "–", "no published figure")]


def google_expert_labels(run: Run) -> list[Headline]:
    metrics = run.json(artefacts.RESULTS_EXPERT_LABELS / artefacts.SCORES)
    four = metrics["four_findings"]
    result = four["findings"]["Pneumothorax"]
    rows = published.load(task="google_expert_labels")
    rows = rows[rows["label"] == "Pneumothorax"]
    model = rows[(rows["method"] != "radiologists") & (rows["metric"] == "roc_auc")]
    left_out = four["left_out_outside_split"]
    text, comparable = best_published(model, EXPERT_SPLIT, run.synthetic,
                                      caveat=f"{left_out} labelled images outside our split" if left_out else "")
    readers = rows[rows["method"] == "radiologists"].set_index("metric")
    reader_text = "–"
    if {"sensitivity", "specificity"} <= set(readers.index):
        first = readers.iloc[0]
        reader_text = (f"sensitivity {readers.loc['sensitivity', 'value']:.3f}, specificity "
                       f"{readers.loc['specificity', 'value']:.3f}: {first['source']} [{first['marker']}]")
    if not result["available"]:
        return [Headline("google.ptx_auc", "Google expert labels",
                         "Pneumothorax ROC AUC, adjudicated four-findings set", None, result["reason"], text,
                         reader_text, comparable)]
    return [Headline("google.ptx_auc", "Google expert labels", f"Pneumothorax ROC AUC, adjudicated four-findings set "
                     f"({result['images']} images, {result['positives']} positive)", result["auc"],
                     _interval(result["ci_low"], result["ci_high"], "bootstrap over patients"), text, reader_text,
                     comparable)]


def scr_segmentation(run: Run) -> list[Headline]:
    per_case = jaccard_by_case(run.csv(artefacts.RESULTS_SEGMENTER / "cases.csv"))
    second_observer = run.json(artefacts.RESULTS_SEGMENTER / artefacts.SCORES).get("second_observer")
    rows = published.load(task="scr_segmentation")
    headlines = []
    for obj in PUBLISHED_OBJECTS:
        jaccards = per_case[obj]
        half_width = 1.96 * jaccards.std(ddof=1) / np.sqrt(len(jaccards)) if len(jaccards) > 1 else None
        interval = "–" if half_width is None else _interval(jaccards.mean() - half_width, jaccards.mean() + half_width,
                                                             f"normal approximation over {len(jaccards)} cases")
        jaccard = rows[(rows["metric"] == "jaccard") & (rows["label"] == obj)]
        human = jaccard["method"] == "human observer"
        text, comparable = best_published(jaccard[~human], SCR_SPLIT, run.synthetic)
        observer = jaccard[human & (jaccard["split"] == SCR_SPLIT)]
        readers = (f"{observer.iloc[0]['value']:.3f}: human observer, {observer.iloc[0]['source']} "
                   f"[{observer.iloc[0]['marker']}]" if len(observer) else "–")
        if second_observer is not None:  # the human observer on these very cases
            readers = (f"{second_observer['objects'][obj]['jaccard']['mean']:.3f}: SCR's second observer on these "
                       f"cases (this run)" + ("" if readers == "–" else f"; published {readers}"))
        what = "both as one object, " if len(PUBLISHED_OBJECTS[obj]) > 1 else ""
        headlines.append(Headline(f"scr.{obj.replace(' ', '_')}", "SCR segmentation",
                                  f"Jaccard, {obj} ({what}at 1024 px), two folds", float(jaccards.mean()), interval,
                                  text, readers, comparable))
    return headlines


def jsrt_nodules(run: Run) -> list[Headline]:
    metrics = run.json(artefacts.RESULTS_NODULES / artefacts.SCORES)
    rows = published.load(task="jsrt_nodules")
    froc = metrics["froc"]["all"]["sensitivity_at_fp_per_image"]
    cad = rows[(rows["metric"] == "sensitivity_at_fp_per_image") & np.isclose(rows["threshold"], HEADLINE_FP_PER_IMAGE)]
    text, comparable = best_published(cad, NODULE_SPLIT, run.synthetic)
    observers = rows[rows["metric"] == "sensitivity_at_50pct_confidence"]
    readers = (f"about {observers.iloc[0]['value']:.2f} of nodules at >= 50% confidence: {observers.iloc[0]['source']}, "
               f"{observers.iloc[0]['method']} [{observers.iloc[0]['marker']}]" if len(observers) else "–")
    ours = froc.get(str(HEADLINE_FP_PER_IMAGE))
    headlines = [Headline(f"jsrt.froc_{HEADLINE_FP_PER_IMAGE}fp", "JSRT nodule detection",
                          f"FROC sensitivity at {HEADLINE_FP_PER_IMAGE} FP/image, all {metrics['nodules']} nodules, "
                          "out of fold", ours, "–", text, readers, comparable)]
    malignancy = metrics["classification"]["malignancy"]
    headlines.append(Headline("jsrt.malig_auc", "JSRT malignancy",
                              f"ROC AUC malignant vs benign, {malignancy['cases']} nodules, out of fold",
                              malignancy["auc"],
                              _interval(malignancy["ci_low"], malignancy["ci_high"], "bootstrap over cases"),
                              "none published", "–", "no published figure"))
    return headlines


def parameters_hash(params: dict) -> str:
    """sha256 of the parameters as canonical JSON (sorted keys), first 12 hex digits."""
    return hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:12]


def tasks(datasets: list[str]) -> list[Callable[[Run], list[Headline]]]:
    """The headline readers of the tasks that ran (jsrt comes with scr: config.validate)."""
    chosen = []
    if "nih" in datasets:
        chosen += [nih_classification, nih_localisation] + ([google_expert_labels] if "google" in datasets else [])
    if "jsrt" in datasets:
        chosen += [scr_segmentation, jsrt_nodules] + ([external_validation] if "nih" in datasets else [])
    return chosen


def benchmark_fact(run: Run) -> str:
    """Per task's leaderboard: each model's mean score over its seeds (sd) and a challenger's difference from the
    baseline with its interval and Holm-adjusted p-value."""
    parts = []
    for task, dataset in (("classifier", "nih"), ("segmenter", "jsrt"), ("nodule_heatmap", "jsrt"),
                          ("nodule_classifier", "jsrt")):
        if dataset not in run.datasets:
            continue
        words = leaderboard.BOARDS[task]
        measure = words.measure
        board = run.json(artefacts.METRICS_LEADERBOARD[task])
        models = []
        for model, figures in board["models"].items():
            sd = figures[f"mean_{measure}_sd"]
            mean = figures[f"mean_{measure}"]
            text = (f"{model} {'undefined' if mean is None else f'{mean:.3f}'}"
                    + ("" if sd is None else f" (sd {sd:.3f})"))
            if model in board["vs_baseline"] and board["vs_baseline"][model]["difference"] is not None:
                versus = board["vs_baseline"][model]
                text += (f", {versus['difference']:+.3f} ({versus['ci'][0]:+.3f} to {versus['ci'][1]:+.3f}), "
                         f"p {versus['p_holm']:.2g}")
            models.append(text)
        parts.append(f"{task.replace('_', ' ')} {'mean ' if words.units else ''}{words.label} over "
                     f"{board['seeds']} seed{'s' if board['seeds'] > 1 else ''}, baseline {board['baseline']}: "
                     + "; ".join(models))
    return " · ".join(parts)


def facts(run: Run) -> list[tuple[str, str]]:
    splits = []
    if "nih" in run.datasets:
        splits.append(f"NIH {nih_split_name(run.nih_split)}")
    if "jsrt" in run.datasets:
        splits += ["SCR two published folds (odd / even JSRT numbers)", "JSRT nodules k-fold by case"]
    data = ("synthetic: phantoms in the datasets' formats, not radiographs" if run.synthetic
            else f"real files ({run.params['source']['kind']})")
    return [("data", data), ("datasets", datasets_used(run.datasets)), ("splits", "; ".join(splits)),
            ("benchmark", benchmark_fact(run)),
            ("code", code_version()), ("parameters", f"sha256 {parameters_hash(run.params)} (canonical JSON of "
                                                     "params.yaml, in full under Provenance)")]


def headlines(run: Run) -> list[Headline]:
    return [headline for task in tasks(run.datasets) for headline in task(run)]


def section(report: Report, run: Run) -> None:
    report.summary(pd.DataFrame([headline.row() for headline in headlines(run)], columns=COLUMNS), facts(run))


def headline_metrics(run: Run) -> dict[str, dict[str, float | None]]:
    """metrics/summary.json, the run's one DVC metrics file: the summary table's figures under short names,
    grouped by dataset ({"nih": {"mean_auc": ...}, "scr": {"lung_fields": ...}}): a handful of columns, so that
    `dvc metrics show` and `dvc exp show` fit a terminal. Each stage's own figures stay in its metrics/*.json."""
    grouped: dict[str, dict[str, float | None]] = {}
    for headline in headlines(run):
        group, name = headline.key.split(".", 1)
        grouped.setdefault(group, {})[name] = None if headline.ours is None else round(float(headline.ours), 6)
    return grouped

