"""MPI Sintel depth training set (Butler et al., ECCV 2012; depth and cameras released 2015).

Layout: ``MPI-Sintel-complete.zip`` (or ``-training_images.zip``) and
``MPI-Sintel-depth-training-20150305.zip`` unpacked into the same root:

* ``training/{final,clean}/<scene>/frame_XXXX.png``: 1024×436 rendered frames of the chosen pass;
* ``training/depth/<scene>/frame_XXXX.dpt``: depth, little-endian: float32 tag 202021.25, int32 width,
  int32 height, then width·height float32 row-major (:func:`read_sintel_depth`);
* ``training/camdata_left/<scene>/frame_XXXX.cam``: camera, float32 tag 202021.25, then the 3×3
  intrinsic matrix M and the 3×4 extrinsic matrix N (world → camera), float64 row-major, such that
  x = M·N·X (:func:`read_sintel_camera`).

Only the training set has depth. Depth is along the camera's optical axis (Z), in Blender units.
Sintel has no calibrated metric scale; like the depth benchmarks that use it, this reader treats
one Blender unit as one metre (scenes are modelled at roughly human scale). There is no invalid
marker: every finite positive value is valid, including very distant sky, so an evaluation cap
(e.g. 70 m) is the protocol's job. ``K`` is M from the frame's .cam file (it changes within the
zooming shots). Source convention: zero-based pixel centres (the files put the principal point at
cx 511.5, cy 217.5 for the 1024×436 frames, the image centre in that convention), i.e. already OpenCV:
no conversion. Names are ``<scene>/frame_XXXX``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from ..sample import Sample
from ._common import read_image, require_dir, require_same_size, select_names, valid_depth, with_exif_focal

__all__ = ["SINTEL_TAG", "Sintel", "read_sintel_camera", "read_sintel_depth"]

SINTEL_TAG = 202021.25
"""The float32 that opens every Sintel .dpt/.cam/.flo file (reads back wrong on a big-endian machine)."""

_PASSES = ("final", "clean")


def _read_tagged(path: str | os.PathLike, what: str) -> bytes:
    """The file's bytes after its leading float32 tag, checked to be :data:`SINTEL_TAG`."""
    data = Path(path).read_bytes()
    if len(data) < 4:
        raise ValueError(f"{path}: too short to be a Sintel {what} file ({len(data)} bytes)")
    tag = float(np.frombuffer(data, "<f4", count=1)[0])
    if tag != SINTEL_TAG:
        raise ValueError(f"{path}: not a Sintel {what} file (tag {tag!r}, expected {SINTEL_TAG})")
    return data[4:]


def read_sintel_depth(path: str | os.PathLike) -> np.ndarray:
    """A Sintel ``.dpt`` depth map as (H, W) float32 (Blender units, i.e. metres)."""
    body = _read_tagged(path, ".dpt depth")
    if len(body) < 8:
        raise ValueError(f"{path}: .dpt header is truncated")
    width, height = (int(v) for v in np.frombuffer(body, "<i4", count=2))
    if width <= 0 or height <= 0:
        raise ValueError(f"{path}: .dpt header gives an invalid size {width}x{height}")
    count = (len(body) - 8) // 4
    if count != width * height:
        raise ValueError(f"{path}: .dpt holds {count} values, expected {width}x{height}={width * height}")
    return np.frombuffer(body, "<f4", count=count, offset=8).reshape(height, width).copy()


def read_sintel_camera(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """A Sintel ``.cam`` file as ``(M, N)``: (3, 3) intrinsics in pixels and (3, 4) world-to-camera."""
    body = _read_tagged(path, ".cam camera")
    if len(body) < 21 * 8:
        raise ValueError(f"{path}: .cam file is truncated ({len(body) + 4} bytes, expected 172)")
    values = np.frombuffer(body, "<f8", count=21)
    return values[:9].reshape(3, 3).copy(), values[9:].reshape(3, 4).copy()


class Sintel:
    """Sintel training frames of one render pass (``"final"`` or ``"clean"``) with depth and intrinsics."""

    def __init__(
        self,
        root: str | os.PathLike,
        pass_name: str = "final",
        scenes: str | Iterable[str] | None = None,
    ) -> None:
        if pass_name not in _PASSES:
            raise ValueError(f"Sintel pass_name must be one of {_PASSES}, got {pass_name!r}")
        self.root = require_dir(root, "Sintel")
        training = self.root / "training"
        self.image_root = require_dir(training / pass_name, f"Sintel {pass_name}-pass image")
        self.depth_root = require_dir(training / "depth", "Sintel depth (MPI-Sintel-depth-training)")
        self.camera_root = training / "camdata_left"
        found = (p.name for p in self.image_root.iterdir() if p.is_dir())
        self.scenes = select_names(found, scenes, self.image_root)
        self.items: list[tuple[str, str]] = []  # (scene, frame stem)
        for scene in self.scenes:
            for image in sorted((self.image_root / scene).glob("frame_*.png")):
                if (self.depth_root / scene / f"{image.stem}.dpt").is_file():
                    self.items.append((scene, image.stem))
        if not self.items:
            raise FileNotFoundError(
                f"{self.image_root}: no Sintel frame (<scene>/frame_XXXX.png) with a depth map "
                f"{self.depth_root}/<scene>/frame_XXXX.dpt"
            )

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> Sample:
        scene, frame = self.items[index]
        image, exif_focal = read_image(self.image_root / scene / f"{frame}.png")
        depth_path = self.depth_root / scene / f"{frame}.dpt"
        depth = read_sintel_depth(depth_path)
        require_same_size(depth_path, depth, image, "depth")
        camera_path = self.camera_root / scene / f"{frame}.cam"
        if not camera_path.is_file():
            raise FileNotFoundError(f"{camera_path}: Sintel camera file not found (training/camdata_left)")
        K, _ = read_sintel_camera(camera_path)
        valid = valid_depth(depth)
        depth[~valid] = 0
        sample = Sample(
            name=f"{scene}/{frame}",
            image=image,
            depth=depth,
            valid=valid,
            K=K,
            focal_px=float(K[0, 0]),
        )
        return with_exif_focal(sample, exif_focal)
