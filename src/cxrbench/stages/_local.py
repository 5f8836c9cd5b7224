"""Bringing a user's verified copy into data/raw without doubling disk use."""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

log = logging.getLogger(__name__)


def link_tree(source: Path, dest: Path) -> None:
    """Mirror `source` into `dest` with hard links (same file system: no extra disk), else copies.

    DVC then caches the files with its configured link type (see README, "Large datasets").
    """
    copied = 0
    for path in sorted(p for p in source.rglob("*") if p.is_file()):
        target = dest / path.relative_to(source)
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(path, target)
        except OSError:
            shutil.copy2(path, target)
            copied += 1
    if copied:
        log.warning("%d files were copied, not hard-linked (different file system from %s)", copied, source)
