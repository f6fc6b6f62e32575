"""SUN RGB-D (Song et al., CVPR 2015): 10335 indoor frames from four sensors (Kinect v1/v2, Xtion, RealSense).

Layout of the official release: ``SUNRGBD/<sensor>/<...>/<scene>/`` with ``image/<name>.jpg``,
``depth/<name>.png`` (raw), ``depth_bfx/<name>.png`` (refined, hole-filled) and ``intrinsics.txt``
(3×3, row-major, whitespace-separated). A scene is a folder holding ``image/``, the chosen depth folder
and ``intrinsics.txt``. ``root`` may be the folder holding ``SUNRGBD`` or ``SUNRGBD`` itself; names are
scene paths relative to ``SUNRGBD`` (``kv2/kinect2data/000002_2014-05-26_14-23-37_..._rgbf000103-resize``).

Depth decoding follows the official SUNRGBDtoolbox (``readData/read3dPoints.m``): the 16-bit value is
rotated right by 3 bits, ``d = bitor(bitshift(v, -3), bitshift(v, 16 - 3))`` in uint16, giving
millimetres; metres = d / 1000, and values above 8 m are clipped to 8 m. The clipped pixels keep the
toolbox value 8.0 in ``depth`` but are marked not ``valid`` (their true depth is unknown, and ZoeDepth's
SUN RGB-D loader likewise drops depth > 8 m); 0 is no measurement. ``depth="bfx"`` (default) reads
``depth_bfx``, ``depth="raw"`` reads ``depth``.

Intrinsics: the scene's ``intrinsics.txt`` (``[fx 0 cx; 0 fy cy; 0 0 1]``). Source convention: MATLAB,
one-based: the toolbox back-projects pixel columns/rows 1…W / 1…H with it (``read3dPoints.m``
meshgrids from 1), so the first pixel centre is at (1, 1). Conversion to OpenCV (first pixel centre at
(0, 0)): cx − 1, cy − 1; fx, fy unchanged.

Split (optional): a text file of scene paths, one per line, relative to the folder holding ``SUNRGBD``
(or anything ending in that path, e.g. the toolbox's ``/n/fs/sun3d/data/SUNRGBD/kv2/...`` prefix:
leading components are dropped until the path exists), or the toolbox's
``traintestSUNRGBD/allsplit.mat``, whose ``alltest`` list (5050 scenes) is used. Without one: every scene.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..sample import Sample
from ._common import (
    one_based_to_opencv,
    read_image,
    read_matrix_txt,
    read_png_raw,
    read_split,
    require_dir,
    require_same_size,
    resolve_listed,
    with_exif_focal,
)

__all__ = ["SUNRGBD_MAX_DEPTH", "SunRGBD", "decode_sunrgbd_depth"]

SUNRGBD_MAX_DEPTH = 8.0
"""Metres; the toolbox clips decoded depth to this value."""

_DEPTH_FOLDERS = {"bfx": "depth_bfx", "raw": "depth"}


def decode_sunrgbd_depth(raw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Stored uint16 values → (float32 metres clipped to 8 m, valid: 0 < depth ≤ 8 m before clipping)."""
    stored = raw.astype(np.uint16)
    millimetres = (stored >> np.uint16(3)) | (stored << np.uint16(13))
    metres = millimetres.astype(np.float32) / np.float32(1000.0)
    valid = (metres > 0) & (metres <= SUNRGBD_MAX_DEPTH)
    return np.minimum(metres, np.float32(SUNRGBD_MAX_DEPTH)), valid


def _listed_scenes(split_file: Path) -> list[str]:
    if split_file.suffix.lower() == ".mat":
        from scipy.io import loadmat

        content = loadmat(split_file)
        if "alltest" not in content:
            raise ValueError(f"{split_file}: no 'alltest' list (expected the toolbox's allsplit.mat)")
        return [str(np.asarray(entry).ravel()[0]) for entry in np.asarray(content["alltest"]).ravel()]
    return [fields[0] for fields in read_split(split_file)]


class SunRGBD:
    """SUN RGB-D scenes (one frame each), sorted; ``depth`` is ``"bfx"`` (refined) or ``"raw"``."""

    def __init__(
        self, root: str | os.PathLike, split_file: str | os.PathLike | None = None, depth: str = "bfx"
    ) -> None:
        if depth not in _DEPTH_FOLDERS:
            raise ValueError(f"SUN RGB-D depth must be 'bfx' or 'raw', got {depth!r}")
        self.depth_folder = _DEPTH_FOLDERS[depth]
        root = require_dir(root, "SUN RGB-D")
        self.base = root / "SUNRGBD" if (root / "SUNRGBD").is_dir() else root
        if split_file is not None:
            self.scenes = []
            for listed in _listed_scenes(Path(split_file)):
                scene = resolve_listed(self.base, listed.rstrip("/"))
                if scene is None or not self._is_scene(scene):
                    raise FileNotFoundError(
                        f"{split_file}: scene {listed} not found under {self.base} "
                        f"(needs image/, {self.depth_folder}/ and intrinsics.txt)"
                    )
                self.scenes.append(scene)
            self.scenes = sorted(set(self.scenes))
        else:
            self.scenes = []
            for folder, subfolders, files in os.walk(self.base):
                if "intrinsics.txt" in files and "image" in subfolders:
                    subfolders.clear()  # a scene's own subfolders hold no scenes
                    if self._is_scene(Path(folder)):
                        self.scenes.append(Path(folder))
            self.scenes.sort()
        if not self.scenes:
            raise FileNotFoundError(
                f"{self.base}: no SUN RGB-D scene (folder with image/, {self.depth_folder}/ and "
                "intrinsics.txt) found"
            )

    def _is_scene(self, folder: Path) -> bool:
        return (
            (folder / "image").is_dir()
            and (folder / self.depth_folder).is_dir()
            and (folder / "intrinsics.txt").is_file()
        )

    def __len__(self) -> int:
        return len(self.scenes)

    @staticmethod
    def _only(folder: Path, pattern: str, stem: str | None = None) -> Path:
        if stem is not None and (folder / (stem + pattern[1:])).is_file():
            return folder / (stem + pattern[1:])
        found = sorted(folder.glob(pattern))
        if len(found) != 1:
            raise FileNotFoundError(f"{folder}: expected one {pattern} file, found {len(found)}")
        return found[0]

    def __getitem__(self, index: int) -> Sample:
        scene = self.scenes[index]
        image_path = self._only(scene / "image", "*.jpg")
        depth_path = self._only(scene / self.depth_folder, "*.png", stem=image_path.stem)
        image, exif_focal = read_image(image_path)
        depth, valid = decode_sunrgbd_depth(read_png_raw(depth_path))
        require_same_size(depth_path, depth, image, "depth")
        sample = Sample(
            name=scene.relative_to(self.base).as_posix(),
            image=image,
            depth=depth,
            valid=valid,
            K=one_based_to_opencv(read_matrix_txt(scene / "intrinsics.txt")),
        )
        return with_exif_focal(sample, exif_focal)
