"""NYUv2, KITTI Eigen, VOID and SUN RGB-D readers against tiny datasets written in each published format."""

import h5py
import numpy as np
import pytest
import scipy.io
from PIL import Image

from metricdepth.data import validate_sample
from metricdepth.data.datasets._common import read_matrix_txt, resolve_listed
from metricdepth.data.datasets.kitti import KittiEigen, kitti_calibration
from metricdepth.data.datasets.nyu import NYU_K, NYUv2Folder, NYUv2Labeled
from metricdepth.data.datasets.sunrgbd import SunRGBD, decode_sunrgbd_depth
from metricdepth.data.datasets.void import Void

# --------------------------------------------------------------------------------------------- writers


def pattern_rgb(height, width, seed):
    """A deterministic (H, W, 3) uint8 image, different per seed."""
    y, x = np.mgrid[:height, :width]
    return np.stack(
        [(x * 7 + seed * 31) % 256, (y * 11 + seed * 17) % 256, (x + y + seed * 5) % 256], -1
    ).astype(np.uint8)


def save_png16(path, values):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(values, dtype=np.uint16)).save(path)


def save_rgb(path, rgb, **kwargs):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rgb).save(path, **kwargs)


def write_nyu_labeled_mat(path, images, depths, raw_depths):
    """MATLAB v7.3 layout: a 512-byte MATLAB header (HDF5 user block), arrays stored column-major."""
    with h5py.File(path, "w", userblock_size=512) as mat:
        # MATLAB (H, W, 3, N) column-major is what h5py sees as (N, 3, W, H).
        mat.create_dataset("images", data=np.asarray(images).transpose(0, 3, 2, 1))
        mat.create_dataset("depths", data=np.asarray(depths, dtype=np.float32).transpose(0, 2, 1))
        mat.create_dataset("rawDepths", data=np.asarray(raw_depths, dtype=np.float32).transpose(0, 2, 1))
        mat["images"].attrs["MATLAB_class"] = np.bytes_("uint8")
        mat["depths"].attrs["MATLAB_class"] = np.bytes_("single")
        mat["rawDepths"].attrs["MATLAB_class"] = np.bytes_("single")
    header = (
        b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Mon Jan  1 00:00:00 2012 HDF5 schema 1.00 ."
    )
    with open(path, "r+b") as handle:
        handle.write(header.ljust(116) + b"\x00" * 8 + b"\x00\x02IM")


KITTI_CALIB = """calib_time: 09-Jan-2012 13:57:47
corner_dist: 9.950000e-02
S_rect_02: 1.242000e+03 3.750000e+02
P_rect_02: 7.215377e+02 0.000000e+00 6.095593e+02 4.485728e+01 0.000000e+00 7.215377e+02 1.728540e+02 \
2.163791e-01 0.000000e+00 0.000000e+00 1.000000e+00 2.745884e-03
S_rect_03: 1.242000e+03 3.750000e+02
P_rect_03: 7.215377e+02 0.000000e+00 6.095593e+02 -3.395242e+02 0.000000e+00 7.215377e+02 1.728540e+02 \
2.199936e+00 0.000000e+00 0.000000e+00 1.000000e+00 2.729905e-03
"""
KITTI_H, KITTI_W = 375, 1242


def kitti_gt(seed):
    """Sparse uint16 ground truth like the annotated maps: most pixels 0."""
    values = np.zeros((KITTI_H, KITTI_W), np.uint16)
    rng = np.random.default_rng(seed)
    rows, cols = rng.integers(0, KITTI_H, 400), rng.integers(0, KITTI_W, 400)
    values[rows, cols] = rng.integers(256, 80 * 256, 400)
    values[KITTI_H - 1, 13] = 1234  # bottom-left corner of the benchmark crop
    return values


