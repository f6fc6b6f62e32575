"""Middlebury 2014 stereo scenes as metric depth (Scharstein et al., GCPR 2014).

Layout of one scene folder, as published: ``im0.png`` (left image), ``disp0.pfm`` (left disparity in
pixels, ``inf`` where unknown; ``disp0GT.pfm`` in some releases) and ``calib.txt``
(``cam0=[f 0 cx; 0 f cy; 0 0 1]``, ``doffs``, ``baseline`` in mm, ``width``, ``height``, ...).

Depth along the optical axis: Z = baseline · f / (d + doffs), with baseline converted to metres.

Intrinsics: ``cam0``. Source convention: calib.txt does not state a pixel origin; it is taken as
OpenCV's (zero-based, pixel centres at integer coordinates, as the disparity maps index pixels): no
conversion.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

from ...io.pfm import read_pfm
from ..sample import Sample
from ._common import disparity_to_depth, read_image, require_same_size, with_exif_focal

__all__ = ["Middlebury2014", "middlebury_calibration"]


def middlebury_calibration(path: str | os.PathLike) -> dict[str, object]:
    """Parse ``calib.txt``: ``cam0``/``cam1`` as (3, 3) arrays, everything else as numbers."""
    calib: dict[str, object] = {}
    for line in Path(path).read_text().splitlines():
        if "=" not in line:
            continue
        key, value = (part.strip() for part in line.split("=", 1))
        if value.startswith("["):
            rows = [row.split() for row in value.strip("[]").split(";")]
            calib[key] = np.array(rows, dtype=np.float64)
        else:
            calib[key] = float(value) if re.fullmatch(r"[-+0-9.eE]+", value) else value
    for required in ("cam0", "doffs", "baseline"):
        if required not in calib:
            raise ValueError(f"{path}: calib.txt lacks {required}")
    return calib


class Middlebury2014:
    """Scenes under ``root`` (each a folder with ``calib.txt``), sorted by name.

    ``ds[i]`` is a sample with image, metric depth (0 where unknown), valid mask and K (cam0).
    """

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root)
        self.scenes = sorted(p.parent for p in self.root.rglob("calib.txt"))
        if not self.scenes:
            raise FileNotFoundError(f"{self.root}: no Middlebury scene (folder with calib.txt) found")

    def __len__(self) -> int:
        return len(self.scenes)

    def __getitem__(self, index: int) -> Sample:
        scene = self.scenes[index]
        calib = middlebury_calibration(scene / "calib.txt")
        disparity_file = next(
            (scene / n for n in ("disp0.pfm", "disp0GT.pfm") if (scene / n).is_file()), None
        )
        if disparity_file is None:
            raise FileNotFoundError(f"{scene}: no disp0.pfm")
        disparity = read_pfm(disparity_file)
        K = np.asarray(calib["cam0"], dtype=np.float64)
        baseline_m = float(calib["baseline"]) / 1000.0
        depth, valid = disparity_to_depth(disparity + float(calib["doffs"]), K[0, 0], baseline_m)
        image, exif_focal = read_image(scene / "im0.png")
        require_same_size(disparity_file, depth, image, "disparity")
        sample = Sample(
            name=scene.name if scene == self.root else scene.relative_to(self.root).as_posix(),
            image=image,
            depth=depth,
            valid=valid,
            K=K,
        )
        return with_exif_focal(sample, exif_focal)
