"""Validation during training, through the evaluation toolkit (:func:`metricdepth.evaluation.evaluate`).

Validation data come from ``val.datasets`` (held-out synthetic scenes, or any ``NAME=PATH`` benchmark
spec): a validation split, never the test split of a benchmark you report on.
"""

from __future__ import annotations

from typing import Any

import torch

from ..data.sample import Sample
from ..evaluation.protocols import EvalSet, Protocol
from ..prediction import Prediction
from .config import DatasetConfig

__all__ = ["HIGHER_IS_BETTER", "ValidationPredictor", "open_validation_sets", "summarise", "validate"]

HIGHER_IS_BETTER = ("d1", "d2", "d3", "boundary_f1", "boundary_recall", "focal_delta25", "focal_delta50")
"""Validation metrics where larger is better; for every other metric smaller is better."""

SYNTHETIC_PROTOCOL = Protocol(
    "synthetic (held-out)", boundary_f1=True, source="held-out procedural scenes, dense exact depth"
)


class ValidationPredictor:
    """Predict a sample with ``model.infer``: metric with the sample's ground-truth focal length
    (``focal="ground-truth"``, judging the depth network apart from the FOV head) or with the model's
    own FOV head (``"predicted"``)."""

    def __init__(self, model: Any, focal: str = "ground-truth") -> None:
        if focal not in ("ground-truth", "predicted"):
            raise ValueError(f"focal must be 'ground-truth' or 'predicted', got {focal!r}")
        self.model, self.focal = model, focal

    def predict(self, sample: Sample) -> Prediction:
        from ..io.images import LoadedImage
        from .data import sample_focal_px

        image = LoadedImage(rgb=sample["image"], focal_px=None)
        if self.focal == "predicted":
            return self.model.infer(image, focal="predicted")  # type: ignore[no-any-return]
        focal = sample_focal_px(sample)
        if focal is None:
            raise ValueError(f"{sample['name']}: no ground-truth focal length to make depth metric")
        return self.model.infer(image, f_px=focal, use_exif=False)  # type: ignore[no-any-return]


def open_validation_sets(configs: list[DatasetConfig], max_samples: int) -> list[EvalSet]:
    """The validation datasets, each cut to its first ``max_samples`` samples."""
    from ..evaluation.protocols import open_benchmark
    from .data import open_source, refuse_test_split

    sets = []
    for index, config in enumerate(configs):
        if config.source == "synthetic":
            label = config.name or f"synthetic-{config.synthetic.seed}"
            eval_set = EvalSet(label, open_source(config), SYNTHETIC_PROTOCOL)
        else:
            refuse_test_split(config.source, "validation")
            eval_set = open_benchmark(config.source)
            eval_set.label = config.name or eval_set.label or f"val{index}"
        count = min(max_samples, len(eval_set.dataset))
        eval_set.dataset = torch.utils.data.Subset(eval_set.dataset, range(count))
        sets.append(eval_set)
    return sets


def summarise(rows: list[dict[str, Any]]) -> dict[str, float]:
    """``dataset/metric`` → value for every numeric entry of the evaluation rows, plus each metric's
    mean over datasets as ``metric`` (what ``val.metric`` selects)."""
    out: dict[str, float] = {}
    pooled: dict[str, list[float]] = {}
    for row in rows:
        for key, value in row.items():
            if key in ("dataset", "alignment", "images") or not isinstance(value, (int, float)):
                continue
            out[f"{row['dataset']}/{key}"] = float(value)
            pooled.setdefault(key, []).append(float(value))
    out.update({key: sum(values) / len(values) for key, values in pooled.items()})
    return out


def validate(
    model: Any, predictor: Any, eval_sets: list[EvalSet], alignment: str = "none"
) -> tuple[dict[str, float], list[Any]]:
    """Score ``predictor`` on the validation sets; (metrics, failures). The model is left in eval mode."""
    from ..evaluation.runner import evaluate

    model.eval()
    result = evaluate(predictor, eval_sets, alignments=(alignment,))
    return summarise(result.rows), result.failures
