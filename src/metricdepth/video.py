"""Metric depth of video clips: frames through the batch runner, one camera and one colour range per clip.

:func:`predict_video` decodes a clip with PyAV (:mod:`metricdepth.io.video`), runs its frames through
:func:`metricdepth.runner.run_pipeline` (``batch_size`` frames per forward pass, ``workers`` DataLoader
processes decoding and resizing, ``writers`` threads post-processing) and writes, per clip ``OUT/STEM``:

=============  ==================================================================================
format         file
=============  ==================================================================================
``color``      ``STEM_depth.mp4``: inverse depth through the turbo colour map (near = warm), H.264
               yuv420p, the input's frame rate and timestamps, **one** colour range for the clip
``npz``        ``STEM.npz``: ``depth`` (T, H, W) float32 metres, ``timestamps_s`` (T,), ``fps``,
               ``focal_px``, ``K``, ``focal_source``, ``predicted_focal_px`` (T,),
               ``predicted_fov_deg`` (T,), ``median_depth_m`` (T,), ``scale_factor`` (T,), the colour
               range (``color_near_m``, ``color_far_m``), ``kind``, ``media`` (``video``), ``writer``
``json``       ``STEM.json``: the sidecar: input, frames, fps, size, focal and its source, per-frame
               predicted focal lengths, the colour range and how it was chosen, the smoothing, the
               per-frame median depth, files written
=============  ==================================================================================

(the names of ``--formats``: ``color`` is the depth video; ``depth16`` and ``ply`` are per-image
formats that a clip does not write). All files of a clip appear together or none does.

**Focal length, held constant over the clip**: the user's ``f_px``, else a focal length in the
container's metadata (:data:`~metricdepth.io.video.FOCAL_METADATA_KEYS`, source ``exif``), else the
median of the per-frame FOV-head predictions (source ``predicted``). Depth Pro's metric depth is
proportional to the focal length (inverse depth = canonical · W / f_px), so frames run with their own
predicted focal length and each frame's depth is multiplied by ``focal_px / f_frame`` afterwards:
the same depth as a forward pass at ``focal_px`` (pixels at the 10 km sky ceiling stay there). Sources
without a camera (RSA) give metric depth directly; their ``focal_px`` is None. Relative-only sources
are refused: their per-frame scale and shift are unknown, so no range fits the whole clip.

**Temporal smoothing of the metric scale** (``smooth_scale`` = N frames, odd, 0 = off): each frame's
scale is the median of its depth over valid pixels (finite, positive, below the sky ceiling), taken
in log; the log scales are smoothed by a centred moving median over N frames (cut to the frames that
exist at the clip's ends), and each frame's depth is multiplied by exp(smoothed − raw), so its median
follows the moving median. A median ignores single-frame jumps that a mean would spread.

**Colour range, one for the clip**: inverse depth is clipped to 0.1–250 m, and its 2nd and 98th
percentiles over every pixel of every frame (sky left out) give the far and near ends of the colour
map (from a 4096-bin histogram of log inverse depth: exact to 0.2 %). Every frame is coloured with
that range, so a colour means the same depth in every frame.

**Memory**: per-frame depth waits for the clip's focal length and scale in a temporary float32 memmap
beside the outputs (T·H·W·4 bytes on disk, removed afterwards; one a killed run left is removed the
next time the same outputs are written); in memory: a few frames. The memmap's disk space is reserved
before any model work (``posix_fallocate``; where that is missing, the free space is checked): a full
disk fails the clip with a message naming it and the bytes needed, rather than a write through the map
killing the process (SIGBUS).

**Decoding**: a clip uses at most **one** DataLoader worker, whatever ``workers`` says: H.264 decodes
forward, so every worker would decode the whole clip to reach its own frames (N workers: N decodes,
each with its own decoder threads). One worker decodes the clip once, forward, converting and resizing
frames while the model runs; ``workers=0`` decodes in the calling process. The depth is the same either
way. Frames are decoded one at a time; the probe decodes the clip once more without converting pixels.
"""

from __future__ import annotations

import contextlib
import errno
import math
import os
import shutil
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from .io.atomic import FileGroup, remove_stale_temporaries, temporary_name
from .io.guard import OutputGuard
from .io.images import LoadedImage
from .io.video import DepthVideoWriter, FrameDecoder, VideoInfo, is_depth_video, is_video_path, probe_video
from .io.writers import (
    COLOR_DEPTH_RANGE,
    SKY_DEPTH,
    WRITER_MARK,
    carries_mark,
    is_prediction_output,
    write_json,
)

