"""Depth Pro's multi-scale encoder: a tile pyramid through one patch ViT, plus a global image ViT."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ...ops import PointwiseConv2d, resize_bilinear
from ..vit import checkpointed_forward, checkpointing_active, create_vit, tokens_to_grid, vit_features
from .config import DepthProConfig
from .tiling import merge_tiles, split_tiles, tile_grid

__all__ = ["DepthProEncoder", "project_upsample", "resize"]


def resize(x: Tensor, scale_factor: float | None = None, size: tuple[int, int] | None = None) -> Tensor:
    """Bilinear resize as the reference does it (align_corners=False, no antialias), computed in fp32.

    Half-precision bilinear kernels are missing on some backends (MPS) and lose accuracy; the
    result is cast back to the input dtype.
    """
    out = resize_bilinear(x.float(), size=size, scale_factor=scale_factor)
    return out.to(x.dtype)


def project_upsample(
    dim_in: int, dim_out: int, upsample_layers: int, dim_int: int | None = None
) -> nn.Sequential:
    """1×1 projection (no bias) then ``upsample_layers`` stride-2 transposed convs (no bias): ×2 each."""
    dim_int = dim_out if dim_int is None else dim_int
    layers: list[nn.Module] = [PointwiseConv2d(dim_in, dim_int, bias=False)]
    for i in range(upsample_layers):
        layers.append(
            nn.ConvTranspose2d(dim_int if i == 0 else dim_out, dim_out, kernel_size=2, stride=2, bias=False)
        )
    return nn.Sequential(*layers)


class DepthProEncoder(nn.Module):
    """Encode a (B, 3, S, S) image into five feature maps, finest first.

    With G = tokens per tile side (24 for the official model, S = 1536):
    ``[latent0 (B, F, 32G, 32G), latent1 (B, d0, 16G, 16G), x0 (B, d1, 8G, 8G),
    x1 (B, d2, 4G, 4G), global (B, d3, 2G, 2G)]`` with F = decoder features and
    (d0, d1, d2, d3) = ``config.encoder_feature_dims``.
    """

    def __init__(self, config: DepthProConfig) -> None:
        super().__init__()
        self.config = config
        self.patch_encoder = create_vit(config.patch_encoder)
        self.image_encoder = create_vit(config.image_encoder)
        d0, d1, d2, d3 = config.encoder_feature_dims
        width = config.patch_encoder.embed_dim
        self.upsample_latent0 = project_upsample(width, config.decoder_features, 3, dim_int=d0)
        self.upsample_latent1 = project_upsample(width, d0, 2)
        self.upsample0 = project_upsample(width, d1, 1)
        self.upsample1 = project_upsample(width, d2, 1)
        self.upsample2 = project_upsample(width, d3, 1)
        self.upsample_lowres = nn.ConvTranspose2d(
            config.image_encoder.embed_dim, d3, kernel_size=2, stride=2, bias=True
        )
        self.fuse_lowres = PointwiseConv2d(2 * d3, d3, bias=True)

    def _merge_padding(self, overlap: float) -> int:
        """Tokens cropped per seam: half the overlap between neighbouring tiles."""
        tile, patch = self.config.tile_size, self.config.patch_encoder.patch_size
        _, stride = tile_grid(self.config.img_size, tile, overlap)
        return (tile - stride) // patch // 2

    def _patch_tokens(self, tiles: Tensor, chunk: int | None = None) -> tuple[Tensor, list[Tensor]]:
        """Patch-ViT tokens (N, 1 + G², C) and the hooked blocks' raw outputs as (N, C, G, G) maps.

        With gradient checkpointing on (``patch_encoder.set_grad_checkpointing()``) the blocks are
        recomputed in the backward pass, independently of whether the installed timm checkpoints
        ``forward_intermediates``; otherwise timm's ``forward_intermediates`` runs (export path), on at
        most ``chunk`` tiles at a time when ``chunk`` is given (tiles are independent).
        """
        vit, hooks = self.patch_encoder, list(self.config.hook_block_ids)
        if checkpointing_active(vit):
            tokens, taken = checkpointed_forward(vit, tiles, hooks)
            grid = self.config.patch_encoder.grid_size
            return tokens, [tokens_to_grid(t, grid) for t in taken]
        if chunk is None or chunk >= tiles.shape[0]:
            return vit.forward_intermediates(tiles, indices=hooks, norm=False, output_fmt="NCHW")
        parts = [
            vit.forward_intermediates(part, indices=hooks, norm=False, output_fmt="NCHW")
            for part in tiles.split(chunk)
        ]
        tokens = torch.cat([p[0] for p in parts])
        taken = [torch.cat([p[1][i] for p in parts]) for i in range(len(hooks))]
        return tokens, taken

    def forward(self, x: Tensor, *, tile_chunk: int | None = None, project_fine: bool = True) -> list[Tensor]:
        """Encode; ``tile_chunk`` bounds the tiles per patch-ViT batch. With ``project_fine=False`` the
        two finest levels come back as (B, C, 4G, 4G) token maps, before ``upsample_latent0`` /
        ``upsample_latent1`` (for :func:`~.chunking.decode_in_strips`)."""
        batch = x.shape[0]
        tile = self.config.tile_size
        grid = self.config.patch_encoder.grid_size
        (_, overlap0), (scale1, overlap1), (scale2, _) = self.config.pyramid

        x1 = resize(x, scale_factor=scale1)
        x2 = resize(x, scale_factor=scale2)
        tiles0 = split_tiles(x, tile, overlap0)
        tiles1 = split_tiles(x1, tile, overlap1)
        n0, n1 = tiles0.shape[0], tiles1.shape[0]

        # All 35·B tiles through the shared patch ViT, in one batch or in chunks of ``tile_chunk``.
        tokens, (hook0, hook1) = self._patch_tokens(torch.cat([tiles0, tiles1, x2], dim=0), tile_chunk)
        del tiles0, tiles1
        features = tokens_to_grid(tokens, grid)
        pad0, pad1 = self._merge_padding(overlap0), self._merge_padding(overlap1)
        merged0 = merge_tiles(features[:n0], batch, pad0)
        merged1 = merge_tiles(features[n0 : n0 + n1], batch, pad1)
        merged2 = features[n0 + n1 :]
        # Only the finest-scale tiles feed the two highest-resolution levels.
        latent0 = merge_tiles(hook0[:n0], batch, pad0)
        latent1 = merge_tiles(hook1[:n0], batch, pad0)
        del tokens, hook0, hook1

        global_features = tokens_to_grid(vit_features(self.image_encoder, x2), grid)
        fused = self.fuse_lowres(
            torch.cat([self.upsample2(merged2), self.upsample_lowres(global_features)], dim=1)
        )
        return [
            self.upsample_latent0(latent0) if project_fine else latent0,
            self.upsample_latent1(latent1) if project_fine else latent1,
            self.upsample0(merged0),
            self.upsample1(merged1),
            fused,
        ]
