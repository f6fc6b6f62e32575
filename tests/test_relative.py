"""Relative depth models (RSA's frozen backbones): Depth Pro, transformers and plain functions.

Offline and fast: the project's shipped tiny relative model, and a tiny random Depth Anything
built with transformers' config classes and saved to a temporary folder.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from metricdepth import DepthPro
from metricdepth.inference import DepthSource, network_input
from metricdepth.models.relative import (
    CallableRelative,
    DepthProRelative,
    RelativeDepthModel,
    TransformersRelative,
    load_relative,
)
from metricdepth.prediction import Prediction

ROOT = Path(__file__).parents[1]
TINY_RELATIVE = ROOT / "examples" / "weights" / "tiny-relative.safetensors"
TINY_RELATIVE_SPEC = "examples/weights/tiny-relative.safetensors"  # relative to the repo root


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    """Never reach for the Hub, even when the test run did not set HF_HUB_OFFLINE."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def random_image(height: int, width: int, seed: int = 0) -> torch.Tensor:
    """(3, H, W) uint8 smooth-ish RGB image."""
    generator = torch.Generator().manual_seed(seed)
    coarse = torch.rand(1, 3, 4, 5, generator=generator)
    image = F.interpolate(coarse, size=(height, width), mode="bilinear", align_corners=False)[0]
    image = image + 0.1 * torch.rand(3, height, width, generator=generator)
    return (image.clamp(0, 1) * 255).round().to(torch.uint8)


def assert_relative(prediction: Prediction, size: tuple[int, int]) -> None:
    assert isinstance(prediction, Prediction)
    assert prediction.kind == "relative" and prediction.depth is None and not prediction.is_metric
    assert prediction.focal_px is None and prediction.intrinsics is None
    y = prediction.inverse_depth
    assert tuple(y.shape) == size and y.dtype == torch.float32
    assert bool(torch.isfinite(y).all()) and float(y.min()) >= 0.0


# ------------------------------------------------------------------------------------ Depth Pro
@pytest.fixture(scope="module")
def depth_pro_relative() -> RelativeDepthModel:
    """The shipped model, loaded the way the CLI does: by a path relative to the repo root."""
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(ROOT)
        return load_relative(TINY_RELATIVE_SPEC, device="cpu")


@pytest.fixture(scope="module")
def tiny_relative_network() -> DepthPro:
    return DepthPro.from_pretrained(TINY_RELATIVE, device="cpu")


def test_depth_pro_relative_loads_from_a_relative_path(depth_pro_relative):
    assert TINY_RELATIVE.is_file()
    assert isinstance(depth_pro_relative, DepthProRelative)
    assert depth_pro_relative.name == f"depth-pro:{TINY_RELATIVE_SPEC}"
    assert depth_pro_relative.device == torch.device("cpu")
    assert isinstance(depth_pro_relative, DepthSource)
    network = depth_pro_relative.model
    assert not network.training and not any(p.requires_grad for p in network.parameters())
    assert network.fov is None  # the shipped relative model has no FOV head


