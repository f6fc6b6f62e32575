"""Benchmark readers: each yields :class:`~metricdepth.data.Sample` dicts from a dataset's own layout."""

from .folder import FolderDataset
from .middlebury import Middlebury2014, middlebury_calibration

__all__ = ["FolderDataset", "Middlebury2014", "middlebury_calibration"]
