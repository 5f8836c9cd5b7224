"""`python -m cxrbench.record_stage <stage>`: record a stage that just ran in dvc.lock, as `dvc repro` would.

Snakemake appends this to every stage's command, so after a `snakemake` run `dvc status` is clean and
`dvc repro` recomputes nothing. Parallel Snakemake jobs take turns on a file lock because DVC holds one
repository lock. Outputs are not relinked, so their bytes and timestamps stay as the stage wrote them.
"""

from __future__ import annotations

import fcntl
import logging
import sys
from pathlib import Path


def record(stage: str, repo_root: Path = Path(".")) -> None:
    from dvc.repo import Repo

    lock_path = repo_root / ".dvc" / "tmp" / "cxrbench-record.lock"
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        with Repo(str(repo_root)) as repo:
            repo.commit(stage, force=True, relink=False)
    logging.getLogger(__name__).info("recorded stage %s in dvc.lock", stage)


def main() -> None:
    if len(sys.argv) != 2:
        sys.exit("usage: python -m cxrbench.record_stage <dvc stage name>")
    record(sys.argv[1])


if __name__ == "__main__":
    main()
