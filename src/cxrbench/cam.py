"""Class activation maps (Zhou et al., "Learning deep features for discriminative localization", CVPR 2016)
of the NIH classifier, for Wang et al.'s weakly supervised localisation.

A network that ends in global average pooling and one linear layer (MONAI's DenseNet, ResNet and
EfficientNet all do) gives, for class k and the feature maps F entering the pooling,

    CAM_k(position) = W_k . F(position) + b_k,    logit_k = mean over positions of CAM_k.

F is read with a forward hook on the last AdaptiveAvgPool2d, and (W, b) are the last nn.Linear's, so the maps
need nothing of the network's internals. They are computed for a whole batch at the resolution of the last
feature map (input / 32 for these networks) and
upsampled bilinearly to the 1024-pixel space of the NIH images, where BBox_List_2017's boxes live.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
import torch.nn.functional as F

from cxrbench import engine
from cxrbench.vocabulary import NIH_MAX

BOX_SPACE = 1024  # NIH boxes are given in the original 1024 x 1024 pixel space


def _cam_parts(model: torch.nn.Module) -> tuple[torch.nn.AdaptiveAvgPool2d, torch.nn.Linear]:
    """The network's global average pooling and its final linear layer (the last of each)."""
    pools = [m for m in model.modules() if isinstance(m, torch.nn.AdaptiveAvgPool2d) and m.output_size in (1, (1, 1))]
    linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    if not pools or not linears:
        raise TypeError("class activation maps need a network that ends in global average pooling "
                        f"(nn.AdaptiveAvgPool2d(1)) and one nn.Linear layer; {type(model).__name__} does not")
    return pools[-1], linears[-1]


def _feature_maps(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The feature maps (B, C, h, w) entering the global average pooling, for the input batch `x`."""
    pool, _ = _cam_parts(model)
    seen = []
    hook = pool.register_forward_hook(lambda _module, inputs, _output: seen.append(inputs[0]))
    try:
        model(x)
    finally:
        hook.remove()
    return seen[-1]


@torch.no_grad()
def class_activation_maps(
    model: torch.nn.Module,
    x: torch.Tensor,
    classes: torch.Tensor | None = None,
    out_size: int | None = BOX_SPACE,
) -> torch.Tensor:
    """CAMs of `model` (put in eval mode) for the input batch `x` (B, 1, H, W).

    `classes` (B, m) int64 picks m class indices per image (all classes when None); `out_size` is the side
    of the bilinearly upsampled maps (None keeps the feature-map resolution, where the spatial mean of each
    map is the class logit). Returns float (B, m, out_size, out_size).
    """
    _, linear = _cam_parts(model)
    model.eval()
    feature_maps = _feature_maps(model, x)  # (B, C, h, w)
    n_images, n_classes = feature_maps.shape[0], linear.out_features
    if classes is None:
        classes = torch.arange(n_classes, device=x.device).expand(n_images, n_classes)
    if classes.ndim != 2 or classes.shape[0] != n_images:
        raise ValueError(f"classes must have shape (batch, m) = ({n_images}, m), got {tuple(classes.shape)}")
    weights, bias = linear.weight[classes], linear.bias[classes]  # (B, m, C), (B, m)
    maps = torch.einsum("bmc,bchw->bmhw", weights, feature_maps) + bias[..., None, None]
    if out_size is not None:
        # the same interpolation on every map: upsampling only the chosen classes keeps memory at B * m maps
        maps = F.interpolate(maps, size=(out_size, out_size), mode="bilinear", align_corners=False)
    return maps


@torch.no_grad()
def feature_grid(model: torch.nn.Module, input_size: int, device: torch.device) -> int:
    """Side of the last feature map, the maps' native resolution, for square inputs of `input_size` px
    (input / 32 for DenseNet-121: a 32-pixel input leaves one cell, and maps without any location)."""
    model.eval()
    return int(_feature_maps(model, torch.zeros(1, 1, input_size, input_size, device=device)).shape[-1])


def heatmaps_for_pairs(
    model: torch.nn.Module,
    images: np.ndarray,
    rows: np.ndarray,
    classes: np.ndarray,
    norm: tuple[float, float],
    device: torch.device,
    *,
    batch_size: int = 16,
    out_size: int = BOX_SPACE,
) -> Iterator[np.ndarray]:
    """For (store row, class index) pairs, in the given order, the CAM of that class on that image.

    `images` is the (n, S, S) uint8 store, `norm` the classifier's (mean, std). Yields float32 arrays
    (b, out_size, out_size), one batch of consecutive pairs at a time, so memory stays at one batch.
    """
    rows, classes = np.asarray(rows, dtype=np.int64), np.asarray(classes, dtype=np.int64)
    if rows.shape != classes.shape or rows.ndim != 1:
        raise ValueError(f"rows {rows.shape} and classes {classes.shape} must be 1-D and of equal length")

    def maps(x: torch.Tensor, positions: slice) -> torch.Tensor:
        picked = torch.from_numpy(classes[positions]).to(device)[:, None]
        return class_activation_maps(model, x, picked, out_size)[:, 0].float()

    # CAMs are thresholded into boxes: they stay float32 whatever autocast the training runtime uses
    for batch in engine.predict_batches(model, images, rows, NIH_MAX, norm, engine.FULL_PRECISION, device,
                                        batch_size, forward=maps):
        yield batch.numpy()
