"""Stage split_scr: the SCR benchmark's two folds (fold 1 = odd case numbers, fold 2 = even).

Writes data/splits/scr.csv (case, patient, fold). Each JSRT case is its own patient. The segmenter trains on
each fold and is tested on the other (both directions are reported).
"""

from __future__ import annotations

import logging
from typing import Any

from cxrbench import artefacts, store
from cxrbench.fileio import atomic_path
from cxrbench.splits import check_no_leakage
from cxrbench.stages._app import run_stage

log = logging.getLogger(__name__)
OUT = artefacts.SPLIT_SCR


def split(params: dict[str, Any]) -> None:
    index = store.read_index(artefacts.STORE_JSRT)
    table = index[["case", "fold"]].assign(patient=index["case"])
    check_no_leakage(table.rename(columns={"fold": "part"}), str(OUT))
    for fold, group in table.groupby("fold"):
        log.info("fold %d: %d cases (%d with nodules)", fold, len(group), group["case"].str.startswith("JPCLN").sum())
    with atomic_path(OUT) as tmp:
        table[["case", "patient", "fold"]].to_csv(tmp, index=False, lineterminator="\n")


def main() -> None:
    run_stage("split_scr", split)


if __name__ == "__main__":
    main()
