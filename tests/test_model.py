import math

import numpy as np
import pytest
import torch
from PIL import Image

from metricdepth import DepthPro, DepthProConfig, Prediction
from metricdepth.camera import focal_from_35mm, fov_to_focal


def test_forward_shapes(tiny_model):
    size = tiny_model.img_size
    canonical, fov = tiny_model(torch.zeros(2, 3, size, size))
    assert canonical.shape == (2, 1, size, size)
    assert fov.shape == (2,)
    assert (canonical >= 0).all()


def test_forward_rejects_other_sizes(tiny_model):
    with pytest.raises(ValueError, match=r"\(B, 3, 512, 512\)"):
        tiny_model(torch.zeros(1, 3, 256, 256))


def test_infer_matches_the_reference_maths(tiny_model, data_dir):
    """depth = f_px / (W · C), C resized back as inverse depth (bilinear), clamped to [1e-4, 1e4]."""
    rgb = np.array(Image.open(data_dir / "motorcycle_left.png").convert("RGB"))
    height, width = rgb.shape[:2]
    x = torch.from_numpy(rgb).permute(2, 0, 1)[None].float() / 255
    normalised = torch.nn.functional.interpolate(
        (x - 0.5) / 0.5, size=(512, 512), mode="bilinear", align_corners=False
    )
    with torch.no_grad():
        canonical, fov = tiny_model(normalised)
    assert float(fov) > 0
    focal = 0.5 * width / math.tan(0.5 * math.radians(float(fov)))
    inverse = torch.nn.functional.interpolate(
        canonical * width / focal, size=(height, width), mode="bilinear"
    )
    expected = 1 / inverse.clamp(1e-4, 1e4)[0, 0]

    pred = tiny_model.infer(rgb)
    assert isinstance(pred, Prediction)
    assert pred.depth.shape == (height, width) and pred.depth.dtype == torch.float32
    assert pred.focal_source == "predicted"
    assert pred.focal_px == pytest.approx(focal, rel=1e-5)
    assert pred.predicted_fov_deg == pytest.approx(float(fov), rel=1e-6)
    torch.testing.assert_close(pred.depth, expected, rtol=1e-5, atol=0)
    torch.testing.assert_close(pred.inverse_depth, 1 / pred.depth)
    assert (pred.depth < 1e4).float().mean() > 0.2  # not just the clamp


def test_a_non_positive_predicted_fov_still_gives_a_usable_focal(tiny_model, data_dir):
    with pytest.warns(UserWarning, match="outside"):
        pred = tiny_model.infer(data_dir / "leuvenA.jpg", use_exif=False)
    assert pred.predicted_fov_deg < 0  # these random weights: the raw head output is reported as is
    assert pred.focal_source == "predicted" and 0 < pred.focal_px < float("inf")
    assert torch.isfinite(pred.depth).all() and (pred.depth > 0).all()


def test_input_types_agree(tiny_model, rgb, tmp_path):
    path = tmp_path / "image.png"
    Image.fromarray(rgb).save(path)
    tensor = torch.from_numpy(rgb).permute(2, 0, 1)
    reference = tiny_model.infer(rgb, f_px=100.0).depth
    for image in (
        str(path),
        path,
        Image.fromarray(rgb),
        tensor,
        tensor.float() / 255,
        rgb.astype(np.float32) / 255,
    ):
        torch.testing.assert_close(tiny_model.infer(image, f_px=100.0).depth, reference)


def test_batches(tiny_model, rgb):
    batch = torch.stack([torch.from_numpy(rgb).permute(2, 0, 1)] * 2)
    pred = tiny_model.infer(batch, f_px=[100.0, 200.0])
    assert pred.depth.shape == (2, *rgb.shape[:2]) and pred.batched and len(pred) == 2
    assert pred.focal_px.tolist() == [100.0, 200.0] and pred.focal_source == ["user", "user"]
    assert pred.intrinsics.shape == (2, 3, 3)
    # Depth scales with focal length: the same image at twice the focal is twice as far.
    unclamped = pred.depth[1] < 1e4
    assert unclamped.float().mean() > 0.5
    torch.testing.assert_close(pred.depth[1][unclamped], 2 * pred.depth[0][unclamped], rtol=1e-5, atol=0)
    single = pred[1]
    assert single.focal_px == 200.0 and single.depth.shape == rgb.shape[:2]
    listed = tiny_model.infer([rgb, rgb])
    assert isinstance(listed, list) and [p.focal_source for p in listed] == ["predicted"] * 2
    torch.testing.assert_close(listed[1].depth, listed[0].depth)


