"""Stage decode_jsrt: JSRT images (raw or DICOM) -> inverted, resampled uint16 store; SCR masks -> aligned label store.

Writes data/store/jsrt/ with images_<S>.npy (n, S, S) uint16 in display convention (4095 - raw, 12-bit),
masks_<S>.npy (n, S, S) uint8 with bit i = scr.OBJECTS[i] (what the networks learn from),
reference_masks_1024.npy (the same at the masks' own 1024 px: what segmentations are scored against, as the SCR
benchmark scores them), observer2_masks_1024.npy (the second observer's, when the SCR copy has them: the human
observer the benchmark compares with), nodule_rois_<R>.npy (n, R, R) uint16 and index.csv (one row per case:
JSRT metadata plus SCR fold). Both grids cover the same field of view (2048 px at 0.175 mm; 1024 px at 0.35 mm),
so area resampling to S x S aligns them.

Nodule regions of interest: the malignancy classifier needs the nodule's margin and texture, which the
whole-image store loses (at 128 px a 20 mm nodule is 7 pixels). So each nodule gets an R x R crop of the
full-resolution image centred on its metadata coordinates, covering about decode.jsrt.nodule_roi.field_mm
(an integer number f of JSRT pixels per ROI pixel, so the averaging is exact: the field is R * f * 0.175 mm),
mirrored at the image border. Rows of cases without a nodule stay zero.
"""

from __future__ import annotations

import logging
from typing import Any

import cv2
import numpy as np
from tqdm import tqdm

from cxrbench import artefacts, store
from cxrbench.datasets import jsrt, scr
from cxrbench.fileio import atomic_path
from cxrbench.stages._app import run_stage
from cxrbench.vocabulary import SCR_MASK_SIZE

log = logging.getLogger(__name__)
STORE = artefacts.STORE_JSRT


def resample_image(display: np.ndarray, size: int) -> np.ndarray:
    return cv2.resize(display, (size, size), interpolation=cv2.INTER_AREA)


def resample_masks(masks: np.ndarray, size: int) -> np.ndarray:
    """(k, 1024, 1024) bool -> (k, S, S) bool: area-average then majority, so boundaries stay centred."""
    fractions = [cv2.resize(m.astype(np.float32), (size, size), interpolation=cv2.INTER_AREA) for m in masks]
    return np.stack(fractions) >= 0.5


def roi_factor(roi_size: int, field_mm: float) -> int:
    """JSRT pixels per ROI pixel: the integer nearest to a field of `field_mm` over `roi_size` pixels."""
    return max(1, round(field_mm / jsrt.PIXEL_MM / roi_size))


def nodule_roi(display: np.ndarray, x: float, y: float, roi_size: int, factor: int) -> np.ndarray:
    """The (roi_size, roi_size) area average of the roi_size * factor square of `display` centred on JSRT pixel
    (x, y), mirrored beyond the image border."""
    side = roi_size * factor
    top, left = int(round(y)) - side // 2, int(round(x)) - side // 2
    margin = side  # enough for any centre inside the image
    padded = cv2.copyMakeBorder(display, margin, margin, margin, margin, cv2.BORDER_REFLECT_101)
    crop = padded[top + margin : top + margin + side, left + margin : left + margin + side]
    means = crop.reshape(roi_size, factor, roi_size, factor).mean(axis=(1, 3))
    return np.rint(means).astype(display.dtype)


def decode(params: dict[str, Any]) -> None:
    size = params["decode"]["jsrt"]["size"]
    roi_cfg = params["decode"]["jsrt"]["nodule_roi"]
    factor = roi_factor(roi_cfg["size"], roi_cfg["field_mm"])
    metadata = jsrt.read_metadata(artefacts.RAW["jsrt"])
    cases = metadata["case"].tolist()
    files = jsrt.find_images(artefacts.RAW["jsrt"])  # raw .IMG or the DICOM distribution, any folder depth
    log.info("decoding %d JSRT cases and their SCR masks to %d px; nodule ROIs of %d px covering %.1f mm",
             len(cases), size, roi_cfg["size"], roi_cfg["size"] * factor * jsrt.PIXEL_MM)
    with atomic_path(STORE, is_dir=True) as out:
        images = store.create(store.images_path(out, size), (len(cases), size, size), np.uint16)
        masks = store.create(store.masks_path(out, size), (len(cases), size, size), np.uint8)
        reference = store.create(store.reference_masks_path(out, SCR_MASK_SIZE),
                                 (len(cases), SCR_MASK_SIZE, SCR_MASK_SIZE), np.uint8)
        observer2_root = scr.observer2_root(artefacts.RAW["scr"])
        log.info("second observer's masks: %s", observer2_root or "none in this SCR copy")
        observer2 = None if observer2_root is None else store.create(
            store.observer2_masks_path(out, SCR_MASK_SIZE), (len(cases), SCR_MASK_SIZE, SCR_MASK_SIZE), np.uint8)
        rois = store.create(store.nodule_rois_path(out, roi_cfg["size"]), (len(cases), roi_cfg["size"],
                                                                            roi_cfg["size"]), np.uint16)
        for row, record in enumerate(tqdm(metadata.itertuples(), total=len(cases), desc="decode_jsrt", unit="case")):
            display = jsrt.read_image(files[record.case])
            images[row] = resample_image(display, size)
            case_masks = scr.read_case_masks(artefacts.RAW["scr"], record.case)
            masks[row] = store.pack_masks(resample_masks(case_masks, size))
            reference[row] = store.pack_masks(case_masks)
            if observer2 is not None:
                observer2[row] = store.pack_masks(scr.read_case_masks(observer2_root, record.case))
            rois[row] = nodule_roi(display, record.x, record.y, roi_cfg["size"], factor) if record.nodule else 0
        for array in (images, masks, reference, observer2, rois):
            if array is not None:
                array.flush()
        del images, masks, reference, observer2, rois, array
        index = metadata.assign(fold=[scr.fold_of(c) for c in cases], row=np.arange(len(cases)))
        store.write_index(out, index)


def main() -> None:
    run_stage("decode_jsrt", decode)


if __name__ == "__main__":
    main()
