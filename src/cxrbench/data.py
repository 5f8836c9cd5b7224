"""A finished run's verified data, from your own code: torch Datasets over the decoded stores and the splits.

    from torch.utils.data import DataLoader
    from cxrbench.data import NIHClassification

    train = NIHClassification("path/to/run", part="train")      # the split the run made (official or random)
    for images, targets in DataLoader(train, batch_size=32, shuffle=True, num_workers=2):
        ...                                                       # images (32, 1, S, S), targets (32, 14)

`run` is a folder holding a finished run's outputs (the project folder after `snakemake` or `dvc repro`, or a
copy of its data/ folder). Each dataset

- reads the memory-mapped store the pipeline decoded: nothing is copied into memory, and each DataLoader worker
  opens its own map (a dataset pickles without its arrays);
- returns (image, target) pairs of float32 tensors (a DataLoader fetches a batch with one ascending read of the
  store), the image (1, S, S) standardised as the pipeline does: with
  the mean and std of training images (`normalisation=None`: NIH's train part, the SCR fold itself, the JSRT
  cases chosen), or with the (mean, std) you give (e.g. the
  `mean` and `std` of models/classifier/config.json, or `IMAGENET_GREY` for ImageNet weights);
- lists its items in `.items` (a DataFrame in dataset order: store row, image or case, patient, ...), for
  analysis after prediction.

`batch_loader(dataset, batch_size, shuffle)` reads whole batches at once, several times faster than a DataLoader
that fetches and stacks items one by one. The pipeline's augmentations are the batch functions `random_hflip` (NIH) and `random_dihedral` (nodule ROIs);
`standardise` is its input scaling. `score_classifier` scores NIH test-set predictions written in our format
(cxrbench.predictions) exactly as evaluate_classifier scores ours; `score_segmenter` SCR masks in ours
(cxrbench.segmentation_scores) as evaluate_segmenter does; `score_nodules` out-of-fold JSRT task scores and
heat-map candidates (cxrbench.nodules.scores) as evaluate_nodules does.

The names this module promises to keep are `__all__` (tests/test_data_api.py fails if one disappears).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import yaml

from cxrbench import artefacts, nodules, predictions, segmentation_scores, store, training
from cxrbench.datasets import google_labels
from cxrbench.errors import DataError
from cxrbench.models.pretrained import IMAGENET_GREY
from cxrbench.nodules import scores as nodule_scores
from cxrbench.splits import fold_rows, split_rows
from cxrbench.training import random_dihedral, random_hflip
from cxrbench.vocabulary import JSRT_MAX, LABELS, NIH_MAX, OBJECTS

__all__ = [
    "IMAGENET_GREY",
    "batch_loader",
    "JSRTNodules",
    "NIHClassification",
    "NIH_LABEL_SETS",
    "SCRSegmentation",
    "random_dihedral",
    "random_hflip",
    "score_classifier",
    "score_nodules",
    "score_segmenter",
    "standardise",
]

# labels= of NIHClassification: NIH's 14 (mined from reports), or Google's radiologists' (a subset of images)
NIH_LABEL_SETS = {
    "nih": LABELS,
    "expert_four": google_labels.FOUR_FINDINGS,  # Majkowska et al. 2019: test and validation images
    "expert_all": google_labels.ALL_FINDINGS,  # Nabulsi et al. 2021: 810 PA test images
}


def standardise(pixels: np.ndarray, max_value: float, mean: float, std: float) -> torch.Tensor:
    """Store pixels (..., H, W) -> float32 (pixels / max_value - mean) / std, the pipeline's input scaling (the
    same bits as training's, which looks integer pixels up in a table of that expression)."""
    pixels = np.asarray(pixels)
    if pixels.dtype in (np.uint8, np.uint16):
        return torch.from_numpy(training.standardised_integers(pixels, max_value, mean, std))
    return (torch.from_numpy(pixels.astype(np.float32)) / max_value - mean) / std


