"""nuScenes keyframes with sparse LiDAR depth projected into one camera (Caesar et al., CVPR 2020).

Layout, as published (only the tables and files used here are needed)::

    <root>/<version>/{sample,sample_data,calibrated_sensor,ego_pose,sensor,scene}.json
    <root>/samples/CAM_FRONT/<log>__CAM_FRONT__<timestamp>.jpg
    <root>/samples/LIDAR_TOP/<log>__LIDAR_TOP__<timestamp>.pcd.bin

The tables are read with plain ``json`` (no nuscenes-devkit). As in the devkit, ``sample_data`` rows
are linked to their channel through ``calibrated_sensor.sensor_token`` → ``sensor.channel``, and a
sample's keyframe data are the ``sample_data`` rows with ``is_key_frame`` true pointing at it.

Depth: the sample's ``LIDAR_TOP`` sweep (float32, five values per point: x, y, z, intensity, ring
index; only x, y, z are used) is moved lidar → ego (the lidar's ``calibrated_sensor``) → global (the
``ego_pose`` at the lidar timestamp) → ego at the camera timestamp (the camera's ``ego_pose``) →
camera (the camera's ``calibrated_sensor``), exactly the chain of the devkit's
``map_pointcloud_to_image``. Quaternions are stored w, x, y, z; translations in metres. Points with
camera z ≤ ``min_depth`` (1 m, the devkit's default ``min_dist``) are dropped. The rest are projected
with ``K = camera_intrinsic`` and land on pixel ``(floor(v + 0.5), floor(u + 0.5))`` (nearest pixel
centre, centres at integer coordinates as in the OpenCV convention); points outside the image are
dropped (the devkit's extra 1-pixel margin, a plotting choice, is not applied). Where several points
fall in one pixel the nearest is kept. Depth is camera z in metres, 0 elsewhere; valid = depth > 0.

Intrinsics: ``calibrated_sensor.camera_intrinsic`` of the chosen camera (images come undistorted).
Source convention: zero-based, pixel centres at integer coordinates (the devkit projects with it onto
zero-based pixel positions), i.e. already OpenCV: no conversion.

Split: every keyframe sample of the version by default; ``split`` restricts it to scenes by name
(``scene.name``, e.g. ``scene-0103``), given as a list of names or a text file with one name per line.
Sample names are the camera file's name without extension, in sorted order.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..sample import Sample
from ._common import read_image, read_split, require_dir, with_exif_focal

__all__ = ["NuScenes", "nuscenes_depth", "quaternion_to_matrix", "read_nuscenes_lidar"]

_TABLES = ("sample", "sample_data", "calibrated_sensor", "ego_pose", "sensor", "scene")


def quaternion_to_matrix(wxyz: Sequence[float]) -> np.ndarray:
    """(3, 3) rotation matrix of a quaternion given as w, x, y, z (normalised first)."""
    w, x, y, z = np.asarray(wxyz, dtype=np.float64) / np.linalg.norm(wxyz)
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
            [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
            [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
        ]
    )


def _pose_matrix(record: dict[str, Any]) -> np.ndarray:
    """(4, 4) transform child → parent of a ``calibrated_sensor`` or ``ego_pose`` record."""
    T = np.eye(4)
    T[:3, :3] = quaternion_to_matrix(record["rotation"])
    T[:3, 3] = record["translation"]
    return T


def read_nuscenes_lidar(path: str | os.PathLike) -> np.ndarray:
    """(N, 5) float32 points of a ``.pcd.bin`` sweep: x, y, z (metres, lidar frame), intensity, ring."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: lidar sweep not found")
    raw = np.fromfile(path, dtype="<f4")
    if raw.size % 5:
        raise ValueError(f"{path}: {raw.size} float32 values, not a multiple of 5 (x y z intensity ring)")
    return raw.reshape(-1, 5)


def nuscenes_depth(
    points_camera: np.ndarray, K: np.ndarray, height: int, width: int, min_depth: float = 1.0
) -> np.ndarray:
    """(H, W) float32 depth from (N, 3) points in the camera frame: nearest point per pixel, 0 elsewhere.

    Points with z ≤ ``min_depth`` are dropped; a point goes to pixel (floor(v + 0.5), floor(u + 0.5)).
    """
    depth = np.zeros((height, width), np.float32)
    points = np.asarray(points_camera, dtype=np.float64)
    points = points[points[:, 2] > min_depth]
    if not len(points):
        return depth
    uvw = points @ np.asarray(K, dtype=np.float64).T
    z = points[:, 2]
    col = np.floor(uvw[:, 0] / uvw[:, 2] + 0.5)
    row = np.floor(uvw[:, 1] / uvw[:, 2] + 0.5)
    inside = (col >= 0) & (col < width) & (row >= 0) & (row < height)
    flat = (row[inside] * width + col[inside]).astype(np.int64)
    z = z[inside]
    order = np.lexsort((z, flat))  # by pixel, nearest first within a pixel
    first = np.unique(flat[order], return_index=True)[1]
    depth.flat[flat[order][first]] = z[order][first]
    return depth


