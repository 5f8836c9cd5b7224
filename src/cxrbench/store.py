"""The decoded-image store: one .npy array per dataset and resolution plus an index table.

Training and evaluation memory-map the array and read batches of rows; no PNG or raw file is opened after
decoding. Arrays are written through `np.lib.format.open_memmap` row by row, so decoding streams (memory stays
flat as the dataset grows) and the bytes depend only on the pixels.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

INDEX = "index.csv"


def images_path(store_dir: str | Path, size: int) -> Path:
    return Path(store_dir) / f"images_{size}.npy"


def masks_path(store_dir: str | Path, size: int) -> Path:
    return Path(store_dir) / f"masks_{size}.npy"


def nodule_rois_path(store_dir: str | Path, size: int) -> Path:
    return Path(store_dir) / f"nodule_rois_{size}.npy"


def reference_masks_path(store_dir: str | Path, size: int) -> Path:
    """The SCR masks at their own size (1024 px), packed as masks_<S>.npy: what segmentations are scored against."""
    return Path(store_dir) / f"reference_masks_{size}.npy"


def observer2_masks_path(store_dir: str | Path, size: int) -> Path:
    """SCR's second observer's masks at 1024 px, packed, when the copy has them: the human-observer row."""
    return Path(store_dir) / f"observer2_masks_{size}.npy"


def _single(store_dir: str | Path, prefix: str) -> Path:
    """A store directory holds one resolution; find its array without the caller knowing the size."""
    found = sorted(Path(store_dir).glob(f"{prefix}_*.npy"))
    if len(found) != 1:
        raise FileNotFoundError(f"{store_dir}: expected exactly one {prefix}_<size>.npy, found {len(found)}")
    return found[0]


def find_images(store_dir: str | Path) -> Path:
    return _single(store_dir, "images")


def find_masks(store_dir: str | Path) -> Path:
    return _single(store_dir, "masks")


def find_nodule_rois(store_dir: str | Path) -> Path:
    return _single(store_dir, "nodule_rois")


def find_reference_masks(store_dir: str | Path) -> Path:
    return _single(store_dir, "reference_masks")


def find_observer2_masks(store_dir: str | Path) -> Path | None:
    """The second observer's masks, or None when the SCR copy had no second observer."""
    return _single(store_dir, "observer2_masks") if any(Path(store_dir).glob("observer2_masks_*.npy")) else None


def create(path: str | Path, shape: tuple[int, ...], dtype) -> np.memmap:
    """A new .npy array memory-mapped for writing, its disk blocks reserved up front.

    open_memmap makes a sparse file; writing rows into it on a full disk kills the writer with SIGBUS, with no
    message. Reserving the space first turns that into an OSError (ENOSPC) here, before any decoding.
    """
    array = np.lib.format.open_memmap(path, mode="w+", dtype=dtype, shape=shape)
    with open(path, "r+b") as handle:
        os.posix_fallocate(handle.fileno(), 0, os.fstat(handle.fileno()).st_size)
    return array


def open_array(path: str | Path) -> np.ndarray:
    """Read-only memory map: worker processes and batches share the page cache, never a copy."""
    return np.load(path, mmap_mode="r")


def write_index(store_dir: str | Path, index: pd.DataFrame) -> None:
    index.to_csv(Path(store_dir) / INDEX, index=False, lineterminator="\n")


def read_index(store_dir: str | Path) -> pd.DataFrame:
    return pd.read_csv(Path(store_dir) / INDEX)


def pack_masks(masks: np.ndarray) -> np.ndarray:
    """(..., k, H, W) bool with k <= 8 objects -> (..., H, W) uint8, bit i set where object i is present."""
    weights = (1 << np.arange(masks.shape[-3], dtype=np.uint8)).reshape(-1, 1, 1)
    return (masks.astype(np.uint8) * weights).sum(axis=-3, dtype=np.uint8)


def unpack_masks(packed: np.ndarray, k: int) -> np.ndarray:
    """(..., H, W) uint8 -> (..., k, H, W) bool; inverse of pack_masks."""
    bits = (1 << np.arange(k, dtype=np.uint8)).reshape(-1, 1, 1)
    return (packed[..., None, :, :] & bits) > 0
