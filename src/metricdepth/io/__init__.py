"""Reading images and writing predictions."""

from .images import ImageLoadError, LoadedImage, load_image
from .writers import read_depth_png, save_prediction

__all__ = ["ImageLoadError", "LoadedImage", "load_image", "read_depth_png", "save_prediction"]
