"""The inference seam: the DepthSource protocol, the typed Prediction, the focal policy's edges."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

from metricdepth import DepthPro, DepthSource, Prediction
from metricdepth.evaluation.predictors import read_prediction
from metricdepth.inference import resolve_focal
from metricdepth.io.writers import save_prediction


def test_depth_pro_is_a_depth_source(tiny_model):
    assert isinstance(tiny_model, DepthSource)
    assert not isinstance(object(), DepthSource)


def test_a_relative_prediction_says_so_and_has_no_camera(tmp_path):
    inverse = torch.rand(6, 8) + 0.1
    relative = Prediction(depth=None, inverse_depth=inverse, kind="relative")
    assert not relative.is_metric and relative.focal_px is None and relative.image_size == (6, 8)
    assert relative.to_numpy()["depth"] is None and relative.to_numpy()["intrinsics"] is None
    with pytest.raises(ValueError, match="needs depth"):
        Prediction(depth=None, inverse_depth=inverse)
    with pytest.raises(ValueError, match="no metric depth"):
        Prediction(depth=1 / inverse, inverse_depth=inverse, kind="relative")

    written = save_prediction(
        relative, np.zeros((6, 8, 3), np.uint8), tmp_path / "r", formats=("npz", "color", "json")
    )
    assert [p.name for p in written] == ["r.npz", "r_inverse_depth.png", "r.json"]
    meta = json.loads((tmp_path / "r.json").read_text())
    assert meta["kind"] == "relative" and meta["focal_px"] is None and meta["K"] is None
    back = read_prediction(tmp_path / "r.npz")
    assert back.kind == "relative" and torch.equal(back.inverse_depth, inverse)
    with pytest.raises(ValueError, match="no metric depth"):
        save_prediction(relative, np.zeros((6, 8, 3), np.uint8), tmp_path / "x", formats=("depth16",))


def test_a_batched_prediction_indexes_into_single_ones(tiny_model, rgb):
    batch = torch.stack([torch.from_numpy(rgb).permute(2, 0, 1)] * 3)
    pred = tiny_model.infer(batch, f_px=[100.0, 200.0, 300.0])
    assert pred.batched and len(pred) == 3 and pred.focal_px.device == pred.depth.device
    single = pred[2]
    assert not single.batched and single.focal_px == 300.0 and single.focal_source == "user"
    assert single.intrinsics.shape == (3, 3) and dataclasses.asdict(single)["kind"] == "metric"


def test_focal_policy_edges(tiny_model, rgb, tiny_state_dict):
    with pytest.raises(ValueError, match="use_exif=False"):
        tiny_model.infer(rgb, focal="exif", use_exif=False)
    with pytest.raises(ValueError, match="no EXIF focal"):
        tiny_model.infer(rgb, focal="exif")
    with pytest.raises(ValueError, match="cannot be combined"):
        tiny_model.infer(rgb, f_px=100.0, focal="predicted")
    with pytest.raises(ValueError, match="empty image batch"):
        tiny_model.infer(torch.zeros(0, 3, 8, 8))
    with pytest.raises(ValueError, match="unknown focal policy"):
        resolve_focal((6, 8), policy="bogus")  # type: ignore[arg-type]
    exif = resolve_focal((6, 8), exif_focal_px=500.0, predicted_fov_deg=60.0)
    assert (exif.source, exif.focal_px) == ("exif", 500.0)
    predicted = resolve_focal((6, 8), exif_focal_px=500.0, predicted_fov_deg=60.0, policy="predicted")
    assert predicted.source == "predicted" and predicted.focal_px == pytest.approx(4 / np.tan(np.radians(30)))
    headless = DepthPro.from_state_dict(
        {k: v for k, v in tiny_state_dict.items() if not k.startswith("fov.")}, device="cpu"
    )
    with pytest.raises(ValueError, match="'predicted' needs a model with a FOV head"):
        headless.infer(rgb, focal="predicted")
    assert headless.infer(rgb, f_px=50.0).predicted_fov_deg is None
