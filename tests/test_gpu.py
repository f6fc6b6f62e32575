"""The GPU fast path: half precision, fused attention, channels-last, compile and CUDA graphs stay within
stated tolerances of fp32, with no host–device synchronisation inside the forward.

Skipped without CUDA (CI has none). Tolerances: the max error over the map relative to its max, and the
mean error relative to the mean. Set from CPU measurements of the tiny preset on a real photo (bf16: max
3.6e-2, mean 1.4e-2; fp16: 3.3e-3 / 1.5e-3) with about 3× margin; the full-size check uses the
deterministic weights of the parity test.
"""

from __future__ import annotations

import pytest
import torch

from conftest import read_tsv_shapes
from deterministic_weights import deterministic_state_dict
from metricdepth import DepthPro, load_image
from metricdepth.inference import network_input
from metricdepth.models.depth_pro.chunking import Chunking

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")

TOLERANCE = {torch.bfloat16: (0.1, 0.04), torch.float16: (0.01, 0.005)}
"""dtype → (max error / max value, mean error / mean value) of canonical inverse depth vs fp32."""
FOV_TOLERANCE_DEG = {torch.bfloat16: 1.0, torch.float16: 0.2}


def errors(out: torch.Tensor, ref: torch.Tensor) -> tuple[float, float]:
    e = (out.float() - ref.float()).abs()
    return float(e.max() / ref.abs().max()), float(e.mean() / ref.abs().mean())


def photo_input(data_dir, size: int) -> torch.Tensor:
    image = load_image(data_dir / "motorcycle_left.png")
    pixels = torch.from_numpy(image.rgb.copy()).permute(2, 0, 1)
    return network_input(pixels, size, torch.device("cuda"), torch.float32)[None]


@pytest.fixture(scope="module")
def full_state():
    return deterministic_state_dict(read_tsv_shapes("depth_pro_state_dict.tsv"))


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("preset", ["tiny", "depth-pro"])
def test_half_precision_within_tolerance_of_fp32(preset, dtype, data_dir, tiny_state_dict, full_state):
    state = tiny_state_dict if preset == "tiny" else full_state
    reference = DepthPro.from_state_dict(state, device="cuda", precision="fp32")
    x = photo_input(data_dir, reference.img_size)
    with torch.inference_mode():
        ref_depth, ref_fov = reference(x)
    del reference
    model = DepthPro.from_state_dict(state, device="cuda", precision=dtype).optimize_for_inference()
    with torch.inference_mode():
        depth, fov = model(x.to(dtype))
    worst, mean = errors(depth, ref_depth)
    print(f"{preset} {dtype}: max {worst:.2e}, mean {mean:.2e}, fov {float(fov):.3f} vs {float(ref_fov):.3f}")
    assert worst <= TOLERANCE[dtype][0] and mean <= TOLERANCE[dtype][1]
    assert abs(float(fov) - float(ref_fov)) <= FOV_TOLERANCE_DEG[dtype]


def test_forward_has_no_host_device_sync(tiny_state_dict):
    model = DepthPro.from_state_dict(
        tiny_state_dict, device="cuda", precision="fp16"
    ).optimize_for_inference()
    x = torch.zeros(2, 3, model.img_size, model.img_size, device="cuda", dtype=torch.float16)
    with torch.inference_mode():
        model(x)  # warm-up (lazy initialisation may sync)
        torch.cuda.synchronize()
        torch.cuda.set_sync_debug_mode("error")
        try:
            model(x)
        finally:
            torch.cuda.set_sync_debug_mode("default")


def test_channels_last_chunking_and_batching_agree_on_gpu(tiny_state_dict):
    base = DepthPro.from_state_dict(tiny_state_dict, device="cuda", precision="fp32")
    x = torch.rand(3, 3, base.img_size, base.img_size, device="cuda") * 2 - 1
    with torch.inference_mode():
        ref = base(x)[0]
        fast = DepthPro.from_state_dict(tiny_state_dict, device="cuda", precision="fp32")
        fast.optimize_for_inference(channels_last=True)
        assert errors(fast(x)[0], ref)[0] <= 1e-4
        fast.chunking = Chunking(images=1, tiles=7, strips=4)
        assert errors(fast(x)[0], ref)[0] <= 1e-4
        single = torch.cat([base(x[i : i + 1])[0] for i in range(3)])
        assert errors(single, ref)[0] <= 1e-4


def test_compiled_with_cuda_graphs_matches_eager(tiny_state_dict):
    eager = DepthPro.from_state_dict(tiny_state_dict, device="cuda", precision="fp16")
    x = torch.rand(2, 3, eager.img_size, eager.img_size, device="cuda", dtype=torch.float16) * 2 - 1
    with torch.inference_mode():
        ref = eager(x)[0].clone()
    compiled = DepthPro.from_state_dict(tiny_state_dict, device="cuda", precision="fp16")
    compiled.optimize_for_inference(compile=True)  # mode reduce-overhead: CUDA graphs
    with torch.inference_mode():
        for _ in range(3):  # recording, then replays
            out = compiled(x)[0].clone()
    assert errors(out, ref)[0] <= 1e-2
