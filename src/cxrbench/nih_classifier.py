"""The NIH 14-label classifier's recipe (CheXNet's): train one network on the decoded store's train part, and
score a trained one on a part of the split. train_classifier (the model every NIH analysis reads) and every cell
of the benchmark matrix (benchmark_classifier) train with it, so a leaderboard compares networks and seeds, never
recipes.

Adam, learning rate decayed on a validation-loss plateau, random horizontal flips on the device, model chosen by
validation loss; on CUDA bf16 autocast, channels_last, pinned non-blocking copies and torch.compile as
train.runtime says. Checkpoints every epoch: a killed run resumes where it stopped and ends in the same state.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from cxrbench import artefacts, config, engine, matrix, seed_streams, store, training
from cxrbench.fileio import write_json
from cxrbench.metrics.roc import roc_auc
from cxrbench.models import networks
from cxrbench.splits import split_rows
from cxrbench.vocabulary import LABELS, NIH_MAX

log = logging.getLogger(__name__)
STORE, SPLIT = artefacts.STORE_NIH, artefacts.SPLIT_NIH


def classifier_batches(images: np.ndarray, targets: np.ndarray, rows: np.ndarray, cfg: dict[str, Any],
                       norm: tuple[float, float], runtime: dict[str, Any], device: torch.device) -> engine.Batches:
    """The training images and their labels, shuffled each epoch; a random half flipped left-right when
    cfg.hflip."""
    def epoch(rng: np.random.Generator, flips: torch.Generator) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for batch in training.shuffled_batches(rows, cfg["batch_size"], rng):
            x = training.to_input(images[batch], NIH_MAX, *norm, device, runtime["channels_last"])
            if cfg["hflip"]:
                x = training.random_hflip(x, flips)
            yield x, torch.from_numpy(targets[batch]).to(device, non_blocking=True)
    return epoch


def train(params: dict[str, Any], key: str, seed: int, out: Path,
          run_name: str) -> tuple[engine.Progress, training.EpochCheckpoint]:
    """Train the network whose config params hold at the dotted `key` (model.classifier, or a challenger of the
    benchmark matrix) with `seed`, by params' train.classifier and train.runtime; write the best epoch's weights (model.pt) and config.json into the folder `out` (which the
    caller writes atomically). `run_name` names the checkpoint (checkpoints/<run_name>.pt). Returns the run's
    progress (history, throughput) and its checkpoint, for the caller to clear once its outputs are in place."""
    cfg, runtime, network = params["train"]["classifier"], params["train"]["runtime"], matrix.network(params, key)
    device = training.setup_torch(runtime, seed)
    index, split = store.read_index(STORE), pd.read_csv(SPLIT)
    images = store.open_array(store.find_images(STORE))
    targets = index[list(LABELS)].to_numpy(np.float32)
    train_rows, val_rows = split_rows(index, split, "train"), split_rows(index, split, "val")
    size = images.shape[-1]
    norm = networks.input_normalisation(network, training.intensity_stats(images, train_rows, NIH_MAX))
    log.info("%s: %d train / %d val images at %d px; input mean %.3f std %.3f; device %s", network["name"],
             len(train_rows), len(val_rows), size, *norm, device)

    model, record = networks.ready_to_train(network, key, size, (2, len(LABELS)),
                                            "the NIH classifier (one logit per label)", runtime, device)
    optimiser = torch.optim.Adam(model.parameters(), lr=cfg["lr"], betas=(0.9, 0.999))
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimiser, factor=cfg["lr_decay"], patience=cfg["lr_patience"])
    loss_fn = torch.nn.BCEWithLogitsLoss()
    checkpoint = training.EpochCheckpoint(run_name, training.fingerprint(
        {"seed": seed, "train": params["train"], "model": network}, store.find_images(STORE), STORE / store.INDEX, SPLIT,
        *config.init_files(network)))

    def end_of_epoch(end: engine.EpochEnd) -> dict[str, float]:
        """Validation loss and mean AUC, the plateau scheduler's step, and the best model by validation loss."""
        val_logits = engine.predict(model, images, val_rows, NIH_MAX, norm, runtime, device, cfg["batch_size"] * 4)
        val_loss = float(loss_fn(val_logits, torch.from_numpy(targets[val_rows])))
        val_auc = float(np.nanmean(roc_auc(targets[val_rows], val_logits.numpy())))
        scheduler.step(val_loss)
        log.info("epoch %d: train loss %.4f, val loss %.4f, val mean AUC %.4f (%.0f train images/s)",
                 end.epoch, end.train_loss, val_loss, val_auc, len(train_rows) / end.seconds)
        if val_loss < end.progress.kept["best"]["val_loss"]:
            end.progress.kept["best"] = {"val_loss": val_loss, "epoch": end.epoch, "model": training.state_dict(model)}
        return {"val/loss": val_loss, "val/mean_auc": val_auc, "lr": optimiser.param_groups[0]["lr"]}

    progress = engine.fit(model, optimiser, classifier_batches(images, targets, train_rows, cfg, norm, runtime, device),
                          loss_fn, epochs=cfg["epochs"], checkpoint=checkpoint,
                          rng=np.random.default_rng([seed, seed_streams.TRAIN_CLASSIFIER]),
                          generator=torch.Generator().manual_seed(seed), scheduler=scheduler,
                          end_of_epoch=end_of_epoch, kept={"best": {"val_loss": float("inf")}}, runtime=runtime,
                          device=device, batches_per_epoch=math.ceil(len(train_rows) / cfg["batch_size"]))
    best = progress.kept["best"]
    log.info("best epoch %d (val loss %.4f)", best["epoch"], best["val_loss"])
    training.save_checkpoint(out / "model.pt", {"state_dict": best["model"]})
    write_json(out / artefacts.MODEL_CONFIG, {"labels": list(LABELS), "size": int(size), "mean": norm[0], "std": norm[1],
                                              "best_epoch": best["epoch"], "best_val_loss": round(best["val_loss"], 6),
                                              "network": record})
    return progress, checkpoint


class Scorer:
    """A trained classifier (a folder `train` wrote) scoring parts of the split: sigmoid probabilities."""

    def __init__(self, model_dir: Path, runtime: dict[str, Any], seed: int):
        self.runtime = {**runtime, "compile": False}  # one pass over a part: not worth compiling
        self.device = training.setup_torch(self.runtime, seed)
        model_cfg = json.loads((model_dir / artefacts.MODEL_CONFIG).read_text())
        self.model = networks.load_trained(model_cfg["network"], model_dir / "model.pt", self.runtime, self.device)
        self.norm = (model_cfg["mean"], model_cfg["std"])
        self.index, self.split = store.read_index(STORE), pd.read_csv(SPLIT)
        self._rows: dict[str, np.ndarray] = {}
        self.images = store.open_array(store.find_images(STORE))

    def rows(self, part: str) -> np.ndarray:
        if part not in self._rows:  # rows, labels and scores of a part all ask
            self._rows[part] = split_rows(self.index, self.split, part)
        return self._rows[part]

    def labels(self, part: str) -> np.ndarray:
        return self.index[list(LABELS)].to_numpy(np.uint8)[self.rows(part)]

    def scores(self, part: str) -> np.ndarray:
        logits = engine.predict(self.model, self.images, self.rows(part), NIH_MAX, self.norm, self.runtime,
                                self.device, batch_size=64)
        return torch.sigmoid(logits).numpy()
