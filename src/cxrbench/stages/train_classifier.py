"""Stage train_classifier: NIH 14-label classifier (MONAI DenseNet-121), CheXNet-style recipe.

Reads the decoded store (memory-mapped uint8 + index) and data/splits/nih.csv; Adam, learning rate decayed on
a validation-loss plateau, random horizontal flips on the device, model chosen by validation loss. On CUDA:
bf16 autocast, channels_last, pinned non-blocking copies and torch.compile, as train.runtime says. Logs per
epoch with dvclive (dvclive/classifier), checkpoints every epoch (a killed run resumes where it stopped and
ends in the same state), and writes models/classifier/{model.pt, config.json}.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from cxrbench import artefacts, seed_streams, store, training
from cxrbench.fileio import atomic_path, write_json
from cxrbench.metrics.roc import roc_auc
from cxrbench.models.networks import build_classifier
from cxrbench.stages._app import run_stage
from cxrbench.vocabulary import LABELS

log = logging.getLogger(__name__)
STORE = artefacts.STORE_NIH
SPLIT = artefacts.SPLIT_NIH
OUT = artefacts.MODEL_CLASSIFIER


def split_rows(index: pd.DataFrame, split: pd.DataFrame, part: str) -> np.ndarray:
    row_of = dict(zip(index["image"], index["row"]))
    return np.sort(np.array([row_of[i] for i in split.loc[split["part"] == part, "image"]], dtype=np.int64))


@torch.no_grad()
def predict(model, images, rows, norm, batch_size, device, runtime) -> np.ndarray:
    """Logits (n, k) for `rows` of the store, in row order."""
    model.eval()
    logits = []
    for batch in training.ordered_batches(rows, batch_size):
        with training.autocast(runtime, device):
            logits.append(model(training.to_input(images[batch], 255.0, *norm, device, runtime["channels_last"])).float().cpu())
    return torch.cat(logits).numpy()


def train(params: dict[str, Any]) -> None:
    cfg, runtime, seed = params["train"]["classifier"], params["train"]["runtime"], params["seed"]
    device = training.setup_torch(runtime, seed)
    index, split = store.read_index(STORE), pd.read_csv(SPLIT)
    images = store.open_array(store.find_images(STORE))
    targets = index[list(LABELS)].to_numpy(np.float32)
    train_rows, val_rows = split_rows(index, split, "train"), split_rows(index, split, "val")
    norm = training.intensity_stats(images, train_rows, 255.0)
    log.info("%d train / %d val images at %d px; mean %.3f std %.3f; device %s", len(train_rows), len(val_rows),
             images.shape[-1], *norm, device)

    model = training.prepare_model(build_classifier(cfg, len(LABELS)), runtime, device)
    optimiser = torch.optim.Adam(model.parameters(), lr=cfg["lr"], betas=(0.9, 0.999))
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimiser, factor=cfg["lr_decay"], patience=cfg["lr_patience"])
    loss_fn = torch.nn.BCEWithLogitsLoss()
    rng = np.random.default_rng([seed, seed_streams.TRAIN_CLASSIFIER])
    flips = torch.Generator().manual_seed(seed)
    checkpoint = training.EpochCheckpoint("train_classifier", training.fingerprint(
        {"seed": seed, "train": params["train"]}, store.find_images(STORE), STORE / store.INDEX, SPLIT))
    state = {"epoch": 0, "history": [], "best": {"val_loss": float("inf")}}
    if (resumed := checkpoint.load()) is not None:
        training.load_weights(model, resumed["model"])
        optimiser.load_state_dict(resumed["optimiser"])
        scheduler.load_state_dict(resumed["scheduler"])
        training.restore_rng_state(resumed["rng"], rng, flips)
        state = {k: resumed[k] for k in state}

    for epoch in range(state["epoch"], cfg["epochs"]):
        model.train()
        losses, started = [], time.perf_counter()
        batches = list(training.shuffled_batches(train_rows, cfg["batch_size"], rng))
        for rows in tqdm(batches, desc=f"epoch {epoch + 1}/{cfg['epochs']}", unit="batch"):
            x = training.to_input(images[rows], 255.0, *norm, device, runtime["channels_last"])
            if cfg["hflip"]:
                x = training.random_hflip(x, flips)
            with training.autocast(runtime, device):
                loss = loss_fn(model(x).float(), torch.from_numpy(targets[rows]).to(device, non_blocking=True))
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            losses.append(loss.detach())
        train_loss = float(torch.stack(losses).mean())
        seconds = time.perf_counter() - started
        val_logits = predict(model, images, val_rows, norm, cfg["batch_size"] * 4, device, runtime)
        val_loss = float(loss_fn(torch.from_numpy(val_logits), torch.from_numpy(targets[val_rows])))
        val_auc = float(np.nanmean(roc_auc(targets[val_rows], val_logits)))
        scheduler.step(val_loss)
        state["history"].append({"train/loss": train_loss, "val/loss": val_loss, "val/mean_auc": val_auc,
                                 "lr": optimiser.param_groups[0]["lr"]})
        log.info("epoch %d: train loss %.4f, val loss %.4f, val mean AUC %.4f (%.0f train images/s)",
                 epoch + 1, train_loss, val_loss, val_auc, len(train_rows) / seconds)
        if val_loss < state["best"]["val_loss"]:
            state["best"] = {"val_loss": val_loss, "epoch": epoch + 1, "model": training.state_dict(model)}
        state["epoch"] = epoch + 1
        checkpoint.save({**state, "model": training.state_dict(model), "optimiser": optimiser.state_dict(),
                         "scheduler": scheduler.state_dict(), "rng": training.rng_state(rng, flips)})

    training.log_history(artefacts.LIVE_CLASSIFIER, state["history"])
    best = state["best"]
    log.info("best epoch %d (val loss %.4f)", best["epoch"], best["val_loss"])
    with atomic_path(OUT, is_dir=True) as out:
        training.save_checkpoint(out / "model.pt", {"state_dict": best["model"]})
        write_json(out / "config.json", {"labels": list(LABELS), "size": int(images.shape[-1]), "mean": norm[0],
                                         "std": norm[1], "best_epoch": best["epoch"],
                                         "best_val_loss": round(best["val_loss"], 6), "model": cfg["model"]})
    checkpoint.clear()


def main() -> None:
    run_stage("train_classifier", train)


if __name__ == "__main__":
    main()