def write_kitti(tmp_path):
    """raw/<date>/<drive>/image_0X/data/*.png + calib, gt/{train,val}/<drive>/proj_depth/groundtruth/..."""
    raw, gt = tmp_path / "raw", tmp_path / "gt"
    (raw / "2011_09_26").mkdir(parents=True)
    (raw / "2011_09_26" / "calib_cam_to_cam.txt").write_text(KITTI_CALIB)
    frames = {
        ("2011_09_26_drive_0002_sync", "image_02", "0000000069"): "train",
        ("2011_09_26_drive_0002_sync", "image_02", "0000000075"): None,  # no ground truth
        ("2011_09_26_drive_0002_sync", "image_03", "0000000069"): "train",
        ("2011_09_26_drive_0009_sync", "image_02", "0000000016"): "val",
    }
    truth = {}
    for seed, ((drive, camera, frame), subset) in enumerate(frames.items()):
        save_rgb(
            raw / "2011_09_26" / drive / camera / "data" / f"{frame}.png", pattern_rgb(KITTI_H, KITTI_W, seed)
        )
        if subset:
            truth[drive, camera, frame] = kitti_gt(seed)
            save_png16(
                gt / subset / drive / "proj_depth" / "groundtruth" / camera / f"{frame}.png",
                truth[drive, camera, frame],
            )
    # ground truth of a drive whose raw images were not downloaded: skipped without a split file
    save_png16(
        gt / "val" / "2011_09_28_drive_0001_sync/proj_depth/groundtruth/image_02/0000000005.png", kitti_gt(9)
    )
    return raw, gt, truth


def write_void_sequence(data, sequence, stamps, K, with_gt=True):
    truth = {}
    for seed, stamp in enumerate(stamps):
        save_rgb(data / sequence / "image" / f"{stamp}.png", pattern_rgb(6, 8, seed))
        if with_gt:
            values = (np.arange(48, dtype=np.uint16).reshape(6, 8) * 97 + seed) % 2000
            save_png16(data / sequence / "ground_truth" / f"{stamp}.png", values)
            truth[stamp] = values
    np.savetxt(data / sequence / "K.txt", K)
    return truth


SUN_SCENES = {
    "kv2/kinect2data/000002_2014-05-26_14-23-37_260595134347_rgbf000103-resize": "0000103",
    "realsense/lg/2014_10_24-14_20_44-1311000073": "0000010",
    "kv1/NYUdata/NYU0001": "NYU0001",
}


def sun_encode(millimetres):
    """The toolbox's storage: millimetres rotated left by 3 bits in 16 bits (its decoder rotates right)."""
    mm = np.asarray(millimetres, dtype=np.uint32)
    return (((mm << 3) | (mm >> 13)) & 0xFFFF).astype(np.uint16)


def write_sunrgbd(tmp_path):
    root = tmp_path / "sun"
    truth = {}
    for seed, (scene, stem) in enumerate(SUN_SCENES.items()):
        folder = root / "SUNRGBD" / scene
        save_rgb(folder / "image" / f"{stem}.jpg", np.full((6, 8, 3), 40 * seed + 20, np.uint8), quality=100)
        bfx = (np.arange(48, dtype=np.uint32).reshape(6, 8) * 190 + 500 + seed).astype(np.uint16)
        bfx[0, 0] = 9000  # beyond 8 m: clipped by the toolbox
        bfx[0, 1] = 8000  # exactly 8 m: kept
        raw = bfx.copy()
        raw[1, :] = 0  # holes in the raw map
        save_png16(folder / "depth_bfx" / f"{stem}.png", sun_encode(bfx))
        save_png16(folder / "depth" / f"{stem}.png", sun_encode(raw))
        (folder / "intrinsics.txt").write_text(f"{520 + seed} 0 {4.5 + seed}\n0 {521 + seed} 3.25\n0 0 1\n")
        truth[scene] = (bfx, raw)
    (root / "SUNRGBD" / "kv2" / "kinect2data" / "not_a_scene").mkdir()  # no image/ nor intrinsics.txt
    return root, truth


# ------------------------------------------------------------------------------------------------ NYUv2


