"""A DVC remote over SSH against a real sshd on 127.0.0.1 (its own config, host key, port and a generated client
key): after a tiny snakemake run, `dvc push` sends every cached output, the local cache and all outputs are
deleted, and `dvc pull` gives back the same bytes. Skips when openssh-server or dvc-ssh is not installed."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from helpers.pipeline import BIN, OUTPUT_DIRS, copy_run, output_hashes, run
from helpers.sshd_server import SshdUnavailable, SshServer, start_sshd

pytestmark = pytest.mark.remote
REMOTE = "cxrbench-ssh"


def cached_outputs(repo: Path) -> list[str]:
    """The outputs DVC keeps in its cache, i.e. what `dvc push` sends (metrics, plots and the report are
    `cache: false` in dvc.yaml and are not pushed)."""
    from dvc.repo import Repo

    with Repo(str(repo)) as dvc_repo:
        return sorted(out.def_path for out in dvc_repo.index.outs if out.use_cache)


def under(paths: list[str], hashes: dict[str, str]) -> dict[str, str]:
    return {f: h for f, h in hashes.items() if any(f == p or f.startswith(p + "/") for p in paths)}


def dvc(repo: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    if check:
        return run([str(BIN / "dvc"), *args], repo, timeout=300)
    return subprocess.run([str(BIN / "dvc"), *args], cwd=repo, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "DVC_NO_ANALYTICS": "1"})


@pytest.fixture(scope="module")
def sshd(tmp_path_factory) -> SshServer:
    pytest.importorskip("dvc_ssh", reason="dvc-ssh is not installed (pip install dvc-ssh)")
    try:
        server = start_sshd(tmp_path_factory.mktemp("sshd"), lifetime_s=1800)  # a safety net: stop() ends it
    except SshdUnavailable as err:
        pytest.skip(f"no private sshd: {err}")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def pipeline_repo(tiny_run, tmp_path_factory) -> Path:
    """The session's finished run, copied: pushing and deleting here must not touch the original."""
    return copy_run(tiny_run, tmp_path_factory.mktemp("remote_repo") / "repo")


def test_an_unknown_key_is_refused(sshd, tmp_path):
    """The server takes only the key generated for it: a push with another key fails before sending anything."""
    repo = tmp_path / "repo"
    repo.mkdir()
    run(["git", "init", "-q"], repo)
    dvc(repo, "init", "-q")
    (repo / "blob.bin").write_bytes(b"not for you")
    dvc(repo, "add", "blob.bin")
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "stranger")], check=True)
    store = tmp_path / "store"
    dvc(repo, "remote", "add", "-d", REMOTE, sshd.url(store))
    dvc(repo, "remote", "modify", "--local", REMOTE, "keyfile", str(tmp_path / "stranger"))
    refused = dvc(repo, "push", check=False)
    assert refused.returncode != 0, refused.stdout
    assert "Permission denied" in refused.stderr, refused.stderr[-2000:]
    assert not store.exists() or not any(store.rglob("*")), "a refused client wrote to the remote"


def test_push_delete_pull_restores_every_output_byte_for_byte(sshd, pipeline_repo, tmp_path):
    repo, store = pipeline_repo, tmp_path / "store"
    cached = cached_outputs(repo)
    must_push = {"data/raw/nih", "data/store/nih", "data/store/jsrt", "models/classifier", "results/classifier"}
    assert must_push <= set(cached), cached
    pushed = under(cached, output_hashes(repo))
    assert all(any(f == p or f.startswith(p + "/") for f in pushed) for p in cached), "a cached output has no files"

    dvc(repo, "remote", "add", "-d", REMOTE, sshd.url(store))
    dvc(repo, "remote", "modify", "--local", REMOTE, "keyfile", str(sshd.client_key))
    dvc(repo, "push")
    assert any(p.is_file() for p in (store / "files" / "md5").rglob("*")), "nothing arrived on the remote"
    # the key stays out of the committed config; only the local one has it
    assert str(sshd.client_key) not in (repo / ".dvc" / "config").read_text()

    shutil.rmtree(repo / ".dvc" / "cache")
    for top in OUTPUT_DIRS:
        shutil.rmtree(repo / top, ignore_errors=True)
    assert not under(cached, output_hashes(repo))

    dvc(repo, "pull")
    pulled = under(cached, output_hashes(repo))
    assert pulled.keys() == pushed.keys()
    differing = sorted(f for f in pushed if pulled[f] != pushed[f])
    assert not differing, f"pulled bytes differ from pushed: {differing}"
