"""The one training loop and the one inference loop of every network in the benchmark.

`fit` trains a model on a task's batches epoch by epoch and checkpoints after each epoch (weights, optimiser,
scheduler, every random state, the metric history and what the task's hook keeps), so a killed run resumes
and ends in exactly the state of an uninterrupted one. What happens at the end of an epoch besides (validation,
a scheduler step, choosing the best model, logging) is the task's `end_of_epoch` hook.
`predict` runs a model over items of a store in their order, batch by batch, with the runtime's autocast and
memory format. The devices, speed switches and input scaling are `cxrbench.training`'s.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from cxrbench import training

# An epoch's (input, target) batches on the device, drawn from the run's numpy stream and torch generator.
Batches = Callable[[np.random.Generator, torch.Generator | None], Iterable[tuple[torch.Tensor, torch.Tensor]]]
Loss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
# float32 inputs in the default memory format: for outputs that are not a network's plain forward pass (CAMs)
FULL_PRECISION = {"amp": False, "channels_last": False}


@dataclass
class Progress:
    """What a run has done: the completed epochs, their metrics, what its hook keeps between epochs, and the
    items (images, patches) trained on and the seconds their training steps took, over all epochs."""

    epoch: int = 0
    history: list[dict[str, float]] = field(default_factory=list)
    kept: dict[str, Any] = field(default_factory=dict)
    items: int = 0
    seconds: float = 0.0

    def throughput(self) -> float:
        """Items trained on per second of training steps (the hook's validation excluded)."""
        return self.items / self.seconds if self.seconds else 0.0

    def metric(self, name: str) -> list[float]:
        """One metric's value in each completed epoch."""
        return [metrics[name] for metrics in self.history]


@dataclass(frozen=True)
class EpochEnd:
    """What the end-of-epoch hook is told: the epoch just trained (counted from 1), its mean training loss, the
    seconds its training took, and the run's progress before this epoch is added (its `kept` is the hook's to
    change)."""

    epoch: int
    train_loss: float
    seconds: float
    progress: Progress


def fit(model: torch.nn.Module, optimiser: torch.optim.Optimizer, batches: Batches, loss_fn: Loss, *, epochs: int,
        checkpoint: training.EpochCheckpoint, rng: np.random.Generator, generator: torch.Generator | None = None,
        scheduler: Any = None, end_of_epoch: Callable[[EpochEnd], dict[str, float]] | None = None,
        kept: dict[str, Any] | None = None, runtime: dict[str, Any], device: torch.device, desc: str | None = None,
        batches_per_epoch: int | None = None) -> Progress:
    """Train `model` for `epochs` epochs, resuming after the last epoch `checkpoint` holds for this run.

    Each epoch: the model in training mode, every batch of `batches(rng, generator)` forwarded under the
    runtime's autocast, `loss_fn(output as float32, target)` back-propagated and an optimiser step; then the hook,
    whose metrics follow `train/loss` in the epoch's history entry, and the checkpoint. `kept` starts what the
    hook keeps across epochs (it is checkpointed too). Progress shows one bar over the epochs named `desc` or,
    given `batches_per_epoch` instead, one bar per epoch over its batches (for long epochs). Returns the final
    progress.
    """
    progress = Progress(kept=dict(kept or {}))
    if (resumed := checkpoint.load()) is not None:
        training.load_weights(model, resumed["model"])
        optimiser.load_state_dict(resumed["optimiser"])
        if scheduler is not None:
            scheduler.load_state_dict(resumed["scheduler"])
        _restore_random_state(resumed["rng"], rng, generator)
        progress = Progress(resumed["epoch"], resumed["history"], resumed["kept"], *resumed["timing"])
    remaining = range(progress.epoch, epochs)
    for epoch in remaining if batches_per_epoch else tqdm(remaining, desc=desc, unit="epoch"):
        model.train()
        started = time.perf_counter()
        epoch_batches = batches(rng, generator)
        if batches_per_epoch:
            epoch_batches = tqdm(epoch_batches, total=batches_per_epoch, desc=f"epoch {epoch + 1}/{epochs}",
                                 unit="batch")
        train_loss, items = _train_epoch(model, optimiser, epoch_batches, loss_fn, runtime, device)
        seconds = time.perf_counter() - started
        progress.items, progress.seconds = progress.items + items, progress.seconds + seconds
        metrics = {"train/loss": train_loss}
        if end_of_epoch is not None:
            metrics |= end_of_epoch(EpochEnd(epoch + 1, train_loss, seconds, progress))
        progress.history.append(metrics)
        progress.epoch = epoch + 1
        checkpoint.save({"epoch": progress.epoch, "history": progress.history, "kept": progress.kept,
                         "model": training.state_dict(model), "optimiser": optimiser.state_dict(),
                         "scheduler": None if scheduler is None else scheduler.state_dict(),
                         "rng": _random_state(rng, generator), "timing": (progress.items, progress.seconds)})
    return progress


def _train_epoch(model: torch.nn.Module, optimiser: torch.optim.Optimizer,
                 batches: Iterable[tuple[torch.Tensor, torch.Tensor]], loss_fn: Loss, runtime: dict[str, Any],
                 device: torch.device) -> tuple[float, int]:
    """One pass of optimiser steps over `batches`; the mean of their losses and the number of items."""
    losses, items = [], 0
    for x, y in batches:
        with training.autocast(runtime, device):
            output = model(x).float()
        loss = loss_fn(output, y)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        losses.append(loss.detach())
        items += x.shape[0]
    return float(torch.stack(losses).mean()), items


def _random_state(rng: np.random.Generator, generator: torch.Generator | None) -> dict[str, Any]:
    return {"numpy": rng.bit_generator.state, "torch": torch.get_rng_state(),
            "generator": None if generator is None else generator.get_state()}


def _restore_random_state(state: dict[str, Any], rng: np.random.Generator, generator: torch.Generator | None) -> None:
    rng.bit_generator.state = state["numpy"]
    torch.set_rng_state(state["torch"])
    if generator is not None:
        generator.set_state(state["generator"])


@torch.no_grad()
def predict_batches(model: torch.nn.Module, pixels: np.ndarray, items: np.ndarray, max_value: float,
                    norm: tuple[float, float], runtime: dict[str, Any], device: torch.device, batch_size: int,
                    forward: Callable[[torch.Tensor, slice], torch.Tensor] | None = None) -> Iterator[torch.Tensor]:
    """Outputs of `model` (put in eval mode) for `pixels[items]`, one batch of consecutive items at a time, on the
    host. The inputs are scaled by `max_value` and standardised by `norm` (mean, std); `forward(x, positions)`,
    where `positions` are the batch's places in `items`, replaces the plain `model(x).float()`."""
    model.eval()
    for start in range(0, len(items), batch_size):
        positions = slice(start, start + batch_size)
        x = training.to_input(pixels[items[positions]], max_value, *norm, device, runtime["channels_last"])
        with training.autocast(runtime, device):
            output = model(x).float() if forward is None else forward(x, positions)
        yield output.cpu()


def predict(model: torch.nn.Module, pixels: np.ndarray, items: np.ndarray, max_value: float,
            norm: tuple[float, float], runtime: dict[str, Any], device: torch.device, batch_size: int,
            forward: Callable[[torch.Tensor, slice], torch.Tensor] | None = None) -> torch.Tensor:
    """`predict_batches` concatenated: the outputs for all of `items`, in their order."""
    return torch.cat(list(predict_batches(model, pixels, items, max_value, norm, runtime, device, batch_size,
                                          forward)))
