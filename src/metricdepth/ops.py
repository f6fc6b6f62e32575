"""Operations whose CPU results do not depend on the number of threads: bilinear resize, 1×1 convolution.

PyTorch's CPU kernels for these round differently with one thread than with several
(``upsample_bilinear2d`` takes another vectorised loop; oneDNN picks another 1×1 convolution
algorithm for some shapes), so the same photo gave outputs a last bit apart in a one-thread process
(a ``torchrun`` rank, a Ray CPU actor) and in a default multi-thread one. With these two, the Depth
Pro forward on the CPU gives the same bits at 1 and 2 threads (``tests/test_ops.py``), so sharded and
single-process runs write identical files. Elsewhere (GPUs, the meta device, tracing for export)
they are the plain PyTorch operations.
"""

from __future__ import annotations

import threading

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["PointwiseConv2d", "resize_bilinear"]

_THREADS_LOCK = threading.Lock()


def _plain(x: Tensor) -> bool:
    """Whether to use PyTorch's own kernel: off the CPU, or while tracing / compiling / exporting."""
    exporting = getattr(torch.compiler, "is_exporting", lambda: False)
    return x.device.type != "cpu" or torch.jit.is_tracing() or torch.compiler.is_compiling() or exporting()


def resize_bilinear(
    x: Tensor, size: tuple[int, int] | None = None, scale_factor: float | None = None
) -> Tensor:
    """Bilinear resize of (B, C, H, W) ``x`` (align_corners=False, no antialias), in ``x``'s dtype.

    Exactly ``F.interpolate(x, size, scale_factor, mode="bilinear", align_corners=False)``; on the CPU
    the kernel runs on one thread (a few milliseconds per 1536² plane) so the result does not depend
    on ``torch.get_num_threads()``.
    """
    if _plain(x):
        return F.interpolate(x, size=size, scale_factor=scale_factor, mode="bilinear", align_corners=False)
    # The thread count is process-wide: resizes of concurrent callers (demo requests) take turns, so
    # each restores what it found. Other work running meanwhile may briefly get one thread.
    with _THREADS_LOCK:
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            return F.interpolate(
                x, size=size, scale_factor=scale_factor, mode="bilinear", align_corners=False
            )
        finally:
            torch.set_num_threads(threads)


class PointwiseConv2d(nn.Conv2d):
    """A 1×1 convolution (stride 1) computed on the CPU as one matrix product per image.

    The parameters and the state-dict layout are those of ``nn.Conv2d(in, out, kernel_size=1)``;
    (B, C_in, H, W) → (B, C_out, H, W), contiguous (a strided input is copied first). The CPU matrix
    product gives the same bits at any thread count, where oneDNN's 1×1 convolution does not.
    """

    def __init__(self, in_channels: int, out_channels: int, bias: bool = True) -> None:
        super().__init__(in_channels, out_channels, kernel_size=1, bias=bias)

    def forward(self, x: Tensor) -> Tensor:
        if _plain(x):
            return super().forward(x)
        batch, _, height, width = x.shape
        weight, flat = self.weight[:, :, 0, 0], x.reshape(batch, self.in_channels, height * width)
        # One matrix product per image: an image's result does not depend on its batch either.
        out = torch.stack([torch.mm(weight, flat[i]) for i in range(batch)])
        if self.bias is not None:
            out = out + self.bias[:, None]
        return out.reshape(batch, self.out_channels, height, width)