@pytest.mark.parametrize("size", [(48, 80), (91, 37)])
def test_depth_pro_relative_matches_manual_computation(depth_pro_relative, tiny_relative_network, size):
    image = random_image(*size, seed=size[0])
    prediction = depth_pro_relative.infer(image)
    assert_relative(prediction, size)

    network = tiny_relative_network
    x = network_input(image, network.img_size, torch.device("cpu"), torch.float32)[None]
    with torch.no_grad():
        canonical, fov = network(x, with_fov=False)
    assert fov is None and canonical.shape == (1, 1, network.img_size, network.img_size)
    expected = F.interpolate(canonical, size=size, mode="bilinear", align_corners=False)[0, 0].clamp(min=0)
    torch.testing.assert_close(prediction.inverse_depth, expected, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(depth_pro_relative.inverse_depth(image), expected, rtol=1e-5, atol=1e-6)
    assert float(expected.std()) > 0  # a real map, not a constant


def test_depth_pro_relative_containers_and_camera_keywords(depth_pro_relative):
    small, large = random_image(40, 64, seed=1), random_image(72, 50, seed=2)
    single = depth_pro_relative.infer(small)
    listed = depth_pro_relative.infer([small, large])
    assert isinstance(listed, list) and len(listed) == 2
    assert_relative(listed[0], (40, 64))
    assert_relative(listed[1], (72, 50))
    torch.testing.assert_close(listed[0].inverse_depth, single.inverse_depth)

    batch = torch.stack([small, random_image(40, 64, seed=3)])
    batched = depth_pro_relative.infer(batch)
    assert isinstance(batched, Prediction) and batched.batched and len(batched) == 2
    assert batched.kind == "relative" and batched.depth is None
    assert tuple(batched.inverse_depth.shape) == (2, 40, 64)
    torch.testing.assert_close(batched[0].inverse_depth, single.inverse_depth)
    assert_relative(batched[1], (40, 64))

    # float [0, 1] and an (H, W, 3) array are the same image as the uint8 tensor
    as_float = depth_pro_relative.infer(small.float() / 255)
    torch.testing.assert_close(as_float.inverse_depth, single.inverse_depth, rtol=1e-5, atol=1e-6)
    as_array = depth_pro_relative.infer(small.permute(1, 2, 0).numpy())
    torch.testing.assert_close(as_array.inverse_depth, single.inverse_depth)

    # camera keywords are accepted and ignored; anything else is a TypeError
    with_camera = depth_pro_relative.infer(
        small, f_px=500.0, focal="auto", use_exif=False, batch_size=2, K=None, fov_deg=None
    )
    torch.testing.assert_close(with_camera.inverse_depth, single.inverse_depth)
    with pytest.raises(TypeError, match="fpx"):
        depth_pro_relative.infer(small, fpx=500.0)


def test_depth_pro_module_and_run_folder(tiny_relative_network, tmp_path):
    wrapped = load_relative(tiny_relative_network)
    assert isinstance(wrapped, DepthProRelative) and wrapped.model is tiny_relative_network
    assert load_relative(wrapped) is wrapped

    run = tmp_path / "run" / "last"  # a training run's folder holding model.safetensors
    run.mkdir(parents=True)
    tiny_relative_network.save_pretrained(run / "model.safetensors")
    from_folder = load_relative(run, device="cpu")
    assert isinstance(from_folder, DepthProRelative) and from_folder.name == f"depth-pro:{run}"
    prefixed = load_relative(f"depth-pro:{TINY_RELATIVE}", device="cpu")
    image = random_image(33, 45)
    torch.testing.assert_close(from_folder.inverse_depth(image), prefixed.inverse_depth(image))


# --------------------------------------------------------------------------------- transformers
IMAGE_MEAN = [0.3, 0.4, 0.5]
IMAGE_STD = [0.2, 0.25, 0.3]


def tiny_depth_anything(depth_estimation_type: str = "relative"):
    """A 24k-parameter random Depth Anything (DINOv2 backbone, 14-px patches) and its processor."""
    transformers = pytest.importorskip("transformers")
    backbone = transformers.Dinov2Config(
        hidden_size=16,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=32,
        patch_size=14,
        image_size=28,
        out_indices=[1, 2],
        reshape_hidden_states=False,
    )
    config = transformers.DepthAnythingConfig(
        backbone_config=backbone,
        reassemble_hidden_size=16,
        neck_hidden_sizes=[8, 16],
        reassemble_factors=[2, 1],
        fusion_hidden_size=8,
        head_hidden_size=4,
        patch_size=14,
        depth_estimation_type=depth_estimation_type,
    )
    torch.manual_seed(0)
    model = transformers.AutoModelForDepthEstimation.from_config(config)
    with torch.no_grad():  # default init gives ~1e-8 outputs; these give O(1) values, about half ReLU'd to 0
        for parameter in model.parameters():
            parameter.normal_(0.0, 0.3)
        model.head.conv3.bias.fill_(2.0)
    processor = transformers.DPTImageProcessor(
        size={"height": 56, "width": 56},
        keep_aspect_ratio=True,
        ensure_multiple_of=14,
        image_mean=IMAGE_MEAN,
        image_std=IMAGE_STD,
        resample=3,
    )
    return model.eval(), processor


@pytest.fixture(scope="module")
def hf_folder(tmp_path_factory):
    model, processor = tiny_depth_anything()
    folder = tmp_path_factory.mktemp("hf") / "tiny-depth-anything"
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder, model, processor


def test_transformers_relative_matches_manual_computation(hf_folder):
    folder, model, processor = hf_folder
    relative = load_relative(folder, device="cpu")
    assert isinstance(relative, TransformersRelative) and relative.name == f"hf:{folder}"
    # the model's own processor (class and normalisation) came from the folder
    assert type(relative.processor).__name__ == "DPTImageProcessor"
    assert list(relative.processor.image_mean) == IMAGE_MEAN
    assert list(relative.processor.image_std) == IMAGE_STD
    assert not relative.model.training and not any(p.requires_grad for p in relative.model.parameters())

    size = (37, 61)  # non-square: the processor keeps the aspect ratio (28 × 56 network input)
    image = random_image(*size, seed=5)
    prediction = relative.infer(image)
    assert_relative(prediction, size)

    pixel_values = processor(images=image.permute(1, 2, 0).numpy(), return_tensors="pt")["pixel_values"]
    assert tuple(pixel_values.shape) == (1, 3, 28, 56)
    with torch.no_grad():
        raw = model(pixel_values=pixel_values).predicted_depth
    expected = F.interpolate(raw[:, None], size=size, mode="bicubic", align_corners=False)[0, 0]
    expected = expected.clamp(min=0)
    torch.testing.assert_close(prediction.inverse_depth, expected, rtol=1e-5, atol=1e-5)
    assert float(expected.max()) > 0.1 and float(expected.std()) > 0  # a real map

    by_prefix = load_relative(f"hf:{folder}", device="cpu")
    assert isinstance(by_prefix, TransformersRelative) and by_prefix.name == f"hf:{folder}"
    torch.testing.assert_close(by_prefix.inverse_depth(image), expected, rtol=1e-5, atol=1e-5)

    # another image size, and the list container
    other = random_image(50, 30, seed=6)
    listed = relative.infer([image, other])
    assert_relative(listed[0], size)
    assert_relative(listed[1], (50, 30))


def test_transformers_refuses_metric_and_non_depth_models(tmp_path):
    transformers = pytest.importorskip("transformers")
    model, processor = tiny_depth_anything(depth_estimation_type="metric")
    model.save_pretrained(tmp_path / "metric")
    processor.save_pretrained(tmp_path / "metric")
    with pytest.raises(ValueError, match="metric depth"):
        load_relative(tmp_path / "metric", device="cpu")

    transformers.Dinov2Config(hidden_size=16, num_hidden_layers=1, num_attention_heads=2).save_pretrained(
        tmp_path / "dinov2"
    )
    with pytest.raises(ValueError, match=r"dinov2.*not a depth estimation model"):
        load_relative(f"hf:{tmp_path / 'dinov2'}", device="cpu")


# ------------------------------------------------------------------------------------- callable
def test_callable_relative_mean_channel():
    relative = load_relative(lambda rgb: rgb.mean(axis=2), device="cpu")
    assert isinstance(relative, CallableRelative) and relative.name == "callable"
    image = random_image(21, 34, seed=7)
    prediction = relative.infer(image)
    assert_relative(prediction, (21, 34))
    expected = image.float().mean(dim=0)
    torch.testing.assert_close(prediction.inverse_depth, expected)

    seen = []
    CallableRelative(lambda rgb: seen.append(rgb) or np.ones(rgb.shape[:2]), device="cpu").infer(
        image.float() / 255
    )
    assert seen[0].dtype == np.uint8 and seen[0].shape == (21, 34, 3)
    np.testing.assert_array_equal(seen[0], image.permute(1, 2, 0).numpy())

    batched = relative.infer(torch.stack([image, image]))
    assert tuple(batched.inverse_depth.shape) == (2, 21, 34)


@pytest.mark.parametrize(
    ("function", "message"),
    [
        (lambda rgb: rgb.mean(axis=2)[:-1], r"shape \(20, 34\).*21×34"),
        (lambda rgb: rgb.astype(np.float32), r"shape \(21, 34, 3\)"),
        (lambda rgb: np.full(rgb.shape[:2], math.nan), "non-finite"),
        (lambda rgb: np.full(rgb.shape[:2], math.inf), "non-finite"),
        (lambda rgb: rgb.mean(axis=2) - 300.0, "negative"),
        (lambda rgb: "depth", "not an array|real numbers|shape"),
    ],
)
def test_callable_relative_checks_its_output(function, message):
    relative = CallableRelative(function, name="my-model", device="cpu")
    with pytest.raises(ValueError, match=message) as error:
        relative.infer(random_image(21, 34))
    assert "my-model" in str(error.value)


# --------------------------------------------------------------------------------------- errors
def test_load_relative_errors(tmp_path):
    missing = tmp_path / "nowhere" / "weights.safetensors"
    with pytest.raises(ValueError, match="no such file or folder") as error:
        load_relative(str(missing), device="cpu")
    assert str(missing) in str(error.value)
    with pytest.raises(ValueError, match=r"missing-model\.pt"):
        load_relative("missing-model.pt", device="cpu")

    unknown = "someone-offline/no-such-depth-model"
    with pytest.raises(ValueError, match=unknown) as error:
        load_relative(unknown, device="cpu")
    assert "Hub" in str(error.value)
    with pytest.raises(ValueError, match=f"hf:{unknown}"):
        load_relative(f"hf:{unknown}", device="cpu")
    with pytest.raises(ValueError, match="apple/DepthPro"):
        load_relative("apple/DepthPro", device="cpu")  # a Depth Pro id, not cached offline

    not_weights = tmp_path / "notes.txt"
    not_weights.write_text("hello")
    with pytest.raises(ValueError, match="not a weights file"):
        load_relative(not_weights, device="cpu")
    with pytest.raises(ValueError, match="empty"):
        load_relative("", device="cpu")
    with pytest.raises(TypeError, match="int"):
        load_relative(3, device="cpu")  # type: ignore[arg-type]
