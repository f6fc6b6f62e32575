"""The network stays export-friendly, and its numbers cannot drift silently under refactors.

``tests/data/tiny_snapshot.npz`` pins the ``tiny`` preset's outputs for the deterministic test weights
on the real Motorcycle photo. It was written by ``python tests/test_export_snapshot.py`` (the same
:func:`snapshot` the test compares against); regenerate it only for an intended numerical change, and
say why in the commit.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from metricdepth import DepthPro, DepthProConfig

DATA = Path(__file__).parent / "data"
SNAPSHOT = DATA / "tiny_snapshot.npz"


def snapshot(model: DepthPro) -> dict[str, np.ndarray]:
    """Forward and infer outputs of ``model`` on the Motorcycle photo, subsampled to a small file."""
    from metricdepth.inference import coerce_images, network_input
    from metricdepth.io.images import load_image

    image = load_image(DATA / "motorcycle_left.png")
    pixels = coerce_images(image).pixels[0]
    x = network_input(pixels, model.img_size, model.device, model.dtype)
    with torch.no_grad():
        canonical, fov = model(x[None])
    prediction = model.infer(image.rgb)
    return {
        "canonical_pool8": F.avg_pool2d(canonical, 8)[0, 0].numpy(),
        "fov_deg": fov.numpy(),
        "depth_every8": prediction.depth[::8, ::8].numpy(),
        "focal_px": np.float64(prediction.focal_px),
    }


def test_tiny_outputs_match_the_snapshot(tiny_model):
    expected = np.load(SNAPSHOT)
    actual = snapshot(tiny_model)
    assert sorted(expected.files) == sorted(actual)
    for key in expected.files:
        # Float32 kernels differ slightly across CPUs and torch builds; a refactor that changes the
        # maths moves these by far more (a swapped resize, a missing clamp, a changed focal policy).
        np.testing.assert_allclose(actual[key], expected[key], rtol=2e-4, atol=1e-6, err_msg=key)
    assert float(expected["canonical_pool8"].std()) > 0  # a real signal, not a constant


def test_forward_exports_with_a_dynamic_batch(tiny_model):
    size = tiny_model.img_size
    batch = torch.export.Dim("batch", min=1, max=8)
    example = torch.rand(2, 3, size, size) * 2 - 1
    exported = torch.export.export(tiny_model, (example,), dynamic_shapes={"x": {0: batch}})
    for b in (1, 3):
        x = torch.rand(b, 3, size, size, generator=torch.Generator().manual_seed(b)) * 2 - 1
        with torch.no_grad():
            eager_depth, eager_fov = tiny_model(x)
            export_depth, export_fov = exported.module()(x)
        assert export_depth.shape == (b, 1, size, size) and export_fov.shape == (b,)
        torch.testing.assert_close(export_depth, eager_depth, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(export_fov, eager_fov, rtol=1e-5, atol=1e-5)


if __name__ == "__main__":  # regenerate the snapshot (see the module docstring)
    sys.path.insert(0, str(Path(__file__).parent))
    from deterministic_weights import deterministic_state_dict
    from metricdepth.models.depth_pro.loading import state_dict_shapes

    state = deterministic_state_dict(state_dict_shapes(DepthPro, DepthProConfig.preset("tiny")))
    model = DepthPro.from_state_dict(state, device="cpu")
    np.savez_compressed(SNAPSHOT, **snapshot(model))
    print(f"wrote {SNAPSHOT}")
