"""A lab's own network and published ImageNet weights, through the whole NIH pipeline (tiny data):

- a `torch.nn.Module` in a package of the user's (a temporary folder on PYTHONPATH), named on the command line,
  trains and is evaluated under both runners with the same bytes, and the report names it;
- `cxrbench weights --fetch` brings ImageNet weights in with `dvc import-url` (here from a local file: no network
  in tests) and train_classifier starts from exactly that file."""

from __future__ import annotations

import json
import re
import textwrap
from pathlib import Path

import pytest
import torch
from monai.networks.nets import DenseNet121

from cxrbench.fileio import sha256_file
from helpers.pipeline import BIN, copy_repo, output_hashes, run

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

USER_NETWORK = textwrap.dedent("""
    import torch

    class TinyNet(torch.nn.Module):
        \"\"\"Two convolutions, global average pooling and a linear layer (so class activation maps work).\"\"\"

        def __init__(self, labels: int, width: int = 8):
            super().__init__()
            self.features = torch.nn.Sequential(torch.nn.Conv2d(1, width, 3, padding=1), torch.nn.ReLU(),
                                                torch.nn.Conv2d(width, width, 3, stride=2, padding=1), torch.nn.ReLU())
            self.pool = torch.nn.AdaptiveAvgPool2d(1)
            self.head = torch.nn.Linear(width, labels)

        def forward(self, x):
            return self.head(self.pool(self.features(x)).flatten(1))
""")
OWN_NETWORK = ["datasets=[nih]", "model.classifier.name=tinynet", "~model.classifier.imagenet", "~model.classifier.net",
               "+model.classifier.net={_target_: mylab.TinyNet, labels: 14, width: 8}"]


@pytest.fixture(scope="module")
def user_package(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("user_code")
    (root / "mylab").mkdir()
    (root / "mylab" / "__init__.py").write_text(USER_NETWORK)
    return root


@pytest.fixture(scope="module")
def own_network_runs(tmp_path_factory, user_package) -> tuple[Path, Path]:
    by_snakemake = copy_repo(tmp_path_factory.mktemp("snakemake"), *OWN_NETWORK)
    run([str(BIN / "snakemake"), "--cores", "2"], by_snakemake, pythonpath=(user_package,))
    by_dvc = copy_repo(tmp_path_factory.mktemp("dvc"), *OWN_NETWORK)
    run([str(BIN / "dvc"), "repro"], by_dvc, pythonpath=(user_package,))
    return by_snakemake, by_dvc


def test_a_users_network_trains_and_is_evaluated_under_both_runners(own_network_runs):
    by_snakemake, by_dvc = own_network_runs
    ours, theirs = output_hashes(by_snakemake), output_hashes(by_dvc)
    assert ours.keys() == theirs.keys() and sorted(k for k in ours if ours[k] != theirs[k]) == []
    network = json.loads((by_snakemake / "models/classifier/config.json").read_text())["network"]
    assert network["name"] == "tinynet" and network["net"]["_target_"] == "mylab.TinyNet"
    assert network["parameters"] == (9 * 8 + 8) + (8 * 9 * 8 + 8) + (8 * 14 + 14) == 790
    assert network["init"] == "random"
    metrics = json.loads((by_snakemake / "metrics/classifier.json").read_text())
    assert 0.0 <= metrics["mean_auc"] <= 1.0 and (by_snakemake / "metrics/localisation.json").is_file()
    assert "| NIH classification | tinynet | 790 |" in (by_snakemake / "results/report.md").read_text()


def test_imagenet_weights_fetched_with_dvc_start_the_training(tmp_path_factory):
    repo = copy_repo(tmp_path_factory.mktemp("imagenet"), "datasets=[nih]")
    published = tmp_path_factory.mktemp("publisher") / "densenet121-a639ec97.pth"
    rgb = DenseNet121(spatial_dims=2, in_channels=3, out_channels=1000)
    torch.save({re.sub(r"\.layers\.(norm|relu|conv)([12])\.", r".\1.\2.", name).replace("class_layers.out.", "classifier."):
                tensor for name, tensor in rgb.state_dict().items()}, published)  # torchvision's names of 2017
    overrides = ["datasets=[nih]", "model.classifier.init=imagenet", f"model.classifier.imagenet.url={published}",
                 f"model.classifier.imagenet.sha256='{sha256_file(published)[:8]}'"]  # quoted: an all-digit prefix is a string
    run([str(BIN / "cxrbench"), "compose", "experiment=tiny", *overrides], repo)
    with pytest.raises(AssertionError, match="cxrbench weights --fetch"):  # Snakemake stops before any work
        run([str(BIN / "snakemake"), "--cores", "2", "-n"], repo)
    fetched = run([str(BIN / "cxrbench"), "weights", "--fetch"], repo).stdout
    assert f"dvc import-url {published} weights/imagenet/densenet121-a639ec97.pth" in fetched
    assert (repo / "weights/imagenet/densenet121-a639ec97.pth.dvc").is_file()  # URL and checksum, for git
    run([str(BIN / "snakemake"), "--cores", "2", "train_classifier"], repo)
    network = json.loads((repo / "models/classifier/config.json").read_text())
    assert network["network"]["init"] == "imagenet" and network["network"]["sha256"] == sha256_file(published)
    assert (network["mean"], network["std"]) == (0.449, 0.226)  # ImageNet's standardisation, not the data's
