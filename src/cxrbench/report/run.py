"""What a report section reads: the run's parameters and the outputs its stages wrote under `root`."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import pandas as pd

from cxrbench import artefacts, store


@dataclass
class Run:
    params: dict[str, Any]
    root: Path = Path(".")

    @property
    def datasets(self) -> list[str]:
        return self.params["datasets"]

    @property
    def synthetic(self) -> bool:
        return self.params["source"]["kind"] == "synthetic"

    def path(self, output: Path) -> Path:
        return self.root / output

    def json(self, output: Path) -> dict[str, Any]:
        return json.loads(self.path(output).read_text())

    def network_name(self, model: Path) -> str:
        """The name of the network a model folder holds (its config.json), for "ours" rows."""
        return self.json(model / artefacts.MODEL_CONFIG)["network"]["name"]

    def csv(self, output: Path, **options: Any) -> pd.DataFrame:
        return pd.read_csv(self.path(output), **options)

    # Read once: several sections use them.
    @cached_property
    def jsrt_index(self) -> pd.DataFrame:
        return store.read_index(self.path(artefacts.STORE_JSRT))

    @cached_property
    def nih_index(self) -> pd.DataFrame:
        return store.read_index(self.path(artefacts.STORE_NIH))

    @cached_property
    def nih_split(self) -> dict[str, Any]:
        return self.json(artefacts.SPLIT_NIH_INFO)
