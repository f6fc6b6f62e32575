"""Evaluation metrics: depth accuracy, Depth Pro's boundary metrics, focal-length accuracy."""

from .boundary import boundary_f1, boundary_recall

__all__ = ["boundary_f1", "boundary_recall"]
