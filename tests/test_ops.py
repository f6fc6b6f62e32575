"""Thread-count-invariant CPU operations (metricdepth.ops) and the forward that relies on them."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from metricdepth import DepthPro, load_image
from metricdepth.ops import PointwiseConv2d, resize_bilinear
from torch_threads import torch_threads


def test_resize_is_pytorchs_bilinear_and_leaves_the_thread_count_alone():
    x = torch.rand(1, 3, 37, 53, generator=torch.Generator().manual_seed(0))
    with torch_threads(2):
        out = resize_bilinear(x, size=(96, 80))
        assert torch.get_num_threads() == 2
    with torch_threads(1):
        single = F.interpolate(x, size=(96, 80), mode="bilinear", align_corners=False)
    assert torch.equal(out, single)  # exactly the one-thread kernel
    half = resize_bilinear(x, scale_factor=0.5)
    assert half.shape == (1, 3, 18, 26)


def test_pointwise_conv_is_a_1x1_conv_with_the_same_state_dict():
    torch.manual_seed(0)
    ours, reference = PointwiseConv2d(24, 8), nn.Conv2d(24, 8, kernel_size=1)
    assert ours.state_dict().keys() == reference.state_dict().keys()
    reference.load_state_dict(ours.state_dict())
    x = torch.randn(2, 24, 31, 17)
    torch.testing.assert_close(ours(x), reference(x), rtol=1e-5, atol=1e-5)
    strided = torch.randn(2, 24, 40, 17)[:, :, 3:34]  # a row strip, as the chunked decoder passes
    torch.testing.assert_close(ours(strided), reference(strided), rtol=1e-5, atol=1e-5)
    assert ours(x).is_contiguous()
    assert torch.equal(ours(x[1:]), ours(x)[1:])  # an image's result does not depend on its batch
    no_bias = PointwiseConv2d(24, 8, bias=False)
    assert no_bias.bias is None and no_bias(x).shape == (2, 8, 31, 17)


def test_pointwise_conv_trains():
    torch.manual_seed(0)
    layer = PointwiseConv2d(4, 2)
    layer(torch.randn(1, 4, 5, 5)).square().sum().backward()
    assert layer.weight.grad is not None and layer.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("name", ["motorcycle_left.png", "leuvenA.jpg"])
def test_forward_gives_the_same_bits_at_one_and_two_threads(tiny_checkpoint, data_dir, name):
    """Sharded runs (one thread per rank or actor) must write what a multi-thread run writes."""
    model = DepthPro.from_pretrained(tiny_checkpoint, device="cpu")
    image = load_image(data_dir / name)
    results = []
    for threads in (1, 2):
        with torch_threads(threads):
            results.append(model.infer(image.rgb))
    one, two = results
    assert torch.equal(one.depth, two.depth)
    assert torch.equal(one.inverse_depth, two.inverse_depth)
    assert one.focal_px == two.focal_px
