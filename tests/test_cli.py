import json
import shutil

import numpy as np
import pytest
from typer.testing import CliRunner

from metricdepth import read_depth_png
from metricdepth.cli import app

runner = CliRunner()


def flying_pixels(depth: np.ndarray, rtol: float = 0.04) -> np.ndarray:
    """3×3 max/min ratio test, written plainly with numpy (edge pixels replicate)."""
    padded = np.pad(depth, 1, mode="edge")
    windows = np.stack(
        [padded[i : i + depth.shape[0], j : j + depth.shape[1]] for i in range(3) for j in range(3)]
    )
    return windows.max(0) > (1 + rtol) * windows.min(0)


@pytest.fixture
def photos(tmp_path, data_dir):
    folder = tmp_path / "photos"
    (folder / "nested").mkdir(parents=True)
    shutil.copy(data_dir / "leuvenA.jpg", folder / "leuvenA.jpg")
    shutil.copy(data_dir / "motorcycle_left.png", folder / "nested" / "motorcycle_left.png")
    (folder / "notes.txt").write_text("not an image, and not picked up from a folder")
    return folder


def test_predict_folder_writes_every_output(tmp_path, photos, smooth_checkpoint):
    out = tmp_path / "out"
    result = runner.invoke(
        app, ["predict", str(photos), "-o", str(out), "--checkpoint", str(smooth_checkpoint)]
    )
    assert result.exit_code == 0, result.output
    for stem in ("leuvenA", "nested/motorcycle_left"):
        for suffix in (".npz", "_depth.png", "_inverse_depth.png", ".ply", ".json"):
            assert (out / (stem + suffix)).is_file(), stem + suffix
    assert not list(out.rglob("*.tmp")) and not (out / "notes.npz").exists()

    npz = np.load(out / "leuvenA.npz")
    depth = npz["depth"]
    assert depth.shape == (563, 751) and depth.dtype == np.float32
    meta = json.loads((out / "leuvenA.json").read_text())
    assert meta["focal_source"] == "exif" and meta["focal_px"] == pytest.approx(float(npz["focal_px"]))
    assert json.loads((out / "nested/motorcycle_left.json").read_text())["focal_source"] == "predicted"

    png = read_depth_png(out / "leuvenA_depth.png")
    valid = np.isfinite(png)
    assert valid.mean() > 0.99
    assert np.abs(png[valid] - depth[valid]).max() <= 0.001  # within 1 mm
    assert (~valid == (np.rint(depth.astype(np.float64) * 1000) > 65535)).all()  # beyond 65.535 m: 0

    import trimesh

    cloud = trimesh.load(out / "leuvenA.ply")
    keep = (depth < 0.999e4) & ~flying_pixels(depth)
    assert 0.5 * depth.size < len(cloud.vertices) == keep.sum() < depth.size
    np.testing.assert_allclose(np.sort(cloud.vertices[:, 2]), np.sort(depth[keep]), rtol=1e-6)


