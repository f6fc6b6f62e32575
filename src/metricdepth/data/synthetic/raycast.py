"""Exact ray casting of a :class:`Scene` through a pinhole :class:`Camera`, vectorised in torch.

Camera rays are d = R_cw · ((u − cx)/fx, (v − cy)/fy, 1) (OpenCV pixel centres, see
:mod:`metricdepth.camera`), so the ray parameter of the first hit *is* the depth along the optical
axis: no per-pixel approximation.

* Visibility: each primitive is tested only on the pixels of its screen box (the exact image box of
  its oriented bounding box, clipped at the near plane), front to back, and skipped when everything
  in that box is already nearer than it can be.
* Shading (deferred): each primitive shades only the pixels it won: procedural texture ×
  (ambient + diffuse · max(0, n·l)) for one directional light; optional shadows cast one extra ray
  per pixel against every primitive. Pixels whose ray hits nothing show the sky and are invalid
  (depth 0)."""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from ...camera import focal_to_fov, fov_to_focal
from .primitives import Primitive, intersect, intersect_local, local_normal
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
        return focal_to_fov(float(self.K[0, 0]), self.width)


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


@dataclass
class Rendering:
    """Per-pixel outputs, (H, W) unless noted: ``rgb`` (H, W, 3) uint8, ``depth`` metres along
    the optical axis (0 where invalid), ``valid`` bool, ``primitive`` int32 index (−1 = none);
    ``pixel_counts`` (P,) pixels won by each primitive."""

    rgb: Tensor
    depth: Tensor
    valid: Tensor
    primitive: Tensor
    pixel_counts: np.ndarray


_CORNERS = np.array([[x, y, z] for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)], dtype=np.float64)
_EDGES = np.array([(i, j) for i in range(8) for j in range(i + 1, 8) if bin(i ^ j).count("1") == 1])
"""The 12 edges of a box, as pairs of indices into ``_CORNERS``."""


def _screen_boxes(
    primitives: list[Primitive], camera: Camera
) -> list[tuple[int, int, int, int, float] | None]:
    """Per primitive, (v0, v1, u0, u1, z_near): the pixel box containing its image and the smallest
    depth any of its points can have; None if it cannot be seen.

    Each primitive's oriented bounding box is clipped to the half-space in front of the camera (its
    corners there, plus the points where its edges cross the near plane) and projected: the exact image
    box of the bounding box, so thin and elongated parts stay cheap. Vectorised over primitives.
    """
    half = np.array([p.size for p in primitives], dtype=np.float64)
    kinds = [p.kind for p in primitives]
    for index, kind in enumerate(kinds):
        if kind == "sphere":
            half[index, 1:] = half[index, 0]
        elif kind == "cylinder":
            half[index, 1] = half[index, 0]
    unbounded = ~np.isfinite(half).all(1)
    half[unbounded] = 0
    R = np.stack([p.R for p in primitives])
    centers = np.array([p.center for p in primitives], dtype=np.float64)
    world = centers[:, None] + np.einsum("pij,pkj->pki", R, _CORNERS * half[:, None])  # (P, 8, 3)
    cam = (world - camera.position) @ np.asarray(camera.R)
    near = 1e-3
    z = cam[..., 2] - near
    zi, zj = z[:, _EDGES[:, 0]], z[:, _EDGES[:, 1]]  # (P, 12)
    crossing = zi * zj < 0
    with np.errstate(divide="ignore", invalid="ignore"):
        f = np.where(crossing, zi / (zi - zj), 0.0)[..., None]
    ci, cj = cam[:, _EDGES[:, 0]], cam[:, _EDGES[:, 1]]
    points = np.concatenate([cam, ci + (cj - ci) * f], 1)  # (P, 20, 3)
    keep = np.concatenate([z > 0, crossing], 1)
    depth = np.where(keep, np.maximum(points[..., 2], near), np.nan)
    K = camera.K
    with np.errstate(divide="ignore", invalid="ignore"):
        u = np.where(keep, K[0, 0] * points[..., 0] / depth + K[0, 2], np.nan)
        v = np.where(keep, K[1, 1] * points[..., 1] / depth + K[1, 2], np.nan)
    seen = keep.any(1)
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN rows: primitives fully behind
        u0 = np.maximum(0, np.floor(np.nanmin(u, 1)))
        u1 = np.minimum(camera.width, np.ceil(np.nanmax(u, 1)) + 1)
        v0 = np.maximum(0, np.floor(np.nanmin(v, 1)))
        v1 = np.minimum(camera.height, np.ceil(np.nanmax(v, 1)) + 1)
        z_near = np.nanmin(depth, 1)
    boxes: list[tuple[int, int, int, int, float] | None] = []
    for index in range(len(primitives)):
        if unbounded[index]:
            boxes.append((0, camera.height, 0, camera.width, 0.0))
        elif seen[index] and u0[index] < u1[index] and v0[index] < v1[index]:
            box = (int(v0[index]), int(v1[index]), int(u0[index]), int(u1[index]), float(z_near[index]))
            boxes.append(box)
        else:
            boxes.append(None)
    return boxes


