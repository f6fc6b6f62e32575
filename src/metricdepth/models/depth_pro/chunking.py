"""Bounded-memory evaluation of Depth Pro: patch tiles in chunks, the high-resolution levels in row strips.

One 1536² image in fp32 holds 3.8 GB of weights; what else it needs is dominated by two places: the
35 tiles going through the patch ViT at once (attention, MLP activations), and the decoder's two
finest levels and the depth head, whose feature maps are 256 × 768² (604 MB each) and 128 × 1536²
(1.2 GB). :class:`Chunking` bounds both:

* ``images``: at most this many images of a batch go through the network at a time;
* ``tiles``: at most this many tiles go through the patch ViT at a time;
* ``strips``: the two finest decoder levels and the head run on horizontal strips of rows. Each strip
  is computed from the coarser maps with just the halo of rows its convolutions read (per level: two
  residual blocks, the skip convolution, the head's two 3×3 convolutions), so the result equals the
  whole-image computation up to float rounding; no 768² or 1536² feature map is ever held whole.

The arithmetic is unchanged; only the order of evaluation differs. ``Chunking()`` (the default on GPUs)
runs everything at once; :meth:`Chunking.auto` picks the bounded setting on CPU.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

if TYPE_CHECKING:
    from .model import DepthPro

__all__ = ["CPU_CHUNKING", "Chunking", "decode_in_strips", "strip_bounds"]


@dataclass(frozen=True)
class Chunking:
    """How :meth:`DepthPro.forward` splits its work to bound memory (outputs unchanged up to rounding).

    Args:
        images: most images per pass through the network (None: the whole batch). With 1, an image's
            result does not depend on what else is in its batch (batched convolution kernels may
            round differently), and memory is that of one image.
        tiles: most tiles per patch-ViT batch (None: all 35·B tiles of a batch at once).
        strips: number of row strips for the two finest decoder levels and the head (None or 1: the
            whole map at once). At most the row count of the second-finest level (384 at full size).
    """

    images: int | None = None
    tiles: int | None = None
    strips: int | None = None

    def __post_init__(self) -> None:
        for name in ("images", "tiles", "strips"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < 1):
                raise ValueError(f"Chunking.{name} must be a positive integer or None, got {value!r}")

    @property
    def active(self) -> bool:
        return bool(self.images) or bool(self.tiles) or (self.strips or 1) > 1

    @staticmethod
    def auto(device: torch.device | str) -> Chunking:
        """The default for ``device``: :data:`CPU_CHUNKING` on CPU, none elsewhere (GPU memory is ample
        for one batch, and whole-map kernels are fastest there)."""
        return CPU_CHUNKING if torch.device(device).type == "cpu" else Chunking()


CPU_CHUNKING = Chunking(images=1, tiles=None, strips=8)
"""CPU default: one image at a time (a compute-bound CPU gains nothing from batching; results are then
bit-equal whatever the batch size), all 35 tiles in one ViT batch (large tensors, which the allocator
returns to the OS when freed; the ViT is not where the peak lies), 8 strips (48 rows of the 384² level
each at full size). Measured with ``benchmarks/forward_latency.py --chunking`` (benchmarks/README.md)."""


def heap_return_is_free(model: DepthPro) -> bool:
    """Whether :func:`metricdepth.device.return_freed_memory` (16 MiB) costs this model no time on CPU.

    True when one image's patch-ViT activations (35 tiles × (G² + 1) tokens × width, fp32) exceed
    glibc's 32 MiB ceiling for heap allocations: they are then mapped afresh on every allocation
    anyway (``depth-pro``: 83 MB; ``predict`` was no slower). For smaller models (``vits``: 31 MB) the
    setting maps them afresh too and costs about 15 % (benchmarks/README.md).
    """
    vit = model.config.patch_encoder
    tiles = sum(steps * steps for steps in _pyramid_steps(model))
    return tiles * (vit.grid_size**2 + 1) * vit.embed_dim * 4 > 32 << 20


def _pyramid_steps(model: DepthPro) -> list[int]:
    from .tiling import tile_grid

    config = model.config
    return [
        tile_grid(round(config.img_size * scale), config.tile_size, overlap)[0]
        for scale, overlap in config.pyramid
    ]


def strip_bounds(rows: int, strips: int) -> Iterator[tuple[int, int]]:
    """``strips`` contiguous [start, stop) row ranges covering ``rows`` rows, as equal as possible."""
    strips = max(1, min(strips, rows))
    edges = [round(i * rows / strips) for i in range(strips + 1)]
    yield from itertools.pairwise(edges)


def _conv_reach(module: nn.Module) -> int:
    """Rows a module reads above (and below) each output row: (k - 1) // 2 for a conv, 0 otherwise."""
    if isinstance(module, nn.Conv2d):
        return (module.kernel_size[0] - 1) // 2
    return 0


