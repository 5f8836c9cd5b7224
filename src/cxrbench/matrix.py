"""The benchmark matrices: per task (the NIH classifier, the SCR segmenter, the JSRT nodule classifier and nodule
heat map), every model, model.<task> (the baseline) first and then benchmark.<task>.challengers in their order,
trained once per seed of benchmark.seeds; each (task, model, seed) is a cell.

The baseline's cell with the master seed is the task's own training and evaluation stages (MAIN_STAGES: the
models every analysis of the task reads; both nodule tasks' is train_nodules and evaluate_nodules). Every
other cell is a stage of its own, `benchmark_<task>-<model>-seed<seed>`, which trains and scores it in
models/benchmark/<task>/<model>-seed<seed>/ and whose parameters are its own network's config alone: adding a
seed adds stages and leaves the others as they are, and changing one challenger's config reruns that
challenger's cells only. rank_classifiers and rank_segmenters read every cell of their task.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cxrbench import artefacts
from cxrbench.errors import DataError

TASKS = tuple(artefacts.BENCHMARK)
INSTANCE_NAME = re.compile(r"^[A-Za-z0-9_]+$")  # the schema's pattern: names join into stage names with "-"
HISTORY = "history.csv"
# What rank_<task>s reads of a cell: the test scores, in the main cell's results folder or in the cell's own
SCORED = {"classifier": "predictions.csv", "segmenter": "cases.csv", "nodule_classifier": "predictions.csv",
          "nodule_heatmap": "predictions.csv"}
CANDIDATES = "candidates.csv"  # a nodule heat map's candidates, beside its predictions.csv
MAIN_RESULTS = {"classifier": artefacts.RESULTS_CLASSIFIER, "segmenter": artefacts.RESULTS_SEGMENTER,
                "nodule_classifier": artefacts.RESULTS_NODULES, "nodule_heatmap": artefacts.RESULTS_NODULES}
# The task's own stages, which train and score its main cell
MAIN_STAGES = {"classifier": ("train_classifier", "evaluate_classifier"),
               "segmenter": ("train_segmenter", "evaluate_segmenter"),
               "nodule_classifier": ("train_nodules", "evaluate_nodules"),
               "nodule_heatmap": ("train_nodules", "evaluate_nodules")}


def stage_name(template: str, model: str, seed: int) -> str:
    """A cell's stage: its template's name (benchmark_<task>), the model and the seed."""
    return f"{template}-{model}-seed{seed}"


def baseline_key(task: str) -> str:
    return f"model.{task}"


def challengers_key(task: str) -> str:
    return f"benchmark.{task}.challengers"


@dataclass(frozen=True)
class Cell:
    task: str
    model: str
    seed: int
    network_key: str  # where params hold its network's config
    main: bool  # the task's own training stage's model (the baseline with the master seed)

    @property
    def name(self) -> str:
        return f"{self.model}-seed{self.seed}"

    @property
    def stage(self) -> str:
        return stage_name(f"benchmark_{self.task}", self.model, self.seed)

    @property
    def folder(self) -> Path:
        return artefacts.BENCHMARK[self.task] / self.name

    @property
    def scored(self) -> Path:
        """The file rank_<task>s reads: the test scores of this cell."""
        return (MAIN_RESULTS[self.task] if self.main else self.folder) / SCORED[self.task]


def models(params: dict[str, Any], task: str) -> list[tuple[str, str]]:
    """(instance name, params key of its network) of every model of a task, the baseline first."""
    challengers = params["benchmark"][task]["challengers"]
    return [(params["model"][task]["name"], baseline_key(task)),
            *((name, f"{challengers_key(task)}.{name}") for name in challengers)]


def cells(params: dict[str, Any], task: str) -> list[Cell]:
    """Every cell of a task, model by model (the baseline's first), seeds in their listed order."""
    return [Cell(task, model, seed, key, key == baseline_key(task) and seed == params["seed"])
            for model, key in models(params, task) for seed in params["benchmark"]["seeds"]]


def all_cells(params: dict[str, Any]) -> list[Cell]:
    return [cell for task in TASKS for cell in cells(params, task)]


def network(params: dict[str, Any], key: str) -> dict[str, Any]:
    """The value at a dotted params key (a cell's network_key: its network's config)."""
    value = params
    for part in key.split("."):
        value = value[part]
    return value


def problems(params: dict[str, Any]) -> list[str]:
    """What stops the matrices from being stages: a baseline name that cannot be part of a stage name, or a
    challenger named like the baseline."""
    found = []
    for task in TASKS:
        baseline = params["model"][task]["name"]
        if not INSTANCE_NAME.match(baseline):
            found.append(f"model.{task}.name: {baseline!r} names the baseline's benchmark stages: use letters, "
                         "digits and _ only")
        if baseline in params["benchmark"][task]["challengers"]:
            found.append(f"{challengers_key(task)}.{baseline}: a challenger named like the baseline (model.{task}.name): "
                         "give it another name (the key under challengers), or compare no challenger (benchmark=single)")
    return found


def cell_of(params: dict[str, Any], task: str) -> Cell:
    """The cell a benchmark_<task> command line names (`+instance.model=<model> +instance.seed=<seed>`): one of
    the task's matrix, and not the task's own training stage's."""
    named = (params["instance"]["model"], params["instance"]["seed"]) if "instance" in params else (None, None)
    others = [cell for cell in cells(params, task) if not cell.main]
    for cell in others:
        if (cell.model, cell.seed) == named:
            return cell
    listed = ", ".join(f"+instance.model={c.model} +instance.seed={c.seed}" for c in others)
    raise DataError("params.yaml", f"no cell of the {task} benchmark matrix is model {named[0]}, seed {named[1]} (the "
                    f"baseline with the master seed is {MAIN_STAGES[task][0]}'s)",
                    f"run one of: {listed or 'none: the matrix has no other cell'}; or let `dvc repro` / `snakemake` "
                    "run them (dvc.yaml has a stage per cell)")
