"""Stage evaluate_localisation: Wang et al.'s weakly supervised localisation on NIH BBox_List_2017.

For every test image with ground-truth boxes and every class boxed on it, the classifier's class activation map
of that class (cxrbench.cam, upsampled to the 1024-pixel box space) becomes boxes as Wang et al. make them
(metrics.localisation.heatmap_to_boxes: min-max normalised, thresholded at 60/255 and at 180/255, one box per
8-connected region). Each of the eight box classes is scored on its own images, as Wang et al. do: accuracy (the
share of ground-truth boxes that some detected box overlaps by more than T) and average false positives per
image, at T(IoBB) = 0.1, 0.25, 0.5, 0.75, 0.9 (intersection over the detected box: their Table 19) and at
T(IoU) = 0.1 .. 0.7.

The stage refuses to run (DataError) if a boxed image or its patient is in the train or val part of
data/splits/nih.csv; boxed images outside the split (quarantined by decode_nih, or a view not in
split.nih.views, or outside the archives source.archives selected) are left out and counted.

Writes metrics/localisation.json (the accuracy over the classes per T(IoBB)) and results/localisation/: scores.json
(accuracy and false positives per class and threshold, of both overlap measures), boxes.csv (every ground-truth and detected box per
image and class, in 1024-pixel space, with its best IoU and IoBB against the boxes of the other kind), and for
the report examples.csv with example_images.npy and example_heatmaps.npy (per class the best and the worst
localised image by IoU, at EXAMPLE_SIZE px, uint8).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pandas as pd
import torch

from cxrbench import artefacts, cam, store, training
from cxrbench.datasets import nih
from cxrbench.errors import DataError
from cxrbench.fileio import atomic_path, write_json
from cxrbench.metrics.localisation import (
    WANG_IOBB_THRESHOLDS,
    WANG_THRESHOLDS,
    heatmap_to_boxes,
    iobb,
    iou,
    localisation_accuracy,
)
from cxrbench.models import networks
from cxrbench.splits import require_held_out
from cxrbench.stages._app import run_stage

log = logging.getLogger(__name__)
RAW = artefacts.RAW["nih"]
BOX_FILE = RAW / nih.BBOX_NAME
STORE = artefacts.STORE_NIH
SPLIT = artefacts.SPLIT_NIH
MODEL = artefacts.MODEL_CLASSIFIER
OUT = artefacts.RESULTS_LOCALISATION
METRICS = artefacts.METRICS_LOCALISATION
IOU_THRESHOLDS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7)
THRESHOLDS = {"iobb": WANG_IOBB_THRESHOLDS, "iou": IOU_THRESHOLDS}
BOX = ["x", "y", "w", "h"]
EXAMPLE_SIZE = 256
BATCH_SIZE = 16


def load_classifier(model_dir: Path, store_size: int,
                    device: torch.device) -> tuple[torch.nn.Module, tuple[float, float]]:
    """The trained classifier in eval mode and its input normalisation (mean, std)."""
    config = json.loads((model_dir / "config.json").read_text())
    if list(config["labels"]) != list(nih.LABELS) or config["size"] != store_size:
        raise DataError(
            model_dir / "config.json",
            f"the model was trained on labels {config['labels']} at {config['size']} px; expected the 14 NIH labels "
            f"at the store's {store_size} px",
            "rerun train_classifier on the current store",
        )
    # eager and contiguous: class activation maps read the feature maps through a forward hook
    model = networks.load_trained(config["network"], model_dir / "model.pt",
                                  {"channels_last": False, "compile": False}, device)
    return model.eval(), (float(config["mean"]), float(config["std"]))


def boxes_to_evaluate(boxes: pd.DataFrame, index: pd.DataFrame,
                      split: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, int]]:
    """The ground-truth boxes on test-part images, with each image's patient and store row, and counts of the
    boxes (and images) left out because their image is outside the split. Refuses train/val images. Boxes on
    images of archives that source.archives did not select are left out first (and logged): never decoded;
    they count as left out, so the report does not call the result comparable with the whole box list's."""
    in_copy = nih.in_archive_subset(boxes["image"], RAW, f"boxes of {BOX_FILE.name}")
    outside_copy, boxes = boxes[~in_copy], boxes[in_copy]
    unknown = boxes.loc[~boxes["image"].isin(index["image"]), "image"].unique()
    if len(unknown):
        raise DataError(BOX_FILE, f"{len(unknown)} boxed image(s) are not in the NIH metadata, e.g. {unknown[0]}",
                        "use BBox_List_2017.csv and Data_Entry_2017 from the same NIH release")
    boxes = boxes.merge(index[["image", "patient", "row"]], on="image", how="left", validate="many_to_one")
    require_held_out(boxes, split, BOX_FILE)
    in_test = boxes["image"].isin(split.loc[split["part"] == "test", "image"])
    left_out = {"boxes": int((~in_test).sum()) + len(outside_copy),
                "images": int(boxes.loc[~in_test, "image"].nunique()) + int(outside_copy["image"].nunique())}
    return boxes[in_test].reset_index(drop=True), left_out


