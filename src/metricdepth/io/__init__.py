"""Reading images, writing predictions, atomic files (exports load lazily: no torch at import)."""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "ImageLoadError": "metricdepth.io.images",
    "LoadedImage": "metricdepth.io.images",
    "load_image": "metricdepth.io.images",
    "read_depth_png": "metricdepth.io.writers",
    "save_prediction": "metricdepth.io.writers",
    "atomic_path": "metricdepth.io.atomic",
    "FileGroup": "metricdepth.io.atomic",
}

__all__ = [
    "FileGroup",
    "ImageLoadError",
    "LoadedImage",
    "atomic_path",
    "load_image",
    "read_depth_png",
    "save_prediction",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'metricdepth.io' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
