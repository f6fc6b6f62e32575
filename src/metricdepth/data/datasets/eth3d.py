"""ETH3D high-resolution multi-view training set (Schöps et al., CVPR 2017) as single-image depth.

Layout: ``multi_view_training_dslr_jpg.7z`` and ``multi_view_training_dslr_depth.7z`` (or the
per-scene ``<scene>_dslr_jpg.7z`` / ``<scene>_dslr_depth.7z``) unpacked into one root:

* ``<scene>/images/dslr_images/DSC_XXXX.JPG``: the original (distorted) 6048×4032 DSLR images;
* ``<scene>/ground_truth_depth/dslr_images/DSC_XXXX.JPG``: despite the name, raw little-endian
  float32, row-major, one value per pixel of that image; ``inf`` = no ground truth;
* ``<scene>/dslr_calibration_jpg/cameras.txt`` and ``images.txt``: COLMAP text calibration of those
  images (camera model THIN_PRISM_FISHEYE: fx fy cx cy k1 k2 p1 p2 k3 k4 sx1 sy1).

The depth maps are rendered from the laser scans for the *distorted* images ("they match the original
(distorted) versions of the images, not the pre-undistorted ones", ETH3D documentation); they do not
fit ``images/dslr_images_undistorted`` (whose per-camera sizes, e.g. 6205×4135, differ), so that
archive cannot be used here. Depth is Z along the optical axis in metres (the scans are metric).
Invalid (inf, ≤ 0) pixels have depth 0 and ``valid`` False.

Intrinsics: the pinhole part of each image's camera in ``dslr_calibration_jpg``. Source convention:
COLMAP, whose origin is the image's top-left corner, so the first pixel's centre is at (0.5, 0.5).
Conversion to OpenCV (first pixel centre at (0, 0)): cx − 0.5, cy − 0.5; fx, fy unchanged. The
images keep their mild fisheye/thin-prism distortion, which K does not describe. Without the
calibration files there is no K. Names are ``<scene>/DSC_XXXX``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path, PurePosixPath

import numpy as np

from ..sample import Sample
from ._common import pinhole, read_image, require_dir, select_names, valid_depth, with_exif_focal

__all__ = ["ETH3D", "read_colmap_cameras", "read_colmap_image_cameras", "read_eth3d_depth"]

_DEPTH_DIR = ("ground_truth_depth", "dslr_images")
_IMAGE_DIR = ("images", "dslr_images")
_CALIBRATION_DIR = "dslr_calibration_jpg"
# COLMAP camera models whose parameters start with (f, cx, cy) or (fx, fy, cx, cy).
_SINGLE_FOCAL = {"SIMPLE_PINHOLE", "SIMPLE_RADIAL", "RADIAL", "SIMPLE_RADIAL_FISHEYE", "RADIAL_FISHEYE"}
_TWO_FOCALS = {"PINHOLE", "OPENCV", "FULL_OPENCV", "OPENCV_FISHEYE", "FOV", "THIN_PRISM_FISHEYE"}
# (camera id → (K, width, height), image name → camera id) of one scene
_Calibration = tuple[dict[int, tuple[np.ndarray, int, int]], dict[str, int]]


def read_eth3d_depth(path: str | os.PathLike, height: int, width: int) -> np.ndarray:
    """An ETH3D ground-truth depth file as (height, width) float32 metres, ``inf`` where unknown."""
    depth = np.fromfile(path, dtype="<f4")
    if depth.size != height * width:
        raise ValueError(
            f"{path}: {depth.size} float32 values, expected {width}x{height}={width * height} "
            f"(ETH3D depth is raw float32 at the distorted image's resolution)"
        )
    return depth.reshape(height, width)


def read_colmap_cameras(path: str | os.PathLike) -> dict[int, tuple[np.ndarray, int, int]]:
    """COLMAP ``cameras.txt``: camera id → (OpenCV pinhole K, width, height); distortion is dropped."""
    cameras = {}
    for number, line in enumerate(Path(path).read_text().splitlines(), 1):
        fields = line.split()
        if not fields or fields[0].startswith("#"):
            continue
        where = f"{path}: line {number}"
        if len(fields) < 7:
            raise ValueError(f"{where}: expected 'CAMERA_ID MODEL WIDTH HEIGHT PARAMS...'")
        model = fields[1]
        try:
            params = [float(v) for v in fields[4:]]
            camera_id, width, height = int(fields[0]), int(fields[2]), int(fields[3])
        except ValueError as err:
            raise ValueError(f"{where}: {err}") from None
        if model in _SINGLE_FOCAL:
            fx = fy = params[0]
            cx, cy = params[1], params[2]
        elif model in _TWO_FOCALS and len(params) >= 4:
            fx, fy, cx, cy = params[:4]
        else:
            raise ValueError(f"{where}: unsupported COLMAP camera model {model!r}")
        cameras[camera_id] = (pinhole(fx, fy, cx - 0.5, cy - 0.5), width, height)
    return cameras


def read_colmap_image_cameras(path: str | os.PathLike) -> dict[str, int]:
    """COLMAP ``images.txt``: image file name (without folders) → camera id.

    Each image takes two lines, ``IMAGE_ID QW QX QY QZ TX TY TZ CAMERA_ID NAME`` then its 2-D points
    (possibly an empty line), so lines are paired after dropping comments.
    """
    lines = [line for line in Path(path).read_text().splitlines() if not line.startswith("#")]
    image_cameras = {}
    for number in range(0, len(lines), 2):
        fields = lines[number].split()
        if not fields:
            continue
        if len(fields) < 10:
            raise ValueError(
                f"{path}: {lines[number]!r} is not 'IMAGE_ID QW QX QY QZ TX TY TZ CAMERA_ID NAME'"
            )
        try:
            camera_id = int(fields[8])
        except ValueError:
            raise ValueError(f"{path}: camera id {fields[8]!r} of {fields[9]} is not an integer") from None
        image_cameras[PurePosixPath(" ".join(fields[9:])).name] = camera_id
    return image_cameras


class ETH3D:
    """ETH3D DSLR training images with laser-scan depth and (distortion-free part of the) intrinsics."""

    def __init__(self, root: str | os.PathLike, scenes: str | Iterable[str] | None = None) -> None:
        self.root = require_dir(root, "ETH3D")
        found = (p.name for p in self.root.iterdir() if p.joinpath(*_DEPTH_DIR).is_dir())
        self.scenes = select_names(found, scenes, self.root)
        self.items: list[tuple[str, Path, Path]] = []  # (scene, image, depth)
        depth_files = 0
        for scene in self.scenes:
            for depth in sorted(self.root.joinpath(scene, *_DEPTH_DIR).iterdir()):
                if not depth.is_file():
                    continue
                depth_files += 1
                image = self.root.joinpath(scene, *_IMAGE_DIR, depth.name)
                if image.is_file():
                    self.items.append((scene, image, depth))
        if not self.items:
            if depth_files:
                raise FileNotFoundError(
                    f"{self.root}: {depth_files} ETH3D depth maps but no matching <scene>/images/dslr_images/"
                    f"*.JPG; the depth fits the distorted images of multi_view_training_dslr_jpg.7z, not "
                    f"dslr_images_undistorted"
                )
            raise FileNotFoundError(f"{self.root}: no ETH3D scene (<scene>/ground_truth_depth/dslr_images/)")
        self._calibration: dict[str, _Calibration | None] = {}

    def _K(self, scene: str, image_name: str, height: int, width: int) -> np.ndarray | None:
        if scene not in self._calibration:
            folder = self.root / scene / _CALIBRATION_DIR
            cameras_txt, images_txt = folder / "cameras.txt", folder / "images.txt"
            if cameras_txt.is_file() and images_txt.is_file():
                self._calibration[scene] = (
                    read_colmap_cameras(cameras_txt),
                    read_colmap_image_cameras(images_txt),
                )
            else:
                self._calibration[scene] = None
        calibration = self._calibration[scene]
        if calibration is None:
            return None
        cameras, image_cameras = calibration
        folder = self.root / scene / _CALIBRATION_DIR
        if image_name not in image_cameras:
            raise ValueError(f"{folder / 'images.txt'}: no entry for {image_name}")
        camera_id = image_cameras[image_name]
        if camera_id not in cameras:
            raise ValueError(f"{folder / 'cameras.txt'}: no camera {camera_id} (used by {image_name})")
        K, cam_width, cam_height = cameras[camera_id]
        if (cam_width, cam_height) != (width, height):
            raise ValueError(
                f"{folder / 'cameras.txt'}: camera {camera_id} is {cam_width}x{cam_height} but {image_name} "
                f"is {width}x{height}"
            )
        return K.copy()

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> Sample:
        scene, image_path, depth_path = self.items[index]
        image, exif_focal = read_image(image_path)  # stored pixel order, like the depth
        height, width = image.shape[:2]
        depth = read_eth3d_depth(depth_path, height, width).astype(np.float32, copy=False)
        valid = valid_depth(depth)
        depth[~valid] = 0
        sample = Sample(name=f"{scene}/{image_path.stem}", image=image, depth=depth, valid=valid)
        K = self._K(scene, image_path.name, height, width)
        if K is not None:
            sample["K"] = K
            sample["focal_px"] = float(K[0, 0])
        return with_exif_focal(sample, exif_focal)
