"""Faults on the tiny pipeline, in temporary copies of the repository.

- SIGKILL of the whole workflow (snakemake and every job, one process group) during decoding, during training
  and during the report; after each kill every output at its final name is either absent or byte-identical to
  an uninterrupted run's (the growing dvclive logs of a killed training excepted), so no stage can have
  consumed a half-written file; rerunning with --rerun-incomplete ends byte-identical to the uninterrupted run.
- An unwritable output directory fails the stage with a message naming the output, the reason and what to do,
  and leaves every other output intact (tests/test_disk_faults.py does this, and a full disk, on one stage).
- A second snakemake (or `dvc repro`) on a workspace where one is running refuses with a clear message and
  corrupts nothing.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from helpers.pipeline import BIN, copy_repo, copy_run, output_hashes, reproducible_lock, run

pytestmark = pytest.mark.faults
SNAKEMAKE, DVC = str(BIN / "snakemake"), str(BIN / "dvc")
# Snakemake runs each job as `bash -c '... python -m cxrbench.stages.<stage> && python -m cxrbench.record_stage
# <stage>'`: that shell lives exactly as long as the job, recording in dvc.lock included.
JOB_SHELL = re.compile(r"cxrbench\.record_stage (\w+)")
STAGE_PROCESS = re.compile(r"-m cxrbench\.stages\.(\w+)")
RUN_TIMEOUT_S = 900


def workflow_env(repo: Path) -> dict[str, str]:
    return {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "PYTHONPATH": str(repo / "src"),
            "DVC_NO_ANALYTICS": "1", "PYTHONDONTWRITEBYTECODE": "1"}


def attempt(cmd: list[str], repo: Path) -> subprocess.CompletedProcess:
    """Run a command that may fail; the caller judges the result."""
    return subprocess.run(cmd, cwd=repo, env=workflow_env(repo), capture_output=True, text=True, timeout=RUN_TIMEOUT_S)


def start(cmd: list[str], repo: Path, log: Path) -> subprocess.Popen:
    """Start a workflow in its own process group (pgid = its pid), as a terminal would."""
    with open(log, "ab") as out:
        return subprocess.Popen(cmd, cwd=repo, env=workflow_env(repo), stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)


def group_processes(pgid: int) -> dict[int, str]:
    """Live (not zombie) processes of a process group and their command lines."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            # fields after the parenthesised command name: state ppid pgrp ...
            state, _, pgrp = stat[stat.rindex(")") + 2:].split()[:3]
            if int(pgrp) == pgid and state != "Z":
                found[int(entry.name)] = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except (OSError, ValueError):
            continue  # the process ended while we looked
    return found


def running_stages(pgid: int, pattern: re.Pattern = JOB_SHELL) -> set[str]:
    return {stage for cmdline in group_processes(pgid).values() for stage in pattern.findall(cmdline)}


