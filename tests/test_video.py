"""Videos: ``metricdepth predict clip.mp4`` and :mod:`metricdepth.video`.

Clips are made here with PyAV from tests/data/leuvenA.jpg: a pan across the photo (so the content
changes), 96×64 pixels, 10 fps, H.264. The tiny camera weights (conftest ``camera_checkpoint``) predict
a field of view near 60° that varies a little per frame, and depth near 3 m.
"""

from __future__ import annotations

import errno
import json
import math
import os
import re
import shutil
import sys
from fractions import Fraction
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from metricdepth import DepthPro, Prediction
from metricdepth.batch import collect_inputs
from metricdepth.cli import app
from metricdepth.io.video import (
    DepthVideoWriter,
    FrameDecoder,
    VideoLoadError,
    is_depth_video,
    iter_frames,
    probe_video,
    read_video,
)
from metricdepth.io.writers import colorize_inverse_depth
from metricdepth.video import (
    clips_finished,
    colorize_fixed_range,
    predict_clips,
    predict_video,
    smooth_log_scale,
    temporal_flicker,
)

av = pytest.importorskip("av")
runner = CliRunner()
SIZE = (96, 64)  # width, height
FPS = 10


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def make_clip(
    path: Path,
    photo: Path,
    *,
    frames: int,
    size: tuple[int, int] = SIZE,
    fps: int = FPS,
    pan: bool = True,
    gains: np.ndarray | None = None,
    rotation: int | None = None,
    metadata: dict[str, str] | None = None,
) -> Path:
    """An H.264 MP4 of a window panning across ``photo`` (or standing still), each frame times ``gains``."""
    image = np.asarray(Image.open(photo).convert("RGB"))
    height, width = image.shape[:2]
    crop_w, crop_h = int(width * 0.6), int(height * 0.6)
    options = {"movflags": "use_metadata_tags"} if metadata else {}
    with av.open(str(path), "w", format="mp4", options=options) as container:
        container.metadata.update(metadata or {})
        stream = container.add_stream("libx264", rate=Fraction(fps))
        stream.width, stream.height, stream.pix_fmt = size[0], size[1], "yuv420p"
        if rotation is not None:
            stream.set_display_rotation(rotation)
        for i in range(frames):
            x = int((width - crop_w) * i / max(frames - 1, 1)) if pan else (width - crop_w) // 2
            top = (height - crop_h) // 2
            crop = Image.fromarray(image[top : top + crop_h, x : x + crop_w]).resize(size, Image.BILINEAR)
            rgb = np.asarray(crop, np.float64) * (1.0 if gains is None else gains[i])
            frame = av.VideoFrame.from_ndarray(np.clip(rgb, 0, 255).astype(np.uint8), format="rgb24")
            frame.pts, frame.time_base = i, Fraction(1, fps)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def block_means(rgb: np.ndarray, k: int = 4) -> np.ndarray:
    """k×k block averages of an (H, W, 3) image: codec errors (chroma subsampling, quantisation of the
    noise-like random-weight depth) average out; a different colour mapping does not."""
    h, w = rgb.shape[0] // k * k, rgb.shape[1] // k * k
    return rgb[:h, :w].astype(np.float64).reshape(h // k, k, w // k, k, 3).mean(axis=(1, 3))


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory, data_dir) -> Path:
    folder = tmp_path_factory.mktemp("clips")
    make_clip(folder / "clip.mp4", data_dir / "leuvenA.jpg", frames=5 * FPS)  # 5 seconds
    make_clip(folder / "short.mp4", data_dir / "leuvenA.jpg", frames=6)
    return folder


@pytest.fixture(scope="module")
def camera_model(camera_checkpoint) -> DepthPro:
    return DepthPro.from_pretrained(camera_checkpoint, device="cpu")


@pytest.fixture(scope="module")
def five_seconds(clip_dir, camera_checkpoint, tmp_path_factory):
    """``metricdepth predict clip.mp4`` on the 5-second clip: (result, output folder)."""
    out = tmp_path_factory.mktemp("out")
    result = invoke("predict", clip_dir / "clip.mp4", "-c", camera_checkpoint, "-o", out, "--batch-size", "2")
    return result, out


