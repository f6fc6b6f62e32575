"""The web demo's logic, without gradio: one photo in, every output and the page's content out.

:class:`DepthDemo` wraps any depth source (Depth Pro, an RSA pipeline) behind the inference seam:
``demo.run(path, f_px=None, caption=None)`` checks the upload (size in pixels, readable image),
predicts with the focal policy (typed-in f_px → EXIF → FOV head; ``Prediction.focal_source`` says
which), writes every output format through :func:`~metricdepth.io.writers.save_prediction` plus a GLB
mesh into a fresh per-request folder (older folders are removed, at most ``keep_runs`` stay), and
returns a :class:`DemoResult` with the depth panel's HTML and the focal length text. A request's folder
takes about 21 bytes per pixel of the photo (a full-resolution PLY is 15) plus the GLB (≤ ~4 MB):
about 0.5 GB for a 24 MP photo; at most ``keep_runs`` folders stay on disk.

Problems the user can fix (not an image, truncated, too many pixels, no caption, a focal length out of
range) raise :class:`DemoInputError` with a message meant for the page.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import shutil
import tempfile
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..io.mesh import DEFAULT_MAX_FACES
from .depth_view import DEFAULT_DISPLAY_SIZE, DEFAULT_GRID_SIZE

__all__ = [
    "DEFAULT_KEEP_RUNS",
    "DEFAULT_MAX_PIXELS",
    "FOCAL_SOURCE_TEXT",
    "F_PX_RANGE",
    "DemoInputError",
    "DemoResult",
    "DepthDemo",
    "focal_text",
]

DEFAULT_MAX_PIXELS = 50_000_000
"""Largest photo the demo accepts, pixels (W × H): a 48 MP phone photo fits."""
DEFAULT_KEEP_RUNS = 4
"""Per-request output folders kept on disk; older ones are removed (gradio serves copies of the files,
so a folder is only needed until its request's response is made)."""
F_PX_RANGE = (1.0, 1e7)
"""Accepted typed-in focal lengths, pixels (as ``metricdepth predict --f-px``)."""
FOCAL_SOURCE_TEXT = {"exif": "from EXIF", "user": "typed in", "predicted": "predicted by the FOV head"}
"""How the page names each ``Prediction.focal_source``."""
GLB_SUFFIX = ".glb"


class DemoInputError(ValueError):
    """A problem with what the user gave (the photo, the focal length, the caption): the message is
    written for the page and names the file."""


@dataclass
class DemoResult:
    """What one demo request produced.

    Attributes:
        prediction: the single-image :class:`~metricdepth.Prediction` (depth (H, W) float32 metres).
        name: the photo's file name as uploaded.
        run_dir: the request's own output folder.
        files: every output, in order: NAME.npz, NAME_depth.png, NAME_inverse_depth.png, NAME.ply,
            NAME.json, NAME.glb (the PLY and GLB only with a camera: RSA without a focal length has none).
        glb: the 3D mesh (glTF binary, y up, metres), or None without a camera.
        depth_html: the depth panel (colour map, colour bar in metres, hover readout data).
        focal_text: e.g. "Focal length: 1234.5 px — from EXIF (horizontal FOV 52.3°)".
        mesh_faces: triangles in the GLB (0 without one).
        notes: remarks for the page (e.g. an empty 3D view).
    """

    prediction: Any
    name: str
    run_dir: Path
    files: list[Path]
    glb: Path | None
    depth_html: str
    focal_text: str
    mesh_faces: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def focal_px(self) -> float | None:
        value = self.prediction.focal_px
        return None if value is None else float(value)

    @property
    def focal_source(self) -> str | None:
        return self.prediction.focal_source

    @property
    def caption(self) -> str | None:
        return self.prediction.caption


def focal_text(prediction: Any) -> str:
    """The focal length line of the page: value, where it came from, FOV, the FOV head's own estimate."""
    if prediction.focal_px is None:
        return (
            "Focal length: none — RSA has no camera model; type a focal length (px) to get a point "
            "cloud and a 3D view"
        )
    from ..inference import focal_from_predicted_fov

    focal, source = float(prediction.focal_px), prediction.focal_source
    text = f"Focal length: {focal:.1f} px — {FOCAL_SOURCE_TEXT.get(source, str(source))}"
    if prediction.fov_deg is not None:
        text += f" (horizontal FOV {float(prediction.fov_deg):.1f}°)"
    if source != "predicted" and prediction.predicted_fov_deg is not None:
        width = prediction.image_size[1]
        own = focal_from_predicted_fov(float(prediction.predicted_fov_deg), width)
        text += f"; the FOV head predicts {own:.1f} px"
    return text


def safe_stem(name: str) -> str:
    """A file-name stem made of letters, digits, ``.``, ``_`` and ``-`` (at most 64 characters)."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(name).stem).strip("._")[:64]
    return stem or "photo"


class DepthDemo:
    """Runs the demo's requests on one depth source (loaded once, shared by every request).

    Args:
        source: a :class:`~metricdepth.DepthSource`: a ``DepthPro`` or an ``RSAPipeline``.
        extra: fields for each request's JSON file (checkpoint, model, RSA parts, ...).
        max_pixels: photos with more pixels (W × H) are refused with a message.
        work_dir: where the per-request folders go (default: a new temporary folder, removed by
            :meth:`close`).
        keep_runs: per-request folders kept; older ones are removed as new ones are made.
        mesh_faces: triangle budget of the GLB.
        display_size: longest side of the colour map on the page, pixels.
        grid_size: longest side of the hover readout's depth grid, samples.
    """

    def __init__(
        self,
        source: Any,
        *,
        extra: Mapping[str, Any] | None = None,
        max_pixels: int = DEFAULT_MAX_PIXELS,
        work_dir: str | os.PathLike | None = None,
        keep_runs: int = DEFAULT_KEEP_RUNS,
        mesh_faces: int = DEFAULT_MAX_FACES,
        display_size: int = DEFAULT_DISPLAY_SIZE,
        grid_size: int = DEFAULT_GRID_SIZE,
    ) -> None:
        if max_pixels < 1:
            raise ValueError(f"max_pixels must be positive, got {max_pixels}")
        if keep_runs < 1:
            raise ValueError(f"keep_runs must be at least 1, got {keep_runs}")
        self.source = source
        self.extra = dict(extra or {})
        self.max_pixels = int(max_pixels)
        self.keep_runs = int(keep_runs)
        self.mesh_faces = int(mesh_faces)
        self.display_size = int(display_size)
        self.grid_size = int(grid_size)
        self._own_work_dir = work_dir is None
        self.work_dir = Path(tempfile.mkdtemp(prefix="metricdepth-demo-") if work_dir is None else work_dir)
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._active: set[Path] = set()

    @property
    def takes_caption(self) -> bool:
        """Whether predictions need a caption (an RSA pipeline with a text-conditioned head)."""
        return getattr(self.source, "conditioning", None) == "text"

    # ------------------------------------------------------------------------------ checks
    def check_image(self, path: str | os.PathLike, name: str | None = None) -> Any:
        """Read an uploaded photo: :class:`~metricdepth.LoadedImage` (upright RGB, EXIF focal).

        Raises:
            DemoInputError: no file, too many pixels, or not a readable image (message names ``name``).
        """
        from PIL import Image

        from ..io.images import ImageLoadError, load_image

        path = Path(path)
        name = name or path.name
        try:  # the header alone gives the size: refuse huge images before decoding them
            with Image.open(path) as image:
                width, height = image.size
        except Image.DecompressionBombError:
            raise DemoInputError(f"{name}: the image is too large to decode safely") from None
        except Exception:  # not an image, unreadable: load_image says exactly what is wrong
            width = height = 0
        if width * height > self.max_pixels:
            raise DemoInputError(
                f"{name}: {width}×{height} pixels ({width * height / 1e6:.1f} MP) is more than this demo "
                f"accepts ({self.max_pixels / 1e6:g} MP); please upload a smaller photo"
            )
        try:
            return load_image(path)
        except ImageLoadError as err:
            message = str(err).replace(str(path), name)
            raise DemoInputError(message) from None

    @staticmethod
    def check_focal(f_px: float | str | None) -> float | None:
        """A typed-in focal length in pixels (a number or the text of the page's field), or None when
        none was given (None or blank text).

        Raises:
            DemoInputError: not a number, or outside 1 … 1e7 px.
        """
        if f_px is None or (isinstance(f_px, str) and not f_px.strip()):
            return None
        try:
            value = float(f_px.strip().removesuffix("px").strip() if isinstance(f_px, str) else f_px)
        except ValueError:
            raise DemoInputError(
                f"focal length {f_px!r}: not a number; type the focal length in pixels (e.g. 1200), "
                "or leave the field empty to use EXIF or the FOV head"
            ) from None
        if not (math.isfinite(value) and F_PX_RANGE[0] <= value <= F_PX_RANGE[1]):
            raise DemoInputError(
                f"focal length {value:g} px: give a value between {F_PX_RANGE[0]:g} and "
                f"{F_PX_RANGE[1]:g} px, or leave the field empty to use EXIF or the FOV head"
            )
        return value

    # ------------------------------------------------------------------------------ requests
    def run(
        self,
        path: str | os.PathLike | None,
        *,
        f_px: float | str | None = None,
        caption: str | None = None,
        name: str | None = None,
    ) -> DemoResult:
        """Predict one uploaded photo and write every output.

        Args:
            path: the uploaded file.
            f_px: a typed-in focal length (pixels; a number or the field's text, blank for none) that
                overrides EXIF and the FOV head.
            caption: the scene's caption for RSA (``"auto"``: the offline detector writes one).
            name: the photo's name as uploaded (default: the file's).

        Raises:
            DemoInputError: a problem the user can fix; the message is meant for the page.
        """
        if path is None or not str(path):
            raise DemoInputError("Upload a photo first.")
        name = name or Path(path).name
        f_px = self.check_focal(f_px)
        options: dict[str, Any] = {} if f_px is None else {"f_px": f_px}
        if self.takes_caption:
            caption = (caption or "").strip()
            if not caption:
                raise DemoInputError(
                    "RSA needs a caption of the scene, e.g. 'An image with a car and two people.', "
                    "or 'auto' to let the offline detector write one"
                )
            options["caption"] = caption
        loaded = self.check_image(path, name)
        try:
            prediction = self.source.infer(loaded, **options)
        except ValueError as err:  # the focal policy cannot be met, a caption the encoder refuses, ...
            raise DemoInputError(f"{name}: {err}") from None
        if not prediction.is_metric:
            raise DemoInputError(
                "this depth source predicts relative depth (no metres); the demo needs metric depth"
            )
        depth = prediction.depth.detach().float().cpu().numpy()
        if not np.isfinite(depth).all():
            raise DemoInputError(f"{name}: the model produced NaN or infinite depth for this photo")
        return self._write(prediction, loaded.rgb, depth, name)

    def _write(self, prediction: Any, rgb: np.ndarray, depth: np.ndarray, name: str) -> DemoResult:
        from PIL import Image

        from ..io.mesh import depth_mesh, write_glb
        from ..io.writers import FORMATS, camera_summary, save_prediction
        from .depth_view import depth_view_html

        run_dir = self._new_run_dir()
        try:
            stem = run_dir / safe_stem(name)
            formats = [f for f in FORMATS if f != "ply" or prediction.intrinsics is not None]
            extra = {**self.extra, "input": name}
            files = save_prediction(prediction, rgb, stem, formats=formats, extra=extra)
            glb, faces = None, 0
            if prediction.intrinsics is not None:
                mesh = depth_mesh(depth, prediction.intrinsics, rgb, max_faces=self.mesh_faces)
                camera = camera_summary(prediction)
                metadata = {k: camera[k] for k in ("kind", "focal_px", "focal_source", "predicted_fov_deg")}
                glb = write_glb(stem.with_name(stem.name + GLB_SUFFIX), mesh, {**metadata, "input": name})
                faces = len(mesh.faces)
                files.append(glb)
            colour_file = next(p for p in files if p.name.endswith("_inverse_depth.png"))
            with Image.open(colour_file) as colour:
                colour_map = colour.convert("RGB")
            panel = depth_view_html(
                depth,
                colour_map,
                prediction.inverse_depth.detach().float().cpu().numpy(),
                display_size=self.display_size,
                grid_size=self.grid_size,
                title=name,
            )
        except BaseException:
            shutil.rmtree(run_dir, ignore_errors=True)
            raise
        finally:
            with self._lock:
                self._active.discard(run_dir)
        notes = []
        if glb is not None and faces == 0:
            notes.append("the 3D view is empty: every pixel is sky or at a depth edge")
        return DemoResult(prediction, name, run_dir, files, glb, panel, focal_text(prediction), faces, notes)

    def _new_run_dir(self) -> Path:
        """A fresh folder for one request; the oldest finished ones beyond ``keep_runs`` are removed."""
        with self._lock:
            run_dir = Path(tempfile.mkdtemp(prefix="run-", dir=self.work_dir))
            self._active.add(run_dir)
            finished = [p for p in self.work_dir.glob("run-*") if p.is_dir() and p not in self._active]
            finished.sort(key=lambda p: p.stat().st_mtime_ns)
            for old in finished[: max(0, len(finished) - (self.keep_runs - 1))]:
                shutil.rmtree(old, ignore_errors=True)
        return run_dir

    def close(self) -> None:
        """Remove the work folder if this demo made it."""
        if self._own_work_dir:
            with contextlib.suppress(OSError):
                shutil.rmtree(self.work_dir)

    def __enter__(self) -> DepthDemo:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
