"""Procedural solid textures: colour from a hit's local 3-D position, so patterns stick to objects.

Every texture blends a material's two colours with a weight w(p) ∈ [0, 1]:

=========== ===========================================================
``plain``   w = 0
``checker`` alternating cubes of side ``scale``
``stripes`` sine bands along local x with period ``scale``
``noise``   two-octave value noise with feature size ``scale``
``wood``    rings around local z, spaced ``scale``, perturbed by noise
=========== ===========================================================
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

__all__ = ["TEXTURES", "Material", "texture_weight", "value_noise"]

TEXTURES = ("plain", "checker", "stripes", "noise", "wood")


@dataclass(frozen=True)
class Material:
    """Surface appearance: ``texture`` blends ``color`` (w = 0) into ``color2`` (w = 1); RGB in [0, 1]."""

    color: tuple[float, float, float]
    color2: tuple[float, float, float] = (0.0, 0.0, 0.0)
    texture: str = "plain"
    scale: float = 0.1

    def __post_init__(self) -> None:
        if self.texture not in TEXTURES:
            raise ValueError(f"unknown texture {self.texture!r}; choose from {', '.join(TEXTURES)}")


_LATTICE = 64
_TABLE = torch.from_numpy(np.random.default_rng(20241).random(_LATTICE**3, dtype=np.float32))
"""Fixed pseudo-random values on a 64³ lattice (periodic), shared by every noise call."""


def value_noise(p: Tensor) -> Tensor:
    """Smooth noise in [0, 1) at (N, 3) positions (lattice spacing 1, period 64), smoothstep-trilinear."""
    table = _TABLE.to(p.device)
    cell = torch.floor(p)
    f = (p - cell).to(torch.float32)
    f = f * f * (3 - 2 * f)
    i = cell.to(torch.int64) & (_LATTICE - 1)
    j = (i + 1) & (_LATTICE - 1)
    xs = (i[:, 0] * _LATTICE * _LATTICE, j[:, 0] * _LATTICE * _LATTICE)
    ys = (i[:, 1] * _LATTICE, j[:, 1] * _LATTICE)
    zs = (i[:, 2], j[:, 2])
    fx, fy, fz = f.unbind(-1)
    out = torch.zeros_like(fx)
    for dx in (0, 1):
        wx = fx if dx else 1 - fx
        for dy in (0, 1):
            wxy = wx * (fy if dy else 1 - fy)
            base = xs[dx] + ys[dy]
            low, high = table[base + zs[0]], table[base + zs[1]]
            out = out + wxy * (low + (high - low) * fz)
    return out


def texture_weight(texture: str, p: Tensor, scale: float | Tensor) -> Tensor:
    """Blend weight w ∈ [0, 1] of ``texture`` at (N, 3) local positions (metres); ``scale`` scalar or (N,)."""
    if texture == "plain":
        return torch.zeros(p.shape[:-1], dtype=torch.float32, device=p.device)
    q = p / (scale[:, None] if isinstance(scale, Tensor) else scale)
    if texture == "checker":
        return (torch.floor(q).sum(-1).remainder(2)).to(torch.float32)
    if texture == "stripes":
        return (0.5 + 0.5 * torch.sin(2 * torch.pi * q[..., 0])).to(torch.float32)
    if texture == "noise":
        return 0.65 * value_noise(q) + 0.35 * value_noise(2.7 * q + 17.0)
    if texture == "wood":
        rings = torch.sqrt(q[..., 0] ** 2 + q[..., 1] ** 2) + 0.6 * value_noise(
            q * q.new_tensor([1.0, 1.0, 0.2])
        )
        return (rings - torch.floor(rings)).to(torch.float32) ** 3
    raise ValueError(f"unknown texture {texture!r}")
