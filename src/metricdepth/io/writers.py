"""Output files for a prediction, each written atomically (temp file in the same folder, then rename).

=============  ==============================================================================
format         file
=============  ==============================================================================
``npz``        ``NAME.npz``: depth (H, W) float32 m, focal_px, K (3, 3), fov_deg, predicted_fov_deg
``depth16``    ``NAME_depth.png``: uint16 depth in millimetres, 0 = invalid; scale in PNG text
``color``      ``NAME_inverse_depth.png``: inverse depth through the turbo colour map (near = warm)
``ply``        ``NAME.ply``: binary coloured point cloud, metres, OpenCV camera frame, no flying pixels
``json``       ``NAME.json``: intrinsics, focal source, FOVs, image size, files written
=============  ==============================================================================
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import secrets
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, PngImagePlugin

from ..camera import focal_to_fov
from ..geometry import depth_discontinuities, depth_to_points
from ..prediction import Prediction

__all__ = [
    "DEPTH_PNG_SCALE",
    "FORMATS",
    "OUTPUT_SUFFIXES",
    "atomic_path",
    "colorize_inverse_depth",
    "output_path",
    "read_depth_png",
    "save_prediction",
    "write_depth_png",
    "write_json",
    "write_npz",
    "write_ply",
]

OUTPUT_SUFFIXES = {
    "npz": ".npz",
    "depth16": "_depth.png",
    "color": "_inverse_depth.png",
    "ply": ".ply",
    "json": ".json",
}
"""File name suffix of each output format, appended to the output stem."""
FORMATS = tuple(OUTPUT_SUFFIXES)
DEPTH_PNG_SCALE = 0.001
"""Metres per unit of the 16-bit depth PNG (millimetres)."""
COLOR_DEPTH_RANGE = (0.1, 250.0)
"""Depths (m) the colour map is clipped to before min/max normalisation of inverse depth."""
SKY_DEPTH = 0.999e4
"""Depths at or beyond this sit at the network's 10 km ceiling and are treated as sky (no 3D point)."""


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it onto ``path``, else delete it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # A fresh name, not a pre-created file: the writer creates it with the usual umask permissions.
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def output_path(out_stem: str | os.PathLike, fmt: str) -> Path:
    """Where format ``fmt`` of the outputs named ``out_stem`` goes (``out/photo`` → ``out/photo.ply``)."""
    stem = Path(out_stem)
    return stem.with_name(stem.name + OUTPUT_SUFFIXES[fmt])


def write_npz(path: str | os.PathLike, prediction: Prediction) -> Path:
    """Compressed npz: ``depth`` (H, W) float32 metres, ``focal_px``, ``K``, ``fov_deg``, predicted FOV."""
    camera = camera_summary(prediction)
    predicted = camera["predicted_fov_deg"]
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez_compressed(
            f,
            depth=prediction.depth.float().cpu().numpy(),
            focal_px=np.float64(camera["focal_px"]),
            K=np.asarray(camera["K"], dtype=np.float64),
            fov_deg=np.float64(camera["fov_x_deg"]),
            predicted_fov_deg=np.float64(np.nan if predicted is None else predicted),
            focal_source=np.str_(camera["focal_source"]),
        )
    return Path(path)


def write_depth_png(path: str | os.PathLike, depth: np.ndarray, max_depth: float | None = None) -> Path:
    """16-bit PNG of depth in millimetres (rounded); 0 marks invalid or out-of-range pixels.

    Depths beyond 65.535 m, beyond ``max_depth``, or non-finite are written as 0. The PNG text
    chunks record ``depth_scale`` (metres per unit), ``depth_unit`` and ``invalid_value``.
    """
    depth = np.asarray(depth, dtype=np.float64)
    units = np.rint(depth / DEPTH_PNG_SCALE)
    valid = np.isfinite(depth) & (depth > 0) & (units <= np.iinfo(np.uint16).max)
    if max_depth is not None:
        valid &= depth <= max_depth
    encoded = np.where(valid, units, 0).astype(np.uint16)
    info = PngImagePlugin.PngInfo()
    info.add_text("depth_scale", repr(DEPTH_PNG_SCALE))
    info.add_text("depth_unit", "m")
    info.add_text("invalid_value", "0")
    info.add_text("description", "depth along the optical axis = value * depth_scale metres")
    with atomic_path(path) as tmp:
        Image.fromarray(encoded).save(tmp, format="PNG", pnginfo=info)
    return Path(path)


def read_depth_png(path: str | os.PathLike) -> np.ndarray:
    """Read a depth PNG written by :func:`write_depth_png`: (H, W) float32 metres, NaN where invalid."""
    with Image.open(path) as image:
        scale = float(image.text.get("depth_scale", DEPTH_PNG_SCALE))
        invalid = int(image.text.get("invalid_value", 0))
        raw = np.asarray(image).astype(np.int64)
    depth = (raw * scale).astype(np.float32)
    depth[raw == invalid] = np.nan
    return depth


def colorize_inverse_depth(
    inverse_depth: np.ndarray, depth_range: tuple[float, float] = COLOR_DEPTH_RANGE, cmap: str = "turbo"
) -> np.ndarray:
    """(H, W) inverse depth → (H, W, 3) uint8, near = warm, normalised over the image's own range."""
    from matplotlib import colormaps

    inverse = np.clip(
        np.nan_to_num(np.asarray(inverse_depth, dtype=np.float64)), 1 / depth_range[1], 1 / depth_range[0]
    )
    lo, hi = float(inverse.min()), float(inverse.max())
    normalised = (inverse - lo) / (hi - lo) if hi > lo else np.zeros_like(inverse)
    return (colormaps[cmap](normalised)[..., :3] * 255.0 + 0.5).astype(np.uint8)


