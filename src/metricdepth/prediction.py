"""The typed result every depth source returns: what it holds, its unit, and where its camera came from."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from torch import Tensor

__all__ = ["DepthKind", "FocalSource", "Prediction"]

FocalSource = Literal["user", "exif", "predicted"]
"""Where a focal length came from: given by the user, read from EXIF, or estimated by the model."""

DepthKind = Literal["metric", "relative"]
"""``metric``: depth in metres. ``relative``: affine-invariant inverse depth (unknown scale and shift)."""


@dataclass
class Prediction:
    """Depth of one image (or a batch of same-size images: every array gains a leading B axis).

    Attributes:
        depth: (H, W) float32 depth along the optical axis, metres; ``None`` for a relative prediction.
        inverse_depth: (H, W) float32. Metric: 1 / metres (``depth == 1 / inverse_depth``).
            Relative: affine-invariant inverse depth, ``a · (1 / depth) + b`` for unknown a > 0, b.
        kind: ``"metric"`` or ``"relative"``: which of the two ``inverse_depth`` is.
        focal_px: horizontal focal length the metric scale used, pixels (batch: (B,) tensor);
            ``None`` for sources without a camera.
        focal_source: where ``focal_px`` came from: "user", "exif" or "predicted" (batch: list).
        fov_deg: horizontal field of view matching ``focal_px``, degrees (batch: (B,) tensor).
        intrinsics: (3, 3) pinhole K used, OpenCV convention; principal point at the image centre
            unless K was given.
        predicted_fov_deg: the model's own FOV estimate, degrees, even when another focal was used;
            ``None`` for a model without FOV head (batch: (B,) tensor).
        caption: the caption a language-conditioned source (RSA) scaled the depth with (batch: list);
            ``None`` for other sources.
    """

    depth: Tensor | None
    inverse_depth: Tensor
    kind: DepthKind = "metric"
    focal_px: float | Tensor | None = None
    focal_source: FocalSource | list[FocalSource] | None = None
    fov_deg: float | Tensor | None = None
    intrinsics: Tensor | None = None
    predicted_fov_deg: float | Tensor | None = None
    caption: str | list[str] | None = None

    def __post_init__(self) -> None:
        if self.kind not in ("metric", "relative"):
            raise ValueError(f"kind must be 'metric' or 'relative', got {self.kind!r}")
        if self.kind == "metric" and self.depth is None:
            raise ValueError("a metric prediction needs depth")
        if self.kind == "relative" and self.depth is not None:
            raise ValueError("a relative prediction has no metric depth (depth=None)")

    @property
    def is_metric(self) -> bool:
        return self.kind == "metric"

    @property
    def batched(self) -> bool:
        return self.inverse_depth.ndim == 3

    @property
    def image_size(self) -> tuple[int, int]:
        """(H, W) of the image the prediction belongs to."""
        height, width = self.inverse_depth.shape[-2:]
        return int(height), int(width)

    def __len__(self) -> int:
        return self.inverse_depth.shape[0] if self.batched else 1

    def __getitem__(self, index: int) -> Prediction:
        """The prediction of one image of a batch."""
        if not self.batched:
            if index not in (0, -1):
                raise IndexError(index)
            return self

        def pick(value: Any) -> Any:
            if value is None:
                return None
            if isinstance(value, Tensor):
                return float(value[index]) if value.ndim == 1 else value[index]
            return value[index] if isinstance(value, list) else value

        return Prediction(
            depth=pick(self.depth),
            inverse_depth=self.inverse_depth[index],
            kind=self.kind,
            focal_px=pick(self.focal_px),
            focal_source=pick(self.focal_source),
            fov_deg=pick(self.fov_deg),
            intrinsics=pick(self.intrinsics),
            predicted_fov_deg=pick(self.predicted_fov_deg),
            caption=pick(self.caption),
        )

    def to_numpy(self) -> dict[str, np.ndarray | float | str | None]:
        """Plain numpy/Python values of a single-image prediction (``None`` for what it lacks)."""
        if self.batched:
            raise ValueError("to_numpy() takes a single-image prediction; index the batch first")

        def scalar(value: float | Tensor | None) -> float | None:
            return None if value is None else float(value)

        return {
            "kind": self.kind,
            "depth": None if self.depth is None else self.depth.float().cpu().numpy(),
            "inverse_depth": self.inverse_depth.float().cpu().numpy(),
            "focal_px": scalar(self.focal_px),
            "focal_source": self.focal_source,  # type: ignore[dict-item]
            "fov_deg": scalar(self.fov_deg),
            "intrinsics": None if self.intrinsics is None else self.intrinsics.cpu().double().numpy(),
            "predicted_fov_deg": scalar(self.predicted_fov_deg),
            "caption": self.caption,  # type: ignore[dict-item]
        }
