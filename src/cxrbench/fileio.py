"""Atomic writes: an output appears under its final name only once it is complete."""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import shutil
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

PARTIAL_SUFFIX = ".partial"


@contextlib.contextmanager
def atomic_path(final: str | Path, *, is_dir: bool = False) -> Iterator[Path]:
    """Yield a temporary sibling path; on success rename it over `final`, on failure remove it.

    The temporary name sits in the same directory so the rename is atomic on POSIX. It is hidden, ends in
    `.partial` and names this host and process, so that a later write of the same output can remove what a
    killed writer left (see `remove_stale_partials`). An OSError without a file name (a full disk reports
    none) is given the path being written, so the error says where it happened.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = None
    try:
        tmp = partial_dir(final)
        target = tmp if is_dir else tmp / final.name
        yield target
        if final.is_dir() and not final.is_symlink():
            shutil.rmtree(final)
        elif is_dir and (final.exists() or final.is_symlink()):
            final.unlink()  # os.replace puts a file over a file atomically; a folder needs the name free
        os.replace(target, final)
    except OSError as err:
        _name_the_output(err, final, tmp, is_dir)
        raise
    finally:
        if tmp is not None and tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def partial_dir(final: Path) -> Path:
    """A new, empty temporary sibling folder of `final`, named for this host and process, after removing those
    that dead writers of `final` left (see `remove_stale_partials`)."""
    remove_stale_partials(final)
    tmp = Path(tempfile.mkdtemp(prefix=f"{_partial_prefix(final)}{socket.gethostname()}.{os.getpid()}.",
                                suffix=PARTIAL_SUFFIX, dir=final.parent))
    os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes 0700; outputs get the user's usual permissions
    return tmp


def _name_the_output(err: OSError, final: Path, tmp: Path | None, is_dir: bool) -> None:
    """Make `err` name the output being written rather than its temporary name (or nothing, as ENOSPC does)."""
    if err.filename is None or tmp is None:
        err.filename = str(final)
    elif is_dir and str(err.filename).startswith(str(tmp)):
        err.filename = str(final / Path(err.filename).relative_to(tmp))
    elif str(err.filename).startswith(str(tmp)):
        err.filename = str(final)


def _partial_prefix(final: Path) -> str:
    return f".{final.name}."


def remove_stale_partials(final: Path) -> list[Path]:
    """Remove temporary siblings of `final` whose writer (a process on this host) no longer exists.

    A SIGKILL or power loss leaves them behind; nothing reads them (they never carry the final name). Those of
    live processes and of other hosts (a cluster's shared disk) are left alone: they may still be written.
    Inside another write's temporary folder there is nothing stale to look for (and files are written there by
    the thousand), so that is skipped.
    """
    removed = []
    if any(part.endswith(PARTIAL_SUFFIX) for part in final.parent.parts):
        return removed
    prefix = _partial_prefix(final)
    with contextlib.suppress(FileNotFoundError):
        for sibling in final.parent.iterdir():
            name = sibling.name
            if not (name.startswith(prefix) and name.endswith(PARTIAL_SUFFIX)):
                continue
            writer = name[len(prefix):-len(PARTIAL_SUFFIX)].rsplit(".", 2)  # host, pid, mkdtemp's random part
            if len(writer) != 3:
                continue
            host, pid, _ = writer
            if host == socket.gethostname() and pid.isdigit() and not _process_exists(int(pid)):
                shutil.rmtree(sibling, ignore_errors=True)
                removed.append(sibling)
    return removed


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # alive, but another user's
    return True


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


def write_bytes(path: str | Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text(path: str | Path, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def metric_value(value: float) -> float | None:
    """Six decimals for stable, readable metrics; None (JSON null) where undefined (NaN, e.g. one class only)."""
    return None if math.isnan(value) else round(float(value), 6)


def write_json(path: str | Path, obj) -> None:
    """Deterministic JSON (sorted keys, fixed indent) so equal content means equal bytes."""
    write_text(path, json.dumps(obj, indent=2, sort_keys=True, allow_nan=False) + "\n")


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()
