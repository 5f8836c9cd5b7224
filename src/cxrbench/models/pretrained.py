"""Published ImageNet weights, loaded from a local file into our one-channel MONAI networks.

The file never comes from the network at run time: `cxrbench weights --fetch` brings it once with
`dvc import-url` (which records its URL and checksum in a .dvc file beside it), or the user points
`model.<task>.imagenet.file` at a copy of their own. Its sha256 must start with the prefix the publisher put in
the file name (the check torchvision makes), and every tensor must find its place: a file of another
architecture or another naming is refused, never half-loaded.

The published first convolution takes RGB. A grey radiograph given to the RGB network would be the same
image in all three channels, whose response is the sum of the three channel kernels, so the kernels are
summed (not averaged: averaging would cut every first-layer response to a third, and the batch-norm
statistics learned on ImageNet behind it would no longer fit). Inputs are then standardised with the mean
of ImageNet's channel means and stds (IMAGENET_GREY), as the pretrained network expects.
The final layer (1000 ImageNet classes) is left as the network initialised it, for our outputs.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from cxrbench import config
from cxrbench.errors import DataError
from cxrbench.fileio import sha256_file

# mean of ImageNet's (0.485, 0.456, 0.406) and of its stds (0.229, 0.224, 0.225), for 0..1 pixels
IMAGENET_GREY = (0.449, 0.226)


@dataclass(frozen=True)
class Layout:
    """How the tensors of a published file are named, against MONAI's names for the same network."""

    published_names: Callable[[str], list[str]]  # our tensor's name -> its possible names in the file
    head: str  # our final layer (left as initialised)
    published_head: str  # the file's ImageNet classifier (not loaded)


def _torchvision_densenet(name: str) -> list[str]:
    """MONAI wraps each dense layer's modules in `layers`; torchvision's files of 2017 name them `norm.1`,
    later ones `norm1`."""
    match = re.fullmatch(r"(.*denselayer\d+)\.layers\.(norm|relu|conv)([12])\.(.+)", name)
    if not match:
        return [name]
    layer, kind, number, rest = match.groups()
    return [f"{layer}.{kind}.{number}.{rest}", f"{layer}.{kind}{number}.{rest}"]


def _efficientnet_pytorch(name: str) -> list[str]:
    """MONAI groups the blocks by stage (`_blocks.<stage>.<block>`); the file numbers blocks only."""
    return [re.sub(r"^_blocks\.\d+\.(\d+\.)", r"_blocks.\1", name)]


LAYOUTS = {
    "torchvision_densenet": Layout(_torchvision_densenet, head="class_layers.out.", published_head="classifier."),
    "torchvision_resnet": Layout(lambda name: [name], head="fc.", published_head="fc."),
    "efficientnet_pytorch": Layout(_efficientnet_pytorch, head="_fc.", published_head="_fc."),
}


def require_file(spec: Mapping[str, Any], key: str) -> tuple[Path, str]:
    """The weights file and its sha256, which starts with the published prefix; otherwise an error that says
    where to get the file."""
    path = Path(spec["file"])
    if not path.is_file():
        raise config.missing_weights(key, dict(spec))
    digest = sha256_file(path)
    if not digest.startswith(spec["sha256"]):
        raise DataError(path, f"sha256 {digest[:16]}..., expected {spec['sha256']}...: not the published file "
                              f"(a partial download, or another file under this name)",
                        f"delete it and fetch it again from {spec['url']}")
    return path, digest


def load_imagenet(model: torch.nn.Module, spec: Mapping[str, Any], key: str) -> dict[str, Any]:
    """Load the published ImageNet weights into `model` (ours: one grey channel, our outputs); return the
    record of what was loaded."""
    path, digest = require_file(spec, key)
    layout = LAYOUTS[spec["layout"]]
    published = torch.load(path, map_location="cpu", weights_only=True)
    ours = model.state_dict()
    loaded, used, missing, misfit = {}, set(), [], []
    for name, tensor in ours.items():
        if name.startswith(layout.head) or name.endswith("num_batches_tracked"):
            continue
        source = next((n for n in layout.published_names(name) if n in published), None)
        if source is None:
            missing.append(name)
            continue
        weight = published[source]
        if weight.ndim == 4 and weight.shape[1] == 3 and tensor.shape[1] == 1:  # the RGB first convolution
            weight = weight.sum(dim=1, keepdim=True)
        if weight.shape != tensor.shape:
            misfit.append(f"{source} {tuple(weight.shape)} for {name} {tuple(tensor.shape)}")
            continue
        loaded[name] = weight.to(tensor.dtype)
        used.add(source)
    unused = [n for n in published if n not in used and not n.startswith(layout.published_head)
              and not n.endswith("num_batches_tracked")]
    if missing or misfit or unused:
        details = [f"{label} ({len(names)}): {', '.join(names[:3])}{', ...' if len(names) > 3 else ''}"
                   for label, names in (("not in the file", missing), ("of another shape", misfit),
                                        ("left over in the file", unused)) if names]
        raise DataError(path, f"does not fit {key}.net ({type(model).__name__}, layout {spec['layout']}): "
                              + "; ".join(details),
                        f"use the weights of the network {key}.net builds ({key}.imagenet.url)")
    model.load_state_dict({**ours, **loaded})
    return {"init": "imagenet", "weights": spec["url"], "sha256": digest, "tensors_loaded": len(loaded)}
