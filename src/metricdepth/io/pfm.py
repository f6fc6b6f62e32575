"""PFM (portable float map) files: Middlebury and Sintel-style disparity / depth maps."""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

__all__ = ["read_pfm", "write_pfm"]


def read_pfm(path: str | os.PathLike) -> np.ndarray:
    """Read a PFM file: (H, W) float32 for ``Pf``, (H, W, 3) for ``PF``; rows top to bottom."""
    path = Path(path)
    with open(path, "rb") as f:
        kind = f.readline().strip()
        if kind not in (b"Pf", b"PF"):
            raise ValueError(f"{path}: not a PFM file (header {kind[:10]!r})")
        size = re.fullmatch(rb"\s*(\d+)\s+(\d+)\s*", f.readline())
        if size is None:
            raise ValueError(f"{path}: malformed PFM size line")
        width, height = int(size[1]), int(size[2])
        scale = float(f.readline().strip())
        dtype = "<f4" if scale < 0 else ">f4"
        channels = 3 if kind == b"PF" else 1
        data = np.frombuffer(f.read(), dtype=dtype)
    if data.size != width * height * channels:
        raise ValueError(f"{path}: expected {width * height * channels} values, found {data.size}")
    shape = (height, width, 3) if channels == 3 else (height, width)
    return np.flipud(data.reshape(shape)).astype(np.float32)


def write_pfm(path: str | os.PathLike, array: np.ndarray) -> Path:
    """Write an (H, W) or (H, W, 3) float array as little-endian PFM (atomically)."""
    from .atomic import atomic_path

    array = np.asarray(array, dtype="<f4")
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] != 3):
        raise ValueError(f"PFM holds (H, W) or (H, W, 3) arrays, got {array.shape}")
    header = b"PF\n" if array.ndim == 3 else b"Pf\n"
    header += f"{array.shape[1]} {array.shape[0]}\n-1.0\n".encode()
    with atomic_path(path) as tmp:
        tmp.write_bytes(header + np.ascontiguousarray(np.flipud(array)).tobytes())
    return Path(path)
