"""Networks chosen in configs (configs/model/<task>/): every shipped option builds with Hydra's instantiate and
fits its task; a user's own module plugs in by its class name; initial weights are random, published ImageNet
weights (proved loaded tensor for tensor from a planted file) or a checkpoint of ours; and a training stage
depends on the weights file it reads, under both runners' declaration."""

from __future__ import annotations

import re
import sys
import textwrap
from pathlib import Path

import pytest
import torch
import yaml

from cxrbench import config
from cxrbench.errors import DataError
from cxrbench.fileio import sha256_file
from cxrbench.models import networks, pretrained
from cxrbench.vocabulary import LABELS, OBJECTS
from helpers.models import GROUPS, network, options

# what each task feeds its network (a batch of two grey images of this side) and needs back
TASK_SHAPES = {"classifier": (64, (2, len(LABELS))), "segmenter": (64, (2, len(OBJECTS), 64, 64)),
               "nodule_classifier": (16, (2, 1)), "nodule_heatmap": (64, (2, 1, 64, 64))}
WITH_IMAGENET = [option for option in options("classifier") if "imagenet" in network("classifier", option)]


@pytest.mark.parametrize(("group", "option"), [(g, o) for g in GROUPS for o in options(g)])
def test_every_shipped_network_builds_from_its_config_and_fits_its_task(group, option):
    spec = network(group, option)
    config.validate({**yaml.safe_load(config.compose_yaml([f"model/{group}={option}", "benchmark=single"]))})
    model = networks.build(spec)
    side, shape = TASK_SHAPES[group]
    networks.check_output(model, f"model.{group}", side, shape, group)
    assert model.training  # the check leaves the module as it found it


def test_the_issue_s_networks_are_shipped():
    assert {"densenet121", "resnet50", "efficientnet_b0"} <= set(options("classifier"))
    assert {"densenet169", "densenet201"} & set(options("classifier"))
    assert {"unet", "attention_unet", "segresnet"} <= set(options("segmenter"))
    assert {"densenet121", "densenet169", "densenet201", "resnet50", "efficientnet_b0"} <= set(WITH_IMAGENET)


def test_a_network_with_the_wrong_outputs_is_refused_naming_the_key():
    spec = network("classifier", "densenet121")
    spec["net"]["out_channels"] = 3
    with pytest.raises(DataError, match=r"model\.classifier\.net builds DenseNet121, whose output .* \(2, 3\); "
                                        r".* needs \(2, 14\)"):
        networks.check_output(networks.build(spec), "model.classifier", 32, (2, 14), "the NIH classifier")