def _scene_names(split: str | os.PathLike | Sequence[str]) -> list[str]:
    if isinstance(split, (list, tuple)):
        return [str(name) for name in split]
    return [row[0] for row in read_split(split)]


class NuScenes:
    """Keyframe samples of one nuScenes camera with LIDAR_TOP depth projected into it.

    ``ds[i]`` is a sample with image, sparse metric depth (0 where no point), valid mask and K.
    """

    def __init__(
        self,
        root: str | os.PathLike,
        version: str = "v1.0-mini",
        camera: str = "CAM_FRONT",
        split: str | os.PathLike | Sequence[str] | None = None,
        min_depth: float = 1.0,
    ) -> None:
        self.root = require_dir(root, "nuScenes")
        self.camera = camera
        self.min_depth = min_depth
        table_dir = require_dir(self.root / version, f"nuScenes {version} tables")
        tables = {}
        for table in _TABLES:
            path = table_dir / f"{table}.json"
            if not path.is_file():
                raise FileNotFoundError(f"{path}: nuScenes table {table}.json not found")
            tables[table] = {row["token"]: row for row in json.loads(path.read_text())}
        self.calibrated_sensor = tables["calibrated_sensor"]
        self.ego_pose = tables["ego_pose"]

        channel_of = {
            token: tables["sensor"][row["sensor_token"]]["channel"]
            for token, row in tables["calibrated_sensor"].items()
        }
        keyframe: dict[tuple[str, str], dict[str, Any]] = {}
        for row in tables["sample_data"].values():
            if row["is_key_frame"]:
                keyframe[row["sample_token"], channel_of[row["calibrated_sensor_token"]]] = row

        scenes = {token: row["name"] for token, row in tables["scene"].items()}
        wanted = set(scenes.values())
        self.missing_scenes: list[str] = []
        if split is not None:
            names = _scene_names(split)
            self.missing_scenes = sorted(set(names) - wanted)
            wanted &= set(names)
            if not wanted:
                raise ValueError(f"{split}: none of its {len(names)} scenes is in nuScenes {version}")

        items = []
        for token, sample in tables["sample"].items():
            if scenes.get(sample["scene_token"]) not in wanted:
                continue
            cam = keyframe.get((token, camera))
            lidar = keyframe.get((token, "LIDAR_TOP"))
            if cam is not None and lidar is not None:
                items.append((Path(cam["filename"]).stem, cam, lidar))
        if not items:
            raise FileNotFoundError(
                f"{table_dir}: no keyframe sample with both {camera} and LIDAR_TOP data"
                + (" in the split's scenes" if split is not None else "")
            )
        self.items = sorted(items, key=lambda item: item[0])

    def __len__(self) -> int:
        return len(self.items)

    def lidar_to_camera(self, cam: dict[str, Any], lidar: dict[str, Any]) -> np.ndarray:
        """(4, 4) transform from the lidar frame (its timestamp) to the camera frame (its timestamp)."""
        lidar_to_global = _pose_matrix(self.ego_pose[lidar["ego_pose_token"]]) @ _pose_matrix(
            self.calibrated_sensor[lidar["calibrated_sensor_token"]]
        )
        camera_to_global = _pose_matrix(self.ego_pose[cam["ego_pose_token"]]) @ _pose_matrix(
            self.calibrated_sensor[cam["calibrated_sensor_token"]]
        )
        return np.linalg.inv(camera_to_global) @ lidar_to_global

    def __getitem__(self, index: int) -> Sample:
        name, cam, lidar = self.items[index]
        image_path = self.root / cam["filename"]
        if not image_path.is_file():
            raise FileNotFoundError(f"{image_path}: camera image not found")
        image, exif_focal = read_image(image_path)
        height, width = image.shape[:2]
        if cam.get("width") and (cam["width"], cam["height"]) != (width, height):
            raise ValueError(
                f"{image_path}: image is {width}x{height}, sample_data says {cam['width']}x{cam['height']}"
            )
        K = np.asarray(self.calibrated_sensor[cam["calibrated_sensor_token"]]["camera_intrinsic"], float)
        if K.shape != (3, 3):
            raise ValueError(f"{name}: camera_intrinsic of {self.camera} is not 3x3 (got shape {K.shape})")
        points = read_nuscenes_lidar(self.root / lidar["filename"])[:, :3].astype(np.float64)
        T = self.lidar_to_camera(cam, lidar)
        depth = nuscenes_depth(points @ T[:3, :3].T + T[:3, 3], K, height, width, self.min_depth)
        return with_exif_focal(Sample(name=name, image=image, depth=depth, valid=depth > 0, K=K), exif_focal)
