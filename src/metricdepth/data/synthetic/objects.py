"""Object classes built from primitives, with sizes drawn from real-world dimensions (metres).

Each builder draws one instance's dimensions from its class's real size range and returns its parts
in the object's frame: base on z = 0, centred on the z axis, front facing +x. :func:`place` poses
the parts in the world (yaw about z, a position, and a uniform ``scale`` — the look-alikes: a
``toy car`` is a car built at 1:10 to 1:18, indistinguishable from a car except by its context).

Size ranges (metres; L × W × H, or as noted) follow common product and vehicle dimensions:

=============== ======================================  =============== ==============================
tabletop        cup r 0.035–0.045 h 0.08–0.11,          room            chair seat 0.40–0.50, seat h
                bottle r 0.03–0.045 h 0.18–0.32,                        0.43–0.48, total h 0.80–1.00;
                book 0.15–0.25 × 0.11–0.18 × 0.02–0.05,                 table 0.8–1.8 × 0.6–1.0 × 0.72–
                phone 0.14–0.16 × 0.07–0.078 × 0.008,                   0.76; sofa 1.6–2.3 × 0.8–1.0 ×
                laptop 0.30–0.36 × 0.21–0.25,                           0.75–0.9; bed 1.9–2.1 × 0.9–1.8
                bowl r 0.07–0.10 h 0.05–0.07,                           × 0.45–0.55; lamp h 1.4–1.8;
                toy car 1:10–1:18 of a car                              shelf 0.6–1.2 × 0.3–0.4 ×
street          car 3.8–5.0 × 1.7–1.9 × 1.4–1.6,                        1.2–2.0; door 0.8–0.9 × 2.0–
                bus 10–12.5 × 2.5 × 3.0–3.3,                            2.1; window 0.8–1.6 × 1.0–1.5
                person h 1.55–1.90, tree h 4–12,
                traffic light h 3–5, street sign h 2–2.6,
                building 8–30 × 8–20 × 6–40
=============== ======================================  =============== ==============================
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .primitives import Primitive, rotation
from .textures import Material

__all__ = ["CLASSES", "Part", "build", "jitter_color", "place"]

Color = tuple[float, float, float]


@dataclass
class Part:
    """One primitive of an object, in the object's frame (metres)."""

    kind: str
    size: tuple[float, float, float]
    offset: tuple[float, float, float]
    material: Material
    R: np.ndarray | None = None


def _u(rng: np.random.Generator, low: float, high: float) -> float:
    return float(rng.uniform(low, high))


def jitter_color(rng: np.random.Generator, base: Color, jitter: float = 0.08) -> Color:
    """``base`` with each channel moved by up to ±``jitter`` (clipped to [0, 1])."""
    return tuple(float(np.clip(c + rng.uniform(-jitter, jitter), 0, 1)) for c in base)  # type: ignore[return-value]


def _paint(rng: np.random.Generator) -> Color:
    """A saturated random colour (car paint, cups, book covers)."""
    hue = rng.uniform(0, 6)
    x = 1 - abs(hue % 2 - 1)
    rgb = [(1, x, 0), (x, 1, 0), (0, 1, x), (0, x, 1), (x, 0, 1), (1, 0, x)][int(hue)]
    value = rng.uniform(0.45, 0.95)
    return tuple(float(value * (0.25 + 0.75 * c)) for c in rgb)  # type: ignore[return-value]


def _wood(rng: np.random.Generator) -> Material:
    base = jitter_color(rng, (0.55, 0.35, 0.18), 0.1)
    return Material.two_tone(base, 0.6, "wood", _u(rng, 0.02, 0.05))


def _fabric(rng: np.random.Generator) -> Material:
    base = _paint(rng)
    return Material.two_tone(base, 0.8, "noise", _u(rng, 0.01, 0.03))


def _plain(color: Color) -> Material:
    return Material(color)


def _legs(length, width, height, radius, inset, material, kind="cylinder") -> list[Part]:
    """Four vertical legs under a rectangle of ``length`` × ``width``, ``height`` tall."""
    parts = []
    for sx in (-1, 1):
        for sy in (-1, 1):
            x, y = sx * (length / 2 - inset), sy * (width / 2 - inset)
            parts.append(Part(kind, (radius, radius, height / 2), (x, y, height / 2), material))
    return parts


