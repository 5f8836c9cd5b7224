"""What the acquire stages share: their paired raw outputs with manifests, and linking a user's copy in."""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from cxrbench import artefacts
from cxrbench.fileio import atomic_path
from cxrbench.manifest import write_manifest

log = logging.getLogger(__name__)
DVC_DIR = Path(".dvc")
# Above this, a dataset that DVC would copy into its cache is worth a warning (JSRT is 2 GB, NIH 45 GB).
DOUBLING_WARNING_BYTES = 100 * 2**20
LINKING_CACHE = "reflink,hardlink,symlink,copy"


@contextmanager
def acquire_pair(*datasets: tuple[str, Callable[[Path], str]]) -> Iterator[list[Path]]:
    """Yield a fresh folder per (dataset, role_of); when the body succeeds, write each one's manifest
    (data/manifests/<dataset>.csv) and publish them all as data/raw/<dataset> (atomically, each)."""
    with ExitStack() as stack:
        folders = [stack.enter_context(atomic_path(artefacts.RAW[name], is_dir=True)) for name, _ in datasets]
        yield folders
        for folder, (name, role_of) in zip(folders, datasets):
            write_manifest(folder, artefacts.MANIFESTS[name], role_of)


def link_tree(source: Path, dest: Path, files: list[Path] | None = None) -> None:
    """Mirror `files` (default: every file under `source`) into `dest` with hard links (same file system:
    no extra disk), else copies.

    DVC then caches the files with its configured link type (see README, "Large datasets").
    """
    if files is None:
        files = sorted(p for p in source.rglob("*") if p.is_file())
    copied = 0
    for path in files:
        target = dest / path.relative_to(source)
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(path, target)
        except OSError:
            shutil.copy2(path, target)
            copied += 1
    if copied:
        log.warning("%d files were copied, not hard-linked (different file system from %s)", copied, source)
    warn_if_dvc_cache_doubles(source, sum(path.stat().st_size for path in files))


def dvc_cache_types() -> list[str] | None:
    """The link types DVC's cache may use here (its config: project, local, global, system), or None outside a
    DVC project or when DVC cannot read its config (DVC itself then says why, in the stage that records)."""
    if not DVC_DIR.is_dir():
        return None
    from dvc.config import Config, ConfigError

    try:
        types = Config(dvc_dir=str(DVC_DIR))["cache"].get("type") or ["reflink", "copy"]  # DVC's default
    except ConfigError as error:
        log.debug("not checking DVC's cache type: %s", error)
        return None
    return [types] if isinstance(types, str) else list(types)


def warn_if_dvc_cache_doubles(source: Path, total_bytes: int) -> None:
    """Say once, when DVC would copy `total_bytes` of a dataset into its cache, how to make it link instead."""
    if total_bytes < DOUBLING_WARNING_BYTES:
        return  # small copies (the synthetic runs) do not pay for importing DVC
    types = dvc_cache_types()
    if types is None or {"hardlink", "symlink"} & set(types):
        return
    log.warning("%s: DVC's cache (cache.type %s) will copy these %.2f GB, doubling them on disk unless the file "
                "system supports reflinks; to link instead, run once `dvc config cache.type %s` (README: \"Large "
                "datasets and DVC's cache\")", source, ",".join(types), total_bytes / 1e9, LINKING_CACHE)
