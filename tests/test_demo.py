"""The web demo's logic (``metricdepth.demo``, no browser), its GLB mesh and the ``demo`` command's checks."""

from __future__ import annotations

import base64
import io
import json
import re
import socket
import sys
import tempfile
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from metricdepth import DepthPro, load_image
from metricdepth.cli.app import app
from metricdepth.demo import DemoInputError, DepthDemo
from metricdepth.demo.depth_view import (
    colorbar_png,
    decode_depth_grid,
    depth_view_html,
    encode_depth_grid,
    grid_strides,
)
from metricdepth.inference import focal_from_predicted_fov
from metricdepth.io.mesh import depth_mesh, mesh_stride, write_glb

trimesh = pytest.importorskip("trimesh")

REPO = Path(__file__).resolve().parents[1]
SUFFIXES = [".npz", "_depth.png", "_inverse_depth.png", ".ply", ".json", ".glb"]


@pytest.fixture(scope="module")
def camera_model(camera_checkpoint) -> DepthPro:
    return DepthPro.from_pretrained(camera_checkpoint, device="cpu")


@pytest.fixture
def demo(camera_model, tmp_path) -> DepthDemo:
    with DepthDemo(camera_model, extra={"checkpoint": "camera"}, work_dir=tmp_path / "work") as demo:
        yield demo


def load_glb(path: Path):
    """The single mesh of a GLB file, as trimesh reads it back (no merging or reordering)."""
    scene = trimesh.load(path, force="scene", process=False)
    (mesh,) = scene.geometry.values()
    return mesh


# ------------------------------------------------------------------------------ the focal policy
def test_exif_focal_and_every_output_format(demo, data_dir):
    photo = data_dir / "leuvenA.jpg"
    exif_focal = load_image(photo).focal_px
    assert exif_focal is not None
    result = demo.run(photo)

    assert result.focal_source == "exif"
    assert result.focal_px == pytest.approx(exif_focal)
    assert f"Focal length: {exif_focal:.1f} px — from EXIF" in result.focal_text
    assert "the FOV head predicts" in result.focal_text  # the model's own estimate is shown too

    names = [p.name for p in result.files]
    assert names == [f"leuvenA{suffix}" for suffix in SUFFIXES]
    assert all(p.is_file() and p.stat().st_size > 0 and p.parent == result.run_dir for p in result.files)
    assert result.run_dir.parent == demo.work_dir
    depth = result.prediction.depth.numpy()
    with np.load(result.files[0]) as npz:
        np.testing.assert_array_equal(npz["depth"], depth)
        assert str(npz["focal_source"]) == "exif"
    record = json.loads(result.files[4].read_text())
    assert record["input"] == "leuvenA.jpg" and record["checkpoint"] == "camera"
    assert record["focal_source"] == "exif"
    assert set(record["files"]) == set(names[:5])
    assert result.glb == result.files[5] and result.mesh_faces > 0
    assert len(load_glb(result.glb).faces) == result.mesh_faces


def test_typed_in_focal_overrides_exif_and_scales_depth(demo, data_dir):
    photo = data_dir / "leuvenA.jpg"
    exif = demo.run(photo)
    typed = demo.run(photo, f_px=" 800 px")  # the page's text field

    assert typed.focal_source == "user" and typed.focal_px == 800.0
    assert typed.focal_text.startswith("Focal length: 800.0 px — typed in")
    assert json.loads(typed.files[4].read_text())["focal_source"] == "user"
    # metric inverse depth = canonical · W / f_px: depth grows with the focal length
    ratio = typed.prediction.depth / exif.prediction.depth
    np.testing.assert_allclose(ratio.numpy(), 800.0 / exif.focal_px, rtol=1e-4)
    assert typed.run_dir != exif.run_dir


def test_predicted_focal_without_exif(demo, data_dir):
    result = demo.run(data_dir / "motorcycle_left.png")
    prediction = result.prediction

    assert result.focal_source == "predicted"
    width = prediction.image_size[1]
    assert result.focal_px == pytest.approx(focal_from_predicted_fov(prediction.predicted_fov_deg, width))
    assert "predicted by the FOV head" in result.focal_text
    assert "the FOV head predicts" not in result.focal_text  # it is the focal used
    assert 40 < prediction.fov_deg < 80  # the camera checkpoint's ~60° FOV


