"""Analytic primitives and exact ray intersection, vectorised over rays in torch.

Every primitive lives in its own local frame, placed in the world by a rotation ``R`` (local → world,
columns are the local axes) and a centre ``c``: p_world = R · p_local + c.

=========== ============================================ =========================================
kind        local shape                                  ``size``
=========== ============================================ =========================================
``plane``   the rectangle z = 0, |x| ≤ sx, |y| ≤ sy      (sx, sy, unused); ``inf`` for unbounded
``box``     |x| ≤ sx, |y| ≤ sy, |z| ≤ sz                 half extents (sx, sy, sz), metres
``sphere``  x² + y² + z² ≤ r²                            (r, unused, unused)
``cylinder`` x² + y² ≤ r², |z| ≤ h, capped               (r, unused, h)
=========== ============================================ =========================================

Division by a zero direction component gives ±inf (a ray parallel to a face never reaches it) or,
in the measure-zero case of a ray lying exactly in a face's plane, NaN, which every comparison treats
as a miss. Rays are x = o + t·d with ``d`` *not* normalised: the renderer uses camera rays whose optical-axis
component is 1, so the ray parameter t of a hit is its depth along the optical axis. :func:`intersect`
returns t (inf where the ray misses or only hits at t ≤ ``T_MIN``); :func:`local_normal` gives the
outward normal at a local surface point, for deferred shading.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

__all__ = ["KINDS", "T_MIN", "Primitive", "Size", "intersect", "intersect_local", "local_normal", "rotation"]

KINDS = ("plane", "box", "sphere", "cylinder")
T_MIN = 1e-4
"""Hits closer than this (metres along the ray parameter) are ignored."""


def rotation(yaw: float = 0.0, pitch: float = 0.0, roll: float = 0.0) -> np.ndarray:
    """(3, 3) rotation R = Rz(yaw) · Ry(pitch) · Rx(roll), radians (z is up in the scene builders)."""
    cy, sy, cp, sp, cr, sr = (f(a) for a in (yaw, pitch, roll) for f in (math.cos, math.sin))
    rz = np.array([[cy, -sy, 0], [sy, cy, 0], [0, 0, 1]])
    ry = np.array([[cp, 0, sp], [0, 1, 0], [-sp, 0, cp]])
    rx = np.array([[1, 0, 0], [0, cr, -sr], [0, sr, cr]])
    return rz @ ry @ rx


@dataclass
class Primitive:
    """One shape with its pose, material and labels.

    Attributes:
        kind: one of :data:`KINDS`.
        size: (3,) see the module table, metres.
        center: (3,) world position of the local origin, metres.
        R: (3, 3) local → world rotation.
        material: index into the scene's material list.
        instance: object instance id (0 = stuff such as floor, wall, road).
        label: semantic class name (``"floor"``, ``"chair"``, ...).
    """

    kind: str
    size: tuple[float, float, float]
    center: tuple[float, float, float]
    R: np.ndarray = field(default_factory=lambda: np.eye(3))
    material: int = 0
    instance: int = 0
    label: str = ""

    _frames: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown primitive kind {self.kind!r}; choose from {', '.join(KINDS)}")

    def frame(self, dtype: torch.dtype, device: torch.device | str) -> tuple[Tensor, Tensor]:
        """(R (3, 3), center (3,)) as tensors, made once per dtype and device."""
        key = (dtype, str(device))
        if key not in self._frames:
            self._frames[key] = (
                torch.as_tensor(self.R, dtype=dtype, device=device),
                torch.as_tensor(self.center, dtype=dtype, device=device),
            )
        return self._frames[key]


Size = tuple[float, float, float] | Tensor
"""A primitive's ``size``: a tuple, or a (..., 3) tensor of per-ray sizes (batched solids)."""


def _plane(o: Tensor, d: Tensor, size: tuple[float, float, float]) -> Tensor:
    t = -o[..., 2] / d[..., 2]
    hit = t > T_MIN
    for axis in (0, 1):
        if math.isfinite(size[axis]):
            hit &= (o[..., axis] + t * d[..., axis]).abs() <= size[axis]
    return torch.where(hit, t, torch.inf)


def _columns(size: Size, like: Tensor) -> tuple[Tensor | float, Tensor | float, Tensor | float]:
    """The three size components, scalars or (...) tensors broadcasting against per-ray values."""
    if isinstance(size, Tensor):
        return size[..., 0], size[..., 1], size[..., 2]
    return size


