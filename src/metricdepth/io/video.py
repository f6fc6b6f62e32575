"""Video files through PyAV: probe a clip, decode its frames upright as RGB, write a colour video.

* :func:`probe_video`: frame count, timestamps, frame rate, rotation and the focal length the
  container's metadata gives (rare), read by decoding every frame once without converting its pixels,
  so a truncated or corrupt file fails here, before any model work, with a message naming it.
* :func:`iter_frames` / :func:`read_video`: the frames as (H, W, 3) uint8 RGB, upright.
  :class:`FrameDecoder` gives frame ``i`` on request, decoding forward (random access restarts the
  decoder), which is what the clip pipeline's DataLoader workers use.
* :class:`DepthVideoWriter`: H.264 (libx264, yuv420p, BT.709 limited range, CRF 18) in an MP4 with
  metricdepth's mark in the container metadata (:func:`is_depth_video`).

Rotation: the display matrix's rotation (``VideoFrame.rotation`` of PyAV, degrees counter-clockwise)
is applied in multiples of 90°, so frames come out as a player shows them; mirroring in a display
matrix is not applied (PyAV exposes the rotation only). Frames are numbered in presentation order
from 0. ``av`` is imported inside the functions: importing this module costs nothing.
"""

from __future__ import annotations

import itertools
import math
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "FOCAL_METADATA_KEYS",
    "VIDEO_EXTENSIONS",
    "DepthVideoWriter",
    "FrameDecoder",
    "VideoFrame",
    "VideoInfo",
    "VideoLoadError",
    "is_depth_video",
    "is_video_path",
    "iter_frames",
    "probe_video",
    "read_video",
]

VIDEO_EXTENSIONS = frozenset(
    {
        ".mp4",
        ".m4v",
        ".mov",
        ".qt",
        ".mkv",
        ".webm",
        ".avi",
        ".wmv",
        ".asf",
        ".flv",
        ".mpg",
        ".mpeg",
        ".m2v",
        ".ts",
        ".mts",
        ".m2ts",
        ".3gp",
        ".3g2",
        ".ogv",
        ".mxf",
        ".vob",
    }
)
"""File extensions treated as videos (case-insensitive): such inputs go to the clip pipeline."""

FOCAL_METADATA_KEYS = (
    "com.apple.quicktime.camera.focal_length.35mm_equivalent",
    "focal_length_35mm",
    "focallengthin35mmfilm",
)
"""Container or stream metadata keys read as a 35 mm-equivalent focal length, mm (case-insensitive;
a key ending in one of these counts too). Most videos carry none."""

DEPTH_VIDEO_KIND = "metric"
"""The ``kind`` entry of a depth video's container metadata (with ``writer`` = metricdepth)."""


class VideoLoadError(ValueError):
    """A video could not be read; the message names the file and the reason."""


@dataclass(frozen=True)
class VideoInfo:
    """What :func:`probe_video` found out about a clip.

    Attributes:
        path: the file.
        width, height: size of the upright frames (after rotation), pixels.
        frame_count: decodable frames.
        fps: frame rate (the stream's average rate, else one derived from the timestamps).
        time_base: the stream's time base, seconds per ``pts`` unit (None if unknown).
        pts: presentation timestamps of the frames in ``time_base`` units, or None where the stream
            has none or they do not increase (timestamps are then ``index / fps``).
        timestamps_s: (frame_count,) presentation time of each frame, seconds.
        rotation_deg: the display matrix's rotation, degrees counter-clockwise (0 if none).
        turns: quarter turns counter-clockwise applied to each decoded frame (``np.rot90``'s ``k``).
        codec: the video codec's name.
        focal_35mm: the 35 mm-equivalent focal length from the metadata, mm, or None.
        focal_px: that focal length in pixels of the upright frames (f35 · √(W² + H²) / √(36² + 24²)).
        focal_key: the metadata key it came from.
    """

    path: Path
    width: int
    height: int
    frame_count: int
    fps: Fraction
    time_base: Fraction | None
    pts: tuple[int, ...] | None
    timestamps_s: tuple[float, ...]
    rotation_deg: int
    turns: int
    codec: str
    focal_35mm: float | None = None
    focal_px: float | None = None
    focal_key: str | None = None

    @property
    def duration_s(self) -> float:
        """From the first frame's start to the last frame's end, seconds."""
        if not self.timestamps_s:
            return 0.0
        return self.timestamps_s[-1] - self.timestamps_s[0] + 1.0 / float(self.fps)


