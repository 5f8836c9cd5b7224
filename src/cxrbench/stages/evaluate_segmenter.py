"""Stage evaluate_segmenter: SCR overlap per object (Jaccard = the benchmark's Omega, Dice), mean contour
distance in mm and the SCR site's pixel error, for each fold tested with the model trained on the other, at the
reference masks' 1024 px on the published objects (lung fields, heart, clavicles) and the single ones (scored by
cxrbench.segmentation_scores, as outside predictions are); and the cap the store's size puts on them (the store's
own masks brought back to 1024 px); and, when the SCR copy has them, the second observer's masks scored the same
way against the first's: the human observer of the benchmark on these very cases.

Writes metrics/segmenter.json (the published objects' mean Jaccard and contour distance, the pixel error) and
results/segmenter/{scores.json (mean and sd over images of every measure, per fold and overall; the round trip's
Jaccard per object; the second observer's scores), cases.csv (one row per case and object), predictions_1024.npy
(packed masks, store order)}.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from cxrbench import artefacts, scr_segmenter, store
from cxrbench.fileio import atomic_path, write_json
from cxrbench.segmentation_scores import headline, round_trip, score_masks
from cxrbench.stages._app import run_stage

log = logging.getLogger(__name__)
STORE = artefacts.STORE_JSRT
MODEL = artefacts.MODEL_SEGMENTER


def evaluate(params: dict[str, Any]) -> None:
    predicted, index, split = scr_segmenter.segment_cases(MODEL, params["train"]["runtime"], params["seed"])
    reference = store.open_array(store.find_reference_masks(STORE))
    store_masks = store.open_array(store.find_masks(STORE))
    metrics, cases = score_masks(predicted, index, split, reference, store_masks.shape[-1])
    metrics["round_trip"] = round_trip(store_masks, index, split, reference)
    observer2 = store.find_observer2_masks(STORE)
    if observer2 is not None:
        metrics["second_observer"] = score_masks(store.open_array(observer2), index, split, reference,
                                                 reference.shape[-1])[0]["overall"]
    for obj, m in metrics["overall"]["objects"].items():
        log.info("%-15s Jaccard %.3f +- %.3f  Dice %.3f  (the store's own masks: %.3f; the second observer: %s)", obj,
                 m["jaccard"]["mean"], m["jaccard"]["sd"] or 0, m["dice"]["mean"], metrics["round_trip"][obj],
                 f"{metrics['second_observer']['objects'][obj]['jaccard']['mean']:.3f}"
                 if "second_observer" in metrics else "none")
    write_json(artefacts.METRICS_SEGMENTER, headline(metrics))
    with atomic_path(artefacts.RESULTS_SEGMENTER, is_dir=True) as out:
        write_json(out / artefacts.SCORES, metrics)
        cases.to_csv(out / "cases.csv", index=False, lineterminator="\n")
        np.save(out / f"predictions_{reference.shape[-1]}.npy", predicted)


def main() -> None:
    run_stage("evaluate_segmenter", evaluate)


if __name__ == "__main__":
    main()