# ------------------------------------------------------------------------------ bad input
def test_pixel_bound_refuses_large_photos_before_decoding(camera_model, data_dir, tmp_path):
    with DepthDemo(camera_model, max_pixels=100_000, work_dir=tmp_path / "work") as small:
        with pytest.raises(DemoInputError, match=r"leuvenA\.jpg: 751×563 pixels \(0\.4 MP\) is more than"):
            small.run(data_dir / "leuvenA.jpg")
        assert not list(small.work_dir.glob("run-*"))  # nothing written


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"hello, this is not an image\n", "photo.jpg: not a recognised image format"),
        (b"", "photo.jpg: file is empty"),
        (None, "photo.jpg: cannot decode image, the file is truncated or corrupt"),
    ],
    ids=["text-named-jpg", "empty", "truncated"],
)
def test_bad_uploads_give_messages_naming_the_file(demo, data_dir, tmp_path, content, expected):
    upload = tmp_path / "upload" / "photo.jpg"
    upload.parent.mkdir()
    upload.write_bytes(content if content is not None else (data_dir / "leuvenA.jpg").read_bytes()[:20_000])
    with pytest.raises(DemoInputError) as err:
        demo.run(upload)
    assert str(err.value).startswith(expected)
    assert str(upload.parent) not in str(err.value)  # the server's upload folder is not shown
    assert not list(demo.work_dir.glob("run-*"))


def test_missing_upload_and_bad_focal_lengths(demo, data_dir):
    with pytest.raises(DemoInputError, match="Upload a photo first"):
        demo.run(None)
    for value, problem in (("abc", "not a number"), ("0", "between 1 and"), (-5.0, "between 1 and")):
        with pytest.raises(DemoInputError, match=problem):
            demo.run(data_dir / "leuvenA.jpg", f_px=value)
    for blank in ("", "   ", None):
        assert DepthDemo.check_focal(blank) is None
    with pytest.raises(DemoInputError, match="between 1 and 1e\\+07 px"):
        DepthDemo.check_focal("1e9")


def test_old_request_folders_are_removed(camera_model, data_dir, tmp_path):
    with DepthDemo(camera_model, keep_runs=2, work_dir=tmp_path / "work") as demo:
        results = [demo.run(data_dir / "motorcycle_left.png") for _ in range(3)]
        remaining = sorted(demo.work_dir.glob("run-*"))
        assert remaining == sorted([results[1].run_dir, results[2].run_dir])
        assert all(p.is_file() for p in results[2].files)


