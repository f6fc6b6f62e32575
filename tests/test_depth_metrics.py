import math

import numpy as np
import pytest
import torch

from metricdepth import alignment
from metricdepth.metrics import (
    DepthMetricAccumulator,
    crop_mask,
    depth_metrics,
    focal_metrics,
    kitti_benchmark_crop,
)


def plain_metrics(pred, gt):
    """The formulas, written out with numpy on already-valid pixels."""
    ratio = np.maximum(pred / gt, gt / pred)
    e = np.log(pred) - np.log(gt)
    return {
        "d1": np.mean(ratio < 1.25),
        "d2": np.mean(ratio < 1.25**2),
        "d3": np.mean(ratio < 1.25**3),
        "abs_rel": np.mean(np.abs(pred - gt) / gt),
        "sq_rel": np.mean((pred - gt) ** 2 / gt),
        "rmse": np.sqrt(np.mean((pred - gt) ** 2)),
        "rmse_log": np.sqrt(np.mean(e**2)),
        "log10": np.mean(np.abs(np.log10(pred) - np.log10(gt))),
        "silog": 100 * np.sqrt(np.mean(e**2) - np.mean(e) ** 2),
    }


def random_pair(seed, shape=(30, 40)):
    rng = np.random.default_rng(seed)
    gt = rng.uniform(0.5, 20, shape)
    pred = gt * rng.lognormal(0, 0.25, shape)
    gt[rng.random(shape) < 0.1] = 0  # invalid ground truth
    mask = rng.random(shape) > 0.2
    return pred, gt, mask


def test_metrics_match_the_formulas_numpy_and_torch():
    pred, gt, mask = random_pair(0)
    valid = mask & (gt > 0)
    expected = plain_metrics(pred[valid], gt[valid])
    for p, g, m in (
        (pred, gt, mask),
        (torch.from_numpy(pred).float(), torch.from_numpy(gt).float(), torch.from_numpy(mask)),
    ):
        ours = depth_metrics(p, g, m)
        for key, value in expected.items():
            assert ours[key] == pytest.approx(value, rel=1e-5), key


def test_caps_clamp_predictions_and_mask_ground_truth():
    gt = np.array([[0.5, 2.0, 50.0]])
    pred = np.array([[0.1, 2.0, 100.0]])
    ours = depth_metrics(pred, gt, min_depth=1.0, max_depth=10.0)  # only the 2 m pixel is valid
    assert ours["abs_rel"] == 0 and ours["d1"] == 1
    assert depth_metrics(np.array([[20.0]]), np.array([[5.0]]), max_depth=10.0)["abs_rel"] == pytest.approx(
        1.0
    )
    assert math.isnan(depth_metrics(pred, np.zeros_like(gt))["rmse"])


def test_per_image_mean_and_pooled():
    acc = DepthMetricAccumulator()
    pairs = [random_pair(seed, shape) for seed, shape in ((1, (10, 10)), (2, (30, 40)))]
    for pred, gt, mask in pairs:
        acc.update(pred, gt, mask)
    per_image = [plain_metrics(p[m & (g > 0)], g[m & (g > 0)]) for p, g, m in pairs]
    assert acc.per_image_mean()["rmse"] == pytest.approx(np.mean([m["rmse"] for m in per_image]))
    all_pred = np.concatenate([p[m & (g > 0)] for p, g, m in pairs])
    all_gt = np.concatenate([g[m & (g > 0)] for p, g, m in pairs])
    pooled = plain_metrics(all_pred, all_gt)
    for key, value in pooled.items():
        assert acc.pooled()[key] == pytest.approx(value, rel=1e-9), key


