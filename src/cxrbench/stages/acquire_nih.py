"""Stage acquire_nih: NIH ChestX-ray14 (images, Data_Entry, BBox_List, split lists).

source.kind=synthetic writes phantoms in the exact published formats. The other kinds make `source.nih` a
complete NIH folder (see cxrbench.acquire.nih_tree), verify it and hard-link it in: `local` takes the user's copy
(unpacked images/ or the archives as downloaded), `download` fetches the archives first (verified, resumable,
kept so a rerun fetches nothing), `gcs` copies the PNGs from Google's Requester Pays bucket. Google's expert
labels are a stage of their own (acquire_google), so NIH runs without them.
With `download` and `source.archives` set, data/raw/nih holds the metadata and the images of those archives only,
listed in nih.ARCHIVE_SUBSET, so that decode_nih and the later stages take just them.
Writes data/raw/nih and data/manifests/nih.csv.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from cxrbench.datasets import nih
from cxrbench.manifest import role_by_suffix
from cxrbench.stages._app import run_stage
from cxrbench.stages._local import acquire_pair, link_tree

log = logging.getLogger(__name__)
NIH_ROLES = role_by_suffix({".png": "image", ".txt": "split_list"})


def prepare_nih(source: dict[str, Any]) -> tuple[Path, list[str] | None]:
    """Fetch and unpack what `source` asks for into the folder `source.nih` and verify it; return the folder and
    the images of the archives `source.archives` selects (None: the whole release)."""
    folder = Path(source["nih"])
    if source["kind"] == "gcs":
        from cxrbench.acquire.gcs import fetch_nih_png

        fetch_nih_png(folder, bucket=source["bucket"], project=source["billing_project"])
        nih.require_tree(folder)
        return folder, None

    from cxrbench.acquire import nih_tree
    from cxrbench.acquire.download import fetch_archives, fetch_nih

    table = nih_tree.archive_table(source["archive_table"])
    if source["kind"] == "download":
        selected = nih_tree.select_archives(table, source["archives"])
        archives = fetch_nih(folder, archives=selected, base_url=source["base_url"])[: len(selected)]
    else:  # local: the archives the user has are checked against the table (once: see download.py), not fetched
        archives = fetch_archives(folder, nih_tree.local_archives(folder, table), None, progress=True)
    unpacked = nih_tree.unpack_archives(folder, archives)
    if source["kind"] == "local" or source["archives"] is None:
        nih.require_tree(folder)  # every image of the split lists
        return folder, None
    log.warning("source.archives selects %d archive(s): only their %d images are checked, decoded, split and "
                "evaluated (results not comparable with the whole release's)", len(archives), len(unpacked))
    nih.require_tree(folder, unpacked)
    return folder, unpacked


def acquire(params: dict[str, Any]) -> None:
    source = params["source"]
    with acquire_pair(("nih", NIH_ROLES)) as (nih_dir,):
        if source["kind"] == "synthetic":
            from cxrbench.synthetic.nih import write_nih

            log.info("writing synthetic NIH: %d patients", params["synthetic"]["nih"]["n_patients"])
            write_nih(nih_dir, seed=params["seed"], **params["synthetic"]["nih"])
        else:
            from cxrbench.acquire.nih_tree import tree_files
            from cxrbench.datasets import google_labels

            if "google" in params["datasets"]:  # acquire_google runs next: a wrong path fails before hours of download
                google_labels.require_tree(source["google"])
            folder, subset = prepare_nih(source)
            link_tree(folder, nih_dir, tree_files(folder, subset))
            if subset is not None:
                nih.write_archive_subset(nih_dir, subset)


def main() -> None:
    run_stage("acquire_nih", acquire)


if __name__ == "__main__":
    main()
