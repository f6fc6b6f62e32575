import json
import shutil

import numpy as np
import pytest
from PIL import Image

from metricdepth.data import validate_sample
from metricdepth.data.datasets import FolderDataset, Middlebury2014, middlebury_calibration
from metricdepth.io.pfm import read_pfm, write_pfm
from metricdepth.io.writers import write_depth_png

MOTORCYCLE_CALIB = """cam0=[994.978 0 311.193; 0 994.978 254.877; 0 0 1]
cam1=[994.978 0 342.279; 0 994.978 254.877; 0 0 1]
doffs=31.086
baseline=193.001
width=741
height=500
ndisp=70
isint=0
vmin=6
vmax=57
dyavg=0
dymax=0
"""


def test_pfm_roundtrip_and_orientation(tmp_path):
    grey = np.arange(12, dtype=np.float32).reshape(3, 4)
    grey[0, 0] = np.inf
    np.testing.assert_array_equal(read_pfm(write_pfm(tmp_path / "g.pfm", grey)), grey)
    # PFM stores rows bottom to top: the first stored row is the image's last row.
    raw = (tmp_path / "g.pfm").read_bytes()
    header_end = raw.index(b"-1.0\n") + 5
    assert np.frombuffer(raw[header_end : header_end + 16], "<f4").tolist() == [8, 9, 10, 11]
    colour = np.random.default_rng(0).random((2, 3, 3)).astype(np.float32)
    np.testing.assert_array_equal(read_pfm(write_pfm(tmp_path / "c.pfm", colour)), colour)
    (tmp_path / "bad.pfm").write_bytes(b"P6\n1 1\n255\n\x00\x00\x00")
    with pytest.raises(ValueError, match="not a PFM"):
        read_pfm(tmp_path / "bad.pfm")


@pytest.fixture
def motorcycle_scene(tmp_path, data_dir):
    """The real Motorcycle ground truth, laid out as a Middlebury 2014 scene folder."""
    scene = tmp_path / "middlebury" / "Motorcycle-perfect"
    scene.mkdir(parents=True)
    shutil.copy(data_dir / "motorcycle_left.png", scene / "im0.png")
    write_pfm(scene / "disp0.pfm", np.load(data_dir / "motorcycle_disparity.npz")["disparity"])
    (scene / "calib.txt").write_text(MOTORCYCLE_CALIB)
    return tmp_path / "middlebury"


def test_middlebury_motorcycle_metric_depth(motorcycle_scene):
    calib = middlebury_calibration(motorcycle_scene / "Motorcycle-perfect" / "calib.txt")
    assert calib["cam0"].shape == (3, 3) and calib["baseline"] == 193.001 and calib["width"] == 741
    dataset = Middlebury2014(motorcycle_scene)
    assert len(dataset) == 1
    sample = validate_sample(dataset[0])
    assert sample["name"] == "Motorcycle-perfect" and sample["image"].shape == (500, 741, 3)
    depth = sample["depth"][sample["valid"]]
    assert sample["valid"].mean() == pytest.approx(0.927, abs=0.001)
    assert 2.11 <= depth.min() < 2.12 and 5.01 < depth.max() <= 5.02
    assert np.median(depth) == pytest.approx(2.75, abs=0.01)
    assert (sample["depth"][~sample["valid"]] == 0).all()
    np.testing.assert_allclose(sample["K"], [[994.978, 0, 311.193], [0, 994.978, 254.877], [0, 0, 1]])


def test_folder_dataset(tmp_path):
    root = tmp_path / "mine"
    (root / "sub").mkdir(parents=True)
    depth = np.linspace(0.5, 4.0, 12, dtype=np.float32).reshape(3, 4)
    depth[0, 0] = 0
    for name in ("a", "sub/b", "c", "d"):
        Image.new("RGB", (4, 3), (10, 20, 30)).save(root / f"{name}.png")
    np.save(root / "a_depth.npy", depth)
    write_depth_png(root / "sub" / "b_depth.png", depth)
    np.savez(root / "c_depth.npz", depth=depth)
    (root / "a.json").write_text(json.dumps({"fx": 100, "cx": 1.5, "cy": 1.0}))
    (root / "c.json").write_text(json.dumps({"focal_px": 321.0}))
    dataset = FolderDataset(root)
    assert [dataset[i]["name"] for i in range(len(dataset))] == ["a", "c", "sub/b"]  # d has no depth
    a, c, b = (dataset[i] for i in range(3))
    np.testing.assert_array_equal(a["depth"], depth)
    assert not a["valid"][0, 0] and a["valid"].sum() == 11
    assert a["K"][0, 0] == 100 and a["focal_px"] == 100 and c["focal_px"] == 321.0 and "K" not in c
    np.testing.assert_allclose(b["depth"], depth, atol=5e-4)
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no image with a depth file"):
        FolderDataset(tmp_path / "empty")


def test_middlebury_root_may_be_the_scene_itself(motorcycle_scene):
    scene = motorcycle_scene / "Motorcycle-perfect"
    assert Middlebury2014(scene)[0]["name"] == "Motorcycle-perfect"


def test_folder_dataset_bad_files_name_the_file(tmp_path):
    Image.new("RGB", (4, 3)).save(tmp_path / "a.png")
    np.savez(tmp_path / "a_depth.npz", other=np.ones((3, 4)))
    with pytest.raises(ValueError, match=r"a_depth\.npz: no 'depth' array"):
        FolderDataset(tmp_path)[0]
    np.savez(tmp_path / "a_depth.npz", depth=np.ones((3, 4)))
    for bad in ("{not json", '{"K": [1, 2, 3]}'):
        (tmp_path / "a.json").write_text(bad)
        with pytest.raises(ValueError, match=r"a\.json: unreadable intrinsics"):
            FolderDataset(tmp_path)[0]
