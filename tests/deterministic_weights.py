"""The golden parity weights, rebuilt from key names alone (recipe: ../shared/golden/README.md).

Each tensor is seeded by the CRC32 of its key: z ~ N(0, 1) float32 from numpy's default_rng, scaled
by what the key names (positional/class embeddings, LayerScale, norm scales, biases, conv/linear
weights by 1/sqrt(fan-in)), then rounded through float16 so it is exactly storable in Apple's format.
"""

from __future__ import annotations

import math
import zlib

import numpy as np
import torch


def _scale(name: str, shape: tuple[int, ...], z: np.ndarray) -> np.ndarray:
    leaf = name.split(".")[-1]
    if leaf in {"pos_embed", "cls_token"}:
        return z * 0.02
    if leaf == "gamma":
        return z * 0.01 + 0.1
    if leaf == "bias":
        return z * 0.02
    if leaf == "weight" and len(shape) == 1:
        return z * 0.1 + 1.0
    return z / math.sqrt(math.prod(shape[1:]) if len(shape) > 1 else 1)


def deterministic_tensor(name: str, shape: tuple[int, ...]) -> torch.Tensor:
    """The float16 tensor the recipe assigns to ``name``."""
    rng = np.random.default_rng(zlib.crc32(name.encode("utf-8")))
    z = rng.standard_normal(shape, dtype=np.float32)
    return torch.from_numpy(_scale(name, tuple(shape), z).astype(np.float16))


def deterministic_state_dict(shapes: dict[str, tuple[int, ...]]) -> dict[str, torch.Tensor]:
    """Apple-format state dict (float16 tensors) for the given key → shape mapping."""
    return {name: deterministic_tensor(name, shape) for name, shape in shapes.items()}
