"""Stage decode_nih: NIH PNGs -> one uint8 (n, S, S) store + index, decoded once, in parallel, streamed.

Workers decode, resample and write each image straight into its row of the memory-mapped array (PNG
decompression is the bottleneck, ~15 ms per 1024 px image per core here); only row numbers and problems travel
back to the parent, and memory stays flat however many images there are. A truncated or non-PNG file fails
the stage naming every bad file (decode.nih.on_bad_image=fail) or is listed in quarantine.csv and left black
with ok=0 in the index (=quarantine), which the splits then leave out. When source.archives took a subset of
the archives, only the images of those are decoded (acquire_nih lists them); otherwise every image in the
metadata must be there.
"""

from __future__ import annotations

import functools
import logging
import multiprocessing
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pandas as pd
from tqdm import tqdm

from cxrbench import artefacts, store
from cxrbench.datasets import nih
from cxrbench.errors import DataError
from cxrbench.fileio import atomic_path
from cxrbench.stages._app import run_stage

log = logging.getLogger(__name__)
RAW = artefacts.RAW["nih"]
STORE = artefacts.STORE_NIH
METADATA = "Data_Entry_2017_v2020.csv"


def resample(pixels: np.ndarray, size: int) -> np.ndarray:
    """Image -> size x size by area averaging. OpenCV's area resampling is fast for an integer factor
    (1024 -> 64 px: 0.5 ms) but costs 2.9 ms for 1024 -> 224 px, a fifth of the PNG decode. For a
    non-integer factor, first halve by exact 2 x 2 box means while the image stays at least twice the
    target (what Pillow's `reducing_gap=2` does), then area-resample: 1.0 ms. That differs from a direct
    area resampling only along sharp edges, where an output pixel's border splits a halved pixel."""
    height, width = pixels.shape
    exact_factor = height % size == 0 and width % size == 0
    while not exact_factor and height % 2 == width % 2 == 0 and min(height, width) // 2 >= 2 * size:
        height, width = height // 2, width // 2
        pixels = cv2.resize(pixels, (width, height), interpolation=cv2.INTER_AREA)
    return cv2.resize(pixels, (size, size), interpolation=cv2.INTER_AREA)


def decode_one(job: tuple[str, int]) -> tuple[np.ndarray | None, str]:
    path, size = job
    try:
        pixels = nih.read_png(path)
    except DataError as err:
        return None, str(err)
    return resample(pixels, size), ""


@functools.cache
def _writable_store(path: str) -> np.ndarray:
    """A worker's read-write map of the store being filled, opened on its first image (not in a pool
    initializer: a failing initializer makes the pool restart workers for ever, a failing task raises)."""
    return np.load(path, mmap_mode="r+")


def decode_into_store(job: tuple[str, int, str, int]) -> tuple[int, str]:
    """In a worker: decode one image into its store row (black if it cannot be decoded); (row, problem)."""
    store_path, row, path, size = job
    pixels, problem = decode_one((path, size))
    _writable_store(store_path)[row] = 0 if pixels is None else pixels
    return row, problem


def decode_images(paths: list[Path], size: int, workers: int, out: np.memmap) -> list[tuple[str, str]]:
    """Decode `paths` into the rows of the memory-mapped .npy `out` (shared with the workers through the page
    cache, never pickled); return (file, problem) for every image that failed, in row order."""
    out.flush()  # its header and any earlier writes, before the workers map the file
    jobs = [(str(out.filename), row, str(path), size) for row, path in enumerate(paths)]
    problems: dict[int, str] = {}
    with multiprocessing.get_context("forkserver").Pool(workers) as pool:
        results = pool.imap_unordered(decode_into_store, jobs, chunksize=16)
        for row, problem in tqdm(results, total=len(jobs), desc="decode_nih", unit="img"):
            if problem:
                problems[row] = problem
    return [(paths[row].name, problems[row]) for row in sorted(problems)]


def decode(params: dict[str, Any]) -> None:
    cfg = params["decode"]["nih"]
    entries = nih.read_data_entry(RAW / METADATA)
    in_copy = nih.in_archive_subset(entries["image"], RAW, f"images listed in {METADATA}")
    entries = entries[in_copy].sort_values("image", ignore_index=True)
    labels = pd.DataFrame(nih.label_matrix(entries), columns=list(nih.LABELS))
    paths = [RAW / "images" / name for name in entries["image"]]
    missing = [p.name for p in paths if not p.is_file()]
    if missing:
        raise DataError(
            RAW / "images",
            f"{len(missing)} images listed in {METADATA} are missing, e.g. {', '.join(missing[:5])}",
            "rerun the acquire_nih stage or complete your copy of the images",
        )
    log.info("decoding %d NIH images to %d px with %d workers", len(paths), cfg["size"], cfg["workers"])
    with atomic_path(STORE, is_dir=True) as out:
        images = store.create(store.images_path(out, cfg["size"]), (len(paths), cfg["size"], cfg["size"]), np.uint8)
        bad = decode_images(paths, cfg["size"], cfg["workers"], images)
        images.flush()
        del images
        if bad and cfg["on_bad_image"] == "fail":
            listing = "\n".join(f"  {name}: {problem}" for name, problem in bad)
            raise DataError(
                RAW / "images",
                f"{len(bad)} images could not be decoded:\n{listing}",
                "replace these files (fetch their archive again), or set decode.nih.on_bad_image=quarantine",
            )
        quarantined = pd.DataFrame(bad, columns=["image", "problem"])
        quarantined.to_csv(out / "quarantine.csv", index=False, lineterminator="\n")
        if bad:
            log.warning("quarantined %d undecodable images (listed in %s)", len(bad), STORE / "quarantine.csv")
        columns = ["image", "patient", "follow_up", "age_years", "sex", "view"]
        ok = ~entries["image"].isin(quarantined["image"])
        index = pd.concat([entries[columns], labels], axis=1).assign(ok=ok.astype(int), row=np.arange(len(entries)))
        store.write_index(out, index)


def main() -> None:
    run_stage("decode_nih", decode)


if __name__ == "__main__":
    main()
