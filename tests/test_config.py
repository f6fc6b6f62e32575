import pytest
import torch

from conftest import read_tsv_shapes
from metricdepth import PRESETS, DepthPro, DepthProConfig


def meta_model(name: str) -> DepthPro:
    with torch.device("meta"):
        return DepthPro(DepthProConfig.preset(name))


def test_depth_pro_preset_has_the_official_checkpoint_layout():
    """Keys and shapes equal Apple's depth_pro.pt, built on the meta device (no allocation)."""
    model = meta_model("depth-pro")
    ours = {key: tuple(value.shape) for key, value in model.state_dict().items()}
    assert ours == read_tsv_shapes("depth_pro_state_dict.tsv")
    assert len(ours) == 1119
    assert sum(p.numel() for p in model.parameters()) == 951_991_330
    assert next(model.parameters()).device.type == "meta"


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_presets_share_the_structure(name):
    model = meta_model(name)
    config = model.config
    assert config.img_size == 4 * config.tile_size
    reference_prefixes = {
        key.split(".")[0] + "." + key.split(".")[1] for key in read_tsv_shapes("depth_pro_state_dict.tsv")
    }
    prefixes = {key.split(".")[0] + "." + key.split(".")[1] for key in model.state_dict()}
    assert prefixes == reference_prefixes


def test_config_json_roundtrip():
    for config in PRESETS.values():
        assert DepthProConfig.from_json(config.to_json()) == config


def test_invalid_configs_are_rejected():
    tiny = DepthProConfig.preset("tiny")
    with pytest.raises(ValueError, match="hook_block_ids"):
        DepthProConfig(**{**tiny.__dict__, "hook_block_ids": (1, 9)})
    with pytest.raises(ValueError, match="multiple of 8"):
        DepthProConfig(**{**tiny.__dict__, "patch_encoder": type(tiny.patch_encoder)(64, 2, 2, img_size=96)})
    with pytest.raises(ValueError, match="unknown Depth Pro preset"):
        DepthProConfig.preset("huge")
