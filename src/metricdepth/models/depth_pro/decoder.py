"""DPT-like multi-resolution fusion decoder of Depth Pro."""

from __future__ import annotations

from torch import Tensor, nn

from ...ops import PointwiseConv2d

__all__ = ["FeatureFusionBlock", "MultiresConvDecoder", "ResidualBlock"]


class ResidualBlock(nn.Module):
    """x + conv3×3(relu(conv3×3(relu(x)))), pre-activation, biased convs."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.residual = nn.Sequential(
            nn.ReLU(inplace=False),
            nn.Conv2d(channels, channels, kernel_size=3, padding=1, bias=True),
            nn.ReLU(inplace=False),
            nn.Conv2d(channels, channels, kernel_size=3, padding=1, bias=True),
        )

    def forward(self, x: Tensor) -> Tensor:
        return x + self.residual(x)


class FeatureFusionBlock(nn.Module):
    """Fuse a skip connection into the running features, optionally upsample ×2, project 1×1."""

    def __init__(self, channels: int, upsample: bool) -> None:
        super().__init__()
        self.resnet1 = ResidualBlock(channels)
        self.resnet2 = ResidualBlock(channels)
        self.deconv = (
            nn.ConvTranspose2d(channels, channels, kernel_size=2, stride=2, bias=False) if upsample else None
        )
        self.out_conv = PointwiseConv2d(channels, channels, bias=True)

    def fuse(self, x: Tensor, skip: Tensor | None = None) -> Tensor:
        """The fusion at the input resolution: ``resnet2(x + resnet1(skip))``."""
        if skip is not None:
            x = x + self.resnet1(skip)
        return self.resnet2(x)

    def project(self, x: Tensor) -> Tensor:
        """Upsample ×2 (if the block does), project 1×1: output row r reads input row r // 2 only."""
        if self.deconv is not None:
            x = self.deconv(x)
        return self.out_conv(x)

    def forward(self, x: Tensor, skip: Tensor | None = None) -> Tensor:
        return self.project(self.fuse(x, skip))


class MultiresConvDecoder(nn.Module):
    """Fuse encoder levels coarse to fine.

    Args:
        dims_encoder: channels of the encoder levels, finest first.
        dim_decoder: decoder channels F.

    ``forward(levels)`` returns ``(features (B, F, H0, W0), lowres (B, F, H4, W4))``: the fused
    map at the finest level's resolution and the projected coarsest level (input of the FOV head).
    """

    def __init__(self, dims_encoder: tuple[int, ...], dim_decoder: int) -> None:
        super().__init__()
        first = (
            nn.Identity()
            if dims_encoder[0] == dim_decoder
            else PointwiseConv2d(dims_encoder[0], dim_decoder, bias=False)
        )
        self.convs = nn.ModuleList(
            [first]
            + [nn.Conv2d(dim, dim_decoder, kernel_size=3, padding=1, bias=False) for dim in dims_encoder[1:]]
        )
        self.fusions = nn.ModuleList(
            [FeatureFusionBlock(dim_decoder, upsample=i != 0) for i in range(len(dims_encoder))]
        )

    def forward(self, levels: list[Tensor]) -> tuple[Tensor, Tensor]:
        features, lowres = self.fuse_down_to(levels, 0)
        return self.fusions[0].project(features), lowres

    def fuse_down_to(self, levels: list[Tensor], level: int) -> tuple[Tensor, Tensor]:
        """Fuse from the coarsest level down to ``level``, stopping before that block's projection.

        Returns ``(fusions[level].fuse(...) output, lowres)``; levels finer than ``level`` are not read.
        """
        last = len(levels) - 1
        lowres = self.convs[last](levels[last])
        features = self.fusions[last].fuse(lowres)
        for i in range(last - 1, level - 1, -1):
            features = self.fusions[i].fuse(self.fusions[i + 1].project(features), self.convs[i](levels[i]))
        return features, lowres
