"""Training throughput of the NIH classifier (MONAI DenseNet-121) fed from the decoded store, as a ratio to
the plain recipe (fp32, eager, contiguous, float batches copied from pageable memory) in the same run; then
our path's throughput for every shipped classifier (configs/model/classifier/), one row each.

Our path is what train_classifier does with train=gpu_full: uint8 batches read from a memory-mapped store,
copied through pinned memory, scaled on the device, bf16 autocast, channels_last, torch.compile. On a CPU the
GPU switches are off and the ratio only shows the store path's overhead.

    python benchmarks/train_throughput.py            # 224 px, batch 64 (GPU); 64 px, batch 16 on CPU
    python benchmarks/train_throughput.py --quick
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import yaml  # noqa: E402
from _common import result_line  # noqa: E402

from cxrbench import config, store, training  # noqa: E402
from cxrbench.models import networks  # noqa: E402

LABELS = 14
BASELINE_NETWORK = "densenet121"  # CheXNet's, the network of the ratio


def classifier_network(option: str) -> dict:
    """params `model.classifier` with that option of configs/model/classifier/ chosen."""
    return yaml.safe_load(config.compose_yaml([f"model/classifier={option}"]))["model"]["classifier"]


def measure(runtime: dict, images: np.ndarray, targets: np.ndarray, batch: int, steps: int, warmup: int,
            device: torch.device, from_store: bool, network: dict) -> float:
    """Images per second over `steps` optimiser steps after `warmup` (compilation, cudnn autotuning)."""
    torch.manual_seed(0)
    model = training.prepare_model(networks.build(network), runtime, device)
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    rng = np.random.default_rng(0)
    rows = np.arange(len(images))
    batches = training.shuffled_batches(np.tile(rows, (warmup + steps) * batch // len(rows) + 1), batch, rng)
    started = None
    for step in range(warmup + steps):
        if step == warmup:
            if device.type == "cuda":
                torch.cuda.synchronize()
            started = time.perf_counter()
        picked = next(batches)
        if from_store:
            x = training.to_input(images[picked], 255.0, 0.5, 0.25, device, runtime["channels_last"])
        else:  # the usual loader: float32 tensors built on the host, pageable copy
            x = ((torch.from_numpy(images[picked].astype(np.float32)) / 255.0 - 0.5) / 0.25).unsqueeze(1).to(device)
        y = torch.from_numpy(targets[picked]).to(device, non_blocking=True)
        with training.autocast(runtime, device):
            loss = loss_fn(model(x).float(), y)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return steps * batch / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a few steps at a small size")
    parser.add_argument("--size", type=int, default=None)
    parser.add_argument("--batch", type=int, default=None)
    parser.add_argument("--no-compile", action="store_true", help="leave torch.compile out of our path")
    args = parser.parse_args()
    cuda = torch.cuda.is_available()
    device = torch.device("cuda" if cuda else "cpu")
    size = args.size or (64 if args.quick else 224 if cuda else 64)
    batch = args.batch or (16 if args.quick or not cuda else 64)
    steps, warmup = (3, 1) if args.quick else ((60, 15) if cuda else (8, 2))
    n_images = 512
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        array = store.create(store.images_path(tmp, size), (n_images, size, size), np.uint8)
        array[:] = rng.integers(0, 256, size=array.shape, dtype=np.uint8)
        array.flush()
        images = store.open_array(store.find_images(tmp))
        targets = (rng.random((n_images, LABELS)) < 0.1).astype(np.float32)
        threads = torch.get_num_threads()
        plain = {"device": device.type, "threads": threads, "amp": False, "channels_last": False, "compile": False}
        ours = {**plain, "amp": cuda, "channels_last": cuda, "compile": cuda and not args.no_compile}
        training.setup_torch(plain, 0)
        print(f"device {torch.cuda.get_device_name() if cuda else 'cpu'}, {size} px, batch {batch}, {steps} steps", flush=True)
        reference = classifier_network(BASELINE_NETWORK)
        baseline = measure(plain, images, targets, batch, steps, warmup, device, False, reference)
        print(f"{BASELINE_NETWORK} plain fp32 eager: {baseline:.1f} img/s", flush=True)
        amp_only = measure({**ours, "compile": False}, images, targets, batch, steps, warmup, device, True, reference)
        print(f"{BASELINE_NETWORK} store + {'bf16 + channels_last' if cuda else 'cpu'}: {amp_only:.1f} img/s", flush=True)
        optimised = measure(ours, images, targets, batch, steps, warmup, device, True, reference)
        print(f"{BASELINE_NETWORK} store + all switches: {optimised:.1f} img/s", flush=True)
        per_network = {BASELINE_NETWORK: optimised}
        options = sorted(p.stem for p in (config.CONFIG_DIR / "model" / "classifier").glob("*.yaml"))
        print(f"{'classifier':<16} {'parameters':>11} {'img/s':>8}")
        for option in options:
            network = classifier_network(option)
            if option not in per_network:
                per_network[option] = measure(ours, images, targets, batch, steps, warmup, device, True, network)
            parameters = sum(p.numel() for p in networks.build(network).parameters())
            print(f"{option:<16} {parameters:>11,} {per_network[option]:>8.1f}", flush=True)
    epoch_minutes = 86_524 * 0.9 / optimised / 60  # official train_val minus a 10% validation carve-out
    print(result_line("train_throughput", optimised / baseline, {
        "ours_img_s": round(optimised, 1), "amp_no_compile_img_s": round(amp_only, 1), "baseline_img_s": round(baseline, 1),
        "size": size, "batch": batch, "device": device.type, "nih_epoch_min": round(epoch_minutes, 1),
        **{f"{option}_img_s": round(rate, 1) for option, rate in per_network.items() if option != BASELINE_NETWORK}}))


if __name__ == "__main__":
    main()
