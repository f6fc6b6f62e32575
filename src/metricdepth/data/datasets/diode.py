"""DIODE (Vasiljevic et al., 2019): dense laser-scanner depth of indoor and outdoor scenes.

Layout of ``val.tar.gz`` (``train.tar.gz`` is the same under ``train/``):
``<split>/{indoors,outdoor}/scene_XXXXX/scan_XXXXX/<name>.png`` (1024×768 RGB) with
``<name>_depth.npy`` ((768, 1024, 1) float32 metres) and ``<name>_depth_mask.npy`` ((768, 1024);
1 = valid sensor return, 0 otherwise, per the devkit README). ``valid`` = mask non-zero and depth
finite and > 0; depth is 0 elsewhere. Depth is taken to be along the optical axis (the devkit calls it
"depth" without further qualification).

Intrinsics: the official devkit's ``intrinsics.txt`` gives the computational camera that cut every
RGB-D crop from the scans, ``[fx, fy, cx, cy] = [886.81, 927.06, 512, 384]`` (fx and fy differ); it
is every sample's K unless another ``K`` is passed. Source convention: not documented by the devkit
(cx, cy are W/2, H/2); taken as OpenCV's (zero-based pixel centres): no conversion; a ``K`` passed in
must be in the OpenCV convention. ``scene_type`` is ``"indoors"``, ``"outdoor"``
(the dataset's own folder names) or ``"all"``. Names are ``<scene_type>/scene_X/scan_X/<name>``.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..sample import Sample
from ._common import (
    pinhole,
    read_image,
    read_npy_map,
    relative_name,
    require_dir,
    require_same_size,
    valid_depth,
    with_exif_focal,
)

__all__ = ["DIODE_K", "Diode"]

DIODE_K = pinhole(886.81, 927.06, 512.0, 384.0)
"""DIODE's camera for 1024×768 crops, from the devkit's ``intrinsics.txt``."""

_SCENE_TYPES = {"indoors": ("indoors",), "outdoor": ("outdoor",), "all": ("indoors", "outdoor")}


class Diode:
    """DIODE images of one split and scene type with depth, validity masks and the devkit intrinsics."""

    def __init__(
        self,
        root: str | os.PathLike,
        split: str = "val",
        scene_type: str = "all",
        K: np.ndarray | None = None,
    ) -> None:
        if scene_type not in _SCENE_TYPES:
            raise ValueError(f"DIODE scene_type must be one of {tuple(_SCENE_TYPES)}, got {scene_type!r}")
        self.root = require_dir(root, "DIODE")
        self.split_root = require_dir(self.root / split, f"DIODE {split!r} split")
        self.K = DIODE_K.copy() if K is None else np.asarray(K, dtype=np.float64)
        if self.K.shape != (3, 3):
            raise ValueError(f"DIODE K must be 3x3, got {self.K.shape}")
        self.items: list[Path] = []
        for folder in _SCENE_TYPES[scene_type]:
            images = (self.split_root / folder).glob("scene_*/scan_*/*.png")
            self.items.extend(sorted(p for p in images if p.with_name(f"{p.stem}_depth.npy").is_file()))
        if not self.items:
            raise FileNotFoundError(
                f"{self.split_root}: no DIODE image ({'|'.join(_SCENE_TYPES[scene_type])}/scene_*/scan_*/"
                f"<name>.png with <name>_depth.npy)"
            )

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> Sample:
        image_path = self.items[index]
        image, exif_focal = read_image(image_path)
        depth_path = image_path.with_name(f"{image_path.stem}_depth.npy")
        mask_path = image_path.with_name(f"{image_path.stem}_depth_mask.npy")
        depth = read_npy_map(depth_path, "DIODE depth").astype(np.float32)
        mask = read_npy_map(mask_path, "DIODE depth mask")
        require_same_size(depth_path, depth, image, "depth")
        require_same_size(mask_path, mask, image, "depth mask")
        valid = valid_depth(depth) & (mask != 0)
        depth[~valid] = 0
        sample = Sample(
            name=relative_name(image_path, self.split_root),
            image=image,
            depth=depth,
            valid=valid,
            K=self.K.copy(),
            focal_px=float(self.K[0, 0]),
        )
        return with_exif_focal(sample, exif_focal)
