"""What the training and evaluation stages share: deterministic torch set-up, the GPU speed switches,
batches read from the store, per-epoch metrics through dvclive, and resumable checkpoints."""

from __future__ import annotations

import functools
import hashlib
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from cxrbench import artefacts
from cxrbench.fileio import atomic_path, sha256_file, write_json

log = logging.getLogger(__name__)
CHECKPOINTS = Path("checkpoints")  # outside every DVC/Snakemake output, so a killed run's progress survives


def setup_torch(runtime: dict[str, Any], seed: int) -> torch.device:
    """Seeded, deterministic torch on the configured device; the same thread count under every runner."""
    if runtime["device"] == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("train.runtime.device=cuda but no CUDA device is visible; use train=cpu_demo or a GPU node")
    torch.manual_seed(seed)
    torch.set_num_threads(runtime["threads"])
    torch.use_deterministic_algorithms(runtime["device"] == "cpu", warn_only=True)
    if runtime["device"] == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    return torch.device(runtime["device"])


def prepare_model(model: torch.nn.Module, runtime: dict[str, Any], device: torch.device) -> torch.nn.Module:
    """Move to the device; channels_last and torch.compile where configured (GPU configs)."""
    model = model.to(device)
    if runtime["channels_last"]:
        model = model.to(memory_format=torch.channels_last)
    return torch.compile(model) if runtime["compile"] else model


def autocast(runtime: dict[str, Any], device: torch.device):
    """bf16 mixed precision on CUDA when configured; a no-op elsewhere (bf16 on these CPUs is 20x slower)."""
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=runtime["amp"] and device.type == "cuda")


def state_dict(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """CPU copy of the weights, without torch.compile's `_orig_mod.` prefix."""
    model = getattr(model, "_orig_mod", model)
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}


def load_weights(model: torch.nn.Module, state: dict[str, torch.Tensor]) -> None:
    getattr(model, "_orig_mod", model).load_state_dict(state)


def shuffled_batches(rows: np.ndarray, batch_size: int, rng: np.random.Generator) -> Iterator[np.ndarray]:
    """Shuffle once per epoch; each batch sorted so the memory-mapped store is read in ascending order."""
    order = rng.permutation(rows)
    for start in range(0, len(order), batch_size):
        yield np.sort(order[start : start + batch_size])


def to_input(pixels: np.ndarray, max_value: float, mean: float, std: float, device: torch.device,
             channels_last: bool = False) -> torch.Tensor:
    """(B, H, W) store pixels -> (B, 1, H, W) standardised float on the device.

    On CUDA the bytes travel as uint8/uint16 through pinned memory and are scaled on the device. On the CPU an
    integer store is standardised by table lookup: one pass and one allocation instead of four of each (the
    CPU input path's cost), with the table computed by the same float32 operations, so the bits are the same.
    """
    if device.type == "cpu" and pixels.dtype in (np.uint8, np.uint16):
        x = torch.from_numpy(standardised_integers(pixels, max_value, mean, std)).unsqueeze(1)
    else:
        x = torch.from_numpy(np.ascontiguousarray(pixels))
        if device.type == "cuda":
            x = x.pin_memory()
        x = _standardise(x.to(device, non_blocking=True).float().unsqueeze(1), max_value, mean, std)
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x


def standardised_integers(pixels: np.ndarray, max_value: float, mean: float, std: float) -> np.ndarray:
    """uint8/uint16 store pixels standardised into a new float32 array, by table lookup (see to_input)."""
    table = _standardised_values(pixels.dtype.str, max_value, mean, std)
    return _look_up(np.ascontiguousarray(pixels), table)


def _standardise(x: torch.Tensor, max_value: float, mean: float, std: float) -> torch.Tensor:
    return (x / max_value - mean) / std


@functools.lru_cache(maxsize=8)
def _standardised_values(dtype: str, max_value: float, mean: float, std: float) -> np.ndarray:
    """`_standardise` of every value the integer dtype can hold, as float32 (256 or 65,536 entries)."""
    values = torch.arange(np.iinfo(dtype).max + 1, dtype=torch.float32)
    return _standardise(values, max_value, mean, std).numpy()


