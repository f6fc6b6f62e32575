import csv
import json
import shutil

import numpy as np
import pytest
from typer.testing import CliRunner

from metricdepth import metrics
from metricdepth.cli import app
from test_datasets import motorcycle_scene  # noqa: F401 - fixture

runner = CliRunner()


@pytest.fixture
def predictions(tmp_path, motorcycle_scene):  # noqa: F811
    """Saved predictions for the Motorcycle scene: the ground truth scaled by 1.1 (holes filled)."""
    from metricdepth.data.datasets import Middlebury2014

    sample = Middlebury2014(motorcycle_scene)[0]
    depth = np.where(sample["valid"], sample["depth"] * 1.1, 3.0).astype(np.float32)
    folder = tmp_path / "preds"
    folder.mkdir()
    np.savez(
        folder / f"{sample['name']}.npz", depth=depth, focal_px=np.float64(1000.0), focal_source="predicted"
    )
    return folder


def test_evaluate_writes_tables_and_is_deterministic(tmp_path, motorcycle_scene, predictions):  # noqa: F811
    outputs = []
    for run in range(2):
        out = tmp_path / f"eval{run}"
        result = runner.invoke(
            app,
            [
                "evaluate",
                "-d",
                f"middlebury={motorcycle_scene}",
                "--predictions",
                str(predictions),
                "-a",
                "none",
                "-a",
                "median",
                "-o",
                str(out),
            ],
        )
        assert result.exit_code == 0, result.output
        outputs.append({p.name: p.read_bytes() for p in sorted(out.iterdir())})
    assert outputs[0] == outputs[1]
    assert sorted(outputs[0]) == ["per_image.csv", "results.csv", "results.json", "results.md"]

    rows = json.loads(outputs[0]["results.json"])["rows"]
    assert [(r["dataset"], r["alignment"], r["images"]) for r in rows] == [
        ("middlebury", "none", 1),
        ("middlebury", "median", 1),
    ]
    metric, median = rows
    assert metric["abs_rel"] == pytest.approx(0.1, rel=1e-5) and metric["d1"] == 1.0
    assert median["abs_rel"] == pytest.approx(0.0, abs=1e-6)
    assert metric["focal_median_rel_err"] == pytest.approx(abs(1000 - 994.978) / 994.978)
    per_image = list(csv.DictReader(outputs[0]["per_image.csv"].decode().splitlines()))
    assert [r["image"] for r in per_image] == ["Motorcycle-perfect"] * 2
    report = outputs[0]["results.md"].decode()
    assert "| Alignment | Middlebury δ1↑ | Middlebury AbsRel↓ |" in report
    assert "| none | 1.000 | 0.100 |" in report and "| median | 1.000 | 0.000 |" in report
    assert "| middlebury | none | 1 |" in report  # the long table
    # Middlebury's preset scores Depth Pro's boundary F1 on valid ground-truth pairs: the prediction has
    # exactly the ground truth's edges there (its holes, filled with 3 m, are not edges).
    assert metric["boundary_f1"] == pytest.approx(1.0) and metric["boundary_f1"] == median["boundary_f1"]
    assert "Middlebury F1↑" in report


def test_evaluate_usage_errors(tmp_path, motorcycle_scene):  # noqa: F811
    missing = runner.invoke(
        app, ["evaluate", "-d", f"middlebury={motorcycle_scene}", "--predictions", str(tmp_path / "none")]
    )
    assert missing.exit_code == 2 and "not found" in missing.output
    both = runner.invoke(app, ["evaluate", "-d", f"middlebury={motorcycle_scene}"])
    assert both.exit_code == 2 and "exactly one" in both.output
    bad = runner.invoke(app, ["evaluate", "-d", "nosuch=/x", "--predictions", str(tmp_path)])
    assert bad.exit_code == 2 and "NAME=PATH" in bad.output
    option = runner.invoke(
        app, ["evaluate", "-d", f"middlebury={motorcycle_scene},bogus=1", "--predictions", str(tmp_path)]
    )
    assert option.exit_code == 2 and "bogus" in option.output
    twice = [f"middlebury={motorcycle_scene}"] * 2
    dup = runner.invoke(app, ["evaluate", "-d", twice[0], "-d", twice[1], "--predictions", str(tmp_path)])
    assert dup.exit_code == 2 and "once" in dup.output


