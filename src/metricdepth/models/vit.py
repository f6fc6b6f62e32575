"""ViT backbones built with timm, in the layout Depth Pro's checkpoint uses.

A DINOv2-style ViT (class token, LayerScale, pre-norm, final LayerNorm, eps 1e-6) at the tile size
of the config; its state-dict keys are timm's (``cls_token``, ``pos_embed``, ``patch_embed.proj``,
``blocks.N.{norm1,attn.qkv,attn.proj,ls1.gamma,norm2,mlp.fc1,mlp.fc2,ls2.gamma}``, ``norm``).

Gradient checkpointing: ``vit.set_grad_checkpointing(True)`` sets timm's flag; the Depth Pro modules then
run the ViT through :func:`vit_features` / :func:`checkpointed_forward`, which recompute each block in the
backward pass (non-reentrant ``torch.utils.checkpoint``) whatever timm version is installed (timm only
checkpoints ``forward_intermediates`` from 1.0.16 on, and older versions use reentrant checkpoints).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from timm.models.vision_transformer import VisionTransformer
from torch import Tensor
from torch.utils.checkpoint import checkpoint

__all__ = [
    "ViTConfig",
    "checkpointed_forward",
    "checkpointing_active",
    "create_vit",
    "tokens_to_grid",
    "vit_features",
]


@dataclass(frozen=True)
class ViTConfig:
    """A plain ViT (timm ``VisionTransformer``) with a class token and LayerScale.

    Args:
        embed_dim: token width.
        depth: number of transformer blocks.
        num_heads: attention heads.
        img_size: square input side in pixels (the tile size).
        patch_size: patch side in pixels.
        mlp_ratio: MLP hidden width / ``embed_dim``.
    """

    embed_dim: int
    depth: int
    num_heads: int
    img_size: int = 384
    patch_size: int = 16
    mlp_ratio: float = 4.0

    @property
    def grid_size(self) -> int:
        """Tokens per side."""
        return self.img_size // self.patch_size


def create_vit(config: ViTConfig) -> VisionTransformer:
    """Build a headless timm ViT for ``config``; ``forward_features`` gives (N, 1 + G², C) tokens."""
    return VisionTransformer(
        img_size=config.img_size,
        patch_size=config.patch_size,
        embed_dim=config.embed_dim,
        depth=config.depth,
        num_heads=config.num_heads,
        mlp_ratio=config.mlp_ratio,
        qkv_bias=True,
        init_values=1e-5,
        class_token=True,
        num_classes=0,
        global_pool="",
    )


def tokens_to_grid(tokens: Tensor, grid_size: int) -> Tensor:
    """Drop the class token and fold patch tokens into a map.

    Args:
        tokens: (N, 1 + G², C) ViT output.
        grid_size: G, tokens per side.

    Returns:
        (N, C, G, G) feature map, row-major token order.
    """
    patches = tokens[:, 1:]
    return patches.transpose(1, 2).reshape(tokens.shape[0], -1, grid_size, grid_size)


def checkpointing_active(vit: VisionTransformer) -> bool:
    """Whether ``vit`` has gradient checkpointing enabled and autograd is recording (so it would pay off)."""
    return bool(getattr(vit, "grad_checkpointing", False)) and torch.is_grad_enabled()


def checkpointed_forward(
    vit: VisionTransformer, x: Tensor, indices: Sequence[int] = ()
) -> tuple[Tensor, list[Tensor]]:
    """timm's ViT forward with every block checkpointed (non-reentrant) when :func:`checkpointing_active`.

    The same operations as ``vit.forward_features`` / ``forward_intermediates(norm=False)``, so the
    outputs are equal; only the memory/compute trade-off of the backward pass differs.

    Args:
        vit: a timm ``VisionTransformer``.
        x: (N, 3, H, W) images.
        indices: 0-based blocks whose raw (un-normalised) outputs to return.

    Returns:
        (N, 1 + G², C) tokens after the final norm, and the tokens of ``indices`` blocks, each
        (N, 1 + G², C), in the order of ``indices``.
    """
    recompute = checkpointing_active(vit)
    wanted = {index: position for position, index in enumerate(indices)}
    taken: list[Tensor | None] = [None] * len(wanted)
    x = vit.norm_pre(vit.patch_drop(vit._pos_embed(vit.patch_embed(x))))
    for i, block in enumerate(vit.blocks):
        x = checkpoint(block, x, use_reentrant=False) if recompute else block(x)
        if i in wanted:
            taken[wanted[i]] = x
    if any(t is None for t in taken):
        raise IndexError(f"block indices {list(indices)} out of range for a {len(vit.blocks)}-block ViT")
    return vit.norm(x), [t for t in taken if t is not None]


def vit_features(vit: VisionTransformer, x: Tensor) -> Tensor:
    """``vit.forward_features(x)``, (N, 1 + G², C); blocks checkpointed if :func:`checkpointing_active`."""
    if checkpointing_active(vit):
        return checkpointed_forward(vit, x)[0]
    return vit.forward_features(x)
