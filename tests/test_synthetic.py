import math
from collections import Counter

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from metricdepth.camera import fov_to_focal
from metricdepth.cli import app
from metricdepth.data.datasets import FolderDataset
from metricdepth.data.synthetic import (
    FAMILY_CLASSES,
    SEMANTIC_CLASSES,
    Camera,
    Material,
    Primitive,
    Scene,
    SyntheticScenes,
    count_words,
    render,
    rotation,
    write_samples,
)
from metricdepth.data.synthetic.objects import CLASSES, SCALES, build, height

W, H = 96, 72
FOCAL = fov_to_focal(60.0, W)
GREY = [Material((0.5, 0.5, 0.5))]


def camera_at_origin() -> Camera:
    """Looking along world +y with z up: camera (x, y, z) = world (x, −z, y)."""
    return Camera.from_fov(60.0, W, H, np.zeros(3), np.array([0.0, 1.0, 0.0]))


def pixel_rays() -> tuple[np.ndarray, np.ndarray]:
    """Normalised image coordinates (x̃, ỹ) of every pixel, (H, W) each, OpenCV convention."""
    u, v = np.meshgrid(np.arange(W), np.arange(H))
    return (u - (W - 1) / 2) / FOCAL, (v - (H - 1) / 2) / FOCAL


def world(x, y, z):
    """Camera coordinates (x right, y down, z forward) → world of :func:`camera_at_origin`."""
    return (x, z, -y)


def render_one(primitive: Primitive, dtype=torch.float64):
    return render(Scene([primitive], GREY), camera_at_origin(), dtype=dtype)


def test_camera_intrinsics_match_the_field_of_view():
    camera = camera_at_origin()
    assert camera.K[0, 0] == pytest.approx(0.5 * W / math.tan(math.radians(30)))
    assert camera.K[0, 0] == camera.K[1, 1] and camera.fov_deg == pytest.approx(60.0)
    assert (camera.K[0, 2], camera.K[1, 2]) == ((W - 1) / 2, (H - 1) / 2)
    np.testing.assert_allclose(camera.R, [[1, 0, 0], [0, 0, 1], [0, -1, 0]], atol=1e-12)


@pytest.mark.parametrize("dtype, tol", [(torch.float64, 1e-12), (torch.float32, 1e-6)])
def test_fronto_parallel_plane_gives_its_distance_everywhere(dtype, tol):
    plane = Primitive("plane", (math.inf, math.inf, 0), world(0, 0, 3.7), rotation(roll=math.pi / 2))
    out = render_one(plane, dtype)
    assert out.valid.all()
    np.testing.assert_allclose(out.depth.numpy(), 3.7, rtol=tol)


def test_tilted_plane_matches_the_closed_form():
    tilt = math.radians(35)
    normal_cam = np.array([0.0, math.sin(tilt), math.cos(tilt)])  # tilted about the camera x axis
    point = np.array([0.2, -0.1, 4.0])
    # A plane primitive's normal is its local z: a rotation whose third column is the world normal.
    z = np.array(world(*normal_cam))
    x = np.array([1.0, 0.0, 0.0])  # perpendicular to z, which has no world-x component
    R = np.stack([x, np.cross(z, x), z], axis=1)
    out = render_one(Primitive("plane", (math.inf, math.inf, 0), world(*point), R))
    x, y = pixel_rays()
    expected = (normal_cam @ point) / (normal_cam[0] * x + normal_cam[1] * y + normal_cam[2])
    hit = expected > 0
    np.testing.assert_array_equal(out.valid.numpy(), hit)
    np.testing.assert_allclose(out.depth.numpy()[hit], expected[hit], rtol=1e-10)


def test_sphere_matches_the_closed_form():
    center, radius = np.array([0.3, -0.2, 3.0]), 0.8
    out = render_one(Primitive("sphere", (radius, 0, 0), world(*center)))
    x, y = pixel_rays()
    m = np.stack([x, y, np.ones_like(x)], -1)
    mc, mm = m @ center, (m * m).sum(-1)
    disc = mc**2 - mm * (center @ center - radius**2)
    hit = disc >= 0
    expected = (mc - np.sqrt(np.where(hit, disc, 0))) / mm
    assert 0.05 < hit.mean() < 0.9
    np.testing.assert_array_equal(out.valid.numpy(), hit)
    np.testing.assert_allclose(out.depth.numpy()[hit], expected[hit], rtol=1e-10)


