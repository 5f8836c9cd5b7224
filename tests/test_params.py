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


@pytest.mark.parametrize("experiment", sorted(p.stem for p in (ROOT / "configs" / "experiment").glob("chexnet_*.yaml")))
def test_published_nih_setups_ask_for_nih_alone(experiment):
    params = yaml.safe_load(config.compose_yaml([f"experiment={experiment}", "source.nih=/data/nih"]))
    assert params["datasets"] == ["nih"]
    config.validate(params)
    with_google = yaml.safe_load(config.compose_yaml([f"experiment={experiment}", "source.nih=/data/nih",
                                                      "datasets=[nih,google]"]))
    with pytest.raises(DataError, match="source.google: not set, but datasets lists google"):
        config.validate(with_google)


@pytest.mark.parametrize(("overrides", "named"), [
    (["datasets=[jsrt]"], "datasets: jsrt is listed without scr"),
    (["datasets=[scr,nih]"], "datasets: scr is listed without jsrt"),
    (["datasets=[google]"], "datasets: google is listed without nih"),
    (["datasets=[nih,nih]"], "datasets: ['nih', 'nih'] has non-unique elements"),
    (["datasets=[]"], "datasets: [] should be non-empty"),
    (["datasets=[chexpert]"], "datasets.0: 'chexpert' is not one of"),
    (["source=local", "datasets=[nih]"], "source.nih: not set, but datasets lists nih: set source.nih=/path/to/your/copy"),
    (["source=local", "datasets=[jsrt,scr]", "source.jsrt=/j"], "source.scr: not set, but datasets lists scr"),
])
def test_a_choice_of_datasets_that_cannot_run_is_refused_naming_the_parameter(overrides, named):
    params = yaml.safe_load(config.compose_yaml(overrides))
    with pytest.raises(DataError) as err:
        config.validate(params)
    assert named in str(err.value)
    assert "???" not in str(err.value)


def test_a_dataset_left_out_needs_no_path():
    for overrides in (["source=local", "datasets=[nih]", "source.nih=/n"],
                      ["source=local", "datasets=[jsrt,scr]", "source.jsrt=/j", "source.scr=/s"],
                      ["source=download", "datasets=[nih]"], ["source=gcs", "datasets=[nih]"]):
        config.validate(yaml.safe_load(config.compose_yaml(overrides)))


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


def test_cli_compose_writes_params_and_the_dvc_yaml_of_its_datasets(tmp_path, capsys):
    out = tmp_path / "params.yaml"
    assert cli_main(["compose", "experiment=tiny", "datasets=[nih]", "-o", str(out)]) == 0
    assert out.read_text() == config.compose_yaml(["experiment=tiny", "datasets=[nih]"])
    assert (tmp_path / "dvc.yaml").read_text() == config.compose_dvc_yaml(yaml.safe_load(out.read_text()))
    assert "datasets nih" in capsys.readouterr().out


def test_cli_compose_refuses_a_missing_path_naming_it(tmp_path, capsys):
    assert cli_main(["compose", "source=local", "-o", str(tmp_path / "params.yaml")]) == 2
    error = capsys.readouterr().err
    for name in ("jsrt", "scr", "nih", "google"):
        assert f"source.{name}: not set" in error
    assert "???" not in error and not (tmp_path / "params.yaml").exists() and not (tmp_path / "dvc.yaml").exists()


def test_the_scr_experiment_segments_at_512_px_with_the_full_width_unet():
    """The full configuration of the SCR benchmark: a store that does not cap the clavicles and a U-Net sized for
    it, which takes 512 px images to one map per object at 512 px."""
    import torch
    from hydra.utils import instantiate

    params = yaml.safe_load(config.compose_yaml(["experiment=scr_van_ginneken_2006", "source.jsrt=/j",
                                                 "source.scr=/s"]))
    config.validate(params)
    assert params["datasets"] == ["jsrt", "scr"] and params["decode"]["jsrt"]["size"] == 512
    segmenter = params["model"]["segmenter"]
    assert segmenter["name"] == "unet_full" and len(segmenter["net"]["strides"]) == 4
    assert params["train"]["runtime"]["device"] == "cuda"
    with torch.no_grad():
        assert instantiate(segmenter["net"]).eval()(torch.zeros(1, 1, 512, 512)).shape == (1, 5, 512, 512)