def test_a_list_of_different_sizes_is_one_batch_with_each_image_at_its_own_size(tiny_model, rgb, monkeypatch):
    """Every image is resized to the network input, so images of any sizes share a forward pass."""
    small = rgb[:40, :50].copy()
    tall = np.ascontiguousarray(rgb.transpose(1, 0, 2))
    calls = []
    forward = type(tiny_model).forward

    def counting_forward(self, x):
        calls.append(x.shape[0])
        return forward(self, x)

    monkeypatch.setattr(type(tiny_model), "forward", counting_forward)
    preds = tiny_model.infer([rgb, small, tall], f_px=[100.0, 80.0, 60.0])
    assert calls == [3]
    assert [p.depth.shape for p in preds] == [(60, 80), (40, 50), (80, 60)]
    assert [p.focal_px for p in preds] == [100.0, 80.0, 60.0]
    assert [tuple(p.intrinsics[:2, 2].tolist()) for p in preds] == [(39.5, 29.5), (24.5, 19.5), (29.5, 39.5)]
    # Each equals the image predicted on its own (up to float32 kernels that differ with batch size).
    for image, focal, pred in zip([rgb, small, tall], [100.0, 80.0, 60.0], preds, strict=True):
        torch.testing.assert_close(pred.depth, tiny_model.infer(image, f_px=focal).depth, rtol=1e-3, atol=0)
    calls.clear()
    tiny_model.infer([rgb, small, tall], f_px=100.0, batch_size=2)
    assert calls == [2, 1]


def test_camera_inputs(tiny_model, rgb):
    height, width = rgb.shape[:2]
    by_fov = tiny_model.infer(rgb, fov_deg=60.0)
    assert by_fov.focal_source == "user"
    assert by_fov.focal_px == pytest.approx(fov_to_focal(60.0, width), rel=1e-6)
    assert by_fov.fov_deg == pytest.approx(60.0, rel=1e-5)
    torch.testing.assert_close(
        by_fov.intrinsics,
        torch.tensor(
            [[by_fov.focal_px, 0, (width - 1) / 2], [0, by_fov.focal_px, (height - 1) / 2], [0, 0, 1]]
        ),
    )
    K = np.array([[90.0, 0, 30.0], [0, 95.0, 20.0], [0, 0, 1]])
    by_k = tiny_model.infer(rgb, K=K)
    assert by_k.focal_px == 90.0 and by_k.focal_source == "user"
    np.testing.assert_allclose(by_k.intrinsics.numpy(), K)
    torch.testing.assert_close(by_k.depth, tiny_model.infer(rgb, f_px=90.0).depth)
    with pytest.raises(ValueError, match="at most one"):
        tiny_model.infer(rgb, f_px=100.0, fov_deg=60.0)
    with pytest.raises(ValueError, match="positive"):
        tiny_model.infer(rgb, f_px=-1.0)


def test_exif_focal_is_used_unless_overridden(tiny_model, data_dir):
    path = data_dir / "leuvenA.jpg"
    exif_focal = focal_from_35mm(29, 751, 563)
    pred = tiny_model.infer(path)
    assert pred.focal_source == "exif" and pred.focal_px == pytest.approx(exif_focal, rel=1e-6)
    assert tiny_model.infer(path, f_px=500.0).focal_source == "user"
    assert tiny_model.infer(path, use_exif=False).focal_source == "predicted"


def test_model_without_fov_head_needs_a_focal(rgb):
    config = DepthProConfig(**{**DepthProConfig.preset("tiny").__dict__, "fov_encoder": None})
    model = DepthPro(config).eval()
    assert model.fov is None
    with pytest.raises(ValueError, match="no FOV head"):
        model.infer(rgb)
    assert model.infer(rgb, f_px=50.0).predicted_fov_deg is None


def test_half_precision_is_refused_on_cpu(tiny_state_dict):
    with pytest.raises(ValueError, match="not supported on CPU"):
        DepthPro.from_state_dict(tiny_state_dict, device="cpu", precision="fp16")
    model = DepthPro.from_state_dict(tiny_state_dict, device="cpu", precision="auto")
    assert model.dtype == torch.float32 and model.device.type == "cpu"


def test_tiny_image_and_unsupported_inputs(tiny_model):
    pred = tiny_model.infer(np.full((1, 1, 3), 128, dtype=np.uint8))
    assert pred.depth.shape == (1, 1) and torch.isfinite(pred.depth).all()
    with pytest.raises(ValueError, match="tensor"):
        tiny_model.infer(torch.zeros(4, 5))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        tiny_model.infer(torch.full((3, 8, 8), 200.0))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        tiny_model.infer(torch.rand(3, 8, 8) * 2 - 1)  # already normalised: would be normalised twice
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        tiny_model.infer(np.full((8, 8, 3), 200.0, dtype=np.float32))
    with pytest.raises(ValueError, match="between 0 and 180"):
        tiny_model.infer(np.zeros((8, 8, 3), np.uint8), fov_deg=180.0)
    with pytest.raises(TypeError):
        tiny_model.infer(42)


def test_results_are_ordinary_tensors(tiny_model, rgb):
    pred = tiny_model.infer(rgb, f_px=100.0)
    pred.depth[pred.depth > 50] = 0  # in-place edits work (no inference-mode tensors)
    pred.intrinsics[0, 2] = 5.0
    assert not pred.depth.requires_grad