def test_rotated_box_matches_a_face_by_face_computation():
    R = rotation(yaw=0.4, pitch=0.3, roll=-0.2)
    center, half = np.array(world(-0.2, 0.1, 2.5)), np.array([0.5, 0.3, 0.4])
    out = render_one(Primitive("box", tuple(half), tuple(center), R))
    # Independent: intersect each of the 6 face planes, keep hits inside the face, take the nearest.
    dirs = np.einsum("ij,hwj->hwi", camera_at_origin().R, np.stack([*pixel_rays(), np.ones((H, W))], -1))
    best = np.full((H, W), np.inf)
    for axis in range(3):
        for sign in (-1, 1):
            normal = R[:, axis] * sign
            face_point = center + normal * half[axis]
            t = (face_point @ normal) / (dirs @ normal)
            local = np.einsum("hwi,ij->hwj", t[..., None] * dirs - center, R)
            inside = (np.abs(local) <= half + 1e-9).all(-1) & (t > 0)
            best = np.where(inside & (t < best), t, best)
    hit = np.isfinite(best)
    assert hit.mean() > 0.05
    np.testing.assert_array_equal(out.valid.numpy(), hit)
    np.testing.assert_allclose(out.depth.numpy()[hit], best[hit], rtol=1e-10)


def test_cylinder_cap_and_side():
    # Axis along the optical axis: the near cap is a disc at z = 2.5 - 0.5 of radius 0.4.
    cap_on = Primitive("cylinder", (0.4, 0, 0.5), world(0, 0, 2.5), rotation(roll=math.pi / 2))
    out = render_one(cap_on)
    x, y = pixel_rays()
    disc = (2.0 * x) ** 2 + (2.0 * y) ** 2 <= 0.4**2
    assert disc.sum() > 50
    np.testing.assert_allclose(out.depth.numpy()[disc], 2.0, rtol=1e-12)
    # Upright (world z axis = camera −y): the side wall's depth solves a quadratic in x and z.
    side_on = Primitive("cylinder", (0.5, 0, 10.0), world(0.3, 0, 3.0))
    out = render_one(side_on)
    a, b, c = x**2 + 1, -2 * (0.3 * x + 3.0), 0.3**2 + 3.0**2 - 0.25
    disc = b * b - 4 * a * c
    hit = disc >= 0
    np.testing.assert_array_equal(out.valid.numpy(), hit)
    expected = (-b[hit] - np.sqrt(disc[hit])) / (2 * a[hit])
    np.testing.assert_allclose(out.depth.numpy()[hit], expected, rtol=1e-10)


def test_a_point_projects_where_K_says():
    center = np.array([0.5, -0.3, 4.0])
    out = render_one(Primitive("sphere", (0.05, 0, 0), world(*center)))
    v, u = np.nonzero(out.valid.numpy())
    K = camera_at_origin().K
    projected = K @ center / center[2]
    assert abs(u.mean() - projected[0]) < 0.3 and abs(v.mean() - projected[1]) < 0.3


def test_instance_edges_coincide_with_depth_discontinuities():
    # Convex objects floating in front of a wall: every instance change is an occlusion, and depth
    # jumps elsewhere happen only across faces seen at grazing angles.
    prims = [
        Primitive("plane", (math.inf, math.inf, 0), world(0, 0, 6), rotation(roll=math.pi / 2)),
        Primitive("sphere", (0.5, 0, 0), world(-0.6, 0.1, 3.0), instance=1, label="a"),
        Primitive("box", (0.3, 0.3, 0.3), world(0.7, 0.6, 2.0), rotation(yaw=0.5, pitch=0.2), instance=2),
        Primitive("cylinder", (0.2, 0, 0.4), world(0.0, 0.5, 4.5), instance=3),
    ]
    out = render(Scene(prims, GREY), camera_at_origin(), dtype=torch.float64)
    instance = np.array([0, 0, 1, 2, 3])[out.primitive.numpy() + 1]
    depth = out.depth.numpy()
    for axis in (0, 1):
        a, b = np.moveaxis(instance, axis, 0), np.moveaxis(depth, axis, 0)
        edge = a[1:] != a[:-1]
        ratio = np.maximum(b[1:], b[:-1]) / np.minimum(b[1:], b[:-1])
        jump = ratio > 1.1
        assert edge.sum() > 20 and jump[edge].all()
        assert (jump & ~edge).sum() <= 0.05 * jump.sum()


