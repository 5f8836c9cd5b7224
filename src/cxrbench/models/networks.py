"""MONAI networks, built from the `train.classifier` / `train.segmenter` parameters."""

from __future__ import annotations

from typing import Any

import torch
from monai.networks.nets import DenseNet121, UNet


def build_classifier(cfg: dict[str, Any], n_labels: int) -> torch.nn.Module:
    """DenseNet-121 (Huang et al. 2017, as in CheXNet) on one grey channel, one logit per label."""
    return DenseNet121(spatial_dims=2, in_channels=1, out_channels=n_labels)


def build_segmenter(cfg: dict[str, Any], n_objects: int) -> torch.nn.Module:
    """U-Net with one logit map per object: the SCR objects overlap (clavicles over lungs), so each gets
    its own sigmoid rather than one softmax over classes."""
    channels = tuple(cfg["channels"])
    return UNet(
        spatial_dims=2,
        in_channels=1,
        out_channels=n_objects,
        channels=channels,
        strides=(2,) * (len(channels) - 1),
        num_res_units=1,
    )
