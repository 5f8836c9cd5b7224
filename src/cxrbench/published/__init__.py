"""Published results as data: the tables the report puts next to our numbers.

`results.yaml` beside this module holds every published number the benchmark compares against, each
with its source, citation, split and whether it was read in the primary source ([P]) or quoted by a
third party ([S]). `load()` returns them in long form, one number per row.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from cxrbench.errors import DataError

RESULTS_PATH = Path(__file__).with_name("results.yaml")

COLUMNS = (
    "task", "table", "source", "citation", "method", "split", "marker",
    "metric", "label", "threshold", "value", "sd", "note",
)
SPLITS = frozenset(
    {"official", "random_patient", "bbox_list_2017", "scr_folds", "google_test", "paper_protocol", "all"}
)
MARKERS = frozenset({"P", "S"})
MEAN_LABEL = "mean"  # the label of a printed mean over a row's labels
_TABLE_DEFAULTS = ("task", "split", "metric", "source", "citation", "method", "marker", "threshold", "note")
_ROW_KEYS = frozenset(_TABLE_DEFAULTS) | {"values", "sd", "mean"}
_REQUIRED = ("task", "split", "metric", "source", "marker")
_FIX = "correct the entry named above, or restore the file from the repository"


def _number(value: Any, path: Path, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise DataError(path, f"{where}: expected a finite number, found {value!r}", _FIX)
    return float(value)


def _rows_of_table(table: dict, labels_by_task: dict, path: Path) -> Iterator[dict]:
    if not isinstance(table, dict) or not isinstance(table.get("rows"), list):
        raise DataError(path, f"each entry of 'tables' must be a mapping with a list 'rows', found {table!r:.80}", _FIX)
    name = table.get("table")
    for position, row in enumerate(table["rows"]):
        where = f"table {name!r}, row {position + 1}"
        if not isinstance(row, dict):
            raise DataError(path, f"{where}: expected a mapping, found {row!r:.80}", _FIX)
        unknown = set(row) - _ROW_KEYS
        if unknown:
            raise DataError(path, f"{where}: unknown keys {sorted(unknown)}; allowed {sorted(_ROW_KEYS)}", _FIX)
        fields = {key: row.get(key, table.get(key)) for key in _TABLE_DEFAULTS}
        missing = [key for key in _REQUIRED if fields[key] is None]
        if missing:
            raise DataError(path, f"{where}: missing {missing} (in the row or its table)", _FIX)
        if fields["split"] not in SPLITS:
            raise DataError(path, f"{where}: split {fields['split']!r} is not one of {sorted(SPLITS)}", _FIX)
        if fields["marker"] not in MARKERS:
            raise DataError(path, f"{where}: marker {fields['marker']!r} is not P or S", _FIX)
        allowed_labels = labels_by_task.get(fields["task"])
        if allowed_labels is None:
            raise DataError(path, f"{where}: task {fields['task']!r} has no label list under 'labels'", _FIX)
        values = dict(row.get("values") or {})
        spreads = dict(row.get("sd") or {})
        if "mean" in row:
            values[MEAN_LABEL] = row["mean"]
        if not values:
            raise DataError(path, f"{where}: no 'values' and no 'mean'", _FIX)
        stray = set(values) - set(allowed_labels) - {MEAN_LABEL}
        if stray:
            raise DataError(path, f"{where}: {sorted(stray)} are not labels of task {fields['task']!r} "
                            f"(expected some of {allowed_labels})", _FIX)
        if set(spreads) - set(values):
            raise DataError(path, f"{where}: sd given for {sorted(set(spreads) - set(values))} without a value", _FIX)
        threshold = math.nan if fields["threshold"] is None else _number(fields["threshold"], path, where)
        for label, value in values.items():
            yield {
                **fields,
                "table": name,
                "label": label,
                "threshold": threshold,
                "value": _number(value, path, f"{where}, {label}"),
                "sd": _number(spreads[label], path, f"{where}, sd of {label}") if label in spreads else math.nan,
            }


@functools.lru_cache(maxsize=4)
def _read(path: Path) -> tuple[pd.DataFrame, dict[str, list[str]]]:
    """(long-form frame, labels by task) of a results file, validated."""
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(path, "the published-results file is missing", _FIX) from None
    except yaml.YAMLError as error:
        raise DataError(path, f"not valid YAML: {error}", _FIX) from None
    if not isinstance(document, dict) or not isinstance(document.get("tables"), list):
        raise DataError(path, "expected a mapping with 'labels' and a list 'tables'", _FIX)
    labels_by_task = {task: list(names) for task, names in (document.get("labels") or {}).items()}
    rows = [row for table in document["tables"] for row in _rows_of_table(table, labels_by_task, path)]
    return pd.DataFrame(rows, columns=list(COLUMNS)), labels_by_task


def labels(task: str, *, path: Path = RESULTS_PATH) -> list[str]:
    """A task's label names in table order (e.g. 'nih_classification': the 14 NIH findings)."""
    labels_by_task = _read(Path(path))[1]
    if task not in labels_by_task:
        raise ValueError(f"unknown task {task!r}; known: {sorted(labels_by_task)}")
    return list(labels_by_task[task])


def load(task: str | None = None, split: str | None = None, *, path: Path = RESULTS_PATH) -> pd.DataFrame:
    """Published numbers in long form, one per row, in file order.

    Columns: task, table, source, citation, method, split, marker ('P' primary / 'S' secondary),
    metric, label (a class name, or 'mean' for a printed mean over the row's classes), threshold
    (T(IoBB)/T(IoU), or false positives per image; NaN where none), value, sd (NaN where none), note.
    `task` (e.g. 'nih_classification', 'nih_localisation', 'scr_segmentation', 'jsrt_nodules',
    'google_expert_labels', 'nih_dataset') and `split` filter the rows.
    """
    frame = _read(Path(path))[0]
    for column, wanted in (("task", task), ("split", split)):
        if wanted is not None:
            known = sorted(frame[column].unique())
            if wanted not in known:
                raise ValueError(f"unknown {column} {wanted!r}; known: {known}")
            frame = frame[frame[column] == wanted]
    return frame.reset_index(drop=True)
