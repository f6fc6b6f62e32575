"""Overlapping square tiles: split an image into a grid, merge per-tile feature maps back.

The merge is Depth Pro's crop-and-concat stitching: no blending; each tile loses ``padding``
tokens on every side that touches a neighbour, none on the image border.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = ["merge_tiles", "split_tiles", "tile_grid"]


def tile_grid(size: int, tile: int, overlap: float) -> tuple[int, int]:
    """Return ``(steps, stride)`` of a ``steps × steps`` grid of ``tile``-pixel tiles over ``size`` pixels."""
    stride = int(tile * (1 - overlap))
    steps = math.ceil((size - tile) / stride) + 1 if size > tile else 1
    return steps, stride


def split_tiles(x: Tensor, tile: int, overlap: float) -> Tensor:
    """Cut overlapping tiles, row by row.

    Args:
        x: (B, C, S, S) image.
        tile: tile side, pixels.
        overlap: fraction of a tile shared with its neighbour (0.25 → stride 0.75 · tile).

    Returns:
        (n² · B, C, tile, tile), tile-major: entry ``(j · n + i) · B + b`` is row j, column i of image b.
    """
    steps, stride = tile_grid(x.shape[-1], tile, overlap)
    tiles = [
        x[..., j * stride : j * stride + tile, i * stride : i * stride + tile]
        for j in range(steps)
        for i in range(steps)
    ]
    return torch.cat(tiles, dim=0)


def merge_tiles(x: Tensor, batch_size: int, padding: int) -> Tensor:
    """Stitch per-tile feature maps (as laid out by :func:`split_tiles`) into one map.

    Args:
        x: (n² · B, C, h, w) tile features.
        batch_size: B.
        padding: tokens cropped from each side that touches a neighbouring tile.

    Returns:
        (B, C, n·h − 2(n−1)·padding, n·w − 2(n−1)·padding).
    """
    steps = math.isqrt(x.shape[0] // batch_size)
    rows = []
    for j in range(steps):
        row = []
        for i in range(steps):
            t = x[(j * steps + i) * batch_size : (j * steps + i + 1) * batch_size]
            top = padding if j > 0 else 0
            bottom = padding if j < steps - 1 else 0
            left = padding if i > 0 else 0
            right = padding if i < steps - 1 else 0
            row.append(t[..., top : t.shape[-2] - bottom, left : t.shape[-1] - right])
        rows.append(torch.cat(row, dim=-1))
    return torch.cat(rows, dim=-2)
