"""Exact ray casting of a :class:`Scene` through a pinhole :class:`Camera`, vectorised in torch.

Camera rays are d = R_cw · ((u − cx)/fx, (v − cy)/fy, 1) (OpenCV pixel centres, see
:mod:`metricdepth.camera`), so the ray parameter of the first hit *is* the depth along the optical
axis: no per-pixel approximation. Each primitive is tested only on the pixels inside the screen box
of its bounding sphere, which keeps small objects cheap. Shading: per-material procedural texture ×
(ambient + diffuse · max(0, n·l) · shadow) for one directional light; shadows are optional (one
extra ray per pixel against every primitive). Pixels whose ray hits nothing show the sky and are
invalid (depth 0).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

from ...camera import fov_to_focal
from .primitives import Primitive, intersect, local_normal
from .textures import Material, texture_weight

__all__ = ["Camera", "Rendering", "Scene", "look_at", "render"]


@dataclass
class Camera:
    """Pinhole camera: ``K`` (3, 3) pixels; ``R`` (3, 3) camera → world rotation, whose columns are the
    camera's x right, y down, z forward in world coordinates; ``position`` (3,) metres; image size."""

    K: np.ndarray
    R: np.ndarray
    position: np.ndarray
    width: int
    height: int

    @classmethod
    def from_fov(
        cls, fov_deg: float, width: int, height: int, position: np.ndarray, target: np.ndarray
    ) -> Camera:
        """Square pixels, principal point at the image centre, looking from ``position`` at ``target``
        with world z up."""
        f = fov_to_focal(fov_deg, width)
        K = np.array([[f, 0, (width - 1) / 2], [0, f, (height - 1) / 2], [0, 0, 1.0]])
        return cls(K, look_at(position, target), np.asarray(position, np.float64), width, height)

    @property
    def fov_deg(self) -> float:
        """Horizontal field of view, degrees."""
        return math.degrees(2 * math.atan(0.5 * self.width / self.K[0, 0]))


def look_at(
    position: np.ndarray, target: np.ndarray, up: tuple[float, float, float] = (0, 0, 1)
) -> np.ndarray:
    """Camera → world rotation of a camera at ``position`` looking at ``target`` (OpenCV axes)."""
    forward = np.asarray(target, np.float64) - np.asarray(position, np.float64)
    forward /= np.linalg.norm(forward)
    right = np.cross(forward, up)
    if np.linalg.norm(right) < 1e-9:  # looking straight up or down: any right vector will do
        right = np.cross(forward, (0.0, 1.0, 0.0))
    right /= np.linalg.norm(right)
    down = np.cross(forward, right)
    return np.stack([right, down, forward], axis=1)


@dataclass
class Scene:
    """Primitives with their materials, one directional light, and the sky colour (top, horizon)."""

    primitives: list[Primitive]
    materials: list[Material]
    light: tuple[float, float, float] = (0.4, -0.3, 0.85)
    ambient: float = 0.35
    sky: tuple[tuple[float, float, float], tuple[float, float, float]] = (
        (0.35, 0.55, 0.9),
        (0.85, 0.9, 0.95),
    )
    labels: list[str] = field(default_factory=list)


@dataclass
class Rendering:
    """Per-pixel outputs, (H, W) unless noted: ``rgb`` (H, W, 3) uint8, ``depth`` metres along
    the optical axis (0 where invalid), ``valid`` bool, ``primitive`` int64 index (−1 = none)."""

    rgb: Tensor
    depth: Tensor
    valid: Tensor
    primitive: Tensor


def camera_rays(
    camera: Camera, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32
) -> Tensor:
    """(H, W, 3) world ray directions whose optical-axis component is 1."""
    K = camera.K
    u = (torch.arange(camera.width, dtype=torch.float64) - K[0, 2]) / K[0, 0]
    v = (torch.arange(camera.height, dtype=torch.float64) - K[1, 2]) / K[1, 1]
    d = torch.stack(
        torch.broadcast_tensors(u[None, :], v[:, None], torch.ones(1, 1, dtype=torch.float64)), -1
    )
    return (d @ torch.from_numpy(np.asarray(camera.R, np.float64)).T).to(device=device, dtype=dtype)


_CORNERS = np.array([[x, y, z] for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)], dtype=np.float64)
_EDGES = [(i, j) for i in range(8) for j in range(i + 1, 8) if bin(i ^ j).count("1") == 1]  # the 12 box edges


def _screen_box(primitive: Primitive, camera: Camera) -> tuple[int, int, int, int] | None:
    """(v0, v1, u0, u1) pixel box containing the primitive's image; None if it cannot be seen.

    The primitive's oriented bounding box is clipped to the half-space in front of the camera and its
    corners projected: the exact image box of the bounding box, so thin and elongated parts stay cheap.
    """
    sx, sy, sz = primitive.size
    if primitive.kind == "sphere":
        sy = sz = sx
    elif primitive.kind == "cylinder":
        sy = sx
    if not all(math.isfinite(v) for v in (sx, sy, sz)):
        return (0, camera.height, 0, camera.width)
    world = np.asarray(primitive.center) + (_CORNERS * (sx, sy, sz)) @ np.asarray(primitive.R).T
    cam = (world - camera.position) @ np.asarray(camera.R)  # camera coordinates, rows
    near = 1e-3
    front = cam[:, 2] > near
    if not front.any():
        return None
    points = [cam[front]]
    for i, j in _EDGES:  # where an edge crosses the near plane
        zi, zj = cam[i, 2] - near, cam[j, 2] - near
        if zi * zj < 0:
            points.append((cam[i] + (cam[j] - cam[i]) * (zi / (zi - zj)))[None])
    pts = np.concatenate(points)
    K = camera.K
    u = K[0, 0] * pts[:, 0] / pts[:, 2] + K[0, 2]
    v = K[1, 1] * pts[:, 1] / pts[:, 2] + K[1, 2]
    u0, u1 = max(0, math.floor(u.min())), min(camera.width, math.ceil(u.max()) + 1)
    v0, v1 = max(0, math.floor(v.min())), min(camera.height, math.ceil(v.max()) + 1)
    return (v0, v1, u0, u1) if u0 < u1 and v0 < v1 else None