# -------------------------------------------------------------------------------- the acceptance
def test_five_second_clip_has_one_colour_range(five_seconds, clip_dir):
    result, out = five_seconds
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == ["clip.json", "clip.npz", "clip_depth.mp4"]
    sidecar = json.loads((out / "clip.json").read_text())
    data = np.load(out / "clip.npz")
    video = probe_video(out / "clip_depth.mp4")
    source = probe_video(clip_dir / "clip.mp4")

    # Same frames, rate and timestamps as the input.
    assert video.frame_count == source.frame_count == sidecar["frames"] == 50
    assert video.fps == source.fps == FPS and sidecar["fps"] == FPS
    np.testing.assert_allclose(video.timestamps_s, source.timestamps_s, atol=1e-3)
    np.testing.assert_allclose(data["timestamps_s"], np.arange(50) / FPS, atol=1e-6)
    assert data["depth"].shape == (50, SIZE[1], SIZE[0]) and data["depth"].dtype == np.float32
    assert is_depth_video(out / "clip_depth.mp4") and not is_depth_video(clip_dir / "clip.mp4")

    # One colour range, stated once for the clip.
    color = sidecar["color_range"]
    near, far = color["near_m"], color["far_m"]
    assert color["colormap"] == "turbo" and color["quantity"] == "inverse depth"
    assert 0 < near < far and "percentiles 2 and 98" in color["method"]
    assert (float(data["color_near_m"]), float(data["color_far_m"])) == (near, far)

    # Every decoded frame is its depth coloured with that range, not with its own min/max.
    worst_fixed, best_per_frame = 0.0, math.inf
    for frame in iter_frames(out / "clip_depth.mp4"):
        inverse = 1.0 / data["depth"][frame.index].astype(np.float64)
        decoded = block_means(frame.rgb)
        fixed = np.abs(decoded - block_means(colorize_fixed_range(inverse, near, far))).mean()
        per_frame = np.abs(decoded - block_means(colorize_inverse_depth(inverse))).mean()
        worst_fixed, best_per_frame = max(worst_fixed, fixed), min(best_per_frame, per_frame)
    assert worst_fixed < 6.0, worst_fixed  # codec error
    assert best_per_frame > 2 * worst_fixed + 5, (best_per_frame, worst_fixed)


def test_focal_is_the_median_of_the_frames_predictions(five_seconds):
    _, out = five_seconds
    sidecar = json.loads((out / "clip.json").read_text())
    data = np.load(out / "clip.npz")
    predicted = np.asarray(sidecar["predicted_focal_px"])
    assert predicted.shape == (50,) and np.ptp(predicted) > 0.05  # the frames do disagree
    assert sidecar["focal_source"] == "predicted" and str(data["focal_source"]) == "predicted"
    assert sidecar["focal_px"] == pytest.approx(float(np.median(predicted)), rel=1e-12)
    assert float(data["focal_px"]) == sidecar["focal_px"] and data["K"][0, 0] == sidecar["focal_px"]
    np.testing.assert_allclose(data["predicted_focal_px"], predicted)
    assert sidecar["scale_smoothing"] == {"window_frames": 0, "method": "off"}
    assert sidecar["writer"] == "metricdepth" and sidecar["input"].endswith("clip.mp4")
    assert sidecar["files"] == ["clip.npz", "clip_depth.mp4", "clip.json"]
    np.testing.assert_allclose(sidecar["median_depth_m"], np.median(data["depth"], axis=(1, 2)), rtol=1e-6)