def test_a_users_own_module_plugs_in_by_its_class_name(tmp_path, monkeypatch):
    package = tmp_path / "mylab"
    package.mkdir()
    (package / "__init__.py").write_text(textwrap.dedent("""
        import torch

        class TinyNet(torch.nn.Module):
            def __init__(self, labels: int, width: int = 4):
                super().__init__()
                self.conv = torch.nn.Conv2d(1, width, 3, padding=1)
                self.head = torch.nn.Linear(width, labels)

            def forward(self, x):
                return self.head(torch.relu(self.conv(x)).mean(dim=(-2, -1)))
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    # on the command line: `~` drops the shipped network's arguments, `+` puts the user's in their place
    params = yaml.safe_load(config.compose_yaml(["model.classifier.name=tiny", "~model.classifier.imagenet",
                                                 "~model.classifier.net",
                                                 "+model.classifier.net={_target_: mylab.TinyNet, labels: 14}"]))
    config.validate(params)
    model = networks.build(params["model"]["classifier"])
    assert type(model).__name__ == "TinyNet" and model.conv.out_channels == 4
    networks.check_output(model, "model.classifier", 32, (2, len(LABELS)), "the NIH classifier")
    sys.modules.pop("mylab", None)


def plant_published_weights(option: str, path: Path) -> dict[str, torch.Tensor]:
    """A file in the publisher's layout for the network of `option` (RGB input, 1000 ImageNet classes), every
    tensor filled with its own random values; returns the tensors as planted, by their names in the file."""
    spec = network("classifier", option)
    rgb = {**spec["net"]}
    channels_key = "n_input_channels" if "n_input_channels" in rgb else "in_channels"
    outputs_key = "num_classes" if "num_classes" in rgb else "out_channels"
    rgb.update({channels_key: 3, outputs_key: 1000})
    published_name = PUBLISHED_NAMES[spec["imagenet"]["layout"]]
    generator = torch.Generator().manual_seed(7)
    planted = {published_name(name): torch.randn(tensor.shape, generator=generator) if tensor.is_floating_point()
               else tensor.clone()
               for name, tensor in networks.build({"net": rgb}).state_dict().items()
               if not name.endswith("num_batches_tracked")}
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(planted, path)
    return planted


# The publishers' names, written from their code rather than from ours: torchvision's 2017 DenseNet files
# (norm.1, conv.2, ...; head `classifier`), torchvision's ResNet (our names; head `fc`), and EfficientNet-PyTorch
# (blocks numbered without stages; head `_fc`).
PUBLISHED_NAMES = {
    "torchvision_densenet": lambda n: re.sub(r"\.layers\.(norm|relu|conv)([12])\.", r".\1.\2.", n)
                                        .replace("class_layers.out.", "classifier."),
    "torchvision_resnet": lambda n: n,
    "efficientnet_pytorch": lambda n: re.sub(r"^_blocks\.\d+\.", "_blocks.", n),
}


@pytest.mark.parametrize("option", WITH_IMAGENET)
def test_imagenet_init_loads_exactly_the_published_tensors(option, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    spec = network("classifier", option)
    planted = plant_published_weights(option, Path(spec["imagenet"]["file"]))
    spec["init"], spec["imagenet"]["sha256"] = "imagenet", sha256_file(spec["imagenet"]["file"])[:8]
    torch.manual_seed(0)
    model = networks.build(spec)
    head_before = {k: v.clone() for k, v in model.state_dict().items() if k.startswith(pretrained.LAYOUTS[
        spec["imagenet"]["layout"]].head)}
    loaded = networks.initialise(model, spec, "model.classifier")

    state = model.state_dict()
    to_published = PUBLISHED_NAMES[spec["imagenet"]["layout"]]
    compared = 0
    for name, tensor in state.items():
        if name in head_before:
            torch.testing.assert_close(tensor, head_before[name], rtol=0, atol=0)  # ours, for our 14 labels
        elif not name.endswith("num_batches_tracked"):
            expected = planted[to_published(name)]
            if expected.shape[1:2] == (3,) and tensor.shape[1] == 1:
                expected = expected.sum(dim=1, keepdim=True)  # the RGB first convolution, summed over RGB
            torch.testing.assert_close(tensor, expected, rtol=0, atol=0)
            compared += 1
    assert compared == loaded["tensors_loaded"] > 50
    assert loaded["sha256"] == sha256_file(spec["imagenet"]["file"]) and loaded["init"] == "imagenet"
    assert networks.input_normalisation(spec, (0.5, 0.2)) == pretrained.IMAGENET_GREY


def test_imagenet_weights_missing_say_which_file_its_checksum_and_where_to_get_it(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    spec = {**network("classifier", "densenet121"), "init": "imagenet"}
    with pytest.raises(DataError) as err:
        networks.initialise(networks.build(spec), spec, "model.classifier")
    message = str(err.value)
    for part in ("weights/imagenet/densenet121-a639ec97.pth", "sha256 a639ec97",
                 "https://download.pytorch.org/models/densenet121-a639ec97.pth", "cxrbench weights --fetch",
                 "dvc import-url", "model.classifier.imagenet.file"):
        assert part in message


def test_imagenet_weights_of_another_checksum_or_network_are_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    spec = {**network("classifier", "densenet121"), "init": "imagenet"}
    plant_published_weights("resnet50", Path(spec["imagenet"]["file"]))  # a ResNet under DenseNet's name
    with pytest.raises(DataError, match=r"sha256 [0-9a-f]{16}\.\.\., expected a639ec97"):
        networks.initialise(networks.build(spec), spec, "model.classifier")
    spec["imagenet"]["sha256"] = sha256_file(spec["imagenet"]["file"])
    model = networks.build(spec)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(DataError, match=r"does not fit model\.classifier\.net \(DenseNet121.*not in the file"):
        networks.initialise(model, spec, "model.classifier")
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # never half-loaded


def test_init_from_a_checkpoint_of_ours_loads_it_and_refuses_another_network(tmp_path):
    source = networks.build(network("segmenter", "unet"))
    torch.save({"state_dict": source.state_dict()}, tmp_path / "model.pt")
    spec = {**network("segmenter", "unet"), "init": str(tmp_path / "model.pt")}
    torch.manual_seed(1)
    model = networks.build(spec)
    loaded = networks.initialise(model, spec, "model.segmenter")
    assert all(torch.equal(source.state_dict()[k], v) for k, v in model.state_dict().items())
    assert loaded == {"init": str(tmp_path / "model.pt"), "sha256": sha256_file(tmp_path / "model.pt")}
    other = {**network("segmenter", "segresnet"), "init": str(tmp_path / "model.pt")}
    with pytest.raises(DataError, match=r"model\.pt: does not fit model\.segmenter\.net \(SegResNet\)"):
        networks.initialise(networks.build(other), other, "model.segmenter")
    with pytest.raises(DataError, match=r"missing\.pt: not found: model\.segmenter\.init names it"):
        networks.initialise(networks.build(spec), {**spec, "init": str(tmp_path / "missing.pt")}, "model.segmenter")


def test_imagenet_is_refused_for_a_network_without_published_weights():
    params = yaml.safe_load(config.compose_yaml(["model.segmenter.init=imagenet"]))
    with pytest.raises(DataError, match=r"model\.segmenter\.init: imagenet, but model\.segmenter \(unet\) names no "
                                        r"ImageNet weights"):
        config.validate(params)


def test_the_training_stage_depends_on_the_weights_it_starts_from(tmp_path):
    params = yaml.safe_load(config.compose_yaml(["experiment=tiny", "model.classifier.init=imagenet",
                                                 "model.segmenter.init=models/previous/unet.pt"]))
    stages = config.compose_pipeline(params["datasets"], params=params)["stages"]
    assert stages["train_classifier"]["deps"][-1] == "weights/imagenet/densenet121-a639ec97.pth"
    assert stages["train_segmenter"]["deps"][-1] == "models/previous/unet.pt"
    assert not {"weights/imagenet/densenet121-a639ec97.pth", "models/previous/unet.pt"} & {
        d for name in ("train_nodules", "evaluate_classifier") for d in stages[name]["deps"]}


def test_a_dvc_yaml_composed_for_other_weights_is_refused(tmp_path):
    project = tmp_path / "project"
    (project / "workflow").mkdir(parents=True)
    (project / config.PIPELINE_DECLARATION).write_text((config.PROJECT_ROOT / config.PIPELINE_DECLARATION).read_text())
    params = yaml.safe_load(config.compose_yaml([]))
    (project / "dvc.yaml").write_text(config.compose_dvc_yaml(params))
    config.require_composed(params, project)
    params["model"]["classifier"]["init"] = "imagenet"  # as `dvc exp run -S model.classifier.init=imagenet` would
    with pytest.raises(DataError, match=r"dvc.yaml: its dependencies are not those params.yaml gives .*"
                                        r"train_classifier: weights/imagenet/densenet121-a639ec97.pth"):
        config.require_composed(params, project)
