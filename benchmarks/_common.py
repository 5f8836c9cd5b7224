"""What the speed benchmarks share: NIH-like test PNGs, timing, peak memory of a process tree, the RESULT line.

Every benchmark ends with exactly one line `RESULT <name> ratio=<x> key=value ...` (the project standard);
`result_line` builds it so the format is the same everywhere. Memory is measured in a fresh interpreter per
run (`run_fresh`), so one run's peak never leaks into the next.
"""

from __future__ import annotations

import json
import math
import os
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import cv2
import numpy as np
import psutil

from cxrbench.errors import DataError
from cxrbench.fileio import write_bytes

MIB = 1 << 20
IMAGE_SIDE = 1024  # NIH ChestX-ray14 PNGs are 1024 x 1024, 8-bit
DISTINCT_IMAGES = 32  # synthetic images generated; more files repeat their bytes (decoding cost is the same)
FLAT_LIMIT = 1.2  # a run over 4x the data may use at most this much more memory to count as flat
FIGURES_MARKER = "FIGURES "
# Real NIH files are filtered mostly with Paeth (and Average) rows; OpenCV's default (Sub) decodes about 35 %
# faster and would make every decoding figure look better than it is on the real data.
PNG_PARAMS = [cv2.IMWRITE_PNG_FILTER, cv2.IMWRITE_PNG_FILTER_PAETH]


def synthetic_radiograph(rng: np.random.Generator) -> np.ndarray:
    """A 1024 px uint8 greyscale image that compresses and decodes like an NIH PNG (~430 KiB, Paeth rows):
    a smooth background, blurred blobs for the anatomy and fine grain like a digitised film."""
    coarse = rng.normal(size=(16, 16)).astype(np.float32)
    image = 110 + 25 * cv2.resize(coarse, (IMAGE_SIDE, IMAGE_SIDE), interpolation=cv2.INTER_CUBIC)
    blobs = np.zeros_like(image)
    for _ in range(6):
        centre = tuple(int(v) for v in rng.integers(100, IMAGE_SIDE - 100, size=2))
        axes = tuple(int(v) for v in rng.integers(40, 300, size=2))
        cv2.ellipse(blobs, centre, axes, float(rng.uniform(0, 180)), 0, 360, float(rng.uniform(-60, 60)), -1)
    image += cv2.GaussianBlur(blobs, (0, 0), 4)
    image += rng.normal(scale=1.5, size=image.shape).astype(np.float32)
    return np.clip(image, 0, 255).astype(np.uint8)


def encode_png(image: np.ndarray) -> bytes:
    ok, encoded = cv2.imencode(".png", image, PNG_PARAMS)
    if not ok:
        raise RuntimeError("OpenCV could not encode a PNG")
    return encoded.tobytes()


def write_test_pngs(directory: Path, count: int, seed: int, source: Path | None = None) -> list[Path]:
    """Write `count` PNGs named like NIH files into `directory`: synthetic ones from `seed`, or the PNGs of
    `source` (e.g. real NIH images) repeated in name order."""
    if source is not None:
        encoded = [path.read_bytes() for path in sorted(Path(source).glob("*.png"))]
        if not encoded:
            raise DataError(source, "no .png files found", "pass a folder holding 1024 x 1024 NIH-style PNGs")
    else:
        rng = np.random.default_rng(seed)
        encoded = [encode_png(synthetic_radiograph(rng)) for _ in range(min(count, DISTINCT_IMAGES))]
    paths = [Path(directory) / f"{number:08d}_000.png" for number in range(count)]
    for number, path in enumerate(paths):
        write_bytes(path, encoded[number % len(encoded)])
    return paths


def warm_page_cache(paths: Sequence[Path]) -> None:
    """Read every file once so that the timed runs all read from memory, not from disk."""
    for path in paths:
        path.read_bytes()


def seconds(run: Callable[[], object]) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def machine_load() -> float:
    """The 1-minute load average: timings taken while it exceeds the core count are shared with other work."""
    return os.getloadavg()[0]


