"""Tables of our results beside the published ones, all built by `comparison_table`: in each block our row(s)
for a measure, then the published rows of that measure, each naming its split, with the difference from ours and
whether it is comparable; published rows on another split than ours come last.

A published row is comparable with ours only when it used the same split and our run used real data; otherwise
its `comparable` cell says why not.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

OURS = "cxrbench (this run)"
Row = dict[str, Any]


def comparability(published_split: str, our_split: str, synthetic: bool, caveat: str = "") -> str:
    if published_split != our_split:
        return f"no: different split ({published_split})"
    if synthetic:
        return "no: synthetic data"
    return f"no: {caveat}" if caveat else "yes"


def our_split_name(split: str, synthetic: bool) -> str:
    """Our split as a table names it: synthetic data is said beside the split."""
    return f"{split} (synthetic data)" if synthetic else split


def cell_text(value: Any) -> str:
    """A published table's optional cell as text (missing: empty)."""
    return "" if value is None or (isinstance(value, float) and np.isnan(value)) else str(value)


def published_source(row: pd.Series) -> str:
    """'Wang et al. 2017, ChestX-ray14 model [P]': who, which model, and whether read in the primary source."""
    method = cell_text(row["method"])
    return f"{row['source']}{', ' + method if method else ''} [{row['marker']}]"


@dataclass
class Published:
    """A published result as a table row (its "split" decides whether it is comparable). Where ours minus it is
    a row of its own (the localisation table: one difference per class), `difference_rows` follow it and share
    its comparability; elsewhere the difference is a column of `row`."""

    row: Row
    difference_rows: list[Row] = field(default_factory=list)


@dataclass
class Beside:
    """Our rows for one measure and the published rows of the same measure; `caveat` says why a published row on
    our split is still not comparable (e.g. labelled images outside our split)."""

    ours: list[Row]
    published: list[Published]
    caveat: str = ""


def comparison_table(blocks: Iterable[Beside], columns: Sequence[str], *, our_split: str,
                     synthetic: bool) -> pd.DataFrame:
    """Block by block our rows (`comparable` blank), then each published row with its comparability and its
    difference rows; the rows on another split than ours are moved after the rest, in their order."""
    rows: list[Row] = []
    for block in blocks:
        rows += [{**row, "comparable": ""} for row in block.ours]
        for paper in block.published:
            comparable = comparability(paper.row["split"], our_split, synthetic, block.caveat)
            rows += [{**row, "comparable": comparable} for row in (paper.row, *paper.difference_rows)]
    frame = pd.DataFrame(rows, columns=list(columns))
    other_split = frame["comparable"].str.startswith("no: different split")
    return pd.concat([frame[~other_split], frame[other_split]], ignore_index=True)
