"""KITTI Eigen test split with the annotated depth maps (Uhrig et al., 3DV 2017), as BTS/ZoeDepth read it.

Layout:

* raw images (KITTI raw, synced+rectified): ``<raw_root>/<date>/<date>_drive_XXXX_sync/image_02/data/
  <frame>.png`` (``image_03`` for the right camera), and ``<raw_root>/<date>/calib_cam_to_cam.txt``.
* ground truth (the "annotated depth maps" archive): ``<depth_root>/<drive>_sync/proj_depth/groundtruth/
  image_02/<frame>.png``; the archive splits drives into ``train/`` and ``val/``, so the reader looks in
  ``depth_root``, ``depth_root/train`` and ``depth_root/val`` (and ``depth_root/<date>`` in case the
  maps were merged into the raw tree). ``depth_root`` defaults to ``raw_root``.

Depth: 16-bit PNG, metres = value / 256, 0 = no measurement (``valid`` False).

Intrinsics: ``P_rect_02`` (``P_rect_03`` for image_03) of the drive date's ``calib_cam_to_cam.txt``, a
3×4 projection matrix read row-major: fx = P[0,0], fy = P[1,1], cx = P[0,2], cy = P[1,2]. If that file
is missing, the split file's focal column (e.g. 721.5377) becomes ``focal_px`` and there is no K.
Source convention: zero-based pixel coordinates with pixel centres at integers (the KITTI devkits give
image positions, e.g. the object benchmark's 2-D boxes that ``P_rect`` projections match, as 0-based
indices), i.e. already OpenCV: no conversion.

Split: BTS's ``eigen_test_files_with_gt.txt`` (697 lines of the Eigen test split, 652 with ground
truth), one ``<image> <groundtruth|None> <focal>`` per line, the image path with or without the leading
``<date>/`` folder. ``None`` lines are skipped and kept in :attr:`KittiEigen.skipped`. Without a split
file: every image_02 frame whose ground truth exists and whose raw image is present.

``kb_crop=True`` applies the KITTI benchmark crop (bottom 352 rows, the centred 1216 columns:
top = H − 352, left = (W − 1216) // 2) to image, depth, valid and K, as BTS and ZoeDepth do.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

from ..sample import Sample
from ._common import (
    crop_sample,
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

__all__ = ["KB_CROP_HEIGHT", "KB_CROP_WIDTH", "KittiEigen", "kitti_calibration"]

KB_CROP_HEIGHT = 352
KB_CROP_WIDTH = 1216

_DRIVE = re.compile(r"^(\d{4}_\d{2}_\d{2})_drive_\d{4}_sync$")
_GT_PARTS = ("proj_depth", "groundtruth")


def kitti_calibration(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Every numeric ``key: v1 v2 ...`` line of a KITTI calibration file, as float64 vectors."""
    calib = {}
    for line in Path(path).read_text().splitlines():
        key, sep, value = line.partition(":")
        if not sep:
            continue
        try:
            calib[key.strip()] = np.array([float(v) for v in value.split()], dtype=np.float64)
        except ValueError:
            continue  # calib_time and other non-numeric entries
    return calib


def _drive_date(drive: str, where: str) -> str:
    match = _DRIVE.match(drive)
    if match is None:
        raise ValueError(f"{where}: {drive!r} is not a KITTI drive folder (YYYY_MM_DD_drive_NNNN_sync)")
    return match.group(1)


