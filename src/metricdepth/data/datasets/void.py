"""VOID (Wong et al., RA-L 2020): indoor/outdoor RealSense D435i sequences with metric depth, 640×480.

Layout of the release (``void_release``): ``void_1500/data/<sequence>/image/<timestamp>.png`` (RGB),
``ground_truth/<timestamp>.png`` (the aligned active-stereo depth) and ``K.txt`` per sequence, beside
``sparse_depth``/``validity_map``/``absolute_pose`` that this reader does not use. ``root`` may be the
folder holding ``void_1500``, ``void_1500`` itself, or its ``data`` folder. The images and ground truth
of ``void_150``/``void_500`` are the same frames; only the sparse inputs differ.

Depth: 16-bit PNG, metres = value / 256, 0 = no measurement (``valid`` False), as the dataset's
``data_utils.load_depth`` decodes it.

Intrinsics: ``<sequence>/K.txt``, a 3×3 matrix as whitespace-separated text (``np.loadtxt`` form).
Source convention: zero-based pixel centres (the RealSense D435i calibration; librealsense puts pixel
[0, 0] at the centre of the top-left pixel), i.e. already OpenCV: no conversion.

Split: the official ``test_image.txt`` (800 frames of 8 test sequences), one image path per line
relative to the folder holding ``void_1500`` (``void_1500/data/desktop2/image/1552625295.7828.png``);
leading components are dropped until the path exists under the data folder, so lists relative to any
ancestor work. Without a split file: every image that has its ground truth. Names are paths relative
to the data folder without extension (``desktop2/image/1552625295.7828``).
"""

from __future__ import annotations

import os
from pathlib import Path

from ..sample import Sample
from ._common import (
    read_image,
    read_matrix_txt,
    read_png_depth,
    read_split,
    relative_name,
    require_dir,
    require_same_size,
    resolve_listed,
    valid_depth,
    with_exif_focal,
)

__all__ = ["Void"]


def _ground_truth(image: Path) -> Path:
    return image.parents[1] / "ground_truth" / image.name


class Void:
    """VOID frames with ground truth, from an image list (e.g. ``test_image.txt``) or all of them."""

    def __init__(self, root: str | os.PathLike, split_file: str | os.PathLike | None = None) -> None:
        root = require_dir(root, "VOID")
        self.data = next(
            (folder for folder in (root / "void_1500" / "data", root / "data") if folder.is_dir()), root
        )
        if split_file is not None:
            self.images = []
            for fields in read_split(split_file):
                image = resolve_listed(self.data, fields[0])
                if image is None or not image.is_file():
                    raise FileNotFoundError(f"{split_file}: {fields[0]} not found under {self.data}")
                if not _ground_truth(image).is_file():
                    raise FileNotFoundError(f"{_ground_truth(image)}: ground truth of {fields[0]} not found")
                self.images.append(image)
            self.images = sorted(set(self.images))
        else:
            self.images = sorted(p for p in self.data.glob("*/image/*.png") if _ground_truth(p).is_file())
        if not self.images:
            raise FileNotFoundError(
                f"{self.data}: no VOID frame (<sequence>/image/<timestamp>.png with ground_truth/) found"
            )

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> Sample:
        image_path = self.images[index]
        image, exif_focal = read_image(image_path)
        depth = read_png_depth(_ground_truth(image_path), 1.0 / 256.0)
        require_same_size(_ground_truth(image_path), depth, image, "depth")
        K_path = image_path.parents[1] / "K.txt"
        if not K_path.is_file():
            raise FileNotFoundError(f"{K_path}: VOID intrinsics not found")
        sample = Sample(
            name=relative_name(image_path, self.data),
            image=image,
            depth=depth,
            valid=valid_depth(depth),
            K=read_matrix_txt(K_path),
        )
        return with_exif_focal(sample, exif_focal)