@pytest.fixture
def nyu_mat(tmp_path):
    images = np.stack([pattern_rgb(6, 8, seed) for seed in range(5)])
    depths = np.stack([np.linspace(0.5 + n, 9.5, 48, dtype=np.float32).reshape(6, 8) for n in range(5)])
    raw = depths.copy()
    raw[:, 0, :] = 0.0
    folder = tmp_path / "nyu"
    folder.mkdir()
    write_nyu_labeled_mat(folder / "nyu_depth_v2_labeled.mat", images, depths, raw)
    scipy.io.savemat(
        folder / "splits.mat",
        {"trainNdxs": np.array([[1.0], [2.0], [4.0]]), "testNdxs": np.array([[5.0], [3.0]])},
    )
    return folder / "nyu_depth_v2_labeled.mat", images, depths, raw


def test_nyu_labeled_official_split(nyu_mat):
    mat_path, images, depths, raw = nyu_mat
    assert mat_path.read_bytes()[:10] == b"MATLAB 7.3"
    dataset = NYUv2Labeled(mat_path, raw_depth=False)
    assert len(dataset) == 2 and [dataset[i]["name"] for i in range(2)] == ["0003", "0005"]
    sample = validate_sample(dataset[1])
    np.testing.assert_array_equal(sample["image"], images[4])
    np.testing.assert_array_equal(sample["depth"], depths[4])
    assert sample["valid"].all() and sample["depth"].dtype == np.float32
    np.testing.assert_allclose(  # the toolbox's one-based cx, cy minus 1 (OpenCV convention)
        sample["K"], [[518.8579, 0, 324.5824], [0, 519.4696, 252.7362], [0, 0, 1]], atol=1e-4
    )
    raw_sample = NYUv2Labeled(mat_path)[1]  # the default: raw Kinect depth, as BTS evaluates
    np.testing.assert_array_equal(raw_sample["depth"], raw[4])
    assert not raw_sample["valid"][0].any() and raw_sample["valid"][1:].all()
    train = NYUv2Labeled(mat_path, splits_path=mat_path.with_name("splits.mat"), split="train")
    assert [train[i]["name"] for i in range(len(train))] == ["0001", "0002", "0004"]
    np.testing.assert_array_equal(train[2]["image"], images[3])


def test_nyu_labeled_all_and_errors(nyu_mat, tmp_path):
    mat_path, _, depths, _ = nyu_mat
    lone = tmp_path / "lone.mat"
    lone.write_bytes(mat_path.read_bytes())
    everything = NYUv2Labeled(lone, split="all", raw_depth=False)  # no splits.mat needed
    assert len(everything) == 5 and everything[0]["name"] == "0001"
    np.testing.assert_array_equal(everything[0]["depth"], depths[0])
    with pytest.raises(FileNotFoundError, match=r"splits\.mat"):
        NYUv2Labeled(lone)
    with pytest.raises(ValueError, match="split must be"):
        NYUv2Labeled(mat_path, split="val")
    with pytest.raises(FileNotFoundError, match="nyu_depth_v2_labeled"):
        NYUv2Labeled(tmp_path / "missing.mat")
    with h5py.File(tmp_path / "nodepth.mat", "w") as mat:
        mat["images"] = np.zeros((1, 3, 8, 6), np.uint8)
    with pytest.raises(ValueError, match="'rawDepths'"):
        NYUv2Labeled(tmp_path / "nodepth.mat", split="all")
    (tmp_path / "text.mat").write_text("not hdf5")
    with pytest.raises(ValueError, match=r"v7\.3"):
        NYUv2Labeled(tmp_path / "text.mat", split="all")
    scipy.io.savemat(tmp_path / "bad_splits.mat", {"testNdxs": np.array([[0.0], [9.0]])})
    with pytest.raises(ValueError, match="one-based"):
        NYUv2Labeled(mat_path, splits_path=tmp_path / "bad_splits.mat")


