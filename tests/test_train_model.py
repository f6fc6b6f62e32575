"""Training hooks of the Depth Pro network: FOV-free forward, gradient checkpointing, parameter groups,
frozen LayerNorms, and DINOv2 initialisation of the ViTs (tiny preset, 512² input, batch 1)."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from timm.models.vision_transformer import VisionTransformer

from metricdepth import DepthPro, DepthProConfig
from metricdepth.models.depth_pro import init as dinov2_init
from metricdepth.models.depth_pro.init import adapt_vit_state_dict, dinov2_state_dict, init_encoders
from metricdepth.models.depth_pro.model import PARAMETER_GROUPS
from metricdepth.models.depth_pro.weights import CheckpointError


def tiny(seed: int = 0, *, fov: bool = True) -> DepthPro:
    config = DepthProConfig.preset("tiny")
    if not fov:
        config = dataclasses.replace(config, fov_encoder=None)
    torch.manual_seed(seed)
    return DepthPro(config)


def example_input(model: DepthPro, seed: int = 1) -> torch.Tensor:
    size = model.img_size
    return torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def gradients(model: DepthPro, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """Gradients of a loss on both outputs (the FOV head's included), by parameter name."""
    model.zero_grad(set_to_none=True)
    depth, fov = model(x)
    (depth.square().mean() + fov.square().mean()).backward()
    return {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}


# --------------------------------------------------------------------------- forward without FOV
def test_forward_without_fov_skips_the_head_and_leaves_its_parameters_unused():
    model = tiny()
    x = example_input(model)
    depth, fov = model(x, with_fov=False)
    assert fov is None and depth.shape == (1, 1, 512, 512)
    (depth.square().mean() + depth.mean()).backward()
    fov_params = {f"fov.{name}" for name, _ in model.fov.named_parameters()}
    for name, p in model.named_parameters():
        if p.requires_grad:  # what DDP tracks
            assert (p.grad is None) == (name in fov_params), name
    with torch.no_grad():
        default_depth, default_fov = model.eval()(x)
        torch.testing.assert_close(model(x, with_fov=False)[0], default_depth, rtol=0, atol=0)
    assert default_fov is not None and default_fov.shape == (1,)


def test_every_trainable_parameter_gets_a_gradient():
    """DDP without find_unused_parameters: nothing trainable may be left out of the graph."""
    model = tiny()
    depth, fov = model(example_input(model))
    (depth.mean() + fov.mean()).backward()
    unused = [name for name, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert unused == []
    # The one block that never runs (no skip input at the coarsest level) is frozen for that reason.
    frozen = [name for name, p in model.named_parameters() if not p.requires_grad]
    assert frozen and all(name.startswith("decoder.fusions.4.resnet1.") for name in frozen)


@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed not built")
@pytest.mark.filterwarnings("ignore:Grad strides do not match:UserWarning")  # 1×1 convs on token maps
def test_ddp_trains_each_stage_without_unused_parameters(tmp_path):
    """Depth stage (FOV groups frozen, ``with_fov=False``) and FOV stage (depth network frozen) under
    DDP without ``find_unused_parameters``: a second step fails if any trainable parameter was unused."""
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    try:
        for frozen, with_fov in ((("fov_encoder", "fov_head"), False), (("encoder", "decoder"), True)):
            model = tiny()
            assert model.freeze(*frozen)
            model.freeze_layernorms()
            ddp = DistributedDataParallel(model)
            x = example_input(model)
            for _ in range(2):
                depth, fov = ddp(x, with_fov=with_fov)
                (fov.mean() if with_fov else depth.mean()).backward()
            trainable = model.parameter_groups(trainable_only=True)
            assert all(not trainable[group] for group in frozen)
            assert all(p.grad is not None for group in trainable.values() for _, p in group)
    finally:
        dist.destroy_process_group()


def test_freeze_rejects_unknown_groups():
    with pytest.raises(ValueError, match="unknown parameter groups"):
        tiny().freeze("fov")


# --------------------------------------------------------------------------- gradient checkpointing
def count_block_calls(model: DepthPro) -> dict[str, list[int]]:
    """First block of each ViT → number of forward calls (recomputations included: a pre-hook, as a
    recomputation may stop before the block returns)."""
    counts: dict[str, list[int]] = {}
    for name, vit in model.vits().items():
        counts[name] = [0]
        vit.blocks[0].register_forward_pre_hook(lambda *_, c=counts[name]: c.__setitem__(0, c[0] + 1))
    return counts


def test_grad_checkpointing_gives_the_same_gradients_and_recomputes_every_vit():
    model = tiny().train()
    x = example_input(model)
    plain = gradients(model, x)
    assert len(plain) == sum(1 for p in model.parameters() if p.requires_grad)

    model.set_grad_checkpointing(True)
    assert all(vit.grad_checkpointing for vit in model.vits().values())
    counts = count_block_calls(model)
    checkpointed = gradients(model, x)
    # Each block runs twice, forward and recompute, also in the patch ViT's intermediates path.
    assert {name: c[0] for name, c in counts.items()} == {"patch": 2, "image": 2, "fov": 2}
    assert checkpointed.keys() == plain.keys()
    for name in plain:
        torch.testing.assert_close(checkpointed[name], plain[name], rtol=1e-5, atol=1e-7, msg=name)

    model.set_grad_checkpointing(False)
    assert not any(vit.grad_checkpointing for vit in model.vits().values())


def test_grad_checkpointing_changes_nothing_without_autograd():
    model = tiny().eval()
    x = example_input(model)
    with torch.no_grad():
        expected = model(x)
        model.set_grad_checkpointing(True)
        counts = count_block_calls(model)
        actual = model(x)
    assert {name: c[0] for name, c in counts.items()} == {"patch": 1, "image": 1, "fov": 1}
    for a, e in zip(actual, expected, strict=True):
        torch.testing.assert_close(a, e, rtol=0, atol=0)


# --------------------------------------------------------------------------- parameter groups
@pytest.mark.parametrize("fov", [True, False])
def test_parameter_groups_partition_the_parameters(fov):
    model = tiny(fov=fov)
    groups = model.parameter_groups()
    assert tuple(groups) == PARAMETER_GROUPS
    names = [name for group in groups.values() for name, _ in group]
    assert sorted(names) == sorted(name for name, _ in model.named_parameters())  # each exactly once
    assert len(names) == len(set(names))
    ids = [id(p) for group in groups.values() for _, p in group]
    assert len(ids) == len(set(ids)) == sum(1 for _ in model.parameters())

    def prefixes(group: str) -> set[str]:
        return {".".join(name.split(".")[:2]) for name, _ in groups[group]}

    assert prefixes("encoder") == {"encoder.patch_encoder", "encoder.image_encoder"}
    assert {name.split(".")[0] for name, _ in groups["decoder"]} == {"encoder", "decoder", "head"}
    assert not any(
        name.startswith(("encoder.patch_encoder.", "encoder.image_encoder.")) for name, _ in groups["decoder"]
    )
    assert "encoder.fuse_lowres.weight" in dict(groups["decoder"])
    if fov:
        assert all(name.startswith("fov.encoder.0.") for name, _ in groups["fov_encoder"])
        assert prefixes("fov_head") == {"fov.encoder", "fov.downsample", "fov.head"}
        assert {name for name, _ in groups["fov_head"] if name.startswith("fov.encoder")} == {
            "fov.encoder.1.weight",
            "fov.encoder.1.bias",
        }
    else:
        assert groups["fov_encoder"] == [] and groups["fov_head"] == []


def test_freeze_layernorms_freezes_only_the_vits_layernorms():
    model = tiny()
    frozen = model.freeze_layernorms()
    # Per ViT: norm1 and norm2 of 4 blocks plus the final norm, weight and bias each.
    assert len(frozen) == len(set(frozen)) == 3 * (4 * 2 + 1) * 2
    assert "encoder.patch_encoder.blocks.0.norm1.weight" in frozen
    assert "fov.encoder.0.norm.bias" in frozen
    for name, p in model.named_parameters():
        if not name.startswith("decoder.fusions.4.resnet1."):  # never used, always frozen
            assert p.requires_grad == (name not in frozen), name
    assert [name for name, _ in model.layernorm_parameters()] == frozen

    trainable = model.parameter_groups(trainable_only=True)
    assert not {name for group in trainable.values() for name, _ in group} & set(frozen)
    unused = sum(1 for name, _ in model.named_parameters() if name.startswith("decoder.fusions.4.resnet1."))
    total = sum(1 for _ in model.parameters())
    assert sum(len(g) for g in trainable.values()) + len(frozen) + unused == total

    depth, fov = model(example_input(model))
    (depth.mean() + fov.mean()).backward()
    assert all(p.grad is None for _, p in model.layernorm_parameters())


def test_freeze_layernorms_of_some_vits():
    model = tiny()
    frozen = model.freeze_layernorms(("patch",))
    assert len(frozen) == 18 and all(name.startswith("encoder.patch_encoder.") for name in frozen)
    with pytest.raises(ValueError, match="unknown ViT"):
        model.freeze_layernorms(("decoder",))


# --------------------------------------------------------------------------- DINOv2 initialisation
def dinov2_like(embed_dim: int = 64, depth: int = 4, img_size: int = 224, seed: int = 0) -> VisionTransformer:
    """A random patch-14 ViT laid out as DINOv2 (all parameters randomised, LayerScale included)."""
    torch.manual_seed(seed)
    vit = VisionTransformer(
        img_size=img_size,
        patch_size=14,
        embed_dim=embed_dim,
        depth=depth,
        num_heads=2,
        init_values=1e-5,
        class_token=True,
        num_classes=0,
        reg_tokens=0,
    )
    with torch.no_grad():
        for p in vit.parameters():
            p.normal_(0, 0.02)
    return vit


def dinov2_state(vit: VisionTransformer) -> dict[str, torch.Tensor]:
    state = {k: v.clone() for k, v in vit.state_dict().items()}
    state["mask_token"] = torch.randn(1, vit.embed_dim)  # as in Meta's DINOv2 checkpoints
    return state


@pytest.fixture(scope="module")
def source_vit() -> VisionTransformer:
    return dinov2_like()


@pytest.fixture(scope="module", params=["safetensors", "pth"])
def source_file(request, source_vit, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("dinov2")
    state = dinov2_state(source_vit)
    if request.param == "safetensors":
        path = folder / "dinov2.safetensors"
        save_file(state, path)
    else:
        path = folder / "dinov2.pth"
        torch.save({"model": state, "epoch": 3}, path)  # a training checkpoint: unwrapped
    return path


def constant_patch_embedding(vit: VisionTransformer, colour: torch.Tensor) -> torch.Tensor:
    """Embedding (C,) of one patch of constant ``colour`` (3,), bias included."""
    size = vit.patch_embed.patch_size
    with torch.no_grad():
        return vit.patch_embed.proj(colour.view(1, 3, 1, 1).expand(1, 3, *size))[0, :, 0, 0]


def test_init_encoders_from_a_local_file(source_file, source_vit):
    model = tiny()
    untouched = {k: v.clone() for k, v in model.state_dict().items() if k.startswith(("decoder.", "head."))}
    report = init_encoders(model, source_file)
    assert report == {"patch": ["mask_token"], "image": ["mask_token"], "fov": ["mask_token"]}

    source = source_vit.state_dict()
    colour = torch.tensor([0.3, -0.5, 0.8])
    expected = constant_patch_embedding(source_vit, colour)
    for name, vit in model.vits().items():
        target = vit.state_dict()
        for key, value in target.items():
            if key.startswith(("blocks.", "norm.", "cls_token", "patch_embed.proj.bias")):
                assert torch.equal(value, source[key]), f"{name}: {key}"
        assert target["pos_embed"].shape == (1, 1 + 8 * 8, 64)  # 128² tile, 16-pixel patches
        assert torch.equal(target["pos_embed"][:, 0], source["pos_embed"][:, 0])  # class position kept
        assert vit.patch_embed.proj.weight.shape == (64, 3, 16, 16)
        # Bicubic kernel resampling keeps a constant patch's embedding approximately: the error is
        # about 1 % of the embedding's norm for these white-noise kernels (smooth trained ones do
        # better); 5 % leaves margin while an unscaled kernel (off by (16/14)² − 1 ≈ 31 %) fails.
        actual = constant_patch_embedding(vit, colour)
        assert (actual - expected).norm() < 0.05 * expected.norm(), name
    for key, value in untouched.items():
        assert torch.equal(model.state_dict()[key], value), key


def test_pinv_patch_resampling_keeps_a_constant_patch_exactly(source_vit):
    model = tiny()
    target = model.vits()["patch"]
    adapted = adapt_vit_state_dict(dinov2_state(source_vit), target, patch_resample="pinv")
    target.load_state_dict(adapted)
    colour = torch.tensor([0.7, 0.1, -0.4])
    torch.testing.assert_close(
        constant_patch_embedding(target, colour),
        constant_patch_embedding(source_vit, colour),
        rtol=1e-4,
        atol=1e-5,
    )


def test_adapt_keeps_a_matching_grid_and_reports_dropped_keys(caplog):
    source = dinov2_like(img_size=8 * 14)  # 8×8 grid already: position embedding copied as is
    target = tiny().vits()["image"]
    with caplog.at_level("INFO", logger="metricdepth.models.depth_pro.init"):
        adapted = adapt_vit_state_dict(dinov2_state(source), target)
    assert set(adapted) == set(target.state_dict())
    assert torch.equal(adapted["pos_embed"], source.pos_embed.detach())
    assert "mask_token" in caplog.text


def test_init_encoders_of_some_vits_only(source_file, source_vit):
    model = tiny()
    before = model.vits()["fov"].state_dict()["blocks.0.attn.qkv.weight"].clone()
    assert set(init_encoders(model, source_file, which=("patch", "image"))) == {"patch", "image"}
    assert torch.equal(model.vits()["fov"].state_dict()["blocks.0.attn.qkv.weight"], before)
    no_fov = tiny(fov=False)
    assert set(init_encoders(no_fov, source_file)) == {"patch", "image"}
    with pytest.raises(ValueError, match="unknown ViT"):
        init_encoders(model, source_file, which=("decoder",))


@pytest.mark.parametrize(
    ("embed_dim", "depth", "problem"),
    [(32, 4, r"width 32 and depth 4.*width 64 and depth 4"), (64, 6, r"width 64 and depth 6")],
)
def test_init_encoders_rejects_weights_of_another_size(tmp_path, embed_dim, depth, problem):
    path = tmp_path / "other.safetensors"
    save_file(dinov2_state(dinov2_like(embed_dim=embed_dim, depth=depth)), path)
    with pytest.raises(ValueError, match=problem):
        init_encoders(tiny(), path)


def test_adapt_rejects_missing_and_misshapen_keys(source_vit):
    target = tiny().vits()["patch"]
    state = dinov2_state(source_vit)
    del state["norm.weight"]
    with pytest.raises(ValueError, match=r"missing keys: norm\.weight"):
        adapt_vit_state_dict(state, target)
    state = dinov2_state(source_vit)
    state["blocks.1.mlp.fc1.weight"] = torch.zeros(128, 64)
    with pytest.raises(ValueError, match=r"blocks.1.mlp.fc1.weight: \(128, 64\) vs target \(256, 64\)"):
        adapt_vit_state_dict(state, target)


def test_unreadable_sources_raise_checkpoint_errors(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        dinov2_state_dict(tmp_path / "missing.pth")
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a safetensors file")
    with pytest.raises(CheckpointError, match="cannot read"):
        dinov2_state_dict(bad)


def test_hub_offline_fails_fast_with_local_file_advice(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(dinov2_init, "_cached_hub_file", lambda repo_id: None)  # whatever is cached here
    start = time.monotonic()
    with pytest.raises(CheckpointError, match="local file") as raised:
        dinov2_state_dict("hub", embed_dim=384)
    assert time.monotonic() - start < 5
    assert "vit_small_patch14_dinov2.lvd142m" in str(raised.value)
    with pytest.raises(ValueError, match=r"no DINOv2 ViT of width 64.*local weights file"):
        init_encoders(tiny(), "hub")