def _rows(x: Tensor, start: int, stop: int, origin: int = 0) -> Tensor:
    """Rows [start, stop) of a map whose first row is image row ``origin``."""
    return x[..., start - origin : stop - origin, :]


def _upsampled_rows(
    upsample: Callable[[Tensor], Tensor], source: Tensor, factor: int, start: int, stop: int
) -> Tensor:
    """Rows [start, stop) of ``upsample(source)`` for a chain of stride-2, kernel-2 transposed convs (row r
    of the output depends on row r // factor of ``source`` only)."""
    lo, hi = start // factor, -(-stop // factor)
    return _rows(upsample(source[..., lo:hi, :]), start, stop, origin=lo * factor)


def decode_in_strips(model: DepthPro, levels: list[Tensor], strips: int) -> tuple[Tensor, Tensor]:
    """The decoder and depth head of ``model`` on row strips.

    Args:
        model: the Depth Pro network.
        levels: the encoder's levels with the two finest *not* upsampled (``encoder(x,
            project_fine=False)``): latent0 and latent1 as (B, C, 4G, 4G) token maps, then the three
            coarser levels as usual.
        strips: number of strips of the second-finest level (16G rows).

    Returns:
        canonical inverse depth (B, 1, 64G, 64G) and the projected coarsest level (the FOV head's input),
        as ``model.head(model.decoder(levels))`` would give them.
    """
    encoder, decoder, head = model.encoder, model.decoder, model.head
    fusion0, fusion1, fusion2 = decoder.fusions[0], decoder.fusions[1], decoder.fusions[2]
    coarse, lowres = decoder.fuse_down_to(levels, 2)  # fusion 2 before its ×2 upsampling: (B, F, 8G, 8G)
    latent1 = encoder.upsample_latent1[0](levels[1])  # 1×1 projections at 4G; the ×4 / ×8 follow per strip
    latent0 = encoder.upsample_latent0[0](levels[0])
    up1, up0 = encoder.upsample_latent1[1:], encoder.upsample_latent0[1:]
    size1 = 4 * latent1.shape[-2]  # rows of the 16G level
    size0 = 2 * size1
    residual = 2 * sum(_conv_reach(m) for m in fusion0.resnet1.residual)  # resnet1 then resnet2: 2 rows each
    reach0 = residual + _conv_reach(decoder.convs[0])
    reach1 = residual + _conv_reach(decoder.convs[1])

    out: Tensor | None = None
    for lo, hi in strip_bounds(size1, strips):
        # The head's 3×3 conv at 64G reads one 64G row (= one 32G row) beyond; its 3×3 conv at 32G one more.
        a0, b0 = max(2 * lo - 2, 0), min(2 * hi + 2, size0)
        a0i, b0i = max(a0 - reach0, 0), min(b0 + reach0, size0)  # rows of fusion 0's inputs
        a1, b1 = a0i // 2, -(-b0i // 2)  # rows of fusion 1's output (×2 deconv)
        a1i, b1i = max(a1 - reach1, 0), min(b1 + reach1, size1)  # rows of fusion 1's inputs

        x1 = _upsampled_rows(fusion2.project, coarse, 2, a1i, b1i)
        skip1 = decoder.convs[1](_upsampled_rows(up1, latent1, 4, a1i, b1i))
        y1 = _rows(fusion1.fuse(x1, skip1), a1, b1, origin=a1i)
        del x1, skip1
        x0 = _rows(fusion1.project(y1), a0i, b0i, origin=2 * a1)
        del y1
        skip0 = decoder.convs[0](_upsampled_rows(up0, latent0, 8, a0i, b0i))
        y0 = fusion0.project(_rows(fusion0.fuse(x0, skip0), a0, b0, origin=a0i))
        del x0, skip0
        strip = _rows(head(y0), 4 * lo, 4 * hi, origin=2 * a0)
        del y0
        if out is None:
            out = strip.new_empty((*strip.shape[:2], 4 * size1, strip.shape[-1]))
        out[..., 4 * lo : 4 * hi, :] = strip
    assert out is not None
    return out, lowres
