"""What the training and evaluation stages share: deterministic torch set-up, batches read from the store,
per-epoch metrics through dvclive, and atomic checkpoints."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch

log = logging.getLogger(__name__)


def setup_torch(device: str, threads: int, seed: int) -> torch.device:
    """Seeded, deterministic torch on the configured device; the same thread count under every runner."""
    if device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("train.device=cuda but no CUDA device is visible; use train=cpu_demo or a GPU node")
    torch.manual_seed(seed)
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(device == "cpu", warn_only=True)
    return torch.device(device)


def shuffled_batches(rows: np.ndarray, batch_size: int, rng: np.random.Generator) -> Iterator[np.ndarray]:
    """Shuffle once per epoch; each batch sorted so the memory-mapped store is read in ascending order."""
    order = rng.permutation(rows)
    for start in range(0, len(order), batch_size):
        yield np.sort(order[start : start + batch_size])


def ordered_batches(rows: np.ndarray, batch_size: int) -> Iterator[np.ndarray]:
    for start in range(0, len(rows), batch_size):
        yield rows[start : start + batch_size]


def to_input(pixels: np.ndarray, max_value: float, mean: float, std: float, device: torch.device) -> torch.Tensor:
    """(B, H, W) store pixels -> (B, 1, H, W) standardised float on the device (scaling happens there)."""
    x = torch.from_numpy(np.ascontiguousarray(pixels)).to(device, non_blocking=True).float().unsqueeze(1)
    return (x / max_value - mean) / std


def random_hflip(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Flip a random half of the batch left-right, on the device, from a seeded generator."""
    flip = torch.rand(x.shape[0], generator=generator) < 0.5
    x[flip.to(x.device)] = x[flip.to(x.device)].flip(-1)
    return x


def intensity_stats(images: np.ndarray, rows: np.ndarray, max_value: float, sample: int = 512) -> tuple[float, float]:
    """Mean and std of training pixels (scaled to 0..1) from an evenly spaced sample of training images."""
    pick = np.sort(rows)[:: max(1, len(rows) // sample)]
    pixels = np.asarray(images[pick], dtype=np.float64) / max_value
    return float(pixels.mean()), float(pixels.std() or 1.0)


def open_live(directory: str | Path):
    """dvclive logger that writes plain metrics.json + per-metric TSVs and nothing else (no timestamps, no
    report, no dvc.yaml edits, no experiment saving), so logs are byte-identical between runs."""
    from dvclive import Live

    return Live(str(directory), save_dvc_exp=False, dvcyaml=None, report=None, monitor_system=False)


def save_checkpoint(path: str | Path, payload: dict[str, Any]) -> None:
    from cxrbench.fileio import atomic_path

    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def load_checkpoint(path: str | Path, device: torch.device) -> dict[str, Any]:
    return torch.load(path, map_location=device, weights_only=False)
