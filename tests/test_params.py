"""configs/ (Hydra groups) -> params.yaml: the committed file is the composition, and bad parameters are
refused naming the key and what is allowed. Configs are built with Hydra's compose API."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from cxrbench import config
from cxrbench.cli import main as cli_main
from cxrbench.errors import DataError

ROOT = Path(__file__).resolve().parents[1]


def test_committed_params_equal_the_composition():
    assert (ROOT / "params.yaml").read_text() == config.compose_yaml()


def test_dvc_hydra_integration_points_at_configs():
    text = (ROOT / ".dvc" / "config").read_text()
    assert "[hydra]" in text and "enabled = true" in text and "config_dir = configs" in text


def test_composition_matches_dvcs_own(tmp_path):
    from dvc.utils.hydra import compose_and_dump

    out = tmp_path / "params.yaml"
    overrides = ["experiment=tiny", "train.classifier.epochs=3"]
    compose_and_dump(out, str(ROOT / "configs"), None, "config", str(ROOT), overrides)
    assert out.read_text() == config.compose_yaml(overrides)


@pytest.mark.parametrize("experiment", sorted(p.stem for p in (ROOT / "configs" / "experiment").glob("*.yaml")))
def test_every_experiment_composes_and_validates(experiment):
    params = yaml.safe_load(config.compose_yaml([f"experiment={experiment}", "source.jsrt=/x", "source.scr=/x",
                                                 "source.nih=/x", "source.google=/x"]))
    config.validate(params)


def test_tiny_experiment_shrinks_everything():
    tiny = yaml.safe_load(config.compose_yaml(["experiment=tiny"]))
    demo = yaml.safe_load(config.compose_yaml())
    assert tiny["synthetic"]["nih"]["n_patients"] < demo["synthetic"]["nih"]["n_patients"]
    assert tiny["decode"]["nih"]["size"] < demo["decode"]["nih"]["size"]
    assert tiny["train"]["classifier"]["epochs"] <= demo["train"]["classifier"]["epochs"]


def test_unknown_key_is_refused_by_hydra():
    from hydra.errors import ConfigCompositionException

    with pytest.raises(ConfigCompositionException, match="epoch"):
        config.compose_yaml(["train.classifier.epoch=3"])


def test_schema_names_key_and_allowed_values():
    params = yaml.safe_load(config.compose_yaml())
    params["decode"]["nih"]["on_bad_image"] = "ignore"
    params["train"]["classifier"]["epochs"] = "many"
    params["split"]["nih"]["colour"] = 1
    with pytest.raises(DataError) as err:
        config.validate(params, "my.yaml")
    message = str(err.value)
    assert "my.yaml" in message
    assert "decode.nih.on_bad_image" in message and "fail, quarantine" in message
    assert "train.classifier.epochs" in message and "integer" in message
    assert "split.nih" in message and "colour" in message


def test_cli_compose_writes_params(tmp_path, capsys):
    out = tmp_path / "params.yaml"
    assert cli_main(["compose", "experiment=tiny", "-o", str(out)]) == 0
    assert out.read_text() == config.compose_yaml(["experiment=tiny"])
