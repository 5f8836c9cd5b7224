"""Time the training input pipeline: batches from the decoded store against a per-sample PNG-decoding loader.

Store path (what cxrbench trains from): the uint8 (n, 224, 224) store that `decode_images` writes, memory-mapped
with `store.open_array`, read in `shuffled_batches` (sorted fancy indexing) and turned into standardised
(B, 1, 224, 224) float tensors by `to_input` on the CPU, for batch sizes 16, 32 and 64; `store_img_s` is the
slowest of the three. Baseline (what torchxrayvision and most reproductions do): a torch Dataset that reads
one 1024 px PNG per item (`nih.read_png`), resizes it to 224 px with the decode stage's own resampling
(`decode_nih.resample`: OpenCV area averaging after a halving, faster than the common `cv2.resize`) and
standardises it, through a shuffling DataLoader with 2 worker processes, one epoch timed
from the loader's start. Same images, page cache warm for both, and both must give identical tensors.

    ratio = store img/s / PNG-loader img/s

The public API (`cxrbench.data.NIHClassification`, shuffled batches of 32) is timed beside them on the same store:
through `batch_loader` (`api_img_s`, `api_ratio` against the PNG loader), and through a plain DataLoader of
items in the main process (`api_items_img_s`: the store needs no decoding workers) and with 2 workers
(`api_w2_img_s`: the float batches then travel between processes), gives the same tensors, and has its own memory runs
(`api_private_growth`).

Memory: one run reads an epoch from a store of m rows and one from a store of 4m rows, each in a fresh
interpreter; a control run loads the larger store into memory first (`np.load` without mmap, i.e. a copy).
Peak memory is sampled every 5 ms (resident vs private: see `_common.PeakMemory`): the memory-mapped store's
pages are page cache and show in the resident figure as they are read; what must stay flat is the private
memory, which the control shows would grow by the whole store if the loader copied it.

    python benchmarks/loader.py                 # 400 PNGs; memory: stores of 2,000 and 8,000 rows
    python benchmarks/loader.py --quick         # 96 PNGs; memory: stores of 500 and 2,000 rows
    python benchmarks/loader.py --png-dir DIR   # real PNGs from DIR, repeated, instead of synthetic ones

The last line is `RESULT loader ratio=... store_img_s=... png_img_s=... rss_small_mb=... rss_large_mb=... ...`.
"""

from __future__ import annotations

import argparse
import functools
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from _common import (
    PeakMemory,
    describe_memory,
    machine_load,
    median,
    memory_figures,
    report_figures,
    result_line,
    run_fresh,
    seconds,
    write_test_pngs,
)
from torch.utils.data import DataLoader, Dataset

from cxrbench import artefacts, store
from cxrbench.data import NIHClassification, batch_loader
from cxrbench.datasets import nih
from cxrbench.stages.decode_nih import decode_images, resample
from cxrbench.training import intensity_stats, shuffled_batches, to_input

MAX_VALUE = 255.0
BATCH_SIZES = (16, 32, 64)
PNG_BATCH_SIZE = 32
PNG_LOADER_WORKERS = 2
MEMORY_BATCH_SIZE = 32
CPU = torch.device("cpu")


class PngDataset(Dataset):
    """The per-sample loader: decode a 1024 px PNG, resize, standardise, one item at a time."""

    def __init__(self, paths: list[Path], size: int, mean: float, std: float):
        self.paths, self.size, self.mean, self.std = paths, size, mean, std

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, item: int) -> torch.Tensor:
        pixels = resample(nih.read_png(self.paths[item]), self.size)
        return (torch.from_numpy(pixels).float().unsqueeze(0) / MAX_VALUE - self.mean) / self.std


def store_epoch(images: np.ndarray, batch_size: int, rng: np.random.Generator, mean: float, std: float) -> int:
    """Read one shuffled epoch from the store the way training does; return the images delivered."""
    return sum(
        len(to_input(images[rows], MAX_VALUE, mean, std, CPU))
        for rows in shuffled_batches(np.arange(len(images)), batch_size, rng)
    )


def store_rate(images: np.ndarray, batch_size: int, min_seconds: float, seed: int, mean: float, std: float) -> float:
    """Images per second over whole epochs, repeated until at least `min_seconds` have passed."""
    rng = np.random.default_rng(seed)
    delivered, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < min_seconds:
        delivered += store_epoch(images, batch_size, rng, mean, std)
    return delivered / elapsed


def api_epoch(dataset: NIHClassification, seed: int, workers: int = 0, batched: bool = False) -> int:
    generator = torch.Generator().manual_seed(seed)
    loader = (batch_loader(dataset, PNG_BATCH_SIZE, shuffle=True, generator=generator, num_workers=workers) if batched
              else DataLoader(dataset, batch_size=PNG_BATCH_SIZE, shuffle=True, num_workers=workers,
                              generator=generator))
    return sum(len(images) for images, _ in loader)


def api_rate(dataset: NIHClassification, workers: int, min_seconds: float, seed: int, batched: bool = False) -> float:
    """Images per second over whole epochs (workers started for each, as a plain DataLoader does)."""
    delivered, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < min_seconds:
        delivered += api_epoch(dataset, seed, workers, batched)
    return delivered / elapsed


