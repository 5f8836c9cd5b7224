"""A training run killed after an epoch resumes from its checkpoint and ends in exactly the state of an
uninterrupted run (CPU): same model bytes, same per-epoch log."""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from helpers.pipeline import BIN, copy_repo, run

pytestmark = pytest.mark.faults
EPOCHS = ["train.classifier.epochs=3"]
OUTPUTS = ("models/classifier/model.pt", "models/classifier/config.json", "dvclive/classifier/metrics.json",
           "dvclive/classifier/plots/metrics/val/loss.tsv")


def digest(repo: Path) -> dict[str, str]:
    return {name: hashlib.sha256((repo / name).read_bytes()).hexdigest() for name in OUTPUTS}


def train_command() -> list[str]:
    return [sys.executable, "-m", "cxrbench.stages.train_classifier", *EPOCHS]


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Path:
    repo = copy_repo(tmp_path_factory.mktemp("resume"))
    for stage in ("acquire_nih", "decode_nih", "split_nih"):
        run([str(BIN / "python"), "-m", f"cxrbench.stages.{stage}"], repo)
    return repo


def test_killed_training_resumes_to_the_same_bytes(repo):
    run(train_command(), repo)
    uninterrupted = digest(repo)
    assert not (repo / "checkpoints" / "train_classifier.pt").exists(), "checkpoint is removed after success"
    shutil.rmtree(repo / "models")
    shutil.rmtree(repo / "dvclive")

    env = {**os.environ, "PYTHONPATH": str(repo / "src"), "DVC_NO_ANALYTICS": "1"}
    process = subprocess.Popen(train_command(), cwd=repo, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)
    checkpoint = repo / "checkpoints" / "train_classifier.pt"
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline and process.poll() is None:
        if checkpoint.is_file() and torch.load(checkpoint, weights_only=False)["epoch"] == 1:
            break
        time.sleep(0.2)
    assert process.poll() is None, "training finished before it could be killed"
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    assert not (repo / "models" / "classifier").exists(), "a killed run leaves no output that looks complete"
    # tiny epochs take about a second: on a busy machine the next one may end between the look and the kill
    killed_after = torch.load(checkpoint, weights_only=False)["epoch"]
    assert killed_after in (1, 2), killed_after

    resumed = run(train_command(), repo)
    assert f"resuming from checkpoints/train_classifier.pt after epoch {killed_after}" in resumed.stderr
    assert digest(repo) == uninterrupted


def test_checkpoint_of_other_parameters_is_ignored(repo):
    checkpoint = repo / "checkpoints" / "train_classifier.pt"
    checkpoint.parent.mkdir(exist_ok=True)
    torch.save({"fingerprint": "another run", "epoch": 2}, checkpoint)
    result = run([*train_command()[:-1], "train.classifier.epochs=1"], repo)
    assert "written by a run with other parameters or inputs" in result.stderr
    assert not checkpoint.exists()
