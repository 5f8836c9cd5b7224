"""Model configs as the pipeline composes them: `network("classifier", "resnet50")` is params
`model.classifier` after `cxrbench compose model/classifier=resnet50` (Hydra's compose API)."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import yaml

from cxrbench import config

GROUPS = ("classifier", "segmenter", "nodule_classifier", "nodule_heatmap")


def options(group: str) -> list[str]:
    """The option files of configs/model/<group>/."""
    return sorted(p.stem for p in Path(config.CONFIG_DIR, "model", group).glob("*.yaml"))


@functools.cache
def _composed(group: str, option: str) -> str:
    return config.compose_yaml([f"model/{group}={option}"])


def network(group: str, option: str) -> dict[str, Any]:
    """A fresh copy of params `model.<group>` with that option chosen."""
    return yaml.safe_load(_composed(group, option))["model"][group]