def test_nyu_folder_bts_layout(tmp_path):
    test = tmp_path / "nyu_depth_v2" / "official_splits" / "test"
    millimetres = {}
    for seed, (scene, number) in enumerate(
        [("bathroom", "00045"), ("kitchen", "00001"), ("bathroom", "00046")]
    ):
        save_rgb(
            test / scene / f"rgb_{number}.jpg", np.full((6, 8, 3), 60 + seed * 50, np.uint8), quality=100
        )
        if number != "00046":  # an image without its depth
            millimetres[scene, number] = (np.arange(48).reshape(6, 8) * 211) % 10000
            save_png16(test / scene / f"sync_depth_{number}.png", millimetres[scene, number])
    dataset = NYUv2Folder(tmp_path / "nyu_depth_v2")
    assert [dataset[i]["name"] for i in range(len(dataset))] == ["bathroom/rgb_00045", "kitchen/rgb_00001"]
    sample = validate_sample(dataset[1])
    expected = millimetres["kitchen", "00001"] / 1000.0
    np.testing.assert_allclose(sample["depth"], expected, rtol=1e-6)
    np.testing.assert_array_equal(sample["valid"], expected > 0)
    assert not sample["valid"][0, 0] and abs(int(sample["image"][2, 3, 0]) - 110) <= 2
    np.testing.assert_array_equal(sample["K"], NYU_K)
    assert len(NYUv2Folder(test)) == 2  # the test folder itself
    split = tmp_path / "nyudepthv2_test_files_with_gt.txt"
    split.write_text(
        "kitchen/rgb_00001.jpg kitchen/sync_depth_00001.png 518.8579\n"
        "/bathroom/rgb_00045.jpg /bathroom/sync_depth_00045.png 518.8579\n"
    )
    listed = NYUv2Folder(tmp_path / "nyu_depth_v2", split_file=split)
    assert [listed[i]["name"] for i in range(2)] == ["bathroom/rgb_00045", "kitchen/rgb_00001"]
    np.testing.assert_allclose(listed[0]["depth"], millimetres["bathroom", "00045"] / 1000.0, rtol=1e-6)
    split.write_text("bathroom/rgb_00046.jpg bathroom/sync_depth_00046.png 518.8579\n")
    with pytest.raises(FileNotFoundError, match=r"sync_depth_00046\.png"):
        NYUv2Folder(test, split_file=split)
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no NYUv2 test pair"):
        NYUv2Folder(tmp_path / "empty")
    with pytest.raises(FileNotFoundError, match="folder not found"):
        NYUv2Folder(tmp_path / "nowhere")


# ------------------------------------------------------------------------------------------------ KITTI


def test_kitti_calibration_parse(tmp_path):
    (tmp_path / "calib_cam_to_cam.txt").write_text(KITTI_CALIB)
    calib = kitti_calibration(tmp_path / "calib_cam_to_cam.txt")
    assert (
        "calib_time" not in calib and calib["P_rect_02"].shape == (12,) and calib["P_rect_03"][3] == -339.5242
    )


EIGEN_SPLIT = (
    "2011_09_26/2011_09_26_drive_0002_sync/image_02/data/0000000069.png "
    "2011_09_26_drive_0002_sync/proj_depth/groundtruth/image_02/0000000069.png 721.5377\n"
    "2011_09_26/2011_09_26_drive_0002_sync/image_02/data/0000000075.png None 721.5377\n"
    # the older BTS list has no date folder in front of the image path
    "2011_09_26_drive_0009_sync/image_02/data/0000000016.png "
    "2011_09_26_drive_0009_sync/proj_depth/groundtruth/image_02/0000000016.png 721.5377\n"
)
"""Three Eigen-split lines for :func:`write_kitti`'s tree: two frames with ground truth, one without."""