def test_crop_boxes():
    garg = crop_mask((375, 1242), "kitti_garg")
    rows, cols = np.nonzero(garg)
    assert (rows.min(), rows.max() + 1, cols.min(), cols.max() + 1) == (153, 371, 44, 1197)
    eigen = np.nonzero(crop_mask((375, 1242), "kitti_eigen"))
    assert (eigen[0].min(), eigen[0].max() + 1, eigen[1].min(), eigen[1].max() + 1) == (124, 342, 44, 1197)
    nyu = np.nonzero(crop_mask((480, 640), "nyu_eigen"))
    assert (nyu[0].min(), nyu[0].max() + 1, nyu[1].min(), nyu[1].max() + 1) == (45, 471, 41, 601)
    assert crop_mask((4, 5), None).all()
    with pytest.raises(ValueError):
        crop_mask((100, 100), "nyu_eigen")
    image = np.arange(375 * 1242).reshape(375, 1242)
    cropped = kitti_benchmark_crop(image)
    assert cropped.shape == (352, 1216) and cropped[0, 0] == image[23, 13]


def test_focal_metrics():
    out = focal_metrics([100, 130, 160, 300], [100, 100, 100, 100])
    assert out == {"delta25": 0.25, "delta50": 0.5, "median_rel_err": pytest.approx(0.45)}
    with pytest.raises(ValueError):
        focal_metrics([1, 2], [1])


def test_alignment_recovers_known_scale_and_shift():
    rng = np.random.default_rng(3)
    gt = rng.uniform(1, 10, (20, 30))
    mask = np.ones_like(gt, bool)
    np.testing.assert_allclose(alignment.align(gt / 3, gt, mask, "median"), gt)
    np.testing.assert_allclose(alignment.align(gt / 3, gt, mask, "lstsq-scale"), gt)
    np.testing.assert_allclose(alignment.align((gt - 0.5) / 2, gt, mask, "lstsq-depth"), gt, rtol=1e-9)
    relative = 1 / ((1 / gt - 0.02) / 4)  # an affine transform of inverse depth
    np.testing.assert_allclose(alignment.align(relative, gt, mask, "lstsq-disparity"), gt, rtol=1e-9)
    assert alignment.align(gt, gt, None, "none") is gt
    tensor = alignment.align(torch.from_numpy(gt / 3).float(), torch.from_numpy(gt), None, "median")
    assert isinstance(tensor, torch.Tensor) and tensor.dtype == torch.float32
    with pytest.raises(ValueError, match="unknown alignment"):
        alignment.align(gt, gt, mask, "magic")


def test_global_alignment_fits_on_one_split_and_applies_to_another():
    rng = np.random.default_rng(4)
    train = [rng.uniform(1, 10, (8, 8)) for _ in range(3)]
    test = rng.uniform(1, 10, (8, 8))
    fitted = alignment.GlobalAlignment("depth").fit([((g - 1) / 2, g) for g in train])
    assert (fitted.scale, fitted.shift) == (pytest.approx(2.0), pytest.approx(1.0))
    np.testing.assert_allclose(fitted.apply((test - 1) / 2), test)
    disparity = alignment.GlobalAlignment("disparity").fit([(1 / (3 / g), g) for g in train])
    np.testing.assert_allclose(disparity.apply(1 / (3 / test)), test, rtol=1e-9)


def test_global_alignment_streaming_equals_one_least_squares_over_all_pixels():
    rng = np.random.default_rng(5)
    preds = [rng.uniform(0.5, 20, (16, 12)) for _ in range(4)]
    gts = [p * rng.uniform(0.8, 1.3) + rng.normal(0, 0.5, p.shape) for p in preds]
    masks = [rng.random(p.shape) > 0.3 for p in preds]
    streamed = alignment.GlobalAlignment("depth")
    for p, g, m in zip(preds, gts, masks, strict=True):
        streamed.update(p, g, m)
    streamed.fit()
    keep = [m & (g > 0) for g, m in zip(gts, masks, strict=True)]
    x = torch.from_numpy(np.concatenate([p[k] for p, k in zip(preds, keep, strict=True)]))
    y = torch.from_numpy(np.concatenate([g[k] for g, k in zip(gts, keep, strict=True)]))
    s, t = alignment.fit_scale_shift(x, y)
    assert streamed.scale == pytest.approx(s, rel=1e-9) and streamed.shift == pytest.approx(t, rel=1e-9)
    with pytest.raises(ValueError, match="too few"):
        alignment.GlobalAlignment().fit()
    with pytest.raises(RuntimeError, match="before fit"):
        alignment.GlobalAlignment().apply(preds[0])


