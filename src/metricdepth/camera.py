"""Pinhole camera conversions: focal length ↔ field of view, 35 mm equivalents, intrinsics.

Convention: OpenCV pixel coordinates. Pixel (u, v) = (column, row) has its centre at integer
coordinates, so the centre of a W × H image is ((W − 1) / 2, (H − 1) / 2). Focal lengths are in
pixels, fields of view in degrees, and "horizontal" means along the image width.
"""

from __future__ import annotations

import math
from typing import TypeVar

import torch
from torch import Tensor

__all__ = [
    "FILM_DIAGONAL_MM",
    "focal_from_35mm",
    "focal_to_fov",
    "fov_to_focal",
    "intrinsics_matrix",
]

FILM_DIAGONAL_MM = math.hypot(36.0, 24.0)
"""Diagonal of 35 mm film (36 × 24 mm), ≈ 43.27 mm."""

Scalar = TypeVar("Scalar", float, Tensor)


def fov_to_focal(fov_deg: Scalar, width: float) -> Scalar:
    """Focal length (pixels) of a camera whose horizontal FOV over ``width`` pixels is ``fov_deg``."""
    if isinstance(fov_deg, Tensor):
        return 0.5 * width / torch.tan(0.5 * torch.deg2rad(fov_deg))
    return 0.5 * width / math.tan(0.5 * math.radians(fov_deg))


def focal_to_fov(focal_px: Scalar, width: float) -> Scalar:
    """Horizontal field of view (degrees) of a ``width``-pixel image with focal length ``focal_px``."""
    if isinstance(focal_px, Tensor):
        return torch.rad2deg(2 * torch.atan(0.5 * width / focal_px))
    return math.degrees(2 * math.atan(0.5 * width / focal_px))


def focal_from_35mm(focal_35mm: float, width: int, height: int) -> float:
    """Focal length in pixels from a 35 mm-equivalent focal length (EXIF ``FocalLengthIn35mmFilm``).

    The 35 mm equivalent is defined on the diagonal: f_px = f35 · √(W² + H²) / √(36² + 24²).
    """
    return focal_35mm * math.hypot(width, height) / FILM_DIAGONAL_MM


def intrinsics_matrix(focal_px: Tensor, width: int, height: int) -> Tensor:
    """Pinhole K with fx = fy = ``focal_px`` and the principal point at the image centre.

    Args:
        focal_px: (...) focal lengths, pixels.

    Returns:
        (..., 3, 3) intrinsics, same dtype and device as ``focal_px``.
    """
    K = torch.zeros((*focal_px.shape, 3, 3), dtype=focal_px.dtype, device=focal_px.device)
    K[..., 0, 0] = focal_px
    K[..., 1, 1] = focal_px
    K[..., 0, 2] = (width - 1) / 2
    K[..., 1, 2] = (height - 1) / 2
    K[..., 2, 2] = 1.0
    return K
