"""Scene families with real-world scale: what is in the image tells how far away it is.

* ``tabletop`` (depths ≈ 0.3–2 m): a table in front of a wall with 2–7 small objects on it (cup,
  bottle, book, phone, laptop, bowl, toy car), seen from 0.5–1.6 m at 25–65° elevation.
* ``room`` (≈ 1–10 m): a closed room of 3–8 × 3–6 × 2.4–3 m with 3–8 pieces of furniture (chair,
  table, sofa, bed, lamp, shelf) and 0–3 doors and windows on its walls, seen from eye height.
* ``street`` (≈ 3–80 m): a road with sidewalks, buildings on both sides, cars and buses on the lanes,
  people, trees, traffic lights and street signs on the sidewalks, seen from 1.3–2.2 m; the sky is
  invalid (no depth).

The world is metric with z up. Every family draws the horizontal field of view uniformly from
25–110°. :func:`sample_scene` returns the scene, the camera and the class of every instance.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from .objects import build, footprint, jitter_color, place
from .primitives import Primitive, rotation
from .raycast import Camera, Scene
from .textures import Material

__all__ = ["FAMILIES", "FAMILY_CLASSES", "FOV_RANGE", "SEMANTIC_CLASSES", "STUFF", "sample_scene"]

FOV_RANGE = (25.0, 110.0)
"""Horizontal field of view, degrees, drawn uniformly."""

FAMILY_CLASSES: dict[str, tuple[str, ...]] = {
    "tabletop": ("cup", "bottle", "book", "phone", "laptop", "bowl", "toy car", "table"),
    "room": ("chair", "table", "sofa", "bed", "lamp", "shelf", "door", "window"),
    "street": ("car", "bus", "person", "tree", "traffic light", "building", "street sign"),
}
FAMILIES = tuple(FAMILY_CLASSES)
STUFF = ("floor", "wall", "ceiling", "road", "sidewalk", "ground")
"""Surfaces without instances (instance id 0)."""
SEMANTIC_CLASSES: tuple[str, ...] = (
    "none",
    *STUFF,
    *dict.fromkeys(c for cs in FAMILY_CLASSES.values() for c in cs),
)
"""Class-mask labels: index 0 = nothing (sky)."""

INF = math.inf


class _Builder:
    """Accumulates primitives, materials and instance labels of one scene."""

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng
        self.primitives: list[Primitive] = []
        self.materials: list[Material] = []
        self.instance_class: list[str] = []

    def stuff(self, kind: str, size, center, material: Material, label: str, R=None) -> None:
        self.materials.append(material)
        self.primitives.append(
            Primitive(kind, size, center, np.eye(3) if R is None else R, len(self.materials) - 1, 0, label)
        )

    def add(self, name: str, position, yaw: float, parts=None) -> None:
        parts = parts if parts is not None else build(name, self.rng)[0]
        self.instance_class.append(name)
        instance = len(self.instance_class)
        self.primitives += place(parts, position, yaw, self.materials, instance, name)

    def scatter(
        self,
        names: list[str],
        region: tuple[float, float, float, float],
        z: float,
        yaw: Callable[[str], float],
        taken: list[tuple[float, float, float]],
        tries: int = 30,
    ) -> None:
        """Place ``names`` at random in the (x0, x1, y0, y1) rectangle at height ``z`` without overlaps
        (footprint circles in ``taken``); objects that do not fit are left out."""
        x0, x1, y0, y1 = region
        for name in names:
            parts = build(name, self.rng)[0]
            radius = footprint(parts)
            for _ in range(tries):
                x = self.rng.uniform(x0 + radius, x1 - radius) if x1 - x0 > 2 * radius else (x0 + x1) / 2
                y = self.rng.uniform(y0 + radius, y1 - radius) if y1 - y0 > 2 * radius else (y0 + y1) / 2
                if all(math.hypot(x - tx, y - ty) > radius + tr for tx, ty, tr in taken):
                    taken.append((x, y, radius))
                    self.add(name, (x, y, z), yaw(name), parts)
                    break


def _floor_material(rng: np.random.Generator) -> Material:
    choice = rng.integers(3)
    if choice == 0:
        base = jitter_color(rng, (0.6, 0.42, 0.25), 0.1)
        return Material.two_tone(base, 0.65, "wood", float(rng.uniform(0.04, 0.1)))
    if choice == 1:
        return Material(
            jitter_color(rng, (0.8, 0.8, 0.78)),
            jitter_color(rng, (0.35, 0.35, 0.38)),
            "checker",
            float(rng.uniform(0.3, 0.6)),
        )
    base = jitter_color(rng, (0.5, 0.45, 0.4), 0.15)
    return Material.two_tone(base, 0.7, "noise", float(rng.uniform(0.05, 0.2)))


def _wall_material(rng: np.random.Generator) -> Material:
    base = jitter_color(rng, (0.85, 0.82, 0.75), 0.12)
    if rng.random() < 0.3:
        return Material.two_tone(base, 0.85, "stripes", float(rng.uniform(0.1, 0.3)))
    return Material.two_tone(base, 0.93, "noise", float(rng.uniform(0.2, 0.5)))


def _wall(b: _Builder, center, normal_yaw: float, width: float, height: float, material: Material) -> None:
    """A vertical rectangle facing direction ``normal_yaw`` (its local z)."""
    R = rotation(yaw=normal_yaw) @ rotation(pitch=math.pi / 2)
    b.stuff("plane", (height / 2, width / 2, 0), center, material, "wall", R)


def _camera(rng, width, height, position, target) -> Camera:
    return Camera.from_fov(
        float(rng.uniform(*FOV_RANGE)), width, height, np.asarray(position), np.asarray(target)
    )


def _tabletop(b: _Builder, width: int, height: int) -> Camera:
    rng = b.rng
    b.stuff("plane", (10, 10, 0), (0, 0, 0), _floor_material(rng), "floor")
    wall_x = -float(rng.uniform(0.8, 2.5))
    _wall(b, (wall_x, 0, 2.5), 0.0, 20, 5, _wall_material(rng))
    table_parts, _ = build("table", rng)
    top = max(p.offset[2] + p.size[2] for p in table_parts)
    length = 2 * max(abs(p.offset[0]) + p.size[0] for p in table_parts)
    depth = 2 * max(abs(p.offset[1]) + p.size[1] for p in table_parts)
    b.add("table", (0, 0, 0), 0.0, table_parts)
    names = list(rng.choice(FAMILY_CLASSES["tabletop"][:-1], size=int(rng.integers(2, 8))))
    margin = 0.03
    b.scatter(
        names,
        (-length / 2 + margin, length / 2 - margin, -depth / 2 + margin, depth / 2 - margin),
        top,
        lambda _: float(rng.uniform(-math.pi, math.pi)),
        [],
    )
    target = np.array([rng.uniform(-0.2, 0.2) * length, rng.uniform(-0.2, 0.2) * depth, top])
    distance, elevation = rng.uniform(0.5, 1.6), math.radians(rng.uniform(25, 65))
    azimuth = math.radians(rng.uniform(-70, 70))  # from +x, facing the wall behind the table
    offset = distance * np.array(
        [
            math.cos(elevation) * math.cos(azimuth),
            math.cos(elevation) * math.sin(azimuth),
            math.sin(elevation),
        ]
    )
    return _camera(rng, width, height, target + offset, target)


def _room(b: _Builder, width: int, height: int) -> Camera:
    rng = b.rng
    L, W, H = rng.uniform(3, 8), rng.uniform(3, 6), rng.uniform(2.4, 3.0)
    b.stuff("plane", (L / 2, W / 2, 0), (0, 0, 0), _floor_material(rng), "floor")
    b.stuff(
        "plane", (L / 2, W / 2, 0), (0, 0, H), Material(jitter_color(rng, (0.93, 0.93, 0.9), 0.04)), "ceiling"
    )
    wall = _wall_material(rng)
    walls = [
        ((-L / 2, 0), 0.0, W),
        ((L / 2, 0), math.pi, W),
        ((0, -W / 2), math.pi / 2, L),
        ((0, W / 2), -math.pi / 2, L),
    ]
    for (x, y), facing, span in walls:
        _wall(b, (x, y, H / 2), facing, span, H, wall)
    # Doors and windows on the walls (not the one behind the camera, at +x).
    for name in rng.choice(["door", "window", "window"], size=int(rng.integers(0, 4))):
        (x, y), facing, span = walls[int(rng.choice([0, 2, 3]))]
        along = rng.uniform(-span / 2 + 0.6, span / 2 - 0.6)
        dx, dy = -math.sin(facing) * along, math.cos(facing) * along
        b.add(name, (x + dx, y + dy, 0), facing)
    names = list(rng.choice(FAMILY_CLASSES["room"][:6], size=int(rng.integers(3, 9))))
    camera_x = L / 2 - rng.uniform(0.3, 1.0)
    taken = [(camera_x, 0.0, 0.6)]  # keep the camera's spot free
    b.scatter(
        names,
        (-L / 2 + 0.05, L / 2 - 0.05, -W / 2 + 0.05, W / 2 - 0.05),
        0.0,
        lambda _: float(rng.choice([0, math.pi / 2, math.pi, -math.pi / 2]) + rng.normal(0, 0.15)),
        taken,
    )
    eye = np.array([camera_x, rng.uniform(-0.3, 0.3) * W, rng.uniform(1.2, 1.8)])
    yaw, pitch = math.radians(rng.uniform(-30, 30)), math.radians(rng.uniform(-25, -5))
    look = np.array([-math.cos(yaw) * math.cos(pitch), math.sin(yaw) * math.cos(pitch), math.sin(pitch)])
    return _camera(rng, width, height, eye, eye + look)


def _street(b: _Builder, width: int, height: int) -> Camera:
    rng = b.rng
    road, walk, length = rng.uniform(6, 12), rng.uniform(2, 4), 160.0
    asphalt = Material(
        jitter_color(rng, (0.3, 0.3, 0.32), 0.05), jitter_color(rng, (0.22, 0.22, 0.24), 0.03), "noise", 0.15
    )
    b.stuff("plane", (road / 2, length / 2, 0), (0, length / 2 - 10, 0), asphalt, "road")
    paving = Material(
        jitter_color(rng, (0.62, 0.6, 0.57), 0.06), jitter_color(rng, (0.5, 0.48, 0.45), 0.05), "checker", 0.6
    )
    for side in (-1, 1):
        b.stuff(
            "box",
            (walk / 2, length / 2, 0.075),
            (side * (road / 2 + walk / 2), length / 2 - 10, 0.075),
            paving,
            "sidewalk",
        )
    b.stuff(
        "plane",
        (150, 150, 0),
        (0, 60, -0.01),
        Material(jitter_color(rng, (0.4, 0.5, 0.3), 0.1), (0.3, 0.35, 0.2), "noise", 1.0),
        "ground",
    )
    for side in (-1, 1):  # buildings line both sides, facing the road
        y = -10.0
        while y < length - 20:
            parts, _ = build("building", rng)
            depth = 2 * parts[0].size[0]
            frontage = 2 * parts[0].size[1]
            x = side * (road / 2 + walk + depth / 2 + rng.uniform(0, 2))
            b.add("building", (x, y + frontage / 2, 0), 0.0, parts)
            y += frontage + rng.uniform(0, 8)
    lane_yaw = {"car": math.pi / 2, "bus": math.pi / 2}
    vehicles = list(rng.choice(["car", "car", "car", "bus"], size=int(rng.integers(1, 8))))
    b.scatter(
        vehicles,
        (-road / 2 + 0.2, road / 2 - 0.2, 6, 90),
        0.0,
        lambda name: lane_yaw[name] + float(rng.choice([0, math.pi])) + rng.normal(0, 0.05),
        [(0, 0, 4)],
    )
    walkers = list(
        rng.choice(
            ["person", "person", "tree", "traffic light", "street sign"], size=int(rng.integers(2, 10))
        )
    )
    for side in (-1, 1):
        share = [n for i, n in enumerate(walkers) if i % 2 == (side > 0)]
        inner, outer = side * (road / 2 + 0.3), side * (road / 2 + walk - 0.3)
        b.scatter(
            share,
            (min(inner, outer), max(inner, outer), 3, 70),
            0.15,
            lambda _: float(rng.uniform(-math.pi, math.pi)),
            [],
        )
    eye = np.array([rng.uniform(-road / 4, road / 4), 0.0, rng.uniform(1.3, 2.2)])
    yaw, pitch = math.radians(rng.uniform(-20, 20)), math.radians(rng.uniform(-10, -2))
    look = np.array([math.sin(yaw) * math.cos(pitch), math.cos(yaw) * math.cos(pitch), math.sin(pitch)])
    return _camera(rng, width, height, eye, eye + look)


_FAMILY_BUILDERS = {"tabletop": _tabletop, "room": _room, "street": _street}


def sample_scene(
    family: str, rng: np.random.Generator, width: int, height: int
) -> tuple[Scene, Camera, list[str]]:
    """A random scene of ``family``, its camera, and ``instance_class`` (index = instance id − 1)."""
    if family not in _FAMILY_BUILDERS:
        raise ValueError(f"unknown scene family {family!r}; choose from {', '.join(FAMILIES)}")
    builder = _Builder(rng)
    camera = _FAMILY_BUILDERS[family](builder, width, height)
    elevation = math.radians(rng.uniform(30, 70))
    azimuth = rng.uniform(-math.pi, math.pi)
    light = (
        math.cos(elevation) * math.cos(azimuth),
        math.cos(elevation) * math.sin(azimuth),
        math.sin(elevation),
    )
    scene = Scene(builder.primitives, builder.materials, light=light, ambient=float(rng.uniform(0.3, 0.5)))
    return scene, camera, builder.instance_class
