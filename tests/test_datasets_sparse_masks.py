import json
import math
import shutil

import numpy as np
import pytest
from PIL import Image
from scipy.spatial.transform import Rotation

from metricdepth.data import validate_sample
from metricdepth.data.datasets.focal import ExifFocalFolder
from metricdepth.data.datasets.masks import DIS5K, AM2k, MaskFolder, P3M10k, read_mask
from metricdepth.data.datasets.nuscenes import NuScenes, quaternion_to_matrix

# ---------------------------------------------------------------- nuScenes

NU_W, NU_H = 16, 12
NU_K = [[10.0, 0.0, 7.5], [0.0, 11.0, 5.5], [0.0, 0.0, 1.0]]


def wxyz(rotation: Rotation) -> list[float]:
    x, y, z, w = rotation.as_quat()  # scipy: scalar last
    return [float(w), float(x), float(y), float(z)]


def hand_pose(record) -> np.ndarray:
    """4x4 child → parent, built with scipy (x, y, z, w order) as an independent check."""
    w, x, y, z = record["rotation"]
    T = np.eye(4)
    T[:3, :3] = Rotation.from_quat([x, y, z, w]).as_matrix()
    T[:3, 3] = record["translation"]
    return T


LIDAR_CS = {
    "token": "cs_lidar",
    "sensor_token": "sensor_lidar",
    "translation": [0.94, 0.01, 1.84],
    "rotation": wxyz(Rotation.from_euler("zyx", [-89.0, 0.5, -0.3], degrees=True)),
    "camera_intrinsic": [],
}
# Camera looking along ego +x (camera z), with x right (ego -y) and y down (ego -z), slightly tilted.
CAM_CS = {
    "token": "cs_front",
    "sensor_token": "sensor_front",
    "translation": [1.70, 0.02, 1.51],
    "rotation": wxyz(
        Rotation.from_euler("zyx", [1.0, -0.5, 0.8], degrees=True)
        * Rotation.from_matrix([[0, 0, 1], [-1, 0, 0], [0, -1, 0]])
    ),
    "camera_intrinsic": NU_K,
}
BACK_CS = {
    "token": "cs_back",
    "sensor_token": "sensor_back",
    "translation": [0.0, 0.0, 1.5],
    "rotation": wxyz(Rotation.from_matrix([[0, 0, -1], [1, 0, 0], [0, -1, 0]])),
    "camera_intrinsic": NU_K,
}

# Points in the front camera frame at (column + offset, row + offset) pixel positions, depth z:
# offsets of ±0.3 check rounding to the nearest pixel centre; two share pixel (2, 5) (nearest wins).
CAMERA_POINTS = [  # (u, v, z)
    (3.3, 2.0, 4.0),  # → (row 2, col 3)
    (4.7, 2.0, 7.5),  # → (row 2, col 5)
    (5.2, 2.3, 12.0),  # → (row 2, col 5) too, farther: dropped
    (0.0, 0.0, 2.0),  # corner pixel (0, 0)
    (15.3, 11.2, 25.0),  # → (row 11, col 15), the last pixel
    (8.0, 6.0, 0.9),  # closer than 1 m: dropped
    (8.0, 6.0, -3.0),  # behind the camera: dropped
    (-0.7, 4.0, 5.0),  # left of the image: dropped
    (10.0, 11.6, 6.0),  # rounds to row 12, below the image: dropped
]
EXPECTED_PIXELS = {(2, 3): 4.0, (2, 5): 7.5, (0, 0): 2.0, (11, 15): 25.0}


