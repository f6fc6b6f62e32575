"""NYU Depth V2 (Silberman et al., ECCV 2012): the 1449 labeled frames, 654 of them the official test set.

Two layouts are read:

* :class:`NYUv2Labeled`: the published ``nyu_depth_v2_labeled.mat`` (MATLAB v7.3, i.e. HDF5, read
  lazily with h5py, one frame per item). MATLAB stores arrays column-major, so h5py sees the axes
  reversed: ``images`` is (N, 3, W, H) uint8 and ``depths`` / ``rawDepths`` are (N, W, H) float32
  metres; frame ``n`` is ``images[n].transpose(2, 1, 0)`` (480×640×3) and ``depths[n].T`` (480×640).
  ``rawDepths`` is the projected Kinect depth with 0 where the sensor gave nothing: the default,
  because it is what the BTS extraction (and so the published 654-image numbers) uses;
  ``raw_depth=False`` reads the in-painted (filled) ``depths`` instead. The split is the official
  ``splits.mat`` (MATLAB v5: ``trainNdxs`` 795 and ``testNdxs`` 654 one-based frame indices), looked
  for beside the .mat unless given; ``split="all"`` needs none. Names are the one-based official
  index, ``"0001"`` … ``"1449"``.
* :class:`NYUv2Folder`: the BTS extraction ``official_splits/test/<scene_type>/rgb_XXXXX.jpg`` with
  ``sync_depth_XXXXX.png`` (uint16 millimetres, metres = value / 1000, 0 = invalid), as used by BTS,
  AdaBins, ZoeDepth, Depth Anything. BTS's extraction script writes ``rawDepths`` (not the filled
  ``depths``) truncated to whole millimetres, numbers files with the *zero-based* frame index
  (``rgb_00045`` is official frame 46) and blacks out a 7-pixel image border. Optional split file:
  BTS's ``nyudepthv2_test_files_with_gt.txt`` (``bathroom/rgb_00045.jpg bathroom/sync_depth_00045.png
  518.8579``, paths relative to the test folder, a leading ``/`` tolerated; the focal column is
  ignored). Without one, every ``rgb_*.jpg`` with its ``sync_depth_*.png`` under the test folder.

Depth is Z along the optical axis in metres; invalid (0 or non-finite) pixels have ``valid`` False.
Intrinsics (both readers): the RGB camera's calibration in the NYU toolbox ``camera_params.m``
(fx 518.8579, fy 519.4696, cx 325.5824, cy 253.7362 for the 640×480 frames). Source convention: MATLAB,
one-based (a MATLAB calibration, used by the toolbox on pixel indices 1…640 / 1…480, first pixel
centre at (1, 1)). Conversion to OpenCV (first pixel centre at (0, 0)): cx − 1, cy − 1, so
:data:`NYU_K` holds cx 324.5824, cy 252.7362; fx, fy unchanged.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..sample import Sample
from ._common import (
    one_based_to_opencv,
    pinhole,
    read_image,
    read_png_depth,
    read_split,
    relative_name,
    require_dir,
    require_same_size,
    valid_depth,
    with_exif_focal,
)

__all__ = ["NYU_K", "NYUv2Folder", "NYUv2Labeled"]

NYU_K = one_based_to_opencv(
    pinhole(5.1885790117450188e02, 5.1946961112127485e02, 3.2558244941119034e02, 2.5373616633400465e02)
)
"""The Kinect RGB camera intrinsics of NYU Depth V2 (toolbox ``camera_params.m``), 640×480 pixels,
in the OpenCV convention (the toolbox's one-based cx, cy minus 1)."""

_SPLIT_KEYS = {"train": "trainNdxs", "test": "testNdxs"}


def _official_indices(splits_path: Path, split: str, count: int) -> list[int]:
    """One-based frame indices of ``split`` from ``splits.mat``, checked against the frame count."""
    from scipy.io import loadmat

    if not splits_path.is_file():
        raise FileNotFoundError(f"{splits_path}: NYUv2 split file (splits.mat) not found")
    key = _SPLIT_KEYS[split]
    content = loadmat(splits_path)
    if key not in content:
        raise ValueError(f"{splits_path}: no {key} (expected the official NYUv2 splits.mat)")
    values = np.asarray(content[key], dtype=np.float64).ravel()
    indices = values.astype(np.int64)
    if not np.array_equal(indices, values) or indices.size == 0 or indices.min() < 1 or indices.max() > count:
        raise ValueError(f"{splits_path}: {key} must hold one-based indices in 1..{count}")
    return sorted(set(indices.tolist()))


class NYUv2Labeled:
    """Frames of ``nyu_depth_v2_labeled.mat`` in an official split (``"test"``, ``"train"`` or ``"all"``).

    Depth from ``rawDepths`` (as BTS evaluates), or from the filled ``depths`` with ``raw_depth=False``.
    """

    def __init__(
        self,
        mat_path: str | os.PathLike,
        splits_path: str | os.PathLike | None = None,
        split: str = "test",
        raw_depth: bool = True,
    ) -> None:
        import h5py

        if split not in ("test", "train", "all"):
            raise ValueError(f"NYUv2 split must be 'test', 'train' or 'all', got {split!r}")
        self.mat_path = Path(mat_path)
        if not self.mat_path.is_file():
            raise FileNotFoundError(
                f"{self.mat_path}: NYUv2 labeled .mat (nyu_depth_v2_labeled.mat) not found"
            )
        self.depth_key = "rawDepths" if raw_depth else "depths"
        try:
            with h5py.File(self.mat_path, "r") as mat:
                for key in ("images", self.depth_key):
                    if key not in mat:
                        raise ValueError(f"{self.mat_path}: no dataset {key!r} in the NYUv2 labeled .mat")
                images, depths = mat["images"].shape, mat[self.depth_key].shape
        except OSError as err:
            raise ValueError(f"{self.mat_path}: not a MATLAB v7.3 (HDF5) file ({err})") from None
        if len(images) != 4 or images[1] != 3 or depths != (images[0], images[2], images[3]):
            raise ValueError(
                f"{self.mat_path}: expected images (N, 3, W, H) and {self.depth_key} (N, W, H), "
                f"got {images} and {depths}"
            )
        count = images[0]
        if split == "all":
            self.indices = list(range(1, count + 1))
        else:
            splits = Path(splits_path) if splits_path is not None else self.mat_path.with_name("splits.mat")
            self.indices = _official_indices(splits, split, count)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, index: int) -> Sample:
        import h5py

        frame = self.indices[index]
        with h5py.File(self.mat_path, "r") as mat:
            image = np.ascontiguousarray(mat["images"][frame - 1].transpose(2, 1, 0), dtype=np.uint8)
            depth = np.ascontiguousarray(mat[self.depth_key][frame - 1].T, dtype=np.float32)
        return Sample(name=f"{frame:04d}", image=image, depth=depth, valid=valid_depth(depth), K=NYU_K.copy())


