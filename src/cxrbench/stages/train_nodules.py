"""Stage train_nodules: JSRT nodule classification and localisation models, one per cross-validation fold.

For each fold k of data/splits/jsrt_nodules.csv, trained on the other folds (fold k is its test fold):
- classifier_malignancy_fold<k>.pt (on the `malignancy` folds): `model.nodule_classifier` (a small MONAI DenseNet
  by default), one logit, malignant vs benign
  on the nodule's region of interest (the store's nodule_rois, see decode_jsrt); BCE loss, Adam, random flips
  and quarter turns;
- heatmap_fold<k>.pt (on the `nodule` folds; its peak response also scores nodule vs no nodule):
  `model.nodule_heatmap` (a MONAI U-Net by default) trained on random patches to predict a Gaussian blob
  at each nodule centre (cxrbench.nodules.HeatmapTargets); half the patches of a nodule case hold its nodule;
  Dice + BCE loss; random flips and quarter turns (a nodule looks the same turned).
Every model is a pure function of the seed, its name and the data: the models train one after another, each
from its own random streams. Each epoch ends with a checkpoint (checkpoints/train_nodules_<model>.pt); a killed
run resumes after the last completed epoch and ends in the same state as an uninterrupted one. Writes
models/nodules/ (the models and config.json), metrics/throughput_nodules.json and dvclive/nodules (training loss per epoch, mean over folds).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from monai.losses import DiceLoss

from cxrbench import artefacts, config, engine, nodules, seed_streams, store, training
from cxrbench.fileio import atomic_path, write_json
from cxrbench.models import networks
from cxrbench.stages._app import run_stage
from cxrbench.vocabulary import JSRT_MAX

log = logging.getLogger(__name__)
STORE = artefacts.STORE_JSRT
SPLIT = artefacts.SPLIT_JSRT_NODULES
OUT = artefacts.MODEL_NODULES
NETWORK = {"classifier": "nodule_classifier", "heatmap": "nodule_heatmap"}  # params model.<name> of each kind
HEATMAP_TASK = "nodule"  # the localisation model is cross-validated on the nodule/no-nodule folds
CLASSIFIER_TASK = "malignancy"

_DICE = DiceLoss(sigmoid=True, batch=True)  # over the whole batch: most patches hold no nodule

@dataclass(frozen=True)
class ModelSpec:
    kind: str  # "classifier" or "heatmap"
    task: str
    fold: int

    @property
    def name(self) -> str:
        return f"heatmap_fold{self.fold}" if self.kind == "heatmap" else f"classifier_{self.task}_fold{self.fold}"

    @property
    def curve(self) -> str:
        """The dvclive metric its per-epoch loss is averaged into."""
        return "heatmap" if self.kind == "heatmap" else f"classifier_{self.task}"

    def seeds(self, seed: int) -> tuple[int, int, int]:
        """Seeds of its three random streams: batches (numpy), augmentation (torch) and weight initialisation."""
        sequence = np.random.SeedSequence([seed, seed_streams.TRAIN_NODULES, ("classifier", "heatmap").index(self.kind),
                                           nodules.TASKS.index(self.task), self.fold])
        return tuple(int(s) for s in sequence.generate_state(3))


def model_specs(folds: list[int]) -> list[ModelSpec]:
    specs = [ModelSpec("classifier", CLASSIFIER_TASK, fold) for fold in folds]
    return specs + [ModelSpec("heatmap", HEATMAP_TASK, fold) for fold in folds]


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


def train(params: dict[str, Any]) -> None:
    cfg, runtime, seed = params["nodules"], params["train"]["runtime"], params["seed"]
    device = training.setup_torch(runtime, seed)
    index, split = store.read_index(STORE).sort_values("row", ignore_index=True), pd.read_csv(SPLIT)
    images_path, rois_path = store.find_images(STORE), store.find_nodule_rois(STORE)
    images, rois = store.open_array(images_path), store.open_array(rois_path)
    targets = nodules.HeatmapTargets.from_index(index, images.shape[-1])
    network = {kind: params["model"][key] for kind, key in NETWORK.items()}
    run = training.fingerprint({"seed": seed, "runtime": runtime, "classifier": cfg["classifier"],
                                "heatmap": cfg["heatmap"], "model": network}, images_path, rois_path,
                               STORE / store.INDEX, SPLIT, *[f for n in network.values() for f in config.init_files(n)])
    specs = model_specs(sorted(split["fold"].unique().tolist()))
    checkpoints = {spec.name: training.EpochCheckpoint(f"train_nodules_{spec.name}", run) for spec in specs}

    states, losses, records, rates, described = {}, {}, {}, {}, {}
    for spec in specs:
        rows = training_rows(split, index, spec)
        torch.manual_seed(spec.seeds(seed)[2])  # the weight initialisation
        if spec.kind == "classifier":
            norm = networks.input_normalisation(network["classifier"], training.intensity_stats(rois, rows, JSRT_MAX))
            labels = nodules.task_cases(index, spec.task).set_index("row").loc[rows, "label"].to_numpy()
            batches = classifier_batches(np.asarray(rois[rows]), labels, cfg["classifier"], norm, runtime, device)
            loss_fn = F.binary_cross_entropy_with_logits
        else:
            norm = networks.input_normalisation(network["heatmap"], training.intensity_stats(images, rows, JSRT_MAX))
            batches = heatmap_batches(images, rows, targets, cfg["heatmap"], norm, runtime, device)
            loss_fn = heatmap_loss
        side = (rois if spec.kind == "classifier" else images).shape[-1]
        model, described[spec.kind] = networks.ready_to_train(
            network[spec.kind], f"model.{NETWORK[spec.kind]}", side, (2, 1) if spec.kind == "classifier" else (2, 1, side, side),
            "the nodule classifier (one logit)" if spec.kind == "classifier"
            else "the nodule heat map (one logit map at the input's size)", runtime, device)
        batch_seed, augment_seed, _ = spec.seeds(seed)
        progress = engine.fit(model, torch.optim.Adam(model.parameters(), lr=cfg[spec.kind]["lr"]), batches, loss_fn,
                              epochs=cfg[spec.kind]["epochs"], checkpoint=checkpoints[spec.name],
                              rng=np.random.default_rng(batch_seed), generator=torch.Generator().manual_seed(augment_seed),
                              runtime=runtime, device=device, desc=spec.name)
        states[spec.name] = training.state_dict(model)
        losses[spec.name] = progress.metric("train/loss")
        rates[spec.name] = progress.throughput()
        records[spec.name] = {"kind": spec.kind, "task": spec.task, "fold": spec.fold, "train_cases": int(len(rows)),
                              "mean": norm[0], "std": norm[1], "final_loss": round(losses[spec.name][-1], 6)}
        log.info("%s: %d training cases, final loss %.4f", spec.name, len(rows), losses[spec.name][-1])

    # The folds train one after the other; each curve is the mean over the folds of one kind of model.
    curves = sorted({spec.curve for spec in specs})
    mean_losses = {curve: np.mean([losses[s.name] for s in specs if s.curve == curve], axis=0) for curve in curves}
    epochs = max(cfg["classifier"]["epochs"], cfg["heatmap"]["epochs"])
    training.log_history(artefacts.LIVE_NODULES, [{f"{curve}/train/loss": values[epoch]
                                                    for curve, values in mean_losses.items() if epoch < len(values)}
                                                   for epoch in range(epochs)])
    with atomic_path(OUT, is_dir=True) as out:
        for name, state in states.items():
            training.save_checkpoint(out / f"{name}.pt", {"state_dict": state})
        write_json(out / "config.json", {"size": int(images.shape[-1]), "folds": sorted({s.fold for s in specs}),
                                         "heatmap_task": HEATMAP_TASK, "classifier_task": CLASSIFIER_TASK,
                                         "classifier": cfg["classifier"], "heatmap": cfg["heatmap"],
                                         "networks": described, "models": records})
    training.write_throughput("nodules", rates, "training ROIs (classifiers) and patches (heat maps)")
    for checkpoint in checkpoints.values():
        checkpoint.clear()


def main() -> None:
    run_stage("train_nodules", train)


if __name__ == "__main__":
    main()
