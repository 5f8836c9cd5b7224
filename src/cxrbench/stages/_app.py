"""Every stage is a Hydra app over the committed params.yaml in the working directory.

`python -m cxrbench.stages.<name> key=value ...` composes params.yaml plus the overrides (Hydra's grammar; an
unknown key is refused), validates the result against the schema, and runs the stage. No Hydra output folder
is created and the working directory is not changed. Each stage logs to stderr and to logs/<name>.log.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any, Callable

from cxrbench import config
from cxrbench.errors import DataError

LOG_DIR = Path("logs")
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
        _configure_logging(name)
        log = logging.getLogger(f"cxrbench.{name}")
        params = OmegaConf.to_container(cfg, resolve=True)
        try:
            config.validate(params, "params.yaml" + (f" with overrides {overrides}" if overrides else ""))
            log.info("stage %s started%s", name, f" (overrides: {' '.join(overrides)})" if overrides else "")
            body(params)
        except DataError as err:
            log.error("%s", err)
            sys.exit(2)
        log.info("stage %s finished", name)

    _main()
