"""The networks of the model config groups (configs/model/<task>/<option>.yaml): built with Hydra's
`instantiate` from their `net` (so any `torch.nn.Module` importable by `_target_` plugs in), checked against
what the task feeds and expects, initialised as `init` says, and rebuilt from a trained model's config.json.

A model config (params `model.<task>`) holds `name`, `net` (the `_target_` and its arguments), `init` (random,
imagenet, or a path to a state dict or checkpoint of ours) and, for networks with published ImageNet weights,
`imagenet` (see cxrbench.models.pretrained).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from cxrbench import training
from cxrbench.config import INIT_IMAGENET, INIT_RANDOM
from cxrbench.errors import DataError
from cxrbench.fileio import sha256_file
from cxrbench.models import pretrained


def build(network: Mapping[str, Any]) -> torch.nn.Module:
    """The module `network['net']` names, with its arguments (lists passed as lists)."""
    from hydra.utils import instantiate

    return instantiate(dict(network["net"]), _convert_="all")


def check_output(model: torch.nn.Module, key: str, input_size: int, expected: tuple[int, ...], meaning: str) -> None:
    """Run a batch of two blank grey images through `model` (in eval mode, so nothing in it changes) and
    stop with the config key to fix unless the output has shape `expected`."""
    was_training = model.training
    with torch.no_grad():
        shape = tuple(model.eval()(torch.zeros(2, 1, input_size, input_size)).shape)
    model.train(was_training)
    if shape != expected:
        raise DataError(None, f"{key}.net builds {type(model).__name__}, whose output for a batch of "
                              f"shape (2, 1, {input_size}, {input_size}) has shape {shape}; {meaning} needs {expected}",
                        f"set the network's arguments in {key}.net (its input channels, number of outputs) "
                        "or pick another option of the group")


def initialise(model: torch.nn.Module, network: Mapping[str, Any], key: str) -> dict[str, Any]:
    """Load the initial weights `network['init']` asks for; return what was loaded, for config.json."""
    init = network["init"]
    if init == INIT_RANDOM:
        return {"init": INIT_RANDOM}
    if init == INIT_IMAGENET:
        return pretrained.load_imagenet(model, network["imagenet"], key)
    return load_own(model, Path(init), key)


def load_own(model: torch.nn.Module, path: Path, key: str) -> dict[str, Any]:
    """Weights of one of our models (a model.pt, or a bare state dict) of the same network and outputs."""
    if not path.is_file():
        raise DataError(path, f"not found: {key}.init names it as the initial weights",
                        f"give the path of a state dict or checkpoint (e.g. models/.../model.pt), or set "
                        f"{key}.init=random")
    state = torch.load(path, map_location="cpu", weights_only=True)
    state = state.get("state_dict", state)
    try:
        model.load_state_dict(state)
    except RuntimeError as err:
        raise DataError(path, f"does not fit {key}.net ({type(model).__name__}): {str(err).splitlines()[0]}",
                        "initialise from a checkpoint of the same network and outputs") from None
    return {"init": str(path), "sha256": sha256_file(path)}


def input_normalisation(network: Mapping[str, Any], training_set: tuple[float, float]) -> tuple[float, float]:
    """(mean, std) of 0..1 pixels: what ImageNet weights were trained with, else the training set's own."""
    return pretrained.IMAGENET_GREY if network["init"] == INIT_IMAGENET else training_set


def describe(model: torch.nn.Module, network: Mapping[str, Any], input_size: int, loaded: dict[str, Any]) -> dict:
    """The network's record in models/<task>/config.json: enough to rebuild it, and what it costs."""
    return {"name": network["name"], "net": dict(network["net"]), **loaded,
            "parameters": sum(p.numel() for p in model.parameters()), "input_size": int(input_size)}


def ready_to_train(network: Mapping[str, Any], key: str, input_size: int, expected: tuple[int, ...], meaning: str,
                   runtime: dict[str, Any], device: torch.device) -> tuple[torch.nn.Module, dict[str, Any]]:
    """The network of `model.<key>`, checked against what its task feeds and needs (`check_output`),
    initialised as its `init` says and prepared for the device; with its config.json record (`describe`)."""
    model = build(network)
    check_output(model, key, input_size, expected, meaning)
    record = describe(model, network, input_size, initialise(model, network, key))
    return training.prepare_model(model, runtime, device), record


def load_trained(record: Mapping[str, Any], checkpoint: Path, runtime: dict[str, Any],
                 device: torch.device) -> torch.nn.Module:
    """A trained model from its config.json record (`describe`) and its weights, ready on the device."""
    model = training.prepare_model(build(record), runtime, device)
    training.load_weights(model, training.load_checkpoint(checkpoint, device)["state_dict"])
    return model
