"""Stage train_classifier: the NIH 14-label classifier every NIH analysis reads (the network of
`model.classifier`: DenseNet-121 by default, as in CheXNet), trained with the master seed by the recipe of
cxrbench.nih_classifier. The network starts from random weights, ImageNet's or a checkpoint of ours
(`model.classifier.init`). Logs per epoch with dvclive (dvclive/classifier) and writes
models/classifier/{model.pt, config.json} and metrics/throughput_classifier.json.
"""

from __future__ import annotations

from typing import Any

from cxrbench import artefacts, matrix, nih_classifier, training
from cxrbench.fileio import atomic_path
from cxrbench.stages._app import run_stage


def train(params: dict[str, Any]) -> None:
    with atomic_path(artefacts.MODEL_CLASSIFIER, is_dir=True) as out:
        progress, checkpoint = nih_classifier.train(params, matrix.baseline_key("classifier"), params["seed"], out, "train_classifier")
    training.log_history(artefacts.LIVE_CLASSIFIER, progress.history)
    training.write_throughput("classifier", {"classifier": progress.throughput()}, "training images")
    checkpoint.clear()


def main() -> None:
    run_stage("train_classifier", train)


if __name__ == "__main__":
    main()
