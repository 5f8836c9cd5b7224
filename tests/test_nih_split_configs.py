"""The NIH split options and the experiments that pin them (split, network, initialisation, recipe): composed
with Hydra's compose API, validated against the schema, and named honestly in the report."""

from __future__ import annotations

import pytest
import yaml

from cxrbench import config
from cxrbench.errors import DataError
from cxrbench.report.comparison import comparability
from cxrbench.report.datasets import nih_split_method, nih_split_name

LOCAL_PATHS = ["source.jsrt=/x", "source.scr=/x", "source.nih=/x", "source.google=/x"]
CHEXNET_RECIPE = {"batch_size": 16, "lr": 0.001, "lr_decay": 0.1, "hflip": True}
EXPERIMENTS = sorted(p.stem for p in (config.CONFIG_DIR / "experiment").glob("*.yaml"))


def composed(*overrides: str) -> dict:
    params = yaml.safe_load(config.compose_yaml(list(overrides)))
    config.validate(params)
    return params


@pytest.mark.parametrize(("experiment", "scheme", "views", "network"), [
    ("chexnet_official", "official", ["PA", "AP"], "densenet121"),
    ("chexnet_random_patients", "random_patients", ["PA", "AP"], "densenet121"),
    ("chexnet_official_pa", "official", ["PA"], "densenet121"),
    ("wang2017_resnet50_official", "official", ["PA", "AP"], "resnet50"),
])
def test_nih_experiments_pin_their_split_network_and_the_chexnet_recipe(experiment, scheme, views, network):
    params = composed(f"experiment={experiment}", *LOCAL_PATHS)
    split = params["split"]["nih"]
    assert (split["scheme"], split["views"], split["labels_agree_with"]) == (scheme, views, None)
    assert params["source"]["kind"] == "local" and params["decode"]["nih"]["size"] == 224
    assert params["datasets"] == ["nih"]
    assert CHEXNET_RECIPE.items() <= params["train"]["classifier"].items()
    classifier = params["model"]["classifier"]
    assert (classifier["name"], classifier["init"]) == (network, "imagenet")  # the papers start from ImageNet
    assert config.imagenet_weights(params)["model.classifier"]["file"].endswith(".pth")
    if scheme == "random_patients":
        assert split["fractions"] == {"train": 0.7, "val": 0.1, "test": 0.2} and "val_fraction" not in split


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_every_experiment_file_composes_validates_and_says_what_it_could_not_match(experiment):
    params = composed(f"experiment={experiment}", *LOCAL_PATHS)
    text = (config.CONFIG_DIR / "experiment" / f"{experiment}.yaml").read_text()
    assert text.startswith("# @package _global_\n#")  # every file explains itself
    if params["model"]["classifier"]["init"] == "imagenet":
        assert "\n# Not matched:" in text


def test_each_scheme_takes_only_its_own_fractions():
    params = composed("split=random_patients")
    params["split"]["nih"]["val_fraction"] = 0.1
    with pytest.raises(DataError, match=r"split.nih: .*val_fraction"):
        config.validate(params)
    official = composed()
    del official["split"]["nih"]["val_fraction"]
    with pytest.raises(DataError, match="split.nih: 'val_fraction' is a required property"):
        config.validate(official)
    with pytest.raises(DataError, match=r"split.nih.labels_agree_with: .*allowed: None, Data_Entry_2017.csv"):
        composed("split.nih.labels_agree_with=Data_Entry_2018.csv")


def _info(**changes) -> dict:
    info = {"scheme": "official", "seed": 0, "seed_stream": 101, "val_fraction": 0.1, "views": ["PA", "AP"],
            "counts": {}}
    return {**info, **changes}


def test_report_names_only_the_unrestricted_official_split_official():
    assert nih_split_name(_info()) == "official"
    assert comparability("official", nih_split_name(_info()), synthetic=False) == "yes"
    restricted = [
        _info(views=["PA"]),
        _info(labels_agree_with={"file": "Data_Entry_2017.csv", "current": "Data_Entry_2017_v2020.csv",
                                 "images_excluded": 181}),
        _info(scheme="random_patients", fractions_of_patients={"train": 0.7, "val": 0.1, "test": 0.2},
              pinned_to_test={}),
        _info(archive_subset={"file": "archive_subset.csv", "images": 4999}),
    ]
    for info in restricted:
        assert comparability("official", nih_split_name(info), synthetic=False).startswith("no: different split")
        assert comparability("random_patient", nih_split_name(info), synthetic=False).startswith("no: different split")
    assert "PA only" in nih_split_name(restricted[0])
    assert "181 images whose labels in Data_Entry_2017_v2020.csv differ from Data_Entry_2017.csv" in \
        nih_split_method(restricted[1])
    assert "70/10/20% of the patients" in nih_split_method(restricted[2])
    assert "4999 images of the archives selected" in nih_split_name(restricted[3])
    assert "Only the 4999 images of the archives source.archives selected" in nih_split_method(restricted[3])
