"""Output files for a prediction. One image's files appear together or not at all (:class:`FileGroup`).

=============  ==============================================================================
format         file
=============  ==============================================================================
``npz``        ``NAME.npz``: depth (H, W) float32 m (or relative ``inverse_depth``), focal_px, K,
               fov_deg, predicted_fov_deg, focal_source, kind
``depth16``    ``NAME_depth.png``: uint16 depth in millimetres, 0 = invalid; scale in PNG text
``color``      ``NAME_inverse_depth.png``: inverse depth through the turbo colour map (near = warm)
``ply``        ``NAME.ply``: binary coloured point cloud, metres, OpenCV camera frame, no flying pixels
``json``       ``NAME.json``: intrinsics, focal source, FOVs, image size, files written
=============  ==============================================================================

Every file carries a mark of metricdepth (PNG ``Software`` text, npz ``writer`` entry, PLY comment,
JSON ``writer`` key): :func:`is_metricdepth_output` tells files metricdepth wrote from anyone else's,
so a re-run replaces its own outputs and never a user's file.

Full-resolution work runs in blocks of rows, so memory stays a few bytes per pixel beyond the
prediction itself, whatever the image size.
"""

from __future__ import annotations

import json
import math
import os
import zipfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, PngImagePlugin

from .atomic import FileGroup, atomic_path

