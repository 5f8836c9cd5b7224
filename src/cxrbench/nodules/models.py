"""The JSRT nodule models' recipe: for each cross-validation fold k of data/splits/jsrt_nodules.csv, a model
trained on the other folds (fold k is its test fold), of two kinds:
- classifier (`model.nodule_classifier`, a small MONAI DenseNet by default; on the `malignancy` folds): one logit,
  malignant vs benign, on the nodule's region of interest (the store's nodule_rois, see decode_jsrt); BCE loss,
  Adam, random flips and quarter turns;
- heatmap (`model.nodule_heatmap`, a MONAI U-Net by default; on the `nodule` folds; its peak response also scores
  nodule vs no nodule): trained on random patches to predict a Gaussian blob at each nodule centre
  (cxrbench.nodules.HeatmapTargets); half the patches of a nodule case hold its nodule; Dice + BCE loss; random
  flips and quarter turns (a nodule looks the same turned).
Every model is a pure function of the seed, its kind, task and fold and the data, each trained from its own random
streams, with a checkpoint every epoch (a killed run resumes after the last completed epoch and ends in the same
state). train_nodules trains both kinds with the master seed; each cell of the nodule models' benchmark matrices
(benchmark_nodule_classifier, benchmark_nodule_heatmap) trains one kind with its own network and seed. And
`out_of_fold`: every case scored by the model whose test fold holds it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from monai.losses import DiceLoss

from cxrbench import artefacts, config, engine, matrix, nodules, seed_streams, store, training
from cxrbench.fileio import write_json
from cxrbench.models import networks
from cxrbench.vocabulary import JSRT_MAX, JSRT_PIXEL_MM

log = logging.getLogger(__name__)
STORE = artefacts.STORE_JSRT
SPLIT = artefacts.SPLIT_JSRT_NODULES
TASK_OF = {"classifier": "malignancy", "heatmap": "nodule"}  # the task each kind is cross-validated on and scores
NETWORK = {"classifier": "nodule_classifier", "heatmap": "nodule_heatmap"}  # params model.<name>; matrix tasks
KIND_OF = {task: kind for kind, task in NETWORK.items()}  # a benchmark matrix task -> the kind it trains
CURVE = {"classifier": "classifier_malignancy", "heatmap": "heatmap"}  # dvclive: each kind's loss, mean over folds
INFERENCE_BATCH = 16

_DICE = DiceLoss(sigmoid=True, batch=True)  # over the whole batch: most patches hold no nodule


@dataclass(frozen=True)
class ModelSpec:
    kind: str  # "classifier" or "heatmap"
    task: str
    fold: int

    @property
    def name(self) -> str:
        return f"heatmap_fold{self.fold}" if self.kind == "heatmap" else f"classifier_{self.task}_fold{self.fold}"

    def seeds(self, seed: int) -> tuple[int, int, int]:
        """Seeds of its three random streams: batches (numpy), augmentation (torch) and weight initialisation."""
        sequence = np.random.SeedSequence([seed, seed_streams.TRAIN_NODULES, ("classifier", "heatmap").index(self.kind),
                                           nodules.TASKS.index(self.task), self.fold])
        return tuple(int(s) for s in sequence.generate_state(3))


def model_specs(kind: str, folds: list[int]) -> list[ModelSpec]:
    return [ModelSpec(kind, TASK_OF[kind], fold) for fold in folds]


def training_rows(split: pd.DataFrame, index: pd.DataFrame, spec: ModelSpec) -> np.ndarray:
    """Store rows of the task's cases outside the model's test fold, ascending."""
    cases = split.loc[(split["task"] == spec.task) & (split["fold"] != spec.fold), "case"]
    return np.sort(index.loc[index["case"].isin(cases), "row"].to_numpy(np.int64))


def classifier_batches(rois: np.ndarray, labels: np.ndarray, cfg: dict[str, Any], norm: tuple[float, float],
                       runtime: dict[str, Any], device: torch.device) -> engine.Batches:
    """Nodule ROIs and their labels, shuffled each epoch; randomly flipped and turned (a nodule's
    malignancy does not depend on its orientation)."""
    def epoch(rng: np.random.Generator, augment: torch.Generator) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for batch in training.shuffled_batches(np.arange(len(rois)), cfg["batch_size"], rng):
            x = training.random_dihedral(training.to_input(rois[batch], JSRT_MAX, *norm, device), augment)
            if runtime["channels_last"]:
                x = x.contiguous(memory_format=torch.channels_last)
            yield x, torch.from_numpy(labels[batch, None].astype(np.float32)).to(device)
    return epoch


def patch_origins(rows: np.ndarray, targets: nodules.HeatmapTargets, size: int, patch: int, per_case: int,
                  rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`per_case` patch origins (row, top, left) per case, uniform over the image, except that half of a nodule
    case's patches (at least one) hold its nodule centre, at least a quarter patch from their edges: nodules
    are rare, a patch of a nodule case drawn at random would seldom show one."""
    sample_rows = np.repeat(rows, per_case)
    top, left = rng.integers(0, size - patch + 1, size=(2, len(sample_rows)))
    on_nodule = (np.arange(len(sample_rows)) % per_case < max(1, per_case // 2)) & np.isfinite(
        targets.centre_x[sample_rows])
    chosen = sample_rows[on_nodule]
    margin = patch // 4
    offset_y, offset_x = rng.integers(margin, patch - margin, size=(2, len(chosen)))
    top[on_nodule] = np.clip(np.rint(targets.centre_y[chosen]) - offset_y, 0, size - patch)
    left[on_nodule] = np.clip(np.rint(targets.centre_x[chosen]) - offset_x, 0, size - patch)
    return sample_rows, top, left


def heatmap_batches(images: np.ndarray, rows: np.ndarray, targets: nodules.HeatmapTargets, cfg: dict[str, Any],
                    norm: tuple[float, float], runtime: dict[str, Any], device: torch.device) -> engine.Batches:
    """Random patches (cfg.patches_per_case per case and epoch) with their target heat maps, cropped on the
    host from the memory-mapped store and augmented on the device."""
    size = images.shape[-1]
    patch = min(cfg["patch"], size)
    window = np.arange(patch)

    def epoch(rng: np.random.Generator, augment: torch.Generator) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        sample_rows, top, left = patch_origins(rows, targets, size, patch, cfg["patches_per_case"], rng)
        order = rng.permutation(len(sample_rows))
        for start in range(0, len(order), cfg["batch_size"]):
            pick = order[start : start + cfg["batch_size"]]
            unique_rows, position = np.unique(sample_rows[pick], return_inverse=True)  # ascending store reads
            ys, xs = top[pick, None] + window, left[pick, None] + window
            pixels = images[unique_rows][position[:, None, None], ys[:, :, None], xs[:, None, :]]
            x = training.to_input(pixels, JSRT_MAX, *norm, device)
            y = torch.from_numpy(targets.render(sample_rows[pick], ys, xs)).to(device).unsqueeze(1)
            both = training.random_dihedral(torch.cat([x, y], dim=1), augment)
            if runtime["channels_last"]:
                both = both.contiguous(memory_format=torch.channels_last)
            yield both[:, :1], both[:, 1:]
    return epoch


def heatmap_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return _DICE(logits, target) + F.binary_cross_entropy_with_logits(logits, target)


@dataclass
class Trained:
    """One kind's models, a model per fold: weights, config.json records, per-epoch losses, training speed, the
    network's record, and the checkpoints to clear once the caller's outputs are in place."""

    kind: str
    size: int
    folds: list[int]
    states: dict[str, dict] = field(default_factory=dict)
    records: dict[str, dict] = field(default_factory=dict)
    losses: dict[str, list[float]] = field(default_factory=dict)
    rates: dict[str, float] = field(default_factory=dict)
    network: dict[str, Any] = field(default_factory=dict)
    checkpoints: list[training.EpochCheckpoint] = field(default_factory=list)


def train(params: dict[str, Any], kind: str, key: str, seed: int, run_name: str) -> Trained:
    """Train the `kind` models of every fold with the network params hold at the dotted `key`
    (model.nodule_<kind> or a challenger of its benchmark matrix) and `seed`, by params' nodules.<kind> and
    train.runtime. `run_name` names the checkpoints (checkpoints/<run_name>_<model>.pt)."""
    cfg, runtime, network = params["nodules"][kind], params["train"]["runtime"], matrix.network(params, key)
    device = training.setup_torch(runtime, seed)
    index, split = store.read_index(STORE).sort_values("row", ignore_index=True), pd.read_csv(SPLIT)
    images_path, rois_path = store.find_images(STORE), store.find_nodule_rois(STORE)
    images, rois = store.open_array(images_path), store.open_array(rois_path)
    run = training.fingerprint({"seed": seed, "runtime": runtime, kind: cfg, "model": network}, images_path, rois_path,
                               STORE / store.INDEX, SPLIT, *config.init_files(network))
    folds = sorted(split["fold"].unique().tolist())
    side = (rois if kind == "classifier" else images).shape[-1]
    trained = Trained(kind, int(images.shape[-1]), folds)
    if kind == "heatmap":
        targets = nodules.HeatmapTargets.from_index(index, images.shape[-1])
    for spec in model_specs(kind, folds):
        checkpoint = training.EpochCheckpoint(f"{run_name}_{spec.name}", run)
        rows = training_rows(split, index, spec)
        torch.manual_seed(spec.seeds(seed)[2])  # the weight initialisation
        if kind == "classifier":
            norm = networks.input_normalisation(network, training.intensity_stats(rois, rows, JSRT_MAX))
            labels = nodules.task_cases(index, spec.task).set_index("row").loc[rows, "label"].to_numpy()
            batches = classifier_batches(np.asarray(rois[rows]), labels, cfg, norm, runtime, device)
            loss_fn = F.binary_cross_entropy_with_logits
        else:
            norm = networks.input_normalisation(network, training.intensity_stats(images, rows, JSRT_MAX))
            batches = heatmap_batches(images, rows, targets, cfg, norm, runtime, device)
            loss_fn = heatmap_loss
        model, trained.network = networks.ready_to_train(
            network, key, side, (2, 1) if kind == "classifier" else (2, 1, side, side),
            "the nodule classifier (one logit)" if kind == "classifier"
            else "the nodule heat map (one logit map at the input's size)", runtime, device)
        batch_seed, augment_seed, _ = spec.seeds(seed)
        progress = engine.fit(model, torch.optim.Adam(model.parameters(), lr=cfg["lr"]), batches, loss_fn,
                              epochs=cfg["epochs"], checkpoint=checkpoint, rng=np.random.default_rng(batch_seed),
                              generator=torch.Generator().manual_seed(augment_seed), runtime=runtime, device=device,
                              desc=spec.name)
        losses = progress.metric("train/loss")
        trained.states[spec.name] = training.state_dict(model)
        trained.losses[spec.name] = losses
        trained.rates[spec.name] = progress.throughput()
        trained.records[spec.name] = {"kind": kind, "task": spec.task, "fold": spec.fold, "train_cases": int(len(rows)),
                                      "mean": norm[0], "std": norm[1], "final_loss": round(losses[-1], 6)}
        trained.checkpoints.append(checkpoint)
        log.info("%s: %d training cases, final loss %.4f", spec.name, len(rows), losses[-1])
    return trained


def write_models(out: Path, params: dict[str, Any], *kinds: Trained) -> None:
    """Each model's weights (<model>.pt) and config.json (the store size, the folds, each kind's task, training
    settings and network, each model's record) into the folder `out`."""
    for trained in kinds:
        for name, state in trained.states.items():
            training.save_checkpoint(out / f"{name}.pt", {"state_dict": state})
    write_json(out / "config.json", {"size": kinds[0].size, "folds": kinds[0].folds,
                                     **{f"{t.kind}_task": TASK_OF[t.kind] for t in kinds},
                                     **{t.kind: params["nodules"][t.kind] for t in kinds},
                                     "networks": {t.kind: t.network for t in kinds},
                                     "models": {name: record for t in kinds for name, record in t.records.items()}})


def out_of_fold(models: Path, index: pd.DataFrame, split: pd.DataFrame, images: np.ndarray, rois: np.ndarray,
                candidate_cfg: dict[str, Any], runtime: dict[str, Any],
                device: torch.device) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Every case scored by the model (in the folder `models`, as write_models wrote it) whose test fold holds it:
    task scores (case, task, fold, score; the nodule task's score is the heat map's peak) and heat-map candidates
    (case, fold, x, y on the 2048 grid, score; none without heat-map models)."""
    written = json.loads((models / "config.json").read_text())
    size = written["size"]
    store_pixel_mm = JSRT_PIXEL_MM * nodules.jsrt_pixels_per_store_pixel(size)
    case_of_row = index.set_index("row")["case"]
    scores = []
    candidates = [pd.DataFrame(columns=["case", "fold", "x", "y", "score"])]
    for name, spec in written["models"].items():
        cases = split.loc[(split["task"] == spec["task"]) & (split["fold"] == spec["fold"]), "case"]
        rows = np.sort(index.loc[index["case"].isin(cases), "row"].to_numpy(np.int64))
        model = networks.load_trained(written["networks"][spec["kind"]], models / f"{name}.pt", runtime, device)
        norm = (spec["mean"], spec["std"])
        if spec["kind"] == "classifier":
            logits = engine.predict(model, rois, rows, JSRT_MAX, norm, runtime, device, INFERENCE_BATCH)[:, 0]
        else:
            output = engine.predict(model, images, rows, JSRT_MAX, norm, runtime, device, INFERENCE_BATCH)[:, 0]
            logits = output.flatten(1).amax(dim=1)
            found = nodules.find_candidates(output, candidate_cfg["max_per_image"],
                                            candidate_cfg["min_distance_mm"] / store_pixel_mm)
            candidates.append(pd.DataFrame({"case": case_of_row[rows[found["item"]]].to_numpy(), "fold": spec["fold"],
                                            "x": nodules.to_jsrt_coords(found["x"], size),
                                            "y": nodules.to_jsrt_coords(found["y"], size), "score": found["score"]}))
        scores.append(pd.DataFrame({"case": case_of_row[rows].to_numpy(), "task": spec["task"], "fold": spec["fold"],
                                    "score": torch.sigmoid(logits).numpy().astype(np.float64)}))
    return pd.concat(scores, ignore_index=True), pd.concat(candidates[1:] or candidates, ignore_index=True)
