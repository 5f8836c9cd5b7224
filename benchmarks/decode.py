"""Time the NIH decode stage against a plain decode loop, and check that its memory stays flat as data grows.

Speed: `decode_images` (the stage's worker pool, resampling to 224 px and streaming rows into a memory-mapped
store) against `cv2.imread(IMREAD_UNCHANGED)` over the same 1024 px PNGs in one process, page cache warm for
both, rounds interleaved, medians.

    ratio = (stage img/s / workers) / decode-only img/s

the share of one core's bare decoding speed that each worker delivers once resampling, sending results to the
parent and writing the store are paid for. Every `decode_images` call starts a new pool; that fixed cost is
timed on its own (a call with one image per worker, `pool_start_s`) and the stage rate is the steady one,
(n - workers) / (t(n) - t(workers)); the rate including start-up is printed too (`stage_end_to_end_img_s`).
The same decode-only loop in `workers` processes gives the most any stage could reach on these cores
(`parallel_ceiling`: its per-process rate over the one-process rate; shared caches, memory bandwidth and
hyperthreads keep it below 1). The stage also resamples every image: CPU time per image (process time, so
other work on the machine barely moves it) of the decode-only loop and of the stage's per-image work
(`decode_one`: decode + resample) give `work_ratio` = decode CPU / stage CPU, and `bound` = parallel_ceiling x
work_ratio is the highest ratio a stage doing that work could reach here, however little else it spends. `load` is the 1-minute load average: above the core count, other work shared
the cores and the rates are low.

Memory: the stage over n/4 and over n images, each in a fresh interpreter, peak of the parent and all its
children sampled every 5 ms (see `_common.PeakMemory` for resident vs private). Flat: the larger run's private
peak is at most 1.2 x the smaller's.

    python benchmarks/decode.py                 # 800 images (memory: 200 and 800), 3 rounds
    python benchmarks/decode.py --quick         # 200 images (memory: 50 and 200), 1 round
    python benchmarks/decode.py --png-dir DIR   # real PNGs from DIR, repeated, instead of synthetic ones

The last line is `RESULT decode ratio=... stage_img_s=... workers=... decode_only_img_s=... rss_small_mb=...
rss_large_mb=... rss_growth=... ...`.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
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
    warm_page_cache,
    write_test_pngs,
)

from cxrbench import store
from cxrbench.stages.decode_nih import decode_images, decode_one


def decode_only_one(path: Path) -> None:
    if cv2.imread(str(path), cv2.IMREAD_UNCHANGED) is None:
        raise SystemExit(f"FAILED: OpenCV could not decode {path}")


def decode_only(paths: list[Path]) -> None:
    """The baseline: what one core does when it does nothing but decode."""
    for path in paths:
        decode_only_one(path)


def cpu_ms_per_image(work: Callable[[Path], object], paths: list[Path]) -> float:
    """CPU milliseconds per image of `work` in this process (all its threads), robust to other load."""
    start = time.process_time()
    for path in paths:
        work(path)
    return (time.process_time() - start) / len(paths) * 1000


def decode_only_parallel(paths: list[Path], workers: int) -> None:
    """Nothing but decoding in `workers` processes: how far the cores themselves scale (shared caches, memory
    bandwidth, hyperthreads), the ceiling for any decoding stage. Forked workers start in milliseconds."""
    with multiprocessing.get_context("fork").Pool(workers) as pool:
        pool.map(decode_only_one, paths, chunksize=16)


def run_stage(paths: list[Path], size: int, workers: int, out: np.ndarray) -> None:
    bad = decode_images(paths, size, workers, out)
    if bad:
        raise SystemExit(f"FAILED: the stage rejected {len(bad)} test images, e.g. {bad[0]}")


def memory_run(png_dir: Path, count: int, size: int, workers: int) -> None:
    """In a fresh interpreter: the stage over the first `count` PNGs of `png_dir`, reporting its peak memory."""
    paths = sorted(png_dir.glob("*.png"))[:count]
    out_path = png_dir.parent / f"memory_{count}.npy"
    with PeakMemory() as peak:
        out = store.create(out_path, (len(paths), size, size), np.uint8)
        run_stage(paths, size, workers, out)
        out.flush()
    del out
    out_path.unlink()
    report_figures({"rss_mb": peak.rss_mb, "private_mb": peak.private_mb})


def time_decoding(paths: list[Path], size: int, workers: int, rounds: int, out: np.ndarray) -> dict[str, float]:
    """Interleaved rounds of the decode-only loop (one process, then `workers`), a pool start-up (one image per
    worker) and the stage over every path; rates from the medians."""
    run_stage(paths[:workers], size, workers, out)  # starts the forkserver, which a stage run does once
    baseline_s, parallel_s, start_s, stage_s, decode_cpu, stage_cpu = [], [], [], [], [], []
    for round_number in range(rounds):
        decode_cpu.append(cpu_ms_per_image(decode_only_one, paths))
        stage_cpu.append(cpu_ms_per_image(lambda path: decode_one((str(path), size)), paths))
        baseline_s.append(seconds(lambda: decode_only(paths)))
        parallel_s.append(seconds(lambda: decode_only_parallel(paths, workers)))
        start_s.append(seconds(lambda: run_stage(paths[:workers], size, workers, out)))
        stage_s.append(seconds(lambda: run_stage(paths, size, workers, out)))
        print(f"round {round_number + 1}: decode-only {baseline_s[-1]:.2f} s in one process, {parallel_s[-1]:.2f} s "
              f"in {workers}; stage {stage_s[-1]:.2f} s (pool start-up alone {start_s[-1]:.2f} s)", flush=True)
    expected, _ = decode_one((str(paths[-1]), size))
    if not np.array_equal(out[-1], expected):
        raise SystemExit("FAILED: the stage's last store row differs from decode_one on the same file")
    return {
        "stage_img_s": (len(paths) - workers) / (median(stage_s) - median(start_s)),
        "decode_only_img_s": len(paths) / median(baseline_s),
        "decode_only_parallel_img_s": len(paths) / median(parallel_s),
        "stage_end_to_end_img_s": len(paths) / median(stage_s),
        "pool_start_s": median(start_s),
        "decode_cpu_ms": median(decode_cpu),
        "stage_work_cpu_ms": median(stage_cpu),
    }


def measure_memory(png_dir: Path, n_small: int, n_large: int, size: int, workers: int) -> dict[str, float | bool]:
    script = Path(__file__).resolve()
    common = ["--size", str(size), "--workers", str(workers), "--memory-pngs", str(png_dir)]
    small = run_fresh(script, ["--memory-run", str(n_small), *common])
    large = run_fresh(script, ["--memory-run", str(n_large), *common])
    return memory_figures(small, large)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="200 images, one round")
    parser.add_argument("--images", type=int, help="images for the speed runs and the larger memory run "
                        "(default 800; 200 with --quick); the smaller memory run uses a quarter")
    parser.add_argument("--rounds", type=int, help="interleaved timing rounds (default 3; 1 with --quick)")
    parser.add_argument("--workers", type=int, default=os.cpu_count(), help="stage worker processes")
    parser.add_argument("--size", type=int, default=224, help="store resolution (CheXNet's 224 px)")
    parser.add_argument("--png-dir", type=Path, help="use the PNGs in this folder, repeated, not synthetic ones")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--memory-run", type=int, metavar="COUNT", help=argparse.SUPPRESS)
    parser.add_argument("--memory-pngs", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_run:
        memory_run(args.memory_pngs, args.memory_run, args.size, args.workers)
        return

    n_large = args.images or (200 if args.quick else 800)
    n_small = n_large // 4
    if n_small <= args.workers:
        raise SystemExit(f"--images must be more than 4 x workers ({4 * args.workers})")
    with tempfile.TemporaryDirectory(prefix="cxrbench-decode-") as tmp:
        png_dir = Path(tmp) / "png"
        paths = write_test_pngs(png_dir, n_large, args.seed, args.png_dir)
        print(f"data: {n_large} PNGs of {sum(p.stat().st_size for p in paths) / n_large / 1024:.0f} KiB on "
              f"average ({'from ' + str(args.png_dir) if args.png_dir else 'synthetic'}); stage at {args.size} "
              f"px with {args.workers} workers", flush=True)
        warm_page_cache(paths)
        out = store.create(Path(tmp) / "images.npy", (n_large, args.size, args.size), np.uint8)
        speed = time_decoding(paths, args.size, args.workers, args.rounds or (1 if args.quick else 3), out)
        load = machine_load()
        ratio = speed["stage_img_s"] / args.workers / speed["decode_only_img_s"]
        ceiling = speed["decode_only_parallel_img_s"] / args.workers / speed["decode_only_img_s"]
        work_ratio = speed["decode_cpu_ms"] / speed["stage_work_cpu_ms"]
        print(f"decode-only {speed['decode_only_img_s']:.1f} img/s in one process, "
              f"{speed['decode_only_parallel_img_s']:.1f} in {args.workers} (x{ceiling:.2f} per process: the ceiling); "
              f"stage {speed['stage_img_s']:.1f} img/s steady ({speed['stage_img_s'] / args.workers:.1f} per worker: "
              f"x{ratio:.2f}), "
              f"{speed['stage_end_to_end_img_s']:.1f} img/s with its {speed['pool_start_s']:.2f} s pool start-up; "
              f"machine load {load:.1f} on {os.cpu_count()} cores", flush=True)
        print(f"CPU per image: decode {speed['decode_cpu_ms']:.1f} ms, decode + resample to {args.size} px "
              f"{speed['stage_work_cpu_ms']:.1f} ms (x{work_ratio:.2f}); bound for the ratio here: "
              f"{ceiling:.2f} x {work_ratio:.2f} = {ceiling * work_ratio:.2f}", flush=True)
        memory = measure_memory(png_dir, n_small, n_large, args.size, args.workers)
    print("peak memory of the stage, parent + workers: "
          + describe_memory(memory, f"{n_small} images", f"{n_large} images"), flush=True)
    print(result_line("decode", ratio, {
        "stage_img_s": speed["stage_img_s"],
        "workers": args.workers,
        "decode_only_img_s": speed["decode_only_img_s"],
        "decode_only_parallel_img_s": speed["decode_only_parallel_img_s"],
        "parallel_ceiling": ceiling,
        "decode_cpu_ms": speed["decode_cpu_ms"],
        "stage_work_cpu_ms": speed["stage_work_cpu_ms"],
        "work_ratio": work_ratio,
        "bound": ceiling * work_ratio,
        "stage_end_to_end_img_s": speed["stage_end_to_end_img_s"],
        "pool_start_s": speed["pool_start_s"],
        "load": load,
        "cores": os.cpu_count(),
        **memory,
        "images_small": n_small,
        "images_large": n_large,
    }))


if __name__ == "__main__":
    main()
