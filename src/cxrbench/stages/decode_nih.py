"""Stage decode_nih: NIH PNGs -> one uint8 (n, S, S) store + index, decoded once, in parallel, streamed.

Workers decode and resample (PNG decompression is the bottleneck, ~10 ms per 1024 px image per core); the
parent writes each finished image straight into the memory-mapped array, in index order, so memory stays flat
however many images there are. A truncated or non-PNG file fails the stage naming every bad file
(decode.nih.on_bad_image=fail) or is listed in quarantine.csv and left black with ok=0 in the index
(=quarantine), which the splits then leave out.
"""

from __future__ import annotations

import logging
import multiprocessing
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pandas as pd
from tqdm import tqdm

from cxrbench import store
from cxrbench.datasets import nih
from cxrbench.errors import DataError
from cxrbench.fileio import atomic_path
from cxrbench.stages._app import run_stage

log = logging.getLogger(__name__)
RAW = Path("data/raw/nih")
STORE = Path("data/store/nih")
METADATA = "Data_Entry_2017_v2020.csv"


def decode_one(job: tuple[str, int]) -> tuple[np.ndarray | None, str]:
    path, size = job
    try:
        pixels = nih.read_png(path)
    except DataError as err:
        return None, str(err)
    return cv2.resize(pixels, (size, size), interpolation=cv2.INTER_AREA), ""


def decode_images(paths: list[Path], size: int, workers: int, out: np.ndarray) -> list[tuple[str, str]]:
    """Decode `paths` into `out` row by row; return (file, problem) for every image that failed."""
    jobs = [(str(p), size) for p in paths]
    bad: list[tuple[str, str]] = []
    context = multiprocessing.get_context("forkserver")
    with context.Pool(workers) as pool:
        results = pool.imap(decode_one, jobs, chunksize=16)
        for row, (pixels, problem) in enumerate(tqdm(results, total=len(jobs), desc="decode_nih", unit="img")):
            if pixels is None:
                bad.append((paths[row].name, problem))
                out[row] = 0
            else:
                out[row] = pixels
    return bad


def decode(params: dict[str, Any]) -> None:
    cfg = params["decode"]["nih"]
    entries = nih.read_data_entry(RAW / METADATA).sort_values("image", ignore_index=True)
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
