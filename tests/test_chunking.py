"""Bounded-memory forward: tiles in chunks and row strips give the whole-image results."""

from __future__ import annotations

import itertools

import pytest
import torch

from metricdepth import DepthPro
from metricdepth.models.depth_pro import chunking as chunking_module
from metricdepth.models.depth_pro.chunking import CPU_CHUNKING, Chunking, strip_bounds


@pytest.fixture(scope="module")
def model(tiny_state_dict) -> DepthPro:
    """Deterministic weights (every layer non-trivial, so a wrong row anywhere shows in the output), with
    the head's last bias raised so the final ReLU keeps the whole map positive."""
    state = dict(tiny_state_dict)
    state["head.4.bias"] = torch.full_like(state["head.4.bias"], 0.5)
    return DepthPro.from_state_dict(state, device="cpu")


@pytest.fixture(scope="module")
def whole(model):
    x = torch.rand(2, 3, model.img_size, model.img_size, generator=torch.Generator().manual_seed(1)) * 2 - 1
    model.chunking = Chunking()
    with torch.inference_mode():
        depth, fov = model(x)
    return x, depth, fov


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / b.abs().max())


@pytest.mark.parametrize(
    "chunking",
    [
        Chunking(images=1),
        Chunking(tiles=1),
        Chunking(tiles=7),
        Chunking(strips=2),
        Chunking(strips=5),
        Chunking(tiles=4, strips=8),
        Chunking(strips=40),
        CPU_CHUNKING,
    ],
)
def test_chunked_forward_equals_the_whole_image_forward(model, whole, chunking):
    x, depth, fov = whole
    model.chunking = chunking
    try:
        with torch.inference_mode():
            chunked_depth, chunked_fov = model(x)
    finally:
        model.chunking = "auto"
    assert chunked_depth.shape == depth.shape and float(depth.std()) > 1e-3 * float(depth.mean())
    assert float((depth > 0).float().mean()) > 0.99
    # Same arithmetic in another order: equal up to float rounding. The FOV of these weights is a
    # small number (|FOV| ≤ 0.31), and oneDNN's 3×3 convolutions round a batch of 2 and a batch of 1
    # apart by an ulp or so (1.3e-6 of it measured with Chunking(images=1)).
    assert rel(chunked_depth, depth) <= 1e-6
    assert rel(chunked_fov, fov) <= 1e-5


def test_a_missing_halo_row_is_detected(model, whole, monkeypatch):
    """The comparison above would see strips that read too few neighbouring rows."""
    x, depth, _ = whole
    monkeypatch.setattr(chunking_module, "_conv_reach", lambda module: 0)
    model.chunking = Chunking(strips=4)
    try:
        with torch.inference_mode():
            broken, _ = model(x)
    finally:
        model.chunking = "auto"
    assert rel(broken, depth) > 1e-3


def test_chunking_gradients_match(model, whole):
    """Strips are differentiable too (the same graph, in pieces)."""
    x = whole[0][:1]
    grads = []
    for chunking in (Chunking(), Chunking(tiles=5, strips=3)):
        model.chunking = chunking
        model.zero_grad()
        model(x, with_fov=False)[0].square().mean().backward()
        grads.append(model.decoder.fusions[0].resnet1.residual[1].weight.grad.clone())
    model.chunking = "auto"
    model.zero_grad()
    assert rel(grads[1], grads[0]) <= 1e-5


def test_strip_bounds_cover_every_row_once():
    for rows, strips in [(384, 8), (16, 3), (5, 9), (7, 1)]:
        bounds = list(strip_bounds(rows, strips))
        assert bounds[0][0] == 0 and bounds[-1][1] == rows
        assert all(a < b for a, b in bounds)
        assert all(b == c for (_, b), (c, _) in itertools.pairwise(bounds))
        assert len(bounds) == min(strips, rows)


def test_chunking_settings():
    assert Chunking.auto("cpu") == CPU_CHUNKING and CPU_CHUNKING.active
    assert Chunking.auto("meta") == Chunking() and not Chunking().active
    for bad in (0, -1, 2.5):
        for name in ("images", "tiles", "strips"):
            with pytest.raises(ValueError, match="positive integer"):
                Chunking(**{name: bad})


def test_half_precision_checkpoints_are_cast_while_loading(tmp_path, tiny_state_dict):
    """An fp16 file (Apple's release is one) is cast tensor by tensor while loading."""
    path = tmp_path / "fp16.pt"
    torch.save({k: v.half() for k, v in tiny_state_dict.items()}, path)
    model = DepthPro.from_pretrained(path, device="cpu")
    assert model.dtype == torch.float32
    loaded = model.state_dict()
    assert all(torch.equal(loaded[k], v.half().float()) for k, v in tiny_state_dict.items())


def test_freed_memory_goes_back_to_the_os_on_glibc():
    """In a child process: the allocator setting is process-wide."""
    import platform
    import subprocess
    import sys

    code = "from metricdepth.device import return_freed_memory as r; print(r())"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    on_glibc = sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"
    assert result.stdout.strip() == str(on_glibc)


def test_training_forward_is_never_chunked_by_default(model, whole, monkeypatch):
    """ "auto" bounds memory for inference only: with autograd the whole batch runs at once."""
    calls = []
    monkeypatch.setattr(
        "metricdepth.models.depth_pro.model.decode_in_strips", lambda *a, **k: calls.append(1) or 1 / 0
    )
    x = whole[0]
    model.chunking = "auto"
    depth, _ = model(x, with_fov=False)  # grad enabled: whole-image path
    assert depth.requires_grad and not calls
    with torch.inference_mode(), pytest.raises(ZeroDivisionError):
        model(x)  # inference on CPU: strips


def test_heap_setting_only_where_it_costs_no_time():
    """predict returns freed memory to the OS only for models whose ViT tensors are mapped afresh anyway."""
    from metricdepth import DepthProConfig
    from metricdepth.models.depth_pro.chunking import heap_return_is_free

    with torch.device("meta"):
        flags = {
            name: heap_return_is_free(DepthPro(DepthProConfig.preset(name))) for name in ("depth-pro", "vits")
        }
    assert flags == {"depth-pro": True, "vits": False}
