"""Conventions every benchmark reader must share: OpenCV intrinsics, stored pixel order, EXIF focal,
and errors that name a corrupt ground-truth file."""

import numpy as np
import pytest
from PIL import Image

from metricdepth import load_image
from metricdepth.data import validate_sample
from metricdepth.data.datasets import (
    ETH3D,
    Diode,
    ExifFocalFolder,
    FolderDataset,
    MaskFolder,
    NYUv2Folder,
    SunRGBD,
    Void,
)
from metricdepth.data.datasets._common import one_based_to_opencv, read_image, read_npy_map, read_rgb
from metricdepth.data.datasets.eth3d import read_colmap_cameras
from metricdepth.data.datasets.nyu import NYU_K
from test_datasets_sparse_masks import exif_with_focal

H, W = 6, 8


def save_rgb(path, rgb=None, **kwargs):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rgb if rgb is not None else np.full((H, W, 3), 100, np.uint8)).save(path, **kwargs)


def save_png16(path, values):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(values, dtype=np.uint16)).save(path)


def sun_encode(millimetres):
    """SUN RGB-D storage: millimetres rotated left by 3 bits in 16 bits."""
    mm = np.asarray(millimetres, dtype=np.uint32)
    return (((mm << 3) | (mm >> 13)) & 0xFFFF).astype(np.uint16)


def write_sun_scene(root, intrinsics, image=None, image_name="0000103.jpg"):
    scene = root / "SUNRGBD" / "kv1" / "NYUdata" / "NYU0001"
    save_rgb(scene / "image" / image_name, image, quality=100)
    height, width = image.shape[:2] if image is not None else (H, W)
    save_png16(
        scene / "depth_bfx" / f"{image_name.rsplit('.', 1)[0]}.png",
        sun_encode(np.full((height, width), 2000)),
    )
    (scene / "intrinsics.txt").write_text(intrinsics)
    return scene


# ------------------------------------------------------------------------------ 1. OpenCV intrinsics


def test_one_based_to_opencv_moves_only_the_principal_point():
    K = np.array([[500.0, 0.5, 320.0], [0, 510.0, 240.0], [0, 0, 1]])
    converted = one_based_to_opencv(K)
    np.testing.assert_array_equal(converted, [[500.0, 0.5, 319.0], [0, 510.0, 239.0], [0, 0, 1]])
    assert K[0, 2] == 320.0  # the input is not modified
    with pytest.raises(ValueError, match="3x3"):
        one_based_to_opencv(np.eye(2))


def test_sunrgbd_intrinsics_are_converted_from_the_toolbox_one_based_convention(tmp_path):
    # The toolbox's NYU-sensor intrinsics.txt (fx fy cx cy of kv1 scenes).
    write_sun_scene(tmp_path, "518.857901 0 325.582449\n0 519.469611 253.736166\n0 0 1\n")
    sample = validate_sample(SunRGBD(tmp_path)[0])
    np.testing.assert_allclose(
        sample["K"], [[518.857901, 0, 324.582449], [0, 519.469611, 252.736166], [0, 0, 1]], rtol=0, atol=1e-12
    )
    # The same ray: the toolbox back-projects one-based pixel u1 = u0 + 1 as (u1 - cx) / fx.
    toolbox_cx, toolbox_cy = 325.582449, 253.736166
    u0, v0 = np.meshgrid(np.arange(W), np.arange(H))
    K = sample["K"]
    np.testing.assert_allclose((u0 - K[0, 2]) / K[0, 0], (u0 + 1 - toolbox_cx) / 518.857901, atol=1e-12)
    np.testing.assert_allclose((v0 - K[1, 2]) / K[1, 1], (v0 + 1 - toolbox_cy) / 519.469611, atol=1e-12)


def test_nyu_intrinsics_are_the_toolbox_values_minus_one(tmp_path):
    toolbox = (5.1885790117450188e02, 5.1946961112127485e02, 3.2558244941119034e02, 2.5373616633400465e02)
    np.testing.assert_array_equal(
        NYU_K, [[toolbox[0], 0, toolbox[2] - 1], [0, toolbox[1], toolbox[3] - 1], [0, 0, 1]]
    )
    test = tmp_path / "official_splits" / "test"
    save_rgb(test / "bathroom" / "rgb_00045.jpg", np.full((480, 640, 3), 90, np.uint8))
    save_png16(test / "bathroom" / "sync_depth_00045.png", np.full((480, 640), 2500))
    sample = validate_sample(NYUv2Folder(tmp_path)[0])
    assert sample["K"][0, 2] == pytest.approx(324.58244941119034, abs=1e-12)
    assert sample["K"][1, 2] == pytest.approx(252.73616633400465, abs=1e-12)