# --- tabletop ---------------------------------------------------------------------------------------


def cup(rng):
    r, h = _u(rng, 0.035, 0.045), _u(rng, 0.08, 0.11)
    color = _paint(rng)
    body = Part("cylinder", (r, r, h / 2), (0, 0, h / 2), _plain(color))
    handle = Part("box", (0.006, 0.012, h * 0.3), (r + 0.01, 0, h * 0.55), _plain(color))
    return [body, handle]


def bottle(rng):
    r, h = _u(rng, 0.03, 0.045), _u(rng, 0.18, 0.32)
    glass = jitter_color(rng, (0.2, 0.45, 0.3), 0.15)
    neck_r = r * 0.4
    return [
        Part("cylinder", (r, r, h * 0.35), (0, 0, h * 0.35), _plain(glass)),
        Part("cylinder", (neck_r, neck_r, h * 0.15), (0, 0, h * 0.85), _plain(glass)),
        Part("cylinder", (neck_r * 1.1, neck_r * 1.1, h * 0.02), (0, 0, h), _plain((0.85, 0.85, 0.8))),
    ]


def book(rng):
    length, width, thick = _u(rng, 0.15, 0.25), _u(rng, 0.11, 0.18), _u(rng, 0.02, 0.05)
    cover = _paint(rng)
    return [
        Part(
            "box",
            (length / 2, width / 2, thick / 2),
            (0, 0, thick / 2),
            Material(cover, (0.95, 0.93, 0.85), "stripes", thick / 6),
        )
    ]


def phone(rng):
    length, width, thick = _u(rng, 0.14, 0.16), _u(rng, 0.07, 0.078), 0.008
    return [
        Part(
            "box",
            (length / 2, width / 2, thick / 2),
            (0, 0, thick / 2),
            _plain(jitter_color(rng, (0.1, 0.1, 0.12))),
        )
    ]


def laptop(rng):
    length, width = _u(rng, 0.30, 0.36), _u(rng, 0.21, 0.25)
    shell = jitter_color(rng, (0.7, 0.7, 0.72), 0.15)
    opening = math.radians(_u(rng, 95, 125))
    tilt = opening - math.pi / 2  # screen leans back from vertical
    base = Part("box", (width / 2, length / 2, 0.009), (0, 0, 0.009), _plain(shell))
    screen_center = (-width / 2 - math.sin(tilt) * width / 2, 0, 0.018 + math.cos(tilt) * width / 2)
    screen = Part(
        "box", (0.004, length / 2, width / 2), screen_center, _plain((0.08, 0.1, 0.16)), rotation(pitch=-tilt)
    )
    return [base, screen]


def bowl(rng):
    r, h = _u(rng, 0.07, 0.10), _u(rng, 0.05, 0.07)
    color = _paint(rng)
    return [
        Part("cylinder", (r * 0.6, r * 0.6, h * 0.15), (0, 0, h * 0.15), _plain(color)),
        Part("cylinder", (r, r, h * 0.35), (0, 0, h * 0.65), _plain(color)),
    ]


# --- room -------------------------------------------------------------------------------------------


def chair(rng):
    seat, seat_h, total = _u(rng, 0.40, 0.50), _u(rng, 0.43, 0.48), _u(rng, 0.80, 1.00)
    wood = _wood(rng)
    parts = _legs(seat, seat, seat_h - 0.03, 0.018, 0.03, wood)
    parts.append(Part("box", (seat / 2, seat / 2, 0.015), (0, 0, seat_h - 0.015), wood))
    parts.append(
        Part(
            "box",
            (0.015, seat / 2, (total - seat_h) / 2),
            (-seat / 2 + 0.015, 0, seat_h + (total - seat_h) / 2),
            wood,
        )
    )
    return parts


def table(rng):
    length, width, height = _u(rng, 0.8, 1.8), _u(rng, 0.6, 1.0), _u(rng, 0.72, 0.76)
    wood = _wood(rng)
    parts = _legs(length, width, height - 0.03, 0.025, 0.06, wood, kind="box")
    parts.append(Part("box", (length / 2, width / 2, 0.015), (0, 0, height - 0.015), wood))
    return parts


