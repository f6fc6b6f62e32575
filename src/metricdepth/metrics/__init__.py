"""Evaluation metrics: depth accuracy, Depth Pro's boundary metrics, focal-length accuracy."""

from .boundary import boundary_f1, boundary_recall
from .depth import (
    METRIC_NAMES,
    SILOG_VARIANT,
    DepthMetricAccumulator,
    crop_mask,
    depth_metrics,
    kitti_benchmark_crop,
)
from .focal import focal_metrics

__all__ = [
    "METRIC_NAMES",
    "SILOG_VARIANT",
    "DepthMetricAccumulator",
    "boundary_f1",
    "boundary_recall",
    "crop_mask",
    "depth_metrics",
    "focal_metrics",
    "kitti_benchmark_crop",
]
