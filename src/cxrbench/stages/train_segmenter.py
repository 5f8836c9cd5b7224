"""Stage train_segmenter: SCR five-object segmentation (MONAI U-Net, one sigmoid map per object).

Trains one model per SCR fold (the SCR protocol: train on one fold, test on the other, both directions),
Dice + BCE loss, on the decoded JSRT store. Logs with dvclive (dvclive/segmenter) and writes
models/segmenter/{train_fold1.pt, train_fold2.pt, config.json}.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from monai.losses import DiceLoss
from tqdm import tqdm

from cxrbench import store, training
from cxrbench.datasets.scr import OBJECTS
from cxrbench.fileio import atomic_path, write_json
from cxrbench.models.networks import build_segmenter
from cxrbench.stages._app import run_stage

log = logging.getLogger(__name__)
STORE = Path("data/store/jsrt")
OUT = Path("models/segmenter")
JSRT_MAX = 4095.0
TRAIN_SEED_STREAM = 301


def fold_rows(index: pd.DataFrame, split: pd.DataFrame, fold: int) -> np.ndarray:
    cases = split.loc[split["fold"] == fold, "case"]
    return np.sort(index.loc[index["case"].isin(cases), "row"].to_numpy(np.int64))


def train_fold(cfg, images, masks, rows, norm, seed, device, fold) -> tuple[dict[str, torch.Tensor], list[float]]:
    model = build_segmenter(cfg, len(OBJECTS)).to(device)
    optimiser = torch.optim.Adam(model.parameters(), lr=cfg["lr"])
    dice, bce = DiceLoss(sigmoid=True), torch.nn.BCEWithLogitsLoss()
    rng = np.random.default_rng([seed, TRAIN_SEED_STREAM, fold])
    epoch_losses = []
    for epoch in tqdm(range(cfg["epochs"]), desc=f"train on fold {fold}", unit="epoch"):
        model.train()
        losses = []
        for batch in training.shuffled_batches(rows, cfg["batch_size"], rng):
            x = training.to_input(images[batch], JSRT_MAX, *norm, device)
            y = torch.from_numpy(store.unpack_masks(masks[batch], len(OBJECTS))).to(device).float()
            logits = model(x)
            loss = dice(logits, y) + bce(logits, y)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            losses.append(loss.item())
        epoch_losses.append(float(np.mean(losses)))
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}, epoch_losses


def train(params: dict[str, Any]) -> None:
    cfg, seed = params["train"]["segmenter"], params["seed"]
    device = training.setup_torch(params["train"]["device"], params["train"]["threads"], seed)
    index, split = store.read_index(STORE), pd.read_csv("data/splits/scr.csv")
    images = store.open_array(store.find_images(STORE))
    masks = store.open_array(store.find_masks(STORE))
    states, norms, losses = {}, {}, {}
    for fold in (1, 2):
        rows = fold_rows(index, split, fold)
        norms[fold] = training.intensity_stats(images, rows, JSRT_MAX)
        log.info("training on fold %d (%d cases); it is tested on the other fold", fold, len(rows))
        states[fold], losses[fold] = train_fold(cfg, images, masks, rows, norms[fold], seed, device, fold)
    # The folds train one after the other (independent random streams); their curves share the epoch axis.
    with training.open_live(Path("dvclive/segmenter")) as live:
        for epoch in range(cfg["epochs"]):
            for fold in (1, 2):
                live.log_metric(f"fold{fold}/train/loss", round(losses[fold][epoch], 6))
            live.next_step()
    with atomic_path(OUT, is_dir=True) as out:
        for fold in (1, 2):
            training.save_checkpoint(out / f"train_fold{fold}.pt", {"state_dict": states[fold]})
        write_json(out / "config.json", {"objects": list(OBJECTS), "size": int(images.shape[-1]), "model": cfg["model"],
                                         "channels": cfg["channels"],
                                         "norm": {f"fold{f}": {"mean": m, "std": s} for f, (m, s) in norms.items()}})


def main() -> None:
    run_stage("train_segmenter", train)


if __name__ == "__main__":
    main()