def sofa(rng):
    length, depth, height = _u(rng, 1.6, 2.3), _u(rng, 0.8, 1.0), _u(rng, 0.75, 0.9)
    fabric = _fabric(rng)
    seat_h = 0.42
    return [
        Part("box", (depth / 2, length / 2, seat_h / 2), (0, 0, seat_h / 2), fabric),
        Part("box", (0.1, length / 2, height / 2), (-depth / 2 + 0.1, 0, height / 2), fabric),
        Part("box", (depth / 2, 0.1, 0.31), (0, -length / 2 + 0.1, 0.31), fabric),
        Part("box", (depth / 2, 0.1, 0.31), (0, length / 2 - 0.1, 0.31), fabric),
    ]


def bed(rng):
    length, width, height = _u(rng, 1.9, 2.1), _u(rng, 0.9, 1.8), _u(rng, 0.45, 0.55)
    sheet = Material(jitter_color(rng, (0.9, 0.9, 0.92), 0.05), _paint(rng), "stripes", _u(rng, 0.05, 0.15))
    wood = _wood(rng)
    head_h = _u(rng, 0.9, 1.2)
    return [
        Part("box", (length / 2, width / 2, height / 2), (0, 0, height / 2), sheet),
        Part("box", (0.04, width / 2, head_h / 2), (-length / 2 - 0.04, 0, head_h / 2), wood),
        Part(
            "box",
            (0.2, width * 0.35, 0.06),
            (-length / 2 + 0.25, 0, height + 0.06),
            _plain((0.95, 0.95, 0.95)),
        ),
    ]


def lamp(rng):
    height, shade_r = _u(rng, 1.4, 1.8), _u(rng, 0.15, 0.25)
    metal = _plain(jitter_color(rng, (0.2, 0.2, 0.22), 0.1))
    shade = _plain(jitter_color(rng, (0.95, 0.9, 0.75), 0.05))
    return [
        Part("cylinder", (0.15, 0.15, 0.015), (0, 0, 0.015), metal),
        Part("cylinder", (0.012, 0.012, height / 2), (0, 0, height / 2), metal),
        Part("cylinder", (shade_r, shade_r, 0.13), (0, 0, height - 0.05), shade),
    ]


def shelf(rng):
    width, depth, height = _u(rng, 0.6, 1.2), _u(rng, 0.3, 0.4), _u(rng, 1.2, 2.0)
    wood = _wood(rng)
    parts = [
        Part("box", (depth / 2, 0.01, height / 2), (0, side * (width / 2 - 0.01), height / 2), wood)
        for side in (-1, 1)
    ]
    parts.append(Part("box", (0.005, width / 2, height / 2), (-depth / 2 + 0.005, 0, height / 2), wood))
    levels = int(rng.integers(3, 6))
    for level in range(levels + 1):
        z = 0.01 + level * (height - 0.02) / levels
        parts.append(Part("box", (depth / 2, width / 2 - 0.02, 0.01), (0, 0, z), wood))
    return parts


def door(rng):
    width, height = _u(rng, 0.8, 0.9), _u(rng, 2.0, 2.1)
    panel = _wood(rng) if rng.random() < 0.5 else _plain(jitter_color(rng, (0.92, 0.92, 0.9), 0.05))
    return [
        Part("box", (0.025, width / 2, height / 2), (0.025, 0, height / 2), panel),
        Part("sphere", (0.03, 0, 0), (0.08, width / 2 - 0.08, height * 0.48), _plain((0.8, 0.7, 0.3))),
    ]


def window(rng):
    width, height, sill = _u(rng, 0.8, 1.6), _u(rng, 1.0, 1.5), _u(rng, 0.8, 1.0)
    frame = _plain((0.95, 0.95, 0.95))
    glass = Material((0.55, 0.75, 0.95), (0.8, 0.9, 1.0), "noise", 0.3)
    return [
        Part("box", (0.02, width / 2, height / 2), (0.02, 0, sill + height / 2), frame),
        Part("box", (0.025, width / 2 - 0.06, height / 2 - 0.06), (0.025, 0, sill + height / 2), glass),
    ]


