"""The one sample format every dataset reader and the synthetic generator yield.

A sample is a plain dict (a ``TypedDict`` for type checkers), so readers can add fields freely and
batching / collation stays trivial. Only ``name`` and ``image`` are required.

=================== ================================================================
key                 value
=================== ================================================================
name                str, unique within the dataset (used for per-image results)
image               (H, W, 3) uint8 RGB
depth               (H, W) float32 metres along the optical axis (0 or NaN where unknown)
valid               (H, W) bool, pixels with trustworthy depth
K                   (3, 3) float64 intrinsics, pixels, OpenCV convention
focal_px            float, horizontal focal length in pixels (when K is unknown)
exif_focal_px       float, EXIF 35 mm-equivalent focal of the image file, pixels (metadata, not ground truth)
mask                (H, W) bool or float alpha matte, for boundary recall
instance            (H, W) int, 0 = none; ``instance_class[i - 1]`` names instance i
semantic            (H, W) int, class index (synthetic scenes: into ``SEMANTIC_CLASSES``)
fov_deg, family     float horizontal field of view (degrees); str scene family (synthetic)
captions            list[str], descriptions of the image (RSA)
=================== ================================================================
"""

from __future__ import annotations

from typing import Any, TypedDict

import numpy as np

__all__ = ["Sample", "validate_sample"]


class Sample(TypedDict, total=False):
    name: str
    image: np.ndarray
    depth: np.ndarray
    valid: np.ndarray
    K: np.ndarray
    focal_px: float
    exif_focal_px: float
    fov_deg: float
    mask: np.ndarray
    instance: np.ndarray
    instance_class: list[str]
    semantic: np.ndarray
    family: str
    captions: list[str]


def validate_sample(sample: dict[str, Any]) -> Sample:
    """Check a sample's shapes and dtypes; returns it unchanged, raises ValueError naming the problem."""
    name = sample.get("name", "<unnamed>")
    image = sample.get("image")
    if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"{name}: image must be an (H, W, 3) uint8 array")
    height, width = image.shape[:2]
    for key, dtype in (("depth", np.floating), ("valid", np.bool_), ("instance", np.integer)):
        value = sample.get(key)
        if value is None:
            continue
        if value.shape != (height, width) or not np.issubdtype(value.dtype, dtype):
            raise ValueError(
                f"{name}: {key} must be ({height}, {width}) {dtype.__name__}, got {value.shape} {value.dtype}"
            )
    if sample.get("K") is not None and np.shape(sample["K"]) != (3, 3):
        raise ValueError(f"{name}: K must be 3x3")
    return sample  # type: ignore[return-value]
