"""numpy/torch interop for metrics: compute in float64 torch, hand back the caller's type."""

from __future__ import annotations

import numpy as np
import torch


def as_float64(x) -> torch.Tensor:
    """A float64 CPU-or-device tensor view/copy of a numpy array, tensor or scalar."""
    if isinstance(x, torch.Tensor):
        return x.detach().to(torch.float64)
    return torch.as_tensor(np.asarray(x, dtype=np.float64))


def as_mask(mask, like: torch.Tensor) -> torch.Tensor:
    if mask is None:
        return torch.ones_like(like, dtype=torch.bool)
    m = mask.detach() if isinstance(mask, torch.Tensor) else torch.as_tensor(np.asarray(mask))
    if m.shape != like.shape:
        raise ValueError(f"mask shape {tuple(m.shape)} does not match {tuple(like.shape)}")
    return m.to(device=like.device, dtype=torch.bool)