__all__ = [
    "DEPTH_PNG_SCALE",
    "FORMATS",
    "OUTPUT_SUFFIXES",
    "WRITER_MARK",
    "camera_summary",
    "carries_mark",
    "colorize_inverse_depth",
    "is_legacy_prediction_image",
    "is_metricdepth_output",
    "is_prediction_output",
    "json_ready",
    "output_path",
    "png_metadata",
    "point_cloud",
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
WRITER_MARK = "metricdepth"
"""The mark every output file carries (see :func:`is_metricdepth_output`)."""
LEGACY_PNG_DESCRIPTION = "depth along the optical axis = value * depth_scale metres"
_LEGACY_PNG_KEYS = ("depth_scale", "depth_unit", "invalid_value", "description")
PREDICTION_FIELD = "kind"
"""Metadata every file of a prediction carries (``metric`` / ``relative``), and standalone writes lack."""
BLOCK_PIXELS = 1 << 20
"""Pixels per block of rows in full-resolution work (bounds temporary memory)."""


def _row_blocks(height: int, width: int) -> Iterator[slice]:
    rows = max(1, BLOCK_PIXELS // max(width, 1))
    for start in range(0, height, rows):
        yield slice(start, min(start + rows, height))


def output_path(out_stem: str | os.PathLike, fmt: str) -> Path:
    """Where format ``fmt`` of the outputs named ``out_stem`` goes (``out/photo`` → ``out/photo.ply``)."""
    stem = Path(out_stem)
    return stem.with_name(stem.name + OUTPUT_SUFFIXES[fmt])


def json_ready(value: Any) -> Any:
    """``value`` with NaN / ±inf floats as None and numpy scalars as Python ones (strict JSON)."""
    if isinstance(value, dict):
        return {str(k): json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_ready(v) for v in value]
    if isinstance(value, np.ndarray):
        return json_ready(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Path):
        return str(value)
    return value


def write_json(path: str | os.PathLike, data: dict[str, Any]) -> Path:
    """Strict JSON (NaN and inf become null), atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(json_ready(data), indent=2, allow_nan=False) + "\n")
    return Path(path)


def write_npz(path: str | os.PathLike, prediction: Any) -> Path:
    """Compressed npz of a single-image prediction.

    Keys: ``depth`` (H, W) float32 metres (metric) or ``inverse_depth`` (relative), ``kind``,
    ``focal_px``, ``K`` (3, 3), ``fov_deg``, ``predicted_fov_deg`` (NaN where unknown),
    ``focal_source`` ("" where unknown), ``writer``, and ``caption`` where the source used one (RSA).
    """
    camera = camera_summary(prediction)
    maps = (
        {"depth": _numpy(prediction.depth)}
        if prediction.is_metric
        else {"inverse_depth": _numpy(prediction.inverse_depth)}
    )

    def number(value: float | None) -> np.float64:
        return np.float64(np.nan if value is None else value)

    if camera["caption"] is not None:
        maps["caption"] = np.str_(camera["caption"])
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez_compressed(
            f,
            **maps,
            kind=np.str_(prediction.kind),
            focal_px=number(camera["focal_px"]),
            K=np.asarray(camera["K"] if camera["K"] is not None else np.full((3, 3), np.nan), np.float64),
            fov_deg=number(camera["fov_x_deg"]),
            predicted_fov_deg=number(camera["predicted_fov_deg"]),
            focal_source=np.str_(camera["focal_source"] or ""),
            writer=np.str_(WRITER_MARK),
        )
    return Path(path)


def png_metadata(metadata: dict[str, Any] | None = None) -> PngImagePlugin.PngInfo:
    """PNG text chunks: metricdepth's mark and ``metadata`` (None values left out)."""
    info = PngImagePlugin.PngInfo()
    info.add_text("Software", WRITER_MARK)
    for key, value in (metadata or {}).items():
        if value is not None:
            info.add_text(key, str(value))
    return info


def write_depth_png(
    path: str | os.PathLike,
    depth: np.ndarray,
    max_depth: float | None = None,
    metadata: dict[str, Any] | None = None,
) -> Path:
    """16-bit PNG of depth in millimetres (rounded); 0 marks invalid or out-of-range pixels.

    Depths beyond 65.535 m, beyond ``max_depth``, or non-finite are written as 0. The PNG text
    chunks record ``depth_scale`` (metres per unit), ``depth_unit`` and ``invalid_value``, plus
    ``metadata`` (e.g. the focal length, its source and the predicted FOV).
    """
    depth = np.asarray(depth)
    encoded = np.zeros(depth.shape, np.uint16)
    for rows in _row_blocks(*depth.shape):
        block = depth[rows].astype(np.float64)
        units = np.rint(block / DEPTH_PNG_SCALE)
        with np.errstate(invalid="ignore"):
            valid = np.isfinite(block) & (block > 0) & (units <= np.iinfo(np.uint16).max)
            if max_depth is not None:
                valid &= block <= max_depth
        encoded[rows][valid] = units[valid]
    info = png_metadata(
        {
            "depth_scale": repr(DEPTH_PNG_SCALE),
            "depth_unit": "m",
            "invalid_value": "0",
            "description": LEGACY_PNG_DESCRIPTION,
            **(metadata or {}),
        }
    )
    with atomic_path(path) as tmp:
        Image.fromarray(encoded).save(tmp, format="PNG", pnginfo=info)
    return Path(path)


def read_depth_png(path: str | os.PathLike) -> np.ndarray:
    """Read a depth PNG written by :func:`write_depth_png`: (H, W) float32 metres, NaN where invalid."""
    with Image.open(path) as image:
        scale = float(image.text.get("depth_scale", DEPTH_PNG_SCALE))
        invalid = int(image.text.get("invalid_value", 0))
        raw = np.asarray(image)
    depth = raw.astype(np.float32) * np.float32(scale)
    depth[raw == invalid] = np.nan
    return depth


def colorize_inverse_depth(
    inverse_depth: np.ndarray, depth_range: tuple[float, float] = COLOR_DEPTH_RANGE, cmap: str = "turbo"
) -> np.ndarray:
    """(H, W) inverse depth → (H, W, 3) uint8, near = warm, normalised over the image's own range.

    Same colours as ``matplotlib.colormaps[cmap](normalised)``, looked up block by block in the
    colour map's own table (no (H, W, 4) float64 image in between).
    """
    from matplotlib import colormaps

    colormap = colormaps[cmap]
    lut = (colormap(np.arange(colormap.N))[:, :3] * 255.0 + 0.5).astype(np.uint8)
    inverse = np.asarray(inverse_depth)
    lo_clip, hi_clip = 1 / depth_range[1], 1 / depth_range[0]

    def clipped(block: np.ndarray) -> np.ndarray:
        return np.clip(np.nan_to_num(block.astype(np.float64)), lo_clip, hi_clip)

    lo, hi = np.inf, -np.inf
    for rows in _row_blocks(*inverse.shape):
        block = clipped(inverse[rows])
        if block.size:
            lo, hi = min(lo, float(block.min())), max(hi, float(block.max()))
    out = np.empty((*inverse.shape, 3), np.uint8)
    for rows in _row_blocks(*inverse.shape):
        scaled = (clipped(inverse[rows]) - lo) / (hi - lo) if hi > lo else np.zeros(inverse[rows].shape)
        scaled *= colormap.N
        index = np.minimum(scaled.astype(np.int64), colormap.N - 1)
        out[rows] = lut[index]
    return out


def write_color_png(
    path: str | os.PathLike, inverse_depth: np.ndarray, metadata: dict[str, Any] | None = None
) -> Path:
    """Inverse depth through the turbo colour map (near = warm), with metricdepth's mark and ``metadata``."""
    with atomic_path(path) as tmp:
        Image.fromarray(colorize_inverse_depth(inverse_depth)).save(
            tmp, format="PNG", pnginfo=png_metadata(metadata)
        )
    return Path(path)


PLY_VERTEX = np.dtype(
    [("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("red", "u1"), ("green", "u1"), ("blue", "u1")]
)


def write_ply(
    path: str | os.PathLike,
    points: np.ndarray,
    colors: np.ndarray | None = None,
    metadata: dict[str, Any] | None = None,
) -> Path:
    """Binary little-endian PLY with float32 x, y, z and uint8 red, green, blue per vertex.

    Args:
        points: (N, 3) metres, or an (N,) array of :data:`PLY_VERTEX` records (then ``colors`` is None).
        colors: (N, 3) uint8 RGB.
        metadata: written as ``comment key=value`` header lines after metricdepth's mark.
    """
    from plyfile import PlyData, PlyElement

    if points.dtype == PLY_VERTEX:
        vertices = points
    else:
        vertices = np.empty(len(points), dtype=PLY_VERTEX)
        for i, axis in enumerate("xyz"):
            vertices[axis] = points[:, i]
        for i, channel in enumerate(("red", "green", "blue")):
            vertices[channel] = colors[:, i]  # type: ignore[index]
    comments = [WRITER_MARK] + [f"{k}={v}" for k, v in (metadata or {}).items() if v is not None]
    ply = PlyData([PlyElement.describe(vertices, "vertex")], text=False, byte_order="<", comments=comments)
    with atomic_path(path) as tmp:
        ply.write(str(tmp))
    return Path(path)


def point_cloud(
    prediction: Any, rgb: np.ndarray, max_depth: float | None = None, edge_rtol: float = 0.04
) -> np.ndarray:
    """Coloured 3D points of a metric prediction, without sky, far points and depth-discontinuity pixels.

    Works block by block: beyond the depth map, memory is the kept points (15 bytes each) plus one
    byte per pixel.

    Returns:
        (N,) :data:`PLY_VERTEX` records: float32 x, y, z metres (OpenCV camera frame), uint8 RGB.
    """
    import torch

    from ..geometry import depth_discontinuities

    depth = _numpy(prediction.depth)
    K = prediction.intrinsics.cpu().double().numpy()
    fx, fy, cx, cy, skew = K[0, 0], K[1, 1], K[0, 2], K[1, 2], K[0, 1]
    height, width = depth.shape
    keep = np.empty((height, width), bool)
    for rows in _row_blocks(height, width):
        top, bottom = max(rows.start - 1, 0), min(rows.stop + 1, height)  # one halo row each side
        with_halo = torch.from_numpy(np.ascontiguousarray(depth[top:bottom]))
        edges = depth_discontinuities(with_halo, rtol=edge_rtol).numpy()[rows.start - top :][
            : rows.stop - rows.start
        ]
        block = depth[rows]
        with np.errstate(invalid="ignore"):
            keep[rows] = (block < SKY_DEPTH) & np.isfinite(block) & ~edges
            if max_depth is not None:
                keep[rows] &= block <= max_depth
    vertices = np.empty(int(keep.sum()), dtype=PLY_VERTEX)
    filled = 0
    for rows in _row_blocks(height, width):
        index = np.flatnonzero(keep[rows])
        count = len(index)
        v = (index // width + rows.start).astype(np.float64)
        u = (index % width).astype(np.float64)
        z = depth[rows].reshape(-1)[index].astype(np.float64)
        out = vertices[filled : filled + count]
        out["x"] = (u - cx - skew * (v - cy) / fy) / fx * z
        out["y"] = (v - cy) / fy * z
        out["z"] = z
        colours = np.asarray(rgb)[rows].reshape(-1, 3)[index]
        out["red"], out["green"], out["blue"] = colours[:, 0], colours[:, 1], colours[:, 2]
        filled += count
    return vertices


def camera_summary(prediction: Any) -> dict[str, Any]:
    """Kind, intrinsics, focal source and fields of view of a single-image prediction, JSON-ready.

    Reads only the small camera fields: the depth maps stay where they are. Fields a source does
    not have (a relative model's camera) are None.
    """
    from ..camera import focal_to_fov

    if prediction.batched:
        raise ValueError("camera_summary takes a single-image prediction; index the batch first")
    height, width = prediction.image_size
    K = None if prediction.intrinsics is None else prediction.intrinsics.cpu().double().numpy()

    def scalar(value: Any) -> float | None:
        return None if value is None else float(value)

    return {
        "kind": prediction.kind,
        "width": width,
        "height": height,
        "K": None if K is None else K.tolist(),
        "fx": None if K is None else float(K[0, 0]),
        "fy": None if K is None else float(K[1, 1]),
        "cx": None if K is None else float(K[0, 2]),
        "cy": None if K is None else float(K[1, 2]),
        "focal_px": scalar(prediction.focal_px),
        "focal_source": prediction.focal_source,
        "fov_x_deg": scalar(prediction.fov_deg),
        "fov_y_deg": None if K is None else focal_to_fov(float(K[1, 1]), height),
        "predicted_fov_deg": scalar(prediction.predicted_fov_deg),
        "caption": getattr(prediction, "caption", None),
        "pixel_convention": "OpenCV: pixel centres at integer coordinates, x right, y down, z forward",
    }


def save_prediction(
    prediction: Any,
    rgb: np.ndarray,
    out_stem: str | os.PathLike,
    formats: Sequence[str] = FORMATS,
    max_depth: float | None = None,
    extra: dict[str, Any] | None = None,
) -> list[Path]:
    """Write the chosen ``formats`` for one prediction next to each other as ``out_stem`` + suffix.

    All files of the image appear together or none does, signals (SIGINT, SIGTERM) included.
    Relative predictions (no metric depth) get ``npz``, ``color`` and ``json`` only.

    Args:
        prediction: single-image :class:`~metricdepth.Prediction`.
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
    if not prediction.is_metric and {"depth16", "ply"} & set(formats):
        raise ValueError("a relative prediction has no metric depth: depth16 and ply need one")
    if "ply" in formats and prediction.intrinsics is None:
        raise ValueError(
            "a point cloud (ply) needs the camera's focal length, and this prediction has none "
            "(RSA has no camera model): give one (--f-px), or leave ply out of the formats"
        )
    stem = Path(out_stem)
    camera = camera_summary(prediction)
    provenance = {key: camera[key] for key in ("kind", "focal_px", "focal_source", "predicted_fov_deg")}
    with FileGroup() as group:
        if "npz" in formats:
            write_npz(group.stage(output_path(stem, "npz")), prediction)
        if "depth16" in formats:
            path = group.stage(output_path(stem, "depth16"))
            write_depth_png(path, _numpy(prediction.depth), max_depth, provenance)
        if "color" in formats:
            write_color_png(
                group.stage(output_path(stem, "color")), _numpy(prediction.inverse_depth), provenance
            )
        if "ply" in formats:
            vertices = point_cloud(prediction, rgb, max_depth=max_depth)
            write_ply(group.stage(output_path(stem, "ply")), vertices, metadata=provenance)
            del vertices
        if "json" in formats:
            json_path = output_path(stem, "json")
            summary = {"writer": WRITER_MARK, **(extra or {}), **camera_summary(prediction)}
            summary["files"] = [p.name for p in [*group.targets, json_path]]
            summary["depth_png_scale_m"] = DEPTH_PNG_SCALE if "depth16" in formats else None
            summary["max_depth_m"] = max_depth
            write_json(group.stage(json_path), summary)
        written = group.targets
    return written


def _numpy(tensor: Any) -> np.ndarray:
    """A float32 numpy view of a tensor (no copy for a CPU float32 tensor)."""
    return tensor.detach().float().cpu().numpy()


def is_metricdepth_output(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a file metricdepth wrote (it carries :data:`WRITER_MARK`).

    Reads headers only: PNG text chunks before the image data, the npz ``writer`` entry, the PLY
    header, the JSON's ``writer`` key. Outputs of versions before the mark are recognised through
    the JSON written with them, which lists its files. Unreadable or foreign files are not ours.
    """
    path = Path(path)
    if not path.is_file():
        return False
    return carries_mark(path) or _listed_by_legacy_json(path)


def is_prediction_output(path: str | os.PathLike) -> bool:
    """Whether ``path`` is one of a prediction's output files (:func:`save_prediction` or an older
    ``metricdepth predict`` that wrote its JSON), as opposed to a file the standalone writers wrote
    (e.g. ground truth a user encoded with :func:`write_depth_png`) or a generated sample. Readers of
    ground truth skip such files; ``predict`` replaces only these."""
    path = Path(path)
    if not path.is_file():
        return False
    return _listed_by_legacy_json(path) or carries_mark(path, field=PREDICTION_FIELD)


def is_legacy_prediction_image(path: str | os.PathLike) -> bool:
    """A depth PNG (or its colour map) that an older ``metricdepth predict`` wrote without its JSON:
    16-bit with exactly the old text chunks. Never taken as an input photo; not replaced without
    ``--overwrite`` either, since the old standalone writer made the same files."""
    path = Path(path)
    depth_png = path
    if path.name.endswith(OUTPUT_SUFFIXES["color"]):
        depth_png = path.with_name(path.name[: -len(OUTPUT_SUFFIXES["color"])] + OUTPUT_SUFFIXES["depth16"])
    if not depth_png.name.endswith(OUTPUT_SUFFIXES["depth16"]) or not depth_png.is_file():
        return False
    try:
        with Image.open(depth_png) as image:  # text chunks before the pixels are in .info: no decoding
            info = image.info if image.format == "PNG" and image.mode.startswith("I") else {}
    except Exception:  # unreadable: not recognised
        return False
    return (
        info.get("description") == LEGACY_PNG_DESCRIPTION
        and all(key in info for key in _LEGACY_PNG_KEYS)
        and "Software" not in info
    )


def carries_mark(path: str | os.PathLike, field: str | None = None) -> bool:
    """Whether ``path`` carries metricdepth's mark (and ``field`` among its metadata, if given):
    PNG text chunks, npz entries, PLY header comments or JSON keys. Reads headers only."""
    path = Path(path)
    suffix = path.suffix.lower()
    try:
        if suffix == ".png":
            with Image.open(path) as image:  # text chunks before the pixels are in .info, no decoding
                info = image.info if image.format == "PNG" else {}
                return info.get("Software") == WRITER_MARK and (field is None or field in info)
        if suffix == ".npz":
            with zipfile.ZipFile(path) as archive:
                if "writer.npy" not in archive.namelist():
                    return False
            with np.load(path, allow_pickle=False) as data:
                return str(data["writer"]) == WRITER_MARK and (field is None or field in data.files)
        if suffix == ".ply":
            with open(path, "rb") as f:
                header = f.read(512)
            marked = header.startswith(b"ply") and f"comment {WRITER_MARK}\n".encode() in header
            return marked and (field is None or f"comment {field}=".encode() in header)
        if suffix == ".json":
            data = _small_json(path)
            return (
                isinstance(data, dict)
                and data.get("writer") == WRITER_MARK
                and (field is None or field in data)
            )
    except Exception:  # unreadable, truncated, not what its suffix says: not ours
        return False
    return False


def _small_json(path: Path) -> Any:
    if path.stat().st_size > 1 << 20:
        return None
    return json.loads(path.read_text())


_LEGACY_CONVENTION = "OpenCV: pixel centres at integer coordinates"


def _listed_by_legacy_json(path: Path) -> bool:
    """An output of metricdepth 0.1 before marks: its ``NAME.json`` (a camera summary with the pixel
    convention) lists the file among the ``files`` it wrote."""
    for suffix in OUTPUT_SUFFIXES.values():  # a_inverse_depth.png: the colour map of a, or depth of a_inverse
        if not path.name.endswith(suffix):
            continue
        summary = path.with_name(path.name[: -len(suffix)] + ".json")
        try:
            data = _small_json(summary) if summary.is_file() else None
        except Exception:  # unreadable JSON: nothing recognised
            continue
        if (
            isinstance(data, dict)
            and str(data.get("pixel_convention", "")).startswith(_LEGACY_CONVENTION)
            and isinstance(data.get("files"), list)
            and summary.name in data["files"]
            and path.name in data["files"]
        ):
            return True
    return False
