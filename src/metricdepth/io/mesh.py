"""Triangle meshes of metric depth maps, written as GLB (binary glTF) for 3D viewers.

The depth map is sampled on a regular pixel grid (every ``stride``-th pixel, chosen so the mesh has at
most ``max_faces`` triangles); each grid cell becomes two triangles. Triangles are left out where a
vertex is sky (the network's 10 km ceiling), farther than ``max_depth`` or not finite, and where they
would span a depth discontinuity (max / min vertex depth > 1 + ``edge_rtol``: the "flying pixels"
of the point cloud, here stretched sheets between foreground and background).

Coordinates: the depth map's camera frame is OpenCV's (x right, y down, z forward); glTF's is right
handed with y up and the camera looking down −z, so a point (x, y, z) is stored as (x, −y, −z). The
camera sits at the origin, units are metres. Triangles face the camera (counter-clockwise as seen
from it) and vertex colours come from the photo.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .atomic import atomic_path

if TYPE_CHECKING:
    import trimesh

__all__ = ["DEFAULT_MAX_FACES", "OPENCV_TO_GLTF", "depth_mesh", "mesh_stride", "write_glb"]

DEFAULT_MAX_FACES = 200_000
"""Default triangle budget of :func:`depth_mesh` (about 4 MB of GLB)."""
OPENCV_TO_GLTF = np.diag([1.0, -1.0, -1.0])
"""Maps OpenCV camera coordinates (x right, y down, z forward) to glTF's (y up, looking down −z)."""


