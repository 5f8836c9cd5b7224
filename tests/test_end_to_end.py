"""The whole pipeline on the tiny synthetic configuration, in temporary copies of the repository:
`snakemake` and `dvc repro` give byte-identical outputs, a snakemake run leaves `dvc status` clean, and a
changed training parameter reruns only training and what depends on it, under both runners."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
OUTPUT_DIRS = ("data", "models", "dvclive", "metrics", "plots", "results")
pytestmark = pytest.mark.e2e


# Fixed identity and dates: copies of the same tree get the same commit, so reports that name the commit agree.
GIT_IDENTITY = {"GIT_AUTHOR_NAME": "test", "GIT_AUTHOR_EMAIL": "test@localhost", "GIT_COMMITTER_NAME": "test",
                "GIT_COMMITTER_EMAIL": "test@localhost", "GIT_AUTHOR_DATE": "2026-01-01T00:00:00Z",
                "GIT_COMMITTER_DATE": "2026-01-01T00:00:00Z"}


def run(cmd: list[str], cwd: Path, timeout: int = 900) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "PYTHONPATH": str(cwd / "src"),
           "DVC_NO_ANALYTICS": "1", "PYTHONDONTWRITEBYTECODE": "1", **GIT_IDENTITY}
    result = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"{' '.join(cmd)} failed:\n{result.stdout[-4000:]}\n{result.stderr[-6000:]}"
    return result


def copy_repo(dest: Path, *overrides: str) -> Path:
    """The project's tracked and untracked-but-not-ignored files, as a fresh git repository, composed for the
    tiny experiment with `overrides`."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                            capture_output=True, check=True).stdout.decode().split("\0")
    for name in filter(None, listed):
        if (ROOT / name).is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, dest / name)
    run(["git", "init", "-q", "-b", "main"], dest)
    run(["git", "add", "-A"], dest)
    run(["git", "commit", "-qm", "copy"], dest)
    run([str(BIN / "cxrbench"), "compose", "experiment=tiny", *overrides], dest)
    return dest


def output_hashes(repo: Path) -> dict[str, str]:
    hashes = {}
    for top in OUTPUT_DIRS:
        for path in sorted((repo / top).rglob("*")):
            if path.is_file() and path.name != ".snakemake_timestamp":
                hashes[path.relative_to(repo).as_posix()] = hashlib.sha256(path.read_bytes()).hexdigest()
    return hashes


@pytest.fixture(scope="module")
def snakemake_repo(tmp_path_factory) -> Path:
    repo = copy_repo(tmp_path_factory.mktemp("snakemake"))
    run([str(BIN / "snakemake"), "--cores", "2"], repo)
    return repo


@pytest.fixture(scope="module")
def dvc_repo(tmp_path_factory) -> Path:
    repo = copy_repo(tmp_path_factory.mktemp("dvc"))
    run([str(BIN / "dvc"), "repro"], repo)
    return repo


def test_snakemake_run_writes_every_output(snakemake_repo):
    for path in ("results/report.html", "results/report.md", "metrics/classifier.json", "metrics/segmenter.json",
                 "metrics/nodules.json", "plots/nodules_froc.csv", "data/splits/jsrt_nodules.json",
                 "data/store/nih/index.csv", "data/store/jsrt/index.csv", "data/splits/nih.csv", "dvc.lock",
                 "metrics/datasets.json", "results/datasets/nih.json"):
        assert (snakemake_repo / path).is_file(), path
    metrics = json.loads((snakemake_repo / "metrics/classifier.json").read_text())
    assert 0.0 <= metrics["mean_auc"] <= 1.0
    report = (snakemake_repo / "results/report.html").read_text()
    assert "<img" in report and "Per-class ROC AUC" in report and "SYNTHETIC DATA" in report
    assert "Dataset statistics" in report and "NIH, official split" in report
    assert "JSRT nodule localisation: FROC sensitivity" in report
    for stage in ("acquire_nih", "decode_nih", "train_classifier", "write_report"):
        assert (snakemake_repo / "logs" / f"{stage}.log").read_text().strip()
    leftovers = [p.relative_to(snakemake_repo).as_posix() for pattern in ("outputs", "multirun", "**/.hydra")
                 for p in snakemake_repo.glob(pattern)]
    assert not leftovers, f"stages must not create Hydra output folders: {leftovers}"
    assert not list(snakemake_repo.glob("**/*.partial")), "no half-written output is left behind"


def test_snakemake_leaves_dvc_up_to_date(snakemake_repo):
    status = run([str(BIN / "dvc"), "status"], snakemake_repo).stdout
    assert "up to date" in status, status
    repro = run([str(BIN / "dvc"), "repro"], snakemake_repo).stdout
    assert "Running stage" not in repro, repro


def test_both_runners_give_the_same_bytes(snakemake_repo, dvc_repo):
    ours, theirs = output_hashes(snakemake_repo), output_hashes(dvc_repo)
    assert ours.keys() == theirs.keys()
    differing = sorted(k for k in ours if ours[k] != theirs[k])
    assert not differing, f"outputs differ between snakemake and dvc repro: {differing}"


def test_dvc_run_leaves_snakemake_nothing_to_do(dvc_repo):
    dry = run([str(BIN / "snakemake"), "-n", "--cores", "2"], dvc_repo)
    assert "Nothing to be done" in dry.stdout + dry.stderr, dry.stdout + dry.stderr


def planned_rules(repo: Path) -> set[str]:
    """The rules a Snakemake dry run would run."""
    dry = run([str(BIN / "snakemake"), "-n", "--cores", "2", "--quiet", "rules"], repo).stdout
    return {line.split()[0] for line in dry.splitlines() if line.strip() and line.split()[0].islower()
            and "_" in line.split()[0]}


def test_nodule_candidate_parameter_reruns_only_the_nodule_evaluation(snakemake_repo):
    run([str(BIN / "cxrbench"), "compose", "experiment=tiny", "nodules.candidates.max_per_image=3"], snakemake_repo)
    try:
        assert planned_rules(snakemake_repo) == {"evaluate_nodules", "write_report"}
    finally:
        run([str(BIN / "cxrbench"), "compose", "experiment=tiny"], snakemake_repo)


def stages_out_of_date(repo: Path) -> set[str]:
    """The stages `dvc status` names (its stage lines are the unindented ones ending in a colon)."""
    status = run([str(BIN / "dvc"), "status"], repo).stdout
    return {line[:-1] for line in status.splitlines() if line.endswith(":") and not line[0].isspace()}


@pytest.mark.parametrize(("edited", "readers"), [
    ("src/cxrbench/published/results.yaml", {"write_report"}),
    ("src/cxrbench/metrics/froc.py", {"evaluate_nodules", "write_report"}),
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
                         "write_report"}


def test_training_parameter_reruns_only_downstream(snakemake_repo):
    run([str(BIN / "cxrbench"), "compose", "experiment=tiny", "train.classifier.lr=0.002"], snakemake_repo)
    assert planned_rules(snakemake_repo) == CLASSIFIER_DOWNSTREAM
    # DVC decides stage by stage as it goes (a dry run only knows the first), so run it for real.
    repro = run([str(BIN / "dvc"), "repro"], snakemake_repo).stdout
    ran = {line.split("'")[1] for line in repro.splitlines() if line.startswith("Running stage")}
    assert ran == CLASSIFIER_DOWNSTREAM, repro
    assert "Stage 'train_segmenter' didn't change, skipping" in repro
