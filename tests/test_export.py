"""``metricdepth export``: ONNX (checked with ONNX Runtime) and torch.export programs of the network."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from metricdepth import DepthPro, DepthProConfig
from metricdepth.cli.app import app


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    torch.manual_seed(0)
    model = DepthPro(DepthProConfig.preset("tiny")).eval()
    path = tmp_path_factory.mktemp("weights") / "tiny.safetensors"
    model.save_pretrained(path)
    return model, path


def test_onnx_export_runs_in_onnxruntime_with_pytorchs_outputs_at_any_batch(tmp_path, tiny):
    ort = pytest.importorskip("onnxruntime")
    model, weights = tiny
    out = tmp_path / "tiny.onnx"
    result = CliRunner().invoke(app, ["export", "-c", str(weights), "--format", "onnx", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "checked with onnxruntime" in result.output
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    assert [o.name for o in session.get_outputs()] == ["canonical_inverse_depth", "fov_deg"]
    size = model.img_size
    for batch in (1, 3):  # the batch is dynamic, the input size fixed
        x = torch.rand(batch, 3, size, size) * 2 - 1
        canonical, fov = session.run(None, {"image": x.numpy()})
        with torch.no_grad():
            ref_canonical, ref_fov = model(x)
        assert canonical.shape == (batch, 1, size, size) and fov.shape == (batch,)
        scale = float(ref_canonical.abs().max())
        np.testing.assert_allclose(canonical, ref_canonical.numpy(), rtol=0, atol=1e-4 * scale)
        np.testing.assert_allclose(fov, ref_fov.numpy(), rtol=1e-5, atol=1e-4)
    import onnx

    meta = {p.key: p.value for p in onnx.load(str(out), load_external_data=False).metadata_props}
    assert meta["metricdepth.img_size"] == str(size) and "mean = std = 0.5" in meta["metricdepth.input"]
    # An existing file is not replaced without --overwrite.
    again = CliRunner().invoke(app, ["export", "-c", str(weights), "-o", str(out)])
    assert again.exit_code == 2 and "--overwrite" in again.output


def test_exported_program_matches_and_models_without_fov_head(tmp_path):
    from metricdepth.export import export_model

    torch.manual_seed(1)
    model = DepthPro(DepthProConfig.preset("tiny")).eval()
    model.fov = None
    out = tmp_path / "tiny.pt2"
    check = export_model(model, out, "exported-program")
    assert check is not None and check.ok and len(check.max_abs_error) == 1  # canonical only
    program = torch.export.load(str(out))
    x = torch.rand(2, 3, model.img_size, model.img_size) * 2 - 1
    with torch.no_grad():
        (canonical,) = program.module()(x)
        ref, _ = model(x)
    torch.testing.assert_close(canonical, ref, rtol=1e-4, atol=1e-6)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny.pt2"]  # no staging left behind


def test_unknown_format_is_a_usage_error(tmp_path):
    result = CliRunner().invoke(app, ["export", "--format", "coreml", "-o", str(tmp_path / "x")])
    assert result.exit_code == 2 and "onnx" in result.output
