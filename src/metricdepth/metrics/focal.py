"""Focal-length accuracy as Depth Pro reports it: δ25%, δ50% and the median relative error."""

from __future__ import annotations

import numpy as np

__all__ = ["focal_metrics"]


def focal_metrics(pred_f_px, gt_f_px) -> dict[str, float]:
    """Over images: share whose |f − f*| / f* is below 25 % and 50 %, and the median of that error.

    Args:
        pred_f_px, gt_f_px: (N,) focal lengths in pixels (any array-like; scalars for one image).
    """
    pred = np.atleast_1d(np.asarray(pred_f_px, dtype=np.float64))
    gt = np.atleast_1d(np.asarray(gt_f_px, dtype=np.float64))
    if pred.shape != gt.shape or pred.ndim != 1 or pred.size == 0:
        raise ValueError(f"expected two equal-length lists of focal lengths, got {pred.shape} and {gt.shape}")
    if not (np.isfinite(gt).all() and (gt > 0).all()):
        raise ValueError("ground-truth focal lengths must be positive and finite")
    rel = np.abs(pred - gt) / gt
    return {
        "delta25": float(np.mean(rel < 0.25)),
        "delta50": float(np.mean(rel < 0.5)),
        "median_rel_err": float(np.median(rel)),
    }