def test_bad_inputs_are_reported_and_the_batch_continues(tmp_path, photos, data_dir, tiny_checkpoint):
    from PIL import Image

    bad = photos / "bad"
    bad.mkdir()
    (bad / "empty.jpg").write_bytes(b"")
    (bad / "text.jpg").write_text("hello")
    data = (data_dir / "leuvenA.jpg").read_bytes()
    (bad / "truncated.jpg").write_bytes(data[: len(data) // 3])
    Image.new("RGB", (1, 1), (9, 9, 9)).save(bad / "one.png")
    Image.fromarray((np.arange(64 * 48).reshape(48, 64) * 20).astype(np.uint16)).save(bad / "sixteen.png")
    Image.new("RGBA", (40, 30), (200, 10, 10, 100)).save(bad / "alpha.png")
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways: the upright image is 30 wide, 40 high
    Image.new("RGB", (40, 30), (0, 90, 0)).save(bad / "rotated.jpg", exif=exif.tobytes())
    out = tmp_path / "out"
    result = runner.invoke(
        app,
        ["predict", str(photos), str(tmp_path / "missing.jpg"), "-o", str(out), "-c", str(tiny_checkpoint)],
    )
    assert result.exit_code == 1
    for name, problem in (
        ("empty.jpg", "empty"),
        ("text.jpg", "not a recognised image"),
        ("truncated.jpg", "truncated"),
        ("missing.jpg", "not found"),
    ):
        assert name in result.output and problem in result.output
    assert "Traceback" not in result.output
    for stem in ("leuvenA", "bad/one", "bad/sixteen", "bad/alpha", "bad/rotated", "nested/motorcycle_left"):
        assert (out / f"{stem}.npz").is_file(), stem
    assert np.load(out / "bad/one.npz")["depth"].shape == (1, 1)
    assert np.load(out / "bad/rotated.npz")["depth"].shape == (40, 30)
    assert not (out / "bad/empty.npz").exists()


def test_options(tmp_path, photos, tiny_checkpoint):
    out = tmp_path / "out"
    inputs = [str(photos / "*.jpg")]  # a quoted glob, expanded by metricdepth
    result = runner.invoke(
        app,
        [
            "predict",
            *inputs,
            "-o",
            str(out),
            "-c",
            str(tiny_checkpoint),
            "--f-px",
            "1000",
            "--formats",
            "npz,json",
            "--max-depth",
            "20",
            "--device",
            "cpu",
            "--precision",
            "fp32",
        ],
    )
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == ["leuvenA.json", "leuvenA.npz"]
    meta = json.loads((out / "leuvenA.json").read_text())
    assert meta["focal_px"] == 1000.0 and meta["focal_source"] == "user" and meta["max_depth_m"] == 20.0

    bad_format = runner.invoke(
        app, ["predict", str(photos), "--formats", "npz,exr", "-c", str(tiny_checkpoint)]
    )
    assert bad_format.exit_code == 2 and "exr" in bad_format.output
    for option, value, message in (
        ("--device", "gpu", "unknown device"),
        ("--max-depth", "inf", "--max-depth"),
        ("--f-px", "-5", "--f-px"),
    ):
        bad = runner.invoke(
            app, ["predict", str(photos), "-o", str(out), "-c", str(tiny_checkpoint), option, value]
        )
        assert bad.exit_code == 2 and message in bad.output and "Traceback" not in bad.output, option
    half_on_cpu = runner.invoke(
        app,
        [
            "predict",
            str(photos),
            "-o",
            str(out),
            "-c",
            str(tiny_checkpoint),
            "--device",
            "cpu",
            "--precision",
            "fp16",
        ],
    )
    assert half_on_cpu.exit_code == 2 and "not supported on CPU" in half_on_cpu.output


def test_inputs_are_never_overwritten(tmp_path, photos, tiny_checkpoint):
    """Writing into the input folder: earlier outputs there are not re-read, inputs are not replaced."""
    before = (photos / "leuvenA.jpg").read_bytes()
    for _ in range(2):
        result = runner.invoke(app, ["predict", str(photos), "-o", str(photos), "-c", str(tiny_checkpoint)])
        assert result.exit_code == 0, result.output
    assert (photos / "leuvenA.jpg").read_bytes() == before
    assert not (photos / "leuvenA_depth_depth.png").exists()
    clash = photos / "clash.png"
    shutil.copy(photos / "leuvenA.jpg", photos / "clash.jpg")
    (photos / "clash_depth.png").write_bytes((photos / "leuvenA_depth.png").read_bytes())
    result = runner.invoke(
        app,
        [
            "predict",
            str(photos / "clash.jpg"),
            str(photos / "clash_depth.png"),
            "-o",
            str(photos),
            "-c",
            str(tiny_checkpoint),
        ],
    )
    assert result.exit_code == 1 and "would overwrite an input" in result.output
    assert not clash.exists()


def test_missing_checkpoint_is_a_clear_error(tmp_path, photos):
    result = runner.invoke(app, ["predict", str(photos), "-c", str(tmp_path / "nope.pt")])
    assert result.exit_code == 2 and "nope.pt" in result.output and "not found" in result.output


def test_version_and_help():
    assert runner.invoke(app, ["--version"]).output.startswith("metricdepth ")
    assert "--checkpoint" in runner.invoke(app, ["predict", "--help"]).output