def test_depth_equals_a_forward_at_the_clip_focal(clip_dir, camera_model, tmp_path):
    """Frames run at their own predicted focal length and are rescaled by focal_px / f_frame afterwards:
    the same depth as running each frame at the clip's focal length."""
    result = predict_video(camera_model, clip_dir / "short.mp4", tmp_path / "short", formats=["npz"])
    assert [p.name for p in result.paths] == ["short.npz"] and result.focal_source == "predicted"
    depth = np.load(tmp_path / "short.npz")["depth"]
    own_focal_differs = 0.0
    for frame in iter_frames(clip_dir / "short.mp4"):
        at_clip_focal = camera_model.infer(frame.rgb, f_px=result.focal_px).depth.numpy()
        np.testing.assert_allclose(depth[frame.index], at_clip_focal, rtol=1e-5)
        own = camera_model.infer(frame.rgb).depth.numpy()
        own_focal_differs = max(own_focal_differs, float(np.abs(own / at_clip_focal - 1).max()))
    assert own_focal_differs > 1e-4  # the rescaling did something
    assert not list(tmp_path.glob(".*.tmp"))  # the temporary depth store is gone


def test_user_focal_and_formats(clip_dir, camera_checkpoint, camera_model, tmp_path):
    out = tmp_path / "out"
    args = ("-c", camera_checkpoint, "-o", out, "--f-px", "70", "--formats", "npz,json")
    result = invoke("predict", clip_dir / "short.mp4", *args)
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == ["short.json", "short.npz"]
    sidecar = json.loads((out / "short.json").read_text())
    assert sidecar["focal_source"] == "user" and sidecar["focal_px"] == 70.0
    assert sidecar["files"] == ["short.npz", "short.json"] and sidecar["video"] is None
    first = next(iter_frames(clip_dir / "short.mp4"))
    np.testing.assert_allclose(
        np.load(out / "short.npz")["depth"][0],
        camera_model.infer(first.rgb, f_px=70.0).depth.numpy(),
        rtol=1e-5,
    )
    only_images = invoke(
        "predict", clip_dir / "short.mp4", "-c", camera_checkpoint, "-o", out, "--formats", "ply"
    )
    assert only_images.exit_code == 1 and "write nothing for a video" in only_images.output
    even = invoke(
        "predict", clip_dir / "short.mp4", "-c", camera_checkpoint, "-o", out, "--smooth-scale", "4"
    )
    assert even.exit_code == 2 and "--smooth-scale" in even.output


# -------------------------------------------------------------------------------------- smoothing
class BrightnessDepth:
    """A metric source without a camera (as RSA): depth 1–4 m, brighter frames nearer, varying over the
    image, so a flickering exposure makes the scale flicker."""

    def infer(self, image, f_px=None, focal="auto", **_):
        luminance = torch.from_numpy(image.rgb.astype(np.float32).mean(axis=2) / 255.0)
        depth = 4.0 - 3.0 * luminance.mean() + 0.5 * luminance
        return Prediction(depth=depth, inverse_depth=1.0 / depth)


def test_smoothing_steadies_the_scale(tmp_path, data_dir):
    gains = np.where(np.arange(15) % 3 == 1, 0.6, 1.0)  # every third frame under-exposed
    clip = make_clip(tmp_path / "flicker.mp4", data_dir / "leuvenA.jpg", frames=15, pan=False, gains=gains)
    off = predict_video(BrightnessDepth(), clip, tmp_path / "off" / "flicker")
    on = predict_video(BrightnessDepth(), clip, tmp_path / "on" / "flicker", smooth_scale=5)
    assert temporal_flicker(off.median_depth_m) > 0.05
    assert temporal_flicker(on.median_depth_m) < 0.25 * temporal_flicker(off.median_depth_m)
    np.testing.assert_allclose(on.median_depth_unsmoothed_m, off.median_depth_m, rtol=1e-6)
    expected = np.exp(smooth_log_scale(np.log(off.median_depth_m), 5))  # the stated method, exactly
    np.testing.assert_allclose(on.median_depth_m, expected, rtol=1e-5)
    sidecar = json.loads((tmp_path / "on" / "flicker.json").read_text())
    assert sidecar["scale_smoothing"]["window_frames"] == 5
    assert "moving median over 5 frames" in sidecar["scale_smoothing"]["method"]
    assert sidecar["focal_px"] is None and sidecar["focal_source"] is None and sidecar["K"] is None
    depth_off = np.load(tmp_path / "off" / "flicker.npz")["depth"]
    depth_on = np.load(tmp_path / "on" / "flicker.npz")["depth"]
    np.testing.assert_allclose(depth_on, depth_off * on.scale_factor[:, None, None], rtol=1e-5)