def write_nuscenes(root, version="v1.0-mini"):
    """Two scenes, one keyframe each (+ a non-keyframe front image and a back camera)."""
    (root / version).mkdir(parents=True)
    for folder in ("samples/CAM_FRONT", "samples/CAM_BACK", "samples/LIDAR_TOP", "sweeps/CAM_FRONT"):
        (root / folder).mkdir(parents=True)
    poses = {
        "pose_l1": ([600.0, 1640.0, 0.0], 35.0),
        "pose_c1": ([600.4, 1640.3, 0.0], 35.6),
        "pose_b1": ([600.3, 1640.2, 0.0], 35.4),
        "pose_l2": ([350.0, 1100.0, 0.0], -120.0),
        "pose_c2": ([349.5, 1100.2, 0.0], -119.0),
        "pose_s2": ([349.0, 1100.4, 0.0], -118.0),
    }
    ego_pose = [
        {
            "token": t,
            "translation": xyz,
            "rotation": wxyz(Rotation.from_euler("z", yaw, degrees=True)),
            "timestamp": 0,
        }
        for t, (xyz, yaw) in poses.items()
    ]
    sensor = [
        {"token": "sensor_lidar", "channel": "LIDAR_TOP", "modality": "lidar"},
        {"token": "sensor_front", "channel": "CAM_FRONT", "modality": "camera"},
        {"token": "sensor_back", "channel": "CAM_BACK", "modality": "camera"},
    ]
    scene = [
        {
            "token": "scene1",
            "name": "scene-0061",
            "description": "",
            "log_token": "log",
            "nbr_samples": 1,
            "first_sample_token": "s1",
            "last_sample_token": "s1",
        },
        {
            "token": "scene2",
            "name": "scene-0103",
            "description": "",
            "log_token": "log",
            "nbr_samples": 1,
            "first_sample_token": "s2",
            "last_sample_token": "s2",
        },
    ]
    sample = [
        {"token": "s2", "timestamp": 2, "scene_token": "scene2", "prev": "", "next": ""},
        {"token": "s1", "timestamp": 1, "scene_token": "scene1", "prev": "", "next": ""},
    ]

    def sd(token, sample_token, cs, pose, filename, key=True, size=(NU_W, NU_H)):
        return {
            "token": token,
            "sample_token": sample_token,
            "ego_pose_token": pose,
            "calibrated_sensor_token": cs,
            "timestamp": 0,
            "fileformat": filename.rsplit(".")[-1],
            "is_key_frame": key,
            "width": size[0],
            "height": size[1],
            "filename": filename,
            "prev": "",
            "next": "",
        }

    front1 = "samples/CAM_FRONT/n008-2018-08-01-15-16-36-0400__CAM_FRONT__1533151603512404.jpg"
    front2 = "samples/CAM_FRONT/n015-2018-07-24-11-22-45+0800__CAM_FRONT__1532402927612460.jpg"
    sample_data = [
        sd("sd_f2", "s2", "cs_front", "pose_c2", front2),
        sd("sd_l1", "s1", "cs_lidar", "pose_l1", "samples/LIDAR_TOP/a__LIDAR_TOP__1.pcd.bin", size=(0, 0)),
        sd("sd_f1", "s1", "cs_front", "pose_c1", front1),
        sd("sd_b1", "s1", "cs_back", "pose_b1", "samples/CAM_BACK/a__CAM_BACK__1.jpg"),
        sd("sd_l2", "s2", "cs_lidar", "pose_l2", "samples/LIDAR_TOP/b__LIDAR_TOP__2.pcd.bin", size=(0, 0)),
        sd("sd_s2", "s2", "cs_front", "pose_s2", "sweeps/CAM_FRONT/b__CAM_FRONT__3.jpg", key=False),
    ]
    tables = {
        "sample": sample,
        "sample_data": sample_data,
        "ego_pose": ego_pose,
        "sensor": sensor,
        "scene": scene,
        "calibrated_sensor": [LIDAR_CS, CAM_CS, BACK_CS],
    }
    for name, rows in tables.items():
        (root / version / f"{name}.json").write_text(json.dumps(rows, indent=1))

    image = np.zeros((NU_H, NU_W, 3), np.uint8)
    image[..., 0] = 200
    for row in sample_data:
        if row["width"]:
            Image.fromarray(image).save(root / row["filename"], quality=95)

    by_token = {r["token"]: r for r in ego_pose}
    uvz = np.array(CAMERA_POINTS)
    camera_xyz = np.stack(
        [(uvz[:, 0] - 7.5) / 10.0 * uvz[:, 2], (uvz[:, 1] - 5.5) / 11.0 * uvz[:, 2], uvz[:, 2]], axis=1
    )
    for lidar, cam in (("sd_l1", "sd_f1"), ("sd_l2", "sd_f2")):
        lidar_row = next(r for r in sample_data if r["token"] == lidar)
        cam_row = next(r for r in sample_data if r["token"] == cam)
        # camera → ego(cam time) → global → ego(lidar time) → lidar, the inverse of the reader's chain
        camera_to_lidar = (
            np.linalg.inv(hand_pose(LIDAR_CS))
            @ np.linalg.inv(hand_pose(by_token[lidar_row["ego_pose_token"]]))
            @ hand_pose(by_token[cam_row["ego_pose_token"]])
            @ hand_pose(CAM_CS)
        )
        xyz = camera_xyz @ camera_to_lidar[:3, :3].T + camera_to_lidar[:3, 3]
        rest = np.stack([np.arange(len(xyz)) * 10.0, np.arange(len(xyz)) % 32], axis=1)  # intensity, ring
        np.hstack([xyz, rest]).astype("<f4").tofile(root / lidar_row["filename"])
    return root


