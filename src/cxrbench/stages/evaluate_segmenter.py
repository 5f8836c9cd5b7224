"""Stage evaluate_segmenter: SCR overlap per object (Jaccard = the benchmark's Omega, Dice), mean contour
distance in mm and the SCR site's pixel error, for each fold tested with the model trained on the other
(scored by cxrbench.segmentation_scores, as outside predictions are).

Writes metrics/segmenter.json (mean and sd over images, per fold and overall) and results/segmenter/
{cases.csv (one row per case and object), predictions_<S>.npy (packed masks, store order)}.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import numpy as np
import pandas as pd
import torch

from cxrbench import artefacts, engine, store, training
from cxrbench.fileio import atomic_path, write_json
from cxrbench.models import networks
from cxrbench.segmentation_scores import TEST_FOLDS, score_masks
from cxrbench.splits import fold_rows
from cxrbench.stages._app import run_stage
from cxrbench.vocabulary import JSRT_MAX

log = logging.getLogger(__name__)
STORE = artefacts.STORE_JSRT
MODEL = artefacts.MODEL_SEGMENTER


def segment(model, images, rows, norm, device, runtime, batch_size=8) -> np.ndarray:
    """(n, k, S, S) bool masks: each object's sigmoid thresholded at 0.5."""
    def masks(x: torch.Tensor, _positions: slice) -> torch.Tensor:
        return torch.sigmoid(model(x).float()) >= 0.5

    return engine.predict(model, images, rows, JSRT_MAX, norm, runtime, device, batch_size, forward=masks).numpy()


def evaluate(params: dict[str, Any]) -> None:
    runtime = {**params["train"]["runtime"], "compile": False}
    device = training.setup_torch(runtime, params["seed"])
    model_cfg = json.loads((MODEL / "config.json").read_text())
    index, split = store.read_index(STORE), pd.read_csv(artefacts.SPLIT_SCR)
    images = store.open_array(store.find_images(STORE))
    masks = store.open_array(store.find_masks(STORE))
    size = images.shape[-1]
    predicted = np.zeros(masks.shape, dtype=np.uint8)
    for test_fold, train_fold in TEST_FOLDS:
        model = networks.load_trained(model_cfg["network"], MODEL / f"train_fold{train_fold}.pt", runtime, device)
        norm = model_cfg["norm"][f"fold{train_fold}"]
        rows = fold_rows(index, split, test_fold)
        pred = segment(model, images, rows, (norm["mean"], norm["std"]), device, runtime)
        predicted[rows] = [store.pack_masks(p) for p in pred]
    metrics, cases = score_masks(predicted, index, split, masks)
    for obj, m in metrics["overall"]["objects"].items():
        log.info("%-15s Jaccard %.3f +- %.3f  Dice %.3f", obj, m["jaccard"]["mean"], m["jaccard"]["sd"], m["dice"]["mean"])
    write_json(artefacts.METRICS_SEGMENTER, metrics)
    with atomic_path(artefacts.RESULTS_SEGMENTER, is_dir=True) as out:
        cases.to_csv(out / "cases.csv", index=False, lineterminator="\n")
        np.save(out / f"predictions_{size}.npy", predicted)


def main() -> None:
    run_stage("evaluate_segmenter", evaluate)


if __name__ == "__main__":
    main()
