"""predict → evaluate round trip for every benchmark reader, each fed a tiny dataset in its published layout.

For each reader: ``predict -d NAME=SPEC`` stores exactly one ``NAME.npz`` per sample the reader yields
(never one for a depth map, a right view or a mask), and evaluating those files gives the same tables
as evaluating the model in memory (``evaluate --checkpoint``), whose ``--save-predictions`` folder
gives them once more.

The model is the tiny preset with two output layers pinned (:func:`camera_checkpoint`): depth of a
few metres that varies over the image, and a field of view near 60°. With ``tiny_checkpoint``'s
random weights the FOV head gives a FOV ≤ 0°, so the focal length is ~1e5 px and nearly every pixel
sits at the 10 km depth ceiling: constant maps that would compare equal whatever sample they
belonged to. One ETH3D and one folder image carry an EXIF focal length, so ``predict -d`` scales them
with it and the saved-predictions path must rescale them back to the model's own focal (zero-shot).
"""

import json
import math
import shutil

import numpy as np
import pytest
import scipy.io
from PIL import Image
from typer.testing import CliRunner

from metricdepth.cli import app
from metricdepth.evaluation import open_benchmark
from metricdepth.evaluation.predictors import read_prediction
from metricdepth.io.pfm import write_pfm
from metricdepth.io.writers import write_depth_png
from test_datasets import MOTORCYCLE_CALIB
from test_datasets_dense import random_depth as dense_random_depth
from test_datasets_dense import (
    save_rgb,
    sintel_camera,
    write_booster_scene,
    write_cam,
    write_diode,
    write_dpt,
    write_dsp5,
    write_eth3d_scene,
    write_ibims,
)
from test_datasets_indoor_kitti import (
    EIGEN_SPLIT,
    VOID_K,
    pattern_rgb,
    save_png16,
    write_kitti,
    write_nyu_labeled_mat,
    write_sunrgbd,
    write_void_sequence,
)
from test_datasets_indoor_kitti import save_rgb as save_rgb_array
from test_datasets_sparse_masks import (
    DIS_NAMES,
    exif_with_focal,
    write_focal_photos,
    write_nuscenes,
    write_pair,
)

runner = CliRunner()

DEPTH = ["-a", "none", "-a", "median"]
NO_DEPTH = ["-a", "none"]  # mask and focal sets: one "-" row whatever the alignment
EXIF_SCALED = {"eth3d", "folder"}
"""Sets with one image carrying an EXIF focal length that ``predict -d`` scales its depth with (the
focal reader's EXIF focal is its ground truth, ``focal_px``, never used for prediction)."""

# A foreground square, big enough that boundary recall has edges to find.
SQUARE = np.zeros((24, 32), np.uint8)
SQUARE[6:18, 8:20] = 255
SOFT = SQUARE.copy()
SOFT[5, 8:20] = 128  # a matte's soft edge


def _add_exif_focal(path, focal_35mm):
    """Re-save a JPEG with an EXIF FocalLengthIn35mmFilm."""
    with Image.open(path) as image:
        image.load()
    image.save(path, quality=95, exif=exif_with_focal(focal_35mm))


# ------------------------------------------------------------------------------------ builders
# Each writes a dataset under ``tmp_path`` and returns the ``NAME=PATH[,KEY=VALUE...]`` spec.


def middlebury(tmp_path, data_dir):
    """The full published scene: both views (with the E and L exposures of im1), both disparities, calib."""
    scene = tmp_path / "middlebury" / "Motorcycle-perfect"
    scene.mkdir(parents=True)
    for name in ("im0.png", "im1.png", "im1E.png", "im1L.png"):
        shutil.copy(data_dir / "motorcycle_left.png", scene / name)
    disparity = np.load(data_dir / "motorcycle_disparity.npz")["disparity"]
    write_pfm(scene / "disp0.pfm", disparity)
    write_pfm(scene / "disp1.pfm", disparity)
    (scene / "calib.txt").write_text(MOTORCYCLE_CALIB)
    return f"middlebury={tmp_path / 'middlebury'}"


def booster(tmp_path, data_dir):
    root = tmp_path / "booster"
    write_booster_scene(root, "Bathroom", images=2)  # camera_02: right views, not samples
    return f"booster={root}"


def eth3d(tmp_path, data_dir):
    root = tmp_path / "eth3d"
    write_eth3d_scene(root, "courtyard", ["DSC_0286.JPG", "DSC_0287.JPG"])
    _add_exif_focal(root / "courtyard" / "images" / "dslr_images" / "DSC_0287.JPG", 35)  # as a DSLR writes
    return f"eth3d={root}"


