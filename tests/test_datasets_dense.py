"""Readers of dense-ground-truth benchmarks, each fed a tiny dataset written in the published format."""

import numpy as np
import pytest
from PIL import Image

from metricdepth.data import validate_sample
from metricdepth.data.datasets._common import disparity_to_depth, select_names
from metricdepth.data.datasets.booster import Booster, booster_calibration, read_opencv_storage
from metricdepth.data.datasets.diode import DIODE_K, Diode
from metricdepth.data.datasets.eth3d import ETH3D, read_colmap_cameras, read_colmap_image_cameras
from metricdepth.data.datasets.ibims import IBims1, ibims_intrinsics
from metricdepth.data.datasets.sintel import SINTEL_TAG, Sintel, read_sintel_camera, read_sintel_depth
from metricdepth.data.datasets.spring import SPRING_BASELINE_M, Spring, read_spring_disparity

H, W = 6, 8
RNG = np.random.default_rng(7)


def save_rgb(path, colour=None, size=(H, W)):
    """A real PNG/JPEG (by suffix) of one colour, or random pixels; returns the pixel array."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if colour is None:
        pixels = RNG.integers(0, 256, (*size, 3), dtype=np.uint8)
    else:
        pixels = np.full((*size, 3), colour, np.uint8)
    options = {"quality": 95} if path.suffix.lower() == ".jpg" else {}
    Image.fromarray(pixels).save(path, **options)
    return pixels


def random_depth(size=(H, W), low=0.5, high=20.0):
    return RNG.uniform(low, high, size).astype(np.float32)


def test_shared_helpers():
    depth, valid = disparity_to_depth(np.array([[2.0, 0.0], [np.nan, -1.0]]), 100.0, 0.5)
    assert depth.dtype == np.float32 and valid.tolist() == [[True, False], [False, False]]
    assert depth.tolist() == [[25.0, 0.0], [0.0, 0.0]]
    assert select_names(["b", "a", "a"], None, "x") == ["a", "b"]
    assert select_names(["b", "a"], "b", "x") == ["b"]
    with pytest.raises(FileNotFoundError, match="x: not found: c"):
        select_names(["a"], ["a", "c"], "x")


# --------------------------------------------------------------------------------------------- ETH3D

CAMERAS_TXT = """# Camera list with one line of data per camera:
#   CAMERA_ID, MODEL, WIDTH, HEIGHT, PARAMS[]
# Number of cameras: 2
1 THIN_PRISM_FISHEYE 8 6 3410.5 3409.5 3.2 2.8 -0.02 0.01 0.0001 -0.0002 0.003 -0.001 0.0005 0.0002
2 THIN_PRISM_FISHEYE 8 6 3300 3301 4.5 3.5 0 0 0 0 0 0 0 0
"""

IMAGES_TXT = """# Image list with two lines of data per image:
#   IMAGE_ID, QW, QX, QY, QZ, TX, TY, TZ, CAMERA_ID, NAME
#   POINTS2D[] as (X, Y, POINT3D_ID)
# Number of images: 2, mean observations per image: 0.5
5 0.9 0.1 0.2 0.3 1.0 2.0 3.0 2 dslr_images/DSC_0287.JPG

