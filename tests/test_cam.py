"""Class activation maps of the shipped classifiers (MONAI DenseNet-121, ResNet-50, EfficientNet-B0): the map's
mean is the logit, the maps follow the image, and batching never changes them."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
import torch
from monai.networks.nets import DenseNet121

from cxrbench.cam import BOX_SPACE, class_activation_maps, feature_grid, heatmaps_for_pairs
from cxrbench.metrics.localisation import heatmap_to_boxes, iobb
from cxrbench.models import networks
from helpers.models import network


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread() -> Iterator[None]:
    """One thread (on 2 busy cores it is faster and steadier), and torch's global settings restored after:
    the stages' setup_torch changes them for the whole process."""
    threads, deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(deterministic, warn_only=warn_only)


def intensity_classifier(n_labels: int) -> torch.nn.Module:
    """A DenseNet-121 whose every class map is the local mean brightness of the image.

    Identity batch norms, all convolutions zero except: conv0 averages the image into channel 0, and every
    transition passes channel 0 on (a dense block concatenates its input, so channel 0 crosses it unchanged).
    The classifier weights read channel 0 only, so class activation maps must light up bright regions.
    """
    model = DenseNet121(spatial_dims=2, in_channels=1, out_channels=n_labels)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.reset_running_stats()
                module.weight.fill_(1.0)
                module.bias.zero_()
            elif isinstance(module, torch.nn.Conv2d):
                module.weight.zero_()
        model.features.conv0.weight[0, 0] = 1.0 / 49
        for name, module in model.features.named_children():
            if name.startswith("transition"):
                module.conv.weight[0, 0] = 1.0
        model.class_layers.out.weight.zero_()
        model.class_layers.out.weight[:, 0] = 1.0
        model.class_layers.out.bias.zero_()
    return model.eval()


@pytest.fixture(scope="module")
def random_model() -> torch.nn.Module:
    torch.manual_seed(0)
    return DenseNet121(spatial_dims=2, in_channels=1, out_channels=14).eval()


def test_each_map_averages_to_its_logit(random_model):
    x = torch.from_numpy(np.random.default_rng(0).normal(size=(3, 1, 64, 64)).astype(np.float32))
    maps = class_activation_maps(random_model, x, out_size=None)
    assert maps.shape == (3, 14, 2, 2)  # DenseNet-121 downsamples by 32
    assert [feature_grid(random_model, size, torch.device("cpu")) for size in (32, 64, 224)] == [1, 2, 7]
    with torch.no_grad():
        logits = random_model(x)
    torch.testing.assert_close(maps.mean(dim=(-2, -1)), logits, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("option", ["resnet50", "efficientnet_b0"])
def test_other_shipped_classifiers_give_maps_that_average_to_their_logits(option):
    torch.manual_seed(0)
    model = networks.build(network("classifier", option)).eval()
    x = torch.from_numpy(np.random.default_rng(0).normal(size=(2, 1, 64, 64)).astype(np.float32))
    maps = class_activation_maps(model, x, out_size=None)
    assert maps.shape == (2, 14, 2, 2)
    with torch.no_grad():
        logits = model(x)
    torch.testing.assert_close(maps.mean(dim=(-2, -1)), logits, atol=1e-4, rtol=1e-4)


def test_a_network_without_global_pooling_and_a_linear_head_is_refused():
    with pytest.raises(TypeError, match="global average pooling"):
        class_activation_maps(torch.nn.Conv2d(1, 14, 3), torch.zeros(1, 1, 8, 8))


def test_chosen_classes_are_the_same_maps_upsampled(random_model):
    x = torch.from_numpy(np.random.default_rng(1).normal(size=(2, 1, 64, 64)).astype(np.float32))
    every = class_activation_maps(random_model, x, out_size=48)
    chosen = class_activation_maps(random_model, x, torch.tensor([[3, 0], [13, 13]]), out_size=48)
    assert chosen.shape == (2, 2, 48, 48)
    torch.testing.assert_close(chosen[0], every[0, [3, 0]])
    torch.testing.assert_close(chosen[1], every[1, [13, 13]])
    with pytest.raises(ValueError, match="classes must have shape"):
        class_activation_maps(random_model, x, torch.tensor([3, 0]))


def test_maps_follow_a_bright_region_into_the_1024_pixel_box_space():
    model = intensity_classifier(14)
    x = torch.zeros(2, 1, 128, 128)
    # regions aligned with the 32-pixel cells of the 4 x 4 feature map
    x[0, 0, 32:64, 64:96] = 1.0  # one cell: rows 32-63, columns 64-95
    x[1, 0, 64:128, 0:32] = 1.0  # two cells at the bottom left
    truth = np.array([[512.0, 256.0, 256.0, 256.0], [0.0, 512.0, 256.0, 512.0]])  # the same regions at 1024 px
    maps = class_activation_maps(model, x, torch.tensor([[2], [7]])).numpy()[:, 0]
    assert maps.shape == (2, BOX_SPACE, BOX_SPACE)
    for heatmap, box in zip(maps, truth):
        peak_y, peak_x = np.unravel_index(heatmap.argmax(), heatmap.shape)
        assert box[0] <= peak_x < box[0] + box[2] and box[1] <= peak_y < box[1] + box[3]
        detected = heatmap_to_boxes(heatmap)
        assert len(detected) >= 1
        assert iobb(box, detected).max() > 0.9  # the tightest box lies inside the bright region


def test_pairs_give_the_same_maps_in_any_batch_size(random_model):
    rng = np.random.default_rng(2)
    images = rng.integers(0, 256, size=(5, 64, 64), dtype=np.uint8)
    rows, classes = np.array([4, 0, 4, 2]), np.array([1, 13, 7, 0])
    norm = (0.5, 0.25)
    one = np.concatenate(list(heatmaps_for_pairs(random_model, images, rows, classes, norm, torch.device("cpu"),
                                                 batch_size=1, out_size=32)))
    batches = list(heatmaps_for_pairs(random_model, images, rows, classes, norm, torch.device("cpu"), batch_size=3,
                                      out_size=32))
    assert [b.shape for b in batches] == [(3, 32, 32), (1, 32, 32)] and batches[0].dtype == np.float32
    np.testing.assert_allclose(np.concatenate(batches), one, atol=1e-5)
    x = torch.from_numpy((images[rows].astype(np.float32) / 255 - 0.5) / 0.25)[:, None]
    direct = class_activation_maps(random_model, x, torch.from_numpy(classes)[:, None], out_size=32)[:, 0]
    np.testing.assert_allclose(one, direct.numpy(), atol=1e-5)
    with pytest.raises(ValueError, match="1-D and of equal length"):
        next(heatmaps_for_pairs(random_model, images, rows, classes[:2], norm, torch.device("cpu")))

