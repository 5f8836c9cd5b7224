"""The whole pipeline on the tiny synthetic configuration, in temporary copies of the repository:
`snakemake` and `dvc repro` give byte-identical outputs, a snakemake run leaves `dvc status` clean, and a
changed training parameter reruns only training and what depends on it, under both runners."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from helpers.pipeline import (
    BIN,
    copy_repo,
    copy_run,
    output_hashes,
    planned_rules,
    run,
    stages_out_of_date,
)

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def snakemake_repo(tiny_run, tmp_path_factory) -> Path:
    """The session's finished snakemake run, copied: the tests here change parameters and files in it."""
    return copy_run(tiny_run, tmp_path_factory.mktemp("snakemake") / "repo")


@pytest.fixture(scope="module")
def dvc_repo(tmp_path_factory) -> Path:
    repo = copy_repo(tmp_path_factory.mktemp("dvc"))
    run([str(BIN / "dvc"), "repro"], repo)
    return repo


def test_snakemake_run_writes_every_output(tiny_run):
    for path in ("results/report.html", "results/report.md", "metrics/classifier.json", "metrics/segmenter.json",
                 "metrics/nodules.json", "plots/nodules_froc.csv", "data/splits/jsrt_nodules.json",
                 "data/store/nih/index.csv", "data/store/jsrt/index.csv", "data/splits/nih.csv", "dvc.lock",
                 "metrics/datasets.json", "results/datasets/nih.json"):
        assert (tiny_run / path).is_file(), path
    metrics = json.loads((tiny_run / "metrics/classifier.json").read_text())
    assert 0.0 <= metrics["mean_auc"] <= 1.0
    report = (tiny_run / "results/report.html").read_text()
    assert "<img" in report and "Per-class ROC AUC" in report and "SYNTHETIC DATA" in report
    assert "Dataset statistics" in report and "NIH, official split" in report
    assert "JSRT nodule localisation: FROC sensitivity" in report
    for stage in ("acquire_nih", "decode_nih", "train_classifier", "write_report"):
        assert (tiny_run / "logs" / f"{stage}.log").read_text().strip()
    leftovers = [p.relative_to(tiny_run).as_posix() for pattern in ("outputs", "multirun", "**/.hydra")
                 for p in tiny_run.glob(pattern)]
    assert not leftovers, f"stages must not create Hydra output folders: {leftovers}"
    assert not list(tiny_run.glob("**/*.partial")), "no half-written output is left behind"


def test_snakemake_leaves_dvc_up_to_date(tiny_run, snakemake_repo):
    """On the run itself and on its copy (which the other tests here and in other modules work on)."""
    assert "up to date" in run([str(BIN / "dvc"), "status"], tiny_run).stdout
    status = run([str(BIN / "dvc"), "status"], snakemake_repo).stdout
    assert "up to date" in status, status
    repro = run([str(BIN / "dvc"), "repro"], snakemake_repo).stdout
    assert "Running stage" not in repro, repro
    dry = run([str(BIN / "snakemake"), "-n", "--cores", "2"], snakemake_repo)
    assert "Nothing to be done" in dry.stdout + dry.stderr, dry.stdout + dry.stderr


