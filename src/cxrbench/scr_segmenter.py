"""The SCR segmenter's recipe: five overlapping objects (one sigmoid map each), one model per SCR fold (the SCR
protocol: train on one fold, test on the other, both directions), Dice + BCE loss, on the decoded JSRT store;
and the segmentation of every case by the model that did not see it. train_segmenter (the model the SCR analyses
read) and every cell of the segmenter's benchmark matrix (benchmark_segmenter) train and segment with it.
Checkpoints every epoch per fold: a killed run resumes where it stopped and ends in the same state.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from monai.losses import DiceLoss

from cxrbench import artefacts, config, engine, matrix, seed_streams, store, training
from cxrbench.fileio import write_json
from cxrbench.models import networks
from cxrbench.segmentation_scores import TEST_FOLDS, to_reference_size
from cxrbench.splits import fold_rows
from cxrbench.vocabulary import JSRT_MAX, OBJECTS, SCR_MASK_SIZE

log = logging.getLogger(__name__)
STORE, SPLIT = artefacts.STORE_JSRT, artefacts.SPLIT_SCR
FOLDS = (1, 2)


def segmenter_batches(images: np.ndarray, masks: np.ndarray, rows: np.ndarray, cfg: dict[str, Any],
                      norm: tuple[float, float], runtime: dict[str, Any], device: torch.device) -> engine.Batches:
    """The fold's images and their five object masks, shuffled each epoch (no augmentation)."""
    def epoch(rng: np.random.Generator, _generator: None) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for batch in training.shuffled_batches(rows, cfg["batch_size"], rng):
            x = training.to_input(images[batch], JSRT_MAX, *norm, device, runtime["channels_last"])
            y = torch.from_numpy(store.unpack_masks(masks[batch], len(OBJECTS))).to(device, non_blocking=True).float()
            yield x, y
    return epoch


def train_fold(cfg, network, key, runtime, images, masks, rows, norm, seed, device, fold,
               checkpoint) -> tuple[torch.nn.Module, dict[str, Any], engine.Progress]:
    """Train one fold's model (resuming from its checkpoint); return it, its config.json record, and the
    run's progress."""
    size = images.shape[-1]
    model, record = networks.ready_to_train(network, key, size, (2, len(OBJECTS), size, size),
                                            "the SCR segmenter (one logit map per object, at the input's size)",
                                            runtime, device)
    dice, bce = DiceLoss(sigmoid=True), torch.nn.BCEWithLogitsLoss()
    progress = engine.fit(model, torch.optim.Adam(model.parameters(), lr=cfg["lr"]),
                          segmenter_batches(images, masks, rows, cfg, norm, runtime, device),
                          lambda logits, y: dice(logits, y) + bce(logits, y), epochs=cfg["epochs"],
                          checkpoint=checkpoint, rng=np.random.default_rng([seed, seed_streams.TRAIN_SEGMENTER, fold]),
                          runtime=runtime, device=device, desc=f"train on fold {fold}")
    return model, record, progress


def train(params: dict[str, Any], key: str, seed: int, out: Path,
          run_name: str) -> tuple[dict[int, engine.Progress], list[training.EpochCheckpoint]]:
    """Train the network whose config params hold at the dotted `key` (model.segmenter, or a challenger of the
    benchmark matrix) with `seed` on each fold, by params' train.segmenter and train.runtime; write
    train_fold1.pt, train_fold2.pt and config.json into the folder `out` (which the caller writes atomically).
    `run_name` names the checkpoints (checkpoints/<run_name>_fold<k>.pt). Returns each fold's progress and the
    checkpoints, for the caller to clear once its outputs are in place."""
    cfg, runtime, network = params["train"]["segmenter"], params["train"]["runtime"], matrix.network(params, key)
    device = training.setup_torch(runtime, seed)
    index, split = store.read_index(STORE), pd.read_csv(SPLIT)
    images = store.open_array(store.find_images(STORE))
    masks = store.open_array(store.find_masks(STORE))
    run = training.fingerprint({"seed": seed, "train": params["train"], "model": network}, store.find_images(STORE),
                               store.find_masks(STORE), STORE / store.INDEX, SPLIT, *config.init_files(network))
    checkpoints = {fold: training.EpochCheckpoint(f"{run_name}_fold{fold}", run) for fold in FOLDS}
    states, norms, progress = {}, {}, {}
    for fold in FOLDS:
        rows = fold_rows(index, split, fold)
        norms[fold] = networks.input_normalisation(network, training.intensity_stats(images, rows, JSRT_MAX))
        log.info("%s: training on fold %d (%d cases); it is tested on the other fold", network["name"], fold, len(rows))
        model, record, progress[fold] = train_fold(cfg, network, key, runtime, images, masks, rows, norms[fold], seed,
                                                   device, fold, checkpoints[fold])
        states[fold] = training.state_dict(model)
    for fold in FOLDS:
        training.save_checkpoint(out / f"train_fold{fold}.pt", {"state_dict": states[fold]})
    write_json(out / artefacts.MODEL_CONFIG, {"objects": list(OBJECTS), "size": int(images.shape[-1]),
                                              "network": record,
                                              "norm": {f"fold{f}": {"mean": m, "std": s} for f, (m, s) in norms.items()}})
    return progress, list(checkpoints.values())


def segment(model, images, rows, norm, device, runtime, batch_size=8) -> np.ndarray:
    """(n, 1024, 1024) uint8 packed masks of `rows`, scored as the SCR benchmark scores: each object's sigmoid
    probabilities brought up to the reference masks' 1024 px (segmentation_scores.to_reference_size), on the
    device, then packed on the host a batch at a time."""
    def masks(x: torch.Tensor, _positions: slice) -> torch.Tensor:
        return to_reference_size(torch.sigmoid(model(x).float()))

    return np.concatenate([store.pack_masks(batch.numpy()) for batch in
                           engine.predict_batches(model, images, rows, JSRT_MAX, norm, runtime, device, batch_size,
                                                  forward=masks)])


def segment_cases(model_dir: Path, runtime: dict[str, Any], seed: int) -> tuple[np.ndarray, pd.DataFrame, pd.DataFrame]:
    """Every case segmented by the model trained on the other fold (a folder `train` wrote): packed masks
    (cases, 1024, 1024) uint8 in store order, with the store's index and the split."""
    runtime = {**runtime, "compile": False}  # one pass per model: not worth compiling
    device = training.setup_torch(runtime, seed)
    model_cfg = json.loads((model_dir / artefacts.MODEL_CONFIG).read_text())
    index, split = store.read_index(STORE), pd.read_csv(SPLIT)
    images = store.open_array(store.find_images(STORE))
    predicted = np.zeros((images.shape[0], SCR_MASK_SIZE, SCR_MASK_SIZE), dtype=np.uint8)
    for test_fold, train_fold in TEST_FOLDS:
        model = networks.load_trained(model_cfg["network"], model_dir / f"train_fold{train_fold}.pt", runtime, device)
        norm = model_cfg["norm"][f"fold{train_fold}"]
        rows = fold_rows(index, split, test_fold)
        predicted[rows] = segment(model, images, rows, (norm["mean"], norm["std"]), device, runtime)
    return predicted, index, split
