"""Depth Pro network: ``forward`` is export-friendly (tensors in, tensors out); ``infer`` delegates to
:mod:`metricdepth.inference` (images in, metres out); loading comes from :mod:`.loading`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from ...inference import infer_canonical
from ...prediction import Prediction
from .config import PRESETS, DepthProConfig
from .decoder import MultiresConvDecoder
from .encoder import DepthProEncoder
from .fov import FOVNetwork
from .loading import PretrainedMixin

__all__ = ["DepthPro"]


class DepthPro(PretrainedMixin, nn.Module):
    """Zero-shot metric monocular depth (Bochkovskii et al., 2024).

    Example:
        >>> model = DepthPro.from_pretrained("apple/DepthPro")      # doctest: +SKIP
        >>> pred = model.infer("photo.jpg")                          # doctest: +SKIP
        >>> pred.depth.shape, pred.focal_px, pred.focal_source       # doctest: +SKIP
    """

    config_class = DepthProConfig
    presets = PRESETS
    display_name = "Depth Pro"

    def __init__(self, config: DepthProConfig | None = None) -> None:
        super().__init__()
        self.config = config if config is not None else DepthProConfig.preset("depth-pro")
        self.encoder = DepthProEncoder(self.config)
        f = self.config.decoder_features
        self.decoder = MultiresConvDecoder((f, *self.config.encoder_feature_dims), f)
        self.head = nn.Sequential(
            nn.Conv2d(f, f // 2, kernel_size=3, padding=1),
            nn.ConvTranspose2d(f // 2, f // 2, kernel_size=2, stride=2, bias=True),
            nn.Conv2d(f // 2, self.config.head_features, kernel_size=3, padding=1),
            nn.ReLU(True),
            nn.Conv2d(self.config.head_features, 1, kernel_size=1),
            nn.ReLU(),
        )
        self.head[4].bias.data.fill_(0.0)
        self.fov = FOVNetwork(f, self.config.fov_encoder) if self.config.use_fov_head else None

    # ------------------------------------------------------------------ network
    @property
    def img_size(self) -> int:
        """Side of the square network input, pixels."""
        return self.config.img_size

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.parameters()).dtype

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor | None]:
        """Run the network.

        Args:
            x: (B, 3, S, S) image normalised to [-1, 1] (mean = std = 0.5), S = ``img_size``.

        Returns:
            canonical inverse depth (B, 1, S, S), non-negative, and the horizontal field of view
            (B,) in degrees (None without FOV head). Metric inverse depth = canonical · W / f_px.
        """
        if x.ndim != 4 or tuple(x.shape[1:]) != (3, self.img_size, self.img_size):
            raise ValueError(
                f"expected a (B, 3, {self.img_size}, {self.img_size}) tensor, got {tuple(x.shape)}"
            )
        features, lowres = self.decoder(self.encoder(x))
        canonical_inverse_depth = self.head(features)
        fov_deg = self.fov(x, lowres) if self.fov is not None else None
        return canonical_inverse_depth, fov_deg

    # -------------------------------------------------------------------- inference
    def infer(
        self,
        image: Any,
        *,
        f_px: float | Sequence[float] | Tensor | None = None,
        K: np.ndarray | Tensor | None = None,
        fov_deg: float | Sequence[float] | Tensor | None = None,
        focal: str = "auto",
        use_exif: bool = True,
        batch_size: int = 4,
    ) -> Prediction | list[Prediction]:
        """Metric depth for an image, a list of images (any sizes) or a (B, 3, H, W) tensor.

        The metric scale comes from, in order (``focal="auto"``): the camera you give (``f_px``,
        ``K`` or ``fov_deg``, at most one), the EXIF 35 mm focal length of a file (``use_exif``),
        the FOV head. ``focal="exif"`` or ``"predicted"`` insists on one source. Only the
        horizontal focal length fx sets the scale. See :func:`metricdepth.inference.infer_canonical`.

        Args:
            image: path, PIL image, (H, W, 3) uint8 array, (3, H, W) or (B, 3, H, W) tensor
                (float in [0, 1] or uint8), or a list of images of any sizes.
            f_px: horizontal focal length, pixels (scalar or one per image).
            K: (3, 3) or (B, 3, 3) intrinsics, pixels, OpenCV convention; returned as given.
            fov_deg: horizontal field of view, degrees (scalar or one per image).
            focal: "auto", "exif" or "predicted".
            use_exif: under "auto", use the EXIF focal length of files that carry one.
            batch_size: images per forward pass.

        Returns:
            A :class:`Prediction` for one image, a list for a list, a batched one for a 4-D tensor.
        """
        return infer_canonical(
            self,
            image,
            f_px=f_px,
            K=K,
            fov_deg=fov_deg,
            focal=focal,
            use_exif=use_exif,  # type: ignore[arg-type]
            batch_size=batch_size,
        )