def test_results_json_is_strict_json_with_null_for_nan_and_inf(tmp_path):
    import json

    from metricdepth.evaluation.protocols import Protocol
    from metricdepth.evaluation.runner import EvalResult
    from metricdepth.evaluation.tables import write_tables

    rows = [
        {"dataset": "a", "alignment": "none", "images": 2, "d1": float("nan"), "abs_rel": np.float32(0.25)},
        {"dataset": "a", "alignment": "median", "images": 2, "d1": 0.5, "abs_rel": float("inf")},
        {"dataset": "a", "alignment": "lstsq-depth", "images": 2, "d1": np.float64("-inf"), "abs_rel": 0.1},
    ]
    result = EvalResult(
        rows=rows,
        per_image=[{"dataset": "a", "alignment": "none", "image": "x", "d1": float("nan")}],
        protocols={"a": Protocol("A", max_depth=float("inf"))},
        failures=[("a", "y", "no valid ground truth")],
    )
    write_tables(result, tmp_path, info={"checkpoint": "none", "score": float("nan")})

    def refuse(constant):
        raise ValueError(f"non-standard JSON constant {constant}")

    text = (tmp_path / "results.json").read_text()
    report = json.loads(text, parse_constant=refuse)
    assert [r["d1"] for r in report["rows"]] == [None, 0.5, None]
    assert [r["abs_rel"] for r in report["rows"]] == [0.25, None, 0.1]
    assert report["protocols"]["a"]["max_depth"] is None and report["info"]["score"] is None
    assert report["failures"] == [{"dataset": "a", "image": "y", "reason": "no valid ground truth"}]
    assert "NaN" not in text and "Infinity" not in text


def test_open_benchmark_rejects_an_option_the_reader_does_not_take(tmp_path):
    from metricdepth.evaluation.protocols import BENCHMARKS, open_benchmark

    spec = f"diode={tmp_path / 'absent'},bogus=1,split=val"
    with pytest.raises(ValueError) as info:  # before the (absent) folder is looked at
        open_benchmark(spec)
    message = str(info.value)
    assert spec in message and "'bogus'" in message and "'split'" not in message
    assert "accepts: split, scene_type, K" in message
    assert "unexpected keyword" not in message and "__init__" not in message
    with pytest.raises(ValueError, match=r"middlebury .*does not take 'bogus'; it accepts: no options"):
        open_benchmark(f"middlebury={tmp_path},bogus=1")
    for name, benchmark in BENCHMARKS.items():  # every reader's signature can be read; presets fit it
        accepted = benchmark.reader_options()
        assert accepted is not None and set(benchmark.options) <= set(accepted), name


def test_open_benchmark_validates_the_crop_override(tmp_path):
    from PIL import Image

    from metricdepth.evaluation.protocols import open_benchmark
    from metricdepth.metrics.depth import CROP_NAMES

    Image.new("RGB", (8, 6)).save(tmp_path / "a.png")
    np.save(tmp_path / "a_depth.npy", np.ones((6, 8), np.float32))
    with pytest.raises(ValueError) as info:
        open_benchmark(f"folder={tmp_path}", crop="bogus")
    assert "'bogus'" in str(info.value)
    assert all(name in str(info.value) for name in ("none", *CROP_NAMES))
    assert set(CROP_NAMES) == {"nyu_eigen", "kitti_garg", "kitti_eigen"}
    assert open_benchmark(f"folder={tmp_path}", crop="kitti_garg").protocol.crop == "kitti_garg"
    assert open_benchmark(f"folder={tmp_path}", crop="none").protocol.crop is None
    assert open_benchmark(f"folder={tmp_path}").protocol.crop is None
    with pytest.raises(ValueError, match="unknown crop 'bogus'"):
        crop_mask((6, 8), "bogus")