def test_samples_are_deterministic_and_consistent():
    ds = SyntheticScenes(size=(48, 64), seed=3, length=10)
    first, again = ds[4], ds[4]
    for key in ("image", "depth", "valid", "instance", "semantic", "K"):
        np.testing.assert_array_equal(first[key], again[key])
    assert first["captions"] == again["captions"] and first["name"] == "room_3_000004"
    assert not np.array_equal(SyntheticScenes(size=(48, 64), seed=4)[4]["depth"], first["depth"])
    for index in range(6):
        s = ds[index]
        assert s["image"].shape == (48, 64, 3) and s["image"].dtype == np.uint8
        assert s["depth"].dtype == np.float32 and s["family"] == ("tabletop", "room", "street")[index % 3]
        assert (s["depth"][s["valid"]] > 0).all() and (s["depth"][~s["valid"]] == 0).all()
        assert s["K"][0, 0] == pytest.approx(32 / math.tan(math.radians(s["fov_deg"] / 2)))
        assert 25 <= s["fov_deg"] <= 110
        assert ((s["semantic"] == 0) == ~s["valid"]).all()  # sky: no class, no depth
    with pytest.raises(ValueError, match="unknown scene families"):
        SyntheticScenes(families=("forest",))
    with pytest.raises(IndexError):
        ds[10]


@pytest.mark.parametrize("family", ["tabletop", "room", "street"])
def test_captions_name_exactly_the_visible_instances(family):
    ds = SyntheticScenes(size=96, families=(family,), seed=11, length=8)
    vocabulary = list(CLASSES)
    for index in range(8):
        s = ds[index]
        ids = np.unique(s["instance"])
        ids = ids[ids > 0]
        assert ids.tolist() == list(
            range(1, len(s["instance_class"]) + 1)
        )  # every listed instance is in the map
        visible = Counter(s["instance_class"])
        assert set(visible) <= set(FAMILY_CLASSES[family])
        for caption in s["captions"][:-1]:
            assert count_words(caption, vocabulary) == visible, caption
        free = s["captions"][-1]
        assert all(name in visible for name in count_words_in_free_text(free, vocabulary))


def count_words_in_free_text(text: str, vocabulary: list[str]) -> set[str]:
    """Class names appearing as whole words (longest first, so "toy car" is not also a "car")."""
    found, lowered = set(), f" {text.lower().replace('.', ' ').replace(',', ' ')} "
    for name in sorted(vocabulary, key=len, reverse=True):
        for form in (
            name,
            name + "s",
            name + "es",
            "people" if name == "person" else name,
            name[:-1] + "ves",
        ):
            if f" {form} " in lowered:
                found.add(name)
                lowered = lowered.replace(f" {form} ", " ")
    return found


def test_depth_ranges_follow_the_family_scale():
    medians = {}
    for family in ("tabletop", "room", "street"):
        ds = SyntheticScenes(size=64, families=(family,), seed=0, length=12)
        medians[family] = np.median([np.median(s["depth"][s["valid"]]) for s in (ds[i] for i in range(12))])
    assert 0.3 < medians["tabletop"] < 2.0 < medians["room"] < 10.0 and 3.0 < medians["street"] < 80.0


def test_object_sizes_are_real_world_and_toys_are_small():
    rng = np.random.default_rng(0)
    heights = {name: [height(build(name, rng)[0]) for _ in range(20)] for name in CLASSES}
    assert min(heights["person"]) > 1.5 and max(heights["person"]) < 1.95
    assert min(heights["table"]) > 0.7 and max(heights["table"]) < 0.8
    assert 1.4 < min(heights["car"]) < max(heights["car"]) < 1.65
    assert max(heights["cup"]) < 0.12 and min(heights["bus"]) > 2.9
    car, toy = max(heights["car"]), max(heights["toy car"])
    assert SCALES["toy car"][0] * 1.39 < toy < SCALES["toy car"][1] * car
    assert "toy car" in FAMILY_CLASSES["tabletop"] and "car" in FAMILY_CLASSES["street"]


def test_written_samples_read_back_through_the_folder_reader(tmp_path):
    ds = SyntheticScenes(size=(40, 56), seed=1, length=3)
    write_samples(ds, tmp_path, 3)
    back = FolderDataset(tmp_path)
    assert len(back) == 3
    by_name = {back[i]["name"]: back[i] for i in range(3)}
    for index in range(3):
        original = ds[index]
        read = by_name[original["name"]]
        np.testing.assert_array_equal(read["image"], original["image"])
        np.testing.assert_array_equal(read["depth"], original["depth"])
        np.testing.assert_array_equal(read["valid"], original["valid"])
        np.testing.assert_array_equal(read["instance"], original["instance"])
        np.testing.assert_allclose(read["K"], original["K"])
        assert read["captions"] == original["captions"]
        assert read["instance_class"] == original["instance_class"]


