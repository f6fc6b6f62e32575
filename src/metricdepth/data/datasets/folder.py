"""Users' own data: a folder of images with depth maps beside them, and optional intrinsics.

For every image ``NAME.{jpg,png,...}`` (searched recursively, skipping depth files), depth comes from
the first that exists of ``NAME_depth.npy`` / ``NAME.npy`` (float metres), ``NAME_depth.npz``
(key ``depth``, as ``metricdepth synth`` writes it) or ``NAME_depth.png`` (16-bit; scale from its
``depth_scale`` text chunk, else millimetres). A prediction's files (``metricdepth predict``
outputs) are never ground truth, nor is the ``NAME.json`` written with them. Sample names are the
image paths relative to the root without extension; of two images that share a stem (``a.jpg``,
``a.png``) the second is named ``a_png``. ``NAME.json`` may give ``K`` (3×3) or ``fx``/``fy``/
``cx``/``cy`` or ``focal_px``, in the OpenCV convention (first pixel centre at (0, 0), as metricdepth's
own intrinsics JSON writes it): taken as given, no conversion. ``focal_px`` (ground truth) comes only
from the JSON (its ``focal_px``, else K's fx); an EXIF 35 mm focal in the image becomes
``exif_focal_px``, not ``focal_px``. Depth ≤ 0 or non-finite is invalid.

The ``.npz`` may also hold per-pixel ``valid``, ``instance``, ``semantic`` and ``mask`` arrays, and
the JSON ``fov_deg``, ``family``, ``instance_class`` and ``captions``: all of them become sample
fields (``metricdepth synth`` writes this complete form).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from ...io.images import IMAGE_EXTENSIONS
from ...io.writers import is_prediction_output, read_depth_png
from ..sample import Sample
from ._common import read_image, read_npy_map, read_npz, relative_name, require_same_size, with_exif_focal

__all__ = ["FolderDataset"]


def _depth_file(image: Path) -> Path | None:
    """The image's ground-truth depth file; files metricdepth wrote (predictions) are never one."""
    for suffix in ("_depth.npy", ".npy", "_depth.npz", "_depth.png"):
        candidate = image.with_name(image.stem + suffix)
        if candidate.is_file() and candidate != image and not is_prediction_output(candidate):
            return candidate
    return None


PIXEL_FIELDS = ("valid", "instance", "semantic", "mask")
"""Optional per-pixel arrays of a ``NAME_depth.npz`` that become sample fields."""
META_FIELDS = ("fov_deg", "family", "instance_class", "captions")
"""Optional ``NAME.json`` entries that become sample fields."""


def _read_depth(path: Path) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Depth in metres and any extra per-pixel arrays stored with it.

    A missing, truncated or foreign file raises an error naming it.
    """
    if path.suffix == ".npy":
        return read_npy_map(path, "depth").astype(np.float32), {}
    if path.suffix == ".npz":
        arrays = read_npz(path, "depth", required=("depth",), optional=PIXEL_FIELDS)
        return arrays.pop("depth").astype(np.float32), arrays
    try:
        depth = read_depth_png(path)  # scale and invalid value from its metadata
    except (OSError, ValueError, SyntaxError, EOFError) as err:
        raise ValueError(f"{path}: not a readable depth PNG: truncated or not an image ({err})") from None
    return np.nan_to_num(depth, nan=0.0), {}


class FolderDataset:
    """Images with depth under ``root``; images without a depth file are skipped."""

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root)
        images = sorted(
            p
            for p in self.root.rglob("*")
            if p.suffix.lower() in IMAGE_EXTENSIONS and not p.stem.endswith(("_depth", "_inverse_depth"))
        )
        self.items = [(p, d) for p in images if (d := _depth_file(p)) is not None]
        if not self.items:
            raise FileNotFoundError(f"{self.root}: no image with a depth file beside it")
        # Names are unique, ignoring case (they name output files): of images that share a stem
        # (a.jpg, a.png) the first keeps it and the next gets its extension (a_png), as ``predict`` does.
        self.names: list[str] = []
        used: set[str] = set()
        for path, _ in self.items:
            name = relative_name(path, self.root)
            if name.casefold() in used:
                name = f"{name}_{path.suffix.lstrip('.').lower()}"
            base, n = name, 2
            while name.casefold() in used:
                name, n = f"{base}_{n}", n + 1
            used.add(name.casefold())
            self.names.append(name)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> Sample:
        image_path, depth_path = self.items[index]
        image, exif_focal = read_image(image_path)  # stored pixel order, like the depth
        depth, pixel_fields = _read_depth(depth_path)
        require_same_size(depth_path, depth, image, "depth")
        sample = Sample(
            name=self.names[index],
            image=image,
            depth=depth,
            valid=np.isfinite(depth) & (depth > 0),
        )
        for key, value in pixel_fields.items():
            if value.shape != depth.shape:
                raise ValueError(f"{depth_path}: {key} is {value.shape}, depth {depth.shape}")
            sample[key] = value.astype(bool) if key == "valid" else value  # type: ignore[literal-required]
        meta_path = image_path.with_suffix(".json")
        try:
            # A NAME.json metricdepth wrote is a prediction's camera, not ground truth.
            ours = is_prediction_output(meta_path)
            meta = json.loads(meta_path.read_text()) if meta_path.is_file() and not ours else {}
            if "K" in meta:
                sample["K"] = np.asarray(meta["K"], dtype=np.float64).reshape(3, 3)
            elif {"fx", "cx", "cy"} <= meta.keys():
                sample["K"] = np.array(
                    [[meta["fx"], 0, meta["cx"]], [0, meta.get("fy", meta["fx"]), meta["cy"]], [0, 0, 1.0]],
                    dtype=np.float64,
                )
        except (ValueError, TypeError) as err:  # bad JSON, K not 3x3, non-numbers
            raise ValueError(f"{meta_path}: unreadable intrinsics ({err})") from None
        sample.update({k: meta[k] for k in META_FIELDS if k in meta})  # type: ignore[typeddict-item]
        focal = meta.get("focal_px", sample["K"][0, 0] if "K" in sample else None)
        if focal is not None:
            sample["focal_px"] = float(focal)
        return with_exif_focal(sample, exif_focal)