def heatmaps(model: torch.nn.Module, images: np.ndarray, pairs: pd.DataFrame, norm: tuple[float, float],
             device: torch.device):
    """CAMs (1024 px) of each (image, label) pair's class on its image, batch by batch, in pair order."""
    classes = pd.Index(nih.LABELS).get_indexer(pairs["label"])
    return cam.heatmaps_for_pairs(model, images, pairs["row"].to_numpy(), classes, norm, device, batch_size=BATCH_SIZE)


def detect(model: torch.nn.Module, images: np.ndarray, pairs: pd.DataFrame, norm: tuple[float, float],
           device: torch.device) -> list[np.ndarray]:
    """Detected boxes (d, 4) in 1024-pixel space for each (image, label) pair, in pair order."""
    return [heatmap_to_boxes(heatmap, image_size=cam.BOX_SPACE)
            for batch in heatmaps(model, images, pairs, norm, device) for heatmap in batch]


def box_table(pairs: pd.DataFrame, truths: list[np.ndarray], detections: list[np.ndarray]) -> pd.DataFrame:
    """One row per ground-truth ('truth') and detected ('detected') box of each pair, with its best IoU and
    IoBB (intersection over the detected box) against the boxes of the other kind (0 when there are none)."""
    frames = []
    for (image, label), truth, detected in zip(pairs[["image", "label"]].itertuples(index=False), truths, detections):
        pairwise_iou, pairwise_iobb = iou(truth[:, None], detected[None]), iobb(truth[:, None], detected[None])
        for kind, boxes, axis in (("truth", truth, 1), ("detected", detected, 0)):
            frames.append(pd.DataFrame({
                "image": image, "label": label, "kind": kind, **dict(zip(BOX, boxes.T)),
                "iou": pairwise_iou.max(axis=axis, initial=0.0), "iobb": pairwise_iobb.max(axis=axis, initial=0.0),
            }))
    return pd.concat(frames, ignore_index=True)


def class_scores(pairs: pd.DataFrame, truths: list[np.ndarray], detections: list[np.ndarray]) -> dict[str, Any]:
    """Per class (with boxes): Wang et al.'s accuracy and average false positives at every threshold."""
    per_class: dict[str, Any] = {}
    for label in nih.BOX_LABELS:
        members = np.flatnonzero(pairs["label"].to_numpy() == label)
        gt = {pairs.at[i, "image"]: truths[i] for i in members}
        entry: dict[str, Any] = {"boxes": int(sum(len(truths[i]) for i in members)), "images": len(members)}
        if members.size:
            det = {pairs.at[i, "image"]: detections[i] for i in members}
            for overlap, thresholds in THRESHOLDS.items():
                result = localisation_accuracy(gt, det, metric=overlap, thresholds=thresholds)
                entry[overlap] = {format(t, "g"): {"accuracy": round(float(a), 6), "avg_fp": round(float(f), 6)}
                                  for t, a, f in zip(thresholds, result["accuracy"], result["avg_fp"])}
        per_class[label] = entry
    return per_class


def mean_over_classes(per_class: dict[str, Any]) -> dict[str, Any]:
    """Unweighted mean of accuracy and average false positives over the classes that have boxes."""
    scored = [entry for entry in per_class.values() if entry["boxes"]]
    return {overlap: {key: {measure: round(float(np.mean([entry[overlap][key][measure] for entry in scored])), 6)
                            for measure in ("accuracy", "avg_fp")}
                      for key in scored[0][overlap]}
            for overlap in THRESHOLDS}


def choose_examples(boxes: pd.DataFrame, pairs: pd.DataFrame) -> pd.DataFrame:
    """Per class, in NIH order, the best and the worst localised image: the first and the last of the class's
    pairs ordered by the IoU of their best-localised ground-truth box (descending), then by image name.
    A class boxed on a single image gets only its 'best' example."""
    localised = boxes[boxes["kind"] == "truth"].groupby(["label", "image"])["iou"].max().reset_index()
    scored = pairs.merge(localised, on=["label", "image"], validate="one_to_one")
    scored["order"] = pd.Index(nih.BOX_LABELS).get_indexer(scored["label"])
    ordered = scored.sort_values(["order", "iou", "image"], ascending=[True, False, True], kind="stable")
    best = ordered.groupby("label", sort=False).head(1).assign(which="best")
    worst = ordered.groupby("label", sort=False).tail(1).assign(which="worst")
    chosen = pd.concat([best, worst[~worst.index.isin(best.index)]]).sort_values(["order", "which"], kind="stable")
    return chosen[["image", "label", "row", "which", "iou"]].reset_index(drop=True)