def test_nuscenes_projects_lidar_into_front_camera(tmp_path):
    ds = NuScenes(write_nuscenes(tmp_path / "nuscenes"))
    assert len(ds) == 2
    names = [ds[i]["name"] for i in range(2)]
    assert names == [
        "n008-2018-08-01-15-16-36-0400__CAM_FRONT__1533151603512404",
        "n015-2018-07-24-11-22-45+0800__CAM_FRONT__1532402927612460",
    ]
    expected = np.zeros((NU_H, NU_W), np.float32)
    for (row, col), z in EXPECTED_PIXELS.items():
        expected[row, col] = z
    for i in range(2):
        sample = validate_sample(ds[i])
        assert sample["image"].shape == (NU_H, NU_W, 3)
        assert abs(int(sample["image"][..., 0].mean()) - 200) <= 2
        np.testing.assert_allclose(sample["depth"], expected, rtol=1e-5, atol=0)
        np.testing.assert_array_equal(sample["valid"], expected > 0)
        np.testing.assert_array_equal(sample["K"], NU_K)
        assert sample["K"].dtype == np.float64 and sample["depth"].dtype == np.float32


def test_nuscenes_transform_chain_matches_hand_built_matrices(tmp_path):
    ds = NuScenes(write_nuscenes(tmp_path / "nuscenes"))
    _, cam, lidar = ds.items[0]
    poses = {t: r for t, r in ds.ego_pose.items()}
    by_hand = (
        np.linalg.inv(hand_pose(CAM_CS))
        @ np.linalg.inv(hand_pose(poses[cam["ego_pose_token"]]))
        @ hand_pose(poses[lidar["ego_pose_token"]])
        @ hand_pose(LIDAR_CS)
    )
    np.testing.assert_allclose(ds.lidar_to_camera(cam, lidar), by_hand, atol=1e-12)
    for q in np.random.default_rng(0).normal(size=(5, 4)):
        x, y, z, w = q[1], q[2], q[3], q[0]
        np.testing.assert_allclose(
            quaternion_to_matrix(q), Rotation.from_quat([x, y, z, w]).as_matrix(), atol=1e-12
        )


def test_nuscenes_min_depth_camera_and_split(tmp_path):
    root = write_nuscenes(tmp_path / "nuscenes")
    # Pixel (2, 3) holds a point at 4 m; with min_depth 5 only farther points stay.
    deep = NuScenes(root, min_depth=5.0)[0]
    assert set(zip(*np.nonzero(deep["valid"]), strict=True)) == {(2, 5), (11, 15)}
    assert deep["depth"][2, 5] == pytest.approx(7.5, rel=1e-5)
    back = NuScenes(root, camera="CAM_BACK")
    assert len(back) == 1 and back[0]["name"] == "a__CAM_BACK__1"
    only = NuScenes(root, split=["scene-0103", "scene-9999"])
    assert [n for n, *_ in only.items] == ["n015-2018-07-24-11-22-45+0800__CAM_FRONT__1532402927612460"]
    assert only.missing_scenes == ["scene-9999"]
    (tmp_path / "val.txt").write_text("# mini val\nscene-0061\n")
    assert len(NuScenes(root, split=tmp_path / "val.txt")) == 1
    with pytest.raises(ValueError, match="none of its 1 scenes"):
        NuScenes(root, split=["scene-0001"])


