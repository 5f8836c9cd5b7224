"""Stage evaluate_external: does the NIH classifier hold on another hospital's images? Its Nodule and Mass outputs
scored on every JSRT case (154 with a nodule, 93 without on the real data; Japanese hospitals, film digitised at
0.175 mm), whose images it never saw.

The JSRT store's images are brought to the NIH store's convention first: the display convention both stores keep
(bright bone), 12-bit values scaled to 8 bits, and the classifier's input size (area resampling, as the decode
stages do). A case's score is max(p_Nodule, p_Mass), the NIH outputs that answer "is there a nodule" (as the
expert-label evaluation maps Nodule/mass). ROC AUC against JSRT's nodule label with a 95% bootstrap interval over
cases (each case one patient), and per subtlety: that subtlety's nodule cases against every case without a nodule,
as in the JSRT observer study. Runs only when the run has both NIH and JSRT.

Writes metrics/external_jsrt.json and results/external/jsrt_scores.csv (case, nodule, subtlety, the two outputs
and the score).
"""

from __future__ import annotations

import json
import logging
from typing import Any

import cv2
import numpy as np
import pandas as pd
import torch

from cxrbench import artefacts, engine, seed_streams, store, training
from cxrbench.fileio import atomic_path, write_json
from cxrbench.models import networks
from cxrbench.nodules.case_aucs import auc_summary, by_subtlety
from cxrbench.stages._app import run_stage
from cxrbench.vocabulary import JSRT_MAX, LABELS, NIH_MAX

log = logging.getLogger(__name__)
MODEL = artefacts.MODEL_CLASSIFIER
STORE = artefacts.STORE_JSRT
OUTPUTS = ("Nodule", "Mass")  # the NIH outputs whose maximum scores "is there a nodule"


def to_nih_convention(images: np.ndarray, size: int) -> np.ndarray:
    """JSRT store images ((n, S, S) uint16, display convention, 0..4095) as the NIH store keeps its images:
    (n, size, size) uint8 0..255, area-resampled."""
    eight_bit = np.rint(images.astype(np.float64) * (NIH_MAX / JSRT_MAX)).astype(np.uint8)
    if eight_bit.shape[-1] == size:
        return eight_bit
    interpolation = cv2.INTER_AREA if size < eight_bit.shape[-1] else cv2.INTER_LINEAR
    return np.stack([cv2.resize(image, (size, size), interpolation=interpolation) for image in eight_bit])


def evaluate(params: dict[str, Any]) -> None:
    runtime = {**params["train"]["runtime"], "compile": False}
    device = training.setup_torch(runtime, params["seed"])
    model_cfg = json.loads((MODEL / "config.json").read_text())
    model = networks.load_trained(model_cfg["network"], MODEL / "model.pt", runtime, device)
    index = store.read_index(STORE).sort_values("row", ignore_index=True)
    images = to_nih_convention(store.open_array(store.find_images(STORE)), model_cfg["size"])
    probabilities = torch.sigmoid(engine.predict(model, images, index["row"].to_numpy(np.int64), NIH_MAX,
                                                 (model_cfg["mean"], model_cfg["std"]), runtime, device,
                                                 batch_size=64)).numpy()
    columns = [LABELS.index(output) for output in OUTPUTS]
    scores = pd.DataFrame({"case": index["case"], "nodule": index["nodule"].astype(int),
                           "subtlety": index["subtlety"],
                           **{f"score_{output}": probabilities[:, k].round(6) for output, k in zip(OUTPUTS, columns)}})
    scores["score"] = scores[[f"score_{output}" for output in OUTPUTS]].max(axis=1)
    boot_cfg = params["evaluate"]["bootstrap"]
    seed = int(np.random.SeedSequence([params["seed"], seed_streams.BOOTSTRAP_EXTERNAL]).generate_state(1)[0])
    labels, values = scores["nodule"].to_numpy(), scores["score"].to_numpy(np.float64)
    metrics = {"score": f"max({', '.join(OUTPUTS)})", "size": int(model_cfg["size"]),
               **auc_summary(labels, values, None, boot_cfg, seed),
               "by_subtlety": by_subtlety(scores.rename(columns={"nodule": "label"}), index, boot_cfg, seed),
               "bootstrap": {**boot_cfg, "unit": "case"}}
    log.info("JSRT nodule vs no nodule by %s: AUC %s (95%% CI %s-%s) over %d cases", metrics["score"],
             metrics["auc"], metrics["ci_low"], metrics["ci_high"], metrics["cases"])
    write_json(artefacts.METRICS_EXTERNAL, metrics)
    with atomic_path(artefacts.RESULTS_EXTERNAL, is_dir=True) as out:
        scores.to_csv(out / "jsrt_scores.csv", index=False, lineterminator="\n")


def main() -> None:
    run_stage("evaluate_external", evaluate)


if __name__ == "__main__":
    main()
