"""Field-of-view head: its own ViT plus the decoder's frozen coarsest features → horizontal FOV."""

from __future__ import annotations

from torch import Tensor, nn

from ..vit import ViTConfig, create_vit, tokens_to_grid, vit_features
from .encoder import resize

__all__ = ["FOVNetwork"]


class FOVNetwork(nn.Module):
    """Predict the horizontal field of view, degrees.

    Args:
        num_features: decoder channels F.
        vit: config of the FOV encoder (input: the image at tile resolution, G tokens per side).

    ``forward(x (B, 3, S, S) normalised image, lowres (B, F, 2G, 2G))`` → (B,) degrees,
    a raw linear output. ``lowres`` is detached: the depth features are frozen for this head.
    """

    def __init__(self, num_features: int, vit: ViTConfig) -> None:
        super().__init__()
        f = num_features
        self.grid_size = vit.grid_size
        self.encoder = nn.Sequential(create_vit(vit), nn.Linear(vit.embed_dim, f // 2))
        self.downsample = nn.Sequential(
            nn.Conv2d(f, f // 2, kernel_size=3, stride=2, padding=1), nn.ReLU(True)
        )
        self.head = nn.Sequential(
            nn.Conv2d(f // 2, f // 4, kernel_size=3, stride=2, padding=1),
            nn.ReLU(True),
            nn.Conv2d(f // 4, f // 8, kernel_size=3, stride=2, padding=1),
            nn.ReLU(True),
            nn.Conv2d(f // 8, 1, kernel_size=self.grid_size // 4),
        )

    def forward(self, x: Tensor, lowres: Tensor) -> Tensor:
        vit, project = self.encoder[0], self.encoder[1]
        tokens = project(vit_features(vit, resize(x, scale_factor=0.25)))
        features = tokens_to_grid(tokens, self.grid_size) + self.downsample(lowres.detach())
        return self.head(features).flatten()
