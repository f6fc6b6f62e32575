"""Booster (Ramirez et al., CVPR 2022): indoor stereo with specular and transparent surfaces.

Layout of the published ground truth (``booster_gt.zip``; the test split has no ground truth):

* ``<split>/<scene_type>/<scene>/camera_00/im<k>.png``: the left camera's rectified images, all
  of the same static scene under different illumination (``scene_type`` is ``balanced``, both
  cameras 4112×3008, or ``unbalanced``);
* ``<split>/<scene_type>/<scene>/disp_00.npy``: float disparity in pixels of those images, at full
  resolution, shared by every ``im<k>``; 0 (or non-finite) where unknown;
* ``<split>/<scene_type>/<scene>/mask_00.png``: optional validity mask, non-zero = valid;
* ``<split>/<scene_type>/<scene>/calib_00-XX.xml`` (``calib_00-02.xml`` for balanced): OpenCV
  FileStorage XML (:func:`read_opencv_storage`) with ``mtxL``/``mtxR`` (3×3), ``proj_matL``/
  ``proj_matR`` (3×4 rectified projections) and ``baselineLR`` in millimetres.

One sample per image; depth Z = (baselineLR / 1000) · fx / d metres, fx and K from the rectified
``proj_matL`` (its left 3×3), falling back to ``mtxL``, as the Booster evaluation code reads them.
``valid`` = finite d > 0 and ``mask_00.png`` non-zero. Names are ``<scene>/camera_00/im<k>``.
Source convention of K: OpenCV (the matrices are OpenCV FileStorage output of OpenCV's calibration and
rectification, first pixel centre at (0, 0)): no conversion.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np

from ..sample import Sample
from ._common import (
    disparity_to_depth,
    read_image,
    read_npy_map,
    relative_name,
    require_dir,
    require_same_size,
    with_exif_focal,
)

__all__ = ["Booster", "booster_calibration", "read_opencv_storage"]

_SCENE_TYPES = ("balanced", "unbalanced")


def read_opencv_storage(path: str | os.PathLike) -> dict[str, np.ndarray | float | str]:
    """Top-level entries of an OpenCV FileStorage XML file: matrices as float64 arrays, numbers as float."""
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as err:
        raise ValueError(f"{path}: not an XML file ({err})") from None
    if root.tag != "opencv_storage":
        raise ValueError(f"{path}: not an OpenCV FileStorage file (root element <{root.tag}>)")
    entries: dict[str, np.ndarray | float | str] = {}
    for node in root:
        if node.get("type_id") == "opencv-matrix":
            try:
                rows, cols = int(node.findtext("rows", "")), int(node.findtext("cols", ""))
                values = np.array(node.findtext("data", "").split(), dtype=np.float64)
            except ValueError as err:
                raise ValueError(f"{path}: malformed matrix <{node.tag}> ({err})") from None
            if values.size != rows * cols:
                raise ValueError(f"{path}: <{node.tag}> has {values.size} values for {rows}x{cols}")
            entries[node.tag] = values.reshape(rows, cols)
        else:
            text = (node.text or "").strip()
            try:
                entries[node.tag] = float(text)
            except ValueError:
                entries[node.tag] = text
    return entries


def booster_calibration(path: str | os.PathLike) -> tuple[np.ndarray, float]:
    """``(K, baseline_m)`` of a Booster calib XML: K of the rectified left camera, baseline in metres."""
    calib = read_opencv_storage(path)
    projection, intrinsics = calib.get("proj_matL"), calib.get("mtxL")
    if isinstance(projection, np.ndarray) and projection.shape == (3, 4):
        K = projection[:, :3].copy()
    elif isinstance(intrinsics, np.ndarray) and intrinsics.shape == (3, 3):
        K = intrinsics.copy()
    else:
        raise ValueError(f"{path}: no 3x4 proj_matL nor 3x3 mtxL")
    baseline = calib.get("baselineLR")
    if not isinstance(baseline, float) or not baseline > 0:
        raise ValueError(f"{path}: baselineLR (millimetres) missing or not positive")
    return K, baseline / 1000.0


class Booster:
    """Booster left-camera images, one sample per illumination, with metric depth from disparity."""

    def __init__(self, root: str | os.PathLike, split: str = "train", scene_type: str = "balanced") -> None:
        if scene_type not in _SCENE_TYPES:
            raise ValueError(f"Booster scene_type must be one of {_SCENE_TYPES}, got {scene_type!r}")
        self.root = require_dir(root, "Booster")
        self.scenes_root = require_dir(self.root / split / scene_type, f"Booster {split}/{scene_type}")
        self.items: list[Path] = []
        for scene in sorted(p for p in self.scenes_root.iterdir() if (p / "disp_00.npy").is_file()):
            self.items.extend(sorted((scene / "camera_00").glob("*.png")))
        if not self.items:
            raise FileNotFoundError(
                f"{self.scenes_root}: no Booster scene (<scene>/disp_00.npy with <scene>/camera_00/*.png)"
            )

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> Sample:
        image_path = self.items[index]
        scene = image_path.parents[1]
        image, exif_focal = read_image(image_path)
        disparity_path = scene / "disp_00.npy"
        disparity = read_npy_map(disparity_path, "disparity")
        require_same_size(disparity_path, disparity, image, "disparity")
        calibrations = sorted(scene.glob("calib_00-*.xml"))
        if len(calibrations) != 1:
            raise FileNotFoundError(f"{scene}: expected one calib_00-XX.xml, found {len(calibrations)}")
        K, baseline_m = booster_calibration(calibrations[0])
        depth, valid = disparity_to_depth(disparity, K[0, 0], baseline_m)
        mask_path = scene / "mask_00.png"
        if mask_path.is_file():
            from PIL import Image

            with Image.open(mask_path) as png:
                mask = np.asarray(png)
            mask = mask if mask.ndim == 2 else mask[..., 0]
            require_same_size(mask_path, mask, image, "mask")
            valid &= mask > 0
            depth[~valid] = 0
        sample = Sample(
            name=relative_name(image_path, self.scenes_root),
            image=image,
            depth=depth,
            valid=valid,
            K=K,
            focal_px=float(K[0, 0]),
        )
        return with_exif_focal(sample, exif_focal)
