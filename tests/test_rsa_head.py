"""The RSA head: the paper's MLP, official checkpoints (large and small layouts) and own files."""

from __future__ import annotations

import itertools
import json

import pytest
import torch
import torch.nn.functional as F

from metricdepth.models.depth_pro.weights import CheckpointError
from metricdepth.rsa.head import LAYOUTS, RSAHead, metric_depth

# (trunk, head) layer widths of the official code, written out independently of LAYOUTS.
OFFICIAL = {
    "large": ([1024, 512, 512, 512, 256, 256], [256, 256, 128, 128, 64, 1]),
    "small": ([1024, 512, 256, 256], [256, 128, 64, 1]),
}


def official_state_dict(layout: str, seed: int = 0) -> dict[str, torch.Tensor]:
    """A state dict in the released key layout (Sequential indices 0, 2, 4, ...), random values."""
    generator = torch.Generator().manual_seed(seed)
    trunk, head = OFFICIAL[layout]
    state = {}
    for prefix, widths in (("scene_feat_net", trunk), ("scale_net", head), ("shift_net", head)):
        for i, (a, b) in enumerate(itertools.pairwise(widths)):
            state[f"{prefix}.{2 * i}.weight"] = torch.randn(b, a, generator=generator) / a**0.5
            state[f"{prefix}.{2 * i}.bias"] = torch.randn(b, generator=generator) * 0.1
    return state


def by_hand(state: dict[str, torch.Tensor], x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The MLP computed from the raw weights: LeakyReLU(0.01) between layers, none after the last, exp."""

    def run(prefix: str, h: torch.Tensor) -> torch.Tensor:
        indices = sorted(
            int(k.split(".")[1]) for k in state if k.startswith(prefix + ".") and k.endswith("weight")
        )
        for j, index in enumerate(indices):
            if j:
                h = F.leaky_relu(h, 0.01)
            h = h @ state[f"{prefix}.{index}.weight"].T + state[f"{prefix}.{index}.bias"]
        return h

    trunk = run("scene_feat_net", x)
    return torch.exp(run("scale_net", trunk))[:, 0], torch.exp(run("shift_net", trunk))[:, 0]


@pytest.mark.parametrize("layout", ["large", "small"])
def test_official_layout_loads_strictly_and_matches_the_mlp_by_hand(tmp_path, layout):
    state = official_state_dict(layout)
    path = tmp_path / f"{layout}_ckpt"
    torch.save({"global_step": 47500, "model": state, "best_eval_measures_nyu": torch.zeros(9)}, path)
    head = RSAHead.from_pretrained(path)
    assert head.layout == layout and head.in_dim == 1024 and head.text_encoder == "clip-rn50"
    assert set(head.state_dict()) == set(state)
    x = torch.randn(5, 1024, generator=torch.Generator().manual_seed(1))
    alpha, beta = head(x)
    want_alpha, want_beta = by_hand(state, x)
    assert alpha.shape == beta.shape == (5,)
    torch.testing.assert_close(alpha, want_alpha, rtol=1e-5, atol=0)
    torch.testing.assert_close(beta, want_beta, rtol=1e-5, atol=0)
    assert (alpha > 0).all() and (beta > 0).all()


def test_parameter_counts_are_the_papers():
    assert sum(p.numel() for p in RSAHead(1024, "large").parameters()) == 1_494_274
    assert sum(p.numel() for p in RSAHead(1024, "small").parameters()) == 804_354
    assert set(LAYOUTS) == {"large", "small"}


def test_dataparallel_prefix_and_bare_state_dict(tmp_path):
    state = official_state_dict("large", seed=3)
    torch.save({f"module.{k}": v for k, v in state.items()}, tmp_path / "dp.pt")
    head = RSAHead.from_pretrained(tmp_path / "dp.pt")
    x = torch.randn(2, 1024)
    torch.testing.assert_close(head(x)[0], by_hand(state, x)[0], rtol=1e-5, atol=0)


def test_a_missing_or_extra_key_is_refused(tmp_path):
    state = official_state_dict("large")
    del state["shift_net.8.bias"]
    torch.save({"model": state}, tmp_path / "broken.pt")
    with pytest.raises(CheckpointError, match=r"broken\.pt"):
        RSAHead.from_pretrained(tmp_path / "broken.pt")
    torch.save({"model": {"encoder.weight": torch.zeros(2, 2)}}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="not an RSA head"):
        RSAHead.from_pretrained(tmp_path / "other.pt")


def test_pickled_objects_are_not_loaded(tmp_path):
    torch.save({"model": official_state_dict("small"), "args": object()}, tmp_path / "pickled.pt")
    with pytest.raises(CheckpointError, match="weights_only=True"):
        RSAHead.from_pretrained(tmp_path / "pickled.pt")


def test_save_pretrained_round_trip_keeps_the_config(tmp_path):
    head = RSAHead(384, "small", text_encoder="minilm")
    path = head.save_pretrained(tmp_path / "rsa.safetensors", relative="tiny.safetensors")
    loaded = RSAHead.from_pretrained(path)
    assert (loaded.in_dim, loaded.layout, loaded.text_encoder) == (384, "small", "minilm")
    x = torch.randn(3, 384)
    torch.testing.assert_close(loaded(x), head(x))
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        meta = json.loads(f.metadata()["metricdepth.rsa.head"])
    assert meta["relative"] == "tiny.safetensors" and meta["in_dim"] == 384
    assert RSAHead.from_pretrained(tmp_path).layout == "small"  # a folder holding rsa.safetensors


def test_metric_depth_formula():
    y = torch.tensor([[[0.0, 1.0], [2.0, 4.0]]])
    depth = metric_depth(y, torch.tensor([0.5]), torch.tensor([0.25]))
    torch.testing.assert_close(depth, 1 / (0.5 * y + 0.25))


def test_bad_arguments():
    with pytest.raises(ValueError, match="layout"):
        RSAHead(1024, "huge")
    with pytest.raises(CheckpointError, match="not found"):
        RSAHead.from_pretrained("/nonexistent/rsa.safetensors")
