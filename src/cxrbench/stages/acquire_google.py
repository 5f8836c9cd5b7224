"""Stage acquire_google: Google's expert labels for NIH ChestX-ray14 images (optional: `datasets` lists google).

source.kind=synthetic writes both label sets in their published formats for images of the synthetic NIH copy
(data/raw/nih); every other kind verifies the user's local copy of the files and links it in: Google releases
them through a form, not a download link, whatever the NIH source. Writes data/raw/google and
data/manifests/google.csv.
"""

from __future__ import annotations

import logging
from typing import Any

from cxrbench import artefacts
from cxrbench.datasets import google_labels
from cxrbench.manifest import role_by_suffix
from cxrbench.stages._app import run_stage
from cxrbench.stages._local import acquire_pair, link_tree

log = logging.getLogger(__name__)
NIH_RAW = artefacts.RAW["nih"]
GOOGLE_ROLES = role_by_suffix({".csv": "labels"}, default="documentation")


def acquire(params: dict[str, Any]) -> None:
    source = params["source"]
    with acquire_pair(("google", GOOGLE_ROLES)) as (google_dir,):
        if source["kind"] == "synthetic":
            from cxrbench.synthetic.google_labels import write_google_labels

            log.info("writing synthetic Google labels for images of %s", NIH_RAW)
            write_google_labels(google_dir, NIH_RAW, seed=params["seed"], **params["synthetic"]["google"])
        else:
            link_tree(google_labels.require_tree(source["google"]), google_dir)


def main() -> None:
    run_stage("acquire_google", acquire)


if __name__ == "__main__":
    main()