def write_color_png(path: str | os.PathLike, inverse_depth: np.ndarray) -> Path:
    with atomic_path(path) as tmp:
        Image.fromarray(colorize_inverse_depth(inverse_depth)).save(tmp, format="PNG")
    return Path(path)


def write_ply(path: str | os.PathLike, points: np.ndarray, colors: np.ndarray) -> Path:
    """Binary little-endian PLY with float32 x, y, z and uint8 red, green, blue per vertex.

    Args:
        points: (N, 3) metres.
        colors: (N, 3) uint8 RGB.
    """
    from plyfile import PlyData, PlyElement

    vertices = np.empty(
        len(points),
        dtype=[("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("red", "u1"), ("green", "u1"), ("blue", "u1")],
    )
    for i, axis in enumerate("xyz"):
        vertices[axis] = points[:, i]
    for i, channel in enumerate(("red", "green", "blue")):
        vertices[channel] = colors[:, i]
    with atomic_path(path) as tmp:
        PlyData([PlyElement.describe(vertices, "vertex")], text=False, byte_order="<").write(str(tmp))
    return Path(path)


def point_cloud(
    prediction: Prediction, rgb: np.ndarray, max_depth: float | None = None, edge_rtol: float = 0.04
) -> tuple[np.ndarray, np.ndarray]:
    """Coloured 3D points of a prediction, without sky, far points and depth-discontinuity pixels.

    Returns:
        points (N, 3) float32 metres and colours (N, 3) uint8.
    """
    depth = prediction.depth.float()
    keep = (depth < SKY_DEPTH) & torch.isfinite(depth) & ~depth_discontinuities(depth, rtol=edge_rtol)
    if max_depth is not None:
        keep &= depth <= max_depth
    points = depth_to_points(depth, prediction.intrinsics.float())[keep]
    keep_np = keep.cpu().numpy()
    return points.cpu().numpy().astype(np.float32), np.asarray(rgb)[keep_np]


def write_json(path: str | os.PathLike, data: dict[str, Any]) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2) + "\n")
    return Path(path)


def camera_summary(prediction: Prediction) -> dict[str, Any]:
    """Intrinsics, focal source and fields of view of a single-image prediction, JSON-ready.

    Reads only the small camera fields: the depth maps stay where they are.
    """
    if prediction.batched:
        raise ValueError("camera_summary takes a single-image prediction; index the batch first")
    height, width = prediction.depth.shape
    K = prediction.intrinsics.double().cpu().numpy()
    predicted = prediction.predicted_fov_deg
    return {
        "width": width,
        "height": height,
        "K": K.tolist(),
        "fx": float(K[0, 0]),
        "fy": float(K[1, 1]),
        "cx": float(K[0, 2]),
        "cy": float(K[1, 2]),
        "focal_px": float(prediction.focal_px),
        "focal_source": prediction.focal_source,
        "fov_x_deg": float(prediction.fov_deg),
        "fov_y_deg": focal_to_fov(float(K[1, 1]), height),
        "predicted_fov_deg": None if predicted is None else float(predicted),
        "pixel_convention": "OpenCV: pixel centres at integer coordinates, x right, y down, z forward",
    }


def save_prediction(
    prediction: Prediction,
    rgb: np.ndarray,
    out_stem: str | os.PathLike,
    formats: Sequence[str] = FORMATS,
    max_depth: float | None = None,
    extra: dict[str, Any] | None = None,
) -> list[Path]:
    """Write the chosen ``formats`` for one prediction next to each other as ``out_stem`` + suffix.

    Args:
        prediction: single-image prediction.
        rgb: (H, W, 3) uint8 image the prediction belongs to (colours of the point cloud).
        out_stem: output path without extension, e.g. ``out/photo``.
        max_depth: metres; farther pixels are left out of the PNG and the PLY.
        extra: more fields for the JSON file (e.g. the input path and checkpoint).

    Returns:
        The paths written.
    """
    unknown = set(formats) - set(FORMATS)
    if unknown:
        raise ValueError(f"unknown output formats {sorted(unknown)}; choose from {', '.join(FORMATS)}")
    if max_depth is not None and not (math.isfinite(max_depth) and max_depth > 0):
        raise ValueError(f"max_depth must be a positive number of metres, got {max_depth}")
    stem = Path(out_stem)
    written: list[Path] = []
    try:
        _write_formats(prediction, rgb, stem, formats, max_depth, extra, written)
    except BaseException:
        for path in written:  # all of an image's outputs or none of them
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        raise
    return written


def _write_formats(
    prediction: Prediction,
    rgb: np.ndarray,
    stem: Path,
    formats: Sequence[str],
    max_depth: float | None,
    extra: dict[str, Any] | None,
    written: list[Path],
) -> None:
    """Write each format in turn, appending to ``written`` as files land."""
    depth = prediction.depth.float().cpu().numpy()
    if "npz" in formats:
        written.append(write_npz(output_path(stem, "npz"), prediction))
    if "depth16" in formats:
        written.append(write_depth_png(output_path(stem, "depth16"), depth, max_depth))
    if "color" in formats:
        inverse = prediction.inverse_depth.float().cpu().numpy()
        written.append(write_color_png(output_path(stem, "color"), inverse))
    if "ply" in formats:
        points, colors = point_cloud(prediction, rgb, max_depth=max_depth)
        written.append(write_ply(output_path(stem, "ply"), points, colors))
    if "json" in formats:
        json_path = output_path(stem, "json")
        summary = {**(extra or {}), **camera_summary(prediction)}
        summary["files"] = [p.name for p in [*written, json_path]]
        summary["depth_png_scale_m"] = DEPTH_PNG_SCALE if "depth16" in formats else None
        summary["max_depth_m"] = max_depth
        written.append(write_json(json_path, summary))