def _box(o: Tensor, d: Tensor, size: Size) -> Tensor:
    half = size if isinstance(size, Tensor) else d.new_tensor(size)
    inv = 1 / d
    t1, t2 = (-half - o) * inv, (half - o) * inv
    t_near = torch.minimum(t1, t2).amax(-1)
    t_far = torch.maximum(t1, t2).amin(-1)
    t = torch.where(t_near > T_MIN, t_near, t_far)  # from inside (a room), the far face
    return torch.where((t_far >= t_near) & (t > T_MIN), t, torch.inf)


def _sphere(o: Tensor, d: Tensor, size: Size) -> Tensor:
    radius = _columns(size, d)[0]
    a = (d * d).sum(-1)
    b = (o * d).sum(-1)  # half of the usual b
    disc = b * b - a * ((o * o).sum(-1) - radius * radius)
    root = torch.sqrt(disc.clamp(min=0))
    t_near, t_far = (-b - root) / a, (-b + root) / a
    t = torch.where(t_near > T_MIN, t_near, t_far)
    return torch.where((disc >= 0) & (t > T_MIN), t, torch.inf)


def _cylinder(o: Tensor, d: Tensor, size: Size) -> Tensor:
    radius, _, height = _columns(size, d)
    ox, oy, oz = o.unbind(-1)
    dx, dy, dz = d.unbind(-1)
    a = (dx * dx + dy * dy).clamp(min=1e-20)
    b = ox * dx + oy * dy
    disc = b * b - a * (ox * ox + oy * oy - radius * radius)
    root = torch.sqrt(disc.clamp(min=0))
    best = torch.full_like(dx, torch.inf)
    for t in ((-b - root) / a, (-b + root) / a):  # the side wall, within the height
        ok = (disc >= 0) & (t > T_MIN) & ((oz + t * dz).abs() <= height)
        best = torch.where(ok & (t < best), t, best)
    for sign in (-1, 1):  # the two discs
        t = (sign * height - oz) / dz
        ok = (t > T_MIN) & ((ox + t * dx) ** 2 + (oy + t * dy) ** 2 <= radius * radius)
        best = torch.where(ok & (t < best), t, best)
    return best


_INTERSECT = {"plane": _plane, "box": _box, "sphere": _sphere, "cylinder": _cylinder}


def intersect(primitive: Primitive, origin: Tensor, directions: Tensor) -> Tensor:
    """Ray parameter of the first hit of world rays with one primitive (inf where they miss).

    Args:
        origin: (3,) shared ray origin, or (..., 3) one per ray, world metres.
        directions: (..., 3) world ray directions (any length).

    Returns:
        (...) t such that origin + t · direction is the hit; with camera rays of unit optical-axis
        component, t is the depth along the optical axis.
    """
    R, center = primitive.frame(directions.dtype, directions.device)
    return intersect_local(primitive.kind, (origin - center) @ R, directions @ R, primitive.size)


def intersect_local(kind: str, o_local: Tensor, d_local: Tensor, size: Size) -> Tensor:
    """:func:`intersect` for rays already in a primitive's frame: ``o_local`` (3,) or (..., 3),
    ``d_local`` (..., 3), ``size`` the primitive's or (..., 3) per ray (one call for many solids of
    one kind)."""
    return _INTERSECT[kind](o_local, d_local, size)


def local_normal(kind: str, p: Tensor, size: Size) -> Tensor:
    """Outward unit normals (..., 3) at local surface points ``p`` (..., 3) of a primitive (``size`` a
    tuple, or per-point (..., 3) sizes)."""
    if kind == "plane":
        normal = torch.zeros_like(p)
        normal[..., 2] = 1.0
        return normal
    radius, _, height = _columns(size, p)
    if kind == "sphere":
        return p / (radius[..., None] if isinstance(radius, Tensor) else radius)
    if kind == "box":
        half = size if isinstance(size, Tensor) else p.new_tensor(size)
        axis = (p.abs() / half).argmax(-1, keepdim=True)
        return torch.zeros_like(p).scatter_(-1, axis, torch.sign(torch.gather(p, -1, axis)))
    if kind == "cylinder":
        side = p.clone()
        side[..., 2] = 0
        side = side / (radius[..., None] if isinstance(radius, Tensor) else radius)
        cap = torch.zeros_like(p)
        cap[..., 2] = torch.sign(p[..., 2])
        return torch.where((p[..., 2].abs() >= height * (1 - 1e-5))[..., None], cap, side)
    raise ValueError(f"unknown primitive kind {kind!r}")