def nuscenes(tmp_path, data_dir):
    # Two keyframes of CAM_FRONT; a CAM_BACK image and a non-keyframe sweep that are not samples.
    return f"nuscenes={write_nuscenes(tmp_path / 'nuscenes')}"


def sintel(tmp_path, data_dir):
    training = tmp_path / "sintel" / "training"
    for scene, frames in (("alley_1", (1, 2)), ("bamboo_2", (1,))):
        for frame in frames:
            stem = f"frame_{frame:04d}"
            save_rgb(training / "final" / scene / f"{stem}.png")
            save_rgb(training / "clean" / scene / f"{stem}.png")
            depth = dense_random_depth(high=60)
            depth[2, 2] = np.inf
            write_dpt(training / "depth" / scene / f"{stem}.dpt", depth)
            write_cam(training / "camdata_left" / scene / f"{stem}.cam", *sintel_camera(688.0 + 100 * frame))
    return f"sintel={tmp_path / 'sintel'}"


def sunrgbd(tmp_path, data_dir):
    root, _ = write_sunrgbd(tmp_path)
    return f"sunrgbd={root}"


def spring(tmp_path, data_dir):
    root = tmp_path / "spring"
    scene = root / "train" / "0004"
    rng = np.random.default_rng(3)
    for eye, frames in (("left", (1, 2)), ("right", (1, 2))):
        for frame in frames:
            save_rgb(scene / f"frame_{eye}" / f"frame_{eye}_{frame:04d}.png")
            disparity = rng.uniform(1.0, 40.0, (12, 16)).astype(np.float32)  # twice the image resolution
            disparity[0, 0] = 0  # sky
            write_dsp5(scene / f"disp1_{eye}" / f"disp1_{eye}_{frame:04d}.dsp5", disparity)
    (scene / "cam_data").mkdir()
    (scene / "cam_data/intrinsics.txt").write_text("1100.0 1100.0 3.5 2.5\n1250.0 1250.0 3.5 2.5\n")
    save_rgb(root / "test" / "0003" / "frame_left" / "frame_left_0001.png")  # no ground truth
    return f"spring={root}"


def ibims(tmp_path, data_dir):
    folder = tmp_path / "ibims" / "ibims1_core_mat"
    write_ibims(folder, "office_02")
    write_ibims(folder, "corridor_01", fx=600.0)
    (folder / "imagelist.txt").write_text("office_02\ncorridor_01\n")
    return f"ibims={tmp_path / 'ibims'}"


def diode(tmp_path, data_dir):
    split_root = tmp_path / "diode" / "val"
    write_diode(split_root, "indoors", 19, 183, "00019_00183_indoors_000_010")
    write_diode(split_root, "outdoor", 22, 193, "00022_00193_outdoor_000_000")
    return f"diode={tmp_path / 'diode'}"


def nyu(tmp_path, data_dir):
    """The labeled .mat (v7.3) at the Eigen crop's 480x640, with splits.mat beside it."""
    images = np.stack([pattern_rgb(480, 640, seed) for seed in range(3)])
    depths = np.stack(
        [np.linspace(0.7 + n, 9.5, 480 * 640, dtype=np.float32).reshape(480, 640) for n in range(3)]
    )
    raw = depths.copy()
    raw[:, :50, :] = 0.0  # Kinect holes
    folder = tmp_path / "nyu"
    folder.mkdir(parents=True)
    write_nyu_labeled_mat(folder / "nyu_depth_v2_labeled.mat", images, depths, raw)
    scipy.io.savemat(
        folder / "splits.mat", {"trainNdxs": np.array([[2.0]]), "testNdxs": np.array([[3.0], [1.0]])}
    )
    return f"nyu={folder / 'nyu_depth_v2_labeled.mat'}"


def nyu_bts(tmp_path, data_dir):
    test = tmp_path / "nyu_depth_v2" / "official_splits" / "test"
    for seed, (scene, number) in enumerate(
        [("bathroom", "00045"), ("kitchen", "00001"), ("kitchen", "00002")]
    ):
        save_rgb_array(test / scene / f"rgb_{number}.jpg", pattern_rgb(480, 640, seed), quality=95)
        if number != "00002":  # an image without its depth: not a sample
            millimetres = (np.arange(480 * 640).reshape(480, 640) * 7 + seed) % 9000 + 500
            save_png16(test / scene / f"sync_depth_{number}.png", millimetres)
    return f"nyu-bts={tmp_path / 'nyu_depth_v2'}"