def test_kitti_eigen_split_file(tmp_path):
    raw, gt, truth = write_kitti(tmp_path)
    split = tmp_path / "eigen_test_files_with_gt.txt"
    split.write_text(
        EIGEN_SPLIT + "2011_09_26/2011_09_26_drive_0002_sync/image_03/data/0000000069.png "
        "2011_09_26_drive_0002_sync/proj_depth/groundtruth/image_03/0000000069.png 721.5377\n"
        # listed twice: read once
        "2011_09_26_drive_0009_sync/image_02/data/0000000016.png "
        "2011_09_26_drive_0009_sync/proj_depth/groundtruth/image_02/0000000016.png 721.5377\n"
    )
    dataset = KittiEigen(raw, gt, split_file=split)
    assert len(dataset) == 3 and len(dataset.skipped) == 1 and dataset.skipped[0].endswith("0000000075.png")
    names = [dataset[i]["name"] for i in range(3)]
    assert names == [
        "2011_09_26/2011_09_26_drive_0002_sync/image_02/data/0000000069",
        "2011_09_26/2011_09_26_drive_0002_sync/image_03/data/0000000069",
        "2011_09_26/2011_09_26_drive_0009_sync/image_02/data/0000000016",
    ]
    sample = validate_sample(dataset[0])
    top, left = KITTI_H - 352, (KITTI_W - 1216) // 2
    assert (top, left) == (23, 13) and sample["image"].shape == (352, 1216, 3)
    expected = truth["2011_09_26_drive_0002_sync", "image_02", "0000000069"][top:, left : left + 1216] / 256.0
    np.testing.assert_allclose(sample["depth"], expected, rtol=1e-6)
    np.testing.assert_array_equal(sample["valid"], expected > 0)
    assert sample["depth"][-1, 0] == pytest.approx(1234 / 256)
    np.testing.assert_array_equal(sample["image"], pattern_rgb(KITTI_H, KITTI_W, 0)[top:, left : left + 1216])
    np.testing.assert_allclose(
        sample["K"], [[721.5377, 0, 609.5593 - 13], [0, 721.5377, 172.854 - 23], [0, 0, 1]]
    )
    right = dataset[1]
    np.testing.assert_allclose(
        right["depth"],
        truth["2011_09_26_drive_0002_sync", "image_03", "0000000069"][top:, left:-13] / 256.0,
        rtol=1e-6,
    )
    full = KittiEigen(raw, gt, split_file=split, kb_crop=False)[2]
    assert full["image"].shape == (KITTI_H, KITTI_W, 3) and full["K"][0, 2] == pytest.approx(609.5593)
    np.testing.assert_allclose(
        full["depth"], truth["2011_09_26_drive_0009_sync", "image_02", "0000000016"] / 256.0
    )


def test_kitti_eigen_without_split_and_errors(tmp_path):
    raw, gt, _ = write_kitti(tmp_path)
    dataset = KittiEigen(raw, gt)  # image_02 frames with ground truth and a raw image
    assert [dataset[i]["name"].split("/")[1] for i in range(len(dataset))] == [
        "2011_09_26_drive_0002_sync",
        "2011_09_26_drive_0009_sync",
    ]
    with pytest.raises(FileNotFoundError, match="no KITTI frame"):
        KittiEigen(raw)  # depth_root defaults to raw_root, which holds no ground truth
    with pytest.raises(FileNotFoundError, match="KITTI raw folder not found"):
        KittiEigen(tmp_path / "nowhere", gt)
    split = tmp_path / "split.txt"
    split.write_text(
        "2011_09_26/2011_09_26_drive_0005_sync/image_02/data/0000000001.png "
        "2011_09_26_drive_0005_sync/proj_depth/groundtruth/image_02/0000000001.png 721.5377\n"
    )
    with pytest.raises(FileNotFoundError, match="image not found"):
        KittiEigen(raw, gt, split_file=split)
    split.write_text(
        "2011_09_26/2011_09_26_drive_0002_sync/image_02/data/0000000075.png "
        "2011_09_26_drive_0002_sync/proj_depth/groundtruth/image_02/0000000075.png 721.5377\n"
    )
    with pytest.raises(FileNotFoundError, match="ground truth not found"):
        KittiEigen(raw, gt, split_file=split)
    # without calib_cam_to_cam.txt the split file's focal is all there is
    (raw / "2011_09_26" / "calib_cam_to_cam.txt").unlink()
    split.write_text(
        "2011_09_26_drive_0009_sync/image_02/data/0000000016.png "
        "2011_09_26_drive_0009_sync/proj_depth/groundtruth/image_02/0000000016.png 721.5377\n"
    )
    sample = KittiEigen(raw, gt, split_file=split)[0]
    assert "K" not in sample and sample["focal_px"] == 721.5377
    with pytest.raises(FileNotFoundError, match=r"calib_cam_to_cam\.txt"):
        KittiEigen(raw, gt)[0]