def _folder_split(root, depths, predict):
    """A folder-format split (NAME.png + NAME_depth.npy) and predictions ``predict(gt)`` saved beside it."""
    from PIL import Image

    root.mkdir(parents=True)
    preds = root.parent / f"{root.name}_preds"
    preds.mkdir()
    for i, depth in enumerate(depths):
        Image.new("RGB", depth.shape[::-1]).save(root / f"im{i}.png")
        np.save(root / f"im{i}_depth.npy", depth.astype(np.float32))
        np.savez(preds / f"im{i}.npz", depth=predict(depth).astype(np.float32))
    return root, preds


def _run(*args):
    result = runner.invoke(app, ["evaluate", *map(str, args)])
    assert result.exit_code == 0, result.output
    return result


def test_global_alignment_is_fitted_on_the_fit_split_only(tmp_path):
    rng = np.random.default_rng(0)
    depths = [rng.uniform(1, 9, (12, 16)) for _ in range(5)]
    affine = lambda d: (d - 0.5) / 3  # noqa: E731 - one affine map of depth for every image
    train, train_preds = _folder_split(tmp_path / "train", depths[:3], affine)
    # The test split's images share names with the training split's but not their depths: fitting on
    # the wrong predictions would show.
    test, test_preds = _folder_split(tmp_path / "test", depths[3:], affine)
    out = tmp_path / "out"
    common = ["-d", f"folder={test}", "--predictions", test_preds, "-o", out]
    modes = ["-a", "none", "-a", "global-depth", "-a", "global-disparity"]
    _run(*common, *modes, "--global-fit", f"folder={train}", "--fit-predictions", train_preds)
    rows = {r["alignment"]: r for r in json.loads((out / "results.json").read_text())["rows"]}
    assert rows["global-depth"]["global_scale"] == pytest.approx(3.0)
    assert rows["global-depth"]["global_shift"] == pytest.approx(0.5)
    assert rows["global-depth"]["abs_rel"] == pytest.approx(0.0, abs=1e-6)
    assert rows["global-disparity"]["abs_rel"] > 0.01  # depth-affine is not disparity-affine
    assert rows["none"]["abs_rel"] > 0.5
    missing = runner.invoke(app, ["evaluate", *map(str, common), "-a", "global-depth"])
    assert missing.exit_code == 2 and "needs a split to fit on" in missing.output


def test_depth_range_crop_and_boundary_options(tmp_path):
    depth = np.full((480, 640), 2.0)
    depth[:, 320:] = 4.0  # one vertical occluding edge
    depth[:10] = 50.0  # far rows, outside a 10 m cap
    data, preds = _folder_split(tmp_path / "d", [depth], lambda d: np.where(d > 10, d, d * 1.5))
    out = tmp_path / "out"
    _run("-d", f"folder={data}", "--predictions", preds, "-o", out, "--max-depth", "10", "--boundary-f1")
    row = json.loads((out / "results.json").read_text())["rows"][0]
    assert row["abs_rel"] == pytest.approx(0.5)  # the far rows (exact there) are out of range
    # Scale-invariant: the same edges as the ground truth score as the ground truth itself does
    # (below 1 here: Depth Pro averages over 4 directions, and this image has edges in 2 of them).
    pred = np.where(depth > 10, depth, depth * 1.5)
    assert row["boundary_f1"] == metrics.boundary_f1(pred, depth) == metrics.boundary_f1(depth, depth) == 0.5
    _run("-d", f"folder={data}", "--predictions", preds, "-o", out)
    row = json.loads((out / "results.json").read_text())["rows"][0]
    assert row["abs_rel"] == pytest.approx(0.5 * (470 / 480)) and "boundary_f1" not in row
    # The NYU Eigen crop keeps rows 45:471 only: the far rows drop out again.
    _run("-d", f"folder={data}", "--predictions", preds, "-o", out, "--crop", "nyu_eigen")
    row = json.loads((out / "results.json").read_text())["rows"][0]
    assert row["abs_rel"] == pytest.approx(0.5)


