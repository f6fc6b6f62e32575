"""Depth sources for evaluation: ``predict(sample) -> Prediction``, zero-shot unless asked otherwise.

* :class:`ModelPredictor` runs any :class:`~metricdepth.inference.DepthSource` on a sample's image with
  the model's own focal length (never EXIF, unless ``use_exif``), and can save what it predicted.
* :class:`PredictionFolder` reads what ``metricdepth predict`` (or ``evaluate --save-predictions``)
  wrote, keyed by sample name, and keeps it zero-shot: depth that was scaled with an EXIF or user focal
  length is rescaled to the model's own estimate (depth ∝ focal length, D = f_px / (W · C)), and only
  the model's own focal length is scored.
"""

from __future__ import annotations

import math
import os
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..camera import intrinsics_matrix
from ..data.sample import Sample
from ..inference import MAX_INVERSE_DEPTH, MIN_INVERSE_DEPTH, focal_from_predicted_fov
from ..prediction import Prediction

__all__ = ["ModelPredictor", "PredictionFolder", "model_focal_px", "read_prediction"]

MODEL_FOCAL_SOURCE = "predicted"


def read_prediction(path: str | os.PathLike, *, use_exif: bool = False) -> Prediction:
    """A saved ``NAME.npz`` as a :class:`Prediction`, zero-shot by default.

    Reads ``depth`` (metres) or ``inverse_depth`` (relative, ``kind="relative"``), and the camera
    fields ``metricdepth predict`` stores (``focal_px``, ``focal_source``, ``predicted_fov_deg``).
    Metric depth computed with an EXIF or user focal length is rescaled by f_predicted / f_used (depth
    is proportional to the focal length), unless ``use_exif`` and the source was EXIF; the result's
    focal is then the model's own, and the depth is clamped to the network's range again (NaN,
    negative or zero depth is left as it is, for the evaluation to report).

    Raises:
        ValueError: the file is unreadable or lacks the maps; the message names it.
    """
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            fields = {key: data[key] for key in data.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
        raise ValueError(f"{path}: not a readable .npz prediction ({type(err).__name__}: {err})") from None
    if "depth" not in fields and "inverse_depth" not in fields:
        raise ValueError(
            f"{path}: no 'depth' (or 'inverse_depth') array; has {', '.join(fields) or 'nothing'}"
        )

    def scalar(key: str) -> float | None:
        if key not in fields:
            return None
        try:
            value = float(fields[key])
        except (TypeError, ValueError):
            raise ValueError(f"{path}: {key} is not a number") from None
        return value if math.isfinite(value) else None

    source = str(fields["focal_source"]) if "focal_source" in fields else ""
    caption = str(fields["caption"]) if "caption" in fields else None
    used_focal = scalar("focal_px")
    predicted_fov = scalar("predicted_fov_deg")
    if "depth" not in fields:
        inverse = _map(fields["inverse_depth"], path, "inverse_depth")
        return Prediction(
            depth=None,
            inverse_depth=torch.from_numpy(inverse),
            kind="relative",
            predicted_fov_deg=predicted_fov,
            caption=caption,
        )
    depth = _map(fields["depth"], path, "depth")
    height, width = depth.shape
    focal, focal_source = used_focal, (source or None)
    if source not in ("", MODEL_FOCAL_SOURCE) and not (use_exif and source == "exif"):
        model_focal = None if predicted_fov is None else focal_from_predicted_fov(predicted_fov, width)
        if model_focal is None or used_focal is None:
            raise ValueError(
                f"{path}: depth was scaled with a {source} focal length and the file holds no model estimate "
                "to make it zero-shot; predict with --focal predicted, or evaluate with --use-exif"
            )
        ceiling, floor = np.float32(1 / MIN_INVERSE_DEPTH), np.float32(1 / MAX_INVERSE_DEPTH)
        with np.errstate(invalid="ignore"):
            at_ceiling, finite = depth >= ceiling, np.isfinite(depth)
        depth *= np.float32(model_focal / used_focal)
        # Back into the network's range [1e-4, 1e4] m, as a direct prediction is (sky stays at the
        # ceiling); NaN, infinite, zero and negative values are left for the evaluation to report.
        np.minimum(depth, ceiling, out=depth, where=finite)
        np.maximum(depth, floor, out=depth, where=finite & (depth > 0))
        depth[at_ceiling & finite] = ceiling
        focal, focal_source = model_focal, MODEL_FOCAL_SOURCE
    tensor = torch.from_numpy(depth)
    return Prediction(
        depth=tensor,
        inverse_depth=torch.reciprocal(tensor),
        focal_px=focal,
        focal_source=focal_source if focal is not None else None,  # type: ignore[arg-type]
        intrinsics=None if focal is None else intrinsics_matrix(torch.tensor(focal), width, height),
        predicted_fov_deg=predicted_fov,
        caption=caption,
    )


def model_focal_px(prediction: Prediction) -> float | None:
    """The model's own focal estimate (pixels) in a prediction, never EXIF or user values; None if absent."""
    if prediction.focal_source == MODEL_FOCAL_SOURCE and prediction.focal_px is not None:
        return float(prediction.focal_px)
    fov = prediction.predicted_fov_deg
    return None if fov is None else focal_from_predicted_fov(float(fov), prediction.image_size[1])


def _map(array: np.ndarray, path: Path, key: str) -> np.ndarray:
    if array.ndim != 2 or not np.issubdtype(array.dtype, np.floating):
        raise ValueError(f"{path}: {key} must be an (H, W) float array, got {array.shape} {array.dtype}")
    return np.ascontiguousarray(array, dtype=np.float32)


class PredictionFolder:
    """Saved predictions: ``ROOT/NAME.npz`` per sample (or the one ``.npz`` in ``ROOT/NAME/``), as
    ``metricdepth predict -d`` and ``evaluate --save-predictions`` write them; see :func:`read_prediction`."""

    def __init__(self, root: str | os.PathLike, *, use_exif: bool = False) -> None:
        self.root = Path(root)
        self.use_exif = use_exif
        if not self.root.is_dir():
            raise FileNotFoundError(f"{self.root}: predictions folder not found")

    def predict(self, sample: Sample) -> Prediction:
        name = sample["name"]
        path = self.root / f"{name}.npz"
        if not path.is_file():
            found = sorted((self.root / name).glob("*.npz")) if (self.root / name).is_dir() else []
            if len(found) != 1:
                raise FileNotFoundError(
                    f"{self.root}: no prediction {name}.npz (nor a single .npz in {name}/); "
                    "predict a benchmark with `metricdepth predict -d NAME=PATH` to store each sample "
                    "under its name"
                )
            path = found[0]
        return read_prediction(path, use_exif=self.use_exif)


class ModelPredictor:
    """Predict with a depth source's ``infer``: zero-shot (the model's own focal length, never EXIF)
    unless ``use_exif``, which takes a sample's ``exif_focal_px`` where its image file had one.

    ``save_to``: write each prediction as ``save_to/NAME.npz`` + ``NAME.json`` (what ``metricdepth
    predict -d`` writes), so ``evaluate --predictions save_to`` scores the same numbers again.
    """

    SAVED_FORMATS = ("npz", "json")

    def __init__(
        self,
        model: Any,
        *,
        use_exif: bool = False,
        save_to: str | os.PathLike | None = None,
        info: dict[str, Any] | None = None,
    ) -> None:
        from ..io.guard import OutputGuard

        self.model = model
        self.use_exif = use_exif
        self.save_to = Path(save_to) if save_to is not None else None
        self.info = info or {}
        # One claim per file (two samples of one name cannot share it); only predictions are replaced.
        self._guard = OutputGuard(option="--save-predictions", overwrite_option=None)
        self._saved = 0

    def predict(self, sample: Sample) -> Prediction:
        """The sample's prediction; with ``save_to``, where it goes is checked before any model work."""
        from ..io.images import LoadedImage

        stem = self._claim(sample) if self.save_to is not None else None
        exif = sample.get("exif_focal_px") if self.use_exif else None
        image = LoadedImage(rgb=sample["image"], focal_px=exif)
        prediction = self.model.infer(image, focal="auto", use_exif=self.use_exif)
        if stem is not None:
            self._save(sample, prediction, stem)
        return prediction

    def _claim(self, sample: Sample) -> Path:
        from ..batch import output_paths, sample_stem

        name = sample["name"]
        stem = sample_stem(self.save_to, name)  # type: ignore[arg-type]
        self._saved += 1
        self._guard.check(output_paths(stem, self.SAVED_FORMATS), f"sample {name!r} (#{self._saved} saved)")
        return stem

    def _save(self, sample: Sample, prediction: Prediction, stem: Path) -> None:
        """Store as ``save_to/NAME.npz`` + ``.json``, all or none."""
        from ..batch import check_finite, output_paths
        from ..io.atomic import remove_stale_temporaries
        from ..io.writers import save_prediction

        name = sample["name"]
        check_finite(prediction, name)
        remove_stale_temporaries(output_paths(stem, self.SAVED_FORMATS))
        save_prediction(
            prediction, sample["image"], stem, formats=self.SAVED_FORMATS, extra={"sample": name, **self.info}
        )
