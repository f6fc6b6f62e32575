"""Depth Pro configuration: one dataclass, named presets.

The geometry the reference hard-codes (1536² input, three pyramid scales, tile overlaps, merge
paddings) is derived here from the ViT tile size, so smaller presets keep the same structure.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any

from ..vit import ViTConfig

__all__ = ["PRESETS", "DepthProConfig"]


DINOV2_L16_384 = ViTConfig(embed_dim=1024, depth=24, num_heads=16)
VIT_S16_384 = ViTConfig(embed_dim=384, depth=12, num_heads=6)
VIT_TINY16_128 = ViTConfig(embed_dim=64, depth=4, num_heads=2, img_size=128)


@dataclass(frozen=True)
class DepthProConfig:
    """Architecture of a Depth Pro network.

    Args:
        patch_encoder: ViT that encodes the 35 pyramid tiles (weights shared across tiles).
        image_encoder: ViT that encodes the whole image at tile resolution.
        fov_encoder: ViT of the field-of-view head; ``None`` builds a model without FOV head
            (metric depth then needs a focal length from the user or EXIF).
        hook_block_ids: 0-based patch-encoder blocks whose raw outputs feed the two
            highest-resolution decoder levels (the reference taps blocks 5 and 11).
        encoder_feature_dims: channels of the encoder outputs (latent1, x0 tiles, x1 tiles, global).
        decoder_features: channels of the DPT-like decoder.
        head_features: channels before the final 1×1 conv of the depth head.
    """

    patch_encoder: ViTConfig = DINOV2_L16_384
    image_encoder: ViTConfig = DINOV2_L16_384
    fov_encoder: ViTConfig | None = DINOV2_L16_384
    hook_block_ids: tuple[int, int] = (5, 11)
    encoder_feature_dims: tuple[int, int, int, int] = (256, 512, 1024, 1024)
    decoder_features: int = 256
    head_features: int = 32
    name: str = field(default="custom", compare=False)

    # Pyramid geometry, fixed by the method: (scale, tile overlap) from finest to coarsest.
    # Scale 1 is cut into 5×5 tiles, scale 1/2 into 3×3, scale 1/4 is one tile.
    pyramid: tuple[tuple[float, float], ...] = ((1.0, 0.25), (0.5, 0.5), (0.25, 0.0))

    def __post_init__(self) -> None:
        tile = self.patch_encoder
        if tile.img_size % tile.patch_size:
            raise ValueError(f"tile size {tile.img_size} is not a multiple of patch size {tile.patch_size}")
        if tile.grid_size % 8:
            raise ValueError(
                f"patch encoder grid {tile.grid_size} must be a multiple of 8 so tile overlaps "
                "fall on whole tokens"
            )
        for other in (self.image_encoder, self.fov_encoder):
            if other is not None and (other.img_size, other.patch_size) != (tile.img_size, tile.patch_size):
                raise ValueError(
                    "image and FOV encoders must use the patch encoder's img_size and patch_size"
                )
        if not 0 <= self.hook_block_ids[0] < self.hook_block_ids[1] < tile.depth:
            raise ValueError(
                f"hook_block_ids {self.hook_block_ids} must be increasing block indices < {tile.depth}"
            )
        if self.decoder_features % 8:
            raise ValueError("decoder_features must be a multiple of 8 (the FOV head halves it three times)")

    @property
    def tile_size(self) -> int:
        """Side of one pyramid tile, pixels (384 for the official model)."""
        return self.patch_encoder.img_size

    @property
    def img_size(self) -> int:
        """Side of the square network input, pixels (1536 for the official model)."""
        return 4 * self.tile_size

    @property
    def use_fov_head(self) -> bool:
        return self.fov_encoder is not None

    @classmethod
    def preset(cls, name: str) -> DepthProConfig:
        """Return a named preset: ``depth-pro``, ``vits`` or ``tiny`` (see :data:`PRESETS`)."""
        try:
            return PRESETS[name]
        except KeyError:
            raise ValueError(f"unknown Depth Pro preset {name!r}; choose one of {sorted(PRESETS)}") from None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DepthProConfig:
        data = dict(data)
        for key in ("patch_encoder", "image_encoder", "fov_encoder"):
            if data.get(key) is not None:
                data[key] = ViTConfig(**data[key])
        for key in ("hook_block_ids", "encoder_feature_dims"):
            if key in data:
                data[key] = tuple(data[key])
        if "pyramid" in data:
            data["pyramid"] = tuple(tuple(level) for level in data["pyramid"])
        return cls(**data)

    @classmethod
    def from_json(cls, text: str) -> DepthProConfig:
        return cls.from_dict(json.loads(text))


PRESETS: dict[str, DepthProConfig] = {
    # The released model: three DINOv2-L/16 ViTs at 384², 1536² input. Loads apple/DepthPro strictly.
    "depth-pro": DepthProConfig(name="depth-pro"),
    # ViT-S/16 encoders at the same 1536² geometry, for training small models.
    "vits": DepthProConfig(
        patch_encoder=VIT_S16_384,
        image_encoder=VIT_S16_384,
        fov_encoder=VIT_S16_384,
        hook_block_ids=(2, 5),
        encoder_feature_dims=(128, 256, 384, 384),
        decoder_features=128,
        name="vits",
    ),
    # 128² tiles (512² input), 4 blocks of width 64: the full structure in a few MB, for tests.
    "tiny": DepthProConfig(
        patch_encoder=VIT_TINY16_128,
        image_encoder=VIT_TINY16_128,
        fov_encoder=VIT_TINY16_128,
        hook_block_ids=(0, 1),
        encoder_feature_dims=(16, 32, 64, 64),
        decoder_features=16,
        head_features=8,
        name="tiny",
    ),
}
