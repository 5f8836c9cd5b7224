"""Stage train_nodules: the JSRT nodule models of the master seed, one per cross-validation fold and kind
(cxrbench.nodules.models): the malignancy classifiers (`model.nodule_classifier`, on the nodule ROIs) and the
nodule heat maps (`model.nodule_heatmap`; the peak also scores nodule vs no nodule). The models train one after
another, each from its own random streams; each epoch ends with a checkpoint (checkpoints/train_nodules_<model>.pt),
so a killed run resumes after the last completed epoch and ends in the same state as an uninterrupted one. Writes
models/nodules/ (the models and config.json), metrics/throughput_nodules.json and dvclive/nodules (training loss
per epoch, mean over folds).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from cxrbench import artefacts, training
from cxrbench.fileio import atomic_path
from cxrbench.nodules import models
from cxrbench.stages._app import run_stage


def train(params: dict[str, Any]) -> None:
    trained = [models.train(params, kind, f"model.{network}", params["seed"], "train_nodules")
               for kind, network in models.NETWORK.items()]
    # The folds train one after the other; each curve is the mean over the folds of one kind of model.
    curves = {models.CURVE[kind.kind]: np.mean(list(kind.losses.values()), axis=0) for kind in trained}
    epochs = max(len(curve) for curve in curves.values())
    training.log_history(artefacts.LIVE_NODULES, [{f"{name}/train/loss": curve[epoch] for name, curve
                                                   in sorted(curves.items()) if epoch < len(curve)}
                                                  for epoch in range(epochs)])
    with atomic_path(artefacts.MODEL_NODULES, is_dir=True) as out:
        models.write_models(out, params, *trained)
    training.write_throughput("nodules", {name: rate for kind in trained for name, rate in kind.rates.items()},
                              "training ROIs (classifiers) and patches (heat maps)")
    for checkpoint in (c for kind in trained for c in kind.checkpoints):
        checkpoint.clear()


def main() -> None:
    run_stage("train_nodules", train)


if __name__ == "__main__":
    main()
