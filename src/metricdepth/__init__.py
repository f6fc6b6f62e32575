"""metricdepth: metric depth (metres) from a single photograph.

Exports are lazy: ``import metricdepth`` (and ``metricdepth --help``) loads neither torch nor timm;
the first use of a name imports the module that defines it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._lazy import lazy_exports

__version__ = "0.1.0"

_EXPORTS = {
    "PRESETS": "metricdepth.models.depth_pro",
    "CheckpointError": "metricdepth.models.depth_pro",
    "DepthPro": "metricdepth.models.depth_pro",
    "DepthProConfig": "metricdepth.models.depth_pro",
    "DepthSource": "metricdepth.inference",
    "ImageLoadError": "metricdepth.io.images",
    "LoadedImage": "metricdepth.io.images",
    "Prediction": "metricdepth.prediction",
    "focal_from_35mm": "metricdepth.camera",
    "focal_to_fov": "metricdepth.camera",
    "fov_to_focal": "metricdepth.camera",
    "load_image": "metricdepth.io.images",
    "read_depth_png": "metricdepth.io.writers",
    "save_prediction": "metricdepth.io.writers",
}

__all__ = [
    "PRESETS",
    "CheckpointError",
    "DepthPro",
    "DepthProConfig",
    "DepthSource",
    "ImageLoadError",
    "LoadedImage",
    "Prediction",
    "focal_from_35mm",
    "focal_to_fov",
    "fov_to_focal",
    "load_image",
    "read_depth_png",
    "save_prediction",
]

if TYPE_CHECKING:
    from .camera import focal_from_35mm, focal_to_fov, fov_to_focal
    from .inference import DepthSource
    from .io.images import ImageLoadError, LoadedImage, load_image
    from .io.writers import read_depth_png, save_prediction
    from .models.depth_pro import PRESETS, CheckpointError, DepthPro, DepthProConfig
    from .prediction import Prediction


__getattr__, __dir__ = lazy_exports("metricdepth", _EXPORTS, globals())