def test_nuscenes_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="nuScenes folder not found"):
        NuScenes(tmp_path / "absent")
    root = write_nuscenes(tmp_path / "nuscenes")
    with pytest.raises(FileNotFoundError, match=r"v1\.0-trainval tables"):
        NuScenes(root, version="v1.0-trainval")
    with pytest.raises(FileNotFoundError, match="no keyframe sample with both CAM_FRONT_LEFT"):
        NuScenes(root, camera="CAM_FRONT_LEFT")
    ds = NuScenes(root)
    (root / ds.items[0][2]["filename"]).unlink()
    with pytest.raises(FileNotFoundError, match=r"LIDAR_TOP__1\.pcd\.bin: lidar sweep not found"):
        ds[0]
    (root / ds.items[1][2]["filename"]).write_bytes(np.zeros(7, "<f4").tobytes())
    with pytest.raises(ValueError, match="not a multiple of 5"):
        ds[1]
    (root / "v1.0-mini" / "ego_pose.json").unlink()
    with pytest.raises(FileNotFoundError, match=r"ego_pose\.json"):
        NuScenes(root)


# ---------------------------------------------------------------- masks

MASK = np.array([[0, 0, 255, 255], [0, 255, 255, 0], [0, 0, 0, 0]], np.uint8)
MATTE = np.array([[0, 51, 128, 255], [0, 255, 255, 1], [0, 0, 0, 0]], np.uint8)


def write_pair(image_path, mask_path, mask=MASK, colour=(40, 90, 160)):
    image_path.parent.mkdir(parents=True, exist_ok=True)
    mask_path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (mask.shape[1], mask.shape[0]), colour).save(image_path)
    Image.fromarray(mask).save(mask_path)


DIS_NAMES = {
    "DIS-TE1": "12#Graphics#4#TrafficSign#8245751856_821be14f86_o",
    "DIS-TE2": "17#Non-motor Vehicle#4#Cart#15012855035_d10b57014f_o",
    "DIS-TE3": "2#Aircraft#2#Balloon#2487168092_641505883f_o",
    "DIS-TE4": "13#Insect#6#Centipede#15302179708_a267850881_o",
    "DIS-VD": "1#Accessories#1#Bag#6815402415_e01c1a41e6_o",
}


def write_dis5k(root):
    for subset, stem in DIS_NAMES.items():
        write_pair(
            root / "DIS5K" / subset / "im" / f"{stem}.jpg", root / "DIS5K" / subset / "gt" / f"{stem}.png"
        )
    return root


def test_dis5k_subsets_and_sample_list(tmp_path):
    root = write_dis5k(tmp_path)
    ds = DIS5K(root)
    assert ds.name == "DIS5K" and len(ds) == 4
    assert [n for *_, n in ds.items] == [
        f"{s}/{DIS_NAMES[s]}" for s in ("DIS-TE1", "DIS-TE2", "DIS-TE3", "DIS-TE4")
    ]
    sample = validate_sample(ds[1])
    assert sample["name"] == "DIS-TE2/17#Non-motor Vehicle#4#Cart#15012855035_d10b57014f_o"
    assert sample["mask"].dtype == np.float32 and "depth" not in sample
    np.testing.assert_array_equal(sample["mask"], MASK / 255.0)
    assert len(DIS5K(root / "DIS5K", subsets=("DIS-VD",))) == 1  # the DIS5K folder itself as root
    assert len(DIS5K(root, subsets="DIS-TE3")) == 1
    # Depth Pro's list format: "DIS5K/<subset>/im/<file>.jpg" per line, no trailing newline.
    listing = tmp_path / "dis5k_sample_list.txt"
    listing.write_text(
        f"DIS5K/DIS-VD/im/{DIS_NAMES['DIS-VD']}.jpg\nDIS5K/DIS-TE2/im/{DIS_NAMES['DIS-TE2']}.jpg"
    )
    listed = DIS5K(root, sample_list=listing)
    assert [n for *_, n in listed.items] == [
        f"DIS-TE2/{DIS_NAMES['DIS-TE2']}",
        f"DIS-VD/{DIS_NAMES['DIS-VD']}",
    ]
    np.testing.assert_array_equal(listed[1]["mask"], MASK / 255.0)
    assert len(DIS5K(root, subsets=("DIS-VD",), sample_list=listing)) == 1
    assert len(DIS5K(root, sample_list=[f"DIS-TE1/im/{DIS_NAMES['DIS-TE1']}.jpg"])) == 1  # no prefix