def test_smooth_log_scale_window():
    values = np.log([1.0, 1.0, 4.0, 1.0, 1.0, np.nan, 2.0])
    smoothed = smooth_log_scale(values, 3)
    np.testing.assert_allclose(
        np.exp(smoothed[:5]), [1.0, 1.0, 1.0, 1.0, 1.0]
    )  # the outlier is gone; the ends use the frames that exist
    assert np.isnan(smoothed[5]) and np.exp(smoothed[6]) == pytest.approx(2.0)  # NaN ignored, kept
    np.testing.assert_array_equal(smooth_log_scale(values, 0), values)
    with pytest.raises(ValueError, match="odd"):
        smooth_log_scale(values, 4)
    assert temporal_flicker([2.0, 2.0, 3.0]) == pytest.approx(0.25)


# ------------------------------------------------------------------------------ files and errors
def test_corrupt_video_fails_and_the_image_is_written(clip_dir, data_dir, camera_checkpoint, tmp_path):
    broken = tmp_path / "broken.mp4"
    broken.write_bytes((clip_dir / "short.mp4").read_bytes()[:3000])
    (tmp_path / "empty.mov").write_bytes(b"")
    (tmp_path / "text.webm").write_text("not a video")
    photo = shutil.copy(data_dir / "leuvenA.jpg", tmp_path / "photo.jpg")
    out = tmp_path / "out"
    videos = [broken, tmp_path / "empty.mov", tmp_path / "text.webm"]
    result = invoke("predict", *videos, photo, "-c", camera_checkpoint, "-o", out)
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    assert re.search(rf"{re.escape(str(broken))}: (not a readable video file|holds no video)", result.output)
    assert f"{tmp_path / 'empty.mov'}: file is empty" in result.output
    assert f"{tmp_path / 'text.webm'}: not a readable video file" in result.output
    assert "1 of 4 inputs written" in result.output and "3 failed" in result.output
    assert sorted(p.name for p in out.iterdir() if p.name.startswith("photo")) == [
        "photo.json",
        "photo.npz",
        "photo.ply",
        "photo_depth.png",
        "photo_inverse_depth.png",
    ]
    assert not [p for p in out.iterdir() if not p.name.startswith("photo")]
    with pytest.raises(VideoLoadError, match=r"broken\.mp4"):
        probe_video(broken)


def test_outputs_are_not_overwritten_and_skip_existing(clip_dir, camera_checkpoint, tmp_path):
    clip = shutil.copy(clip_dir / "short.mp4", tmp_path / "short.mp4")
    out = tmp_path / "out"
    out.mkdir()
    (out / "short.json").write_text('{"mine": true}\n')
    args = ("-c", camera_checkpoint, "-o", out)
    refused = invoke("predict", clip, *args)
    assert refused.exit_code == 1 and f"{out / 'short.json'} exists" in refused.output
    assert "--overwrite" in refused.output
    assert sorted(p.name for p in out.iterdir()) == ["short.json"]  # nothing else, before any model work
    assert json.loads((out / "short.json").read_text()) == {"mine": True}

    stale = out / ".short.npz.4194305.0123abcd.tmp"  # the depth store of a killed run (no such process)
    stale.write_bytes(b"\0" * 64)
    overwritten = invoke("predict", clip, *args, "--overwrite")
    assert overwritten.exit_code == 0 and f"removed {stale}" in overwritten.output
    assert json.loads((out / "short.json").read_text())["writer"] == "metricdepth"
    assert sorted(p.name for p in out.iterdir()) == ["short.json", "short.npz", "short_depth.mp4"]
    again = invoke("predict", clip, *args)  # its own outputs are replaced without --overwrite
    assert again.exit_code == 0, again.output
    stamp = (out / "short_depth.mp4").stat().st_mtime_ns
    skipped = invoke("predict", clip, *args, "--skip-existing")
    assert skipped.exit_code == 0 and "1 skipped" in skipped.output
    assert "loading" not in skipped.output  # nothing to do: no weights loaded
    assert (out / "short_depth.mp4").stat().st_mtime_ns == stamp
    # A video output is never taken as an input; another clip's video in the folder is.
    (tmp_path / "other.mov").write_bytes(clip.read_bytes())
    items, _ = collect_inputs([tmp_path], tmp_path / "again")
    assert sorted(item.path.name for item in items) == ["other.mov", "short.mp4"]


