import json
import os

import numpy as np
import pytest
import torch
from PIL import Image

from metricdepth import Prediction, read_depth_png, save_prediction
from metricdepth.camera import intrinsics_matrix
from metricdepth.io.atomic import atomic_path
from metricdepth.io.writers import colorize_inverse_depth, write_depth_png


def make_prediction(depth: np.ndarray, focal: float = 50.0) -> Prediction:
    d = torch.from_numpy(depth.astype(np.float32))
    height, width = depth.shape
    return Prediction(
        depth=d,
        inverse_depth=1 / d,
        focal_px=focal,
        focal_source="user",
        fov_deg=float(np.degrees(2 * np.arctan(width / 2 / focal))),
        intrinsics=intrinsics_matrix(torch.tensor(focal), width, height),
        predicted_fov_deg=None,
    )


def test_depth_png_roundtrip_and_metadata(tmp_path):
    depth = np.array([[0.5, 1.2345, 65.535], [70.0, np.inf, 0.0]])
    path = write_depth_png(tmp_path / "d.png", depth)
    with Image.open(path) as image:
        assert image.mode.startswith("I;16") and image.text["depth_scale"] == "0.001"
        assert np.asarray(image).tolist() == [[500, 1234, 65535], [0, 0, 0]]
    back = read_depth_png(path)
    np.testing.assert_allclose(back[0], [0.5, 1.234, 65.535], atol=5e-4)
    assert np.isnan(back[1]).all()
    assert np.isnan(read_depth_png(write_depth_png(tmp_path / "m.png", depth, max_depth=1.0))[0, 1])


def test_atomic_writes_leave_nothing_behind_on_failure(tmp_path):
    target = tmp_path / "out.bin"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half-written")
        raise RuntimeError("disk full")
    assert target.read_text() == "old" and os.listdir(tmp_path) == ["out.bin"]


def test_outputs_get_normal_permissions(tmp_path):
    umask = os.umask(0o022)
    try:
        path = write_depth_png(tmp_path / "d.png", np.ones((2, 2)))
    finally:
        os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o644


