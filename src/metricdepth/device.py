"""Device and precision selection, and the host allocator's behaviour for large CPU tensors."""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

import torch

__all__ = ["PRECISIONS", "resolve_device", "resolve_dtype", "return_freed_memory"]

_M_MMAP_THRESHOLD = -3  # glibc mallopt parameter numbers (malloc.h)


def return_freed_memory(threshold_bytes: int = 16 << 20) -> bool:
    """Make glibc serve allocations of ``threshold_bytes`` or more with their own mappings, so freed
    tensors go back to the OS at once instead of staying in the heap.

    glibc's default threshold grows with the sizes freed, up to 32 MiB; below it, freed activations
    (e.g. the 25 MB row strips of a 1536² Depth Pro decoder) stay in the heap, and the peak resident
    memory creeps upwards. ``metricdepth predict`` calls it on CPU for the full-size model: peak 4.43
    GiB instead of 4.68 GiB for one 1536² image, and no slower. It costs time where large tensors
    would otherwise be reused from the heap: about +15 % on the ``vits`` preset at 16 MiB (see
    :func:`~metricdepth.models.depth_pro.chunking.heap_return_is_free`; benchmarks/README.md).
    Process-wide; no effect (False) where the C library is not glibc.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(_M_MMAP_THRESHOLD, int(threshold_bytes)))


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