# ------------------------------------------------------------------------------------------------- VOID


VOID_K = np.array([[514.638, 0, 315.267], [0, 518.858, 247.358], [0, 0, 1]])


@pytest.fixture
def void_root(tmp_path):
    data = tmp_path / "void_release" / "void_1500" / "data"
    truth = write_void_sequence(data, "desktop2", ["1552625295.7828", "1552625303.1627"], VOID_K)
    truth |= write_void_sequence(data, "office3", ["1552625426.4194"], VOID_K + np.diag([1.0, 1.0, 0]))
    write_void_sequence(data, "stairs4", ["1552695287.0660"], VOID_K, with_gt=False)
    return tmp_path / "void_release", truth


def test_void_all_frames_and_roots(void_root):
    root, truth = void_root
    dataset = Void(root)
    names = [dataset[i]["name"] for i in range(len(dataset))]
    assert names == [
        "desktop2/image/1552625295.7828",
        "desktop2/image/1552625303.1627",
        "office3/image/1552625426.4194",
    ]
    sample = validate_sample(dataset[2])
    np.testing.assert_allclose(sample["depth"], truth["1552625426.4194"] / 256.0, rtol=1e-6)
    np.testing.assert_array_equal(sample["valid"], truth["1552625426.4194"] > 0)
    np.testing.assert_allclose(sample["K"], VOID_K + np.diag([1.0, 1.0, 0]))
    np.testing.assert_array_equal(sample["image"], pattern_rgb(6, 8, 0))
    for other in (root / "void_1500", root / "void_1500" / "data"):
        assert [Void(other)[i]["name"] for i in range(3)] == names


def test_void_test_list_and_errors(void_root, tmp_path):
    root, truth = void_root
    split = root / "void_1500" / "test_image.txt"
    split.write_text(
        "void_1500/data/office3/image/1552625426.4194.png\nvoid_1500/data/desktop2/image/1552625303.1627.png\n"
    )
    for where in (root, root / "void_1500", root / "void_1500" / "data"):
        dataset = Void(where, split_file=split)
        assert [dataset[i]["name"] for i in range(2)] == [
            "desktop2/image/1552625303.1627",
            "office3/image/1552625426.4194",
        ]
    np.testing.assert_allclose(dataset[0]["depth"], truth["1552625303.1627"] / 256.0, rtol=1e-6)
    split.write_text("void_1500/data/desktop2/image/0000000000.0000.png\n")
    with pytest.raises(FileNotFoundError, match=r"0000000000\.0000\.png\ not\ found"):
        Void(root, split_file=split)
    split.write_text("void_1500/data/stairs4/image/1552695287.0660.png\n")
    with pytest.raises(FileNotFoundError, match="ground truth"):
        Void(root, split_file=split)
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no VOID frame"):
        Void(tmp_path / "empty")
    (root / "void_1500" / "data" / "office3" / "K.txt").unlink()
    with pytest.raises(FileNotFoundError, match=r"K\.txt"):
        Void(root)[2]


# -------------------------------------------------------------------------------------------- SUN RGB-D


def test_sunrgbd_toolbox_decoding():
    millimetres = np.array([0, 1, 1234, 7999, 8000, 8001, 8191])
    depth, valid = decode_sunrgbd_depth(sun_encode(millimetres))
    np.testing.assert_allclose(depth, [0, 0.001, 1.234, 7.999, 8.0, 8.0, 8.0], rtol=1e-6)
    np.testing.assert_array_equal(valid, [False, True, True, True, True, False, False])
    # a stored value with its low 3 bits set decodes to a far (clipped, invalid) depth, as in read3dPoints.m
    depth, valid = decode_sunrgbd_depth(np.array([0x0001], np.uint16))
    assert depth[0] == 8.0 and not valid[0]


