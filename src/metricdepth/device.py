"""Device and precision selection."""

from __future__ import annotations

import torch

__all__ = ["PRECISIONS", "resolve_device", "resolve_dtype"]

PRECISIONS: dict[str, torch.dtype] = {
    "fp32": torch.float32,
    "float32": torch.float32,
    "fp16": torch.float16,
    "float16": torch.float16,
    "half": torch.float16,
    "bf16": torch.bfloat16,
    "bfloat16": torch.bfloat16,
}


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """``"auto"`` (or None) picks CUDA, then MPS, then CPU; anything else is passed to ``torch.device``."""
    if device is None or device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(device)
    except RuntimeError:
        raise ValueError(f"unknown device {device!r}; use auto, cpu, cuda, cuda:N or mps") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {str(device)!r} requested but CUDA is not available")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise ValueError(
            f"device {str(device)!r} requested but {torch.cuda.device_count()} GPU(s) are visible"
        )
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError("device 'mps' requested but MPS is not available")
    return device


def resolve_dtype(precision: str | torch.dtype | None, device: torch.device) -> torch.dtype:
    """Compute dtype for ``device``.

    ``"auto"`` (or None) is fp16 on CUDA and MPS and fp32 on CPU. Half precision on CPU is
    refused: it is many times slower there and not what any CPU user wants.
    """
    if precision is None or precision == "auto":
        return torch.float16 if device.type in ("cuda", "mps") else torch.float32
    if isinstance(precision, torch.dtype):
        dtype = precision
    else:
        try:
            dtype = PRECISIONS[precision.lower()]
        except KeyError:
            raise ValueError(f"unknown precision {precision!r}; choose auto, fp32, fp16 or bf16") from None
    if dtype not in (torch.float32, torch.float16, torch.bfloat16):
        raise ValueError(f"unsupported precision {dtype}")
    if device.type == "cpu" and dtype != torch.float32:
        raise ValueError(f"precision {precision} is not supported on CPU; use fp32 (the default there)")
    return dtype