def kill_group(process: subprocess.Popen) -> None:
    """SIGKILL the whole group and wait until none of its processes is left."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=60)
    deadline = time.monotonic() + 30
    while group_processes(process.pid):
        assert time.monotonic() < deadline, f"processes survived SIGKILL: {group_processes(process.pid)}"
        time.sleep(0.05)


@dataclass
class Reference:
    """A completed uninterrupted run: the workspace, its output hashes, dvclive logs and dvc.lock as first written."""

    repo: Path
    outputs: dict[str, list[str]]  # stage -> declared outputs (outs, metrics, plots)
    hashes: dict[str, str]
    live_logs: dict[str, bytes]
    dvc_lock: dict

    def owner(self, path: str) -> str | None:
        return next((stage for stage, outs in self.outputs.items()
                     if any(path == o or path.startswith(o + "/") for o in outs)), None)

    def declared(self, hashes: dict[str, str]) -> dict[str, str]:
        return {f: h for f, h in hashes.items() if self.owner(f)}

    def assert_same_outputs(self, repo: Path, when: str) -> None:
        ours, theirs = self.declared(output_hashes(repo)), self.declared(self.hashes)
        assert ours.keys() == theirs.keys(), f"{when}: missing {sorted(theirs.keys() - ours.keys())}, " \
                                             f"extra {sorted(ours.keys() - theirs.keys())}"
        differing = sorted(f for f in ours if ours[f] != theirs[f])
        assert not differing, f"{when}: outputs differ from the uninterrupted run: {differing}"


def declared_outputs(repo: Path) -> dict[str, list[str]]:
    stages = yaml.safe_load((repo / "dvc.yaml").read_text())["stages"]
    return {name: [entry if isinstance(entry, str) else next(iter(entry))
                   for kind in ("outs", "metrics", "plots") for entry in stage.get(kind, [])]
            for name, stage in stages.items()}


@pytest.fixture(scope="module")
def pristine(tmp_path_factory) -> Path:
    """One snapshot of the project for every run here, so all of them run the same code."""
    return copy_repo(tmp_path_factory.mktemp("pristine"))


def clone(pristine: Path, dest: Path) -> Path:
    shutil.copytree(pristine, dest, symlinks=True)
    return dest


@pytest.fixture(scope="module")
def reference(tiny_run, tmp_path_factory) -> Reference:
    """The uninterrupted run (a copy of the session's, made from the same tree as `pristine`); the tests that
    break it leave it complete and as it was."""
    repo = copy_run(tiny_run, tmp_path_factory.mktemp("runs") / "uninterrupted")
    return Reference(
        repo=repo,
        outputs=declared_outputs(repo),
        hashes=output_hashes(repo),
        live_logs={p.relative_to(repo).as_posix(): p.read_bytes()
                   for p in (repo / "dvclive").rglob("*") if p.is_file()},
        dvc_lock=reproducible_lock(yaml.safe_load((repo / "dvc.lock").read_text())),
    )


def log_says(stage: str, text: str) -> Callable[[Path], bool]:
    def ready(repo: Path) -> bool:
        log = repo / "logs" / f"{stage}.log"
        return log.is_file() and text in log.read_text()
    return ready


def epoch_checkpoint_saved(repo: Path) -> bool:
    """Training has a resumable checkpoint: the rerun continues from it rather than from scratch."""
    from cxrbench.training import EpochCheckpoint

    return (repo / EpochCheckpoint("train_classifier", run_fingerprint="").path).is_file()


def writing(output: str) -> Callable[[Path], bool]:
    """The stage is inside its atomic write of `output`: the temporary sibling (cxrbench.fileio) exists."""
    final = Path(output)

    def ready(repo: Path) -> bool:
        return any((repo / final.parent).glob(f".{final.name}.*.partial"))
    return ready


# (stage, when to kill it): decoding halfway through writing the store; training once its first epoch is
# checkpointed (half of the tiny run's epochs); the report once it started
KILL_POINTS = [("decode_nih", writing("data/store/nih")),
               ("train_classifier", epoch_checkpoint_saved),
               ("write_report", log_says("write_report", "stage write_report started"))]


def run_and_kill(repo: Path, stage: str, ready: Callable[[Path], bool], log: Path) -> set[str]:
    """Run snakemake until `stage` is running and `ready(repo)`, then SIGKILL the whole workflow.

    Returns the stages whose jobs were running at the kill."""
    process = start([SNAKEMAKE, "--cores", "2", "--rerun-incomplete"], repo, log)
    deadline = time.monotonic() + RUN_TIMEOUT_S
    try:
        while True:
            jobs = running_stages(process.pid)
            if stage in jobs and ready(repo):
                os.killpg(process.pid, signal.SIGKILL)
                return jobs
            assert process.poll() is None, f"snakemake ended ({process.returncode}) before {stage} was killed:\n" \
                                           f"{log.read_text()[-4000:]}"
            assert time.monotonic() < deadline, f"{stage} never became ready to be killed"
            time.sleep(0.02)
    finally:
        kill_group(process)


def check_after_kill(repo: Path, reference: Reference, interrupted: set[str]) -> None:
    """Every output at its final name is complete: byte-identical to the uninterrupted run's. Only a killed
    training's dvclive logs may be shorter (each TSV a prefix of the finished one). Every other stage's outputs
    are all there or none are, and dvc.lock is whole and agrees with the uninterrupted run."""
    when = f"after a kill during {sorted(interrupted)}"
    for path, digest in reference.declared(output_hashes(repo)).items():
        if digest == reference.hashes.get(path):
            continue
        owner = reference.owner(path)
        assert owner in interrupted and path.startswith("dvclive/"), f"{when}: {path} ({owner}) is not complete"
        if path.endswith(".tsv"):
            assert reference.live_logs[path].startswith((repo / path).read_bytes()), f"{when}: {path}"
    for stage, outs in reference.outputs.items():
        present = {o for o in outs if (repo / o).exists()}
        assert stage in interrupted or present in (set(), set(outs)), f"{when}: {stage} left only {sorted(present)}"
    lock_path = repo / "dvc.lock"
    if lock_path.exists():
        for stage, entry in reproducible_lock(yaml.safe_load(lock_path.read_text())).items():
            assert entry == reference.dvc_lock[stage], f"{when}: dvc.lock entry of {stage} differs"


def test_sigkill_at_three_points_then_rerun_matches_an_uninterrupted_run(pristine, reference, tmp_path):
    """Kill during decoding, rerun and kill during training, rerun and kill during the report, rerun to the end:
    the same workspace, as a user's bad day would go."""
    repo = clone(pristine, tmp_path / "killed")
    for stage, ready in KILL_POINTS:
        interrupted = run_and_kill(repo, stage, ready, tmp_path / f"killed_during_{stage}.log")
        check_after_kill(repo, reference, interrupted)
        # Snakemake cannot tell a killed run's lock from a live one: it refuses, and says to --unlock
        refused = attempt([SNAKEMAKE, "--cores", "2", "--rerun-incomplete"], repo)
        assert refused.returncode != 0 and "--unlock" in refused.stdout + refused.stderr, refused.stderr[-3000:]
        run([SNAKEMAKE, "--unlock"], repo)
    run([SNAKEMAKE, "--cores", "2", "--rerun-incomplete"], repo)
    reference.assert_same_outputs(repo, "after three kills and reruns")
    assert reproducible_lock(yaml.safe_load((repo / "dvc.lock").read_text())) == reference.dvc_lock
    # what the kills left behind is only temporary siblings, named so that nothing mistakes them for outputs
    stray = set(output_hashes(repo)) - set(reference.declared(output_hashes(repo)))
    assert all(any(part.endswith(".partial") for part in Path(f).parts) for f in stray), sorted(stray)
    assert "up to date" in run([DVC, "status"], repo).stdout


@contextlib.contextmanager
def unwritable(directory: Path) -> Iterator[None]:
    """No new entries in `directory`: mode 555, plus the immutable attribute for root (root ignores modes)."""
    mode = directory.stat().st_mode
    directory.chmod(0o555)
    immutable = False
    try:
        if os.geteuid() == 0:
            immutable = subprocess.run(["chattr", "+i", str(directory)], capture_output=True).returncode == 0
        try:
            (directory / ".probe").touch()
        except OSError:
            pass
        else:
            (directory / ".probe").unlink()
            pytest.skip(f"cannot make {directory} unwritable here (root without chattr +i)")
        yield
    finally:
        if immutable:
            subprocess.run(["chattr", "-i", str(directory)], check=True)
        directory.chmod(mode)


def test_unwritable_output_directory_fails_clearly_and_keeps_other_outputs(reference):
    """results/ cannot take new files when the report must be written again: the report stage fails naming
    the directory and the reason; every other output, results/ included, stays as it was."""
    repo = reference.repo
    for report in reference.outputs["write_report"]:  # the pages and the folder of their figures
        if (repo / report).is_dir():
            shutil.rmtree(repo / report)
        else:
            (repo / report).unlink()
    before = output_hashes(repo)
    with unwritable(repo / "results"):
        failed = attempt([SNAKEMAKE, "--cores", "2"], repo)
    said = failed.stdout + failed.stderr
    assert failed.returncode != 0
    assert "Error in rule write_report" in said, said[-4000:]
    assert re.search(r"results/(report\.(html|md)|figures): this user may not write or read it: "
                     r"(Permission denied|Operation not permitted)\n  what to do: make results writable", said), \
        said[-4000:]
    assert output_hashes(repo) == before
    assert not list((repo / "results").glob(".*.partial")), "the failed stage left a temporary folder"

    run([SNAKEMAKE, "--cores", "2"], repo)
    reference.assert_same_outputs(repo, "after the directory became writable again")


def wait_for_stage(process: subprocess.Popen, stage: str, log: Path) -> None:
    deadline = time.monotonic() + RUN_TIMEOUT_S
    while stage not in running_stages(process.pid, STAGE_PROCESS):
        assert process.poll() is None, f"the first run ended before {stage} started:\n{log.read_text()[-4000:]}"
        assert time.monotonic() < deadline
        time.sleep(0.05)


def second_run_while_one_runs(repo: Path, first_command: list[str], second_command: list[str],
                              first_log: Path) -> tuple[subprocess.Popen, subprocess.CompletedProcess]:
    """Start `first_command` (it reruns evaluate_classifier), try `second_command` while that stage runs, and
    return both once the first has finished, as it must, successfully; the second must have failed."""
    first = start(first_command, repo, first_log)
    try:
        wait_for_stage(first, "evaluate_classifier", first_log)
        second = attempt(second_command, repo)
        assert first.poll() is None, "the first run ended before the second tried; the check proved nothing"
    except BaseException:
        kill_group(first)
        raise
    assert first.wait(timeout=RUN_TIMEOUT_S) == 0, first_log.read_text()[-4000:]
    assert second.returncode != 0
    return first, second


def test_second_snakemake_refuses_while_one_runs(reference, tmp_path):
    first_command = [SNAKEMAKE, "--cores", "2", "--forcerun", "evaluate_classifier"]
    _, second = second_run_while_one_runs(reference.repo, first_command, [SNAKEMAKE, "--cores", "2"],
                                          tmp_path / "first.log")
    assert "Directory cannot be locked" in second.stdout + second.stderr, second.stderr[-3000:]
    reference.assert_same_outputs(reference.repo, "after two concurrent snakemake runs")


def test_second_dvc_repro_refuses_while_one_runs(reference, tmp_path):
    first_command = [DVC, "repro", "--force", "--downstream", "evaluate_classifier"]
    first, second = second_run_while_one_runs(reference.repo, first_command, [DVC, "repro"], tmp_path / "first.log")
    # DVC locks per path: the second run stops at the first stage whose files the first one holds
    assert re.search(rf"is busy, it is being blocked by:\s+\(PID {first.pid}\)", second.stderr), second.stderr[-3000:]
    reference.assert_same_outputs(reference.repo, "after two concurrent dvc repro runs")
    assert "up to date" in run([DVC, "status"], reference.repo).stdout
