"""Procedural solid textures: colour from a hit's local 3-D position, so patterns stick to objects.

Every texture blends a material's two colours with a weight w(p) ∈ [0, 1]:

=========== ===========================================================
``plain``   w = 0
``checker`` alternating cubes of side ``scale``
``stripes`` sine bands along local x with period ``scale``
``noise``   two-octave value noise (baked into one table) with feature size ``scale``
``wood``    rings around local z, spaced ``scale``, perturbed by noise
=========== ===========================================================
"""

from __future__ import annotations

import functools
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

    @classmethod
    def two_tone(
        cls, color: tuple[float, float, float], darker: float, texture: str, scale: float
    ) -> Material:
        """``texture`` blending ``color`` into the same colour scaled by ``darker`` (0–1)."""
        return cls(color, (darker * color[0], darker * color[1], darker * color[2]), texture, scale)


_PERIOD = 32


def _fbm_table(dims: int, rng: np.random.Generator) -> Tensor:
    """Two octaves of periodic value noise baked into one table: 0.65 · (32-lattice noise, upsampled)
    + 0.35 · (64-lattice noise), sampled at 64 points per period, with the first slice repeated at the
    end of each axis so that interpolation wraps seamlessly. (1, 1, 65, ...) float32."""
    pad = (0, 1) * dims
    coarse = torch.from_numpy(rng.random((_PERIOD,) * dims, dtype=np.float32))[None, None]
    fine = torch.from_numpy(rng.random((2 * _PERIOD,) * dims, dtype=np.float32))[None, None]
    mode = "bilinear" if dims == 2 else "trilinear"
    coarse = torch.nn.functional.interpolate(
        torch.nn.functional.pad(coarse, pad, mode="circular"),
        size=(2 * _PERIOD + 1,) * dims,
        mode=mode,
        align_corners=True,
    )[(..., *(slice(0, 2 * _PERIOD),) * dims)]
    return torch.nn.functional.pad(0.65 * coarse + 0.35 * fine, pad, mode="circular")


@functools.cache
def _tables() -> dict[int, Tensor]:
    """The fixed noise tables (2-D for flat surfaces, 3-D for solids), built on first use."""
    rng = np.random.default_rng(20241)
    return {dims: _fbm_table(dims, rng) for dims in (2, 3)}


def value_noise(p: Tensor) -> Tensor:
    """Smooth two-octave noise in [0, 1) at (N, 2) or (N, 3) positions: feature size ≈ 1, period 32,
    one bi/trilinear lookup in a baked table (2-D is cheaper: use it on flat surfaces)."""
    dims = p.shape[-1]
    table = _tables()[dims].to(p.device)
    cycles = p.to(torch.float32) * (1 / _PERIOD)
    grid = (cycles - torch.floor(cycles)) * 2 - 1  # position within the period, mapped to [-1, 1]
    sampled = torch.nn.functional.grid_sample(
        table,
        grid.view(1, -1, *([1] * (dims - 1)), dims),
        mode="bilinear",
        padding_mode="border",
        align_corners=True,
    )
    return sampled.view(-1)


def texture_weight(texture: str, p: Tensor, scale: float | Tensor) -> Tensor:
    """Blend weight w ∈ [0, 1] of ``texture`` at local positions (metres): (N, 3), or (N, 2) for points
    on the local z = 0 plane (2-D noise: same look, less work); ``scale`` scalar or (N,)."""
    if texture == "plain":
        return torch.zeros(p.shape[:-1], dtype=torch.float32, device=p.device)
    q = p / (scale[:, None] if isinstance(scale, Tensor) else scale)
    noise_at = q
    if texture == "checker":
        return (torch.floor(q).to(torch.int64).sum(-1) & 1).to(torch.float32)
    if texture == "stripes":
        return (0.5 + 0.5 * torch.sin(2 * torch.pi * q[..., 0])).to(torch.float32)
    if texture == "noise":
        return value_noise(noise_at)
    if texture == "wood":
        # Rings around the local x axis (grain runs along x), perturbed by stretched noise.
        stretch = noise_at.new_tensor([0.15, 1.0, 1.0][: noise_at.shape[-1]])
        radius = q[:, 1].abs() if q.shape[-1] == 2 else torch.sqrt(q[:, 1] ** 2 + q[:, 2] ** 2)
        rings = radius + 0.6 * value_noise(noise_at * stretch)
        return (rings - torch.floor(rings)).to(torch.float32) ** 3
    raise ValueError(f"unknown texture {texture!r}")
