from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from deterministic_weights import deterministic_state_dict
from metricdepth import DepthPro, DepthProConfig
from metricdepth.models.depth_pro.loading import state_dict_shapes

DATA = Path(__file__).parent / "data"


def read_tsv_shapes(name: str) -> dict[str, tuple[int, ...]]:
    """key → shape from one of the reference state-dict listings in tests/data."""
    shapes = {}
    for line in (DATA / name).read_text().splitlines():
        if not line or line.startswith("#") or line.startswith("key\t"):
            continue
        key, shape = line.split("\t")[:2]
        shapes[key] = tuple(int(s) for s in shape.strip("[]").split(",") if s.strip())
    return shapes


@pytest.fixture(scope="session")
def data_dir() -> Path:
    return DATA


@pytest.fixture(scope="session")
def tiny_state_dict() -> dict[str, torch.Tensor]:
    """Deterministic (non-trivial) weights for the tiny preset, Apple layout, float16."""
    return deterministic_state_dict(state_dict_shapes(DepthPro, DepthProConfig.preset("tiny")))


@pytest.fixture(scope="session")
def tiny_model(tiny_state_dict) -> DepthPro:
    return DepthPro.from_state_dict(tiny_state_dict, device="cpu")


@pytest.fixture(scope="session")
def tiny_checkpoint(tiny_model, tmp_path_factory) -> Path:
    return tiny_model.save_pretrained(tmp_path_factory.mktemp("ckpt") / "tiny.safetensors")


@pytest.fixture(scope="session")
def smooth_checkpoint(tiny_state_dict, tmp_path_factory) -> Path:
    """Tiny weights with a damped, biased last layer: depth ≈ 3 m varying smoothly with the image.

    Random weights give noise-like depth that is all "flying pixels"; this keeps most of the
    point cloud so PLY and PNG outputs are checked on realistic maps.
    """
    state = dict(tiny_state_dict)
    state["head.4.weight"] = state["head.4.weight"] * 0.1
    state["head.4.bias"] = torch.full_like(state["head.4.bias"], 0.3)
    model = DepthPro.from_state_dict(state, device="cpu")
    return model.save_pretrained(tmp_path_factory.mktemp("ckpt") / "smooth.safetensors")


@pytest.fixture(scope="session")
def camera_checkpoint(tiny_state_dict, tmp_path_factory) -> Path:
    """The tiny preset with a plausible camera: FOV ≈ 60° (varying a little per image) and depth of a
    few metres varying over the image (the damped, biased depth head of ``smooth_checkpoint``)."""
    state = dict(tiny_state_dict)
    state["head.4.weight"] = state["head.4.weight"] * 0.1
    state["head.4.bias"] = torch.full_like(state["head.4.bias"], 0.3)
    state["fov.head.4.weight"] = state["fov.head.4.weight"] * 0.1
    state["fov.head.4.bias"] = torch.full_like(state["fov.head.4.bias"], 60.0)
    model = DepthPro.from_state_dict(state, device="cpu")
    return model.save_pretrained(tmp_path_factory.mktemp("ckpt") / "camera.safetensors")


@pytest.fixture
def rgb() -> np.ndarray:
    """A small asymmetric test image, (60, 80, 3) uint8."""
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, size=(60, 80, 3), dtype=np.uint8)
    image[:10, :20] = (255, 0, 0)
    return image