def _shade_primitive(
    scene: Scene, primitive: Primitive, points: Tensor, origin: Tensor, light: Tensor
) -> tuple[Tensor, Tensor]:
    """Colour (N, 3) without shadows and world normal (N, 3) facing the camera at ``origin``, at world
    ``points`` (N, 3) on ``primitive``."""
    R, center = primitive.frame(points.dtype, points.device)
    if primitive.kind == "plane":
        # Flat: one normal, on the camera's side (planes are two-sided), so one diffuse term.
        local = (points - center) @ R[:, :2]
        normal = R[:, 2] if float((origin - center) @ R[:, 2]) >= 0 else -R[:, 2]
        normal = normal.expand(points.shape[0], 3)
        diffuse = (normal[:1] @ light).clamp(min=0)
    else:  # solids are seen from outside: their outward normals face the camera
        local = (points - center) @ R
        normal = local_normal(primitive.kind, local, primitive.size) @ R.T
        diffuse = (normal @ light).clamp(min=0)
    material = scene.materials[primitive.material]
    shade = (scene.ambient + (1 - scene.ambient) * diffuse)[:, None]
    color = points.new_tensor(material.color)
    if material.texture == "plain":
        return (color * shade).expand(points.shape[0], 3), normal
    weight = texture_weight(material.texture, local, material.scale)[:, None]
    return torch.lerp(color, points.new_tensor(material.color2), weight).mul_(shade), normal


def _sky(scene: Scene, rays: Tensor) -> Tensor:
    """(N, 3) sky colour of rays (N, 3): a vertical gradient by the ray's elevation (z is up)."""
    elevation = (rays[:, 2] / rays.norm(dim=-1)).clamp(0, 1).float()[:, None] ** 0.5
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


class _Rays:
    """Camera rays d = x̃·right + ỹ·down + forward without materialising all of them: per-pixel
    normalised coordinates x̃ (W,), ỹ (H,) and the camera axes, so any box or pixel set is cheap."""

    def __init__(self, camera: Camera, device: torch.device | str, dtype: torch.dtype) -> None:
        K = camera.K
        self.x = (torch.arange(camera.width, dtype=dtype, device=device) - K[0, 2]) / K[0, 0]
        self.y = (torch.arange(camera.height, dtype=dtype, device=device) - K[1, 2]) / K[1, 1]
        self.axes = torch.as_tensor(np.asarray(camera.R), dtype=dtype, device=device)  # columns
        self.width = camera.width

    def box_local(self, R: Tensor, v0: int, v1: int, u0: int, u1: int) -> Tensor:
        """(v1 − v0, u1 − u0, 3) directions of a pixel box in a frame with rotation ``R`` (R^T d)."""
        right, down, forward = (R.T @ self.axes).unbind(1)
        return (self.x[u0:u1, None] * right + forward) + self.y[v0:v1, None, None] * down

    def at(self, rows: Tensor, cols: Tensor) -> Tensor:
        """(N, 3) world directions at pixels (rows, cols)."""
        right, down, forward = self.axes.unbind(1)
        x = self.x.index_select(0, cols)[:, None]
        y = self.y.index_select(0, rows)[:, None]
        return torch.addcmul(torch.addcmul(forward, x, right), y, down)


