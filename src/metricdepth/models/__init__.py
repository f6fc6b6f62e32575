"""Depth models."""

from .depth_pro import DepthPro, DepthProConfig

__all__ = ["DepthPro", "DepthProConfig"]