def mesh_stride(height: int, width: int, max_faces: int) -> int:
    """The smallest pixel stride whose grid over an (H, W) image has at most ``max_faces`` triangles.

    A stride s samples rows 0, s, 2s, … and columns likewise: 2·⌊(H−1)/s⌋·⌊(W−1)/s⌋ triangles.
    """
    if max_faces < 2:
        raise ValueError(f"max_faces must be at least 2 (one grid cell), got {max_faces}")

    def faces(stride: int) -> int:
        return 2 * ((height - 1) // stride) * ((width - 1) // stride)

    stride = max(1, math.floor(math.sqrt(2.0 * max(height - 1, 0) * max(width - 1, 0) / max_faces)))
    while stride > 1 and faces(stride - 1) <= max_faces:
        stride -= 1
    while faces(stride) > max_faces:
        stride += 1
    return stride


def depth_mesh(
    depth: Any,
    K: Any,
    rgb: np.ndarray | None = None,
    *,
    max_faces: int = DEFAULT_MAX_FACES,
    edge_rtol: float = 0.04,
    max_depth: float | None = None,
) -> trimesh.Trimesh:
    """A coloured triangle mesh of a metric depth map, in glTF coordinates (metres, y up, −z forward).

    Args:
        depth: (H, W) depth along the optical axis, metres (numpy array or torch tensor).
        K: (3, 3) pinhole intrinsics of the depth map, OpenCV convention (pixel centres at integers).
        rgb: (H, W, 3) uint8 photo; its pixels become the vertex colours (grey without one).
        max_faces: at most this many triangles (the grid stride grows until the mesh fits).
        edge_rtol: triangles whose max / min vertex depth exceeds ``1 + edge_rtol`` are removed.
        max_depth: metres; farther vertices (and their triangles) are removed.

    Returns:
        A ``trimesh.Trimesh`` with (N, 3) float vertices, (M, 3) faces (M ≤ ``max_faces``) and
        (N, 4) uint8 vertex colours; vertices no triangle uses are dropped. May be empty.
    """
    import trimesh

    from .writers import SKY_DEPTH

    depth = _as_numpy(depth)  # kept as it is: only the sampled grid is converted to float64
    if depth.ndim != 2:
        raise ValueError(f"depth must be an (H, W) map, got shape {depth.shape}")
    K = _as_numpy(K).astype(np.float64)
    if K.shape != (3, 3):
        raise ValueError(f"K must be a (3, 3) matrix, got shape {K.shape}")
    if not (math.isfinite(edge_rtol) and edge_rtol > 0):
        raise ValueError(f"edge_rtol must be a positive number, got {edge_rtol}")
    height, width = depth.shape
    if rgb is not None and np.asarray(rgb).shape[:2] != (height, width):
        raise ValueError(f"rgb {np.asarray(rgb).shape[:2]} does not match depth {depth.shape}")
    stride = mesh_stride(height, width, max_faces)
    rows, cols = np.arange(0, height, stride), np.arange(0, width, stride)
    grid_h, grid_w = len(rows), len(cols)
    z = depth[::stride, ::stride].astype(np.float64)  # the grid's rows × cols, a copy
    with np.errstate(invalid="ignore"):
        valid = np.isfinite(z) & (z > 0) & (z < SKY_DEPTH)
        if max_depth is not None:
            valid &= z <= max_depth

    # Two triangles per grid cell, counter-clockwise as seen from the camera: (a, c, b) and (b, c, d).
    a = (np.arange(grid_h - 1)[:, None] * grid_w + np.arange(grid_w - 1)[None, :]).reshape(-1)
    b, c = a + 1, a + grid_w
    d = c + 1
    faces = np.concatenate([np.stack([a, c, b], 1), np.stack([b, c, d], 1)])
    flat_z, flat_valid = z.reshape(-1), valid.reshape(-1)
    corners = flat_z[faces]
    with np.errstate(invalid="ignore", divide="ignore"):
        smooth = corners.max(axis=1) <= (1.0 + edge_rtol) * corners.min(axis=1)
    faces = faces[flat_valid[faces].all(axis=1) & smooth]

    used = np.zeros(grid_h * grid_w, bool)
    used[faces.reshape(-1)] = True
    index = np.flatnonzero(used)
    remap = np.full(grid_h * grid_w, -1, np.int64)
    remap[index] = np.arange(len(index))
    v = rows[index // grid_w].astype(np.float64)
    u = cols[index % grid_w].astype(np.float64)
    zz = flat_z[index]
    fx, fy, cx, cy, skew = K[0, 0], K[1, 1], K[0, 2], K[1, 2], K[0, 1]
    points = np.stack([(u - cx - skew * (v - cy) / fy) / fx * zz, (v - cy) / fy * zz, zz], axis=1)
    vertices = points @ OPENCV_TO_GLTF.T
    colours = np.full((len(index), 4), 255, np.uint8)
    if rgb is not None:
        colours[:, :3] = np.asarray(rgb)[rows[index // grid_w], cols[index % grid_w], :3]
    else:
        colours[:, :3] = 180
    return trimesh.Trimesh(
        vertices=vertices, faces=remap[faces], vertex_colors=colours, process=False, validate=False
    )


def write_glb(path: str | os.PathLike, mesh: trimesh.Trimesh, metadata: dict[str, Any] | None = None) -> Path:
    """Write ``mesh`` as a binary glTF file, atomically.

    The material is unlit (``KHR_materials_unlit``: viewers show the photo's colours as they are) and
    double-sided; ``metadata`` goes into the asset's ``extras`` (with metricdepth's mark).

    Returns:
        ``path``.
    """
    import trimesh
    from trimesh.exchange.gltf import export_glb

    from .writers import WRITER_MARK, json_ready

    extras = json_ready({"writer": WRITER_MARK, **(metadata or {})})

    def finish(tree: dict[str, Any]) -> None:
        tree["materials"] = [
            {
                "name": "photo",
                "pbrMetallicRoughness": {
                    "baseColorFactor": [1, 1, 1, 1],
                    "metallicFactor": 0.0,
                    "roughnessFactor": 1.0,
                },
                "doubleSided": True,
                "extensions": {"KHR_materials_unlit": {}},
            }
        ]
        for item in tree.get("meshes", []):
            for primitive in item["primitives"]:
                primitive["material"] = 0
        used = tree.setdefault("extensionsUsed", [])
        if "KHR_materials_unlit" not in used:
            used.append("KHR_materials_unlit")
        tree.setdefault("asset", {})["extras"] = extras

    scene = trimesh.Scene(mesh) if len(mesh.faces) else trimesh.Scene()
    data = export_glb(scene, include_normals=False, tree_postprocessor=finish)
    with atomic_path(path) as tmp:
        Path(tmp).write_bytes(data)
    return Path(path)


def _as_numpy(value: Any) -> np.ndarray:
    if hasattr(value, "detach"):  # a torch tensor, without importing torch here
        return value.detach().float().cpu().numpy()
    return np.asarray(value)