def test_dvc_metrics_show_fits_a_terminal_and_each_stage_keeps_its_own_headline(tiny_run):
    """What `dvc metrics show` and `dvc exp show` compare is the report's summary, one figure per task under a short
    name: one table row that fits a wide terminal. Each stage's own metrics file (an output) holds tens of numbers,
    never hundreds, and shows by path; the detail is in the results folders the report reads."""
    def leaves(value) -> int:
        if isinstance(value, dict):
            return sum(map(leaves, value.values()))
        return sum(map(leaves, value)) if isinstance(value, list) else 1

    stages = yaml.safe_load((tiny_run / "dvc.yaml").read_text())["stages"]
    declared = [next(iter(entry)) if isinstance(entry, dict) else entry
                for stage in stages.values() for entry in stage.get("metrics", [])]
    assert declared == ["metrics/summary.json"]
    summary = json.loads((tiny_run / "metrics/summary.json").read_text())
    assert summary["scr"].keys() == {"lung_fields", "heart", "clavicles"} and leaves(summary) == 9, summary
    shown = run([str(BIN / "dvc"), "metrics", "show"], tiny_run).stdout
    assert "scr.lung_fields" in shown and max(map(len, shown.splitlines())) <= 170, shown
    own = sorted((tiny_run / "metrics").glob("*.json")) + sorted((tiny_run / "dvclive").glob("*/metrics.json"))
    counts = {str(path.relative_to(tiny_run)): leaves(json.loads(path.read_text())) for path in own}
    assert len(counts) >= 15 and max(counts.values()) <= 25, counts
    assert "jaccard.lung fields" in run([str(BIN / "dvc"), "metrics", "show", "metrics/segmenter.json"], tiny_run).stdout


def test_both_runners_give_the_same_bytes(tiny_run, dvc_repo):
    ours, theirs = output_hashes(tiny_run), output_hashes(dvc_repo)
    assert ours.keys() == theirs.keys()
    differing = sorted(k for k in ours if ours[k] != theirs[k])
    assert not differing, f"outputs differ between snakemake and dvc repro: {differing}"


def test_dvc_run_leaves_snakemake_nothing_to_do(dvc_repo):
    dry = run([str(BIN / "snakemake"), "-n", "--cores", "2"], dvc_repo)
    assert "Nothing to be done" in dry.stdout + dry.stderr, dry.stdout + dry.stderr


def test_nodule_candidate_parameter_reruns_only_the_nodule_evaluation_and_its_leaderboard(snakemake_repo):
    run([str(BIN / "cxrbench"), "compose", "experiment=tiny", "nodules.candidates.max_per_image=3"], snakemake_repo)
    try:
        assert planned_rules(snakemake_repo) == {"evaluate_nodules", "rank_nodules", "write_report"}
    finally:
        run([str(BIN / "cxrbench"), "compose", "experiment=tiny"], snakemake_repo)


@pytest.mark.parametrize(("edited", "readers"), [
    ("src/cxrbench/published/results.yaml", {"write_report"}),
    ("src/cxrbench/metrics/froc.py", {"evaluate_nodules", "rank_nodules", "write_report"}),  # FROC per cell
])
def test_editing_a_shared_file_reruns_only_the_stages_that_read_it(snakemake_repo, edited, readers):
    """Imports decide what reruns: a published number or the FROC code touches no acquisition, decoding or training."""
    path = snakemake_repo / edited
    kept = path.with_name(path.name + ".kept")
    shutil.copy2(path, kept)
    try:
        path.write_text(path.read_text() + "\n# edited\n")
        assert planned_rules(snakemake_repo) == readers
        assert stages_out_of_date(snakemake_repo) == readers
    finally:
        shutil.copy2(kept, path)  # content and modification time as before, for the tests after this one
        kept.unlink()


# What a changed classifier parameter must rerun: the classifier and everything that reads its model.
CLASSIFIER_DOWNSTREAM = {"train_classifier", "evaluate_classifier", "evaluate_localisation", "evaluate_expert_labels",
                         "evaluate_external", "rank_classifiers", "write_report"}


def test_training_parameter_reruns_only_downstream(snakemake_repo):
    run([str(BIN / "cxrbench"), "compose", "experiment=tiny", "train.classifier.lr=0.002"], snakemake_repo)
    assert planned_rules(snakemake_repo) == CLASSIFIER_DOWNSTREAM
    # DVC decides stage by stage as it goes (a dry run only knows the first), so run it for real.
    repro = run([str(BIN / "dvc"), "repro"], snakemake_repo).stdout
    ran = {line.split("'")[1] for line in repro.splitlines() if line.startswith("Running stage")}
    assert ran == CLASSIFIER_DOWNSTREAM, repro
    assert "Stage 'train_segmenter' didn't change, skipping" in repro
