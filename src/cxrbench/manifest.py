"""Per-dataset manifests (file, bytes, sha256, role) written by the acquire stages: what went in."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd

from cxrbench.fileio import atomic_path, sha256_file


def write_manifest(root: Path, out_csv: Path, role_of: Callable[[Path], str]) -> pd.DataFrame:
    files = sorted(p for p in Path(root).rglob("*") if p.is_file())
    table = pd.DataFrame(
        {
            "file": [p.relative_to(root).as_posix() for p in files],
            "bytes": [p.stat().st_size for p in files],
            "sha256": [sha256_file(p) for p in files],
            "role": [role_of(p) for p in files],
        }
    )
    with atomic_path(out_csv) as tmp:
        table.to_csv(tmp, index=False, lineterminator="\n")
    return table


def role_by_suffix(roles: dict[str, str], default: str = "metadata") -> Callable[[Path], str]:
    return lambda path: roles.get(path.suffix.lower(), default)
