"""Stage train_classifier: NIH 14-label classifier (MONAI DenseNet-121), CheXNet-style recipe.

Reads the decoded store (memory-mapped uint8 + index) and data/splits/nih.csv; Adam, learning rate decayed on
a validation-loss plateau, random horizontal flips on the device, model chosen by validation loss. Logs per
epoch with dvclive (dvclive/classifier) and writes models/classifier/{model.pt, config.json}.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from cxrbench import store, training
from cxrbench.datasets.nih import LABELS
from cxrbench.fileio import atomic_path, write_json
from cxrbench.metrics.roc import roc_auc
from cxrbench.models.networks import build_classifier
from cxrbench.stages._app import run_stage

log = logging.getLogger(__name__)
STORE = Path("data/store/nih")
OUT = Path("models/classifier")
TRAIN_SEED_STREAM = 201


def split_rows(index: pd.DataFrame, split: pd.DataFrame, part: str) -> np.ndarray:
    row_of = dict(zip(index["image"], index["row"]))
    return np.sort(np.array([row_of[i] for i in split.loc[split["part"] == part, "image"]], dtype=np.int64))


@torch.no_grad()
def predict(model, images, rows, norm, batch_size, device) -> np.ndarray:
    model.eval()
    logits = [model(training.to_input(images[b], 255.0, *norm, device)).float().cpu()
              for b in training.ordered_batches(rows, batch_size)]
    return torch.cat(logits).numpy()


def train(params: dict[str, Any]) -> None:
    cfg, seed = params["train"]["classifier"], params["seed"]
    device = training.setup_torch(params["train"]["device"], params["train"]["threads"], seed)
    index, split = store.read_index(STORE), pd.read_csv("data/splits/nih.csv")
    images = store.open_array(store.find_images(STORE))
    targets = index[list(LABELS)].to_numpy(np.float32)
    train_rows, val_rows = split_rows(index, split, "train"), split_rows(index, split, "val")
    norm = training.intensity_stats(images, train_rows, 255.0)
    log.info("%d train / %d val images at %d px; mean %.3f std %.3f", len(train_rows), len(val_rows),
             images.shape[-1], *norm)

    model = build_classifier(cfg, len(LABELS)).to(device)
    optimiser = torch.optim.Adam(model.parameters(), lr=cfg["lr"], betas=(0.9, 0.999))
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimiser, factor=cfg["lr_decay"], patience=cfg["lr_patience"])
    loss_fn = torch.nn.BCEWithLogitsLoss()
    rng = np.random.default_rng([seed, TRAIN_SEED_STREAM])
    flips = torch.Generator().manual_seed(seed)
    best = {"val_loss": float("inf")}

    with training.open_live(Path("dvclive/classifier")) as live:
        for epoch in range(cfg["epochs"]):
            model.train()
            losses = []
            batches = list(training.shuffled_batches(train_rows, cfg["batch_size"], rng))
            for rows in tqdm(batches, desc=f"epoch {epoch + 1}/{cfg['epochs']}", unit="batch"):
                x = training.to_input(images[rows], 255.0, *norm, device)
                if cfg["hflip"]:
                    x = training.random_hflip(x, flips)
                loss = loss_fn(model(x), torch.from_numpy(targets[rows]).to(device))
                optimiser.zero_grad(set_to_none=True)
                loss.backward()
                optimiser.step()
                losses.append(loss.item())
            val_logits = predict(model, images, val_rows, norm, cfg["batch_size"], device)
            val_loss = float(loss_fn(torch.from_numpy(val_logits), torch.from_numpy(targets[val_rows])))
            val_auc = float(np.nanmean(roc_auc(targets[val_rows], val_logits)))
            scheduler.step(val_loss)
            for name, value in (("train/loss", np.mean(losses)), ("val/loss", val_loss), ("val/mean_auc", val_auc),
                                ("lr", optimiser.param_groups[0]["lr"])):
                live.log_metric(name, round(float(value), 6))
            live.next_step()
            log.info("epoch %d: train loss %.4f, val loss %.4f, val mean AUC %.4f", epoch + 1, np.mean(losses), val_loss, val_auc)
            if val_loss < best["val_loss"]:
                best = {"val_loss": val_loss, "epoch": epoch + 1, "state": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}}

    log.info("best epoch %d (val loss %.4f)", best["epoch"], best["val_loss"])
    with atomic_path(OUT, is_dir=True) as out:
        training.save_checkpoint(out / "model.pt", {"state_dict": best["state"]})
        write_json(out / "config.json", {"labels": list(LABELS), "size": int(images.shape[-1]), "mean": norm[0],
                                         "std": norm[1], "best_epoch": best["epoch"], "best_val_loss": round(best["val_loss"], 6),
                                         "model": cfg["model"]})


def main() -> None:
    run_stage("train_classifier", train)


if __name__ == "__main__":
    main()
