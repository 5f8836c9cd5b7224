"""Linking a user's copy into data/raw: hard links, and one warning when DVC's cache would double a large
dataset on disk (its default cache type copies), with the command that avoids it."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from cxrbench.stages import _local


@pytest.fixture
def project(tmp_path, monkeypatch) -> Path:
    """A DVC project (no git) with a 2 MiB 'dataset' beside it, the warning threshold lowered to 1 MiB. DVC's user
    and system configs are empty ones here, so that the developer's own cache.type cannot change the result."""
    for level in ("GLOBAL", "SYSTEM"):
        monkeypatch.setenv(f"DVC_{level}_CONFIG_DIR", str(tmp_path / f"dvc-{level.lower()}-config"))
    subprocess.run([sys.executable, "-m", "dvc", "init", "--no-scm", "-q"], cwd=tmp_path, check=True)
    (tmp_path / "copy").mkdir()
    (tmp_path / "copy" / "a.img").write_bytes(os.urandom(2 * 2**20))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(_local, "DOUBLING_WARNING_BYTES", 2**20)
    return tmp_path


def link(project: Path, caplog) -> list[str]:
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger=_local.__name__):
        _local.link_tree(project / "copy", project / "data" / "raw" / f"x{len(list(project.glob('data/raw/*')))}")
    return [record.getMessage() for record in caplog.records]


def test_dvc_default_cache_gets_one_warning_with_the_fix(project, caplog):
    warnings = link(project, caplog)
    assert len(warnings) == 1
    assert str(project / "copy") in warnings[0] and "doubling them on disk" in warnings[0]
    assert "dvc config cache.type reflink,hardlink,symlink,copy" in warnings[0] and "Large datasets" in warnings[0]
    assert (project / "data/raw/x0/a.img").stat().st_ino == (project / "copy/a.img").stat().st_ino


def test_a_linking_cache_or_a_small_dataset_gets_none(project, caplog, monkeypatch):
    subprocess.run([sys.executable, "-m", "dvc", "config", "cache.type", "hardlink,copy"], cwd=project, check=True)
    assert link(project, caplog) == []
    subprocess.run([sys.executable, "-m", "dvc", "config", "--unset", "cache.type"], cwd=project, check=True)
    monkeypatch.setattr(_local, "DOUBLING_WARNING_BYTES", 10 * 2**20)
    assert link(project, caplog) == []


def test_a_linking_cache_type_in_config_local_counts_too(project, caplog):
    subprocess.run([sys.executable, "-m", "dvc", "config", "--local", "cache.type", "symlink"], cwd=project, check=True)
    assert link(project, caplog) == []


def test_an_unreadable_dvc_config_does_not_stop_the_link(project, caplog):
    (project / ".dvc" / "config").write_text("[cache\n type = \n")  # DVC reports this itself when it records
    assert link(project, caplog) == []
    assert (project / "data/raw/x0/a.img").is_file()


def test_outside_a_dvc_project_nothing_is_said(tmp_path, caplog, monkeypatch):
    (tmp_path / "copy").mkdir()
    (tmp_path / "copy" / "a.img").write_bytes(b"x" * 4096)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(_local, "DOUBLING_WARNING_BYTES", 1)
    with caplog.at_level(logging.WARNING, logger=_local.__name__):
        _local.link_tree(tmp_path / "copy", tmp_path / "out")
    assert caplog.records == [] and (tmp_path / "out" / "a.img").is_file()
