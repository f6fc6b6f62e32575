"""iBims-1 (Koch et al., ECCV Workshops 2018): 100 indoor RGB-D images from a laser scanner.

Layout: ``<root>/ibims1_core_mat/<name>.mat`` (``root`` may also be that folder itself) and
``imagelist.txt`` (one name per line, beside the .mat files or in ``root``; without it, every .mat).
Each file is MATLAB v5 holding a struct ``data`` with fields ``rgb`` (480×640×3 uint8), ``depth``
(float metres along the optical axis, 0 = missing), ``calib``, ``mask_invalid``, ``mask_transp``,
``edges`` and plane masks/parameters (read with ``scipy.io.loadmat``).

Validity, as in the official evaluation script (``evaluate_ibims.py``: ``mask_valid = mask_transp ·
mask_invalid · (depth != 0)``): ``mask_invalid`` is 1 on valid pixels and ``mask_transp`` is 1 off
transparent surfaces, so ``valid`` = depth finite and > 0 and both masks non-zero.

Intrinsics: ``calib`` is MATLAB's transposed layout with one-based pixel coordinates (the official
script reads fx = calib[0,0], fy = calib[1,1], cx = calib[2,0], cy = calib[2,1] and projects pixel
columns 1…640). Source convention: MATLAB, one-based (first pixel centre at (1, 1)). Conversion to
OpenCV (first pixel centre at (0, 0)): cx − 1, cy − 1. A calib already in OpenCV layout (cx in [0,2])
is taken as it is. ``sample["edges"]`` is the ground-truth depth-edge map
(bool) used by the depth boundary error. Names are the .mat stems.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..sample import Sample
from ._common import one_based_to_opencv, pinhole, read_split, require_dir, require_same_size, valid_depth

__all__ = ["IBims1", "ibims_intrinsics"]

_FIELDS = ("rgb", "depth", "calib", "mask_invalid", "mask_transp", "edges")


def ibims_intrinsics(calib: np.ndarray) -> np.ndarray:
    """OpenCV K (zero-based pixel centres) from an iBims-1 ``calib`` matrix (MATLAB layout, one-based)."""
    calib = np.asarray(calib, dtype=np.float64)
    if calib.shape != (3, 3):
        raise ValueError(f"iBims-1 calib must be 3x3, got {calib.shape}")
    if calib[0, 2] == 0 and calib[1, 2] == 0:  # [fx 0 0; s fy 0; cx cy 1], one-based
        return one_based_to_opencv(pinhole(calib[0, 0], calib[1, 1], calib[2, 0], calib[2, 1]))
    return calib.copy()


class IBims1:
    """The iBims-1 core images with laser-scan depth, validity from the official masks, and edges."""

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = require_dir(root, "iBims-1")
        nested = self.root / "ibims1_core_mat"
        self.mat_root = nested if nested.is_dir() else self.root
        lists = [p for p in (self.mat_root / "imagelist.txt", self.root / "imagelist.txt") if p.is_file()]
        if lists:
            names = [row[0] for row in read_split(lists[0])]
            missing = [n for n in names if not (self.mat_root / f"{n}.mat").is_file()]
            if missing:
                raise FileNotFoundError(
                    f"{lists[0]}: {len(missing)} listed image(s) have no .mat in {self.mat_root}, "
                    f"e.g. {missing[0]}.mat"
                )
            self.names = names
        else:
            self.names = sorted(p.stem for p in self.mat_root.glob("*.mat"))
        if not self.names:
            raise FileNotFoundError(f"{self.mat_root}: no iBims-1 .mat file (ibims1_core_mat/<name>.mat)")

    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(self, index: int) -> Sample:
        from scipy.io import loadmat
        from scipy.io.matlab import MatReadError

        path: Path = self.mat_root / f"{self.names[index]}.mat"
        try:
            content = loadmat(path, squeeze_me=True, struct_as_record=False)
        except (MatReadError, NotImplementedError, ValueError, TypeError, OSError) as err:
            raise ValueError(f"{path}: not a readable MATLAB .mat file ({err})") from None
        data = content.get("data")
        missing = [f for f in _FIELDS if not hasattr(data, f)]
        if missing:
            raise ValueError(
                f"{path}: expected a struct 'data' with fields {', '.join(_FIELDS)}; "
                f"missing {', '.join(missing)}"
            )
        image = np.asarray(data.rgb)
        if image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"{path}: rgb must be HxWx3, got {image.shape}")
        image = np.ascontiguousarray(image, dtype=np.uint8)
        planes = {
            key: np.asarray(getattr(data, key)) for key in ("depth", "mask_invalid", "mask_transp", "edges")
        }
        for key, plane in planes.items():
            require_same_size(path, plane, image, key)
        depth = planes["depth"].astype(np.float32)
        valid = valid_depth(depth) & (planes["mask_invalid"] != 0) & (planes["mask_transp"] != 0)
        depth[~valid] = 0
        K = ibims_intrinsics(data.calib)
        sample = Sample(
            name=self.names[index], image=image, depth=depth, valid=valid, K=K, focal_px=float(K[0, 0])
        )
        sample["edges"] = planes["edges"] != 0  # type: ignore[typeddict-unknown-key]
        return sample