def test_an_image_gets_all_its_outputs_or_none(tmp_path, monkeypatch):
    import metricdepth.io.writers as writers

    def broken_ply(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(writers, "write_ply", broken_ply)
    with pytest.raises(OSError, match="disk full"):
        save_prediction(make_prediction(np.ones((4, 5))), np.zeros((4, 5, 3), np.uint8), tmp_path / "photo")
    assert os.listdir(tmp_path) == []


def test_colour_map_is_near_warm():
    inverse = np.array([[1.0, 0.5, 0.1]])
    colours = colorize_inverse_depth(inverse)
    assert colours.shape == (1, 3, 3) and colours.dtype == np.uint8
    assert colours[0, 0, 0] > colours[0, 0, 2] and colours[0, 2, 2] > colours[0, 2, 0]  # near red, far blue


def test_save_prediction_writes_every_format(tmp_path):
    import trimesh

    depth = np.full((20, 30), 2.0)
    depth[:, 15:] = 4.0  # a step: its two sides are flying-pixel candidates
    depth[0, 0] = 1e4  # sky at the network's ceiling: no point
    rgb = np.zeros((20, 30, 3), np.uint8)
    rgb[..., 1] = 200
    written = save_prediction(
        make_prediction(depth), rgb, tmp_path / "sub" / "photo", extra={"input": "photo.jpg"}
    )
    assert [p.name for p in written] == [
        "photo.npz",
        "photo_depth.png",
        "photo_inverse_depth.png",
        "photo.ply",
        "photo.json",
    ]
    npz = np.load(tmp_path / "sub" / "photo.npz")
    assert npz["depth"].dtype == np.float32 and npz["depth"].shape == (20, 30)
    assert float(npz["focal_px"]) == 50.0 and npz["K"].shape == (3, 3) and str(npz["focal_source"]) == "user"
    png = read_depth_png(tmp_path / "sub" / "photo_depth.png")
    valid = np.isfinite(png)
    assert np.abs(png[valid] - npz["depth"][valid]).max() <= 0.0005 and valid.sum() == depth.size - 1

    cloud = trimesh.load(tmp_path / "sub" / "photo.ply")
    # 600 pixels, minus the sky pixel and its 3 neighbours (a jump there too), minus columns 14 and 15.
    assert len(cloud.vertices) == 600 - 4 - 2 * 20
    assert set(np.round(cloud.vertices[:, 2], 4)) == {2.0, 4.0}
    assert (cloud.colors[:, 1] == 200).all()
    meta = json.loads((tmp_path / "sub" / "photo.json").read_text())
    assert meta["input"] == "photo.jpg" and meta["focal_source"] == "user" and meta["fx"] == 50.0
    assert meta["cx"] == 14.5 and meta["cy"] == 9.5 and meta["width"] == 30 and meta["height"] == 20

    only = save_prediction(make_prediction(depth), rgb, tmp_path / "x", formats=["ply"], max_depth=3.0)
    assert [p.name for p in only] == ["x.ply"]
    assert set(np.round(trimesh.load(only[0]).vertices[:, 2], 4)) == {2.0}
    with pytest.raises(ValueError, match="unknown output formats"):
        save_prediction(make_prediction(depth), rgb, tmp_path / "y", formats=["exr"])


def test_block_wise_outputs_equal_whole_image_maths(monkeypatch):
    """Row blocks (here of 7 rows, with a 1-row halo for the flying-pixel test) change nothing: the
    colour map equals matplotlib's, the cloud equals per-pixel back-projection with a skewed K."""
    from matplotlib import colormaps

    from metricdepth.geometry import depth_discontinuities, depth_to_points
    from metricdepth.io import writers

    rng = np.random.default_rng(0)
    depth = rng.uniform(1.0, 3.0, (40, 30)).astype(np.float32)
    depth[:, 12:] += 5.0  # a depth jump across every block
    depth[17, 3] = np.nan
    depth[0, 0] = 1e4
    inverse = 1 / depth
    K = torch.tensor([[40.0, 2.5, 14.2], [0.0, 38.0, 19.7], [0.0, 0.0, 1.0]])
    prediction = make_prediction(depth)
    prediction.intrinsics = K
    rgb = rng.integers(0, 256, (40, 30, 3), dtype=np.uint8)

    whole_colours = colorize_inverse_depth(inverse)
    whole_cloud = writers.point_cloud(prediction, rgb)
    monkeypatch.setattr(writers, "BLOCK_PIXELS", 7 * 30)
    colours = colorize_inverse_depth(inverse)
    cloud = writers.point_cloud(prediction, rgb)
    np.testing.assert_array_equal(colours, whole_colours)
    np.testing.assert_array_equal(cloud, whole_cloud)

    clipped = np.clip(np.nan_to_num(inverse.astype(np.float64)), 1 / 250, 10)
    normalised = (clipped - clipped.min()) / (clipped.max() - clipped.min())
    expected = (colormaps["turbo"](normalised)[..., :3] * 255 + 0.5).astype(np.uint8)
    np.testing.assert_array_equal(colours, expected)

    d = torch.from_numpy(depth)
    keep = (d < 0.999e4) & torch.isfinite(d) & ~depth_discontinuities(d)
    points = depth_to_points(d.double(), K.double())[keep].numpy()
    assert len(cloud) == int(keep.sum()) > 0
    np.testing.assert_allclose(
        np.stack([cloud["x"], cloud["y"], cloud["z"]], 1), points, rtol=1e-6, atol=1e-6
    )
    np.testing.assert_array_equal(
        np.stack([cloud["red"], cloud["green"], cloud["blue"]], 1), rgb[keep.numpy()]
    )