def _tree_memory(root: psutil.Process) -> tuple[int, int]:
    """(resident, private) bytes of `root` and all its descendants right now."""
    resident = private = 0
    for process in (root, *root.children(recursive=True)):
        try:
            info = process.memory_info()
        except psutil.NoSuchProcess:  # a worker that exited between listing and reading
            continue
        resident += info.rss
        private += info.rss - info.shared
    return resident, private


class PeakMemory:
    """Peak memory of this process plus all its descendants, sampled every `interval` seconds by a thread.

    `rss_mb` counts every resident page. `private_mb` leaves out file-backed and shared pages (Linux RssFile +
    RssShmem): the pages of a memory-mapped store are page cache that the kernel can drop at any time, while
    a copy of the store, or decoded images piling up in a queue, is private memory. Both are sums over the
    processes, so pages a forked child still shares copy-on-write with its parent count twice; that is the
    same in every run, so comparisons between runs hold.
    """

    def __init__(self, interval: float = 0.005):
        self.interval = interval
        self.rss_mb = 0.0
        self.private_mb = 0.0
        self._root = psutil.Process()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def _sample(self) -> None:
        resident, private = _tree_memory(self._root)
        self.rss_mb = max(self.rss_mb, resident / MIB)
        self.private_mb = max(self.private_mb, private / MIB)

    def _watch(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def __enter__(self) -> PeakMemory:
        self._sample()
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()


def report_figures(figures: dict[str, float]) -> None:
    """How a fresh-interpreter run hands its figures back to `run_fresh`."""
    print(FIGURES_MARKER + json.dumps(figures), flush=True)


def run_fresh(script: Path, args: Sequence[str]) -> dict[str, float]:
    """Run `script args` in a new interpreter and return the figures it printed with `report_figures`."""
    command = [sys.executable, str(script), *args]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    reported = [line for line in done.stdout.splitlines() if line.startswith(FIGURES_MARKER)]
    if done.returncode != 0 or not reported:
        raise SystemExit(f"FAILED: {' '.join(command)} exited with {done.returncode}:\n{done.stderr[-4000:]}")
    return json.loads(reported[-1][len(FIGURES_MARKER) :])


def memory_figures(small: dict[str, float], large: dict[str, float]) -> dict[str, float | bool]:
    """Compare two runs over data sizes 1:4. Flat means the private peak grew by at most FLAT_LIMIT."""
    return {
        "rss_small_mb": small["rss_mb"],
        "rss_large_mb": large["rss_mb"],
        "rss_growth": large["rss_mb"] / small["rss_mb"],
        "private_small_mb": small["private_mb"],
        "private_large_mb": large["private_mb"],
        "private_growth": large["private_mb"] / small["private_mb"],
        "flat": large["private_mb"] <= FLAT_LIMIT * small["private_mb"],
    }


def describe_memory(memory: dict[str, float | bool], small: str, large: str) -> str:
    """One line for the log: both peaks, the growth of the private one and the verdict."""
    verdict = f"flat (within {FLAT_LIMIT}x)" if memory["flat"] else f"NOT flat (over {FLAT_LIMIT}x)"
    return (f"{small}: {memory['rss_small_mb']:.0f} MiB resident ({memory['private_small_mb']:.0f} private); "
            f"{large}: {memory['rss_large_mb']:.0f} MiB resident ({memory['private_large_mb']:.0f} private); "
            f"private x{memory['private_growth']:.2f}, {verdict}")


def format_figure(value: float | int | bool | str) -> str:
    """Plain decimals (no exponents), about three significant digits; booleans as yes/no."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int) or isinstance(value, str):
        return str(value)
    if not math.isfinite(value):
        return str(value)
    if abs(value) >= 100:
        return f"{value:.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.3f}" if abs(value) < 1 else f"{value:.2f}"


def result_line(name: str, ratio: float, figures: dict[str, float | int | bool | str]) -> str:
    """`RESULT <name> ratio=<x> key=value ...`, the one line every benchmark ends with."""
    fields = [f"ratio={format_figure(ratio)}", *(f"{key}={format_figure(value)}" for key, value in figures.items())]
    return f"RESULT {name} " + " ".join(fields)
