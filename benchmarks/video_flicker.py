"""Temporal flicker of clip predictions on a static camera, with the scale smoothing off and on.

    python benchmarks/video_flicker.py                                   # shipped tiny-relative weights
    python benchmarks/video_flicker.py -c apple/DepthPro --frames 60 --size 640x480
    python benchmarks/video_flicker.py --random-camera                   # random weights with a FOV head

Flicker = mean over t of |m_{t+1} − m_t| / m_t, where m_t is frame t's median metric depth (valid
pixels; ``metricdepth.video.temporal_flicker``). On a static camera the scene does not change, so
every change of m_t is the prediction's own instability: 0 is perfectly steady, 0.01 means the clip's
scale jumps by 1 % from frame to frame on average.

No real static-camera clip is available offline, so one is synthesised: a still photo (default
../shared/data/leuvenA.jpg, centre-cropped to the aspect of ``--size`` and resized) repeated
``--frames`` times, each frame with its own Gaussian sensor noise (``--noise`` grey levels, standard
deviation) and the whole clip compressed with H.264 (libx264, ``--crf``). The clip then goes through
``metricdepth.video.predict_video`` twice: ``--smooth-scale 0`` and ``--smooth-scale N``.

The focal length: the model's FOV head where it has one (the clip's focal is the median of the
per-frame predictions, whose spread is printed), else ``--f-px``, else the photo's EXIF 35 mm focal
length at the clip's size (leuvenA.jpg: 29 mm). The default weights, ``examples/weights/tiny-relative``
(a 0.9 M-parameter model trained briefly on synthetic scenes, no FOV head), give depth only up to
scale, so their absolute metres mean nothing; flicker is a ratio and is meaningful for them.
``--random-camera`` uses seeded random tiny weights with a damped FOV head biased to 60° and depth
near 3 m (as the tests' camera weights): its flicker and focal spread only show the method works.
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch
from _machine import device_name
from PIL import Image

from metricdepth import DepthPro, DepthProConfig
from metricdepth.io.images import load_image
from metricdepth.video import predict_video, temporal_flicker

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_PHOTO = next(
    (
        p
        for p in (ROOT.parent / "shared" / "data" / "leuvenA.jpg", ROOT / "tests" / "data" / "leuvenA.jpg")
        if p.is_file()
    ),
    ROOT / "tests" / "data" / "leuvenA.jpg",
)
DEFAULT_WEIGHTS = ROOT / "examples" / "weights" / "tiny-relative.safetensors"


def static_clip(
    path: Path, photo: Path, frames: int, size: tuple[int, int], fps: int, noise: float, crf: int
) -> None:
    """``frames`` copies of ``photo`` at ``size`` with independent Gaussian noise, H.264 in an MP4."""
    import av

    image = Image.fromarray(load_image(photo).rgb)  # upright
    width, height = size
    scale = max(width / image.width, height / image.height)
    resized = image.resize((math.ceil(image.width * scale), math.ceil(image.height * scale)), Image.LANCZOS)
    left, top = (resized.width - width) // 2, (resized.height - height) // 2
    still = np.asarray(resized.crop((left, top, left + width, top + height)), np.float64)
    rng = np.random.default_rng(0)
    with av.open(str(path), "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=Fraction(fps))
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"crf": str(crf)}
        for i in range(frames):
            noisy = np.clip(np.rint(still + rng.normal(0.0, noise, still.shape)), 0, 255).astype(np.uint8)
            frame = av.VideoFrame.from_ndarray(noisy, format="rgb24")
            frame.pts, frame.time_base = i, Fraction(1, fps)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def random_camera_model() -> DepthPro:
    """Tiny preset, seeded random weights; damped depth head (≈ 3 m) and FOV head (≈ 60°)."""
    torch.manual_seed(0)
    model = DepthPro(DepthProConfig.preset("tiny")).eval()
    with torch.no_grad():
        model.head[4].weight.mul_(0.1)
        model.head[4].bias.fill_(0.3)
        model.fov.head[4].weight.mul_(0.1)
        model.fov.head[4].bias.fill_(60.0)
    return model


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("-c", "--checkpoint", default=str(DEFAULT_WEIGHTS), help="weights (file or Hub id)")
    parser.add_argument("--random-camera", action="store_true", help="random tiny weights with a FOV head")
    parser.add_argument("--f-px", type=float, default=None, help="focal length, pixels (default: see above)")
    parser.add_argument("--photo", type=Path, default=DEFAULT_PHOTO)
    parser.add_argument("--frames", type=int, default=60)
    parser.add_argument("--size", default="320x240", help="WxH of the clip")
    parser.add_argument("--fps", type=int, default=30)
    parser.add_argument("--noise", type=float, default=3.0, help="sensor noise, grey levels (std)")
    parser.add_argument("--crf", type=int, default=23, help="H.264 quality of the synthetic clip")
    parser.add_argument("--smooth-scale", type=int, default=9, help="window of the smoothed run, frames")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch-size", type=int, default=1)
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.lower().split("x"))

    model = (
        random_camera_model().to(args.device)
        if args.random_camera
        else DepthPro.from_pretrained(args.checkpoint, device=args.device)
    )
    f_px, focal_note = args.f_px, "--f-px"
    if model.fov is not None and f_px is None:
        focal_note = "median of the per-frame FOV-head predictions"
    elif f_px is None:
        photo = load_image(args.photo)
        if photo.focal_px is None:
            parser.error("the model has no FOV head and the photo no EXIF focal length: give --f-px")
        f_px = photo.focal_px * max(width / photo.width, height / photo.height)  # the clip's resize
        focal_note = f"{args.photo.name}'s EXIF focal length at the clip's scale (no FOV head)"
    weights = "random tiny weights with a FOV head" if args.random_camera else args.checkpoint

    with tempfile.TemporaryDirectory() as tmp:
        clip = Path(tmp) / "static.mp4"
        static_clip(clip, args.photo, args.frames, (width, height), args.fps, args.noise, args.crf)
        runs = {}
        for window in (0, args.smooth_scale):
            start = time.perf_counter()
            result = predict_video(
                model,
                clip,
                Path(tmp) / f"smooth{window}" / "static",
                formats=["npz", "json"],
                f_px=f_px,
                smooth_scale=window,
                batch_size=args.batch_size,
                writers=1,
            )
            runs[window] = (result, time.perf_counter() - start)

    print(
        f"static clip: {args.photo.name}, {args.frames} frames {width}x{height} at {args.fps} fps, "
        f"Gaussian noise {args.noise:g} grey levels per frame, H.264 crf {args.crf}"
    )
    print(f"model: {weights} ({model.config.name}) on {device_name(model.device)}, {args.device}")
    result = runs[0][0]
    print(f"focal length: {result.focal_px:.2f} px ({result.focal_source}: {focal_note})")
    predicted = result.predicted_focal_px[np.isfinite(result.predicted_focal_px)]
    if predicted.size:
        spread = (predicted.max() - predicted.min()) / np.median(predicted)
        print(
            f"per-frame focal predictions: median {np.median(predicted):.3f} px, min {predicted.min():.3f}, "
            f"max {predicted.max():.3f}; (max - min) / median {spread:.3e}, "
            f"std / median {predicted.std() / np.median(predicted):.3e}"
        )
    for window, (run, seconds) in runs.items():
        m = run.median_depth_m
        steps = np.abs(np.diff(m)) / m[:-1]
        label = "off" if window == 0 else f"{window} frames"
        print(
            f"smoothing {label:>9}: flicker {temporal_flicker(m):.3e} (max step {steps.max():.3e}), "
            f"median depth {np.median(m):.4g} m (min {m.min():.4g}, max {m.max():.4g}), "
            f"{seconds:.1f} s ({seconds / run.frames:.3f} s/frame)"
        )


if __name__ == "__main__":
    main()