def _nyu_test_folder(root: Path) -> Path:
    for candidate in (root / "official_splits" / "test", root / "test"):
        if candidate.is_dir():
            return candidate
    return root


class NYUv2Folder:
    """The BTS extraction of the NYUv2 test set (``official_splits/test/<scene>/rgb_*.jpg``), sorted."""

    def __init__(self, root: str | os.PathLike, split_file: str | os.PathLike | None = None) -> None:
        self.root = _nyu_test_folder(require_dir(root, "NYUv2 (official_splits/test)"))
        if split_file is not None:
            self.items = []
            for fields in read_split(split_file):
                if len(fields) < 2:
                    raise ValueError(f"{split_file}: line {' '.join(fields)!r} lacks the depth path")
                rgb, depth = (self.root / field.lstrip("/") for field in fields[:2])
                for path in (rgb, depth):
                    if not path.is_file():
                        raise FileNotFoundError(f"{path}: listed in {split_file} but not found")
                self.items.append((rgb, depth))
            self.items = sorted(set(self.items))
        else:
            rgbs = sorted(self.root.rglob("rgb_*.jpg"))
            pairs = ((rgb, rgb.with_name("sync_depth_" + rgb.stem[len("rgb_") :] + ".png")) for rgb in rgbs)
            self.items = [(rgb, depth) for rgb, depth in pairs if depth.is_file()]
        if not self.items:
            raise FileNotFoundError(
                f"{self.root}: no NYUv2 test pair (<scene>/rgb_XXXXX.jpg with sync_depth_XXXXX.png) found"
            )

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> Sample:
        rgb_path, depth_path = self.items[index]
        image, exif_focal = read_image(rgb_path)
        depth = read_png_depth(depth_path, 1e-3)
        require_same_size(depth_path, depth, image, "depth")
        sample = Sample(
            name=relative_name(rgb_path, self.root),
            image=image,
            depth=depth,
            valid=valid_depth(depth),
            K=NYU_K.copy(),
        )
        return with_exif_focal(sample, exif_focal)
