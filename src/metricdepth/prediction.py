"""The typed result of a depth model's ``infer``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from torch import Tensor

__all__ = ["FocalSource", "Prediction"]

FocalSource = Literal["user", "exif", "predicted"]


@dataclass
class Prediction:
    """Metric depth of one image (or a batch: every array gains a leading B axis).

    Attributes:
        depth: (H, W) float32 depth along the optical axis, metres.
        inverse_depth: (H, W) float32, 1 / metres (``depth == 1 / inverse_depth``).
        focal_px: horizontal focal length used for the metric scale, pixels (batch: (B,) tensor).
        focal_source: where ``focal_px`` came from: "user", "exif" or "predicted" (batch: list).
        fov_deg: horizontal field of view matching ``focal_px``, degrees (batch: (B,) tensor).
        intrinsics: (3, 3) pinhole K used; principal point at the image centre unless K was given.
        predicted_fov_deg: the FOV head's own estimate, degrees, even when another focal was used;
            ``None`` for a model without FOV head (batch: (B,) tensor).
    """

    depth: Tensor
    inverse_depth: Tensor
    focal_px: float | Tensor
    focal_source: FocalSource | list[FocalSource]
    fov_deg: float | Tensor
    intrinsics: Tensor
    predicted_fov_deg: float | Tensor | None = None

    @property
    def batched(self) -> bool:
        return self.depth.ndim == 3

    def __len__(self) -> int:
        return self.depth.shape[0] if self.batched else 1

    def __getitem__(self, index: int) -> Prediction:
        """The prediction of one image of a batch."""
        if not self.batched:
            if index not in (0, -1):
                raise IndexError(index)
            return self

        def pick(value):
            return None if value is None else float(value[index]) if isinstance(value, Tensor) else value

        return Prediction(
            depth=self.depth[index],
            inverse_depth=self.inverse_depth[index],
            focal_px=pick(self.focal_px),
            focal_source=self.focal_source[index],
            fov_deg=pick(self.fov_deg),
            intrinsics=self.intrinsics[index],
            predicted_fov_deg=pick(self.predicted_fov_deg),
        )

    def to_numpy(self) -> dict[str, np.ndarray | float | str | None]:
        """Plain numpy/Python values of a single-image prediction."""
        if self.batched:
            raise ValueError("to_numpy() takes a single-image prediction; index the batch first")
        return {
            "depth": self.depth.float().cpu().numpy(),
            "inverse_depth": self.inverse_depth.float().cpu().numpy(),
            "focal_px": float(self.focal_px),
            "focal_source": self.focal_source,
            "fov_deg": float(self.fov_deg),
            "intrinsics": self.intrinsics.double().cpu().numpy(),
            "predicted_fov_deg": None if self.predicted_fov_deg is None else float(self.predicted_fov_deg),
        }