def as_run(store_file: Path, root: Path) -> Path:
    """A run folder around a store: its index (every image one patient, no findings) and a split putting every
    image in train, so that cxrbench.data reads it as it reads a finished run."""
    rows, size = store.open_array(store_file).shape[:2]
    store_dir = root / artefacts.STORE_NIH
    store_dir.mkdir(parents=True, exist_ok=True)
    store.images_path(store_dir, size).symlink_to(store_file)
    names = [f"{row:08d}_000.png" for row in range(rows)]
    index = pd.DataFrame({"image": names, "patient": np.arange(rows), "view": "PA", **dict.fromkeys(nih.LABELS, 0),
                          "ok": 1, "row": np.arange(rows)})
    store.write_index(store_dir, index)
    (root / artefacts.SPLIT_NIH).parent.mkdir(parents=True, exist_ok=True)
    index.assign(part="train")[["image", "patient", "part"]].to_csv(root / artefacts.SPLIT_NIH, index=False)
    return root


def png_epoch(dataset: PngDataset, seed: int) -> int:
    loader = DataLoader(dataset, batch_size=PNG_BATCH_SIZE, shuffle=True, num_workers=PNG_LOADER_WORKERS,
                        generator=torch.Generator().manual_seed(seed))
    return sum(len(batch) for batch in loader)


def write_tiled_store(path: Path, images: np.ndarray, rows: int) -> None:
    """A store of `rows` rows cycling through `images` (contents do not change reading cost), written in chunks."""
    tiled = store.create(path, (rows, *images.shape[1:]), np.uint8)
    for start in range(0, rows, len(images)):
        stop = min(start + len(images), rows)
        tiled[start:stop] = images[: stop - start]
    tiled.flush()


def memory_run(store_file: Path, copy: bool, seed: int, mean: float, std: float, api: Path | None = None) -> None:
    """In a fresh interpreter: read an epoch from the store (memory-mapped, or a copy; or through the public
    API's Dataset of the run folder `api`, in-process) and report peak memory."""
    with PeakMemory() as peak:
        if api is not None:
            api_epoch(NIHClassification(api, normalisation=(mean, std)), seed, workers=0)
        else:
            images = np.load(store_file) if copy else store.open_array(store_file)
            store_epoch(images, MEMORY_BATCH_SIZE, np.random.default_rng(seed), mean, std)
    report_figures({"rss_mb": peak.rss_mb, "private_mb": peak.private_mb})


def build_store(paths: list[Path], size: int, directory: Path) -> Path:
    """The store the decode stage writes for these PNGs."""
    store_file = store.images_path(directory, size)
    out = store.create(store_file, (len(paths), size, size), np.uint8)
    if decode_images(paths, size, os.cpu_count(), out):
        raise SystemExit("FAILED: the decode stage rejected some test images")
    out.flush()
    return store_file


def time_loaders(
    images: np.ndarray, dataset: PngDataset, rounds: int, min_seconds: float, seed: int
) -> tuple[float, dict[int, float]]:
    """Interleaved rounds of a PNG-loader epoch and store epochs at each batch size; medians in img/s."""
    png_s: list[float] = []
    store_rates: dict[int, list[float]] = {batch_size: [] for batch_size in BATCH_SIZES}
    for round_number in range(rounds):
        png_s.append(seconds(functools.partial(png_epoch, dataset, seed + round_number)))
        for batch_size, rates in store_rates.items():
            rates.append(store_rate(images, batch_size, min_seconds, seed + round_number, dataset.mean, dataset.std))
        print(f"round {round_number + 1}: PNG loader {len(dataset) / png_s[-1]:.1f} img/s; store "
              + ", ".join(f"batch {b} {rates[-1]:,.0f} img/s" for b, rates in store_rates.items()), flush=True)
    return len(dataset) / median(png_s), {batch_size: median(rates) for batch_size, rates in store_rates.items()}


