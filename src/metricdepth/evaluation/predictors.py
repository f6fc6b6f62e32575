"""Depth sources for evaluation: ``predict(sample) -> (depth (H, W) metres, focal_px or None)``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from ..data.sample import Sample

__all__ = ["ModelPredictor", "PredictionFolder"]


class PredictionFolder:
    """Saved predictions: ``ROOT/NAME.npz`` (or the one ``.npz`` in ``ROOT/NAME/``) with key ``depth``
    in metres and optionally ``focal_px``, as ``metricdepth predict`` writes them."""

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise FileNotFoundError(f"{self.root}: predictions folder not found")

    def predict(self, sample: Sample) -> tuple[np.ndarray, float | None]:
        name = sample["name"]
        path = self.root / f"{name}.npz"
        if not path.is_file():
            found = sorted((self.root / name).glob("*.npz")) if (self.root / name).is_dir() else []
            if len(found) != 1:
                raise FileNotFoundError(
                    f"{self.root}: no prediction {name}.npz (nor a single .npz in {name}/)"
                )
            path = found[0]
        with np.load(path) as data:
            if "depth" not in data.files:
                raise ValueError(f"{path}: no 'depth' array")
            focal = float(data["focal_px"]) if "focal_px" in data.files else None
            return data["depth"].astype(np.float32), focal


class ModelPredictor:
    """Predict with a model's ``infer`` (zero-shot: the model's own focal length, never EXIF)."""

    def __init__(self, model: Any) -> None:
        self.model = model

    def predict(self, sample: Sample) -> tuple[np.ndarray, float | None]:
        prediction = self.model.infer(sample["image"], use_exif=False)
        return prediction.depth.float().cpu().numpy(), float(prediction.focal_px)