class KittiEigen:
    """KITTI frames with annotated ground truth, from the Eigen split file or every frame that has GT.

    ``skipped`` lists the split's images whose ground truth is ``None``.
    """

    def __init__(
        self,
        raw_root: str | os.PathLike,
        depth_root: str | os.PathLike | None = None,
        split_file: str | os.PathLike | None = None,
        kb_crop: bool = True,
    ) -> None:
        self.raw_root = require_dir(raw_root, "KITTI raw")
        self.depth_root = require_dir(depth_root, "KITTI annotated depth") if depth_root else self.raw_root
        self.kb_crop = kb_crop
        self.skipped: list[str] = []
        # (image, ground truth, focal from the split file or None)
        self.items: list[tuple[Path, Path, float | None]] = []
        if split_file is not None:
            self._from_split(Path(split_file))
        else:
            self._from_ground_truth()
        by_image: dict[Path, tuple[Path, Path, float | None]] = {}
        for item in self.items:
            by_image.setdefault(item[0], item)  # a frame listed twice is read once
        self.items = [by_image[image] for image in sorted(by_image)]
        if not self.items:
            raise FileNotFoundError(
                f"{self.raw_root}: no KITTI frame with annotated depth found (looked for <drive>_sync/"
                f"proj_depth/groundtruth/image_02/*.png under {self.depth_root}, its train/ and val/)"
            )
        self._calibration: dict[Path, dict[str, np.ndarray] | None] = {}

    def _gt_bases(self, date: str) -> list[Path]:
        root = self.depth_root
        return [root, root / "train", root / "val", root / date]

    def _from_split(self, split_file: Path) -> None:
        for fields in read_split(split_file):
            where = f"{split_file}: line {' '.join(fields)!r}"
            if len(fields) < 2:
                raise ValueError(f"{where} lacks the ground-truth column")
            image_rel = fields[0].lstrip("/")
            if fields[1] == "None":
                self.skipped.append(image_rel)
                continue
            try:
                focal = float(fields[2]) if len(fields) > 2 else None
            except ValueError:
                raise ValueError(f"{where}: the focal column is not a number") from None
            parts = Path(image_rel).parts
            date = _drive_date(next((p for p in parts[:2] if _DRIVE.match(p)), parts[0]), where)
            image = next(
                (p for p in (self.raw_root / image_rel, self.raw_root / date / image_rel) if p.is_file()),
                None,
            )
            if image is None:
                raise FileNotFoundError(
                    f"{where}: image not found under {self.raw_root} (nor {self.raw_root / date})"
                )
            gt_rel = fields[1].lstrip("/")
            gt = next((base / gt_rel for base in self._gt_bases(date) if (base / gt_rel).is_file()), None)
            if gt is None:
                raise FileNotFoundError(
                    f"{where}: ground truth not found under {self.depth_root} (nor train/, val/)"
                )
            self.items.append((image, gt, focal))

    def _from_ground_truth(self) -> None:
        seen = set()
        for base in (self.depth_root, self.depth_root / "train", self.depth_root / "val"):
            for gt in base.glob("*_sync/proj_depth/groundtruth/image_02/*.png"):
                drive = gt.parents[3].name
                date = _DRIVE.match(drive)
                if date is None:
                    continue
                image = self.raw_root / date.group(1) / drive / "image_02" / "data" / gt.name
                if image.is_file() and image not in seen:
                    seen.add(image)
                    self.items.append((image, gt, None))

    def _K(self, image: Path, focal: float | None) -> tuple[np.ndarray | None, float | None]:
        camera, drive = image.parents[1].name, image.parents[2].name  # .../<drive>/image_0X/data/<frame>
        calib_path = self.raw_root / _drive_date(drive, str(image)) / "calib_cam_to_cam.txt"
        if calib_path not in self._calibration:
            self._calibration[calib_path] = kitti_calibration(calib_path) if calib_path.is_file() else None
        calib = self._calibration[calib_path]
        if calib is None:
            if focal is None:
                raise FileNotFoundError(
                    f"{calib_path}: KITTI calibration not found (needed for K of {image})"
                )
            return None, focal
        key = "P_rect_" + camera[-2:]
        if key not in calib or calib[key].size != 12:
            raise ValueError(f"{calib_path}: no 3x4 {key}")
        P = calib[key].reshape(3, 4)
        return pinhole(P[0, 0], P[1, 1], P[0, 2], P[1, 2]), float(P[0, 0])

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> Sample:
        image_path, gt_path, focal = self.items[index]
        image, exif_focal = read_image(image_path)
        depth = read_png_depth(gt_path, 1.0 / 256.0)
        require_same_size(gt_path, depth, image, "depth")
        K, focal_px = self._K(image_path, focal)
        sample = Sample(
            name=relative_name(image_path, self.raw_root),
            image=image,
            depth=depth,
            valid=valid_depth(depth),
        )
        with_exif_focal(sample, exif_focal)
        if K is not None:
            sample["K"] = K
        if focal_px is not None:
            sample["focal_px"] = focal_px
        if self.kb_crop:
            height, width = depth.shape
            if height < KB_CROP_HEIGHT or width < KB_CROP_WIDTH:
                raise ValueError(
                    f"{image_path}: {width}x{height} is smaller than the KITTI benchmark crop 1216x352"
                )
            top, left = height - KB_CROP_HEIGHT, (width - KB_CROP_WIDTH) // 2
            sample = crop_sample(sample, top, left, KB_CROP_HEIGHT, KB_CROP_WIDTH)
        return sample