# --- street -----------------------------------------------------------------------------------------


def car(rng):
    length, width, height = _u(rng, 3.8, 5.0), _u(rng, 1.7, 1.9), _u(rng, 1.4, 1.6)
    paint = _plain(_paint(rng))
    glass = _plain((0.15, 0.2, 0.25))
    wheel_r = _u(rng, 0.3, 0.35)
    body_h = height * 0.5
    cabin = (height - body_h) / 2 - 0.05  # half height of the glass cabin, whose top is the roof
    axle = rotation(roll=math.pi / 2)
    parts = [
        Part("box", (length / 2, width / 2, body_h / 2), (0, 0, wheel_r * 0.8 + body_h / 2 - 0.1), paint),
        Part(
            "box",
            (length * 0.27, width / 2 - 0.05, cabin),
            (-length * 0.05, 0, height - cabin),
            glass,
        ),
    ]
    # One cylinder per axle, as wide as the car: its two ends are the wheels (the body hides the rest).
    tyre = _plain((0.05, 0.05, 0.05))
    for sx in (-1, 1):
        parts.append(
            Part(
                "cylinder", (wheel_r, wheel_r, width / 2 - 0.01), (sx * length * 0.32, 0, wheel_r), tyre, axle
            )
        )
    return parts


def bus(rng):
    length, height = _u(rng, 10.0, 12.5), _u(rng, 3.0, 3.3)
    width = 2.5
    paint = Material(_paint(rng), (0.15, 0.2, 0.25), "stripes", 1.2)
    axle = rotation(roll=math.pi / 2)
    parts = [
        Part("box", (length / 2, width / 2, (height - 0.3) / 2), (0, 0, 0.3 + (height - 0.3) / 2), paint)
    ]
    for x in (length * 0.32, -length * 0.3):  # one cylinder per axle: its ends are the wheels
        parts.append(
            Part("cylinder", (0.5, 0.5, width / 2 - 0.01), (x, 0, 0.5), _plain((0.05, 0.05, 0.05)), axle)
        )
    return parts


def person(rng):
    height = _u(rng, 1.55, 1.90)
    shirt, trousers = _plain(_paint(rng)), _plain(jitter_color(rng, (0.2, 0.22, 0.35), 0.1))
    skin = _plain(jitter_color(rng, (0.75, 0.58, 0.45), 0.15))
    leg_h, torso_h, head_r = height * 0.47, height * 0.33, height * 0.065
    parts = [
        Part("cylinder", (0.07, 0.07, leg_h / 2), (0, side * 0.1, leg_h / 2), trousers) for side in (-1, 1)
    ]
    parts.append(Part("cylinder", (0.17, 0.17, torso_h / 2), (0, 0, leg_h + torso_h / 2), shirt))
    parts.append(Part("sphere", (head_r, 0, 0), (0, 0, height - head_r), skin))
    return parts


def tree(rng):
    height = _u(rng, 4.0, 12.0)
    trunk_h, crown_r = height * 0.45, height * _u(rng, 0.22, 0.32)
    bark = Material((0.35, 0.25, 0.15), (0.2, 0.14, 0.08), "noise", 0.05)
    leaves = Material(jitter_color(rng, (0.2, 0.45, 0.15), 0.1), (0.1, 0.25, 0.08), "noise", 0.4)
    return [
        Part("cylinder", (height * 0.025, height * 0.025, trunk_h / 2), (0, 0, trunk_h / 2), bark),
        Part("sphere", (crown_r, 0, 0), (0, 0, height - crown_r), leaves),
    ]


def traffic_light(rng):
    height = _u(rng, 3.0, 5.0)
    metal = _plain((0.15, 0.15, 0.15))
    parts = [
        Part("cylinder", (0.08, 0.08, height / 2), (0, 0, height / 2), metal),
        Part("box", (0.15, 0.15, 0.45), (0.2, 0, height - 0.45), _plain((0.1, 0.1, 0.08))),
    ]
    for i, color in enumerate(((0.9, 0.1, 0.1), (0.95, 0.75, 0.1), (0.1, 0.8, 0.3))):
        parts.append(Part("sphere", (0.09, 0, 0), (0.33, 0, height - 0.17 - 0.28 * i), _plain(color)))
    return parts


