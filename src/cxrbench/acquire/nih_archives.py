"""The twelve official NIH ChestX-ray14 image archives and the metadata files, as data.

Each archive unpacks into `images/` (112,120 PNGs in all). Links point at the NIH Box site; the
official batch script (`batch_download_zips.py`) saves them as `images_01.tar.gz` .. `images_12.tar.gz`,
while the NIH site names them `images_001.tar.gz` .. `images_012.tar.gz`; both names are accepted
for copies a user already has.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cxrbench.errors import DataError

NIH_BOX_PREFIX = "https://nihcc.box.com/shared/static/"
# The metadata files have no direct link; a person downloads them from this folder page.
NIH_BOX_FOLDER = "https://nihcc.app.box.com/v/ChestXray-NIHCC"


@dataclass(frozen=True)
class NihArchive:
    """One image archive: its number (1..12), Box link suffix, size in bytes and md5."""

    number: int
    url_suffix: str
    size: int
    md5: str

    @property
    def file_name(self) -> str:
        """The NIH site's name, e.g. `images_001.tar.gz`."""
        return f"images_{self.number:03d}.tar.gz"

    @property
    def batch_script_name(self) -> str:
        """The name the official batch script saves it under, e.g. `images_01.tar.gz`."""
        return f"images_{self.number:02d}.tar.gz"

    def url(self, base_url: str | None = None) -> str:
        """Where to fetch it: the Box link, or the same suffix under a mirror's `base_url`."""
        return join_url(base_url or NIH_BOX_PREFIX, self.url_suffix)


# Sizes and md5s as published by a third party (a mirror's listing); NIH publishes no checksums
# and we have not verified these against a download. A mismatch means either a bad download or a
# wrong published value: the error message says so.
ARCHIVES: tuple[NihArchive, ...] = (
    NihArchive(1, "vfk49d74nhbxq3nqjg0900w5nvkorp5c.gz", 2008470987, "fe8ed0a6961412fddcbb3603c11b3698"),
    NihArchive(2, "i28rlmbvmfjbl8p2n3ril0pptcmcu9d1.gz", 3952623504, "ab07a2d7cbe6f65ddd97b4ed7bde10bf"),
    NihArchive(3, "f1t00wrtdk94satdfb9olcolqx20z2jp.gz", 3929234850, "2301d03bde4c246388bad3876965d574"),
    NihArchive(4, "0aowwzs5lhjrceb3qp67ahp0rd1l1etg.gz", 3838903983, "9f1b7f5aae01b13f4bc8e2c44a4b8ef6"),
    NihArchive(5, "v5e3goj22zr6h8tzualxfsqlqaygfbsn.gz", 3935496531, "1861f3cd0ef7734df8104f2b0309023b"),
    NihArchive(6, "asi7ikud9jwnkrnkj99jnpfkjdes7l6l.gz", 3986301172, "456b53a8b351afd92a35bc41444c58c8"),
    NihArchive(7, "jn1b4mw4n6lnh74ovmcjb8y48h8xj07n.gz", 4016328426, "1075121ea20a137b87f290d6a4a5965e"),
    NihArchive(8, "tvpxmn7qyrgl0w8wfh9kqfjskv6nmm1j.gz", 4018347353, "b61f34cec3aa69f295fbb593cbd9d443"),
    NihArchive(9, "upyy3ml7qdumlgk2rfcvlb9k6gvqq2pj.gz", 4111327929, "442a3caa61ae9b64e61c561294d1e183"),
    NihArchive(10, "l6nilvfa9cg3s28tqv1qc1olm3gnz54p.gz", 4181556296, "09ec81c4c31e32858ad8cf965c494b74"),
    NihArchive(11, "hhq8fkdgvcari67vfhs7ppg2w6ni4jze.gz", 4187084020, "499aefc67207a5a97692424cf5dbeed5"),
    NihArchive(12, "ioqwiy20ihqwyr8pf4c24eazhh281pbu.gz", 2914187733, "dc9fda1757c2de0032b63347a7d2895c"),
)

# Metadata files as named in the NIH Box folder (the 2020 revision of the image table).
DATA_ENTRY_FILE = "Data_Entry_2017_v2020.csv"
BBOX_FILE = "BBox_List_2017.csv"
TRAIN_VAL_LIST_FILE = "train_val_list.txt"
TEST_LIST_FILE = "test_list.txt"
METADATA_FILES: tuple[str, ...] = (DATA_ENTRY_FILE, BBOX_FILE, TRAIN_VAL_LIST_FILE, TEST_LIST_FILE)


def join_url(base_url: str, name: str) -> str:
    return base_url.rstrip("/") + "/" + name


def archive_by_number(number: int) -> NihArchive:
    """The official archive with this number (1..12)."""
    for archive in ARCHIVES:
        if archive.number == number:
            return archive
    raise DataError(
        None,
        f"there is no NIH image archive number {number!r}: expected a number from 1 to 12",
        fix="select archives by their number 1..12 (images_001.tar.gz is 1)",
    )


def find_local_copy(folder: str | Path, archive: NihArchive) -> Path | None:
    """An existing copy of `archive` in `folder` under either accepted name (NIH name first), else None."""
    for name in (archive.file_name, archive.batch_script_name):
        candidate = Path(folder) / name
        if candidate.is_file():
            return candidate
    return None