def kitti(tmp_path, data_dir):
    raw, gt, _ = write_kitti(tmp_path)  # also image_03 ground truth and a frame without any
    split = tmp_path / "eigen_test_files_with_gt.txt"
    split.write_text(EIGEN_SPLIT)
    return f"kitti={raw},depth_root={gt},split_file={split}"


def void(tmp_path, data_dir):
    data = tmp_path / "void_release" / "void_1500" / "data"
    write_void_sequence(data, "desktop2", ["1552625295.7828", "1552625303.1627"], VOID_K)
    write_void_sequence(data, "stairs4", ["1552695287.0660"], VOID_K, with_gt=False)
    return f"void={tmp_path / 'void_release'}"


def dis5k(tmp_path, data_dir):
    for subset, stem in DIS_NAMES.items():
        folder = tmp_path / "DIS5K" / subset
        write_pair(folder / "im" / f"{stem}.jpg", folder / "gt" / f"{stem}.png", SQUARE)
    return f"dis5k={tmp_path},subsets=DIS-TE2"  # its name has '#' and a space


def am2k(tmp_path, data_dir):
    split = tmp_path / "AM-2k" / "validation"
    write_pair(split / "original" / "m_0a1b.jpg", split / "mask" / "m_0a1b.png", SOFT)
    write_pair(split / "original" / "m_ff00.jpg", split / "mask" / "m_ff00.png", SQUARE)
    return f"am2k={tmp_path}"


def p3m10k(tmp_path, data_dir):
    validation = tmp_path / "P3M-10k" / "validation"
    write_pair(
        validation / "P3M-500-P" / "blurred_image" / "p_1.jpg",
        validation / "P3M-500-P" / "mask" / "p_1.png",
        SOFT,
    )
    for stem in ("np_1", "np_2"):
        write_pair(
            validation / "P3M-500-NP" / "original_image" / f"{stem}.jpg",
            validation / "P3M-500-NP" / "mask" / f"{stem}.png",
            SOFT,
        )
    return f"p3m10k={tmp_path}"


def masks(tmp_path, data_dir):
    images, gt = tmp_path / "img", tmp_path / "gt"
    write_pair(images / "b.png", gt / "b.png", SQUARE)
    write_pair(images / "sub" / "a.jpg", gt / "sub" / "a.png", SOFT)
    Image.fromarray(SQUARE).save(gt / "unused.png")  # a mask without an image
    return f"masks={images},mask_dir={gt}"


def focal(tmp_path, data_dir):
    return f"focal={write_focal_photos(tmp_path / 'photos')}"  # no_exif.jpg: skipped by the reader


def folder(tmp_path, data_dir):
    root = tmp_path / "mine"
    (root / "sub").mkdir(parents=True)
    depth = np.linspace(0.5, 4.0, 12 * 16, dtype=np.float32).reshape(12, 16)
    depth[0, 0] = 0
    for name in ("a", "sub/b", "d"):
        Image.new("RGB", (16, 12), (10, 20, 30)).save(root / f"{name}.png")
    np.save(root / "a_depth.npy", depth)
    write_depth_png(root / "sub" / "b_depth.png", depth)
    (root / "a.json").write_text(json.dumps({"fx": 20, "cx": 7.5, "cy": 5.5}))  # d has no depth: no sample
    Image.new("RGB", (16, 12), (90, 20, 30)).save(root / "c.jpg", exif=exif_with_focal(28))  # a phone photo
    np.savez(root / "c_depth.npz", depth=depth[::-1].copy())
    return f"folder={root}"


READERS = [
    (middlebury, DEPTH),
    (booster, DEPTH),
    (eth3d, DEPTH),
    (nuscenes, DEPTH),
    (sintel, DEPTH),
    (sunrgbd, DEPTH),
    (spring, DEPTH),
    (ibims, DEPTH),
    (diode, DEPTH),
    (nyu, DEPTH),
    (nyu_bts, DEPTH),
    (kitti, DEPTH),
    (void, DEPTH),
    (dis5k, NO_DEPTH),
    (am2k, NO_DEPTH),
    (p3m10k, NO_DEPTH),
    (masks, NO_DEPTH),
    (focal, NO_DEPTH),
    (folder, DEPTH),
]