def test_synth_cli_writes_samples_and_a_preview(tmp_path):
    runner = CliRunner()
    result = runner.invoke(app, ["synth", str(tmp_path / "out"), "--count", "2", "--size", "32"])
    assert result.exit_code == 0, result.output
    assert len(list((tmp_path / "out").glob("*_depth.npz"))) == 2
    sheet = tmp_path / "sheet.png"
    result = runner.invoke(
        app, ["synth", "--preview", str(sheet), "--count", "3", "--size", "32", "-f", "street"]
    )
    assert result.exit_code == 0, result.output
    with Image.open(sheet) as image:
        assert image.width == 4 * 256 and image.height > 3 * 256
    assert runner.invoke(app, ["synth"]).exit_code == 2
    bad = runner.invoke(app, ["synth", "--preview", str(sheet), "-f", "forest"])
    assert bad.exit_code == 2 and "forest" in bad.output


def test_semantic_classes_cover_every_label():
    assert SEMANTIC_CLASSES[0] == "none" and len(set(SEMANTIC_CLASSES)) == len(SEMANTIC_CLASSES)
    assert set(CLASSES) <= set(SEMANTIC_CLASSES)


def test_shadows_darken_only_the_shaded_pixels():
    floor = Primitive("plane", (math.inf, math.inf, 0), (0, 0, -1.0), material=0)
    ball = Primitive("sphere", (0.4, 0, 0), (0, 4, 0.0), material=0, instance=1)
    scene = Scene([floor, ball], GREY, light=(0.0, 0.0, 1.0))  # sun straight above
    camera = Camera.from_fov(60.0, W, H, np.zeros(3), np.array([0.0, 1.0, -0.3]))
    lit, shadowed = render(scene, camera), render(scene, camera, shadows=True)
    np.testing.assert_array_equal(lit.depth.numpy(), shadowed.depth.numpy())
    darker = shadowed.rgb.numpy().astype(int).sum(-1) < lit.rgb.numpy().astype(int).sum(-1)
    on_floor = lit.primitive.numpy() == 0
    # The shadow is the ball's vertical projection on the floor: |x| and |y - 4| within the radius.
    v, u = np.nonzero(on_floor)
    rays = np.stack(
        [
            (u - camera.K[0, 2]) / camera.K[0, 0],
            (v - camera.K[1, 2]) / camera.K[1, 1],
            np.ones_like(u, float),
        ],
        1,
    )
    world = lit.depth.numpy()[v, u][:, None] * (rays @ camera.R.T)
    under = np.hypot(world[:, 0], world[:, 1] - 4) < 0.4 - 1e-3
    assert under.sum() > 10
    assert darker[v, u][under].all() and not darker[v, u][~under].any()


def test_collate_and_worker_setup():
    from metricdepth.data.synthetic import collate_samples, tune_cpu_allocator, worker_init

    ds = SyntheticScenes(size=(24, 32), seed=2, length=3)
    batch = collate_samples([ds[i] for i in range(3)])
    assert batch["image"].shape == (3, 24, 32, 3) and batch["depth"].dtype == torch.float32
    assert batch["K"].shape == (3, 3, 3) and len(batch["captions"]) == 3
    with pytest.raises(ValueError, match="different shapes"):
        collate_samples([ds[0], SyntheticScenes(size=16)[0]])
    threads = torch.get_num_threads()
    try:
        worker_init(0)
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(threads)
    assert isinstance(tune_cpu_allocator(), bool)


def test_random_resolution():
    ds = SyntheticScenes(size_range=(24, 48), seed=5, length=6)
    shapes = {ds[i]["image"].shape[:2] for i in range(6)}
    assert len(shapes) > 1 and all(24 <= h <= 48 and 24 <= w <= 48 for h, w in shapes)
    s = ds[2]
    h, w = s["depth"].shape
    assert s["K"][0, 2] == (w - 1) / 2 and s["K"][1, 2] == (h - 1) / 2
    assert s["K"][0, 0] == pytest.approx(w / 2 / math.tan(math.radians(s["fov_deg"] / 2)))
    with pytest.raises(ValueError, match="size_range"):
        SyntheticScenes(size_range=(40, 20))
