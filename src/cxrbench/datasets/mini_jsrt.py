"""Mini JSRT database: beginners' subsets derived from the 247 JSRT images, read straight from their zips.

Archives and what is read here (layouts as distributed; other archives are listed for reference):
    Segmentation01.zip    Segmentation01/{train,test}/{org,label}/<name>.png, binary lung label
    segmentation02.zip    segmentation02/segmentation/{org_train,org_test}/<name>.bmp with
                          {label_train,label_test}/<name>.png; label values 0 background, 85 heart,
                          170 outside-lung zone, 255 lung (class ids 0..3); 199 train / 48 test
    Gender01.zip          Gender01/{train,test}/<class>/<file>, female/male, 256 px
    Directions01.zip      Directions01/{train,test}/<class>/<file>, 4-way orientation, 128 px
    not read here: Practice_PNGandJPG.zip, Practice_DICOM.zip, XPAge01_RGB.zip, autoencoder_img.zip
Only the two segmentation archives have published sha256 digests (PUBLISHED_SHA256, verify_archive).
Classes of Gender01 and Directions01 come from the folder names; ids are assigned in sorted name order
(the convention of folder-per-class loaders), and both splits must have the same classes.
Licence: distributed by JSRT to registered users for research and education, like the full database:
register and download at http://db.jsrt.or.jp/eng.php. Citation: the JSRT paper (Shiraishi et al., AJR
2000;174:71-74), see `jsrt`.
"""

from __future__ import annotations

import re
import zipfile
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import NamedTuple

import numpy as np

from cxrbench.datasets import decode_grey8
from cxrbench.datasets.jsrt import REGISTRATION_URL
from cxrbench.errors import DataError
from cxrbench.fileio import sha256_file

PUBLISHED_SHA256 = {
    "Segmentation01.zip": "ab1f26a910bc18eae170928e9f2d98512cc4dc8949bf6cd38b98a93398714fcf",
    "segmentation02.zip": "f1432af4fcbd69342cf1bf2ca3d0d43b9535cdc6b160b86191b5b67de2fdbf3c",
}
SPLITS = ("train", "test")
SEGMENTATION02_LABEL_VALUES = (0, 85, 170, 255)
SEGMENTATION02_CLASSES = ("background", "heart", "outside lung", "lung")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")
GET_FILES = f"download the archive again from the mini JSRT database ({REGISTRATION_URL})"


class ClassifiedImage(NamedTuple):
    """One image of a folder-per-class archive: its split, class (name and id) and zip member name."""

    split: str
    class_name: str
    class_id: int
    member: str


def verify_archive(path: str | Path) -> str:
    """Check an archive against its published sha256 (looked up by file name, any capitalisation).

    Returns the digest; raises DataError on a mismatch, or when no digest is published for the name.
    """
    path = Path(path)
    published = {name.lower(): digest for name, digest in PUBLISHED_SHA256.items()}.get(path.name.lower())
    if published is None:
        raise DataError(
            path,
            f"no published sha256 for this archive name; published for: {', '.join(PUBLISHED_SHA256)}",
            "keep the archive's original file name; other mini-JSRT archives have no published digest",
        )
    if not path.is_file():
        raise DataError(path, "archive not found", GET_FILES)
    digest = sha256_file(path)
    if digest != published:
        raise DataError(path, f"sha256 {digest} differs from the published {published}", GET_FILES)
    return digest


def _open_zip(path: Path) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(path)
    except FileNotFoundError as error:
        raise DataError(path, "archive not found", GET_FILES) from error
    except zipfile.BadZipFile as error:
        raise DataError(path, f"not a readable zip archive: {error}", GET_FILES) from error


def _files(archive: zipfile.ZipFile) -> list[str]:
    """Member names of regular files, without macOS resource forks and hidden files."""
    return [
        name
        for name in archive.namelist()
        if not name.endswith("/") and not name.startswith("__MACOSX/") and not PurePosixPath(name).name.startswith(".")
    ]