@dataclass
class VideoFrame:
    """One decoded frame: its index (presentation order from 0), time (s) and (H, W, 3) uint8 RGB."""

    index: int
    time_s: float
    rgb: np.ndarray


def is_video_path(path: str | os.PathLike) -> bool:
    """Whether ``path`` has a video file extension (:data:`VIDEO_EXTENSIONS`)."""
    return Path(path).suffix.lower() in VIDEO_EXTENSIONS


def _check_file(path: Path) -> None:
    from .images import check_input_file  # here: io.images loads torch (through camera)

    check_input_file(path, VideoLoadError, "a video")


def _import_av(path: Path) -> Any:
    """The ``av`` module (PyAV), or a :class:`VideoLoadError` naming ``path`` and the extra to install."""
    try:
        import av
    except ImportError as err:
        raise VideoLoadError(
            f"{path}: reading and writing videos needs PyAV, which is not installed: "
            "pip install 'metricdepth[video]'"
        ) from err
    return av


def _open(path: Path) -> Any:
    """The opened container and its first video stream (threaded decoding)."""
    _check_file(path)
    av = _import_av(path)
    try:
        container = av.open(str(path), metadata_errors="replace")
    except Exception as err:  # FFmpeg's errors (InvalidDataError, ...), OSError
        raise VideoLoadError(f"{path}: not a readable video file ({_reason(err)})") from err
    if not container.streams.video:
        container.close()
        raise VideoLoadError(f"{path}: holds no video stream")
    stream = container.streams.video[0]
    stream.thread_type = "AUTO"
    return container, stream


def _reason(err: Exception) -> str:
    return getattr(err, "strerror", None) or str(err) or type(err).__name__


def _quarter_turns(rotation: float | None) -> int:
    """``np.rot90``'s ``k`` for a display rotation (degrees counter-clockwise), to the nearest 90°."""
    if rotation is None or not math.isfinite(rotation):
        return 0
    return round(rotation / 90.0) % 4


def _focal_from_metadata(*tables: Mapping[str, str]) -> tuple[float | None, str | None]:
    for table in tables:
        for key, value in table.items():
            name = key.lower()
            if name.endswith(FOCAL_METADATA_KEYS):
                try:
                    focal = float(str(value).strip().split()[0])
                except (ValueError, IndexError):
                    continue
                if math.isfinite(focal) and focal > 0:
                    return focal, key
    return None, None


def probe_video(path: str | os.PathLike) -> VideoInfo:
    """Decode every frame of ``path`` once (no pixel conversion) and describe the clip.

    Raises:
        VideoLoadError: missing, empty, not a video, no video stream, no decodable frame, a frame
            that cannot be decoded (truncated or corrupt), or PyAV not installed; the message names
            the file.
    """
    path = Path(path)
    container, stream = _open(path)
    pts: list[int | None] = []
    times: list[float | None] = []
    rotation: int | None = None
    size: tuple[int, int] | None = None
    with container:
        try:
            for frame in container.decode(stream):
                if rotation is None:
                    rotation = round(frame.rotation or 0)
                    size = (frame.height, frame.width)
                pts.append(frame.pts)
                times.append(frame.time)
        except Exception as err:
            raise VideoLoadError(
                f"{path}: cannot decode frame {len(pts)}, the file is truncated or corrupt ({_reason(err)})"
            ) from err
        if not pts or size is None:
            raise VideoLoadError(f"{path}: holds no decodable video frames")
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        time_base = stream.time_base
        codec = stream.codec_context.name
        focal_35mm, key = _focal_from_metadata(dict(stream.metadata), dict(container.metadata))
    ordered = all(p is not None for p in pts) and all(b > a for a, b in itertools.pairwise(pts))
    fps = Fraction(rate) if rate else None
    if fps is None or fps <= 0:
        if ordered and len(pts) > 1 and time_base:
            step = float(np.median(np.diff(np.asarray(pts, np.float64)))) * float(time_base)
            fps = Fraction(1.0 / step).limit_denominator(1001)
        else:
            fps = Fraction(1)
    if ordered and time_base is not None:
        timestamps = tuple(float(p * time_base) for p in pts)  # type: ignore[operator]
    else:
        timestamps = tuple(i / float(fps) for i in range(len(pts)))
    turns = _quarter_turns(rotation)
    height, width = size if turns % 2 == 0 else size[::-1]
    focal_px = None
    if focal_35mm is not None:
        from ..camera import focal_from_35mm

        focal_px = focal_from_35mm(focal_35mm, width, height)
    return VideoInfo(
        path=path,
        width=width,
        height=height,
        frame_count=len(pts),
        fps=fps,
        time_base=Fraction(time_base) if time_base else None,
        pts=tuple(pts) if ordered else None,  # type: ignore[arg-type]
        timestamps_s=timestamps,
        rotation_deg=rotation or 0,
        turns=turns,
        codec=codec,
        focal_35mm=focal_35mm,
        focal_px=focal_px,
        focal_key=key,
    )


