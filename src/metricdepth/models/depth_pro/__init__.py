"""Depth Pro (Bochkovskii et al., 2024): checkpoint-compatible network, presets and weights."""

from .config import PRESETS, DepthProConfig
from .model import DepthPro
from .weights import CheckpointError

__all__ = ["PRESETS", "CheckpointError", "DepthPro", "DepthProConfig"]
