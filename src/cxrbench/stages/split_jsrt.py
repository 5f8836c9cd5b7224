"""Stage split_jsrt: stratified, seeded k-fold splits of the JSRT cases for the nodule tasks.

- `malignancy`: the nodule cases only (malignant vs benign), stratified by malignancy;
- `nodule`: every case (nodule vs no nodule), stratified by nodule presence and, within the nodule cases, by
  subtlety, so each fold holds about as many nodules of each subtlety (the FROC is broken down by it).
The localisation (heat-map) model is cross-validated on the `nodule` folds.

Writes data/splits/jsrt_nodules.csv (case, task, fold 1..k) and data/splits/jsrt_nodules.json (how it was
made: seed, folds, strata, counts per fold, sha256 of the store index). Each JSRT case is its own patient; the
stage fails, naming the cases, unless each task lists every one of its cases in exactly one fold.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cxrbench import artefacts, nodules, seed_streams, store
from cxrbench.errors import DataError
from cxrbench.fileio import atomic_path, sha256_file, write_json
from cxrbench.splits import check_no_leakage
from cxrbench.stages._app import run_stage

log = logging.getLogger(__name__)
STORE = artefacts.STORE_JSRT
OUT = artefacts.SPLIT_JSRT_NODULES
STRATA = {"nodule": "nodule presence, and subtlety 1..5 within the nodule cases", "malignancy": "malignant / benign"}


def stratified_folds(strata: np.ndarray, n_folds: int, rng: np.random.Generator) -> np.ndarray:
    """Fold 1..n_folds for each item, stratified by `strata`.

    The items are shuffled, grouped by stratum and dealt round robin in that order, so every stratum, and the
    total, differ by at most one item between folds. The fold numbers are then shuffled too, so which folds
    get the extra items is random as well.
    """
    strata = np.asarray(strata)
    order = rng.permutation(len(strata))
    order = order[np.argsort(strata[order], kind="stable")]
    folds = np.empty(len(strata), dtype=np.int64)
    folds[order] = rng.permutation(n_folds)[np.arange(len(strata)) % n_folds] + 1
    return folds


def task_strata(index: pd.DataFrame, task: str) -> pd.DataFrame:
    """The task's cases (case, label) with the stratum each is dealt by."""
    cases = nodules.task_cases(index, task)
    if task == "nodule":
        subtlety = cases["case"].map(index.set_index("case")["subtlety"]).astype("Int64").astype(str)
        strata = np.where(cases["label"] == 1, "nodule, subtlety " + subtlety, "no nodule")
    else:
        strata = np.where(cases["label"] == 1, "malignant", "benign")
    return cases.assign(stratum=strata)


def make_split(index: pd.DataFrame, n_folds: int, seed: int, source: Path) -> pd.DataFrame:
    """(case, task, fold) for every task, each task with its own seeded stream."""
    frames = []
    for task_number, task in enumerate(nodules.TASKS):
        cases = task_strata(index, task)
        if len(cases) < n_folds:
            raise DataError(source, f"task {task!r} has {len(cases)} cases, too few for {n_folds} folds",
                            f"set nodules.folds to at most {len(cases)} (or decode more JSRT cases)")
        rng = np.random.default_rng([seed, seed_streams.SPLIT_JSRT_NODULES, task_number])
        folds = stratified_folds(cases["stratum"].to_numpy(), n_folds, rng)
        frames.append(pd.DataFrame({"case": cases["case"], "task": task, "fold": folds}))
    return pd.concat(frames, ignore_index=True).sort_values(["task", "case"], ignore_index=True)


def check_folds(table: pd.DataFrame, index: pd.DataFrame, source: str) -> None:
    """Every case of each task in exactly one fold of it, and no other case: JSRT has one image per patient,
    so the case is the patient. Fails naming the cases."""
    problems = []
    for task in nodules.TASKS:
        folds = table[table["task"] == task]
        check_no_leakage(folds.rename(columns={"fold": "part"}).assign(patient=folds["case"]), source)
        rows_per_case = folds["case"].value_counts()
        expected = set(nodules.task_cases(index, task)["case"])
        for what, cases in (("missing", expected - set(rows_per_case.index)),
                            ("not cases of the task", set(rows_per_case.index) - expected),
                            ("listed more than once", set(rows_per_case.index[rows_per_case > 1]))):
            if cases:
                problems.append(f"task {task!r}, {what}: {', '.join(sorted(cases)[:20])}")
    if problems:
        raise DataError(source, "the split does not list each case of each task once: " + "; ".join(problems),
                        "rerun the split_jsrt stage on the current store")


def fold_counts(table: pd.DataFrame, index: pd.DataFrame) -> dict[str, Any]:
    counts = {}
    for task in nodules.TASKS:
        folds = table[table["task"] == task].merge(nodules.task_cases(index, task), on="case")
        per_fold = folds.groupby("fold")["label"].agg(["size", "sum"])
        counts[task] = {"cases": int(len(folds)), "positives": int(folds["label"].sum()), "strata": STRATA[task],
                        "per_fold": {str(fold): {"cases": int(row["size"]), "positives": int(row["sum"])}
                                     for fold, row in per_fold.iterrows()}}
    return counts


def split(params: dict[str, Any]) -> None:
    n_folds, seed = params["nodules"]["folds"], params["seed"]
    index = store.read_index(STORE)
    table = make_split(index, n_folds, seed, STORE / store.INDEX)
    check_folds(table, index, str(OUT))
    counts = fold_counts(table, index)
    for task, c in counts.items():
        log.info("%s: %d cases (%d positive) in %d folds: %s", task, c["cases"], c["positives"], n_folds,
                 ", ".join(f"{v['cases']} ({v['positives']})" for v in c["per_fold"].values()))
        smallest = min(c["positives"], c["cases"] - c["positives"])
        if smallest < n_folds:
            log.warning("%s: the smaller class has %d cases, fewer than the %d folds: some folds lack it",
                        task, smallest, n_folds)
    with atomic_path(OUT) as tmp:
        table.to_csv(tmp, index=False, lineterminator="\n")
    write_json(OUT.with_suffix(".json"), {
        "method": "stratified k-fold by case, one seeded stream per task; fold k = the test fold of the k-th model",
        "seed": seed, "seed_stream": seed_streams.SPLIT_JSRT_NODULES, "folds": n_folds, "tasks": counts,
        "sources": {(STORE / store.INDEX).as_posix(): sha256_file(STORE / store.INDEX)},
    })


def main() -> None:
    run_stage("split_jsrt", split)


if __name__ == "__main__":
    main()