def _to_rgb(frame: Any, turns: int) -> np.ndarray:
    """A decoded PyAV frame → (H, W, 3) uint8 RGB, turned upright, contiguous."""
    rgb = frame.to_ndarray(format="rgb24", src_color_range=frame.color_range or None)
    if turns:
        rgb = np.rot90(rgb, k=turns)
    return np.ascontiguousarray(rgb)


class FrameDecoder:
    """Frame ``i`` of a clip on request, decoding forward from the last frame given.

    Asking for an earlier frame than the last one restarts decoding from the beginning; frames in
    between are decoded but not converted. One open file; :meth:`close` releases it.

    Args:
        path: the video.
        turns: quarter turns counter-clockwise (``VideoInfo.turns``); None: each frame's own rotation.
    """

    def __init__(self, path: str | os.PathLike, turns: int | None = None) -> None:
        self.path = Path(path)
        self.turns = turns
        self._container: Any = None
        self._frames: Iterator[Any] | None = None
        self._next = 0

    def _restart(self) -> None:
        self.close()
        self._container, stream = _open(self.path)
        self._frames = self._container.decode(stream)
        self._next = 0

    def frame(self, index: int) -> np.ndarray:
        """(H, W, 3) uint8 RGB of frame ``index`` (presentation order from 0), upright.

        Raises:
            VideoLoadError: the clip has no such frame or it cannot be decoded.
        """
        if index < 0:
            raise VideoLoadError(f"{self.path}: no frame {index}")
        if self._frames is None or index < self._next:
            self._restart()
        assert self._frames is not None
        while True:
            try:
                frame = next(self._frames)
            except StopIteration:
                self.close()
                raise VideoLoadError(
                    f"{self.path}: frame {index} cannot be decoded, the video ends after {self._next} frames"
                ) from None
            except Exception as err:
                self.close()
                raise VideoLoadError(
                    f"{self.path}: cannot decode frame {self._next}, the file is truncated or corrupt "
                    f"({_reason(err)})"
                ) from err
            current, self._next = self._next, self._next + 1
            if current == index:
                turns = self.turns if self.turns is not None else _quarter_turns(frame.rotation)
                return _to_rgb(frame, turns)

    def close(self) -> None:
        if self._container is not None:
            self._container.close()
        self._container, self._frames, self._next = None, None, 0

    def __enter__(self) -> FrameDecoder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def iter_frames(
    path: str | os.PathLike, *, start: int = 0, stop: int | None = None, info: VideoInfo | None = None
) -> Iterator[VideoFrame]:
    """Frames ``start`` to ``stop`` (exclusive) of a clip, upright RGB, one at a time (bounded memory).

    Args:
        info: the clip's :func:`probe_video` result (probed here if not given): timestamps, rotation.

    Raises:
        VideoLoadError: the file cannot be read (the message names it).
    """
    info = info if info is not None else probe_video(path)
    stop = info.frame_count if stop is None else min(stop, info.frame_count)
    with FrameDecoder(path, info.turns) as decoder:
        for index in range(max(start, 0), stop):
            yield VideoFrame(index, info.timestamps_s[index], decoder.frame(index))


def read_video(
    path: str | os.PathLike, *, start: int = 0, stop: int | None = None
) -> tuple[np.ndarray, VideoInfo]:
    """All frames ``start`` to ``stop`` of a clip in memory: (T, H, W, 3) uint8 RGB and the clip's info.

    Holds every frame at once (T·H·W·3 bytes): for long clips use :func:`iter_frames`.
    """
    info = probe_video(path)
    frames = [frame.rgb for frame in iter_frames(path, start=start, stop=stop, info=info)]
    if not frames:
        return np.zeros((0, info.height, info.width, 3), np.uint8), info
    return np.stack(frames), info


def _encoder_name() -> str:
    """libx264 where PyAV has it, else any H.264 encoder, else MPEG-4 Part 2."""
    import av

    for name in ("libx264", "h264", "mpeg4"):
        try:
            av.codec.Codec(name, "w")
        except Exception:  # not built into this FFmpeg
            continue
        return name
    raise RuntimeError("this PyAV build has no H.264 or MPEG-4 encoder")


