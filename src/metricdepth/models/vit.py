"""ViT backbones built with timm, in the layout Depth Pro's checkpoint uses.

A DINOv2-style ViT (class token, LayerScale, pre-norm, final LayerNorm, eps 1e-6) at the tile size
of the config; its state-dict keys are timm's (``cls_token``, ``pos_embed``, ``patch_embed.proj``,
``blocks.N.{norm1,attn.qkv,attn.proj,ls1.gamma,norm2,mlp.fc1,mlp.fc2,ls2.gamma}``, ``norm``).
"""

from __future__ import annotations

from dataclasses import dataclass

from timm.models.vision_transformer import VisionTransformer
from torch import Tensor

__all__ = ["ViTConfig", "create_vit", "tokens_to_grid"]


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