def _shade_primitive(
    scene: Scene, primitive: Primitive, points: Tensor, rays: Tensor, light: Tensor
) -> tuple[Tensor, Tensor]:
    """Colour (N, 3) without shadows and world normal (N, 3) facing the ray, at world ``points``
    (N, 3) on ``primitive`` seen along ``rays`` (N, 3)."""
    R = torch.as_tensor(primitive.R, dtype=points.dtype, device=points.device)
    center = torch.as_tensor(primitive.center, dtype=points.dtype, device=points.device)
    local = (points - center) @ R
    normal = local_normal(primitive.kind, local, primitive.size) @ R.T
    normal = torch.where((normal * rays).sum(-1, keepdim=True) > 0, -normal, normal)
    material = scene.materials[primitive.material]
    color = points.new_tensor(material.color)
    if material.texture != "plain":
        weight = texture_weight(material.texture, local, material.scale)
        color = color + (points.new_tensor(material.color2) - color) * weight[..., None]
    diffuse = (normal @ light).clamp(min=0)
    return color * (scene.ambient + (1 - scene.ambient) * diffuse)[..., None], normal


def _sky(scene: Scene, rays: Tensor) -> Tensor:
    """(H, W, 3) sky colour: a vertical gradient by the ray's elevation (z is up)."""
    elevation = (rays[..., 2] / rays.norm(dim=-1)).clamp(0, 1).float()[..., None] ** 0.5
    top, horizon = (torch.tensor(c, dtype=torch.float32, device=rays.device) for c in scene.sky)
    return horizon + (top - horizon) * elevation


def _shadowed(scene: Scene, points: Tensor, normal: Tensor) -> Tensor:
    """(N,) bool: something blocks the light between ``points`` (N, 3) and the sun."""
    light = torch.tensor(scene.light, dtype=points.dtype, device=points.device)
    light = (light / light.norm()).expand_as(points)
    origins = points + 1e-3 * normal
    blocked = torch.zeros(points.shape[0], dtype=torch.bool, device=points.device)
    for primitive in scene.primitives:
        blocked |= torch.isfinite(intersect(primitive, origins, light))
    return blocked


def render(
    scene: Scene,
    camera: Camera,
    *,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
    shadows: bool = False,
) -> Rendering:
    """Ray-cast ``scene``: exact depth (ray parameter of the first hit), labels and a shaded image."""
    height, width = camera.height, camera.width
    rays = camera_rays(camera, device, dtype)
    origin = torch.as_tensor(camera.position, dtype=dtype, device=device)
    depth = torch.full((height, width), torch.inf, dtype=dtype, device=device)
    primitive = torch.full((height, width), -1, dtype=torch.int64, device=device)
    boxes = [_screen_box(prim, camera) for prim in scene.primitives]
    for index, prim in enumerate(scene.primitives):
        box = boxes[index]
        if box is None:
            continue
        v0, v1, u0, u1 = box
        t = intersect(prim, origin, rays[v0:v1, u0:u1])
        current = depth[v0:v1, u0:u1]
        closer = t < current
        depth[v0:v1, u0:u1] = torch.minimum(t, current)
        primitive[v0:v1, u0:u1] = torch.where(closer, index, primitive[v0:v1, u0:u1])
    valid = primitive >= 0
    light = torch.tensor(scene.light, dtype=dtype, device=device)
    light = light / light.norm()
    rgb = _sky(scene, rays)
    normal = torch.zeros_like(rays)
    points = origin + torch.where(valid, depth, 0)[..., None] * rays
    for index, prim in enumerate(scene.primitives):
        box = boxes[index]
        if box is None:
            continue
        v0, v1, u0, u1 = box
        mine = (primitive[v0:v1, u0:u1] == index).nonzero(as_tuple=True)
        if mine[0].numel() == 0:
            continue
        rows, cols = mine[0] + v0, mine[1] + u0  # shade only the pixels this primitive won
        color, n = _shade_primitive(scene, prim, points[rows, cols], rays[rows, cols], light)
        rgb[rows, cols] = color.float()
        normal[rows, cols] = n
    if shadows and valid.any():
        hit = valid.nonzero(as_tuple=True)
        blocked = _shadowed(scene, points[hit], normal[hit])
        # Shadowed pixels keep only the ambient term of their (unlit) albedo.
        lambert = (scene.ambient + (1 - scene.ambient) * (normal[hit] @ light).clamp(min=0)).float()
        rgb[hit] = torch.where(blocked[:, None], rgb[hit] * (scene.ambient / lambert)[:, None], rgb[hit])
    rgb8 = (rgb.clamp(0, 1) * 255 + 0.5).to(torch.uint8)
    return Rendering(rgb=rgb8, depth=torch.where(valid, depth, 0), valid=valid, primitive=primitive)