class DepthVideoWriter:
    """Write (H, W, 3) uint8 RGB frames as an H.264 MP4 with metricdepth's mark.

    yuv420p needs even sizes: an odd width or height gets one more column or row, a copy of the
    last one (``coded_size``). Colours are converted with BT.709 (limited range) and the stream is
    tagged so. Frames carry the given ``pts`` in ``time_base`` (the input's timestamps), else
    ``index / fps``.

    Args:
        path: the file to write (any name; the container is MP4 whatever its suffix).
        width, height: frame size, pixels.
        fps: frame rate (the stream's nominal rate).
        time_base: seconds per ``pts`` unit of the frames written (default 1 / fps).
        metadata: more container metadata (strings); ``writer`` and ``kind`` are always set.
        crf: x264 constant rate factor (lower: better, larger); 18 is visually lossless.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        width: int,
        height: int,
        fps: Fraction | float,
        *,
        time_base: Fraction | None = None,
        metadata: Mapping[str, str] | None = None,
        crf: int = 18,
    ) -> None:
        from .writers import WRITER_MARK

        av = _import_av(Path(path))

        self.width, self.height = int(width), int(height)
        self.coded_size = (self.width + self.width % 2, self.height + self.height % 2)
        fps = Fraction(fps).limit_denominator(1_001_000)
        self.time_base = time_base or 1 / fps
        self.codec = _encoder_name()
        # Custom keys (writer, kind) are kept in MP4 only as QuickTime metadata tags.
        self._container = av.open(str(path), "w", format="mp4", options={"movflags": "use_metadata_tags"})
        try:
            marks = {"writer": WRITER_MARK, "kind": DEPTH_VIDEO_KIND}
            self._container.metadata.update({**(metadata or {}), **marks})
            stream = self._container.add_stream(self.codec, rate=fps)
            stream.width, stream.height = self.coded_size
            stream.pix_fmt = "yuv420p"
            stream.time_base = self.time_base
            context = stream.codec_context
            context.colorspace = context.color_primaries = context.color_trc = 1  # BT.709
            context.color_range = 1  # limited ("MPEG")
            if self.codec == "libx264":
                stream.options = {"crf": str(crf), "preset": "medium"}
            else:
                context.bit_rate = max(8 * self.coded_size[0] * self.coded_size[1] * math.ceil(fps), 1)
        except Exception:
            self._container.close()
            raise
        self._stream = stream
        self.frames = 0

    def write(self, rgb: np.ndarray, pts: int | None = None) -> None:
        """Encode one (H, W, 3) uint8 RGB frame at ``pts`` (``time_base`` units; default: its index)."""
        import av

        if rgb.shape != (self.height, self.width, 3) or rgb.dtype != np.uint8:
            raise ValueError(
                f"frames must be ({self.height}, {self.width}, 3) uint8, got {rgb.shape} {rgb.dtype}"
            )
        pad = ((0, self.coded_size[1] - self.height), (0, self.coded_size[0] - self.width), (0, 0))
        if any(p[1] for p in pad):
            rgb = np.pad(rgb, pad, mode="edge")
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
        frame = frame.reformat(format="yuv420p", dst_colorspace="ITU709", dst_color_range="MPEG")
        frame.pts = self.frames if pts is None else int(pts)
        frame.time_base = self.time_base
        for packet in self._stream.encode(frame):
            self._container.mux(packet)
        self.frames += 1

    def close(self) -> None:
        """Flush the encoder and finish the file."""
        if self._container is None:
            return
        try:
            for packet in self._stream.encode():
                self._container.mux(packet)
        finally:
            self._container.close()
            self._container = None

    def __enter__(self) -> DepthVideoWriter:
        return self

    def __exit__(self, kind: object, value: object, traceback: object) -> None:
        if kind is None:
            self.close()
        elif self._container is not None:  # the file is discarded: no flush
            self._container.close()
            self._container = None


def is_depth_video(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a depth video metricdepth wrote (``writer`` and ``kind`` in its container
    metadata). Reads the header only; unreadable files are not ours."""
    path = Path(path)
    if not path.is_file() or not is_video_path(path):
        return False
    try:
        import av

        from .writers import WRITER_MARK

        with av.open(str(path), metadata_errors="replace") as container:
            metadata = dict(container.metadata)
    except Exception:  # not a video, truncated: not ours
        return False
    return metadata.get("writer") == WRITER_MARK and "kind" in metadata