COLMAP_CAMERAS = """# Camera list with one line of data per camera:
1 PINHOLE 8 6 3410.5 3409.5 4.0 3.0
2 SIMPLE_RADIAL 8 6 3300 4.5 3.5 0.01
"""
COLMAP_IMAGES = """# Image list with two lines of data per image:
1 1 0 0 0 0 0 0 1 dslr_images/DSC_0001.JPG
1.5 2.5 -1
2 1 0 0 0 0 0 0 2 dslr_images/DSC_0002.JPG

"""


def test_eth3d_intrinsics_move_from_colmap_pixel_corner_origin(tmp_path):
    scene = tmp_path / "courtyard"
    for name in ("DSC_0001.JPG", "DSC_0002.JPG"):
        save_rgb(scene / "images" / "dslr_images" / name)
        depth_path = scene / "ground_truth_depth" / "dslr_images" / name
        depth_path.parent.mkdir(parents=True, exist_ok=True)
        np.full((H, W), 3.0, "<f4").tofile(depth_path)
    (scene / "dslr_calibration_jpg").mkdir()
    (scene / "dslr_calibration_jpg" / "cameras.txt").write_text(COLMAP_CAMERAS)
    (scene / "dslr_calibration_jpg" / "images.txt").write_text(COLMAP_IMAGES)
    dataset = ETH3D(tmp_path)
    first, second = validate_sample(dataset[0]), validate_sample(dataset[1])
    np.testing.assert_array_equal(first["K"], [[3410.5, 0, 3.5], [0, 3409.5, 2.5], [0, 0, 1]])
    np.testing.assert_array_equal(second["K"], [[3300, 0, 4.0], [0, 3300, 3.0], [0, 0, 1]])
    # A point COLMAP projects onto the image's exact centre (W/2, H/2 from the corner) lands on the
    # OpenCV centre ((W-1)/2, (H-1)/2) with the converted K.
    K_colmap = np.array([[3410.5, 0, 4.0], [0, 3409.5, 3.0], [0, 0, 1]])
    point = np.linalg.inv(K_colmap) @ np.array([W / 2, H / 2, 1.0]) * 7.0
    projected = first["K"] @ point
    np.testing.assert_allclose(projected[:2] / projected[2], [(W - 1) / 2, (H - 1) / 2], atol=1e-9)
    assert read_colmap_cameras(scene / "dslr_calibration_jpg" / "cameras.txt")[1][0][0, 2] == 3.5


# ---------------------------------------------------------------------- 2. stored pixel order


def pattern(height=H, width=W):
    """(H, W, 3) uint8 with a different value in every pixel of the first channel (orientation-revealing)."""
    y, x = np.mgrid[:height, :width]
    return np.stack([y * width + x, 255 - y * 20, x * 30], -1).astype(np.uint8)


@pytest.mark.parametrize("suffix", [".png", ".jpg"])
def test_rotated_exif_image_is_read_in_stored_order(tmp_path, suffix):
    path = tmp_path / f"photo{suffix}"
    save_rgb(
        path, pattern(), exif=exif_with_focal(orientation=6), **({"quality": 100} if suffix == ".jpg" else {})
    )
    assert load_image(path).rgb.shape == (W, H, 3)  # the tag is there: upright loading would rotate it
    rgb = read_rgb(path)
    assert rgb.shape == (H, W, 3)
    if suffix == ".png":
        np.testing.assert_array_equal(rgb, pattern())


def test_folder_reader_keeps_stored_order_of_a_rotated_image(tmp_path):
    save_rgb(tmp_path / "a.png", pattern(), exif=exif_with_focal(orientation=6))
    depth = np.arange(1, H * W + 1, dtype=np.float32).reshape(H, W)
    np.save(tmp_path / "a_depth.npy", depth)
    sample = validate_sample(FolderDataset(tmp_path)[0])
    assert sample["image"].shape == (H, W, 3) == (*depth.shape, 3)
    np.testing.assert_array_equal(sample["image"], pattern())
    np.testing.assert_array_equal(sample["depth"], depth)


