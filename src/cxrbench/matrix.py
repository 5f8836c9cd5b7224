"""The NIH classifier's benchmark matrix: every model, model.classifier (the baseline) first and then
benchmark.classifier.challengers in their order, trained once per seed of benchmark.seeds; each (model, seed) is
a cell.

The baseline's cell with the master seed is train_classifier's model (the one every NIH analysis reads; its test
predictions are results/classifier/predictions.csv). Every other cell is a stage of its own,
`benchmark_classifier-<model>-seed<seed>`, which trains and scores it in models/benchmark/classifier/<model>-seed<seed>/
and whose parameters are its own network's config alone: adding a seed adds stages and leaves the others as they
are, and changing one challenger's config reruns that challenger's cells only. rank_classifiers reads every cell.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cxrbench import artefacts

BASELINE_KEY = "model.classifier"
CHALLENGERS_KEY = "benchmark.classifier.challengers"
INSTANCE_NAME = re.compile(r"^[A-Za-z0-9_]+$")  # the schema's pattern: names join into stage names with "-"
PREDICTIONS = "predictions.csv"
HISTORY = "history.csv"


@dataclass(frozen=True)
class Cell:
    model: str
    seed: int
    network_key: str  # where params hold its network's config
    main: bool  # train_classifier's model (the baseline with the master seed)

    @property
    def name(self) -> str:
        return f"{self.model}-seed{self.seed}"

    @property
    def stage(self) -> str:
        return f"benchmark_classifier-{self.name}"

    @property
    def folder(self) -> Path:
        return artefacts.BENCHMARK_CLASSIFIER / self.name

    @property
    def predictions(self) -> Path:
        return artefacts.RESULTS_CLASSIFIER / PREDICTIONS if self.main else self.folder / PREDICTIONS


def models(params: dict[str, Any]) -> list[tuple[str, str]]:
    """(instance name, params key of its network) of every model, the baseline first."""
    challengers = params["benchmark"]["classifier"]["challengers"]
    return [(params["model"]["classifier"]["name"], BASELINE_KEY),
            *((name, f"{CHALLENGERS_KEY}.{name}") for name in challengers)]


def cells(params: dict[str, Any]) -> list[Cell]:
    """Every cell, model by model (the baseline's first), seeds in their listed order."""
    return [Cell(model, seed, key, key == BASELINE_KEY and seed == params["seed"])
            for model, key in models(params) for seed in params["benchmark"]["seeds"]]


def network(params: dict[str, Any], key: str) -> dict[str, Any]:
    """The network config at a dotted params key (a cell's network_key)."""
    value = params
    for part in key.split("."):
        value = value[part]
    return value


def problems(params: dict[str, Any]) -> list[str]:
    """What stops the matrix from being stages: a baseline name that cannot be part of a stage name, or a
    challenger named like the baseline."""
    baseline = params["model"]["classifier"]["name"]
    found = []
    if not INSTANCE_NAME.match(baseline):
        found.append(f"model.classifier.name: {baseline!r} names the baseline's benchmark stages: use letters, digits "
                     "and _ only")
    if baseline in params["benchmark"]["classifier"]["challengers"]:
        found.append(f"{CHALLENGERS_KEY}.{baseline}: a challenger named like the baseline (model.classifier.name): "
                     "give it another name (the key under challengers), or compare no challenger (benchmark=single)")
    return found