class _StoreDataset(torch.utils.data.Dataset):
    """Items of a memory-mapped store, opened lazily in each process. A DataLoader fetches a whole batch with
    one ascending read of the store and one standardisation (`__getitems__`); subclasses give the targets."""

    normalisation: tuple[float, float]

    def __init__(self, array_path: Path, items: pd.DataFrame, max_value: float):
        self.items = items.reset_index(drop=True)
        self._array_path, self._max_value = array_path, max_value
        self._maps, self._pid = {}, None
        self._rows = self.items["row"].to_numpy(np.int64)

    def __len__(self) -> int:
        return len(self.items)

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_maps": {}, "_pid": None}  # workers map the store themselves

    def _map(self, path: Path) -> np.ndarray:
        """The store array at `path`, memory-mapped once per process."""
        if self._pid != os.getpid():
            self._maps, self._pid = {}, os.getpid()
        if path not in self._maps:
            self._maps[path] = store.open_array(path)
        return self._maps[path]

    def images(self, indices: list[int] | np.ndarray) -> torch.Tensor:
        """(B, 1, S, S) standardised images of the items `indices`, read from the store in ascending row order."""
        rows = self._rows[np.asarray(indices, dtype=np.int64)]
        order = np.argsort(rows, kind="stable")
        array = self._map(self._array_path)
        pixels = np.empty((len(rows), *array.shape[1:]), dtype=array.dtype)
        pixels[order] = array[rows[order]]
        return standardise(pixels, self._max_value, *self.normalisation)[:, None]

    def targets(self, indices: list[int] | np.ndarray) -> torch.Tensor:
        raise NotImplementedError

    def __getitems__(self, indices: list[int]) -> list[tuple[torch.Tensor, torch.Tensor]]:
        return list(zip(self.images(indices), self.targets(indices), strict=True))

    def __getitem__(self, i: int | list[int] | np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """One item (image, target), or for a list of indices the batch (images, targets) (see batch_loader)."""
        if np.ndim(i) == 0:
            return self.__getitems__([int(i)])[0]
        return self.images(i), self.targets(i)


def batch_loader(dataset: _StoreDataset, batch_size: int = 32, shuffle: bool = False,
                 generator: torch.Generator | None = None, **options: Any) -> torch.utils.data.DataLoader:
    """A DataLoader over whole batches: each is fetched as one store read and one standardisation, without
    stacking items one by one (the fastest way to read a store; `options` go to DataLoader, e.g. workers)."""
    from torch.utils.data import BatchSampler, DataLoader, RandomSampler, SequentialSampler

    order = RandomSampler(dataset, generator=generator) if shuffle else SequentialSampler(dataset)
    return DataLoader(dataset, batch_size=None, sampler=BatchSampler(order, batch_size, drop_last=False), **options)


def _run_path(run: str | Path, output: Path) -> Path:
    path = Path(run) / output
    if not path.exists():
        raise DataError(path, "not found: this folder holds no finished run's output here",
                        "point at the project folder of a run that finished (snakemake or dvc repro)")
    return path


def _normalisation(images: np.ndarray, rows: np.ndarray, max_value: float,
                   given: tuple[float, float] | None) -> tuple[float, float]:
    return tuple(given) if given is not None else training.intensity_stats(images, rows, max_value)


class NIHClassification(_StoreDataset):
    """NIH ChestX-ray14 images of one part of the run's split ("train", "val" or "test"), optionally of some
    views only, with the labels of `labels` (NIH_LABEL_SETS) as float targets, NaN where an image has no label
    in that set (Google's labels cover a subset). `items`: row, image, patient, view."""

    def __init__(self, run: str | Path = ".", part: str = "train", labels: str = "nih",
                 views: tuple[str, ...] | None = None, normalisation: tuple[float, float] | None = None):
        if labels not in NIH_LABEL_SETS:
            raise ValueError(f"labels={labels!r}; known: {sorted(NIH_LABEL_SETS)}")
        store_dir = _run_path(run, artefacts.STORE_NIH)
        index, split = store.read_index(store_dir), pd.read_csv(_run_path(run, artefacts.SPLIT_NIH))
        rows = split_rows(index, split, part)
        items = index.set_index("row").loc[rows, ["image", "patient", "view"]].reset_index()
        if views is not None:
            items = items[items["view"].isin(views)]
        super().__init__(store.find_images(store_dir), items, NIH_MAX)
        self.label_names = NIH_LABEL_SETS[labels]
        self.labels = self._labels(run, labels, index)
        self.normalisation = _normalisation(self._map(self._array_path), split_rows(index, split, "train"), NIH_MAX,
                                            normalisation)

    def _labels(self, run: str | Path, labels: str, index: pd.DataFrame) -> np.ndarray:
        if labels == "nih":
            return index.set_index("row").loc[self._rows, list(LABELS)].to_numpy(np.float32)
        google = _run_path(run, artefacts.RAW["google"])
        if labels == "expert_four":
            expert = pd.concat([google_labels.read_four_findings_labels(google / name) for name in
                                (google_labels.FOUR_FINDINGS_TEST, google_labels.FOUR_FINDINGS_VALIDATION)])
        else:
            expert = google_labels.read_all_findings_labels(google / google_labels.ALL_FINDINGS_TEST)
        table = expert.set_index("image")[list(self.label_names)].astype("float32")  # NA (not adjudicated) -> NaN
        return table.reindex(self.items["image"]).to_numpy(np.float32)

    def targets(self, indices: list[int] | np.ndarray) -> torch.Tensor:
        return torch.from_numpy(self.labels[np.asarray(indices, dtype=np.int64)])


class SCRSegmentation(_StoreDataset):
    """JSRT images of one SCR fold (1 or 2) with their five object masks (OBJECTS, in that channel order) as a
    float (5, S, S) target; the objects overlap. `items`: row, case."""

    def __init__(self, run: str | Path = ".", fold: int = 1, normalisation: tuple[float, float] | None = None):
        store_dir = _run_path(run, artefacts.STORE_JSRT)
        index, split = store.read_index(store_dir), pd.read_csv(_run_path(run, artefacts.SPLIT_SCR))
        rows = fold_rows(index, split, fold)
        super().__init__(store.find_images(store_dir), index.set_index("row").loc[rows, ["case"]].reset_index(),
                         JSRT_MAX)
        self._masks_path = store.find_masks(store_dir)
        self.normalisation = _normalisation(self._map(self._array_path), rows, JSRT_MAX, normalisation)

    def targets(self, indices: list[int] | np.ndarray) -> torch.Tensor:
        packed = self._map(self._masks_path)[self._rows[np.asarray(indices, dtype=np.int64)]]
        return torch.from_numpy(store.unpack_masks(packed, len(OBJECTS)).astype(np.float32))


class JSRTNodules(_StoreDataset):
    """The JSRT nodule tasks on the run's cross-validation folds (data/splits/jsrt_nodules.csv): task "nodule"
    (whole image, 1 = a nodule) or "malignancy" (the nodule's region of interest, 1 = malignant), the cases of
    the `folds` given (all when None), target a float (1,). `items`: row, case, fold."""

    def __init__(self, run: str | Path = ".", task: str = "nodule", folds: list[int] | None = None,
                 normalisation: tuple[float, float] | None = None):
        store_dir = _run_path(run, artefacts.STORE_JSRT)
        index = store.read_index(store_dir).sort_values("row", ignore_index=True)
        split = pd.read_csv(_run_path(run, artefacts.SPLIT_JSRT_NODULES))
        cases = nodules.task_cases(index, task).merge(split[split["task"] == task][["case", "fold"]], on="case")
        if folds is not None:
            cases = cases[cases["fold"].isin(folds)]
        array = store.find_nodule_rois(store_dir) if task == "malignancy" else store.find_images(store_dir)
        super().__init__(array, cases[["row", "case", "fold"]], JSRT_MAX)
        self._labels = cases["label"].to_numpy(np.float32)
        self.normalisation = _normalisation(self._map(self._array_path), self._rows, JSRT_MAX, normalisation)

    def targets(self, indices: list[int] | np.ndarray) -> torch.Tensor:
        return torch.from_numpy(self._labels[np.asarray(indices, dtype=np.int64), None])


def score_classifier(predictions_csv: str | Path, run: str | Path = ".") -> dict[str, Any]:
    """Score NIH test-set predictions in our format (cxrbench.predictions) as evaluate_classifier scores the
    run's own model: per-class and mean AUC with bootstrap intervals, from the run's params.yaml, store and
    split. Returns what evaluate_classifier writes to results/classifier/auc.json."""
    params = yaml.safe_load(_run_path(run, Path("params.yaml")).read_text())
    index = store.read_index(_run_path(run, artefacts.STORE_NIH))
    rows = split_rows(index, pd.read_csv(_run_path(run, artefacts.SPLIT_NIH)), "test")
    scores = predictions.read_predictions(predictions_csv, index, rows)
    test = index.set_index("row").loc[rows]
    y, patients = test[list(LABELS)].to_numpy(np.uint8), test["patient"].to_numpy()
    return predictions.classifier_metrics(y, scores, patients, params["evaluate"]["bootstrap"], params["seed"])


def score_segmenter(predictions_npy: str | Path, run: str | Path = ".") -> dict[str, Any]:
    """Score masks of the five SCR objects for every JSRT case in our format (cxrbench.segmentation_scores) as
    evaluate_segmenter scores the run's own model: at 1024 px (masks at the store's size brought up as the format
    says), Jaccard, Dice and contour distance per published and single object, pixel error, each case in the fold
    where it is tested, against the run's store. Returns what evaluate_segmenter writes to
    results/segmenter/scores.json (without the store's round trip)."""
    store_dir = _run_path(run, artefacts.STORE_JSRT)
    index, reference = store.read_index(store_dir), store.open_array(store.find_reference_masks(store_dir))
    store_size = store.open_array(store.find_masks(store_dir)).shape[-1]
    split = pd.read_csv(_run_path(run, artefacts.SPLIT_SCR))
    predicted = segmentation_scores.read_masks(predictions_npy, len(index), store_size)
    return segmentation_scores.score_masks(predicted, index, split, reference, store_size)[0]


def score_nodules(task_scores_csv: str | Path, candidates_csv: str | Path, run: str | Path = ".") -> dict[str, Any]:
    """Score out-of-fold JSRT nodule predictions in our formats (cxrbench.nodules.scores: a score per case of each
    task, and heat-map candidates) as evaluate_nodules scores the run's own models: AUC per task with bootstrap
    intervals and per fold, the nodule task per subtlety, and FROC, against the run's store and split. Returns
    what evaluate_nodules writes to results/nodules/scores.json without its own settings (candidates, bootstrap)."""
    params = yaml.safe_load(_run_path(run, Path("params.yaml")).read_text())
    index = store.read_index(_run_path(run, artefacts.STORE_JSRT)).sort_values("row", ignore_index=True)
    split = pd.read_csv(_run_path(run, artefacts.SPLIT_JSRT_NODULES))
    scores = nodule_scores.read_task_scores(task_scores_csv, index, split)
    candidates = nodule_scores.read_candidates(candidates_csv, index)
    yours = {task: f"yours ({Path(task_scores_csv).name})" for task in nodules.TASKS}
    return nodule_scores.score(scores, candidates, index, params["evaluate"]["bootstrap"], params["seed"],
                               yours).metrics
