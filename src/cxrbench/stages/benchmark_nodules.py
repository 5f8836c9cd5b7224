"""Stage benchmark_nodules: one cell of a JSRT nodule model's benchmark matrix (cxrbench.matrix), the nodule
classifier's or the nodule heat map's, run as `python -m cxrbench.stages.benchmark_nodules +instance.task=<task>
+instance.model=<model> +instance.seed=<seed>` (dvc.yaml holds one such stage per cell,
benchmark_nodule_classifier-<model>-seed<seed> and benchmark_nodule_heatmap-<model>-seed<seed>). Trains that kind
of model with the cell's network and seed on every fold by the recipe of cxrbench.nodules.models, and scores
every case with the model of the fold that held it out.

Writes models/benchmark/<task>/<model>-seed<seed>/: the fold models and config.json (as models/nodules/, for one
kind), history.csv (per epoch, each fold's training loss), predictions.csv (case, task, fold, score: the task
scores of results/nodules/predictions.csv) and, for a heat map, candidates.csv (case, fold, x, y, score: its
candidates, as results/nodules/candidates.csv); rank_nodules reads them.
"""

from __future__ import annotations

import logging
from typing import Any

import pandas as pd

from cxrbench import matrix, store, training
from cxrbench.errors import DataError
from cxrbench.fileio import atomic_path
from cxrbench.nodules import models
from cxrbench.stages._app import run_stage

log = logging.getLogger(__name__)


def run(params: dict[str, Any]) -> None:
    task = params.get("instance", {}).get("task")
    if task not in models.KIND_OF:
        raise DataError("params.yaml", f"instance.task is {task!r}, not a nodule model's matrix",
                        f"run it with +instance.task= one of {', '.join(models.KIND_OF)} (dvc.yaml's stages do)")
    cell, kind = matrix.cell_of(params, task), models.KIND_OF[task]
    log.info("cell %s of %s: %s with seed %d", cell.name, task, cell.network_key, cell.seed)
    csv = {"index": False, "lineterminator": "\n", "float_format": "%.6f"}
    with atomic_path(cell.folder, is_dir=True) as folder:
        trained = models.train(params, kind, cell.network_key, cell.seed, cell.stage)
        history = pd.DataFrame({f"{name}/train/loss": losses for name, losses in trained.losses.items()})
        history.insert(0, "epoch", range(1, len(history) + 1))
        history.round(6).to_csv(folder / matrix.HISTORY, index=False, lineterminator="\n")
        models.write_models(folder, params, trained)
        runtime = {**params["train"]["runtime"], "compile": False}  # one pass per model: not worth compiling
        device = training.setup_torch(runtime, cell.seed)
        index = store.read_index(models.STORE).sort_values("row", ignore_index=True)
        images = store.open_array(store.find_images(models.STORE))
        rois = store.open_array(store.find_nodule_rois(models.STORE))
        scores, candidates = models.out_of_fold(folder, index, pd.read_csv(models.SPLIT), images, rois,
                                                params["nodules"]["candidates"], runtime, device)
        scores.sort_values(["task", "case"], ignore_index=True).to_csv(folder / matrix.SCORED[task], **csv)
        if kind == "heatmap":
            candidates.sort_values(["case", "score"], ascending=[True, False], ignore_index=True)\
                .to_csv(folder / matrix.CANDIDATES, **csv)
    for checkpoint in trained.checkpoints:
        checkpoint.clear()


def main() -> None:
    run_stage("benchmark_nodules", run)


if __name__ == "__main__":
    main()
