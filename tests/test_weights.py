import re

import pytest
import torch
from safetensors.torch import save_file

from conftest import read_tsv_shapes
from metricdepth import CheckpointError, DepthPro, DepthProConfig
from metricdepth.models.depth_pro.loading import infer_config
from metricdepth.models.depth_pro.weights import convert_hf_state_dict

APPLE = read_tsv_shapes("depth_pro_state_dict.tsv")


def to_hf(state: dict, version: int) -> dict:
    """Apple keys → transformers keys (written independently of the library's converter)."""
    out = {}
    vit_prefixes = {
        "encoder.patch_encoder.": "depth_pro.encoder.patch_encoder.model.",
        "encoder.image_encoder.": "depth_pro.encoder.image_encoder.model.",
        "fov.encoder.0.": "fov_model.fov_encoder.model.",
    }
    for key, value in state.items():
        prefix = next((p for p in vit_prefixes if key.startswith(p)), None)
        if prefix is not None:
            rest, hf = key[len(prefix) :], vit_prefixes[prefix]
            simple = {"cls_token": "embeddings.cls_token", "pos_embed": "embeddings.position_embeddings"}
            if rest in simple:
                out[hf + simple[rest]] = value
            elif rest.startswith("patch_embed.proj."):
                out[hf + "embeddings.patch_embeddings.projection." + rest.split(".")[-1]] = value
            elif rest.startswith("norm."):
                out[hf + "layernorm." + rest.split(".")[-1]] = value
            else:
                _, block, *tail = rest.split(".")
                layer = f"{hf}encoder.layer.{block}."
                tail = ".".join(tail)
                if tail.startswith("attn.qkv."):
                    kind = tail.split(".")[-1]
                    names = ("query", "key", "value") if version == 4 else ("q_proj", "k_proj", "v_proj")
                    stem = "attention.attention." if version == 4 else "attention."
                    for name, part in zip(names, value.chunk(3, dim=0), strict=True):
                        out[f"{layer}{stem}{name}.{kind}"] = part
                elif tail.startswith("attn.proj."):
                    stem = "attention.output.dense." if version == 4 else "attention.o_proj."
                    out[layer + stem + tail.split(".")[-1]] = value
                elif tail.endswith(".gamma"):
                    out[layer + f"layer_scale{tail[2]}.lambda1"] = value
                else:
                    out[layer + tail] = value
            continue
        parts = key.split(".")
        if key.startswith("encoder.upsample_lowres."):
            new = "depth_pro.neck.feature_upsample.image_block.layers.0." + parts[-1]
        elif re.match(r"encoder\.upsample\d\.", key):
            index = 2 - int(parts[1][-1])
            new = f"depth_pro.neck.feature_upsample.scaled_images.{index}.layers.{parts[2]}.{parts[3]}"
        elif key.startswith("encoder.upsample_latent"):
            index = 1 - int(parts[1][-1])
            new = f"depth_pro.neck.feature_upsample.intermediate.{index}.layers.{parts[2]}.{parts[3]}"
        elif key.startswith("encoder.fuse_lowres."):
            new = "depth_pro.neck.fuse_image_with_low_res." + parts[-1]
        elif key.startswith("decoder.convs."):
            new = f"depth_pro.neck.feature_projection.projections.{4 - int(parts[2])}.{parts[3]}"
        elif key.startswith("decoder.fusions."):
            index = int(parts[2])
            stage = "fusion_stage.final." if index == 0 else f"fusion_stage.intermediate.{4 - index}."
            tail = ".".join(parts[3:])
            tail = re.sub(r"resnet(\d)\.residual\.1\.", r"residual_layer\1.convolution1.", tail)
            tail = re.sub(r"resnet(\d)\.residual\.3\.", r"residual_layer\1.convolution2.", tail)
            new = stage + tail.replace("out_conv.", "projection.")
        elif key.startswith("head."):
            new = f"head.layers.{parts[1]}.{parts[2]}"
        elif key.startswith("fov.encoder.1."):
            new = "fov_model.fov_encoder.neck." + parts[-1]
        elif key.startswith("fov.downsample.0."):
            new = "fov_model.conv." + parts[-1]
        elif key.startswith("fov.head."):
            new = f"fov_model.head.layers.{parts[2]}.{parts[3]}"
        else:
            raise AssertionError(key)
        out[new] = value
    return out


def meta_tensors(shapes):
    return {key: torch.empty(shape, device="meta") for key, shape in shapes.items()}


@pytest.mark.parametrize("version", [4, 5])
def test_hf_layout_converts_to_apple_layout(version):
    hf_shapes = read_tsv_shapes(f"depth_pro_hf_state_dict_transformers{version}.tsv")
    assert len(hf_shapes) == 1407
    # The test's own mapping reproduces transformers' listing from Apple's ...
    assert {k: tuple(v.shape) for k, v in to_hf(meta_tensors(APPLE), version).items()} == hf_shapes
    # ... and the library maps transformers' listing back onto Apple's exactly.
    converted = convert_hf_state_dict(meta_tensors(hf_shapes))
    assert {k: tuple(v.shape) for k, v in converted.items()} == APPLE