def _natural_key(name: str) -> list:
    """Sort `2.png` before `10.png`: digit runs compare as numbers."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def _read_member(archive: zipfile.ZipFile, zip_path: Path, member: str) -> np.ndarray:
    try:
        data = archive.read(member)
    except zipfile.BadZipFile as error:
        raise DataError(zip_path / member, f"damaged zip member: {error}", GET_FILES) from error
    return decode_grey8(data, zip_path / member)


def _pairs(archive: zipfile.ZipFile, zip_path: Path, image_dir: str, label_dir: str) -> list[tuple[str, str]]:
    """(image member, label member) pairs matched by file stem, in natural order of the stem."""
    def by_stem(folder: str) -> dict[str, str]:
        return {
            PurePosixPath(name).stem: name
            for name in _files(archive)
            if PurePosixPath(name).parent == PurePosixPath(folder)
            and PurePosixPath(name).suffix.lower() in IMAGE_SUFFIXES
        }

    images, labels = by_stem(image_dir), by_stem(label_dir)
    if not images:
        raise DataError(zip_path, f"no images under {image_dir}/ (expected the documented archive layout)", GET_FILES)
    if unpaired := sorted(set(images) ^ set(labels), key=_natural_key):
        raise DataError(
            zip_path,
            f"{len(unpaired)} images in {image_dir}/ and labels in {label_dir}/ lack a partner: {', '.join(unpaired)}",
            GET_FILES,
        )
    return [(images[stem], labels[stem]) for stem in sorted(images, key=_natural_key)]


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, not {split!r}")


def _segmentation(
    path: str | Path, image_dir: str, label_dir: str, to_classes
) -> Iterator[tuple[str, np.ndarray, np.ndarray]]:
    zip_path = Path(path)
    with _open_zip(zip_path) as archive:
        for image_member, label_member in _pairs(archive, zip_path, image_dir, label_dir):
            image = _read_member(archive, zip_path, image_member)
            label = _read_member(archive, zip_path, label_member)
            if label.shape != image.shape:
                raise DataError(
                    zip_path / label_member,
                    f"label is {label.shape[1]} x {label.shape[0]}, its image {image.shape[1]} x {image.shape[0]}",
                    GET_FILES,
                )
            yield PurePosixPath(image_member).stem, image, to_classes(label, zip_path / label_member)


def _binary_lung(label: np.ndarray, where: Path) -> np.ndarray:
    values = np.unique(label)
    if values.size > 2 or (values.size == 2 and values[0] != 0):
        found = values.tolist()
        raise DataError(where, f"expected a binary label (0 and one other value), found values {found}", GET_FILES)
    return (label > 0).astype(np.uint8)


def _four_classes(label: np.ndarray, where: Path) -> np.ndarray:
    lookup = np.full(256, 255, dtype=np.uint8)  # 255 marks a value outside the documented four
    lookup[list(SEGMENTATION02_LABEL_VALUES)] = np.arange(len(SEGMENTATION02_LABEL_VALUES), dtype=np.uint8)
    classes = lookup[label]
    if (classes == 255).any():
        unexpected = np.unique(label[classes == 255]).tolist()
        raise DataError(where, f"label values {unexpected} are not among {SEGMENTATION02_LABEL_VALUES}", GET_FILES)
    return classes


def iter_segmentation01(path: str | Path, split: str) -> Iterator[tuple[str, np.ndarray, np.ndarray]]:
    """(name, image uint8 (H, W), label uint8 0 background / 1 lung) for each pair of a Segmentation01 split."""
    _check_split(split)
    return _segmentation(path, f"Segmentation01/{split}/org", f"Segmentation01/{split}/label", _binary_lung)


def iter_segmentation02(path: str | Path, split: str) -> Iterator[tuple[str, np.ndarray, np.ndarray]]:
    """(name, image uint8 (H, W), class ids uint8 0..3 in SEGMENTATION02_CLASSES order) per segmentation02 pair."""
    _check_split(split)
    root = "segmentation02/segmentation"
    return _segmentation(path, f"{root}/org_{split}", f"{root}/label_{split}", _four_classes)


def _list_classified(path: str | Path, root: str) -> list[ClassifiedImage]:
    zip_path = Path(path)
    with _open_zip(zip_path) as archive:
        members = _files(archive)
    layout = re.compile(rf"{re.escape(root)}/({'|'.join(SPLITS)})/([^/]+)/([^/]+)")
    found = [
        (match[1], match[2], name)
        for name in members
        if (match := layout.fullmatch(name)) and PurePosixPath(name).suffix.lower() in IMAGE_SUFFIXES
    ]
    classes = {split: sorted({cls for s, cls, _ in found if s == split}) for split in SPLITS}
    if not found or classes["train"] != classes["test"]:
        raise DataError(
            zip_path,
            f"expected {root}/{{train,test}}/<class>/<image> with the same classes in both splits; "
            f"found classes {classes}",
            GET_FILES,
        )
    class_ids = {name: index for index, name in enumerate(classes["train"])}
    entries = [ClassifiedImage(split, cls, class_ids[cls], name) for split, cls, name in found]
    return sorted(entries, key=lambda e: (SPLITS.index(e.split), e.class_id, _natural_key(e.member)))


def list_gender01(path: str | Path) -> list[ClassifiedImage]:
    """Every image of Gender01.zip with its split and class (folder name, e.g. female/male)."""
    return _list_classified(path, "Gender01")


def list_directions01(path: str | Path) -> list[ClassifiedImage]:
    """Every image of Directions01.zip with its split and orientation class (folder name)."""
    return _list_classified(path, "Directions01")


def iter_classified(path: str | Path, entries: list[ClassifiedImage]) -> Iterator[tuple[np.ndarray, int]]:
    """(image uint8 (H, W), class id) for each listed entry, read from the zip in the given order."""
    zip_path = Path(path)
    with _open_zip(zip_path) as archive:
        for entry in entries:
            yield _read_member(archive, zip_path, entry.member), entry.class_id