def test_exif_policy_and_metadata_focal(clip_dir, camera_checkpoint, camera_model, data_dir, tmp_path):
    no_focal = invoke(
        "predict", clip_dir / "short.mp4", "-c", camera_checkpoint, "-o", tmp_path, "--focal", "exif"
    )
    assert no_focal.exit_code == 1 and "no focal length in the video's metadata" in no_focal.output
    key = "com.apple.quicktime.camera.focal_length.35mm_equivalent"
    tagged = make_clip(tmp_path / "tagged.mov", data_dir / "leuvenA.jpg", frames=3, metadata={key: "26"})
    info = probe_video(tagged)
    assert info.focal_35mm == 26.0 and info.focal_px == pytest.approx(
        26.0 * math.hypot(*SIZE) / math.hypot(36, 24)
    )
    result = predict_video(camera_model, tagged, tmp_path / "out" / "tagged", formats=["json"], focal="exif")
    assert result.focal_source == "exif" and result.focal_px == pytest.approx(info.focal_px)
    sidecar = json.loads((tmp_path / "out" / "tagged.json").read_text())
    assert key in sidecar["focal_method"] and sidecar["focal_px"] == pytest.approx(info.focal_px)


def test_rotated_clip_comes_out_upright(data_dir, tmp_path):
    clip = make_clip(tmp_path / "turned.mp4", data_dir / "leuvenA.jpg", frames=3, rotation=90)
    info = probe_video(clip)
    assert (info.rotation_deg, info.turns, info.width, info.height) == (90, 1, SIZE[1], SIZE[0])
    frames, _ = read_video(clip)
    with av.open(str(clip)) as container:
        stored = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert frames.shape == (3, SIZE[0], SIZE[1], 3)
    for upright, raw in zip(frames, stored, strict=True):
        np.testing.assert_array_equal(upright, np.rot90(raw, k=1))


def test_workers_and_batches_give_the_same_depth(clip_dir, camera_model, tmp_path, monkeypatch):
    import metricdepth.runner

    workers = []
    run_pipeline = metricdepth.runner.run_pipeline

    def spy(*args, **kwargs):
        workers.append(kwargs["workers"])
        return run_pipeline(*args, **kwargs)

    monkeypatch.setattr(metricdepth.runner, "run_pipeline", spy)
    one = predict_video(camera_model, clip_dir / "short.mp4", tmp_path / "a" / "s", formats=["npz"])
    many = predict_video(
        camera_model, clip_dir / "short.mp4", tmp_path / "b" / "s", formats=["npz"], workers=2, batch_size=4
    )
    assert workers == [0, 1]  # a clip decodes forward in at most one worker, not once per worker
    assert one.focal_px == many.focal_px
    np.testing.assert_array_equal(
        np.load(tmp_path / "a" / "s.npz")["depth"], np.load(tmp_path / "b" / "s.npz")["depth"]
    )


def test_relative_source_is_refused(clip_dir, tmp_path):
    weights = Path(__file__).parents[1] / "examples" / "weights" / "tiny-relative.safetensors"
    result = invoke("predict", clip_dir / "short.mp4", "--relative", weights, "-o", tmp_path)
    assert result.exit_code == 1 and "relative depth" in result.output and "short.mp4" in result.output
    assert not list(tmp_path.iterdir())


