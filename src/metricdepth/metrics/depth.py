"""Depth accuracy metrics, dataset aggregation, and the standard benchmark crops.

Per image, on valid pixels (finite ground truth > 0, inside the depth caps and the crop), with
d the prediction and g the ground truth, both in metres:

========== ==================================================================
d1, d2, d3 share of pixels with max(d/g, g/d) < 1.25, 1.25², 1.25³
abs_rel    mean |d − g| / g
sq_rel     mean (d − g)² / g
rmse       √ mean (d − g)²
rmse_log   √ mean (ln d − ln g)²
log10      mean |log10 d − log10 g|
silog      100 · √(mean e² − (mean e)²), e = ln d − ln g   (BTS / RSA variant, λ = 1, ×100)
========== ==================================================================

Predictions are clamped to the caps when caps are given (as BTS and RSA do), else to ≥ 1e-6 m.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

from ._tensor import as_float64, as_mask

__all__ = [
    "CROPS",
    "CROP_NAMES",
    "METRIC_NAMES",
    "SILOG_VARIANT",
    "DepthMetricAccumulator",
    "crop_mask",
    "depth_metrics",
    "kitti_benchmark_crop",
]

METRIC_NAMES = ("d1", "d2", "d3", "abs_rel", "sq_rel", "rmse", "rmse_log", "log10", "silog")
SILOG_VARIANT = "100*sqrt(mean(e^2) - mean(e)^2), e = ln(pred) - ln(gt) (BTS/RSA, lambda=1)"

# Fractions of (H, W): (top, bottom, left, right), applied with int() truncation as BTS does.
CROPS: dict[str, tuple[float, float, float, float]] = {
    "kitti_garg": (0.40810811, 0.99189189, 0.03594771, 0.96405229),
    "kitti_eigen": (0.3324324, 0.91351351, 0.0359477, 0.96405229),
}
NYU_EIGEN_BOX = (45, 471, 41, 601)
"""Eigen crop of the 480 × 640 NYUv2 test images: rows 45:471, columns 41:601."""
CROP_NAMES = ("nyu_eigen", *CROPS)
"""Every crop name :func:`crop_mask` knows (None means no crop)."""


def crop_mask(shape: tuple[int, int], crop: str | None) -> np.ndarray:
    """(H, W) bool mask of a standard crop: ``nyu_eigen``, ``kitti_garg``, ``kitti_eigen`` or None (all)."""
    height, width = shape
    mask = np.zeros(shape, dtype=bool)
    if crop is None:
        mask[:] = True
    elif crop == "nyu_eigen":
        if shape != (480, 640):
            raise ValueError(f"the NYU Eigen crop is defined on 480x640 images, got {width}x{height}")
        top, bottom, left, right = NYU_EIGEN_BOX
        mask[top:bottom, left:right] = True
    elif crop in CROPS:
        top, bottom, left, right = CROPS[crop]
        mask[int(top * height) : int(bottom * height), int(left * width) : int(right * width)] = True
    else:
        raise ValueError(f"unknown crop {crop!r}; choose {', '.join(CROP_NAMES)} or None")
    return mask


def kitti_benchmark_crop(array, height: int = 352, width: int = 1216):
    """The KITTI benchmark crop: bottom ``height`` rows, centred ``width`` columns of an (H, W, ...) array."""
    top = array.shape[0] - height
    left = (array.shape[1] - width) // 2
    if top < 0 or left < 0:
        raise ValueError(f"image {array.shape[1]}x{array.shape[0]} is smaller than the {width}x{height} crop")
    return array[top : top + height, left : left + width]


def _valid_pairs(pred, gt, mask, min_depth, max_depth) -> tuple[torch.Tensor, torch.Tensor]:
    p, g = as_float64(pred), as_float64(gt)
    if p.shape != g.shape:
        raise ValueError(f"prediction shape {tuple(p.shape)} does not match ground truth {tuple(g.shape)}")
    g = g.to(p.device)
    valid = as_mask(mask, g) & torch.isfinite(g) & (g > 0)
    if min_depth is not None:
        valid &= g > min_depth
    if max_depth is not None:
        valid &= g < max_depth
    p = torch.nan_to_num(p, nan=min_depth or 1e-6, posinf=max_depth or torch.finfo(torch.float64).max)
    p = p.clamp(min=min_depth if min_depth is not None else 1e-6, max=max_depth)
    return p[valid], g[valid]


def _sums(p: torch.Tensor, g: torch.Tensor) -> dict[str, float]:
    """Pixel sums from which every metric follows (so images can also be pooled)."""
    ratio = torch.maximum(p / g, g / p)
    e = torch.log(p) - torch.log(g)
    return {
        "n": float(p.numel()),
        "d1": float((ratio < 1.25).sum()),
        "d2": float((ratio < 1.25**2).sum()),
        "d3": float((ratio < 1.25**3).sum()),
        "abs_rel": float(((p - g).abs() / g).sum()),
        "sq_rel": float(((p - g) ** 2 / g).sum()),
        "se": float(((p - g) ** 2).sum()),
        "e2": float((e**2).sum()),
        "e": float(e.sum()),
        "log10": float((torch.log10(p) - torch.log10(g)).abs().sum()),
    }


def _from_sums(s: dict[str, float]) -> dict[str, float]:
    n = s["n"]
    if n == 0:
        return dict.fromkeys(METRIC_NAMES, math.nan)
    mean_e, mean_e2 = s["e"] / n, s["e2"] / n
    return {
        "d1": s["d1"] / n,
        "d2": s["d2"] / n,
        "d3": s["d3"] / n,
        "abs_rel": s["abs_rel"] / n,
        "sq_rel": s["sq_rel"] / n,
        "rmse": math.sqrt(s["se"] / n),
        "rmse_log": math.sqrt(mean_e2),
        "log10": s["log10"] / n,
        "silog": 100 * math.sqrt(max(mean_e2 - mean_e**2, 0.0)),
    }


def depth_metrics(
    pred, gt, mask=None, *, min_depth: float | None = None, max_depth: float | None = None
) -> dict[str, float]:
    """Metrics of one depth map (numpy or torch, (H, W) metres); NaN everywhere if no pixel is valid."""
    return _from_sums(_sums(*_valid_pairs(pred, gt, mask, min_depth, max_depth)))


class DepthMetricAccumulator:
    """Collect images, then aggregate two ways.

    ``per_image_mean()`` averages each image's metrics (the BTS / RSA protocol: an RMSE is a mean
    of per-image RMSEs); ``pooled()`` treats all valid pixels of all images as one set.
    """

    def __init__(self, *, min_depth: float | None = None, max_depth: float | None = None) -> None:
        self.min_depth, self.max_depth = min_depth, max_depth
        self.per_image: list[dict[str, float]] = []
        self._totals: dict[str, float] = {}

    def update(self, pred, gt, mask=None) -> dict[str, float]:
        """Add one image; returns its metrics."""
        sums = _sums(*_valid_pairs(pred, gt, mask, self.min_depth, self.max_depth))
        for key, value in sums.items():
            self._totals[key] = self._totals.get(key, 0.0) + value
        metrics = _from_sums(sums)
        self.per_image.append(metrics)
        return metrics

    def per_image_mean(self, names: Sequence[str] = METRIC_NAMES) -> dict[str, float]:
        scored = [m for m in self.per_image if not math.isnan(m["d1"])]
        return {k: float(np.mean([m[k] for m in scored])) if scored else math.nan for k in names}

    def pooled(self) -> dict[str, float]:
        return _from_sums(self._totals) if self._totals else dict.fromkeys(METRIC_NAMES, math.nan)
