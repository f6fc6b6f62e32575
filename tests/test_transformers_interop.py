"""transformers' own DepthPro against this package: key layouts, configs, outputs.

The slow test pins the meaning of every key of the transformers layout (shapes alone cannot tell
``convs.3`` from ``convs.4``): the deterministic weights are mapped to that layout, run through
``transformers.DepthProForDepthEstimation`` and compared with the reference's outputs, and the
library's converter maps the same file back onto Apple's tensors exactly. Slow: one 1536² forward.

The fast tests check the library's way there (``to_transformers_state_dict``, the config mapping of
``transformers_depth_pro_config``) and that ``transformers_depth_pro`` gives the outputs of our forward
on the smallest architecture transformers can express (tiny with transformers' 32 head features).
"""

import dataclasses

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from conftest import read_tsv_shapes
from deterministic_weights import deterministic_state_dict
from metricdepth import DepthPro, DepthProConfig, load_image
from metricdepth.models.depth_pro.loading import state_dict_shapes
from metricdepth.models.depth_pro.weights import (
    convert_hf_state_dict,
    to_transformers_state_dict,
    transformers_depth_pro,
    transformers_depth_pro_config,
)
from test_parity import rel_error
from test_weights import APPLE, meta_tensors, to_hf

transformers = pytest.importorskip("transformers")

TOLERANCE = 1e-4


@pytest.mark.slow
def test_transformers_depth_pro_reproduces_the_reference(data_dir):
    vit = dict(
        hidden_size=1024,
        num_hidden_layers=24,
        num_attention_heads=16,
        patch_size=16,
        image_size=384,
        use_mask_token=False,
    )
    config = transformers.DepthProConfig(
        use_fov_model=True,
        patch_model_config=transformers.Dinov2Config(**vit),
        image_model_config=transformers.Dinov2Config(**vit),
        fov_model_config=transformers.Dinov2Config(**vit),
    )
    with torch.device("meta"):
        model = transformers.DepthProForDepthEstimation(config)
    keys = model.state_dict().keys()
    version = 5 if any(".q_proj." in key for key in keys) else 4
    assert {k: tuple(v.shape) for k, v in model.state_dict().items()} == read_tsv_shapes(
        f"depth_pro_hf_state_dict_transformers{version}.tsv"
    )

    apple = deterministic_state_dict(read_tsv_shapes("depth_pro_state_dict.tsv"))
    hf_state = {key: value.float() for key, value in to_hf(apple, version).items()}
    back = convert_hf_state_dict(hf_state)
    assert back.keys() == apple.keys() and all(torch.equal(back[k], apple[k].float()) for k in apple)

    model.load_state_dict(hf_state, strict=True, assign=True)
    model = model.float().eval()
    image = load_image(data_dir / "motorcycle_left.png")
    x = torch.from_numpy(image.rgb.copy()).permute(2, 0, 1)[None].float() / 255
    x = F.interpolate(x * 2 - 1, size=(1536, 1536), mode="bilinear", align_corners=False)
    with torch.no_grad():
        out = model(pixel_values=x)
    canonical = out.predicted_depth.reshape(1, 1, 1536, 1536)

    golden = np.load(data_dir / "golden_motorcycle_left.npz")

    assert (
        rel_error(F.avg_pool2d(canonical, 4)[0, 0].numpy(), golden["canonical_inverse_depth_pool4"])
        <= TOLERANCE
    )
    crop = canonical[0, 0, 640:896, 640:896].numpy()
    assert rel_error(crop, golden["canonical_inverse_depth_center_crop"]) <= TOLERANCE
    fov = float(out.field_of_view.reshape(-1)[0])
    assert abs(fov - float(golden["fov_deg"])) <= TOLERANCE * float(golden["fov_deg"])


# ----------------------------------------------------------------------------------- fast tests
def shapes(state: dict) -> dict:
    return {key: tuple(value.shape) for key, value in state.items()}