def example_arrays(examples: pd.DataFrame, model: torch.nn.Module, images: np.ndarray, norm: tuple[float, float],
                   device: torch.device) -> tuple[np.ndarray, np.ndarray]:
    """(k, EXAMPLE_SIZE, EXAMPLE_SIZE) uint8 radiographs (from the 1024 px PNGs) and min-max scaled CAMs."""
    size = (EXAMPLE_SIZE, EXAMPLE_SIZE)
    radiographs = [cv2.resize(nih.read_png(RAW / nih.IMAGES_DIR / name), size, interpolation=cv2.INTER_AREA)
                   for name in examples["image"]]
    maps = [cv2.resize(heatmap, size, interpolation=cv2.INTER_AREA)
            for batch in heatmaps(model, images, examples, norm, device) for heatmap in batch]
    scaled = [np.round(255 * (m - m.min()) / (np.ptp(m) or 1.0)).astype(np.uint8) for m in maps]
    return np.stack(radiographs), np.stack(scaled)


def evaluate(params: dict[str, Any]) -> None:
    device = training.setup_torch(params["train"]["runtime"], params["seed"])
    index, split = store.read_index(STORE), pd.read_csv(SPLIT)
    boxes, left_out = boxes_to_evaluate(nih.read_bbox(BOX_FILE), index, split)
    if boxes.empty:
        raise DataError(BOX_FILE, "no boxed image is in the test part of data/splits/nih.csv, so there is nothing "
                        "to evaluate", "check split.nih.views and the decode_nih quarantine list")
    images = store.open_array(store.find_images(STORE))
    model, norm = load_classifier(MODEL, images.shape[-1], device)
    grid = cam.feature_grid(model, images.shape[-1], device)
    if grid < 2:
        log.warning("at %d px the classifier's last feature map is %d x %d: its class activation maps are constant "
                    "and no box can be found (decode.nih.size of 64 px or more gives maps with a location)",
                    images.shape[-1], grid, grid)
    grouped = boxes.groupby(["image", "label"], sort=True)
    pairs = grouped["row"].first().reset_index()
    truths = [group[BOX].to_numpy(np.float64) for _, group in grouped]
    log.info("%d boxes on %d test images (%d boxes left out: image outside the split); CAMs of %d image-class pairs",
             len(boxes), boxes["image"].nunique(), left_out["boxes"], len(pairs))
    detections = detect(model, images, pairs, norm, device)

    per_class = class_scores(pairs, truths, detections)
    for label, entry in per_class.items():
        if entry["boxes"]:
            log.info("%s: accuracy at T(IoBB)=0.5 %.4f, at T(IoU)=0.3 %.4f", label, entry["iobb"]["0.5"]["accuracy"],
                     entry["iou"]["0.3"]["accuracy"])
    table = box_table(pairs, truths, detections)
    examples = choose_examples(table, pairs)
    radiographs, example_maps = example_arrays(examples, model, images, norm, device)

    scores = {
        "split": "test part of data/splits/nih.csv; boxes from BBox_List_2017.csv",
        "boxes": len(boxes), "images": int(boxes["image"].nunique()), "left_out_outside_split": left_out,
        "heatmap": {"method": "class activation map, bilinear to 1024 px", "size": cam.BOX_SPACE, "feature_grid": grid,
                    "thresholds": [round(t, 6) for t in WANG_THRESHOLDS]},
        "thresholds": {overlap: list(values) for overlap, values in THRESHOLDS.items()},
        "per_class": per_class,
        "mean_over_classes": mean_over_classes(per_class),
    }
    write_json(METRICS, headline(scores))
    with atomic_path(OUT, is_dir=True) as out:
        write_json(out / artefacts.SCORES, scores)
        table.to_csv(out / "boxes.csv", index=False, lineterminator="\n", float_format="%.6f")
        examples.drop(columns="row").to_csv(out / "examples.csv", index=False, lineterminator="\n", float_format="%.6f")
        np.save(out / "example_images.npy", radiographs)
        np.save(out / "example_heatmaps.npy", example_maps)


def headline(scores: dict[str, Any]) -> dict[str, Any]:
    """metrics/localisation.json: the boxes and images scored, and the accuracy averaged over the classes at each
    T(IoBB) (Wang et al.'s measure); per class and at every T(IoU) in results/localisation/scores.json."""
    return {"boxes": scores["boxes"], "images": scores["images"],
            "accuracy_at_iobb": {t: v["accuracy"] for t, v in scores["mean_over_classes"]["iobb"].items()}}


def main() -> None:
    run_stage("evaluate_localisation", evaluate)


if __name__ == "__main__":
    main()
