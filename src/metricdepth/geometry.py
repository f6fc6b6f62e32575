"""Depth maps to 3D: back-projection and depth-discontinuity masks (torch, any device)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["depth_discontinuities", "depth_to_points"]


def depth_to_points(depth: Tensor, K: Tensor) -> Tensor:
    """Back-project a depth map to camera-frame points.

    Args:
        depth: (H, W) depth along the optical axis, metres.
        K: (3, 3) pinhole intrinsics, OpenCV convention (pixel centres at integer coordinates).

    Returns:
        (H, W, 3) points (x right, y down, z forward), metres.
    """
    height, width = depth.shape
    K = K.to(device=depth.device, dtype=depth.dtype)
    v, u = torch.meshgrid(
        torch.arange(height, device=depth.device, dtype=depth.dtype),
        torch.arange(width, device=depth.device, dtype=depth.dtype),
        indexing="ij",
    )
    x = (u - K[0, 2] - K[0, 1] * (v - K[1, 2]) / K[1, 1]) / K[0, 0]
    y = (v - K[1, 2]) / K[1, 1]
    return torch.stack([x * depth, y * depth, depth], dim=-1)


def depth_discontinuities(depth: Tensor, rtol: float = 0.04, kernel_size: int = 3) -> Tensor:
    """Mark pixels next to a depth jump ("flying pixels" once back-projected).

    A pixel is marked when, within its ``kernel_size`` neighbourhood, max depth / min depth > 1 + rtol.

    Args:
        depth: (H, W) positive depth, metres.

    Returns:
        (H, W) bool, True at discontinuities.
    """
    d = depth[None, None]
    pad = kernel_size // 2
    local_max = F.max_pool2d(F.pad(d, (pad,) * 4, mode="replicate"), kernel_size, stride=1)
    local_min = -F.max_pool2d(F.pad(-d, (pad,) * 4, mode="replicate"), kernel_size, stride=1)
    return (local_max > (1 + rtol) * local_min)[0, 0]
