"""Stage decode_jsrt: JSRT images (raw or DICOM) -> inverted, resampled uint16 store; SCR masks -> aligned label store.

Writes data/store/jsrt/ with images_<S>.npy (n, S, S) uint16 in display convention (4095 - raw, 12-bit),
masks_<S>.npy (n, S, S) uint8 with bit i = scr.OBJECTS[i], and index.csv (one row per case: JSRT metadata
plus SCR fold). Both grids cover the same field of view (2048 px at 0.175 mm; 1024 px at 0.35 mm), so area
resampling to S x S aligns them.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from tqdm import tqdm

from cxrbench import store
from cxrbench.datasets import jsrt, scr
from cxrbench.fileio import atomic_path
from cxrbench.stages._app import run_stage

log = logging.getLogger(__name__)
RAW = Path("data/raw")
STORE = Path("data/store/jsrt")


def resample_image(display: np.ndarray, size: int) -> np.ndarray:
    return cv2.resize(display, (size, size), interpolation=cv2.INTER_AREA)


def resample_masks(masks: np.ndarray, size: int) -> np.ndarray:
    """(k, 1024, 1024) bool -> (k, S, S) bool: area-average then majority, so boundaries stay centred."""
    fractions = [cv2.resize(m.astype(np.float32), (size, size), interpolation=cv2.INTER_AREA) for m in masks]
    return np.stack(fractions) >= 0.5


def decode(params: dict[str, Any]) -> None:
    size = params["decode"]["jsrt"]["size"]
    metadata = jsrt.read_metadata(RAW / "jsrt")
    cases = metadata["case"].tolist()
    files = jsrt.find_images(RAW / "jsrt")  # raw .IMG or the DICOM distribution, any folder depth
    log.info("decoding %d JSRT cases and their SCR masks to %d px", len(cases), size)
    with atomic_path(STORE, is_dir=True) as out:
        images = store.create(store.images_path(out, size), (len(cases), size, size), np.uint16)
        masks = store.create(store.masks_path(out, size), (len(cases), size, size), np.uint8)
        for row, case in enumerate(tqdm(cases, desc="decode_jsrt", unit="case")):
            images[row] = resample_image(jsrt.read_image(files[case]), size)
            masks[row] = store.pack_masks(resample_masks(scr.read_case_masks(RAW / "scr", case), size))
        images.flush()
        masks.flush()
        del images, masks
        index = metadata.assign(fold=[scr.fold_of(c) for c in cases], row=np.arange(len(cases)))
        store.write_index(out, index)


def main() -> None:
    run_stage("decode_jsrt", decode)


if __name__ == "__main__":
    main()
