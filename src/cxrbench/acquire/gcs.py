"""NIH ChestX-ray14 PNGs from Google's copy, the Requester Pays bucket gs://gcs-public-data--healthcare-nih-chest-xray.

The bucket holds `png/<image name>.png` (the NIH PNGs) and Google-made `dicom/`; it has no metadata or split
lists, so those come from the NIH Box folder as for `source=download` without a mirror, and the image names to
copy are read from Data_Entry. Requester Pays: Google bills the download to the user's Google Cloud project
(`source.billing_project`, else the environment's GOOGLE_CLOUD_PROJECT), with the credentials gcsfs finds
(`gcloud auth application-default login`). gcsfs is an optional extra (`pip install 'cxrbench[gcs]'`).

The copying is written against the fsspec filesystem interface, so any fsspec filesystem serves (tests use
`memory://`). Files arrive as `<name>.part` and are renamed when complete: an image under its final name is
whole, and a rerun copies only what is missing.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from tqdm import tqdm

from cxrbench.acquire.nih_archives import METADATA_FILES, NIH_BOX_FOLDER
from cxrbench.datasets import nih
from cxrbench.errors import DataError

log = logging.getLogger(__name__)
NIH_BUCKET = "gcs-public-data--healthcare-nih-chest-xray"
PNG_PREFIX = "png"
BATCH = 256  # images per fsspec `get` call: gcsfs fetches a batch concurrently


def billing_project(configured: str | None) -> str:
    """The Google Cloud project billed for the download: the configured one, else $GOOGLE_CLOUD_PROJECT."""
    project = configured or os.environ.get("GOOGLE_CLOUD_PROJECT")
    if not project:
        raise DataError(
            None,
            f"gs://{NIH_BUCKET} is Requester Pays: downloads are billed to your Google Cloud project, and none is set",
            fix="set source.billing_project=<project id> or the environment variable GOOGLE_CLOUD_PROJECT "
            "(a project with billing enabled; it pays the egress, roughly 45 GB)",
        )
    return project


def open_bucket(project: str) -> Any:
    """A gcsfs filesystem that bills `project` (imported only here: gcsfs is an optional extra)."""
    try:
        import gcsfs
    except ImportError as error:
        raise DataError(
            None,
            "source=gcs reads Google's bucket through the gcsfs package, which is not installed",
            fix="pip install 'cxrbench[gcs]'",
        ) from error
    return gcsfs.GCSFileSystem(project=project, requester_pays=True)


def copy_images(fs: Any, bucket: str, names: list[str], folder: Path, *, progress: bool = True) -> None:
    """Copy `<bucket>/png/<name>` from the fsspec filesystem `fs` into `folder/images/<name>` for every name
    not yet there; DataError listing the objects the bucket lacks (the others are still copied)."""
    images = folder / nih.IMAGES_DIR
    images.mkdir(parents=True, exist_ok=True)
    wanted = [name for name in names if not (images / name).is_file()]
    log.info("copying %d of %d images from %s (%d already present)", len(wanted), len(names), bucket,
             len(names) - len(wanted))
    absent: list[str] = []
    with tqdm(total=len(wanted), unit="img", desc="gcs", disable=not progress) as bar:
        for start in range(0, len(wanted), BATCH):
            batch = wanted[start:start + BATCH]
            remote = [f"{bucket}/{PNG_PREFIX}/{name}" for name in batch]
            parts = [str(images / f"{name}.part") for name in batch]
            try:
                fs.get(remote, parts)
            except FileNotFoundError:  # name the missing ones; fetch the rest of this batch file by file
                for source, part in zip(remote, parts):
                    if fs.exists(source):
                        fs.get_file(source, part)
                    else:
                        absent.append(source)
            for name, part in zip(batch, parts):
                if Path(part).is_file():
                    os.replace(part, images / name)
            bar.update(len(batch))
    if absent:
        raise DataError(
            None,
            f"{len(absent)} images listed in Data_Entry are not in the bucket {bucket}: {', '.join(absent[:10])}",
            fix="check source.bucket; if the bucket lacks them, get these images from the NIH archives (source=download)",
        )


def fetch_nih_png(folder: Path, *, bucket: str, project: str | None, progress: bool = True) -> None:
    """The images listed in `folder`'s Data_Entry, copied from the bucket into `folder/images/`."""
    entry = nih.find_data_entry(folder)
    if entry is None:
        raise DataError(
            folder,
            f"no {' or '.join(nih.DATA_ENTRY_NAMES)}: the bucket holds only images, the metadata come from NIH",
            fix=f"download {', '.join(METADATA_FILES)} from {NIH_BOX_FOLDER} into {folder}",
        )
    names = list(nih.read_data_entry(entry)["image"])
    copy_images(open_bucket(billing_project(project)), bucket, names, folder, progress=progress)
