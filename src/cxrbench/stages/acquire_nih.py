"""Stage acquire_nih: NIH ChestX-ray14 (images, Data_Entry, BBox_List, split lists) and Google's expert labels.

source.kind=synthetic writes phantoms in the exact published formats; source.kind=local verifies a user's
copy (NIH images are public domain and may also be downloaded with `cxrbench download nih`).
Writes data/raw/{nih,google} and data/manifests/{nih,google}.csv.
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
NIH_ROLES = role_by_suffix({".png": "image", ".txt": "split_list"})
GOOGLE_ROLES = role_by_suffix({".csv": "labels"}, default="documentation")


def acquire(params: dict[str, Any]) -> None:
    source = params["source"]
    with atomic_path(RAW / "nih", is_dir=True) as nih_dir, atomic_path(RAW / "google", is_dir=True) as google_dir:
        if source["kind"] == "synthetic":
            from cxrbench.synthetic import write_google_labels, write_nih

            scale = params["synthetic"]
            log.info("writing synthetic NIH: %d patients", scale["nih"]["n_patients"])
            write_nih(nih_dir, seed=params["seed"], **scale["nih"])
            write_google_labels(google_dir, nih_dir, seed=params["seed"], **scale["google"])
        else:
            from cxrbench.datasets import nih

            nih.require_tree(Path(source["nih"]))
            link_tree(Path(source["nih"]), nih_dir)
            link_tree(Path(source["google"]), google_dir)
        write_manifest(nih_dir, MANIFESTS / "nih.csv", NIH_ROLES)
        write_manifest(google_dir, MANIFESTS / "google.csv", GOOGLE_ROLES)


def main() -> None:
    run_stage("acquire_nih", acquire)


if __name__ == "__main__":
    main()
