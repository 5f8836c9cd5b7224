"""The CPU input path (a lookup table) gives exactly the bits of the arithmetic it replaces, for every value."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cxrbench.training import to_input

CPU = torch.device("cpu")


@pytest.mark.parametrize("dtype, max_value", [(np.uint8, 255.0), (np.uint16, 4095.0), (np.uint16, 65535.0)])
def test_cpu_input_equals_the_arithmetic_bit_for_bit(dtype, max_value):
    every_value = np.arange(np.iinfo(dtype).max + 1, dtype=dtype)
    rng = np.random.default_rng(0)
    # every value the dtype holds, at shuffled positions of a (B, H, W) batch (vector and scalar code paths)
    height, width = 61, 67
    batch = len(every_value) // (height * width) + 2
    pixels = rng.permutation(np.resize(every_value, batch * height * width)).reshape(batch, height, width)
    mean, std = 0.4732195, 0.2519034
    arithmetic = (torch.from_numpy(pixels.astype(np.float32)).unsqueeze(1) / max_value - mean) / std
    looked_up = to_input(pixels, max_value, mean, std, CPU)
    assert looked_up.shape == (batch, 1, height, width) and looked_up.dtype == torch.float32
    assert torch.equal(looked_up, arithmetic)
    assert torch.equal(to_input(pixels[::2], max_value, mean, std, CPU, channels_last=True), arithmetic[::2])
