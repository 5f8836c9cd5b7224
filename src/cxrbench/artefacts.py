"""Where every stage output lives, named once. workflow/pipeline.yaml declares the same paths (a test holds the
two together); stages and the report read and write them through these names. Paths without a suffix are
folders. It imports nothing of ours; every stage imports it."""

from pathlib import Path

_DATA, _RESULTS, _METRICS, _PLOTS = Path("data"), Path("results"), Path("metrics"), Path("plots")
DATASETS = ("jsrt", "scr", "nih", "google")

RAW = {dataset: _DATA / "raw" / dataset for dataset in DATASETS}
MANIFESTS = {dataset: _DATA / "manifests" / f"{dataset}.csv" for dataset in DATASETS}
STORE_JSRT, STORE_NIH = _DATA / "store" / "jsrt", _DATA / "store" / "nih"
SPLIT_SCR = _DATA / "splits" / "scr.csv"
SPLIT_NIH, SPLIT_NIH_INFO = _DATA / "splits" / "nih.csv", _DATA / "splits" / "nih.json"
SPLIT_JSRT_NODULES, SPLIT_JSRT_NODULES_INFO = _DATA / "splits" / "jsrt_nodules.csv", _DATA / "splits" / "jsrt_nodules.json"

MODEL_CLASSIFIER, MODEL_SEGMENTER, MODEL_NODULES = Path("models/classifier"), Path("models/segmenter"), Path("models/nodules")
MODEL_CONFIG = "config.json"  # in each of those folders
# The benchmark matrices' cells other than the tasks' own training stages': one folder per task and (model, seed),
# named `<model>-seed<seed>` where pipeline.yaml writes CELL, holding the trained network, its training history and
# its test scores (cxrbench.matrix)
BENCHMARK, CELL = ({task: Path("models/benchmark") / task
                   for task in ("classifier", "segmenter", "nodule_classifier", "nodule_heatmap")}, "{cell}")
# training speed, measured (wall-clock): DVC metrics of their own, outside the model folders, whose hashes stay
# a function of the parameters and data
THROUGHPUT = {task: _METRICS / f"throughput_{task}.json" for task in ("classifier", "segmenter", "nodules")}
# dvclive folders; each holds metrics.json and plots/metrics/ (the training curves), declared as such
LIVE_CLASSIFIER, LIVE_SEGMENTER, LIVE_NODULES = Path("dvclive/classifier"), Path("dvclive/segmenter"), Path("dvclive/nodules")
LIVE_OUTPUTS = ("metrics.json", "plots/metrics")

RESULTS_DATASETS = _RESULTS / "datasets"
# The one DVC metrics file, metrics/summary.json (write_report), holds the report's headline figures: what
# `dvc metrics show` and `dvc exp show` compare. Each stage's metrics/*.json (an output) keeps its own headline
# numbers; the full figures behind them (per class, per threshold, per group, per fold) are a file of this name in
# the stage's results folder, which the report reads: results/classifier/auc.json, results/classifier/subgroups.json,
# results/*/scores.json
SCORES, CLASSIFIER_AUC, SUBGROUPS = "scores.json", "auc.json", "subgroups.json"
RESULTS_CLASSIFIER, RESULTS_SEGMENTER, RESULTS_NODULES = _RESULTS / "classifier", _RESULTS / "segmenter", _RESULTS / "nodules"
RESULTS_LOCALISATION, RESULTS_EXPERT_LABELS = _RESULTS / "localisation", _RESULTS / "expert_labels"
RESULTS_LABEL_QUALITY, METRICS_LABEL_QUALITY = _RESULTS / "label_quality", _METRICS / "label_quality.json"
REPORT_HTML, REPORT_MD = _RESULTS / "report.html", _RESULTS / "report.md"
REPORT_FIGURES = _RESULTS / "figures"  # the report's figures as PNG files, linked from report.md

METRICS_SUMMARY = _METRICS / "summary.json"
METRICS_DATASETS, METRICS_CLASSIFIER = _METRICS / "datasets.json", _METRICS / "classifier.json"
METRICS_SEGMENTER, METRICS_NODULES = _METRICS / "segmenter.json", _METRICS / "nodules.json"
METRICS_LOCALISATION, METRICS_EXPERT_LABELS = _METRICS / "localisation.json", _METRICS / "expert_labels.json"

PLOT_CLASSIFIER_ROC, PLOT_NODULES_FROC = _PLOTS / "classifier_roc.csv", _PLOTS / "nodules_froc.csv"
METRICS_CALIBRATION, PLOT_CLASSIFIER_RELIABILITY = _METRICS / "calibration.json", _PLOTS / "classifier_reliability.csv"
METRICS_SUBGROUPS = _METRICS / "subgroups.json"
METRICS_EXTERNAL, RESULTS_EXTERNAL = _METRICS / "external_jsrt.json", _RESULTS / "external"
RESULTS_LEADERBOARD = {task: _RESULTS / "leaderboard" / task for task in BENCHMARK}
METRICS_LEADERBOARD = {task: _METRICS / f"leaderboard_{task}.json" for task in BENCHMARK}
PLOT_EXPERT_LABELS_ROC, PLOT_EXPERT_LABELS_READERS = _PLOTS / "expert_labels_roc.csv", _PLOTS / "expert_labels_readers.csv"


def named() -> set[str]:
    """Every artefact named here, spelt as workflow/pipeline.yaml spells its paths."""
    paths = {value for name, value in globals().items() if isinstance(value, Path) and not name.startswith("_")}
    paths |= {*RAW.values(), *MANIFESTS.values(), *THROUGHPUT.values(), *RESULTS_LEADERBOARD.values(),
              *METRICS_LEADERBOARD.values()}
    paths |= {folder / CELL for folder in BENCHMARK.values()}
    live = {LIVE_CLASSIFIER, LIVE_SEGMENTER, LIVE_NODULES}
    return {p.as_posix() for p in paths - live} | {f"{p.as_posix()}/{part}" for p in live for part in LIVE_OUTPUTS}