def test_protocol_presets_and_dataset_arguments():
    from metricdepth.evaluation import BENCHMARKS, parse_benchmark_arg

    assert parse_benchmark_arg("kitti=/raw,depth_root=/gt,kb_crop=false,limit=3") == (
        "kitti",
        "/raw",
        {"depth_root": "/gt", "kb_crop": False, "limit": 3},
    )
    with pytest.raises(ValueError, match="KEY=VALUE"):
        parse_benchmark_arg("kitti=/raw,oops")
    nyu, kitti = BENCHMARKS["nyu"].protocol, BENCHMARKS["kitti"].protocol
    assert (nyu.crop, nyu.max_depth, nyu.columns) == (
        "nyu_eigen",
        10.0,
        ("d1", "d2", "d3", "abs_rel", "log10", "rmse"),
    )
    assert (kitti.crop, kitti.max_depth) == ("kitti_garg", 80.0) and "rmse_log" in kitti.columns
    for name, benchmark in BENCHMARKS.items():
        reader = benchmark.reader_class()
        assert callable(reader) and reader.__doc__, name


def test_unscorable_images_are_reported_and_the_rest_scored(tmp_path):
    depths = [np.full((6, 8), 2.0), np.full((6, 8), 3.0), np.full((6, 8), 4.0)]
    data, preds = _folder_split(tmp_path / "d", depths, lambda d: d * 1.25)
    (preds / "im1.npz").unlink()
    np.savez(preds / "im2.npz", depth=np.ones((3, 4), np.float32))
    out = tmp_path / "out"
    result = runner.invoke(
        app, ["evaluate", "-d", f"folder={data}", "--predictions", str(preds), "-o", str(out)]
    )
    assert result.exit_code == 1
    assert (
        "2 image(s) not scored" in result.output and "im1.npz" in result.output and "(3, 4)" in result.output
    )
    report = json.loads((out / "results.json").read_text())
    assert report["rows"][0]["images"] == 1 and report["rows"][0]["abs_rel"] == pytest.approx(0.25)
    assert [f["image"] for f in report["failures"]] == ["im1", "im2"]
    assert "## Not scored" in (out / "results.md").read_text()


def test_mask_and_focal_sets_give_boundary_recall_and_focal_rows(tmp_path, data_dir):
    from PIL import Image

    from metricdepth.camera import focal_from_35mm

    images, masks, preds = (tmp_path / n for n in ("im", "gt", "preds"))
    for folder in (images, masks, preds):
        folder.mkdir()
    alpha = np.zeros((24, 32), np.uint8)
    alpha[6:18, 8:20] = 255  # a foreground square
    Image.new("RGB", (32, 24)).save(images / "square.jpg")
    Image.fromarray(alpha).save(masks / "square.png")
    depth = np.where(alpha > 0, 1.0, 3.0).astype(np.float32)  # the square is closer: its edges are found
    np.savez(preds / "square.npz", depth=depth)
    shutil.copy(data_dir / "leuvenA.jpg", tmp_path / "photos.jpg")
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos.jpg").rename(tmp_path / "photos" / "leuvenA.jpg")
    gt_focal = focal_from_35mm(29, 751, 563)
    np.savez(
        preds / "leuvenA.npz",
        depth=np.ones((563, 751), np.float32),
        focal_px=np.float64(gt_focal * 1.1),
        focal_source="predicted",  # the model's own estimate: the only focal that is scored
    )
    out = tmp_path / "out"
    _run(
        "-d",
        f"masks={images},mask_dir={masks}",
        "-d",
        f"focal={tmp_path / 'photos'}",
        "--predictions",
        preds,
        "-o",
        out,
    )
    rows = json.loads((out / "results.json").read_text())["rows"]
    assert [(r["dataset"], r["alignment"], r["images"]) for r in rows] == [
        ("masks", "-", 1),
        ("focal", "-", 1),
    ]
    expected = metrics.boundary_recall(depth, alpha / 255.0)
    assert rows[0]["boundary_recall"] == pytest.approx(expected) and expected > 0.4
    assert rows[1]["focal_median_rel_err"] == pytest.approx(0.1) and rows[1]["focal_delta25"] == 1.0
    report = (out / "results.md").read_text()
    assert "| masks R↑ |" in report and "| EXIF focal δ25%↑ |" in report and "## Depth" not in report


def test_evaluate_runs_a_checkpoint(tmp_path, motorcycle_scene, tiny_checkpoint):  # noqa: F811
    out = tmp_path / "out"
    _run("-d", f"middlebury={motorcycle_scene}", "--checkpoint", tiny_checkpoint, "-a", "median", "-o", out)
    row = json.loads((out / "results.json").read_text())["rows"][0]
    assert row["images"] == 1 and 0 <= row["d1"] <= 1 and np.isfinite(row["abs_rel"])
    assert row["focal_median_rel_err"] >= 0 and 0 <= row["boundary_f1"] <= 1
