"""Stage train_segmenter: SCR five-object segmentation (the network of `model.segmenter`: a MONAI U-Net by
default), one sigmoid map per object, trained with the master seed by the recipe of cxrbench.scr_segmenter: one
model per SCR fold. Logs with dvclive (dvclive/segmenter) and writes models/segmenter/{train_fold1.pt,
train_fold2.pt, config.json} and metrics/throughput_segmenter.json.
"""

from __future__ import annotations

from typing import Any

from cxrbench import artefacts, matrix, scr_segmenter, training
from cxrbench.fileio import atomic_path
from cxrbench.stages._app import run_stage


def train(params: dict[str, Any]) -> None:
    with atomic_path(artefacts.MODEL_SEGMENTER, is_dir=True) as out:
        progress, checkpoints = scr_segmenter.train(params, matrix.baseline_key("segmenter"), params["seed"], out,
                                                    "train_segmenter")
    # The folds train one after the other (independent random streams); their curves share the epoch axis.
    losses = {fold: run.metric("train/loss") for fold, run in progress.items()}
    training.log_history(artefacts.LIVE_SEGMENTER, [{f"fold{fold}/train/loss": losses[fold][epoch] for fold in losses}
                                                     for epoch in range(params["train"]["segmenter"]["epochs"])])
    training.write_throughput("segmenter", {f"fold{fold}": run.throughput() for fold, run in progress.items()},
                              "training images")
    for checkpoint in checkpoints:
        checkpoint.clear()


def main() -> None:
    run_stage("train_segmenter", train)


if __name__ == "__main__":
    main()
