"""Every stage is a Hydra app over the committed params.yaml in the working directory.

`python -m cxrbench.stages.<name> key=value ...` composes params.yaml plus the overrides (Hydra's grammar; an
unknown key is refused), validates the result against the schema, and runs the stage. No Hydra output folder
is created and the working directory is not changed. Each stage logs to stderr and to logs/<name>.log.

A stage that fails on bad input (DataError) or on a file (an OSError naming it: a full disk, a directory it may
not write, a read-only mount) logs one message naming the file, the problem and what to do, and exits non-zero
(2 and 3). Outputs are written with `fileio.atomic_path`, so such a failure leaves the earlier outputs as
they were.
"""

from __future__ import annotations

import errno
import logging
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cxrbench import config, matrix
from cxrbench.errors import DataError

LOG_DIR = Path("logs")
EXIT_BAD_INPUT, EXIT_FILE_SYSTEM = 2, 3
_HYDRA_QUIET = ["hydra.run.dir=.", "hydra.output_subdir=null", "hydra/job_logging=none", "hydra/hydra_logging=none"]


def _configure_logging(name: str) -> None:
    LOG_DIR.mkdir(exist_ok=True)
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    root = logging.getLogger()
    root.handlers.clear()
    root.setLevel(logging.INFO)
    for handler in (logging.StreamHandler(sys.stderr), logging.FileHandler(LOG_DIR / f"{name}.log", mode="w")):
        handler.setFormatter(fmt)
        root.addHandler(handler)


def run_stage(name: str, body: Callable[[dict[str, Any]], None]) -> None:
    """Compose params.yaml + command-line overrides with Hydra and run `body(params)`."""
    import hydra
    from omegaconf import OmegaConf

    overrides = sys.argv[1:]
    sys.argv = [sys.argv[0], "--config-path", str(Path.cwd()), "--config-name", "params", *_HYDRA_QUIET, *overrides]

    @hydra.main(config_path=None, config_name=None, version_base="1.3")
    def _main(cfg) -> None:
        # a cell of a benchmark matrix logs as its stage is named (cxrbench.matrix.Cell.stage); the nodule models'
        # stage runs the cells of two matrices, named by instance.task
        if "instance" in cfg:
            template = f"benchmark_{cfg.instance.task}" if "task" in cfg.instance else name
            _configure_logging(matrix.stage_name(template, cfg.instance.model, cfg.instance.seed))
        else:
            _configure_logging(name)
        log = logging.getLogger(f"cxrbench.{name}")
        params = OmegaConf.to_container(cfg, resolve=True)
        try:
            config.validate(params, "params.yaml" + (f" with overrides {overrides}" if overrides else ""))
            config.require_composed(params)
            log.info("stage %s started%s", name, f" (overrides: {' '.join(overrides)})" if overrides else "")
            body(params)
        except DataError as err:
            log.error("%s", err)
            sys.exit(EXIT_BAD_INPUT)
        except OSError as err:
            if err.filename is None:  # not about a file (a network error, say): the traceback says more
                raise
            log.error("%s", explain_os_error(err))
            sys.exit(EXIT_FILE_SYSTEM)
        log.info("stage %s finished", name)

    _main()


def explain_os_error(err: OSError) -> DataError:
    """The file, the problem and what to do for an OSError on a file (the shape of a DataError)."""
    path = Path(err.filename)
    folder = _nearest_existing_folder(path)
    kept = "; the earlier outputs were left as they were"
    if err.errno in (errno.ENOSPC, errno.EDQUOT):
        free_mb = shutil.disk_usage(folder).free / 2**20
        return DataError(path, f"the disk is full (or a quota is reached): {err.strerror}",
                         f"free space on the file system holding {folder} ({free_mb:.1f} MiB free now) or point "
                         f"that folder to a larger disk (a symlink), then run the stage again{kept}")
    if err.errno in (errno.EACCES, errno.EPERM):
        return DataError(path, f"this user may not write or read it: {err.strerror}",
                         f"make {folder} writable by this user (`ls -ld {folder}`: chmod or chown; `lsattr -d "
                         f"{folder}`: chattr -i), then run the stage again{kept}")
    if err.errno == errno.EROFS:
        return DataError(path, f"the file system is mounted read-only: {err.strerror}",
                         f"remount the file system holding {folder} read-write, or run the workflow in a "
                         f"writable copy of the project{kept}")
    if err.errno == errno.ENOENT:
        return DataError(path, f"missing: {err.strerror}",
                         "run the stages before this one first (`snakemake --cores N` or `dvc repro`), or fix "
                         "the path in the configuration")
    return DataError(path, f"{type(err).__name__}: {err.strerror or err}",
                     f"check the file and the disk holding {folder} (`dmesg` shows I/O errors), then run the "
                     f"stage again{kept}")


def _nearest_existing_folder(path: Path) -> Path:
    folder = path.parent
    while not folder.is_dir() and folder != folder.parent:
        folder = folder.parent
    return folder