def test_sunrgbd_scenes(tmp_path):
    root, truth = write_sunrgbd(tmp_path)
    dataset = SunRGBD(root)
    names = [dataset[i]["name"] for i in range(len(dataset))]
    assert names == sorted(SUN_SCENES)
    index = names.index("kv2/kinect2data/000002_2014-05-26_14-23-37_260595134347_rgbf000103-resize")
    sample = validate_sample(dataset[index])
    bfx = truth[names[index]][0]
    np.testing.assert_allclose(sample["depth"], np.minimum(bfx / 1000.0, 8.0), rtol=1e-6)
    expected_valid = (bfx > 0) & (bfx <= 8000)
    np.testing.assert_array_equal(sample["valid"], expected_valid)
    assert not sample["valid"][0, 0] and sample["valid"][0, 1] and sample["depth"][0, 0] == 8.0
    np.testing.assert_allclose(sample["K"], [[520, 0, 3.5], [0, 521, 2.25], [0, 0, 1]])  # one-based - 1
    assert abs(int(sample["image"][3, 3, 0]) - 20) <= 2
    raw = SunRGBD(root / "SUNRGBD", depth="raw")
    raw_sample = raw[names.index("kv1/NYUdata/NYU0001")]
    expected = truth["kv1/NYUdata/NYU0001"][1]
    np.testing.assert_allclose(raw_sample["depth"], np.minimum(expected / 1000.0, 8.0), rtol=1e-6)
    assert not raw_sample["valid"][1].any() and raw_sample["K"][0, 0] == 522
    with pytest.raises(ValueError, match="'bfx' or 'raw'"):
        SunRGBD(root, depth="filled")


def test_sunrgbd_splits_and_errors(tmp_path):
    root, _ = write_sunrgbd(tmp_path)
    listed = [
        "/n/fs/sun3d/data/SUNRGBD/realsense/lg/2014_10_24-14_20_44-1311000073/",
        "SUNRGBD/kv1/NYUdata/NYU0001",
    ]
    split = tmp_path / "sunrgbd_test.txt"
    split.write_text("\n".join(listed) + "\n")
    for where in (root, root / "SUNRGBD"):
        dataset = SunRGBD(where, split_file=split)
        assert [dataset[i]["name"] for i in range(2)] == [
            "kv1/NYUdata/NYU0001",
            "realsense/lg/2014_10_24-14_20_44-1311000073",
        ]
    cells = np.empty((1, 2), dtype=object)
    cells[0, 0], cells[0, 1] = listed[0].rstrip("/"), "/n/fs/sun3d/data/" + listed[1]
    scipy.io.savemat(tmp_path / "allsplit.mat", {"alltest": cells, "alltrain": cells[:, :1]})
    from_mat = SunRGBD(root, split_file=tmp_path / "allsplit.mat")
    assert [from_mat[i]["name"] for i in range(len(from_mat))] == [dataset[i]["name"] for i in range(2)]
    split.write_text("/n/fs/sun3d/data/SUNRGBD/kv2/kinect2data/not_a_scene\n")
    with pytest.raises(FileNotFoundError, match="not_a_scene not found"):
        SunRGBD(root, split_file=split)
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no SUN RGB-D scene"):
        SunRGBD(tmp_path / "empty")
    scene = root / "SUNRGBD" / "kv1" / "NYUdata" / "NYU0001"
    (scene / "intrinsics.txt").write_text("520 0 4.5\n0 521 3.25\n")
    with pytest.raises(ValueError, match="expected 9 numbers"):
        SunRGBD(root, split_file=tmp_path / "allsplit.mat")[0]


def test_shared_path_and_matrix_helpers(tmp_path):
    (tmp_path / "a" / "b").mkdir(parents=True)
    assert resolve_listed(tmp_path, "/n/fs/x/a/b") == tmp_path / "a" / "b"
    assert resolve_listed(tmp_path / "a", "root/a/b") == tmp_path / "a" / "b"
    assert resolve_listed(tmp_path, "a/c") is None
    (tmp_path / "K.txt").write_text("1 0 2\n0 3 4\n0 0 1\n")
    np.testing.assert_array_equal(read_matrix_txt(tmp_path / "K.txt"), [[1, 0, 2], [0, 3, 4], [0, 0, 1]])
    (tmp_path / "K.txt").write_text("1 0 x\n")
    with pytest.raises(ValueError, match=r"K\.txt"):
        read_matrix_txt(tmp_path / "K.txt")