# ------------------------------------------------------------------------------------ helpers


def _cli(*args):
    return runner.invoke(app, [str(a) for a in args])


def _npz_names(root):
    """Sample names of the predictions under ``root``: relative paths of ``*.npz`` without the suffix."""
    return {p.relative_to(root).as_posix()[: -len(".npz")] for p in root.rglob("*.npz")}


def _same(a, b, where):
    """Equal JSON values; numbers to rel 1e-6 (the npz and in-memory paths give the same float32 depth)."""
    if isinstance(a, dict) and isinstance(b, dict):
        assert sorted(a) == sorted(b), f"{where}: keys differ"
        for key in a:
            _same(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, list) and isinstance(b, list):
        assert len(a) == len(b), f"{where}: {len(a)} vs {len(b)} entries"
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _same(x, y, f"{where}[{i}]")
    elif isinstance(a, float) and isinstance(b, (int, float)) and not isinstance(b, bool):
        assert b == pytest.approx(a, rel=1e-6, abs=1e-12), f"{where}: {a} vs {b}"
    else:
        assert a == b, f"{where}: {a!r} vs {b!r}"


def _results(out):
    report = json.loads((out / "results.json").read_text())
    return {"rows": report["rows"], "failures": report["failures"]}


# ------------------------------------------------------------------------------------ the round trip


@pytest.mark.parametrize(
    ("build", "alignments"), READERS, ids=[b.__name__.replace("_", "-") for b, _ in READERS]
)
def test_predict_then_evaluate_round_trip(build, alignments, tmp_path, data_dir, camera_checkpoint):
    spec = build(tmp_path / "data", data_dir)
    name = spec.partition("=")[0]
    dataset = open_benchmark(spec).dataset
    samples = {dataset[i]["name"] for i in range(len(dataset))}
    assert 1 <= len(samples) == len(dataset), samples
    pred, saved, e1, e2, e3 = (tmp_path / n for n in ("pred", "saved", "e1", "e2", "e3"))

    predicted = _cli("predict", "-d", spec, "-o", pred, "-c", camera_checkpoint)
    assert predicted.exit_code == 0, predicted.output
    assert _npz_names(pred) == samples  # nothing for depth maps, right views, masks or unlisted images

    from_files = _cli("evaluate", "-d", spec, "--predictions", pred, "-o", e1, *alignments)
    in_memory = _cli(
        "evaluate",
        "-d",
        spec,
        "--checkpoint",
        camera_checkpoint,
        "--save-predictions",
        saved,
        "-o",
        e2,
        *alignments,
    )
    assert from_files.exit_code == 0, from_files.output
    assert in_memory.exit_code == 0, in_memory.output
    assert _npz_names(saved) == samples
    from_saved = _cli("evaluate", "-d", spec, "--predictions", saved, "-o", e3, *alignments)
    assert from_saved.exit_code == 0, from_saved.output

    # Map by map: the file predict -d wrote, made zero-shot, is what the model predicted in memory.
    sources = []
    for i in range(len(dataset)):
        sample = dataset[i]
        stored = np.load(pred / f"{sample['name']}.npz")
        sources.append("exif" if sample.get("exif_focal_px") is not None else "predicted")
        assert str(stored["focal_source"]) == sources[-1], sample["name"]
        zero_shot = read_prediction(pred / f"{sample['name']}.npz").depth.numpy()
        in_model = read_prediction(saved / f"{sample['name']}.npz").depth.numpy()
        assert zero_shot.shape == sample["image"].shape[:2]
        np.testing.assert_allclose(zero_shot, in_model, rtol=1e-6, err_msg=sample["name"])
        assert 0.1 < np.median(in_model) < 100  # metres, not the 10 km ceiling
    assert sources.count("exif") == (1 if name in EXIF_SCALED else 0)

    reference = _results(e2)
    _same(_results(e1), reference, f"{name} predict -d vs --checkpoint")
    _same(_results(e3), reference, f"{name} --save-predictions vs --checkpoint")

    rows = reference["rows"]
    expected_modes = [a for a in alignments if a != "-a"] if "depth" in dataset[0] else ["-"]
    assert [(r["dataset"], r["alignment"]) for r in rows] == [(name, mode) for mode in expected_modes]
    for row in rows:
        assert row["images"] >= 1, row
        scored = [v for k, v in row.items() if k not in ("dataset", "alignment", "images")]
        assert scored and all(isinstance(v, float) and math.isfinite(v) for v in scored), row
