"""DVC experiments on the tiny configuration, in a temporary copy of the repository: `dvc exp run -S ...` with
Hydra overrides recomposes params.yaml from configs/ (DVC's Hydra integration) and records each experiment;
`dvc exp show` lists them with their parameters and metrics (the report's summary, metrics/summary.json);
`dvc metrics diff` and `dvc plots diff` compare two of them."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from cxrbench import config
from helpers.pipeline import BIN, GIT_IDENTITY, copy_run, run

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
DVC = str(BIN / "dvc")
EPOCHS = {"one-epoch": 1, "two-epochs": 2}  # experiment name -> train.classifier.epochs
SUMMARY, LIVE_METRICS = "metrics/summary.json", "dvclive/classifier/metrics.json"


def overrides(epochs: int) -> list[str]:
    return ["experiment=tiny", f"train.classifier.epochs={epochs}"]


def exp_run(repo: Path, name: str, epochs: int) -> None:
    """`dvc exp run` commits through dulwich or pygit2, which refuse the fixed GIT_*_DATE that run() sets for
    reproducible copies ("Git commit failed: 2026-01-01T00:00:00Z"): experiments keep the identity only."""
    env = {**{k: v for k, v in os.environ.items() if not (k.startswith("GIT_") and k.endswith("_DATE"))},
           **{k: v for k, v in GIT_IDENTITY.items() if not k.endswith("_DATE")},
           "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "PYTHONPATH": str(repo / "src"),
           "DVC_NO_ANALYTICS": "1", "PYTHONDONTWRITEBYTECODE": "1"}
    cmd = [DVC, "exp", "run", "--name", name, *(arg for o in overrides(epochs) for arg in ("-S", o))]
    result = subprocess.run(cmd, cwd=repo, env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, f"{' '.join(cmd)} failed:\n{result.stdout[-4000:]}\n{result.stderr[-6000:]}"


@pytest.fixture(scope="module")
def repo(tiny_run, tmp_path_factory) -> Path:
    repo = copy_run(tiny_run, tmp_path_factory.mktemp("experiments") / "repo")
    # The baseline commit holds the finished tiny run (its params.yaml, dvc.lock and metrics), so each experiment
    # differs from it only by its -S values and reruns only the stages those change; DVC's cache has the rest.
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-qm", "tiny baseline"], repo)
    for name, epochs in EPOCHS.items():
        exp_run(repo, name, epochs)
    return repo


@pytest.fixture(scope="module")
def shown(repo) -> dict[str, dict]:
    """`dvc exp show --json`: the experiments of the baseline commit, by name."""
    rows = json.loads(run([DVC, "exp", "show", "--json"], repo).stdout)
    baselines = [row for row in rows if row["rev"] != "workspace"]
    assert len(baselines) == 1, [row["rev"] for row in rows]
    return {state["name"]: state for exp_range in baselines[0]["experiments"] or [] for state in exp_range["revs"]}


def test_exp_show_lists_both_experiments_with_params_and_metrics(repo, shown):
    assert set(EPOCHS) <= shown.keys(), sorted(shown)
    table = run([DVC, "exp", "show", "--no-pager", "--md"], repo).stdout
    for name, epochs in EPOCHS.items():
        assert name in table
        data = shown[name]["data"]
        assert data["params"]["params.yaml"]["data"]["train"]["classifier"]["epochs"] == epochs
        # an experiment commit that lacks a metrics file shows up here as an error (e.g. the file is git-ignored)
        assert not [entry["error"] for entry in data["metrics"].values() if entry.get("error")], data["metrics"]
        metrics = {path: entry["data"] for path, entry in data["metrics"].items()}
        assert list(metrics) == [SUMMARY]
        assert 0.0 <= metrics[SUMMARY]["nih"]["mean_auc"] <= 1.0, metrics[SUMMARY]
        assert 0.0 <= metrics[SUMMARY]["scr"]["heart"] <= 1.0
        # dvclive counts epochs from step 0: the override really changed the training run (its metrics file is an
        # output in git, beside the experiment's params)
        live = json.loads(run(["git", "show", f"{shown[name]['rev']}:{LIVE_METRICS}"], repo).stdout)
        assert live["step"] == epochs - 1, live


def test_exp_show_of_what_changed_fits_a_terminal(repo):
    """`dvc exp show --only-changed --drop '.*/.*'` (the README's): the parameters and summary figures that differ,
    without the hashes of the data and code (paths: DVC matches the whole column name)."""
    header = run([DVC, "exp", "show", "--no-pager", "--csv", "--only-changed", "--drop", ".*/.*"], repo).stdout
    columns = header.splitlines()[0].split(",")
    assert "train.classifier.epochs" in columns and "nih.mean_auc" in columns, columns
    assert not [column for column in columns if "/" in column] and len(columns) <= 15, columns


def test_each_experiment_params_yaml_is_the_hydra_composition(repo, shown):
    """DVC's Hydra integration and `cxrbench compose` write the same params.yaml for the same overrides."""
    for name, epochs in EPOCHS.items():
        committed = run(["git", "show", f"{shown[name]['rev']}:params.yaml"], repo).stdout
        assert committed == config.compose_yaml(overrides(epochs), config_dir=repo / "configs")


def test_metrics_diff_compares_two_experiments(repo):
    names = list(EPOCHS)
    diff = json.loads(run([DVC, "metrics", "diff", *names, "--all", "--json"], repo).stdout)
    assert diff.keys() == {SUMMARY}, sorted(diff)
    assert {"nih.mean_auc", "scr.lung_fields", "jsrt.malig_auc"} <= diff[SUMMARY].keys(), sorted(diff[SUMMARY])
    table = run([DVC, "metrics", "diff", *names, "--all"], repo).stdout  # the human view
    assert "nih.mean_auc" in table and names[0] in table and names[1] in table


def test_plots_diff_compares_two_experiments(repo, tmp_path):
    names = list(EPOCHS)
    plots = json.loads(run([DVC, "plots", "diff", *names, "--json"], repo).stdout)
    assert not plots.get("errors"), plots["errors"]
    expected = {"plots/classifier_roc.csv", "dvclive/classifier/plots/metrics/val/mean_auc.tsv",
                "dvclive/classifier/plots/metrics/train/loss.tsv"}
    assert expected <= plots["data"].keys(), sorted(plots["data"])
    for plot in expected:
        assert all(entry["revisions"] == names for entry in plots["data"][plot]), plot
    run([DVC, "plots", "diff", *names, "-o", str(tmp_path / "html")], repo)
    page = (tmp_path / "html" / "index.html").read_text()
    assert all(name in page for name in names) and "classifier_roc.csv" in page
