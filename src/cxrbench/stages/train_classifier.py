"""Stage train_classifier: NIH 14-label classifier (the network of `model.classifier`: DenseNet-121 by default,
as in CheXNet), CheXNet-style recipe.

Reads the decoded store (memory-mapped uint8 + index) and data/splits/nih.csv; the network starts from random
weights, ImageNet's or a checkpoint of ours (`model.classifier.init`); Adam, learning rate decayed on
a validation-loss plateau, random horizontal flips on the device, model chosen by validation loss. On CUDA:
bf16 autocast, channels_last, pinned non-blocking copies and torch.compile, as train.runtime says. Logs per
epoch with dvclive (dvclive/classifier), checkpoints every epoch (a killed run resumes where it stopped and
ends in the same state), and writes models/classifier/{model.pt, config.json} and metrics/throughput_classifier.json.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd
import torch

from cxrbench import artefacts, config, engine, seed_streams, store, training
from cxrbench.fileio import atomic_path, write_json
from cxrbench.metrics.roc import roc_auc
from cxrbench.models import networks
from cxrbench.splits import split_rows
from cxrbench.stages._app import run_stage
from cxrbench.vocabulary import LABELS, NIH_MAX

log = logging.getLogger(__name__)
STORE = artefacts.STORE_NIH
SPLIT = artefacts.SPLIT_NIH
OUT = artefacts.MODEL_CLASSIFIER


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


def train(params: dict[str, Any]) -> None:
    cfg, runtime, seed = params["train"]["classifier"], params["train"]["runtime"], params["seed"]
    network = params["model"]["classifier"]
    device = training.setup_torch(runtime, seed)
    index, split = store.read_index(STORE), pd.read_csv(SPLIT)
    images = store.open_array(store.find_images(STORE))
    targets = index[list(LABELS)].to_numpy(np.float32)
    train_rows, val_rows = split_rows(index, split, "train"), split_rows(index, split, "val")
    size = images.shape[-1]
    norm = networks.input_normalisation(network, training.intensity_stats(images, train_rows, NIH_MAX))
    log.info("%d train / %d val images at %d px; input mean %.3f std %.3f; device %s", len(train_rows),
             len(val_rows), size, *norm, device)

    model, record = networks.ready_to_train(network, "classifier", size, (2, len(LABELS)),
                                            "the NIH classifier (one logit per label)", runtime, device)
    optimiser = torch.optim.Adam(model.parameters(), lr=cfg["lr"], betas=(0.9, 0.999))
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimiser, factor=cfg["lr_decay"], patience=cfg["lr_patience"])
    loss_fn = torch.nn.BCEWithLogitsLoss()
    checkpoint = training.EpochCheckpoint("train_classifier", training.fingerprint(
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
    training.log_history(artefacts.LIVE_CLASSIFIER, progress.history)
    best = progress.kept["best"]
    log.info("best epoch %d (val loss %.4f)", best["epoch"], best["val_loss"])
    with atomic_path(OUT, is_dir=True) as out:
        training.save_checkpoint(out / "model.pt", {"state_dict": best["model"]})
        write_json(out / "config.json", {"labels": list(LABELS), "size": int(size), "mean": norm[0], "std": norm[1],
                                         "best_epoch": best["epoch"], "best_val_loss": round(best["val_loss"], 6),
                                         "network": record})
    training.write_throughput("classifier", {"classifier": progress.throughput()}, "training images")
    checkpoint.clear()


def main() -> None:
    run_stage("train_classifier", train)


if __name__ == "__main__":
    main()