def building(rng):
    length, depth, height = _u(rng, 8, 30), _u(rng, 8, 20), _u(rng, 6, 40)
    wall = Material(
        jitter_color(rng, (0.7, 0.65, 0.58), 0.15), (0.25, 0.3, 0.38), "checker", _u(rng, 1.4, 2.0)
    )
    return [Part("box", (depth / 2, length / 2, height / 2), (0, 0, height / 2), wall)]


def street_sign(rng):
    height = _u(rng, 2.0, 2.6)
    metal = _plain((0.6, 0.6, 0.62))
    plate = _plain(jitter_color(rng, (0.15, 0.35, 0.75), 0.1) if rng.random() < 0.5 else (0.85, 0.15, 0.12))
    return [
        Part("cylinder", (0.03, 0.03, height / 2), (0, 0, height / 2), metal),
        Part("box", (0.02, 0.3, 0.3), (0.05, 0, height + 0.2), plate),
    ]


def toy_car(rng):
    return car(rng)  # placed with scale 1/18 to 1/10: see SCALES


Builder = Callable[[np.random.Generator], list[Part]]

CLASSES: dict[str, Builder] = {
    "cup": cup,
    "bottle": bottle,
    "book": book,
    "phone": phone,
    "laptop": laptop,
    "bowl": bowl,
    "toy car": toy_car,
    "chair": chair,
    "table": table,
    "sofa": sofa,
    "bed": bed,
    "lamp": lamp,
    "shelf": shelf,
    "door": door,
    "window": window,
    "car": car,
    "bus": bus,
    "person": person,
    "tree": tree,
    "traffic light": traffic_light,
    "building": building,
    "street sign": street_sign,
}
"""Object builders by caption name."""

SCALES: dict[str, tuple[float, float]] = {"toy car": (1 / 18, 1 / 10)}
"""Uniform scale ranges of the look-alikes (everything else is built at 1:1)."""


def build(name: str, rng: np.random.Generator) -> tuple[list[Part], float]:
    """Parts of one ``name`` instance (already scaled for look-alikes) and the scale used."""
    parts = CLASSES[name](rng)
    low, high = SCALES.get(name, (1.0, 1.0))
    scale = _u(rng, low, high) if high > low else 1.0
    if scale != 1.0:
        parts = [
            Part(
                p.kind, tuple(scale * s for s in p.size), tuple(scale * o for o in p.offset), p.material, p.R
            )
            for p in parts
        ]  # type: ignore[misc]
    return parts, scale


def footprint(parts: list[Part]) -> float:
    """Radius (metres) of a vertical cylinder about the object's z axis containing its parts."""
    return max(math.hypot(p.offset[0], p.offset[1]) + max(p.size[:2]) for p in parts)


def height(parts: list[Part]) -> float:
    """Top of the object above its base, metres: the highest point of any part."""
    tops = []
    for p in parts:
        up = np.eye(3)[2] if p.R is None else np.asarray(p.R)[2]  # world z in the part's local axes
        if p.kind == "sphere":
            reach = p.size[0]
        elif p.kind == "cylinder":
            reach = abs(up[2]) * p.size[2] + math.hypot(up[0], up[1]) * p.size[0]
        else:
            reach = float(np.abs(up) @ np.asarray(p.size))
        tops.append(p.offset[2] + reach)
    return max(tops)


def place(
    parts: list[Part],
    position: tuple[float, float, float],
    yaw: float,
    materials: list[Material],
    instance: int,
    label: str,
) -> list[Primitive]:
    """World primitives of ``parts`` turned by ``yaw`` (radians, about z) with the base at ``position``.

    Appends the parts' materials to ``materials`` (the scene's list) and labels every primitive.
    """
    turn = rotation(yaw)
    primitives = []
    for part in parts:
        materials.append(part.material)
        R = turn if part.R is None else turn @ part.R
        center = np.asarray(position) + turn @ np.asarray(part.offset)
        primitives.append(
            Primitive(part.kind, part.size, tuple(center), R, len(materials) - 1, instance, label)  # type: ignore[arg-type]
        )
    return primitives
