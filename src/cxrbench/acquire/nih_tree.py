"""One complete NIH ChestX-ray14 folder (metadata files + `images/`) from whichever form the user has.

The acquire_nih stage links such a folder into data/raw/nih. It is built, and kept between runs, in the folder
named by `source.nih`:

- `local`: the user's copy, either already unpacked (`images/*.png`) or as the image archives as downloaded;
  archives are md5-checked against the archive table and unpacked next to themselves into `images/` (as the
  NIH README says), once: a later run finds each archive's verification marker and extraction record and only
  checks sizes.
- `download`: the same after `fetch_nih` has downloaded the archives into that folder (verified, resumable).
- `gcs`: the PNGs copied from Google's Requester Pays bucket into `images/` (see `cxrbench.acquire.gcs`).

The metadata files are in none of the archives nor the bucket: they come from the NIH Box folder by hand, or a
mirror's `base_url` (`fetch_nih`).
"""

from __future__ import annotations

import csv
import logging
from pathlib import Path

from cxrbench.acquire.extract import safe_extract
from cxrbench.acquire.nih_archives import ARCHIVES, NihArchive, find_local_copy
from cxrbench.datasets import nih
from cxrbench.errors import DataError

log = logging.getLogger(__name__)
ARCHIVE_TABLE_COLUMNS = ["number", "url_suffix", "size", "md5"]


def archive_table(path: str | Path | None) -> tuple[NihArchive, ...]:
    """The official twelve archives (path None), or a mirror's own repacked archives listed in a CSV file
    with the columns number,url_suffix,size,md5."""
    if path is None:
        return ARCHIVES
    path = Path(path)
    fix = f"write {path.name} as CSV with the header {','.join(ARCHIVE_TABLE_COLUMNS)}, one archive per row"
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
    except OSError as error:
        raise DataError(path, f"archive table not readable ({error.strerror})", fix) from error
    try:
        table = tuple(NihArchive(int(r["number"]), r["url_suffix"], int(r["size"]), r["md5"].lower()) for r in rows)
    except (KeyError, TypeError, ValueError) as error:
        raise DataError(path, f"not an archive table ({type(error).__name__}: {error})", fix) from error
    if not table:
        raise DataError(path, "the archive table lists no archives", fix)
    return table


def select_archives(table: tuple[NihArchive, ...], numbers: list[int] | None) -> list[NihArchive]:
    """The archives of `table` with these numbers (all when None); DataError naming the numbers it lacks."""
    if numbers is None:
        return list(table)
    by_number = {archive.number: archive for archive in table}
    if unknown := sorted(set(numbers) - set(by_number)):
        raise DataError(
            None,
            f"source.archives asks for archive(s) {unknown}, which the archive table does not list "
            f"(it has {sorted(by_number)})",
            fix="choose archive numbers from that list, or null for all of them",
        )
    return [by_number[number] for number in numbers]


def unpack_archives(folder: Path, archives: list[Path]) -> list[str]:
    """Unpack `archives` safely into `folder` (giving `folder/images/`); return the image names they hold."""
    names: list[str] = []
    for archive in archives:
        log.info("unpacking %s into %s", archive.name, folder / nih.IMAGES_DIR)
        names += [Path(member).name for member in safe_extract(archive, folder) if member.endswith(".png")]
    return names


def local_archives(folder: Path, table: tuple[NihArchive, ...]) -> list[NihArchive]:
    """The archives of `table` present in `folder`, under the NIH or the batch script's name."""
    return [archive for archive in table if find_local_copy(folder, archive) is not None]


def tree_files(folder: Path, images: list[str] | None = None) -> list[Path]:
    """The files of an NIH copy that go into data/raw/nih: metadata files and images/*.png, or only `images` of
    them (not the archives, download markers, images of archives not selected now or anything else kept there)."""
    metadata = [folder / name for name in (*nih.DATA_ENTRY_NAMES, nih.BBOX_NAME, nih.TRAIN_VAL_LIST, nih.TEST_LIST)]
    image_dir = folder / nih.IMAGES_DIR
    pngs = sorted(image_dir.glob("*.png")) if images is None else [image_dir / name for name in sorted(images)]
    return [path for path in metadata if path.is_file()] + pngs