def _look_up(pixels: np.ndarray, table: np.ndarray) -> np.ndarray:
    if pixels.dtype == np.uint8:  # OpenCV's LUT: vectorised, several times faster than numpy's take
        return cv2.LUT(pixels.reshape(-1, pixels.shape[-1]), table).reshape(pixels.shape)
    return np.take(table, pixels)


def random_hflip(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Flip a random half of the batch left-right, on the device, from a seeded (CPU) generator."""
    flip = (torch.rand(x.shape[0], generator=generator) < 0.5).to(x.device)
    return torch.where(flip.view(-1, 1, 1, 1), x.flip(-1), x)


def random_dihedral(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Flip a random half of the batch left-right, then turn each item by a random multiple of 90 degrees (for
    images whose content has no orientation, such as a nodule's region of interest)."""
    x = random_hflip(x, generator)
    turns = torch.randint(0, 4, (x.shape[0],), generator=generator).to(x.device)
    for k in (1, 2, 3):
        x[turns == k] = torch.rot90(x[turns == k], k, dims=(-2, -1))
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


def log_history(directory: str | Path, history: list[dict[str, float]]) -> None:
    """Write the per-epoch metrics in one go (also after a resume: the log is rebuilt, never appended twice)."""
    with open_live(directory) as live:
        for epoch_metrics in history:
            for name, value in epoch_metrics.items():
                live.log_metric(name, round(float(value), 6))
            live.next_step()


def write_throughput(task: str, rates: dict[str, float], unit: str) -> None:
    """metrics/throughput_<task>.json: training speed per model. Not in the model folder: it is the one output
    of a training stage that is measured (wall-clock) rather than computed, so it differs between runs, while
    everything else a stage writes is byte-identical for the same parameters."""
    write_json(artefacts.THROUGHPUT[task], {"unit": unit, "per_second": {name: round(rate, 1) for name, rate in rates.items()},
                                        "device": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"})


def save_checkpoint(path: str | Path, payload: dict[str, Any]) -> None:
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def load_checkpoint(path: str | Path, device: torch.device) -> dict[str, Any]:
    return torch.load(path, map_location=device, weights_only=False)


def fingerprint(params: dict[str, Any], *inputs: str | Path) -> str:
    """Identity of a training run: its parameters and the exact input files. A checkpoint resumes only the run
    it was written by."""
    h = hashlib.sha256(json.dumps(params, sort_keys=True).encode())
    for path in inputs:
        h.update(sha256_file(path).encode())
    return h.hexdigest()


class EpochCheckpoint:
    """Last completed epoch of a run (weights, optimiser, scheduler, every random state, metric history),
    saved atomically after each epoch under checkpoints/<name>.pt and removed once the stage's output exists."""

    LAYOUT = 3  # of the payload (cxrbench.engine.fit's); a checkpoint of another layout is not resumed

    def __init__(self, name: str, run_fingerprint: str):
        self.path = CHECKPOINTS / f"{name}.pt"
        self.fingerprint = run_fingerprint

    def load(self) -> dict[str, Any] | None:
        if not self.path.is_file():
            return None
        payload = torch.load(self.path, map_location="cpu", weights_only=False)
        if payload.get("fingerprint") != self.fingerprint:
            log.info("ignoring %s: written by a run with other parameters or inputs", self.path)
            return None
        if payload.get("layout") != self.LAYOUT:
            log.info("ignoring %s: written by an earlier version of the training loop", self.path)
            return None
        log.info("resuming from %s after epoch %d", self.path, payload["epoch"])
        return payload

    def save(self, payload: dict[str, Any]) -> None:
        save_checkpoint(self.path, {**payload, "fingerprint": self.fingerprint, "layout": self.LAYOUT})

    def clear(self) -> None:
        self.path.unlink(missing_ok=True)