__all__ = [
    "CLIP_FORMATS",
    "CLIP_SUFFIXES",
    "COLOR_PERCENTILES",
    "FrameItem",
    "VideoResult",
    "clip_formats",
    "clip_outputs",
    "clips_finished",
    "colorize_fixed_range",
    "is_clip_item",
    "predict_clips",
    "predict_video",
    "smooth_log_scale",
    "temporal_flicker",
]

CLIP_SUFFIXES = {"npz": ".npz", "color": "_depth.mp4", "json": ".json"}
"""File name suffix of each output of a clip, appended to its output stem."""
CLIP_FORMATS = tuple(CLIP_SUFFIXES)
COLOR_PERCENTILES = (2.0, 98.0)
"""Percentiles of the clip's inverse depth that set the far and near ends of the colour map."""
COLORMAP = "turbo"
FOCAL_METADATA_HINT = "e.g. com.apple.quicktime.camera.focal_length.35mm_equivalent"
PIXEL_CONVENTION = "OpenCV: pixel centres at integer coordinates, x right, y down, z forward"
_HISTOGRAM_BINS = 4096
_MIN_DEPTH, _MAX_DEPTH = 1e-4, 1e4
"""The depth range the network's output is clamped to (1 / inference's inverse-depth clamp), metres."""
_CLIP_WORKERS = 1
"""DataLoader workers a clip uses at most (each would decode the whole clip forward)."""
_DISK_FULL = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC), errno.EFBIG}


# ----------------------------------------------------------------------------------------- items
@dataclass(frozen=True)
class FrameItem:
    """Frame ``index`` of a clip as a runner item (``label``, ``load()``); picklable for DataLoader workers.

    ``load`` decodes through a per-process :class:`~metricdepth.io.video.FrameDecoder`, forward from the
    last frame it gave, so a worker reading increasing frames decodes the clip once.
    """

    path: Path
    index: int
    out_stem: Path
    turns: int
    size: tuple[int, int]
    """(H, W) of the upright frames."""
    focal_px: float | None = None
    """The clip's focal length from its metadata (the frame's "EXIF" focal), pixels."""

    @property
    def label(self) -> str:
        return f"{self.path} frame {self.index}"

    def load(self) -> tuple[LoadedImage, dict[str, Any]]:
        rgb = _decoder(self.path, self.turns).frame(self.index)
        if rgb.shape[:2] != self.size:
            raise ValueError(
                f"{self.path}: frame {self.index} is {rgb.shape[1]}×{rgb.shape[0]}, the clip started at "
                f"{self.size[1]}×{self.size[0]} (size changes within a clip are not supported)"
            )
        return LoadedImage(rgb=rgb, focal_px=self.focal_px), {"input": str(self.path), "frame": self.index}


_DECODER: list[FrameDecoder] = []
"""This process's open decoder (one clip at a time)."""


def _decoder(path: Path, turns: int) -> FrameDecoder:
    if _DECODER and (_DECODER[0].path != path or _DECODER[0].turns != turns):
        _close_decoder()
    if not _DECODER:
        _DECODER.append(FrameDecoder(path, turns))
    return _DECODER[0]


def _close_decoder() -> None:
    while _DECODER:
        _DECODER.pop().close()


# ---------------------------------------------------------------------------------- small helpers
def clip_formats(formats: Sequence[str]) -> list[str]:
    """The outputs a clip writes among ``formats`` (``npz``, ``color`` = the depth video, ``json``).

    Raises:
        ValueError: none of them was asked for.
    """
    chosen = [fmt for fmt in CLIP_FORMATS if fmt in formats]
    if not chosen:
        raise ValueError(
            f"the formats {', '.join(formats)} write nothing for a video: a clip writes npz, "
            "color (the depth video) and json"
        )
    return chosen


def clip_outputs(out_stem: str | os.PathLike, formats: Sequence[str] = CLIP_FORMATS) -> list[Path]:
    """The files :func:`predict_video` writes for ``out_stem`` (``formats`` among :data:`CLIP_FORMATS`)."""
    stem = Path(out_stem)
    return [stem.with_name(stem.name + CLIP_SUFFIXES[fmt]) for fmt in CLIP_FORMATS if fmt in formats]


def _is_clip_output(path: Path) -> bool:
    """A file of a clip's outputs that metricdepth wrote (not an image prediction of the same name)."""
    if path.suffix.lower() == ".mp4":
        return is_depth_video(path)
    return carries_mark(path, field="media")


def clips_finished(items: Sequence[Any], formats: Sequence[str]) -> bool:
    """Whether every clip (items with ``out_stem``) has all requested outputs a clip run wrote; True
    without clips, whatever ``formats`` says (nothing to do)."""
    if not items:
        return True
    try:
        chosen = clip_formats(formats)
    except ValueError:
        return False
    return all(all(map(_is_clip_output, clip_outputs(item.out_stem, chosen))) for item in items)