def test_work_dir_made_by_the_demo_is_removed_on_close(camera_model, data_dir, tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # the system's temporary folder, here
    demo = DepthDemo(camera_model)
    assert demo.work_dir.parent == tmp_path
    result = demo.run(data_dir / "motorcycle_left.png")
    assert result.glb.is_file()
    demo.close()
    assert not demo.work_dir.exists()


# ------------------------------------------------------------------------------ the depth panel
def test_depth_grid_codes_round_trip():
    depth = np.array([[1e-3, 0.5, 3.42], [80.0, 9990.0, 1e4], [np.nan, 0.0, -1.0]], np.float32)
    decoded = decode_depth_grid(encode_depth_grid(depth))
    np.testing.assert_allclose(decoded[:2], depth[:2], rtol=2e-4)
    assert np.isnan(decoded[2]).all()


def test_depth_panel_carries_the_colour_map_bar_and_grid(demo, data_dir):
    result = demo.run(data_dir / "motorcycle_left.png")
    depth = result.prediction.depth.numpy()
    html = result.depth_html
    attributes = dict(re.findall(r'data-([a-z-]+)="([^"]*)"', html))
    stride = int(attributes["stride"])
    assert (int(attributes["width"]), int(attributes["height"])) == (741, 500)
    assert stride == grid_strides(500, 741) == 3
    codes = np.frombuffer(base64.b64decode(attributes["grid"]), "<u2")
    codes = codes.reshape(int(attributes["grid-height"]), int(attributes["grid-width"]))
    np.testing.assert_allclose(decode_depth_grid(codes), depth[::stride, ::stride], rtol=2e-4)

    images = re.findall(r'<img class="([a-z-]+)" src="data:image/(\w+);base64,([^"]+)"', html)
    assert [(cls, kind) for cls, kind, _ in images] == [("md-depth", "webp"), ("md-colorbar", "png")]
    shown = Image.open(io.BytesIO(base64.b64decode(images[0][2])))
    assert shown.size == (741, 500)
    assert "Depth under the cursor" in html


def test_colour_bar_is_labelled_in_metres():
    data = colorbar_png(1 / 40.0, 1 / 1.5)
    bar = Image.open(io.BytesIO(data))
    assert bar.format == "PNG" and bar.width == 560
    pixels = np.asarray(bar.convert("RGB")).reshape(-1, 3)
    assert len(np.unique(pixels, axis=0)) > 200  # the colour ramp is there
    with pytest.raises(ValueError):
        colorbar_png(0.0, 1.0)


@pytest.mark.parametrize(
    "values",
    [
        [[0.3, 0.3]],
        [[0.001, 0.5, 20.0]],  # beyond 250 m and nearer than 0.1 m: clipped
        [[np.nan, np.nan]],
        [[np.inf, 0.5]],
        [[-np.inf, 0.5, np.nan]],
        [[-1.0, np.nan, 3.0]],
    ],
    ids=["flat", "clipped", "all-nan", "inf", "minus-inf-nan", "negative-nan"],
)
def test_colour_range_matches_the_colour_maps_normalisation(values):
    from metricdepth.demo.depth_view import colour_range

    for dtype in (np.float32, np.float64):
        inverse = np.array(values, dtype)
        lo_clip, hi_clip = 1 / 250.0, 1 / 0.1  # colorize_inverse_depth: clip(nan_to_num(float64))
        clipped = np.clip(np.nan_to_num(inverse.astype(np.float64)), lo_clip, hi_clip)
        assert colour_range(inverse) == (clipped.min(), clipped.max())


def test_depth_panel_and_mesh_make_no_full_size_float_copies():
    import tracemalloc

    height, width = 1500, 2000  # 3 MP: a float64 copy would be 8 bytes per pixel
    depth = np.linspace(1.0, 30.0, height * width, dtype=np.float32).reshape(height, width)
    depth[:100] = 1e4
    depth[200, 300] = np.nan
    inverse = 1 / depth
    colour = Image.new("RGB", (width, height))
    K = np.array([[1500.0, 0, width / 2], [0, 1500.0, height / 2], [0, 0, 1]])
    depth_view_html(depth[:20, :20], colour.crop((0, 0, 20, 20)), inverse[:20, :20])  # imports first
    depth_mesh(depth[:20, :20], K)
    tracemalloc.start()
    try:
        depth_view_html(depth, colour, inverse)
        panel_peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.reset_peak()
        mesh = depth_mesh(depth, K, max_faces=20_000)
        mesh_peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert panel_peak < 3 * height * width  # bool masks (≤ 2 bytes per pixel) and the page's images
    assert mesh_peak < 2 * height * width  # the sampled grid only
    # the same mesh as converting the whole map to float64 first
    reference = depth_mesh(depth.astype(np.float64), K, max_faces=20_000)
    np.testing.assert_array_equal(mesh.vertices, reference.vertices)
    np.testing.assert_array_equal(mesh.faces, reference.faces)


def test_depth_view_rejects_a_mismatched_colour_map():
    with pytest.raises(ValueError, match="does not match"):
        depth_view_html(np.ones((4, 5)), np.zeros((4, 4, 3), np.uint8), np.ones((4, 5)))


# ------------------------------------------------------------------------------ the GLB mesh
def _step_scene(height: int = 120, width: int = 160) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A wall at 3 m, a box face at 1.5 m in front of it, sky in the top rows; K with f = 150 px."""
    depth = np.full((height, width), 3.0, np.float32)
    depth[40:90, 50:120] = 1.5
    depth[:10] = 1e4  # the network's sky ceiling
    K = np.array([[150.0, 0, (width - 1) / 2], [0, 150.0, (height - 1) / 2], [0, 0, 1]])
    rgb = np.zeros((height, width, 3), np.uint8)
    rgb[..., 0] = np.arange(width, dtype=np.uint8)[None, :]
    rgb[..., 1] = np.arange(height, dtype=np.uint8)[:, None]
    return depth, K, rgb


def test_glb_mesh_drops_sky_and_depth_edges_in_gltf_coordinates(tmp_path):
    depth, K, rgb = _step_scene()
    path = write_glb(tmp_path / "scene.glb", depth_mesh(depth, K, rgb, max_faces=10_000), {"focal_px": 150})
    mesh = load_glb(path)
    vertices, faces = np.asarray(mesh.vertices), np.asarray(mesh.faces)

    assert 0 < len(faces) <= 10_000
    z = -vertices[:, 2]  # glTF looks down −z: depth is −z
    assert np.all(z > 0) and set(np.round(np.unique(z), 4)) == {1.5, 3.0}  # no sky vertex
    corners = z[faces]
    assert np.all(corners.max(1) <= 1.04 * corners.min(1))  # no triangle spans the 1.5 m → 3 m step
    assert {1.5, 3.0} == set(np.round(corners[:, 0], 4))  # both surfaces are kept
    # y up and x right (stride 2: grid rows and columns 0, 2, 4, …): row 10, the first below the sky, is
    # above the image centre; column 158, the last of the grid, right of it
    assert mesh_stride(120, 160, 10_000) == 2
    assert vertices[:, 1].max() == pytest.approx(3.0 * (59.5 - 10) / 150, rel=1e-5)
    assert vertices[:, 0].max() == pytest.approx(3.0 * (158 - 79.5) / 150, rel=1e-5)
    # triangles face the camera at the origin (counter-clockwise as seen from it)
    normals = np.asarray(mesh.face_normals)
    centroids = vertices[faces].mean(1)
    assert np.all(np.einsum("ij,ij->i", normals, -centroids) > 0)
    # vertex colours are the photo's pixels: red = column, green = row
    colours = np.asarray(mesh.visual.vertex_attributes["color"])[:, :3]  # COLOR_0 beside the material
    u = np.rint(vertices[:, 0] / z * 150 + 79.5)
    v = np.rint(-vertices[:, 1] / z * 150 + 59.5)
    np.testing.assert_array_equal(colours[:, 0], u)
    np.testing.assert_array_equal(colours[:, 1], v)
    header = json.loads(path.read_bytes()[20 : 20 + int.from_bytes(path.read_bytes()[12:16], "little")])
    assert header["asset"]["extras"]["writer"] == "metricdepth"
    assert header["materials"][0]["doubleSided"] is True


@pytest.mark.parametrize(
    ("height", "width", "budget"), [(563, 751, 20_000), (500, 741, 200_000), (7, 5, 2), (1536, 2048, 200_000)]
)
def test_mesh_face_count_is_bounded(height, width, budget):
    stride = mesh_stride(height, width, budget)
    depth = np.full((height, width), 2.0, np.float32)
    K = np.array([[300.0, 0, width / 2], [0, 300.0, height / 2], [0, 0, 1]])
    mesh = depth_mesh(torch.from_numpy(depth), torch.from_numpy(K).float(), max_faces=budget)
    assert 0 < len(mesh.faces) <= budget
    assert len(mesh.faces) == 2 * ((height - 1) // stride) * ((width - 1) // stride)
    if stride > 1:  # the smallest stride that fits: one less would not
        assert 2 * ((height - 1) // (stride - 1)) * ((width - 1) // (stride - 1)) > budget


def test_empty_mesh_still_writes_a_valid_glb(tmp_path):
    mesh = depth_mesh(np.full((5, 5), 1e4), np.eye(3))
    assert len(mesh.faces) == 0
    path = write_glb(tmp_path / "empty.glb", mesh)
    assert path.read_bytes()[:4] == b"glTF"


# ------------------------------------------------------------------------------ RSA and the page
@pytest.fixture(scope="module")
def rsa_pipeline():
    pytest.importorskip("sentence_transformers")
    from metricdepth.rsa import RSAPipeline

    weights = REPO / "examples" / "weights"
    return RSAPipeline.from_pretrained(
        weights / "rsa-minilm-tiny-relative.safetensors", weights / "tiny-relative.safetensors", device="cpu"
    )


def test_rsa_source_takes_a_caption(rsa_pipeline, data_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with DepthDemo(rsa_pipeline, work_dir=tmp_path / "work") as demo:
        assert demo.takes_caption
        with pytest.raises(DemoInputError, match="RSA needs a caption"):
            demo.run(data_dir / "leuvenA.jpg", caption="  ")
        result = demo.run(data_dir / "leuvenA.jpg", caption="An image with a house.")
        assert result.caption == "An image with a house."
        assert result.focal_source == "exif"  # RSA has no camera: EXIF gives the point cloud's focal
        assert [p.name for p in result.files] == [f"leuvenA{s}" for s in SUFFIXES]
        no_camera = demo.run(data_dir / "motorcycle_left.png", caption="An image with a motorcycle.")
        assert no_camera.focal_px is None and no_camera.glb is None
        assert "RSA has no camera model" in no_camera.focal_text
        assert [p.name for p in no_camera.files] == [
            f"motorcycle_left{s}" for s in (".npz", "_depth.png", "_inverse_depth.png", ".json")
        ]
        typed = demo.run(data_dir / "motorcycle_left.png", f_px="700", caption="An image with a motorcycle.")
        assert typed.focal_source == "user" and typed.glb is not None


def test_page_shows_the_caption_box_only_for_rsa(camera_model, rsa_pipeline, tmp_path):
    from metricdepth.demo import build_demo

    def visible(blocks) -> dict[str, bool]:
        config = blocks.get_config_file()
        return {
            c["props"]["elem_id"]: c["props"].get("visible")
            for c in config["components"]
            if c.get("props", {}).get("elem_id")
        }

    depth_pro = visible(build_demo(camera_model, work_dir=tmp_path / "a"))
    assert depth_pro["md-caption"] is False
    for elem in ("md-photo", "md-focal-override", "md-focal", "md-depth", "md-3d", "md-downloads"):
        assert depth_pro[elem] is True
    assert visible(build_demo(rsa_pipeline, work_dir=tmp_path / "b"))["md-caption"] is True


def test_launch_serves_localhost_with_bounded_uploads_and_a_queue(camera_model, tmp_path, monkeypatch):
    import mimetypes

    from gradio_client.utils import is_valid_file

    from metricdepth.demo import launch_demo

    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "gradio"))
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    blocks = launch_demo(
        camera_model, port=port, max_upload_mb=5, concurrency=2, queue_size=3, block=False, quiet=True,
        work_dir=tmp_path / "work",
    )  # fmt: skip
    try:
        assert blocks.local_url == f"http://127.0.0.1:{port}/" and not blocks.share
        with urllib.request.urlopen(f"{blocks.local_url}config") as response:
            config = json.loads(response.read())
        assert config["max_file_size"] == 5 * 2**20 and config["analytics_enabled"] is False
        predictions = [fn for fn in blocks.fns.values() if fn.name == "predict"]
        assert len(predictions) == 4  # upload, button, Enter in the focal and the caption fields
        for fn in predictions:  # one shared limit: at most 2 predictions at once, the rest wait
            assert fn.queue and fn.concurrency_limit == 2 and fn.concurrency_id == "predict"
        assert blocks._queue.max_size == 3
        # the photo's types are extensions: gradio's server-side check then needs no MIME type for .heic
        (photo,) = [b for b in blocks.blocks.values() if getattr(b, "elem_id", None) == "md-photo"]
        assert {".heic", ".heif", ".jpg", ".png"} <= set(photo.file_types)
        monkeypatch.setattr(mimetypes, "guess_type", lambda *args, **kwargs: (None, None))
        assert is_valid_file("IMG_0001.HEIC", photo.file_types)
        assert not is_valid_file("IMG_0001.HEIC", ["image"])  # what a system without .heic types does
        assert not is_valid_file("notes.txt", photo.file_types)
    finally:
        blocks.close()


def test_import_loads_neither_gradio_nor_torch():
    import subprocess

    code = (
        "import sys, metricdepth, metricdepth.demo, metricdepth.demo.session, metricdepth.io.mesh; "
        "print('gradio' in sys.modules, 'torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


# ------------------------------------------------------------------------------ the command
def test_demo_command_usage_errors_exit_2(camera_checkpoint, tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "gradio"))
    runner = CliRunner()
    result = runner.invoke(app, ["demo", "--relative", "x.safetensors"])
    assert result.exit_code == 2 and "needs --rsa CKPT" in result.output
    result = runner.invoke(app, ["demo", "--rsa", "head.safetensors"])
    assert result.exit_code == 2 and "--relative MODEL" in result.output
    result = runner.invoke(app, ["demo", "--text-encoder", "minilm"])
    assert result.exit_code == 2 and "only apply with --rsa" in result.output
    result = runner.invoke(app, ["demo", "--caption-threshold", "0.3"])
    assert result.exit_code == 2 and "only applies with --rsa" in result.output
    result = runner.invoke(app, ["demo", "--max-upload-mb", "0"])
    assert result.exit_code == 2 and "--max-upload-mb" in result.output
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = runner.invoke(app, ["demo", "-c", str(camera_checkpoint), "--port", str(port)])
    assert result.exit_code == 2 and f"cannot serve on 127.0.0.1:{port}" in result.output
