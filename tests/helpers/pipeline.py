"""Running the pipeline in temporary copies of the project, and reading what a run left."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

from cxrbench import artefacts

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
OUTPUT_DIRS = ("data", "models", "dvclive", "metrics", "plots", "results")
# Finished tiny runs kept between pytest sessions of the same tree (conftest.tiny_run); ignored by git.
KEPT_RUNS = ROOT / "test-artefacts" / "tiny-runs"
RUN_PACKAGES = ("torch", "monai", "numpy", "pandas", "scikit-learn", "opencv-python-headless", "matplotlib", "dvc",
                "snakemake", "hydra-core")
# Outputs measured rather than computed (training speed, wall-clock): the only ones that differ between runs,
# and the report's cells that quote them ("61.2 images/s").
UNREPRODUCIBLE = {".snakemake_timestamp", *(path.name for path in artefacts.THROUGHPUT.values())}
MEASURED_IN_REPORT = re.compile(rb"\b[0-9][0-9.]* (images|ROIs|patches)/s")
REPORTS = {"report.md", "report.html"}
# Fixed identity and dates: copies of the same tree get the same commit, so reports that name the commit agree.
GIT_IDENTITY = {"GIT_AUTHOR_NAME": "test", "GIT_AUTHOR_EMAIL": "test@localhost", "GIT_COMMITTER_NAME": "test",
                "GIT_COMMITTER_EMAIL": "test@localhost", "GIT_AUTHOR_DATE": "2026-01-01T00:00:00Z",
                "GIT_COMMITTER_DATE": "2026-01-01T00:00:00Z"}


def run(cmd: list[str], cwd: Path, timeout: int = 900, pythonpath: tuple[Path, ...] = ()) -> subprocess.CompletedProcess:
    """`cmd` in `cwd` with the copy's own sources importable (and `pythonpath`, e.g. a user's package)."""
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
           "PYTHONPATH": os.pathsep.join(map(str, (cwd / "src", *pythonpath))),
           "DVC_NO_ANALYTICS": "1", "PYTHONDONTWRITEBYTECODE": "1", **GIT_IDENTITY}
    result = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"{' '.join(cmd)} failed:\n{result.stdout[-4000:]}\n{result.stderr[-6000:]}"
    return result


def project_files() -> list[str]:
    """The project's tracked and untracked-but-not-ignored files (what a copy of the project holds), sorted."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                            capture_output=True, check=True).stdout.decode().split("\0")
    return sorted(name for name in listed if name and (ROOT / name).is_file())


def copy_repo(dest: Path, *overrides: str) -> Path:
    """The project's files (project_files), as a fresh git repository, composed for the tiny experiment with
    `overrides`."""
    for name in project_files():
        (dest / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, dest / name)
    run(["git", "init", "-q", "-b", "main"], dest)
    run(["git", "add", "-A"], dest)
    run(["git", "commit", "-qm", "copy"], dest)
    run([str(BIN / "cxrbench"), "compose", "experiment=tiny", *overrides], dest)
    return dest


def copy_run(finished: Path, dest: Path) -> Path:
    """A copy of a finished run (git, DVC cache, Snakemake's records, outputs; modification times kept), for a
    test that changes it. tests/test_end_to_end.py checks that such a copy is as up to date as the original."""
    shutil.copytree(finished, dest, symlinks=True)
    return dest


def tree_key() -> str:
    """What a tiny run is made from: the project's files (names and contents), this interpreter and the versions
    of the packages that make the outputs. The pipeline is deterministic (tests/test_end_to_end.py), so two runs of
    the same key are the same run."""
    versions = [f"{package} {metadata.version(package)}" for package in RUN_PACKAGES]
    digest = hashlib.sha256("\n".join([sys.executable, sys.version, *versions, ""]).encode())
    for name in project_files():
        digest.update(name.encode() + b"\0" + (ROOT / name).read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def keep_run(finished: Path, key: str) -> None:
    """Keep a copy of a finished tiny run under KEPT_RUNS/`key` for the next pytest session of the same tree (the
    long checks after the default suite), replacing the runs of other trees; the copy appears whole or not at all."""
    KEPT_RUNS.mkdir(parents=True, exist_ok=True)
    for other in KEPT_RUNS.iterdir():
        if other.name != key:
            shutil.rmtree(other, ignore_errors=True)
    partial = KEPT_RUNS / f".{key}.{os.getpid()}.partial"
    copy_run(finished, partial)
    try:
        partial.rename(KEPT_RUNS / key)
    except OSError:  # another session kept the same run first
        shutil.rmtree(partial, ignore_errors=True)


def output_hashes(repo: Path) -> dict[str, str]:
    hashes = {}
    for top in OUTPUT_DIRS:
        for path in sorted((repo / top).rglob("*")):
            if path.is_file() and path.name not in UNREPRODUCIBLE:
                content = path.read_bytes()
                if path.name in REPORTS:
                    content = MEASURED_IN_REPORT.sub(b"<measured>", content)
                hashes[path.relative_to(repo).as_posix()] = hashlib.sha256(content).hexdigest()
    return hashes


def reproducible_lock(lock: dict) -> dict:
    """dvc.lock's stages without the files measured rather than computed (UNREPRODUCIBLE) and the reports that
    quote them, as dependencies or outputs: what two runs of the same parameters must agree on (output_hashes
    compares the reports themselves, their measured cells masked)."""
    measured = UNREPRODUCIBLE | REPORTS

    def keep(entries: list) -> list:
        return [e for e in entries if Path(e["path"]).name not in measured]
    return {stage: {**entry, **{kind: keep(entry[kind]) for kind in ("deps", "outs") if kind in entry}}
            for stage, entry in lock["stages"].items()}


def planned_rules(repo: Path) -> set[str]:
    """The rules a Snakemake dry run would run."""
    dry = run([str(BIN / "snakemake"), "-n", "--cores", "2", "--quiet", "rules"], repo).stdout
    return {line.split()[0] for line in dry.splitlines() if line.strip() and line.split()[0].islower()
            and "_" in line.split()[0]}


def stages_out_of_date(repo: Path) -> set[str]:
    """The stages `dvc status` names (its stage lines are the unindented ones ending in a colon)."""
    status = run([str(BIN / "dvc"), "status"], repo).stdout
    return {line[:-1] for line in status.splitlines() if line.endswith(":") and not line[0].isspace()}
