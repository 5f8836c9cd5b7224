"""Stage acquire_jsrt_scr: the JSRT radiographs with their clinical metadata, and the SCR masks.

source.kind=synthetic writes phantoms in the exact JSRT/SCR formats; every other kind verifies the user's
registered copies (both datasets forbid redistribution, so they are never downloaded) and links them in.
Writes data/raw/{jsrt,scr} and data/manifests/{jsrt,scr}.csv.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from cxrbench.manifest import role_by_suffix
from cxrbench.stages._app import run_stage
from cxrbench.stages._local import acquire_pair, link_tree

log = logging.getLogger(__name__)
JSRT_ROLES = role_by_suffix({".img": "image", ".dcm": "image"})
SCR_ROLES = role_by_suffix({".gif": "mask", ".pfs": "landmarks"})


def acquire(params: dict[str, Any]) -> None:
    source = params["source"]
    with acquire_pair(("jsrt", JSRT_ROLES), ("scr", SCR_ROLES)) as (jsrt_dir, scr_dir):
        if source["kind"] == "synthetic":
            from cxrbench.synthetic.jsrt_scr import write_jsrt_scr

            scale = params["synthetic"]["jsrt"]
            log.info("writing synthetic JSRT/SCR: %d nodule + %d normal cases", scale["n_nodule"], scale["n_normal"])
            write_jsrt_scr(jsrt_dir, scr_dir, n_nodule=scale["n_nodule"], n_normal=scale["n_normal"], seed=params["seed"])
        else:
            from cxrbench.datasets import jsrt, scr

            jsrt.require_tree(Path(source["jsrt"]))
            scr.require_tree(Path(source["scr"]), jsrt.CASES)
            link_tree(Path(source["jsrt"]), jsrt_dir)
            link_tree(Path(source["scr"]), scr_dir)


def main() -> None:
    run_stage("acquire_jsrt_scr", acquire)


if __name__ == "__main__":
    main()