def _replaceable(path: Path) -> bool:
    return is_prediction_output(path) or is_depth_video(path)


def smooth_log_scale(log_scale: np.ndarray, window: int) -> np.ndarray:
    """Centred moving median of per-frame log scales.

    Args:
        log_scale: (T,) log of each frame's median depth (log metres); NaN for frames without valid
            pixels (ignored by the windows, and left NaN).
        window: frames in the window, odd; the window is cut to the frames that exist at the clip's
            ends. 0 or 1: no smoothing.

    Returns:
        (T,) float64 smoothed log scales.
    """
    values = np.asarray(log_scale, np.float64)
    if window <= 1 or values.size == 0:
        return values.copy()
    if window % 2 == 0:
        raise ValueError(f"the smoothing window must be an odd number of frames, got {window}")
    half = window // 2
    padded = np.pad(values, half, constant_values=np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN windows stay NaN
        smoothed = np.nanmedian(np.lib.stride_tricks.sliding_window_view(padded, window), axis=1)
    smoothed[~np.isfinite(values)] = np.nan
    return smoothed


def temporal_flicker(median_depth: Sequence[float] | np.ndarray) -> float:
    """Mean over t of |m_{t+1} − m_t| / m_t of per-frame median depths m (dimensionless; NaN pairs
    left out). On a static camera every change is flicker. NaN for fewer than two frames."""
    m = np.asarray(median_depth, np.float64)
    if m.size < 2:
        return math.nan
    change = np.abs(np.diff(m)) / m[:-1]
    change = change[np.isfinite(change)]
    return float(change.mean()) if change.size else math.nan


def colorize_fixed_range(
    inverse_depth: np.ndarray, near_m: float, far_m: float, cmap: str = COLORMAP
) -> np.ndarray:
    """(H, W) inverse depth (1/m) → (H, W, 3) uint8 through ``cmap`` over a fixed depth range.

    Colour = cmap((clip(1/d, 1/far, 1/near) − 1/far) / (1/near − 1/far)): ``near_m`` gets the warm end,
    ``far_m`` and beyond (and NaN) the cold end, whatever the frame holds. The colour map's own
    table is used (the same colours as :func:`metricdepth.io.writers.colorize_inverse_depth`).
    """
    from matplotlib import colormaps

    if not (0 < near_m < far_m):
        raise ValueError(f"the colour range needs 0 < near < far metres, got {near_m}, {far_m}")
    colormap = colormaps[cmap]
    lut = (colormap(np.arange(colormap.N))[:, :3] * 255.0 + 0.5).astype(np.uint8)
    lo, hi = 1.0 / far_m, 1.0 / near_m
    scaled = np.clip(np.nan_to_num(np.asarray(inverse_depth, np.float64), nan=lo), lo, hi)
    scaled = (scaled - lo) / (hi - lo) * colormap.N
    return lut[np.minimum(scaled.astype(np.int64), colormap.N - 1)]


def _valid(depth: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore"):
        return np.isfinite(depth) & (depth > 0) & (depth < SKY_DEPTH)


def _median_depth(depth: np.ndarray) -> float:
    values = depth[_valid(depth)]
    return float(np.median(values)) if values.size else math.nan


class _InverseDepthHistogram:
    """Histogram of log inverse depth over 0.1–250 m, for percentiles over a whole clip in bounded memory."""

    def __init__(self, bins: int = _HISTOGRAM_BINS) -> None:
        near, far = COLOR_DEPTH_RANGE
        self.edges = np.linspace(math.log(1 / far), math.log(1 / near), bins + 1)
        self.counts = np.zeros(bins, np.int64)

    def add(self, depth: np.ndarray) -> None:
        values = depth[_valid(depth)].astype(np.float64)
        if values.size:
            logs = np.clip(-np.log(values), self.edges[0], self.edges[-1])
            self.counts += np.histogram(logs, self.edges)[0]

    def percentiles(self, qs: Sequence[float]) -> list[float] | None:
        """Inverse depths (1/m) at percentiles ``qs`` (linear inside a bin), or None if empty."""
        total = int(self.counts.sum())
        if total == 0:
            return None
        cumulative = np.concatenate([[0], np.cumsum(self.counts)]) / total
        return [float(np.exp(np.interp(q / 100.0, cumulative, self.edges))) for q in qs]


def _color_range(histogram: _InverseDepthHistogram) -> tuple[float, float]:
    """(near, far) metres of the colour map: the clip's percentiles, or 0.1–250 m for a clip without
    valid depth; a clip of one depth gets ±5 % around it."""
    values = histogram.percentiles(COLOR_PERCENTILES)
    if values is None:
        return COLOR_DEPTH_RANGE
    low, high = values
    if not high > low * (1 + 1e-6):
        low, high = low / 1.05, high * 1.05
    return 1.0 / high, 1.0 / low


# --------------------------------------------------------------------------------------- results
@dataclass
class VideoResult:
    """What :func:`predict_video` wrote and found.

    Attributes:
        input: the clip.
        paths: the files written.
        frames: number of frames T.
        fps: frame rate.
        size: (H, W) of the upright frames, pixels.
        focal_px: the focal length of every frame, pixels (None for sources without a camera).
        focal_source: ``user``, ``exif`` (container metadata) or ``predicted`` (median of the frames').
        predicted_focal_px: (T,) the FOV head's focal length per frame, pixels (NaN without FOV head).
        predicted_fov_deg: (T,) the FOV head's field of view per frame, degrees.
        color_range_m: (near, far) metres of the colour map, the same for every frame.
        median_depth_m: (T,) median depth of each frame as written (valid pixels), metres.
        median_depth_unsmoothed_m: (T,) the same before the temporal smoothing.
        scale_factor: (T,) the smoothing's factor per frame (1 without smoothing).
        smooth_scale: the smoothing window, frames (0: off).
        cleaned: temporaries of killed runs that were removed.
    """

    input: Path
    paths: list[Path]
    frames: int
    fps: float
    size: tuple[int, int]
    focal_px: float | None
    focal_source: str | None
    predicted_focal_px: np.ndarray
    predicted_fov_deg: np.ndarray
    color_range_m: tuple[float, float]
    median_depth_m: np.ndarray
    median_depth_unsmoothed_m: np.ndarray
    scale_factor: np.ndarray
    smooth_scale: int = 0
    cleaned: list[Path] = field(default_factory=list)


class _DiskFullError(OSError):
    """No room for a clip's temporary depth store (``errno`` ENOSPC); the message names the clip."""

    def __str__(self) -> str:
        return str(self.strerror)


def _size_text(nbytes: int) -> str:
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if nbytes >= scale:
            return f"{nbytes:,} bytes ({nbytes / scale:.1f} {unit})"
    return f"{nbytes:,} bytes"


def _depth_store(path: Path, label: str, shape: tuple[int, int, int]) -> np.memmap:
    """A new (T, H, W) float32 ``.npy`` memmap at ``path`` with every block of its file allocated, so
    that writing through the map cannot meet a full disk (SIGBUS, which kills the process silently).

    ``os.posix_fallocate`` where it exists and the file system supports it, else a check of the free
    space (not a reservation: others may still fill the disk). The caller removes ``path``.

    Raises:
        OSError (``errno.ENOSPC``): not enough space; the message names the clip, the folder and the
            bytes needed.
    """
    frames, height, width = shape
    needed = 4 * frames * height * width
    free: int | None = None
    depth: np.memmap | None = None
    try:
        depth = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=shape)
        needed = os.stat(path).st_size
        fallocate = getattr(os, "posix_fallocate", None)
        if fallocate is not None:
            fd = os.open(path, os.O_RDWR)
            try:
                fallocate(fd, 0, needed)
                return depth
            except OSError as err:
                if err.errno not in (errno.EINVAL, errno.EOPNOTSUPP, errno.ENOSYS, errno.ENOTSUP):
                    raise  # a full disk included
            finally:
                os.close(fd)
        free = shutil.disk_usage(path.parent).free  # the file is sparse: it does not count yet
        if free < needed:
            raise OSError(errno.ENOSPC, "not enough free space")
        return depth
    except OSError as err:
        depth = None  # the map is closed before the caller removes its file
        if err.errno not in _DISK_FULL:
            raise
        have = "" if free is None else f", {_size_text(free)} free"
        raise _DiskFullError(
            errno.ENOSPC,
            f"{label}: not enough disk space in {path.parent} for the clip's temporary depth store: it "
            f"needs {_size_text(needed)} ({frames} frames × {width}×{height} × 4 bytes){have}; nothing "
            "was written for this clip",
        ) from err


class _ClipFailed(Exception):
    """A frame failed: the clip stops (run_pipeline's ``done`` raises it to end the run early)."""

    def __init__(self, error: Exception) -> None:
        super().__init__(str(error))
        self.error = error


def _has_fov_head(model: Any) -> bool:
    return getattr(getattr(model, "_orig_mod", model), "fov", True) is not None


def _smoothing_method(window: int) -> str:
    if window <= 1:
        return "off"
    return (
        f"centred moving median over {window} frames (cut at the clip's ends) of log(median depth over "
        "valid pixels) per frame; each frame's depth multiplied by exp(smoothed - raw)"
    )


# ------------------------------------------------------------------------------------- the clip
def predict_video(
    model: Any,
    path: str | os.PathLike,
    out_stem: str | os.PathLike,
    *,
    formats: Sequence[str] = CLIP_FORMATS,
    f_px: float | None = None,
    focal: str = "auto",
    smooth_scale: int = 0,
    batch_size: int = 1,
    workers: int = 0,
    writers: int = 2,
    pad_batches: bool = False,
    infer_options: Callable[[Any, dict[str, Any]], dict[str, Any]] | None = None,
    extra: dict[str, Any] | None = None,
    overwrite: bool = False,
    guard: OutputGuard | None = None,
    on_frame: Callable[[int, int], None] | None = None,
) -> VideoResult:
    """Metric depth of every frame of a clip, with one focal length and one colour range for the clip.

    Before any model work: the clip is probed (a corrupt file fails here), the focal policy is checked,
    and the outputs are checked (never an input; a file metricdepth did not write only with
    ``overwrite``). See the module docstring for the outputs, the focal length, the smoothing and the
    colour range.

    Args:
        model: a :class:`~metricdepth.inference.DepthSource` (e.g. :class:`DepthPro`, an RSA pipeline).
        path: the video file.
        out_stem: output path without suffix, e.g. ``out/clip``.
        formats: among ``npz``, ``color`` (the depth video), ``json``; others are ignored.
        f_px: focal length of every frame, pixels (source ``user``).
        focal: ``auto`` (``f_px``, the container's focal length, the median prediction), ``exif``
            (the container's only: a clip without one fails) or ``predicted``.
        smooth_scale: frames in the centred window of the scale smoothing (odd; 0: off).
        batch_size, writers, pad_batches, infer_options: as :func:`metricdepth.batch.predict_files`
            (frames are the images).
        workers: 0 decodes frames in this process; any more means **one** DataLoader worker, decoding
            the clip forward once while the model runs (more workers would each decode the whole
            clip). The depth is the same.
        extra: more fields for the sidecar JSON (checkpoint, model).
        guard: the run's :class:`OutputGuard` (default: one protecting ``path``).
        on_frame: called as ``(frames done, frames in the clip)`` after each frame.

    Raises:
        VideoLoadError: the clip cannot be read. ValueError: the focal policy cannot be met, the source
        gives relative depth, a frame's prediction is not finite. OutputExistsError: an output may
        not be replaced. OSError (``errno.ENOSPC``): no disk space for the temporary depth store
        (checked before any model work). Messages name the clip.
    """
    from .batch import check_finite
    from .inference import FOCAL_POLICIES, focal_from_predicted_fov
    from .runner import is_canonical_network, run_pipeline

    path, stem = Path(path), Path(out_stem)
    label = str(path)
    chosen = clip_formats(formats)
    if focal not in FOCAL_POLICIES:
        raise ValueError(f"unknown focal policy {focal!r}; choose from {', '.join(FOCAL_POLICIES)}")
    if smooth_scale < 0 or (smooth_scale > 1 and smooth_scale % 2 == 0):
        raise ValueError(f"smooth_scale must be 0 (off) or an odd number of frames, got {smooth_scale}")
    if f_px is not None and not (math.isfinite(f_px) and f_px > 0):
        raise ValueError(f"f_px must be positive and finite, got {f_px}")
    if f_px is not None and focal != "auto":
        raise ValueError(f"f_px cannot be combined with focal={focal!r}")
    targets = clip_outputs(stem, chosen)
    guard = guard if guard is not None else OutputGuard([path], overwrite, replaceable=_replaceable)
    guard.check(targets, label)
    cleaned = remove_stale_temporaries(targets)

    info = probe_video(path)
    canonical = is_canonical_network(model) and infer_options is None
    if f_px is not None:
        source: str | None = "user"
    elif focal in ("auto", "exif") and info.focal_px is not None:
        source = "exif"
    elif focal == "exif":
        raise ValueError(
            f"{label}: no focal length in the video's metadata ({FOCAL_METADATA_HINT}); use focal 'auto' "
            "or 'predicted', or give one (--f-px)"
        )
    elif canonical and not _has_fov_head(model):
        raise ValueError(f"{label}: this model has no FOV head: give the focal length (--f-px)")
    else:
        source = "predicted" if canonical else None  # other sources: whatever their predictions say

    count, (height, width) = info.frame_count, (info.height, info.width)
    records = _FrameRecords(count)
    store = temporary_name(targets[0])
    store.parent.mkdir(parents=True, exist_ok=True)
    depth: Any = None
    try:
        depth = _depth_store(store, label, (count, height, width))  # disk space reserved: no SIGBUS
        items = [
            FrameItem(path, i, stem, info.turns, (height, width), info.focal_px if source == "exif" else None)
            for i in range(count)
        ]

        def claim(item: FrameItem, record: dict[str, Any] | None) -> Path:
            return stem

        def save(item: FrameItem, prediction: Any, rgb: Any, _stem: Path, record: dict[str, Any]) -> list:
            if not prediction.is_metric:
                raise ValueError(
                    f"{label}: this source predicts relative depth (no metres, unknown scale and shift per "
                    "frame), so no depth or colour range fits the whole clip; use a metric source "
                    "(Depth Pro, or --rsa with --relative)"
                )
            check_finite(prediction, item.label)
            frame = prediction.depth.detach().float().cpu().numpy()
            if frame.shape != (height, width):
                raise ValueError(f"{item.label}: depth is {frame.shape}, expected {(height, width)}")
            depth[item.index] = frame
            records.add(item.index, prediction, frame)
            return []

        def done(item: FrameItem, result: Any) -> None:
            if isinstance(result, Exception):
                raise _ClipFailed(result)
            records.finished += 1
            if on_frame is not None:
                on_frame(records.finished, count)

        try:
            run_pipeline(
                model,
                items,
                claim=claim,
                save=save,
                done=done,
                f_px=f_px,
                focal=focal,
                infer_options=infer_options,
                batch_size=batch_size,
                workers=min(workers, _CLIP_WORKERS),  # each would decode the clip
                writers=writers,
                pad_batches=pad_batches,
            )
        except _ClipFailed as failed:
            raise failed.error from None
        finally:
            _close_decoder()

        # One focal length for the clip; depth ∝ focal length, so frames at their own are rescaled.
        predicted_focal = np.array(
            [focal_from_predicted_fov(v, width) if math.isfinite(v) else math.nan for v in records.fov]
        )
        ratio = np.ones(count)
        focal_px: float | None = None
        used = records.focal
        if source == "user":
            focal_px = float(f_px)  # type: ignore[arg-type]
        elif source == "exif":
            focal_px = float(info.focal_px)  # type: ignore[arg-type]
        elif np.isfinite(used).all() and all(s == "predicted" for s in records.sources):
            source, focal_px = "predicted", float(np.median(used))
            ratio = focal_px / used
        elif np.isfinite(used).all() and len(set(used.tolist())) == 1:  # another source's one camera
            source, focal_px = records.sources[0], float(used[0])
        else:  # no camera (RSA without --f-px)
            source = None
        # The scale: per-frame median depth after the focal rescale, smoothed over time.
        unsmoothed = records.medians * ratio
        with np.errstate(divide="ignore", invalid="ignore"):
            log_scale = np.log(unsmoothed)
        smoothing = np.where(
            np.isfinite(log_scale), np.exp(smooth_log_scale(log_scale, smooth_scale) - log_scale), 1.0
        )
        medians, histogram = _rescale(depth, ratio * smoothing)
        result = VideoResult(
            input=path,
            paths=[],
            frames=count,
            fps=float(info.fps),
            size=(height, width),
            focal_px=focal_px,
            focal_source=source,
            predicted_focal_px=predicted_focal,
            predicted_fov_deg=records.fov,
            color_range_m=_color_range(histogram),
            median_depth_m=medians,
            median_depth_unsmoothed_m=unsmoothed,
            scale_factor=smoothing,
            smooth_scale=smooth_scale,
            cleaned=cleaned,
        )
        with FileGroup() as group:
            staged = {fmt: group.stage(target) for fmt, target in zip(chosen, targets, strict=True)}
            if "npz" in staged:
                _write_clip_npz(staged["npz"], depth, result, info)
            video = _write_depth_video(staged["color"], depth, result, info) if "color" in staged else None
            if "json" in staged:
                summary = _clip_summary(result, info, extra, video)
                if any(caption is not None for caption in records.captions):
                    summary["captions"] = records.captions  # per frame (RSA)
                summary["files"] = [target.name for target in targets]
                write_json(staged["json"], summary)
        result.paths = targets
    finally:
        depth = None  # the last reference: the map is closed before its file is removed
        with contextlib.suppress(FileNotFoundError):
            os.unlink(store)
    return result


class _FrameRecords:
    """What each frame's prediction says beyond its depth (filled from writer threads, one index each)."""

    def __init__(self, count: int) -> None:
        self.focal = np.full(count, np.nan)
        """Focal length each frame ran with, pixels."""
        self.fov = np.full(count, np.nan)
        """The FOV head's own estimate per frame, degrees."""
        self.sources: list[str | None] = [None] * count
        self.captions: list[str | None] = [None] * count
        """The caption a language-conditioned source (RSA) used per frame."""
        self.medians = np.full(count, np.nan)
        """Median depth over valid pixels as predicted, metres."""
        self.finished = 0

    def add(self, index: int, prediction: Any, depth: np.ndarray) -> None:
        self.medians[index] = _median_depth(depth)
        if prediction.focal_px is not None:
            self.focal[index] = float(prediction.focal_px)
        if prediction.predicted_fov_deg is not None:
            self.fov[index] = float(prediction.predicted_fov_deg)
        self.sources[index] = prediction.focal_source
        self.captions[index] = getattr(prediction, "caption", None)


def _rescale(depth: np.ndarray, factor: np.ndarray) -> tuple[np.ndarray, _InverseDepthHistogram]:
    """Multiply frame t of (T, H, W) ``depth`` by ``factor[t]`` in place, within the network's depth
    range; pixels at the sky ceiling stay there. Returns each frame's new median and the histogram of
    the clip's inverse depth."""
    histogram = _InverseDepthHistogram()
    medians = np.full(len(depth), np.nan)
    for t in range(len(depth)):
        frame = np.array(depth[t])
        scaled = frame < SKY_DEPTH  # sky and NaN are left as they are
        np.multiply(frame, np.float32(factor[t]), out=frame, where=scaled)
        np.clip(frame, _MIN_DEPTH, _MAX_DEPTH, out=frame, where=scaled)
        depth[t] = frame
        medians[t] = _median_depth(frame)
        histogram.add(frame)
    return medians, histogram


def _intrinsics(result: VideoResult) -> list[list[float]] | None:
    if result.focal_px is None:
        return None
    f, (height, width) = result.focal_px, result.size
    return [[f, 0.0, (width - 1) / 2], [0.0, f, (height - 1) / 2], [0.0, 0.0, 1.0]]


def _write_clip_npz(path: Path, depth: np.ndarray, result: VideoResult, info: VideoInfo) -> None:
    K = _intrinsics(result)
    with open(path, "wb") as f:  # the (T, H, W) map is read from its memmap in blocks
        np.savez_compressed(
            f,
            depth=depth,
            timestamps_s=np.asarray(info.timestamps_s, np.float64),
            fps=np.float64(result.fps),
            focal_px=np.float64(math.nan if result.focal_px is None else result.focal_px),
            K=np.asarray(K if K is not None else np.full((3, 3), np.nan), np.float64),
            focal_source=np.str_(result.focal_source or ""),
            predicted_focal_px=result.predicted_focal_px,
            predicted_fov_deg=result.predicted_fov_deg,
            median_depth_m=result.median_depth_m,
            scale_factor=result.scale_factor,
            color_near_m=np.float64(result.color_range_m[0]),
            color_far_m=np.float64(result.color_range_m[1]),
            kind=np.str_("metric"),
            media=np.str_("video"),
            writer=np.str_(WRITER_MARK),
        )


def _write_depth_video(path: Path, depth: np.ndarray, result: VideoResult, info: VideoInfo) -> dict[str, Any]:
    """Encode the colour video; returns its description for the sidecar."""
    near_m, far_m = result.color_range_m
    height, width = result.size
    comment = f"metricdepth: inverse depth, {COLORMAP}, near {near_m:.4g} m, far {far_m:.4g} m"
    pts = info.pts if info.pts is not None and info.pts[0] >= 0 else None
    time_base = info.time_base if pts is not None else None
    with DepthVideoWriter(
        path, width, height, info.fps, time_base=time_base, metadata={"comment": comment}
    ) as writer:
        for t in range(len(depth)):
            colors = colorize_fixed_range(np.reciprocal(np.asarray(depth[t], np.float64)), near_m, far_m)
            writer.write(colors, None if pts is None else pts[t])
    video = {
        "codec": writer.codec,
        "pixel_format": "yuv420p",
        "color_matrix": "BT.709, limited range",
        "coded_size": list(writer.coded_size),
        "timestamps": "the input's" if pts is not None else "frame index / fps",
    }
    if writer.coded_size != (width, height):
        video["padding"] = "odd width or height: the last column or row repeated (yuv420p)"
    return video


def _clip_summary(
    result: VideoResult, info: VideoInfo, extra: dict[str, Any] | None, video: dict[str, Any] | None
) -> dict[str, Any]:
    """The sidecar JSON's content (without ``files``)."""
    from .camera import focal_to_fov

    near_m, far_m = result.color_range_m
    height, width = result.size
    low, high = COLOR_PERCENTILES
    return {
        "writer": WRITER_MARK,
        "kind": "metric",
        "media": "video",
        "input": str(result.input),
        **(extra or {}),
        "width": width,
        "height": height,
        "frames": result.frames,
        "fps": result.fps,
        "fps_fraction": str(info.fps),
        "duration_s": info.duration_s,
        "time_base": None if info.time_base is None else str(info.time_base),
        "source_codec": info.codec,
        "rotation_deg": info.rotation_deg,
        "focal_px": result.focal_px,
        "focal_source": result.focal_source,
        "focal_method": _focal_method(result.focal_source, info),
        "fov_x_deg": None if result.focal_px is None else focal_to_fov(result.focal_px, width),
        "K": _intrinsics(result),
        "predicted_focal_px": result.predicted_focal_px,
        "predicted_fov_deg": result.predicted_fov_deg,
        "color_range": {
            "quantity": "inverse depth",
            "colormap": COLORMAP,
            "near_m": near_m,
            "far_m": far_m,
            "near_color": "warm",
            "method": (
                f"one range for every frame: percentiles {low:g} and {high:g} of inverse depth over all "
                f"pixels of all frames (sky excluded), clipped to {COLOR_DEPTH_RANGE[0]:g}-"
                f"{COLOR_DEPTH_RANGE[1]:g} m; colour = {COLORMAP}((1/d - 1/far_m) / (1/near_m - 1/far_m)), "
                "clipped to [0, 1]"
            ),
        },
        "scale_smoothing": {
            "window_frames": result.smooth_scale,
            "method": _smoothing_method(result.smooth_scale),
        },
        "scale_factor": result.scale_factor,
        "median_depth_m": result.median_depth_m,
        "median_depth_unsmoothed_m": result.median_depth_unsmoothed_m,
        "timestamps_s": list(info.timestamps_s),
        "video": video,
        "pixel_convention": PIXEL_CONVENTION,
    }


def _focal_method(source: str | None, info: VideoInfo) -> str:
    if source == "user":
        return "given by the user for every frame"
    if source == "exif":
        return f"container metadata {info.focal_key} = {info.focal_35mm:g} mm (35 mm equivalent)"
    if source == "predicted":
        return (
            "median of the per-frame FOV-head predictions; each frame's depth multiplied by "
            "focal_px / its own predicted focal length (metric depth is proportional to the focal length)"
        )
    return "none: the source has no camera model"


# ----------------------------------------------------------------------------------- many clips
def predict_clips(
    model: Any,
    items: Sequence[Any],
    *,
    formats: Sequence[str] = CLIP_FORMATS,
    f_px: float | None = None,
    focal: str = "auto",
    smooth_scale: int = 0,
    extra: dict[str, Any] | None = None,
    overwrite: bool = False,
    skip_existing: bool = False,
    protected: Sequence[Path] = (),
    on_frame: Callable[[Any, int, int], None] | None = None,
    on_done: Callable[[Any, Exception | None], None] | None = None,
    infer_options: Callable[[Any, dict[str, Any]], dict[str, Any]] | None = None,
    batch_size: int = 1,
    workers: int = 0,
    writers: int = 2,
    pad_batches: bool = False,
) -> Any:
    """:func:`predict_video` for each clip item (``path``, ``out_stem``, ``label``); a failing clip is
    recorded and the others go on.

    Args:
        protected: more files no output may replace (the run's other inputs).
        skip_existing: skip clips whose requested outputs a clip run already wrote (before probing).
        on_frame: ``(item, frames done, frames)`` after each frame; ``on_done``: ``(item, error or None)``.
        Others: as :func:`predict_video`.

    Returns:
        A :class:`metricdepth.batch.BatchReport` (``written``, ``skipped``, ``failures``, ``cleaned``).
    """
    from .batch import BatchReport, report_message

    report = BatchReport()
    guard = OutputGuard([*(item.path for item in items), *protected], overwrite, replaceable=_replaceable)
    for item in items:
        error: Exception | None = None
        try:
            chosen = clip_formats(formats)
            if skip_existing and all(map(_is_clip_output, clip_outputs(item.out_stem, chosen))):
                guard.check(clip_outputs(item.out_stem, chosen), item.label)
                report.skipped.append(item.label)
            else:
                result = predict_video(
                    model,
                    item.path,
                    item.out_stem,
                    formats=chosen,
                    f_px=f_px,
                    focal=focal,
                    smooth_scale=smooth_scale,
                    batch_size=batch_size,
                    workers=workers,
                    writers=writers,
                    pad_batches=pad_batches,
                    infer_options=infer_options,
                    extra=extra,
                    guard=guard,
                    on_frame=None if on_frame is None else partial(on_frame, item),
                )
                report.written[item.label] = result.paths
                report.cleaned.extend(result.cleaned)
        except Exception as err:
            error = err
            report.failures.append((item.label, report_message(err, item.label)))
        if on_done is not None:
            on_done(item, error)
    return report


def is_clip_item(item: Any) -> bool:
    """Whether a batch item is a video file (by its extension) for :func:`predict_clips`."""
    path = getattr(item, "path", None)
    return hasattr(item, "out_stem") and isinstance(path, Path) and is_video_path(path)