4 1 0 0 0 0 0 0 1 dslr_images/DSC_0286.JPG
1.5 2.5 -1 3.5 4.5 17
"""


def write_eth3d_scene(root, scene, names, calibration=True):
    """<scene>/images/dslr_images/*.JPG, raw float32 depth with inf, dslr_calibration_jpg/*.txt."""
    depths = {}
    for name in names:
        save_rgb(root / scene / "images" / "dslr_images" / name, colour=(90, 120, 150))
        depth = random_depth()
        depth[0, :3] = np.inf
        depth[5, 7] = 0
        path = root / scene / "ground_truth_depth" / "dslr_images" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        depth.astype("<f4").tofile(path)
        depths[name] = depth
    if calibration:
        folder = root / scene / "dslr_calibration_jpg"
        folder.mkdir(parents=True)
        (folder / "cameras.txt").write_text(CAMERAS_TXT)
        (folder / "images.txt").write_text(IMAGES_TXT)
    return depths


def test_eth3d(tmp_path):
    root = tmp_path / "eth3d"
    depths = write_eth3d_scene(root, "courtyard", ["DSC_0286.JPG", "DSC_0287.JPG"])
    write_eth3d_scene(root, "pipes", ["DSC_0634.JPG"], calibration=False)
    assert read_colmap_image_cameras(root / "courtyard/dslr_calibration_jpg/images.txt") == {
        "DSC_0287.JPG": 2,
        "DSC_0286.JPG": 1,
    }
    assert read_colmap_cameras(root / "courtyard/dslr_calibration_jpg/cameras.txt")[2][1:] == (8, 6)

    dataset = ETH3D(root)
    assert [dataset[i]["name"] for i in range(len(dataset))] == [
        "courtyard/DSC_0286",
        "courtyard/DSC_0287",
        "pipes/DSC_0634",
    ]
    first, second, third = (validate_sample(dataset[i]) for i in range(3))
    expected = depths["DSC_0286.JPG"]
    finite = np.isfinite(expected) & (expected > 0)
    np.testing.assert_array_equal(first["valid"], finite)
    np.testing.assert_array_equal(first["depth"], np.where(finite, expected, 0))
    assert first["valid"].sum() == H * W - 4 and first["depth"].dtype == np.float32
    assert np.abs(first["image"].astype(int) - (90, 120, 150)).max() <= 3  # JPEG
    # COLMAP's pixel-corner principal point moved to OpenCV's pixel centre.
    np.testing.assert_allclose(first["K"], [[3410.5, 0, 2.7], [0, 3409.5, 2.3], [0, 0, 1]])
    np.testing.assert_allclose(second["K"], [[3300, 0, 4.0], [0, 3301, 3.0], [0, 0, 1]])
    assert first["focal_px"] == 3410.5
    assert "K" not in third and "focal_px" not in third
    assert len(ETH3D(root, scenes="pipes")) == 1

    with pytest.raises(FileNotFoundError, match="not found: nope"):
        ETH3D(root, scenes=["nope"])
    with pytest.raises(FileNotFoundError, match="ETH3D folder not found"):
        ETH3D(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no ETH3D scene"):
        ETH3D(tmp_path / "empty")
    np.zeros(5, "<f4").tofile(root / "pipes/ground_truth_depth/dslr_images/DSC_0634.JPG")
    with pytest.raises(ValueError, match="5 float32 values, expected 8x6=48"):
        dataset[2]


def test_eth3d_refuses_undistorted_images(tmp_path):
    root = tmp_path / "eth3d"
    write_eth3d_scene(root, "office", ["DSC_0219.JPG"])
    (root / "office/images/dslr_images").rename(root / "office/images/dslr_images_undistorted")
    with pytest.raises(FileNotFoundError, match="distorted images of multi_view_training_dslr_jpg"):
        ETH3D(root)


# -------------------------------------------------------------------------------------------- Sintel


def write_dpt(path, depth):
    path.parent.mkdir(parents=True, exist_ok=True)
    header = (
        np.array([SINTEL_TAG], "<f4").tobytes() + np.array([depth.shape[1], depth.shape[0]], "<i4").tobytes()
    )
    path.write_bytes(header + depth.astype("<f4").tobytes())


def write_cam(path, M, N):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(
        np.array([SINTEL_TAG], "<f4").tobytes() + M.astype("<f8").tobytes() + N.astype("<f8").tobytes()
    )


def sintel_camera(focal):
    return np.array([[focal, 0, 3.5], [0, focal, 2.5], [0, 0, 1.0]]), np.hstack(
        [np.eye(3), [[1.0], [2.0], [3.0]]]
    )


def test_sintel(tmp_path):
    root = tmp_path / "sintel"
    training = root / "training"
    depths, cameras = {}, {}
    for scene, frames in (("alley_1", (1, 2)), ("bamboo_2", (1,))):
        for frame in frames:
            stem = f"frame_{frame:04d}"
            save_rgb(training / "final" / scene / f"{stem}.png", colour=(200, 10, 10))
            save_rgb(training / "clean" / scene / f"{stem}.png", colour=(10, 200, 10))
            depth = random_depth(high=90)
            depth[2, 2] = np.inf
            write_dpt(training / "depth" / scene / f"{stem}.dpt", depth)
            M, N = sintel_camera(688.0 + 100 * frame)  # a zooming shot
            write_cam(training / "camdata_left" / scene / f"{stem}.cam", M, N)
            depths[scene, frame], cameras[scene, frame] = depth, (M, N)
    save_rgb(training / "final" / "alley_1" / "frame_0003.png")  # no depth: skipped

    M, N = read_sintel_camera(training / "camdata_left/alley_1/frame_0002.cam")
    np.testing.assert_array_equal(M, cameras["alley_1", 2][0])
    np.testing.assert_array_equal(N, cameras["alley_1", 2][1])
    np.testing.assert_array_equal(
        read_sintel_depth(training / "depth/bamboo_2/frame_0001.dpt"), depths["bamboo_2", 1]
    )

    dataset = Sintel(root)
    assert [dataset[i]["name"] for i in range(len(dataset))] == [
        "alley_1/frame_0001",
        "alley_1/frame_0002",
        "bamboo_2/frame_0001",
    ]
    sample = validate_sample(dataset[1])
    expected = depths["alley_1", 2]
    assert not sample["valid"][2, 2] and sample["valid"].sum() == H * W - 1 and sample["depth"][2, 2] == 0
    np.testing.assert_array_equal(sample["depth"][sample["valid"]], expected[sample["valid"]])
    np.testing.assert_array_equal(sample["K"], cameras["alley_1", 2][0])
    assert sample["focal_px"] == 888.0 and tuple(sample["image"][0, 0]) == (200, 10, 10)
    clean = Sintel(root, pass_name="clean", scenes=["bamboo_2"])
    assert len(clean) == 1 and tuple(clean[0]["image"][0, 0]) == (10, 200, 10)

    with pytest.raises(ValueError, match="pass_name must be one of"):
        Sintel(root, pass_name="albedo")
    (training / "depth/alley_1/frame_0001.dpt").write_bytes(np.array([1.0, 2.0], "<f4").tobytes())
    with pytest.raises(ValueError, match=r"not a Sintel \.dpt depth file \(tag 1\.0, expected 202021\.25\)"):
        dataset[0]
    write_dpt(training / "depth/alley_1/frame_0001.dpt", np.zeros((3, 4), np.float32))
    with pytest.raises(ValueError, match="depth is 4x3 but the image is 8x6"):
        dataset[0]
    (training / "camdata_left/bamboo_2/frame_0001.cam").write_bytes(np.array([SINTEL_TAG], "<f4").tobytes())
    with pytest.raises(ValueError, match=r"\.cam file is truncated"):
        dataset[2]
    empty = tmp_path / "no_depth"
    save_rgb(empty / "training/final/alley_1/frame_0001.png")
    (empty / "training/depth").mkdir()
    with pytest.raises(FileNotFoundError, match="no Sintel frame"):
        Sintel(empty)
    images_only = tmp_path / "images_only"
    save_rgb(images_only / "training/final/alley_1/frame_0001.png")
    with pytest.raises(FileNotFoundError, match="Sintel depth"):
        Sintel(images_only)


# -------------------------------------------------------------------------------------------- Spring


def write_dsp5(path, disparity, key="disparity"):
    import h5py

    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as f:
        f.create_dataset(key, data=disparity, compression="gzip")


def test_spring(tmp_path):
    root = tmp_path / "spring"
    scene = root / "train" / "0004"
    disparities = {}
    for eye, frames in (("left", (1, 2)), ("right", (1,))):
        for frame in frames:
            save_rgb(scene / f"frame_{eye}" / f"frame_{eye}_{frame:04d}.png")
            disparity = RNG.uniform(1.0, 40.0, (2 * H, 2 * W)).astype(np.float32)
            disparity[0, 0] = 0  # sky
            disparity[2, 4] = np.nan  # the occasional Blender NaN
            disparity[1::2, :] = 1e6  # the odd rows/columns are not the image-resolution samples
            disparity[:, 1::2] = 1e6
            write_dsp5(scene / f"disp1_{eye}" / f"disp1_{eye}_{frame:04d}.dsp5", disparity)
            disparities[eye, frame] = disparity
    (scene / "cam_data").mkdir()
    (scene / "cam_data/intrinsics.txt").write_text("1100.0 1100.0 3.5 2.5\n1250.0 1250.0 3.5 2.5\n")
    save_rgb(root / "test" / "0003" / "frame_left" / "frame_left_0001.png")  # no ground truth

    assert read_spring_disparity(scene / "disp1_left/disp1_left_0001.dsp5").shape == (2 * H, 2 * W)
    dataset = Spring(root)
    assert [dataset[i]["name"] for i in range(len(dataset))] == [
        "0004/frame_left/frame_left_0001",
        "0004/frame_left/frame_left_0002",
    ]
    sample = validate_sample(dataset[1])
    image_res = disparities["left", 2][::2, ::2]
    expected_valid = np.isfinite(image_res) & (image_res > 0)
    assert expected_valid.sum() == H * W - 2
    np.testing.assert_array_equal(sample["valid"], expected_valid)
    expected_depth = np.zeros((H, W))
    expected_depth[expected_valid] = 1250.0 * 0.065 / image_res[expected_valid]
    np.testing.assert_allclose(sample["depth"], expected_depth, rtol=1e-6)
    assert SPRING_BASELINE_M == 0.065 and sample["depth"][sample["valid"]].min() > 2.0  # 1e6 fillers unused
    np.testing.assert_array_equal(sample["K"], [[1250, 0, 3.5], [0, 1250, 2.5], [0, 0, 1]])
    assert dataset[0]["K"][0, 0] == 1100.0
    right = Spring(root, eye="right", scenes="0004")
    assert len(right) == 1 and right[0]["name"] == "0004/frame_right/frame_right_0001"

    with pytest.raises(ValueError, match="eye must be one of"):
        Spring(root, eye="centre")
    with pytest.raises(FileNotFoundError, match="the test split has none"):
        Spring(root, split="test")
    with pytest.raises(FileNotFoundError, match="Spring 'val' split folder not found"):
        Spring(root, split="val")
    write_dsp5(scene / "disp1_left/disp1_left_0001.dsp5", np.ones((5, 5), np.float32))
    with pytest.raises(ValueError, match="disparity is 5x5, expected 16x12"):
        dataset[0]
    write_dsp5(scene / "disp1_left/disp1_left_0001.dsp5", np.ones((2 * H, 2 * W), np.float32), key="flow")
    with pytest.raises(ValueError, match="no 'disparity' dataset"):
        dataset[0]
    (scene / "disp1_left/disp1_left_0001.dsp5").write_bytes(b"not hdf5")
    with pytest.raises(ValueError, match="not a readable HDF5"):
        dataset[0]
    (scene / "cam_data/intrinsics.txt").write_text("1100.0 1100.0 3.5 2.5\n")
    with pytest.raises(ValueError, match="no line for frame 2"):
        Spring(root)[1]


# ------------------------------------------------------------------------------------------- Booster


def opencv_xml(**entries):
    """An OpenCV FileStorage XML file as cv::FileStorage writes it: matrices and plain numbers."""
    lines = ['<?xml version="1.0"?>', "<opencv_storage>"]
    for key, value in entries.items():
        if isinstance(value, np.ndarray):
            data = " ".join(f"{v:.16e}" for v in value.ravel())
            lines += [
                f'<{key} type_id="opencv-matrix">',
                f"  <rows>{value.shape[0]}</rows>",
                f"  <cols>{value.shape[1]}</cols>",
                "  <dt>d</dt>",
                f"  <data>\n    {data}</data></{key}>",
            ]
        else:
            lines.append(f"<{key}>{value:.16e}</{key}>")
    return "\n".join([*lines, "</opencv_storage>", ""])


def write_booster_scene(root, scene, images, with_mask=True, baseline_mm=77.5, fx=1000.0):
    folder = root / "train" / "balanced" / scene
    for k in range(images):
        save_rgb(folder / "camera_00" / f"im{k}.png", colour=(40 * k, 50, 60))
        save_rgb(folder / "camera_02" / f"im{k}.png")
    disparity = RNG.uniform(50, 400, (H, W)).astype(np.float32)
    disparity[1, 1] = 0
    np.save(folder / "disp_00.npy", disparity)
    mask = np.full((H, W), 255, np.uint8)
    mask[4, :] = 0
    if with_mask:
        Image.fromarray(mask).save(folder / "mask_00.png")
    mtx = np.array(
        [[fx + 7, 0, 4.1], [0, fx + 7, 3.1], [0, 0, 1]]
    )  # unrectified: not used when proj_matL exists
    proj = np.array([[fx, 0, 3.9, 0], [0, fx, 2.9, 0], [0, 0, 1, 0]])
    proj_r = proj.copy()
    proj_r[0, 3] = -fx * baseline_mm
    (folder / "calib_00-02.xml").write_text(
        opencv_xml(mtxL=mtx, mtxR=mtx, proj_matL=proj, proj_matR=proj_r, baselineLR=baseline_mm)
    )
    valid = disparity > 0
    if with_mask:
        valid &= mask > 0
    return np.where(valid, fx * baseline_mm / 1000 / np.where(disparity > 0, disparity, 1), 0), valid


def test_booster(tmp_path):
    root = tmp_path / "booster"
    bathroom_depth, bathroom_valid = write_booster_scene(root, "Bathroom", images=2)
    kitchen_depth, kitchen_valid = write_booster_scene(root, "Kitchen", images=1, with_mask=False, fx=2000.0)
    calib = read_opencv_storage(root / "train/balanced/Bathroom/calib_00-02.xml")
    assert calib["baselineLR"] == 77.5 and calib["proj_matR"].shape == (3, 4)
    K, baseline = booster_calibration(root / "train/balanced/Bathroom/calib_00-02.xml")
    assert baseline == pytest.approx(0.0775)
    np.testing.assert_array_equal(K, [[1000, 0, 3.9], [0, 1000, 2.9], [0, 0, 1]])

    dataset = Booster(root)
    assert [dataset[i]["name"] for i in range(len(dataset))] == [
        "Bathroom/camera_00/im0",
        "Bathroom/camera_00/im1",
        "Kitchen/camera_00/im0",
    ]
    im0, im1, kitchen = (validate_sample(dataset[i]) for i in range(3))
    for sample in (im0, im1):  # every illumination shares the scene's ground truth
        np.testing.assert_array_equal(sample["valid"], bathroom_valid)
        np.testing.assert_allclose(sample["depth"], bathroom_depth, rtol=1e-6)
    assert bathroom_valid.sum() == H * W - W - 1 and not im0["valid"][4].any()
    assert tuple(im1["image"][0, 0]) == (40, 50, 60) and tuple(im0["image"][0, 0]) == (0, 50, 60)
    np.testing.assert_array_equal(kitchen["valid"], kitchen_valid)
    np.testing.assert_allclose(kitchen["depth"], kitchen_depth, rtol=1e-6)
    assert kitchen["focal_px"] == 2000.0 and im0["K"][0, 2] == 3.9

    with pytest.raises(ValueError, match="scene_type must be one of"):
        Booster(root, scene_type="mixed")
    with pytest.raises(FileNotFoundError, match="Booster train/unbalanced folder not found"):
        Booster(root, scene_type="unbalanced")
    (root / "test" / "balanced" / "Shelf" / "camera_00").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match="no Booster scene"):
        Booster(root, split="test")
    calib_path = root / "train/balanced/Kitchen/calib_00-02.xml"
    calib_path.write_text(opencv_xml(mtxL=np.eye(3)))
    with pytest.raises(ValueError, match="baselineLR"):
        dataset[2]
    calib_path.write_text("<calibration><f>1</f></calibration>")
    with pytest.raises(ValueError, match="not an OpenCV FileStorage file"):
        dataset[2]
    calib_path.unlink()
    with pytest.raises(FileNotFoundError, match=r"expected one calib_00-XX\.xml, found 0"):
        dataset[2]
    np.save(root / "train/balanced/Bathroom/disp_00.npy", np.ones((3, 3), np.float32))
    with pytest.raises(ValueError, match="disparity is 3x3 but the image is 8x6"):
        dataset[0]


# ------------------------------------------------------------------------------------------- iBims-1


def write_ibims(folder, name, fx=559.6, fy=558.9, cx=4.2, cy=3.1):
    """An iBims-1 .mat: struct ``data`` with the published fields, calib in MATLAB's transposed layout."""
    from scipy.io import savemat

    folder.mkdir(parents=True, exist_ok=True)
    depth = random_depth(high=12).astype(np.float64)
    depth[0, 0] = 0
    mask_invalid = np.ones((H, W), np.uint8)
    mask_invalid[1, :2] = 0
    mask_transp = np.ones((H, W), np.uint8)
    mask_transp[2, 5] = 0
    edges = np.zeros((H, W), np.uint8)
    edges[:, 4] = 1
    data = {
        "rgb": RNG.integers(0, 256, (H, W, 3), dtype=np.uint8),
        "depth": depth,
        "edges": edges,
        "calib": np.array([[fx, 0, 0], [0, fy, 0], [cx, cy, 1.0]]),
        "mask_invalid": mask_invalid,
        "mask_transp": mask_transp,
        "mask_wall": np.zeros((H, W), np.uint8),
        "mask_wall_paras": np.zeros((0, 7)),
    }
    savemat(folder / f"{name}.mat", {"data": data})
    valid = (depth > 0) & (mask_invalid > 0) & (mask_transp > 0)
    return data, valid


def test_ibims(tmp_path):
    root = tmp_path / "ibims"
    folder = root / "ibims1_core_mat"
    office, office_valid = write_ibims(folder, "office_02")
    write_ibims(folder, "corridor_01", fx=600.0)
    (folder / "imagelist.txt").write_text("office_02\ncorridor_01\n")

    dataset = IBims1(root)
    assert [dataset[i]["name"] for i in range(len(dataset))] == [
        "office_02",
        "corridor_01",
    ]  # the list's order
    sample = validate_sample(dataset[0])
    np.testing.assert_array_equal(sample["image"], office["rgb"])
    np.testing.assert_array_equal(sample["valid"], office_valid)
    assert office_valid.sum() == H * W - 4
    np.testing.assert_allclose(sample["depth"], np.where(office_valid, office["depth"], 0), rtol=1e-6)
    assert sample["depth"].dtype == np.float32
    # one-based MATLAB principal point to zero-based OpenCV
    np.testing.assert_allclose(sample["K"], [[559.6, 0, 3.2], [0, 558.9, 2.1], [0, 0, 1]])
    assert sample["edges"].dtype == bool and sample["edges"][:, 4].all() and sample["edges"].sum() == H
    assert dataset[1]["focal_px"] == 600.0
    assert len(IBims1(folder)) == 2  # the .mat folder itself as root
    K = np.array([[500.0, 0, 320], [0, 500, 240], [0, 0, 1]])
    np.testing.assert_array_equal(ibims_intrinsics(K), K)  # already OpenCV layout

    (folder / "imagelist.txt").write_text("office_02\nkitchen_05\n")
    with pytest.raises(FileNotFoundError, match=r"1 listed image\(s\) have no .mat.*kitchen_05.mat"):
        IBims1(root)
    (folder / "imagelist.txt").unlink()
    assert [n for n in IBims1(root).names] == ["corridor_01", "office_02"]
    from scipy.io import savemat

    savemat(folder / "office_02.mat", {"depth": np.zeros((H, W))})
    with pytest.raises(ValueError, match="expected a struct 'data'"):
        IBims1(root)[1]
    (folder / "office_02.mat").write_bytes(b"garbage")
    with pytest.raises(ValueError, match=r"not a readable MATLAB \.mat file"):
        IBims1(root)[1]
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match=r"no iBims-1 \.mat file"):
        IBims1(tmp_path / "empty")


# --------------------------------------------------------------------------------------------- DIODE


def write_diode(split_root, scene_type, scene, scan, stem):
    folder = split_root / scene_type / f"scene_{scene:05d}" / f"scan_{scan:05d}"
    save_rgb(folder / f"{stem}.png")
    depth = random_depth(high=60)[..., None]  # (H, W, 1) as published
    depth[3, 3, 0] = 0
    np.save(folder / f"{stem}_depth.npy", depth)
    mask = np.ones((H, W), np.float32)
    mask[0, :] = 0
    np.save(folder / f"{stem}_depth_mask.npy", mask)
    return depth[..., 0], (mask > 0) & (depth[..., 0] > 0)


def test_diode(tmp_path):
    split_root = tmp_path / "diode" / "val"
    indoor_depth, indoor_valid = write_diode(split_root, "indoors", 19, 183, "00019_00183_indoors_000_010")
    write_diode(split_root, "indoors", 19, 184, "00019_00184_indoors_020_000")
    write_diode(split_root, "outdoor", 22, 193, "00022_00193_outdoor_000_000")
    root = tmp_path / "diode"

    dataset = Diode(root)
    assert [dataset[i]["name"] for i in range(len(dataset))] == [
        "indoors/scene_00019/scan_00183/00019_00183_indoors_000_010",
        "indoors/scene_00019/scan_00184/00019_00184_indoors_020_000",
        "outdoor/scene_00022/scan_00193/00022_00193_outdoor_000_000",
    ]
    sample = validate_sample(dataset[0])
    np.testing.assert_array_equal(sample["valid"], indoor_valid)
    assert indoor_valid.sum() == H * W - W - 1
    np.testing.assert_array_equal(sample["depth"], np.where(indoor_valid, indoor_depth, 0))
    np.testing.assert_array_equal(sample["K"], [[886.81, 0, 512], [0, 927.06, 384], [0, 0, 1]])
    assert sample["focal_px"] == 886.81 and np.array_equal(DIODE_K, sample["K"])
    assert len(Diode(root, scene_type="indoors")) == 2 and len(Diode(root, scene_type="outdoor")) == 1
    custom = np.array([[100.0, 0, 4], [0, 100, 3], [0, 0, 1]])
    assert Diode(root, scene_type="outdoor", K=custom)[0]["K"][0, 0] == 100.0

    with pytest.raises(ValueError, match="scene_type must be one of"):
        Diode(root, scene_type="indoor")
    with pytest.raises(FileNotFoundError, match="DIODE 'train' split folder not found"):
        Diode(root, split="train")
    stem = split_root / "indoors/scene_00019/scan_00184/00019_00184_indoors_020_000"
    np.save(f"{stem}_depth.npy", np.ones((H, W, 2), np.float32))
    with pytest.raises(ValueError, match=r"must be HxW or HxWx1, got shape \(6, 8, 2\)"):
        dataset[1]
    stem = split_root / "outdoor/scene_00022/scan_00193/00022_00193_outdoor_000_000"
    (split_root / f"{stem}_depth_mask.npy").unlink()
    with pytest.raises(FileNotFoundError, match="DIODE depth mask file not found"):
        dataset[2]
