"""transformers' own DepthPro agrees with Apple's golden outputs on weights in its layout.

This pins the meaning of every key of the transformers layout (shapes alone cannot tell
``convs.3`` from ``convs.4``): the deterministic weights are mapped to that layout, run through
``transformers.DepthProForDepthEstimation`` and compared with the reference's outputs, and the
library's converter maps the same file back onto Apple's tensors exactly. Slow: one 1536² forward.
"""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from conftest import read_tsv_shapes
from deterministic_weights import deterministic_state_dict
from metricdepth import load_image
from metricdepth.models.depth_pro.weights import convert_hf_state_dict
from test_parity import rel_error
from test_weights import to_hf

transformers = pytest.importorskip("transformers")
pytestmark = pytest.mark.slow

TOLERANCE = 1e-4


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