def test_dis5k_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="DIS5K folder not found"):
        DIS5K(tmp_path / "absent")
    root = write_dis5k(tmp_path)
    shutil.rmtree(root / "DIS5K" / "DIS-TE4")
    with pytest.raises(FileNotFoundError, match="DIS-TE4: DIS5K DIS-TE4 folder not found"):
        DIS5K(root)
    (root / "DIS5K" / "DIS-TE1" / "gt" / f"{DIS_NAMES['DIS-TE1']}.png").unlink()
    with pytest.raises(FileNotFoundError, match="no mask for 1 image"):
        DIS5K(root, subsets=("DIS-TE1",))
    with pytest.raises(FileNotFoundError, match="mask of sample-list entry"):
        DIS5K(root, sample_list=[f"DIS-TE1/im/{DIS_NAMES['DIS-TE1']}.jpg"])
    with pytest.raises(FileNotFoundError, match=r"image of sample-list entry 'DIS-TE2/im/nope\.jpg'"):
        DIS5K(root, sample_list=["DIS-TE2/im/nope.jpg"])
    with pytest.raises(FileNotFoundError, match=r"list\.txt: sample list not found"):
        DIS5K(root, sample_list=tmp_path / "list.txt")


def test_am2k_and_p3m_layouts(tmp_path):
    am = tmp_path / "AM-2k" / "validation"
    write_pair(am / "original" / "m_0a1b.jpg", am / "mask" / "m_0a1b.png", MATTE)
    write_pair(am / "original" / "m_ff00.jpg", am / "mask" / "m_ff00.png")
    ds = AM2k(tmp_path)
    assert len(ds) == 2 and ds.name == "AM-2k"
    sample = validate_sample(ds[0])
    assert sample["name"] == "m_0a1b" and sample["image"].shape == (3, 4, 3)
    np.testing.assert_allclose(sample["mask"], MATTE / 255.0, rtol=1e-7)
    assert sample["mask"][0, 2] == pytest.approx(128 / 255)
    with pytest.raises(FileNotFoundError, match="no train folder"):
        AM2k(tmp_path, split="train")

    p3m = tmp_path / "P3M-10k" / "validation"
    write_pair(p3m / "P3M-500-P" / "blurred_image" / "p_1.jpg", p3m / "P3M-500-P" / "mask" / "p_1.png", MATTE)
    write_pair(p3m / "P3M-500-NP" / "original_image" / "np_1.jpg", p3m / "P3M-500-NP" / "mask" / "np_1.png")
    write_pair(p3m / "P3M-500-NP" / "original_image" / "np_2.jpg", p3m / "P3M-500-NP" / "mask" / "np_2.png")
    assert [s for *_, s in P3M10k(tmp_path / "P3M-10k").items] == ["np_1", "np_2"]
    private = P3M10k(tmp_path, subset="P3M-500-P")
    assert private.name == "P3M-10k/P3M-500-P" and private[0]["name"] == "p_1"
    np.testing.assert_allclose(private[0]["mask"], MATTE / 255.0, rtol=1e-7)
    with pytest.raises(ValueError, match="unknown P3M-10k subset 'P3M-500'"):
        P3M10k(tmp_path, subset="P3M-500")


def test_mask_folder_pairing_and_errors(tmp_path):
    images, masks = tmp_path / "img", tmp_path / "gt"
    write_pair(images / "b.png", masks / "b.png")
    write_pair(images / "sub" / "a.jpg", masks / "sub" / "a.png", MATTE)
    Image.fromarray(MASK).save(masks / "unused.png")  # a mask without image is ignored
    ds = MaskFolder(images, masks, name="mine")
    assert ds.name == "mine" and [n for *_, n in ds.items] == ["b", "sub/a"]
    np.testing.assert_allclose(ds[1]["mask"], MATTE / 255.0, rtol=1e-7)

    Image.fromarray(np.zeros((5, 4), np.uint8)).save(masks / "b.png")
    with pytest.raises(ValueError, match=r"b\.png: mask is 4x5 but image .*b\.png is 4x3"):
        ds[0]
    Image.new("RGB", (4, 3)).save(images / "c.jpg")
    with pytest.raises(FileNotFoundError, match=r"no mask for 1 image\(s\) .*: c\.jpg"):
        MaskFolder(images, masks)
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="empty: no image found"):
        MaskFolder(tmp_path / "empty", masks)
    with pytest.raises(FileNotFoundError, match="mask folder not found"):
        MaskFolder(images, tmp_path / "absent")


