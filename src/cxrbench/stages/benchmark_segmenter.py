"""Stage benchmark_segmenter: one cell of the SCR segmenter's benchmark matrix (cxrbench.matrix), run as
`python -m cxrbench.stages.benchmark_segmenter +instance.model=<model> +instance.seed=<seed>` (dvc.yaml holds one
such stage per cell, benchmark_segmenter-<model>-seed<seed>). Trains the model's network with that seed on each
SCR fold by the recipe of cxrbench.scr_segmenter, segments every case with the model of the other fold and scores
it as evaluate_segmenter does (cxrbench.segmentation_scores: at 1024 px, the published and the single objects).

Writes models/benchmark/segmenter/<model>-seed<seed>/: train_fold1.pt, train_fold2.pt and config.json (as
models/segmenter/), history.csv (per epoch, each fold's training loss), cases.csv (per case and object: Jaccard,
Dice, contour distance, pixel error; what rank_segmenters reads) and scores.json (their means per fold and overall).
"""

from __future__ import annotations

import logging
from typing import Any

import pandas as pd

from cxrbench import artefacts, matrix, scr_segmenter, store
from cxrbench.fileio import atomic_path, write_json
from cxrbench.segmentation_scores import score_masks
from cxrbench.stages._app import run_stage

log = logging.getLogger(__name__)
TASK = "segmenter"


def run(params: dict[str, Any]) -> None:
    cell = matrix.cell_of(params, TASK)
    log.info("cell %s: %s with seed %d", cell.name, cell.network_key, cell.seed)
    with atomic_path(cell.folder, is_dir=True) as folder:
        progress, checkpoints = scr_segmenter.train(params, cell.network_key, cell.seed, folder, cell.stage)
        history = pd.DataFrame({f"fold{fold}/train/loss": run.metric("train/loss") for fold, run in progress.items()})
        history.insert(0, "epoch", range(1, len(history) + 1))
        history.round(6).to_csv(folder / matrix.HISTORY, index=False, lineterminator="\n")
        predicted, index, split = scr_segmenter.segment_cases(folder, params["train"]["runtime"], cell.seed)
        metrics, cases = score_masks(predicted, index, split,
                                     store.open_array(store.find_reference_masks(artefacts.STORE_JSRT)),
                                     store.open_array(store.find_images(artefacts.STORE_JSRT)).shape[-1])
        cases.to_csv(folder / matrix.SCORED[TASK], index=False, lineterminator="\n")
        write_json(folder / artefacts.SCORES, metrics)
    for checkpoint in checkpoints:
        checkpoint.clear()


def main() -> None:
    run_stage("benchmark_segmenter", run)


if __name__ == "__main__":
    main()
