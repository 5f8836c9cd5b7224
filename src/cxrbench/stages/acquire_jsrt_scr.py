"""Stage acquire_jsrt_scr: the JSRT radiographs with their clinical metadata, and the SCR masks.

source.kind=synthetic writes phantoms in the exact JSRT/SCR formats; source.kind=local verifies the user's
registered copies (both datasets forbid redistribution, so they are never downloaded) and links them in.
Writes data/raw/{jsrt,scr} and data/manifests/{jsrt,scr}.csv.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from cxrbench.fileio import atomic_path
from cxrbench.manifest import role_by_suffix, write_manifest
from cxrbench.stages._app import run_stage
from cxrbench.stages._local import link_tree

log = logging.getLogger(__name__)
RAW = Path("data/raw")
MANIFESTS = Path("data/manifests")
JSRT_ROLES = role_by_suffix({".img": "image", ".dcm": "image"})
SCR_ROLES = role_by_suffix({".gif": "mask", ".pfs": "landmarks"})


def acquire(params: dict[str, Any]) -> None:
    source = params["source"]
    with atomic_path(RAW / "jsrt", is_dir=True) as jsrt_dir, atomic_path(RAW / "scr", is_dir=True) as scr_dir:
        if source["kind"] == "synthetic":
            from cxrbench.synthetic import write_jsrt_scr

            scale = params["synthetic"]["jsrt"]
            log.info("writing synthetic JSRT/SCR: %d nodule + %d normal cases", scale["n_nodule"], scale["n_normal"])
            write_jsrt_scr(jsrt_dir, scr_dir, n_nodule=scale["n_nodule"], n_normal=scale["n_normal"], seed=params["seed"])
        else:
            from cxrbench.datasets import jsrt, scr

            jsrt.require_tree(Path(source["jsrt"]))
            scr.require_tree(Path(source["scr"]), jsrt.CASES)
            link_tree(Path(source["jsrt"]), jsrt_dir)
            link_tree(Path(source["scr"]), scr_dir)
        write_manifest(jsrt_dir, MANIFESTS / "jsrt.csv", JSRT_ROLES)
        write_manifest(scr_dir, MANIFESTS / "scr.csv", SCR_ROLES)


def main() -> None:
    run_stage("acquire_jsrt_scr", acquire)


if __name__ == "__main__":
    main()
