"""metricdepth: metric depth (metres) from a single photograph."""

from .camera import focal_from_35mm, focal_to_fov, fov_to_focal
from .io.images import ImageLoadError, LoadedImage, load_image
from .io.writers import read_depth_png, save_prediction
from .models.depth_pro import PRESETS, CheckpointError, DepthPro, DepthProConfig
from .prediction import Prediction

__version__ = "0.1.0"

__all__ = [
    "PRESETS",
    "CheckpointError",
    "DepthPro",
    "DepthProConfig",
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
