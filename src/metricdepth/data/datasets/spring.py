"""Spring (Mehl et al., CVPR 2023): high-detail rendered stereo video, disparity turned into metric depth.

Layout of the published ``train`` split (``test`` has no ground truth):

* ``<split>/<scene>/frame_<eye>/frame_<eye>_XXXX.png``: 1920×1080 frames, ``eye`` left or right;
* ``<split>/<scene>/disp1_<eye>/disp1_<eye>_XXXX.dsp5``: HDF5 with one dataset ``disparity``
  (:func:`read_spring_disparity`), stored at twice the image resolution per axis (3840×2160);
* ``<split>/<scene>/cam_data/intrinsics.txt``: line n = frame n: ``fx fy cx cy`` in pixels of the
  1920×1080 frames (some scenes zoom, so they change per frame).

Disparity decoding follows the official devkit (cv-stuttgart ``spring_utils``) and the benchmark FAQ:
the 4K ground truth is brought to image resolution by taking every second value per axis
(``disparity[::2, ::2]``); its values already refer to full-HD pixels (no division by 2); they are
stored positive for both eyes; infinitely distant sky is encoded as disparity 0 and a few NaNs come
from a Blender bug. Depth Z = fx · 0.065 / d: the rig is orthoparallel with a 0.065 m baseline
(FAQ). Disparity 0, NaN or negative gives depth 0 and ``valid`` False (sky is thus excluded, not
infinite). A disparity map already at image resolution is accepted as is.

Intrinsics: the frame's line of ``intrinsics.txt``. Source convention: not documented by the
dataset; taken as OpenCV's (zero-based, pixel centres at integer coordinates): no conversion.

Names are ``<scene>/frame_<eye>/frame_<eye>_XXXX``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from ..sample import Sample
from ._common import (
    disparity_to_depth,
    pinhole,
    read_image,
    read_split,
    relative_name,
    require_dir,
    select_names,
    with_exif_focal,
)

__all__ = ["SPRING_BASELINE_M", "Spring", "read_spring_disparity", "read_spring_intrinsics"]

SPRING_BASELINE_M = 0.065
"""Stereo baseline of every Spring scene, metres (Spring benchmark FAQ)."""

_EYES = ("left", "right")
_FRAME = re.compile(r"_(\d+)$")


def read_spring_disparity(path: str | os.PathLike) -> np.ndarray:
    """A Spring ``.dsp5`` file's ``disparity`` dataset as float32, at the stored (4K) resolution."""
    import h5py

    try:
        with h5py.File(path, "r") as f:
            if "disparity" not in f:
                raise ValueError(f"{path}: no 'disparity' dataset (keys: {', '.join(f.keys()) or 'none'})")
            disparity = np.asarray(f["disparity"][()], dtype=np.float32)
    except OSError as err:
        raise ValueError(f"{path}: not a readable HDF5 .dsp5 file ({err})") from None
    if disparity.ndim != 2:
        raise ValueError(f"{path}: disparity must be 2-D, got shape {disparity.shape}")
    return disparity


def read_spring_intrinsics(path: str | os.PathLike) -> np.ndarray:
    """``cam_data/intrinsics.txt`` as an (N, 4) float64 array of ``fx fy cx cy``, row n-1 = frame n."""
    rows = read_split(path)
    try:
        values = np.array([[float(v) for v in row] for row in rows], dtype=np.float64)
    except ValueError as err:
        raise ValueError(f"{path}: not a table of numbers ({err})") from None
    if values.ndim != 2 or values.shape[1] != 4:
        raise ValueError(f"{path}: expected one 'fx fy cx cy' line per frame")
    return values


class Spring:
    """Spring frames of one eye with metric depth from the ground-truth disparity."""

    def __init__(
        self,
        root: str | os.PathLike,
        split: str = "train",
        scenes: str | Iterable[str] | None = None,
        eye: str = "left",
    ) -> None:
        if eye not in _EYES:
            raise ValueError(f"Spring eye must be one of {_EYES}, got {eye!r}")
        self.root = require_dir(root, "Spring")
        self.split_root = require_dir(self.root / split, f"Spring {split!r} split")
        self.eye = eye
        found = (p.name for p in self.split_root.iterdir() if (p / f"frame_{eye}").is_dir())
        self.scenes = select_names(found, scenes, self.split_root)
        self.items: list[tuple[str, int, Path]] = []  # (scene, frame number, image)
        for scene in self.scenes:
            for image in sorted((self.split_root / scene / f"frame_{eye}").glob(f"frame_{eye}_*.png")):
                frame = _FRAME.search(image.stem)
                if frame is not None and self._disparity_path(scene, image.stem).is_file():
                    self.items.append((scene, int(frame.group(1)), image))
        if not self.items:
            raise FileNotFoundError(
                f"{self.split_root}: no Spring frame <scene>/frame_{eye}/frame_{eye}_XXXX.png with ground "
                f"truth <scene>/disp1_{eye}/disp1_{eye}_XXXX.dsp5 (the test split has none)"
            )
        self._intrinsics: dict[str, np.ndarray] = {}

    def _disparity_path(self, scene: str, image_stem: str) -> Path:
        stem = image_stem.replace("frame_", "disp1_", 1)
        return self.split_root / scene / f"disp1_{self.eye}" / f"{stem}.dsp5"

    def _K(self, scene: str, frame: int) -> np.ndarray:
        if scene not in self._intrinsics:
            path = self.split_root / scene / "cam_data" / "intrinsics.txt"
            if not path.is_file():
                raise FileNotFoundError(f"{path}: Spring intrinsics not found")
            self._intrinsics[scene] = read_spring_intrinsics(path)
        table = self._intrinsics[scene]
        if not 1 <= frame <= len(table):
            raise ValueError(
                f"{self.split_root / scene}/cam_data/intrinsics.txt: no line for frame {frame} "
                f"({len(table)} lines)"
            )
        return pinhole(*table[frame - 1])

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> Sample:
        scene, frame, image_path = self.items[index]
        image, exif_focal = read_image(image_path)
        disparity_path = self._disparity_path(scene, image_path.stem)
        disparity = read_spring_disparity(disparity_path)
        height, width = image.shape[:2]
        if disparity.shape == (2 * height, 2 * width):
            disparity = disparity[::2, ::2]
        elif disparity.shape != (height, width):
            raise ValueError(
                f"{disparity_path}: disparity is {disparity.shape[1]}x{disparity.shape[0]}, expected "
                f"{2 * width}x{2 * height} (twice the {width}x{height} image)"
            )
        K = self._K(scene, frame)
        depth, valid = disparity_to_depth(disparity, K[0, 0], SPRING_BASELINE_M)
        sample = Sample(
            name=relative_name(image_path, self.split_root),
            image=image,
            depth=depth,
            valid=valid,
            K=K,
            focal_px=float(K[0, 0]),
        )
        return with_exif_focal(sample, exif_focal)