def measure_memory(
    source: np.ndarray, rows_small: int, directory: Path, seed: int, mean: float, std: float
) -> tuple[dict[str, float | bool], float, dict[str, float | bool]]:
    """Memory figures for stores of `rows_small` and 4x as many rows, the private peak of the copying control,
    and the public API's memory figures on the same two stores."""
    small_file, large_file = directory / "small.npy", directory / "large.npy"
    write_tiled_store(small_file, source, rows_small)
    write_tiled_store(large_file, source, 4 * rows_small)
    script = Path(__file__).resolve()
    common = ["--seed", str(seed), "--mean", repr(mean), "--std", repr(std)]
    small = run_fresh(script, ["--memory-run", str(small_file), *common])
    large = run_fresh(script, ["--memory-run", str(large_file), *common])
    copied = run_fresh(script, ["--memory-run", str(large_file), "--copy", *common])
    api_runs = [run_fresh(script, ["--memory-run", str(f), "--api", str(as_run(f, directory / f"run_{f.stem}")), *common])
                for f in (small_file, large_file)]
    return memory_figures(small, large), copied["private_mb"], memory_figures(*api_runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="96 PNGs, one round, smaller stores for memory")
    parser.add_argument("--images", type=int, help="PNGs read by both loaders (default 400; 96 with --quick)")
    parser.add_argument("--store-rows", type=int,
                        help="rows of the smaller memory-run store (default 2,000; 500 with --quick); larger: 4x")
    parser.add_argument("--rounds", type=int, help="interleaved timing rounds (default 3; 1 with --quick)")
    parser.add_argument("--size", type=int, default=224, help="training resolution")
    parser.add_argument("--png-dir", type=Path, help="use the PNGs in this folder, repeated, not synthetic ones")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--memory-run", type=Path, metavar="STORE", help=argparse.SUPPRESS)
    parser.add_argument("--copy", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--api", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--mean", type=float, help=argparse.SUPPRESS)
    parser.add_argument("--std", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_run:
        memory_run(args.memory_run, args.copy, args.seed, args.mean, args.std, args.api)
        return

    n_images = args.images or (96 if args.quick else 400)
    rows_small = args.store_rows or (500 if args.quick else 2_000)
    with tempfile.TemporaryDirectory(prefix="cxrbench-loader-") as tmp:
        paths = write_test_pngs(Path(tmp) / "png", n_images, args.seed, args.png_dir)
        store_file = build_store(paths, args.size, Path(tmp))
        images = store.open_array(store_file)
        mean, std = intensity_stats(images, np.arange(n_images), MAX_VALUE)
        dataset = PngDataset(paths, args.size, mean, std)
        api_dataset = NIHClassification(as_run(store_file, Path(tmp) / "run"), normalisation=(mean, std))
        probe = np.arange(4)
        from_store = to_input(images[probe], MAX_VALUE, mean, std, CPU)
        if not torch.equal(torch.stack([dataset[i] for i in probe]), from_store):
            raise SystemExit("FAILED: the PNG loader and the store path give different input tensors")
        if not torch.equal(torch.stack([api_dataset[i][0] for i in probe]), from_store):
            raise SystemExit("FAILED: cxrbench.data and the store path give different input tensors")
        print(f"data: {n_images} PNGs ({'from ' + str(args.png_dir) if args.png_dir else 'synthetic'}) and their "
              f"{args.size} px store; both loaders give identical input tensors", flush=True)

        rounds = args.rounds or (1 if args.quick else 3)
        png_img_s, store_by_batch = time_loaders(images, dataset, rounds, 0.3 if args.quick else 1.5, args.seed)
        store_img_s = min(store_by_batch.values())
        load = machine_load()
        print(f"PNG loader {png_img_s:.1f} img/s; store {store_img_s:,.0f} img/s at its slowest batch size: "
              f"x{store_img_s / png_img_s:,.0f}; machine load {load:.1f} on {os.cpu_count()} cores", flush=True)
        min_seconds = 0.5 if args.quick else 2.0
        api_img_s = median([api_rate(api_dataset, 0, min_seconds, args.seed + r, batched=True) for r in range(rounds)])
        api_items_img_s = median([api_rate(api_dataset, 0, min_seconds, args.seed + r) for r in range(rounds)])
        api_w2_img_s = median([api_rate(api_dataset, PNG_LOADER_WORKERS, min_seconds, args.seed + r)
                               for r in range(rounds)])
        print(f"cxrbench.data (batch {PNG_BATCH_SIZE}): batch_loader {api_img_s:,.0f} img/s, "
              f"x{api_img_s / png_img_s:,.0f} the PNG loader; a plain DataLoader of items {api_items_img_s:,.0f} img/s "
              f"in the main process, {api_w2_img_s:,.0f} img/s with {PNG_LOADER_WORKERS} workers", flush=True)
        memory, copy_private_mb, api_memory = measure_memory(images, rows_small, Path(tmp), args.seed, mean, std)
        del images
    print(f"peak memory over an epoch ({rows_small * 4 * args.size**2 / 2**20:.0f} MiB larger store): "
          + describe_memory(memory, f"{rows_small} rows", f"{4 * rows_small} rows")
          + f"; a loader that copied the larger store: {copy_private_mb:.0f} MiB private", flush=True)
    print("cxrbench.data over the same stores: " + describe_memory(api_memory, f"{rows_small} rows",
                                                                  f"{4 * rows_small} rows"), flush=True)
    print(result_line("loader", store_img_s / png_img_s, {
        "store_img_s": store_img_s,
        "png_img_s": png_img_s,
        **{f"store_b{batch_size}_img_s": rate for batch_size, rate in store_by_batch.items()},
        "load": load,
        "cores": os.cpu_count(),
        **memory,
        "copy_private_large_mb": copy_private_mb,
        "api_img_s": api_img_s,
        "api_ratio": api_img_s / png_img_s,
        "api_items_img_s": api_items_img_s,
        "api_w2_img_s": api_w2_img_s,
        "api_private_growth": api_memory["private_growth"],
        "api_flat": api_memory["flat"],
        "store_rows_small": rows_small,
        "store_rows_large": 4 * rows_small,
        "images": n_images,
    }))


if __name__ == "__main__":
    main()