def test_config_is_inferred_from_shapes(tiny_state_dict):
    assert infer_config(DepthPro, meta_tensors(APPLE)).name == "depth-pro"
    assert infer_config(DepthPro, tiny_state_dict).name == "tiny"
    without_fov = {k: v for k, v in tiny_state_dict.items() if not k.startswith("fov.")}
    config = infer_config(DepthPro, without_fov)
    assert config.name == "tiny" and not config.use_fov_head
    with pytest.raises(CheckpointError, match="match no Depth Pro preset"):
        infer_config(DepthPro, {"x": torch.zeros(3)})


def assert_same_weights(model, state):
    ours = model.state_dict()
    assert ours.keys() == state.keys()
    for key, value in state.items():
        torch.testing.assert_close(ours[key], value.to(ours[key].dtype), rtol=0, atol=0, msg=key)


def test_apple_format_pt_loads_with_weights_only(tmp_path, tiny_state_dict):
    path = tmp_path / "depth_pro.pt"
    torch.save(dict(tiny_state_dict), path)  # plain dict of float16 tensors, like Apple's file
    model = DepthPro.from_pretrained(path, device="cpu")
    assert model.config.name == "tiny" and model.dtype == torch.float32
    assert_same_weights(model, tiny_state_dict)
    # A folder holding the file works too.
    assert_same_weights(DepthPro.from_pretrained(tmp_path, device="cpu"), tiny_state_dict)


@pytest.mark.parametrize("version", [4, 5])
def test_transformers_safetensors_load(tmp_path, tiny_state_dict, version):
    path = tmp_path / "model.safetensors"
    save_file({k: v.contiguous() for k, v in to_hf(tiny_state_dict, version).items()}, path)
    assert_same_weights(DepthPro.from_pretrained(path, device="cpu"), tiny_state_dict)


def test_training_checkpoint_wrappers(tmp_path, tiny_state_dict):
    path = tmp_path / "train.pt"
    state = {"module." + k: v for k, v in tiny_state_dict.items()}
    torch.save({"model": state, "config": DepthProConfig.preset("tiny").to_dict(), "step": 7}, path)
    assert_same_weights(DepthPro.from_pretrained(path, device="cpu"), tiny_state_dict)


def test_save_pretrained_roundtrip(tmp_path, tiny_model):
    path = tiny_model.save_pretrained(tmp_path / "model.safetensors")
    loaded = DepthPro.from_pretrained(path, device="cpu")
    assert loaded.config == tiny_model.config
    assert_same_weights(loaded, tiny_model.state_dict())
    with pytest.raises(ValueError, match="safetensors"):
        tiny_model.save_pretrained(tmp_path / "model.pt")


@pytest.fixture
def offline(monkeypatch):
    """huggingface_hub in offline mode (it reads HF_HUB_OFFLINE once, at import)."""
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)


def test_hub_download_uses_the_hugging_face_cache(tmp_path, tiny_state_dict, offline):
    """A repo id resolves through huggingface_hub; here from a populated cache, offline."""
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "models--apple--DepthPro"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    (repo / "snapshots" / commit).mkdir(parents=True)
    torch.save(dict(tiny_state_dict), repo / "snapshots" / commit / "depth_pro.pt")
    model = DepthPro.from_pretrained("apple/DepthPro", cache_dir=tmp_path, device="cpu")
    assert_same_weights(model, tiny_state_dict)


def test_offline_without_weights_explains_what_to_download(tmp_path, offline):
    with pytest.raises(CheckpointError) as info:
        DepthPro.from_pretrained("apple/DepthPro", cache_dir=tmp_path, device="cpu")
    message = str(info.value)
    assert "hf download apple/DepthPro depth_pro.pt" in message and "not cached" in message
    assert "--checkpoint" in message and "from_pretrained(" in message


def test_bad_files_give_clear_errors(tmp_path, tiny_state_dict, monkeypatch):
    with pytest.raises(CheckpointError, match="not found"):
        DepthPro.from_pretrained(tmp_path / "missing.pt")
    (tmp_path / "checkpoints").mkdir()
    monkeypatch.chdir(tmp_path)
    # "checkpoints/x" with a local checkpoints/ folder is a missing file, not the Hub repo of that name.
    with pytest.raises(CheckpointError, match="not found"):
        DepthPro.from_pretrained("checkpoints/x")
    broken = tmp_path / "broken.pt"
    broken.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match=r"broken\.pt"):
        DepthPro.from_pretrained(broken)
    partial = tmp_path / "partial.pt"
    torch.save({k: v for i, (k, v) in enumerate(tiny_state_dict.items()) if i}, partial)
    with pytest.raises(CheckpointError, match="preset"):
        DepthPro.from_pretrained(partial)
    with pytest.raises(CheckpointError, match="do not fit"):
        DepthPro.from_pretrained(partial, config="tiny")