def test_read_mask_bit_depths(tmp_path):
    Image.fromarray(np.array([[0, 32768, 65535]], np.uint16)).save(tmp_path / "m16.png")
    np.testing.assert_allclose(read_mask(tmp_path / "m16.png"), [[0, 32768 / 65535, 1]], rtol=1e-6)
    Image.fromarray(np.repeat(MATTE[..., None], 3, axis=2)).save(tmp_path / "rgb.png")
    np.testing.assert_allclose(read_mask(tmp_path / "rgb.png"), MATTE / 255.0, rtol=1e-7)
    Image.fromarray(MASK > 0).save(tmp_path / "bits.png")
    np.testing.assert_array_equal(read_mask(tmp_path / "bits.png"), MASK / 255.0)
    with pytest.raises(FileNotFoundError, match=r"absent\.png: mask not found"):
        read_mask(tmp_path / "absent.png")


# ---------------------------------------------------------------- EXIF focal


def exif_with_focal(focal_35mm=None, orientation=None) -> bytes:
    exif = Image.Exif()
    if orientation is not None:
        exif[0x0112] = orientation
    if focal_35mm is not None:
        exif.get_ifd(0x8769)[0xA405] = focal_35mm
    return exif.tobytes()


def write_focal_photos(root):
    """Two photos with a 35 mm focal (one in a sub-folder, stored sideways) and one without EXIF."""
    (root / "trip").mkdir(parents=True)
    Image.new("RGB", (40, 30), (9, 90, 9)).save(root / "a.jpg", exif=exif_with_focal(26))
    Image.new("RGB", (30, 20), (9, 9, 90)).save(
        root / "trip" / "b.JPG", exif=exif_with_focal(50, orientation=6)
    )
    Image.new("RGB", (40, 30)).save(root / "no_exif.jpg")
    return root


def test_exif_focal_folder(tmp_path, data_dir):
    root = write_focal_photos(tmp_path / "photos")
    Image.new("RGB", (40, 30)).save(root / "no_focal.jpg", exif=exif_with_focal(orientation=1))
    (root / "broken.jpg").write_bytes(b"not a jpeg")
    (root / "notes.txt").write_text("ignored")
    shutil.copy(data_dir / "leuvenA.jpg", root / "leuven.jpg")

    ds = ExifFocalFolder(root)
    assert [p.name for p in ds.items] == ["a.jpg", "leuven.jpg", "b.JPG"]
    assert sorted(p.name for p in ds.skipped) == ["broken.jpg", "no_exif.jpg", "no_focal.jpg"]
    a, leuven, b = (validate_sample(ds[i]) for i in range(3))
    assert a["name"] == "a" and a["image"].shape == (30, 40, 3) and set(a) == {"name", "image", "focal_px"}
    assert a["focal_px"] == pytest.approx(26 * math.hypot(40, 30) / math.hypot(36, 24), rel=1e-12)
    assert b["name"] == "trip/b" and b["image"].shape == (20, 30, 3)  # orientation 6: stored order kept
    assert b["focal_px"] == pytest.approx(50 * math.hypot(20, 30) / math.hypot(36, 24), rel=1e-12)
    assert leuven["image"].shape == (563, 751, 3)
    assert leuven["focal_px"] == pytest.approx(29 * math.hypot(751, 563) / math.hypot(36, 24), rel=1e-12)
    assert leuven["focal_px"] == pytest.approx(629.109, abs=1e-3)


def test_exif_focal_folder_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="EXIF focal folder not found"):
        ExifFocalFolder(tmp_path / "absent")
    Image.new("RGB", (8, 6)).save(tmp_path / "plain.jpg")
    with pytest.raises(FileNotFoundError, match=r"no image with an EXIF FocalLengthIn35mmFilm \(1 image"):
        ExifFocalFolder(tmp_path)