@torch.inference_mode()
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
    rays = _Rays(camera, device, dtype)
    origin = torch.as_tensor(camera.position, dtype=dtype, device=device)
    depth = torch.full((height, width), torch.inf, dtype=dtype, device=device)
    primitive = torch.full((height, width), -1, dtype=torch.int32, device=device)
    boxes = _screen_boxes(scene.primitives, camera) if scene.primitives else []
    # Front to back, so that primitives hidden behind what is already drawn are skipped untested.
    order = sorted((box[4], index) for index, box in enumerate(boxes) if box is not None)
    for _, index in order:
        prim = scene.primitives[index]
        v0, v1, u0, u1, z_near = boxes[index]  # type: ignore[misc]
        current = depth[v0:v1, u0:u1]
        if z_near > 0 and float(current.amax()) < z_near:
            continue
        R, center = prim.frame(dtype, device)
        local_rays = rays.box_local(R, v0, v1, u0, u1)
        t = intersect_local(prim.kind, (origin - center) @ R, local_rays, prim.size)
        closer = t < current
        torch.minimum(t, current, out=current)  # current is a view: updates the depth buffer in place
        primitive[v0:v1, u0:u1].masked_fill_(closer, index)
    valid = primitive >= 0
    light = torch.tensor(scene.light, dtype=dtype, device=device)
    light = light / light.norm()
    rgb = torch.empty((height * width, 3), dtype=torch.float32, device=device)
    sky_rows, sky_cols = (~valid).nonzero(as_tuple=True)
    rgb.index_copy_(0, sky_rows * width + sky_cols, _sky(scene, rays.at(sky_rows, sky_cols)))
    flat_depth = depth.view(-1)
    normal = torch.zeros((height * width, 3), dtype=dtype, device=device) if shadows else None
    pixel_counts = torch.bincount(primitive.view(-1).long() + 1, minlength=len(scene.primitives) + 1)
    for index, count in enumerate(pixel_counts[1:].tolist()):
        if count == 0:
            continue
        v0, v1, u0, u1, _ = boxes[index]  # type: ignore[misc]
        rows, cols = (primitive[v0:v1, u0:u1] == index).nonzero(as_tuple=True)
        rows, cols = rows + v0, cols + u0
        mine = rows * width + cols  # shade only the pixels this primitive won
        points = torch.addcmul(origin, flat_depth.index_select(0, mine)[:, None], rays.at(rows, cols))
        color, n = _shade_primitive(scene, scene.primitives[index], points, origin, light)
        rgb.index_copy_(0, mine, color.float())
        if normal is not None:
            normal.index_copy_(0, mine, n)
    if normal is not None and valid.any():
        hit_rows, hit_cols = valid.nonzero(as_tuple=True)
        hit = hit_rows * width + hit_cols
        n = normal.index_select(0, hit)
        points = origin + flat_depth.index_select(0, hit)[:, None] * rays.at(hit_rows, hit_cols)
        blocked = _shadowed(scene, points, n)
        # Shadowed pixels keep only the ambient term of their (unlit) albedo.
        lambert = (scene.ambient + (1 - scene.ambient) * (n @ light).clamp(min=0)).float()
        shade = torch.where(blocked, scene.ambient / lambert, 1.0)
        rgb.index_copy_(0, hit, rgb.index_select(0, hit) * shade[:, None])
    rgb8 = rgb.view(height, width, 3).mul_(255).add_(0.5).clamp_(0, 255).to(torch.uint8)
    return Rendering(
        rgb=rgb8,
        depth=torch.where(valid, depth, 0),
        valid=valid,
        primitive=primitive,
        pixel_counts=pixel_counts[1:].cpu().numpy(),
    )
