"""Stage train_segmenter: SCR five-object segmentation (the network of `model.segmenter`: a MONAI U-Net by
default), one sigmoid map per object.

Trains one model per SCR fold (the SCR protocol: train on one fold, test on the other, both directions),
Dice + BCE loss, on the decoded JSRT store. Logs with dvclive (dvclive/segmenter) and writes
models/segmenter/{train_fold1.pt, train_fold2.pt, config.json} and metrics/throughput_segmenter.json. Checkpoints every epoch; a killed run
resumes where it stopped and ends in the same state.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd
import torch
from monai.losses import DiceLoss

from cxrbench import artefacts, config, engine, seed_streams, store, training
from cxrbench.fileio import atomic_path, write_json
from cxrbench.models import networks
from cxrbench.splits import fold_rows
from cxrbench.stages._app import run_stage
from cxrbench.vocabulary import JSRT_MAX, OBJECTS

log = logging.getLogger(__name__)
STORE = artefacts.STORE_JSRT
SPLIT = artefacts.SPLIT_SCR
OUT = artefacts.MODEL_SEGMENTER


def segmenter_batches(images: np.ndarray, masks: np.ndarray, rows: np.ndarray, cfg: dict[str, Any],
                      norm: tuple[float, float], runtime: dict[str, Any], device: torch.device) -> engine.Batches:
    """The fold's images and their five object masks, shuffled each epoch (no augmentation)."""
    def epoch(rng: np.random.Generator, _generator: None) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for batch in training.shuffled_batches(rows, cfg["batch_size"], rng):
            x = training.to_input(images[batch], JSRT_MAX, *norm, device, runtime["channels_last"])
            y = torch.from_numpy(store.unpack_masks(masks[batch], len(OBJECTS))).to(device, non_blocking=True).float()
            yield x, y
    return epoch


def train_fold(cfg, network, runtime, images, masks, rows, norm, seed, device, fold,
               checkpoint) -> tuple[torch.nn.Module, dict[str, Any], engine.Progress]:
    """Train one fold's model (resuming from its checkpoint); return it, its config.json record, and the
    run's progress."""
    size = images.shape[-1]
    model, record = networks.ready_to_train(network, "model.segmenter", size, (2, len(OBJECTS), size, size),
                                            "the SCR segmenter (one logit map per object, at the input's size)",
                                            runtime, device)
    dice, bce = DiceLoss(sigmoid=True), torch.nn.BCEWithLogitsLoss()
    progress = engine.fit(model, torch.optim.Adam(model.parameters(), lr=cfg["lr"]),
                          segmenter_batches(images, masks, rows, cfg, norm, runtime, device),
                          lambda logits, y: dice(logits, y) + bce(logits, y), epochs=cfg["epochs"],
                          checkpoint=checkpoint, rng=np.random.default_rng([seed, seed_streams.TRAIN_SEGMENTER, fold]),
                          runtime=runtime, device=device, desc=f"train on fold {fold}")
    return model, record, progress


def train(params: dict[str, Any]) -> None:
    cfg, runtime, seed = params["train"]["segmenter"], params["train"]["runtime"], params["seed"]
    network = params["model"]["segmenter"]
    device = training.setup_torch(runtime, seed)
    index, split = store.read_index(STORE), pd.read_csv(SPLIT)
    images = store.open_array(store.find_images(STORE))
    masks = store.open_array(store.find_masks(STORE))
    run = training.fingerprint({"seed": seed, "train": params["train"], "model": network}, store.find_images(STORE),
                               store.find_masks(STORE), STORE / store.INDEX, SPLIT, *config.init_files(network))
    checkpoints = {fold: training.EpochCheckpoint(f"train_segmenter_fold{fold}", run) for fold in (1, 2)}
    states, norms, losses, rates = {}, {}, {}, {}
    for fold in (1, 2):
        rows = fold_rows(index, split, fold)
        norms[fold] = networks.input_normalisation(network, training.intensity_stats(images, rows, JSRT_MAX))
        log.info("training on fold %d (%d cases); it is tested on the other fold", fold, len(rows))
        model, record, progress = train_fold(cfg, network, runtime, images, masks, rows, norms[fold], seed, device,
                                             fold, checkpoints[fold])
        states[fold], losses[fold] = training.state_dict(model), progress.metric("train/loss")
        rates[f"fold{fold}"] = progress.throughput()
    # The folds train one after the other (independent random streams); their curves share the epoch axis.
    training.log_history(artefacts.LIVE_SEGMENTER, [{f"fold{fold}/train/loss": losses[fold][epoch] for fold in (1, 2)}
                                                     for epoch in range(cfg["epochs"])])
    with atomic_path(OUT, is_dir=True) as out:
        for fold in (1, 2):
            training.save_checkpoint(out / f"train_fold{fold}.pt", {"state_dict": states[fold]})
        write_json(out / "config.json", {"objects": list(OBJECTS), "size": int(images.shape[-1]),
                                         "network": record,
                                         "norm": {f"fold{f}": {"mean": m, "std": s} for f, (m, s) in norms.items()}})
    training.write_throughput("segmenter", rates, "training images")
    for checkpoint in checkpoints.values():
        checkpoint.clear()


def main() -> None:
    run_stage("train_segmenter", train)


if __name__ == "__main__":
    main()
