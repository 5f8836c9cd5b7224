"""Parameters: configs/ (Hydra groups) composed into params.yaml, validated against one JSON schema.

params.yaml is composed exactly as DVC's Hydra integration does it (`dvc exp run -S ...`): same config
directory, same `version_base=None`, resolved, dumped with `OmegaConf.to_yaml`. So `cxrbench compose` and
`dvc exp run` write the same bytes, and a test holds the committed params.yaml to that.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import jsonschema
import yaml

from cxrbench.errors import DataError

PROJECT_ROOT = Path(__file__).resolve().parents[2]
CONFIG_DIR = PROJECT_ROOT / "configs"
SCHEMA_PATH = PROJECT_ROOT / "workflow" / "schemas" / "params.schema.yaml"


def compose_yaml(overrides: Sequence[str] = (), config_dir: Path = CONFIG_DIR) -> str:
    """The params.yaml text that `dvc exp run -S <overrides>` would write."""
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    with initialize_config_dir(str(Path(config_dir).resolve()), version_base=None):
        cfg = compose(config_name="config", overrides=list(overrides))
    OmegaConf.resolve(cfg)
    return OmegaConf.to_yaml(cfg)


def validate(params: dict[str, Any], source: str | Path = "params.yaml") -> None:
    """Check parameters against workflow/schemas/params.schema.yaml; name the key and what is allowed."""
    schema = yaml.safe_load(SCHEMA_PATH.read_text())
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(params), key=lambda e: list(e.absolute_path))
    if not errors:
        return
    lines = []
    for err in errors:
        key = ".".join(str(p) for p in err.absolute_path) or "(top level)"
        allowed = _allowed(err)
        lines.append(f"  {key}: {err.message}" + (f" (allowed: {allowed})" if allowed else ""))
    raise DataError(
        source,
        "parameters do not match workflow/schemas/params.schema.yaml:\n" + "\n".join(lines),
        "edit configs/ (or your override) and recompose with `cxrbench compose`",
    )


def _allowed(err: jsonschema.ValidationError) -> str:
    if err.validator == "enum":
        return ", ".join(map(str, err.validator_value))
    if err.validator == "additionalProperties":
        return ", ".join(sorted(err.schema.get("properties", {})))
    if err.validator == "type":
        return str(err.validator_value)
    return ""


def load(path: str | Path = "params.yaml") -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "params.yaml not found", "run `cxrbench compose` in the project root")
    params = yaml.safe_load(path.read_text())
    validate(params, path)
    return params
