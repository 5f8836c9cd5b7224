"""A full disk and an unwritable output directory, for real, on one stage (acquire_nih, seconds at test size);
and the temporary sibling a SIGKILL leaves inside an atomic write, removed by the next write.

A first run writes good outputs; then `data/raw` (a symlink to a small tmpfs when running as root) is filled up
or made read-only, and the stage runs again with another seed, so it must rewrite its outputs. It must exit
non-zero with a message in its log and on stderr that names the output, the problem and what to do, and every
earlier output must stay byte-identical, with no temporary sibling left behind. Without root (no mount), the
full-disk test skips and the unwritable one uses file modes instead of a read-only mount.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from cxrbench import config, store
from cxrbench.fileio import atomic_path
from cxrbench.stages._app import explain_os_error
from helpers.pipeline import ROOT, output_hashes

STAGE = "acquire_nih"
TMPFS_MB = 48  # the tiny synthetic NIH tree is about 21 MB


def run_stage(workspace: Path, *overrides: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "PYTHONDONTWRITEBYTECODE": "1"}
    return subprocess.run([sys.executable, "-m", f"cxrbench.stages.{STAGE}", *overrides], cwd=workspace, env=env,
                          capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def good_run(tmp_path_factory) -> Path:
    """A workspace where the stage succeeded once on the tiny configuration."""
    workspace = tmp_path_factory.mktemp("good")
    (workspace / "params.yaml").write_text(config.compose_yaml(["experiment=tiny"]))
    done = run_stage(workspace)
    assert done.returncode == 0, done.stderr[-4000:]
    return workspace


@contextlib.contextmanager
def tmpfs(mount_point: Path, size_mb: int) -> Iterator[Path]:
    mount_point.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_mb}m", "tmpfs", str(mount_point)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=True)


def copy_workspace(good: Path, dest: Path, raw_on: Path | None) -> Path:
    """A copy of the good workspace; with `raw_on`, its data/raw lives there behind a symlink."""
    shutil.copytree(good, dest, symlinks=True)
    if raw_on is not None:
        shutil.copytree(dest / "data" / "raw", raw_on, dirs_exist_ok=True)
        shutil.rmtree(dest / "data" / "raw")
        (dest / "data" / "raw").symlink_to(raw_on)
    return dest


def fill(folder: Path, leave_kib: int) -> None:
    """Fill the file system holding `folder` until about `leave_kib` KiB are free."""
    free = shutil.disk_usage(folder).free
    with open(folder / "filler", "wb") as out:
        out.write(b"\0" * max(0, free - leave_kib * 1024))


def assert_failed_clearly(failed: subprocess.CompletedProcess, workspace: Path, says: list[str]) -> None:
    assert failed.returncode == 3, (failed.returncode, failed.stderr[-4000:])
    log = (workspace / "logs" / f"{STAGE}.log").read_text()
    for text in [*says, "\n  what to do: ", "the earlier outputs were left as they were"]:
        assert text in log, f"{text!r} not in the log:\n{log}"
        assert text in failed.stderr, f"{text!r} not on stderr:\n{failed.stderr[-4000:]}"
    assert "Traceback" not in failed.stderr, failed.stderr[-4000:]


def assert_untouched(workspace: Path, before: dict[str, str]) -> None:
    assert output_hashes(workspace) == before
    raw = workspace / "data" / "raw"
    assert not [p.name for p in raw.iterdir() if p.name.endswith(".partial")], "a temporary sibling was left"


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a small tmpfs needs root")
def test_full_disk_fails_clearly_and_keeps_earlier_outputs(good_run, tmp_path):
    with tmpfs(tmp_path / "disk", TMPFS_MB) as disk:
        workspace = copy_workspace(good_run, tmp_path / "workspace", raw_on=disk)
        fill(disk, leave_kib=512)
        before = output_hashes(workspace)
        failed = run_stage(workspace, "seed=1")
        (disk / "filler").unlink()  # the filler is not an output: drop it before comparing
        assert_failed_clearly(failed, workspace, ["data/raw/nih/images/", "the disk is full",
                                                  "free space on the file system holding data/raw"])
        assert_untouched(workspace, before)


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a small tmpfs needs root")
def test_a_store_larger_than_the_free_space_is_refused_before_decoding(tmp_path):
    # without reserving its blocks the memory-mapped store would be created (sparse) and its writer die of SIGBUS
    with tmpfs(tmp_path / "disk", 2) as disk:
        with pytest.raises(OSError) as refused:
            store.create(disk / "images_128.npy", (200, 128, 128), np.uint8)  # 3.2 MB on a 2 MB disk
        assert refused.value.errno == errno.ENOSPC


@contextlib.contextmanager
def read_only(folder: Path) -> Iterator[str]:
    """Make `folder` unwritable: remount its tmpfs read-only as root (root ignores file modes), chmod otherwise.
    Yields what the stage should then say."""
    if os.geteuid() == 0:
        subprocess.run(["mount", "-o", "remount,ro", str(folder)], check=True)
        try:
            yield "the file system is mounted read-only"
        finally:
            subprocess.run(["mount", "-o", "remount,rw", str(folder)], check=True)
    else:
        mode = folder.stat().st_mode
        folder.chmod(0o555)
        try:
            yield "this user may not write or read it"
        finally:
            folder.chmod(mode)


def test_unwritable_output_directory_fails_clearly_and_keeps_earlier_outputs(good_run, tmp_path):
    with contextlib.ExitStack() as stack:
        raw_on = stack.enter_context(tmpfs(tmp_path / "disk", TMPFS_MB)) if os.geteuid() == 0 else None
        workspace = copy_workspace(good_run, tmp_path / "workspace", raw_on=raw_on)
        before = output_hashes(workspace)
        with read_only(raw_on or workspace / "data" / "raw") as problem:
            failed = run_stage(workspace, "seed=1")
        assert_failed_clearly(failed, workspace, [f"data/raw/nih: {problem}"])
        assert_untouched(workspace, before)


def test_temporary_sibling_of_a_killed_writer_is_removed_by_the_next_write(tmp_path):
    """SIGKILL a process inside its atomic write: the output is absent, its hidden `.partial` sibling stays; the
    next write of that output removes it, but not the siblings of a live writer or of another host."""
    final = tmp_path / "out"
    writer = subprocess.Popen(
        [sys.executable, "-c", "import sys, time\nfrom cxrbench.fileio import atomic_path\n"
         f"with atomic_path({str(final)!r}, is_dir=True) as tmp:\n"
         "    (tmp / 'half.txt').write_text('half')\n    print('writing', flush=True)\n    time.sleep(60)"],
        env={**os.environ, "PYTHONPATH": str(ROOT / "src")}, stdout=subprocess.PIPE, text=True)
    assert writer.stdout.readline() == "writing\n"
    writer.kill()
    writer.wait()
    [killed] = [p for p in tmp_path.iterdir() if p.name.endswith(".partial")]
    assert not final.exists() and (killed / "half.txt").is_file()

    # siblings that may still be in use: this (live) process's, another host's; and another output's
    in_use = [tmp_path / f".out.{socket.gethostname()}.{os.getpid()}.live.partial",
              tmp_path / f".out.elsewhere.example.org.{writer.pid}.remote.partial",
              tmp_path / f".out2.{socket.gethostname()}.{writer.pid}.other.partial"]
    for folder in in_use:
        folder.mkdir()
    with atomic_path(final) as tmp:
        tmp.write_text("good")
    assert final.read_text() == "good"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["out", *(p.name for p in in_use)])


@pytest.mark.parametrize("code, problem, fix", [
    (errno.ENOSPC, "the disk is full", "free space on the file system holding results ("),
    (errno.EACCES, "this user may not write or read it", "make results writable by this user"),
    (errno.EROFS, "the file system is mounted read-only", "remount the file system holding results read-write"),
    (errno.ENOENT, "missing", "run the stages before this one first"),
    (errno.EIO, "OSError: Input/output error", "check the file and the disk holding results"),
])
def test_every_file_system_error_names_the_file_and_what_to_do(tmp_path, monkeypatch, code, problem, fix):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "results").mkdir()
    message = str(explain_os_error(OSError(code, os.strerror(code), "results/report.html")))
    assert message.startswith(f"results/report.html: {problem}") and f"\n  what to do: {fix}" in message, message
