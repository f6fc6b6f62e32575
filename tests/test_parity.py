"""Numerical parity with Apple's reference Depth Pro (golden outputs, deterministic weights), fp32 CPU.

Slow: two full 1536² forwards plus one through the CLI (about 2 minutes each on 2 cores).
"""

import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from typer.testing import CliRunner

from conftest import read_tsv_shapes
from deterministic_weights import deterministic_state_dict
from metricdepth import DepthPro, load_image, read_depth_png
from metricdepth.cli import app
from test_cli import flying_pixels

pytestmark = pytest.mark.slow

TOLERANCE = 1e-4  # max |ours − reference| / max |reference|; relative error for scalars


def rel_error(ours, reference) -> float:
    ours, reference = np.asarray(ours, np.float64), np.asarray(reference, np.float64)
    return float(np.abs(ours - reference).max() / np.abs(reference).max())


@pytest.fixture(scope="module")
def apple_checkpoint(tmp_path_factory):
    """The deterministic weights as Apple ships them: a plain dict of float16 tensors in a .pt file."""
    path = tmp_path_factory.mktemp("apple") / "depth_pro.pt"
    torch.save(deterministic_state_dict(read_tsv_shapes("depth_pro_state_dict.tsv")), path)
    return path


@pytest.fixture(scope="module")
def model(apple_checkpoint):
    return DepthPro.from_pretrained(apple_checkpoint, device="cpu", precision="fp32")


@pytest.fixture(scope="module")
def outputs(model, data_dir):
    """``infer`` on each photo (the whole public path), with the network outputs captured on the way."""
    results = {}
    captured = {}
    handle = model.register_forward_hook(lambda module, args, output: captured.update(output=output))
    for name in ("motorcycle_left.png", "leuvenA.jpg"):
        prediction = model.infer(data_dir / name)
        canonical, fov = captured.pop("output")
        results[name] = (load_image(data_dir / name), canonical, fov, prediction)
    handle.remove()
    return results


def test_checkpoint_file_is_in_apples_format(apple_checkpoint):
    state = torch.load(apple_checkpoint, weights_only=True)
    assert len(state) == 1119 and all(v.dtype == torch.float16 for v in state.values())


def test_canonical_inverse_depth_and_fov(outputs, data_dir):
    golden = np.load(data_dir / "golden_motorcycle_left.npz")
    _, canonical, fov, _ = outputs["motorcycle_left.png"]
    assert canonical.shape == (1, 1, 1536, 1536) and canonical.dtype == torch.float32
    pooled = F.avg_pool2d(canonical, 4)[0, 0].numpy()
    assert rel_error(pooled, golden["canonical_inverse_depth_pool4"]) <= TOLERANCE
    crop = canonical[0, 0, 640:896, 640:896].numpy()
    assert rel_error(crop, golden["canonical_inverse_depth_center_crop"]) <= TOLERANCE
    assert abs(float(fov) - float(golden["fov_deg"])) <= TOLERANCE * abs(float(golden["fov_deg"]))


def test_metric_depth_and_focal_from_the_predicted_fov(outputs, data_dir):
    golden = np.load(data_dir / "golden_motorcycle_left.npz")
    image, _, _, prediction = outputs["motorcycle_left.png"]
    assert (image.height, image.width) == tuple(golden["image_hw"])
    assert prediction.focal_source == "predicted"
    focal = float(golden["focal_px_predicted"])
    assert abs(prediction.focal_px - focal) <= TOLERANCE * focal
    assert prediction.depth.shape == (500, 741) and prediction.depth.dtype == torch.float32
    assert rel_error(1 / prediction.depth.numpy(), 1 / golden["depth_predicted_focal"]) <= TOLERANCE


def reference_depth_with_focal(
    canonical: torch.Tensor, focal_px: float, height: int, width: int
) -> np.ndarray:
    """The reference's post-processing, spelled out: scale, resize inverse depth, clamp, invert.

    In float32 like the reference run: bilinear source coordinates are computed at the tensor's
    precision, and on a noise-like map fp32 vs fp64 coordinates alone differ by ~1e-4.
    """
    inverse = F.interpolate(
        canonical.float() * (width / focal_px), size=(height, width), mode="bilinear", align_corners=False
    )
    return (1.0 / inverse.clamp(1e-4, 1e4))[0, 0].numpy()


def test_photo_with_exif_focal(outputs):
    image, canonical, fov, prediction = outputs["leuvenA.jpg"]
    exif_focal = 29 * math.hypot(751, 563) / math.hypot(36, 24)
    assert image.focal_px == pytest.approx(exif_focal, rel=1e-9)
    assert prediction.focal_source == "exif" and prediction.focal_px == pytest.approx(exif_focal, rel=1e-6)
    assert math.isfinite(float(fov)) and prediction.predicted_fov_deg == pytest.approx(float(fov))
    expected = reference_depth_with_focal(canonical, exif_focal, image.height, image.width)
    assert rel_error(1 / prediction.depth.numpy(), 1 / expected) <= TOLERANCE


def test_cli_with_apples_checkpoint_file(apple_checkpoint, outputs, data_dir, tmp_path):
    """`metricdepth predict --checkpoint depth_pro.pt` end to end on the EXIF photo."""
    out = tmp_path / "out"
    result = CliRunner().invoke(
        app,
        [
            "predict",
            str(data_dir / "leuvenA.jpg"),
            "-o",
            str(out),
            "--checkpoint",
            str(apple_checkpoint),
            "--device",
            "cpu",
        ],
    )
    assert result.exit_code == 0, result.output
    image, canonical, _, _ = outputs["leuvenA.jpg"]
    npz = np.load(out / "leuvenA.npz")
    expected = reference_depth_with_focal(canonical, image.focal_px, image.height, image.width)
    assert rel_error(1 / npz["depth"], 1 / expected) <= TOLERANCE
    meta = json.loads((out / "leuvenA.json").read_text())
    assert meta["focal_source"] == "exif" and meta["focal_px"] == pytest.approx(image.focal_px, rel=1e-6)
    png = read_depth_png(out / "leuvenA_depth.png")
    valid = np.isfinite(png)
    assert valid.any() and np.abs(png[valid] - npz["depth"][valid]).max() <= 0.001
    from plyfile import PlyData

    vertices = PlyData.read(out / "leuvenA.ply")["vertex"]
    depth = npz["depth"]
    keep = (depth < 0.999e4) & ~flying_pixels(depth)
    assert vertices.count == keep.sum()