@pytest.mark.parametrize("version", [4, 5])
def test_to_transformers_state_dict_is_the_inverse_of_the_converter(tiny_state_dict, version):
    hf = to_transformers_state_dict(tiny_state_dict, version)
    expected = to_hf(tiny_state_dict, version)  # the test's independent mapping
    assert hf.keys() == expected.keys()
    assert all(torch.equal(hf[key], expected[key]) for key in expected)
    back = convert_hf_state_dict(hf)
    assert back.keys() == tiny_state_dict.keys()
    assert all(torch.equal(back[key], tiny_state_dict[key]) for key in tiny_state_dict)
    # Full size: transformers' own listing of DepthProForDepthEstimation, key for key.
    listing = read_tsv_shapes(f"depth_pro_hf_state_dict_transformers{version}.tsv")
    assert shapes(to_transformers_state_dict(meta_tensors(APPLE), version)) == listing


def test_default_version_is_the_installed_transformers(tiny_state_dict):
    installed = 5 if int(transformers.__version__.split(".")[0]) >= 5 else 4
    assert to_transformers_state_dict(tiny_state_dict).keys() == to_hf(tiny_state_dict, installed).keys()
    with pytest.raises(ValueError, match="choose 4 or 5"):
        to_transformers_state_dict(tiny_state_dict, 3)


@pytest.mark.parametrize("preset", ["depth-pro", "vits"])
def test_transformers_config_builds_the_same_architecture(preset):
    config = DepthProConfig.preset(preset)
    with torch.device("meta"):
        hf = transformers.DepthProForDepthEstimation(transformers_depth_pro_config(config))
    ours = meta_tensors(state_dict_shapes(DepthPro, config))
    assert shapes(to_transformers_state_dict(ours)) == shapes(hf.state_dict())


def test_inexpressible_configs_are_refused_with_the_reason():
    with pytest.raises(ValueError, match=r"'tiny'.*head_features=8.*hard-codes 32"):
        transformers_depth_pro_config(DepthProConfig.preset("tiny"))
    odd = dataclasses.replace(DepthProConfig.preset("depth-pro"), encoder_feature_dims=(128, 512, 1024, 1024))
    with pytest.raises(ValueError, match=r"encoder_feature_dims\[0\]=128 differs from decoder_features=256"):
        transformers_depth_pro_config(odd)


EXPRESSIBLE_TINY = dataclasses.replace(DepthProConfig.preset("tiny"), head_features=32, name="tiny-head32")
"""The tiny preset with the 32 head features transformers hard-codes: the smallest config it can express."""

OUTPUT_TOLERANCE = 1e-5
"""float32: max |Δ canonical inverse depth| / max |ours|, and |Δ FOV| / max(1°, |FOV|)."""


def test_transformers_depth_pro_gives_our_outputs():
    ours = DepthPro.from_state_dict(
        deterministic_state_dict(state_dict_shapes(DepthPro, EXPRESSIBLE_TINY)),
        config=EXPRESSIBLE_TINY,
        device="cpu",
    )
    hf = transformers_depth_pro(ours)
    assert not hf.training and next(hf.parameters()).dtype == torch.float32
    # Copies: no tensor of one model shares memory with the other's.
    ours_pointers = {value.data_ptr() for value in ours.state_dict().values()}
    assert not ours_pointers & {value.data_ptr() for value in hf.state_dict().values()}

    generator = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, ours.img_size, ours.img_size, generator=generator) * 2 - 1  # normalised, [-1, 1]
    with torch.inference_mode():
        canonical, fov = ours(x)
        out = hf(pixel_values=x)
    # transformers' predicted_depth is the raw head output: canonical inverse depth, (B, S, S).
    assert out.predicted_depth.shape == (2, ours.img_size, ours.img_size)
    assert canonical.amax() > 0 and (canonical > 0).float().mean() > 0.5  # not a degenerate map
    error = (out.predicted_depth - canonical[:, 0]).abs().amax() / canonical.abs().amax()
    assert error <= OUTPUT_TOLERANCE
    assert out.field_of_view.shape == fov.shape == (2,)
    assert ((out.field_of_view - fov).abs() <= OUTPUT_TOLERANCE * fov.abs().clamp(min=1.0)).all()
