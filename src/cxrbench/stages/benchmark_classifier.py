"""Stage benchmark_classifier: one cell of the NIH classifier's benchmark matrix (cxrbench.matrix), run as
`python -m cxrbench.stages.benchmark_classifier +instance.model=<model> +instance.seed=<seed>` (dvc.yaml holds one
such stage per cell, benchmark_classifier-<model>-seed<seed>). Trains the model's network with that seed by the recipe every NIH
classifier here trains with (cxrbench.nih_classifier), then scores the test part.

Writes models/benchmark/classifier/<model>-seed<seed>/: model.pt and config.json (as models/classifier/),
history.csv (per epoch: training and validation loss, validation mean AUC, learning rate) and predictions.csv
(the format of cxrbench.predictions, which rank_classifiers reads).
"""

from __future__ import annotations

import logging
from typing import Any

import pandas as pd

from cxrbench import matrix, nih_classifier
from cxrbench.fileio import atomic_path
from cxrbench.predictions import predictions_frame
from cxrbench.stages._app import run_stage

log = logging.getLogger(__name__)
TASK = "classifier"


def run(params: dict[str, Any]) -> None:
    cell = matrix.cell_of(params, TASK)
    log.info("cell %s: %s with seed %d", cell.name, cell.network_key, cell.seed)
    with atomic_path(cell.folder, is_dir=True) as folder:
        progress, checkpoint = nih_classifier.train(params, cell.network_key, cell.seed, folder, cell.stage)
        pd.DataFrame([{"epoch": epoch, **metrics} for epoch, metrics in enumerate(progress.history, start=1)]).round(6)\
            .to_csv(folder / matrix.HISTORY, index=False, lineterminator="\n")
        scorer = nih_classifier.Scorer(folder, params["train"]["runtime"], cell.seed)
        predictions = predictions_frame(scorer.index, scorer.rows("test"), scorer.scores("test"))
        predictions.to_csv(folder / matrix.SCORED[TASK], index=False, lineterminator="\n", float_format="%.6f")
    checkpoint.clear()


def main() -> None:
    run_stage("benchmark_classifier", run)


if __name__ == "__main__":
    main()