# ------------------------------------------------------------------------- full disk, no PyAV, skip
def test_full_disk_fails_the_clip_and_the_image_is_written(
    clip_dir, data_dir, camera_checkpoint, tmp_path, monkeypatch
):
    """The depth store's space is reserved up front: a full disk is a named failure of the clip, not a
    SIGBUS writing through the memory map."""

    def full(fd, offset, length):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "posix_fallocate", full)
    clip = shutil.copy(clip_dir / "short.mp4", tmp_path / "short.mp4")
    photo = shutil.copy(data_dir / "leuvenA.jpg", tmp_path / "photo.jpg")
    out = tmp_path / "out"
    result = invoke("predict", clip, photo, "-c", camera_checkpoint, "-o", out)
    assert result.exit_code == 1 and "Traceback" not in result.output
    needed = 4 * 6 * SIZE[0] * SIZE[1]
    message = re.search(
        rf"{re.escape(str(clip))}: not enough disk space in .* needs ([\d,]+) bytes", result.output
    )
    assert message, result.output
    assert needed <= int(message[1].replace(",", "")) < needed + 4096  # the map and its .npy header
    assert "1 of 2 inputs written" in result.output and "1 failed" in result.output
    assert sorted(p.name for p in out.iterdir()) == [  # no clip output, no temporary
        "photo.json",
        "photo.npz",
        "photo.ply",
        "photo_depth.png",
        "photo_inverse_depth.png",
    ]


def test_disk_space_checked_without_fallocate(clip_dir, tmp_path, monkeypatch):
    def unsupported(fd, offset, length):
        raise OSError(errno.EOPNOTSUPP, os.strerror(errno.EOPNOTSUPP))

    monkeypatch.setattr(os, "posix_fallocate", unsupported)
    monkeypatch.setattr(
        shutil, "disk_usage", lambda path: SimpleNamespace(total=10**6, used=10**6, free=1000)
    )
    with pytest.raises(OSError, match=r"short\.mp4: not enough disk space .*, 1,000 bytes free") as failed:
        predict_video(BrightnessDepth(), clip_dir / "short.mp4", tmp_path / "short")
    assert failed.value.errno == errno.ENOSPC
    assert not list(tmp_path.iterdir())  # the temporary store is gone
    monkeypatch.undo()
    monkeypatch.delattr(os, "posix_fallocate")  # no fallocate at all: the real free space is enough
    result = predict_video(BrightnessDepth(), clip_dir / "short.mp4", tmp_path / "short", formats=["npz"])
    assert result.frames == 6 and sorted(p.name for p in tmp_path.iterdir()) == ["short.npz"]


def test_missing_pyav_is_named(clip_dir, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "av", None)  # import av: ImportError
    hint = r"short\.mp4: .*PyAV.*pip install 'metricdepth\[video\]'"
    with pytest.raises(VideoLoadError, match=hint):
        probe_video(clip_dir / "short.mp4")
    with pytest.raises(VideoLoadError, match=hint):
        FrameDecoder(clip_dir / "short.mp4").frame(0)
    with pytest.raises(VideoLoadError, match=r"d\.mp4: .*pip install 'metricdepth\[video\]'"):
        DepthVideoWriter(tmp_path / "d.mp4", 8, 8, 10)
    item = SimpleNamespace(path=clip_dir / "short.mp4", out_stem=tmp_path / "short", label="short.mp4")
    report = predict_clips(BrightnessDepth(), [item])
    ((label, message),) = report.failures
    assert label == "short.mp4" and "pip install 'metricdepth[video]'" in message
    assert "ModuleNotFoundError" not in message and not list(tmp_path.iterdir())


def test_clips_finished_without_clips_whatever_the_formats(tmp_path):
    for formats in (["ply"], ["depth16"], ["npz"], []):
        assert clips_finished([], formats) is True  # nothing to do: no weights need loading
    clip = SimpleNamespace(out_stem=tmp_path / "clip")
    assert clips_finished([clip], ["ply"]) is False  # a clip with only image formats: its failure is reported
    assert clips_finished([clip], ["npz"]) is False