def test_sunrgbd_and_mask_readers_keep_stored_order_of_rotated_images(tmp_path):
    image = pattern()
    write_sun_scene(tmp_path, "5 0 4\n0 5 3\n0 0 1\n", image=image)
    scene = tmp_path / "SUNRGBD" / "kv1" / "NYUdata" / "NYU0001"
    save_rgb(scene / "image" / "0000103.jpg", image, quality=100, exif=exif_with_focal(orientation=6))
    sample = validate_sample(SunRGBD(tmp_path)[0])
    assert sample["image"].shape == (H, W, 3) and sample["depth"].shape == (H, W)
    with Image.open(scene / "image" / "0000103.jpg") as jpeg:  # the decoded pixels, as stored
        np.testing.assert_array_equal(sample["image"], np.asarray(jpeg.convert("RGB")))

    save_rgb(tmp_path / "im" / "x.png", image, exif=exif_with_focal(orientation=8))
    mask = np.zeros((H, W), np.uint8)
    mask[:, : W // 2] = 255
    save_rgb(tmp_path / "gt" / "x.png", np.repeat(mask[..., None], 3, axis=2))
    masked = MaskFolder(tmp_path / "im", tmp_path / "gt")[0]
    np.testing.assert_array_equal(masked["image"], image)
    np.testing.assert_array_equal(masked["mask"], mask / 255.0)


# -------------------------------------------------------------------------- 3. exif_focal_px


def focal_35mm_to_px(focal_35mm, width, height):
    return focal_35mm * np.hypot(width, height) / np.hypot(36, 24)


def test_read_image_returns_stored_order_and_the_exif_focal(tmp_path):
    save_rgb(tmp_path / "a.jpg", pattern(), exif=exif_with_focal(orientation=6, focal_35mm=26))
    save_rgb(tmp_path / "b.png", pattern())
    rgb, focal = read_image(tmp_path / "a.jpg")
    assert rgb.shape == (H, W, 3)
    assert focal == pytest.approx(focal_35mm_to_px(26, W, H), rel=1e-12)
    assert focal == pytest.approx(load_image(tmp_path / "a.jpg").focal_px, rel=1e-12)  # rotation-invariant
    rgb, focal = read_image(tmp_path / "b.png")
    assert focal is None
    np.testing.assert_array_equal(rgb, pattern())


def test_folder_reader_exif_focal_is_metadata_not_ground_truth(tmp_path):
    depth = np.full((H, W), 2.0, np.float32)
    for name in ("exif_only", "exif_and_json", "plain"):
        exif = exif_with_focal(focal_35mm=35) if name != "plain" else exif_with_focal()
        save_rgb(tmp_path / f"{name}.jpg", pattern(), exif=exif, quality=100)
        np.save(tmp_path / f"{name}_depth.npy", depth)
    (tmp_path / "exif_and_json.json").write_text('{"focal_px": 123.0}')
    dataset = FolderDataset(tmp_path)
    samples = {dataset[i]["name"]: validate_sample(dataset[i]) for i in range(len(dataset))}
    expected = focal_35mm_to_px(35, W, H)
    exif_only = samples["exif_only"]
    assert "focal_px" not in exif_only and "K" not in exif_only  # EXIF is not ground truth
    assert exif_only["exif_focal_px"] == pytest.approx(expected, rel=1e-12)
    assert isinstance(exif_only["exif_focal_px"], float)
    both = samples["exif_and_json"]
    assert both["focal_px"] == 123.0 and both["exif_focal_px"] == pytest.approx(expected, rel=1e-12)
    assert "exif_focal_px" not in samples["plain"] and "focal_px" not in samples["plain"]


def test_benchmark_readers_set_exif_focal_only_when_the_file_has_one(tmp_path):
    image = pattern(480, 640)
    scene = write_sun_scene(tmp_path / "sun", "5 0 4\n0 5 3\n0 0 1\n", image=image)
    sun = SunRGBD(tmp_path / "sun")
    assert "exif_focal_px" not in sun[0]
    save_rgb(scene / "image" / "0000103.jpg", image, exif=exif_with_focal(focal_35mm=28))
    assert sun[0]["exif_focal_px"] == pytest.approx(focal_35mm_to_px(28, 640, 480), rel=1e-12)

    test = tmp_path / "nyu" / "official_splits" / "test"
    save_rgb(test / "office" / "rgb_00001.jpg", image, exif=exif_with_focal(focal_35mm=30))
    save_png16(test / "office" / "sync_depth_00001.png", np.full((480, 640), 2500))
    nyu = NYUv2Folder(tmp_path / "nyu")[0]
    assert nyu["exif_focal_px"] == pytest.approx(focal_35mm_to_px(30, 640, 480), rel=1e-12)
    assert nyu["K"][0, 0] == NYU_K[0, 0]  # the dataset's K stays the ground truth

    data = tmp_path / "void" / "data" / "seq"
    save_rgb(data / "image" / "1.5.png", pattern(), exif=exif_with_focal(focal_35mm=24))
    save_png16(data / "ground_truth" / "1.5.png", np.full((H, W), 512))
    np.savetxt(data / "K.txt", np.eye(3))
    void = Void(tmp_path / "void")[0]
    assert void["exif_focal_px"] == pytest.approx(focal_35mm_to_px(24, W, H), rel=1e-12)

    save_rgb(tmp_path / "im" / "x.png", pattern(), exif=exif_with_focal(focal_35mm=50))
    save_rgb(tmp_path / "gt" / "x.png", np.zeros((H, W, 3), np.uint8))
    masked = MaskFolder(tmp_path / "im", tmp_path / "gt")[0]
    assert masked["exif_focal_px"] == pytest.approx(focal_35mm_to_px(50, W, H), rel=1e-12)


def test_focal_benchmark_keeps_focal_px_as_its_ground_truth(tmp_path):
    save_rgb(tmp_path / "a.jpg", pattern(), exif=exif_with_focal(orientation=6, focal_35mm=26))
    sample = ExifFocalFolder(tmp_path)[0]
    assert sample["image"].shape == (H, W, 3)
    assert sample["focal_px"] == pytest.approx(focal_35mm_to_px(26, W, H), rel=1e-12)
    assert "exif_focal_px" not in sample  # the ground truth is not also handed out as an input


# --------------------------------------------------------- 8. corrupt ground truth names the file


def folder_with_depth_file(root, suffix, content: bytes):
    save_rgb(root / "a.png", pattern())
    (root / f"a{suffix}").write_bytes(content)
    return FolderDataset(root)


def valid_bytes(tmp_path, suffix):
    path = tmp_path / f"valid{suffix}"
    depth = np.random.default_rng(0).uniform(1, 5, (H, W)).astype(np.float32)
    if suffix == ".npy":
        np.save(path, depth)
    else:
        np.savez_compressed(path, depth=depth, valid=depth > 2)
    return path.read_bytes()


@pytest.mark.parametrize(
    ("suffix", "corrupt"),
    [
        ("_depth.npy", lambda valid: b"this is not a numpy file at all"),
        ("_depth.npy", lambda valid: valid[: len(valid) - 40]),  # truncated data
        ("_depth.npz", lambda valid: valid[: len(valid) // 2]),  # truncated archive
        ("_depth.npz", lambda valid: b"garbage, not a zip archive"),
        ("_depth.png", lambda valid: b"\x89PNG\r\n\x1a\n" + b"\x00" * 30),  # a PNG signature, then nothing
    ],
)
def test_folder_reader_corrupt_depth_file_is_named(tmp_path, suffix, corrupt):
    base = suffix.rsplit(".", 1)[1]
    valid = valid_bytes(tmp_path, "." + base) if base != "png" else b""
    root = tmp_path / "data"
    root.mkdir()
    dataset = folder_with_depth_file(root, suffix, corrupt(valid))
    with pytest.raises(ValueError) as info:
        dataset[0]
    assert str(root / f"a{suffix}") in str(info.value)
    assert "not a readable" in str(info.value)


def test_folder_reader_damaged_npz_member_is_named(tmp_path):
    path = tmp_path / "a_depth.npz"
    np.savez(path, depth=np.arange(H * W * 500, dtype=np.float64)[: H * W].reshape(H, W) + 1)
    data = bytearray(path.read_bytes())
    data[120:180] = bytes(60)  # inside the stored member: the archive still opens, reading it fails
    path.write_bytes(bytes(data))
    save_rgb(tmp_path / "a.png", pattern())
    with pytest.raises(ValueError, match=r"a_depth\.npz: depth is not a readable \.npz file"):
        FolderDataset(tmp_path)[0]


def test_npy_readers_of_benchmarks_name_a_corrupt_file(tmp_path):
    scan = tmp_path / "val" / "indoors" / "scene_00019" / "scan_00183"
    save_rgb(scan / "00019_00183_indoors_000_010.png", pattern())
    np.save(scan / "00019_00183_indoors_000_010_depth_mask.npy", np.ones((H, W), np.float32))
    depth_path = scan / "00019_00183_indoors_000_010_depth.npy"
    depth_path.write_bytes(b"\x93NUMPY garbage after the magic")
    dataset = Diode(tmp_path)
    with pytest.raises(ValueError, match=r"_depth\.npy: DIODE depth is not a readable \.npy file"):
        dataset[0]
    np.save(depth_path, np.ones((H, W, 1), np.float32))
    valid = (scan / "00019_00183_indoors_000_010_depth_mask.npy").read_bytes()
    (scan / "00019_00183_indoors_000_010_depth_mask.npy").write_bytes(valid[:-16])
    with pytest.raises(ValueError, match=r"_depth_mask\.npy: DIODE depth mask is not a readable"):
        dataset[0]
    np.savez(tmp_path / "archive.npz", depth=np.ones((H, W)))
    (tmp_path / "archive.npz").rename(tmp_path / "archive.npy")
    with pytest.raises(ValueError, match=r"archive\.npy: disparity is an \.npz archive"):
        read_npy_map(tmp_path / "archive.npy", "disparity")
    with pytest.raises(FileNotFoundError, match=r"absent\.npy: disparity file not found"):
        read_npy_map(tmp_path / "absent.npy", "disparity")
