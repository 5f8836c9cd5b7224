"""Shared fixtures. Real NIH files live in ../shared/data/nih beside the project; tests that need
them skip cleanly when that folder is absent (a user's clone has no ../shared). `tiny_run` is one finished
tiny pipeline, made once per pytest session for the tests that read a run or work on a copy of one."""

from __future__ import annotations

import fcntl
from pathlib import Path

import pytest

from helpers.pipeline import BIN, KEPT_RUNS, copy_repo, copy_run, keep_run, run, tree_key

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SHARED_NIH = PROJECT_ROOT.parent / "shared" / "data" / "nih"


@pytest.fixture(scope="session")
def project_root() -> Path:
    return PROJECT_ROOT


@pytest.fixture(scope="session")
def shared_nih() -> Path:
    """The real NIH metadata, split lists, Google labels and 20 images; skip when absent."""
    if not (SHARED_NIH / "Data_Entry_2017_v2020.csv").is_file():
        pytest.skip(f"real NIH files not found at {SHARED_NIH}")
    return SHARED_NIH


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> Path:
    """A copy of the project in which `snakemake --cores 2` ran the tiny configuration to the end. Read it, or
    work on `helpers.pipeline.copy_run(tiny_run, ...)`: never change it (other tests read it after you).

    Made once per tree: a session that finds the run an earlier session of the same files and interpreter kept
    (`make test`'s before the long checks, in .ci/run) works on a copy of it; the default suite, which holds the
    claims about how a run is made (tests/test_end_to_end.py), makes its own whenever the tree changed. Parallel
    workers of one session make it once."""
    key = tree_key()
    kept = KEPT_RUNS / key
    KEPT_RUNS.mkdir(parents=True, exist_ok=True)
    # Parallel test workers (pytest -n) take turns: the first makes the run, the others wait and copy it.
    with open(KEPT_RUNS.parent / "tiny-runs.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if kept.is_dir():
            return copy_run(kept, tmp_path_factory.mktemp("tiny_run") / "repo")
        repo = copy_repo(tmp_path_factory.mktemp("tiny_run"))
        run([str(BIN / "snakemake"), "--cores", "2"], repo)
        keep_run(repo, key)
        return repo


LONG_MARKERS = ("slurm", "remote", "faults", "slow")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The long checks first, then the end-to-end runs, then the rest (each module's own order kept): parallel
    workers (pytest -n, which hands out a module at a time) then finish together instead of one waiting on the
    last long module."""
    def cost(item: pytest.Item) -> int:
        if any(item.get_closest_marker(m) for m in LONG_MARKERS):
            return 0
        return 1 if item.get_closest_marker("e2e") else 2
    items.sort(key=cost)
