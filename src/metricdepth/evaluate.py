"""Run a depth source over datasets, aggregate, and write paper-style tables.

A *predictor* is anything with ``predict(sample) -> (depth (H, W) metres, focal_px or None)``:
a :class:`PredictionFolder` of saved outputs, or :class:`ModelPredictor` around a model with
``infer`` (Depth Pro; later RSA pipelines). Every (dataset, alignment) pair gives one table row of
per-image-then-mean depth metrics (the BTS / RSA protocol), plus focal metrics where the dataset
has intrinsics and the predictor reports a focal length. Output is deterministic: fixed order,
fixed number formatting, no timestamps.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .alignment import ALIGNMENTS, align
from .data.datasets import FolderDataset, Middlebury2014
from .data.sample import Sample
from .io.writers import atomic_path, write_json
from .metrics.depth import METRIC_NAMES, SILOG_VARIANT, DepthMetricAccumulator
from .metrics.focal import focal_metrics

__all__ = ["DATASETS", "EvalResult", "ModelPredictor", "PredictionFolder", "evaluate", "write_tables"]

DATASETS: dict[str, Callable[[str], Any]] = {"middlebury": Middlebury2014, "folder": FolderDataset}
"""Dataset readers by name (``--dataset NAME=PATH``)."""


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
            focal = float(data["focal_px"]) if "focal_px" in data.files else None
            return data["depth"].astype(np.float32), focal


class ModelPredictor:
    """Predict with a model's ``infer`` (zero-shot: the model's own focal length, no EXIF)."""

    def __init__(self, model: Any) -> None:
        self.model = model

    def predict(self, sample: Sample) -> tuple[np.ndarray, float | None]:
        prediction = self.model.infer(sample["image"], use_exif=False)
        return prediction.depth.float().cpu().numpy(), float(prediction.focal_px)


@dataclass
class EvalResult:
    """Table rows (one per dataset × alignment) and per-image rows."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    per_image: list[dict[str, Any]] = field(default_factory=list)


def evaluate(
    predictor: Any,
    datasets: dict[str, Any],
    alignments: Sequence[str] = ("none",),
    *,
    min_depth: float | None = None,
    max_depth: float | None = None,
    on_image: Callable[[str, str], None] | None = None,
) -> EvalResult:
    """Evaluate ``predictor`` on every sample of every dataset, under every alignment."""
    unknown = [a for a in alignments if a not in ALIGNMENTS]
    if unknown:
        raise ValueError(f"unknown alignments {unknown}; choose from {', '.join(ALIGNMENTS)}")
    result = EvalResult()
    for dataset_name, dataset in datasets.items():
        accumulators = {
            mode: DepthMetricAccumulator(min_depth=min_depth, max_depth=max_depth) for mode in alignments
        }
        focal_pairs: list[tuple[float, float]] = []
        for index in range(len(dataset)):
            sample = dataset[index]
            depth, focal = predictor.predict(sample)
            if depth.shape != sample["depth"].shape:
                raise ValueError(
                    f"{sample['name']}: prediction {depth.shape} vs ground truth {sample['depth'].shape}"
                )
            if focal is not None and sample.get("K") is not None:
                focal_pairs.append((focal, float(sample["K"][0, 0])))
            for mode in alignments:
                aligned = align(depth, sample["depth"], sample["valid"], mode)
                metrics = accumulators[mode].update(aligned, sample["depth"], sample["valid"])
                result.per_image.append(
                    {"dataset": dataset_name, "alignment": mode, "image": sample["name"], **metrics}
                )
            if on_image is not None:
                on_image(dataset_name, sample["name"])
        focal = focal_metrics(*zip(*focal_pairs, strict=True)) if focal_pairs else {}
        for mode in alignments:
            row = {"dataset": dataset_name, "alignment": mode, "images": len(dataset)}
            row.update(accumulators[mode].per_image_mean())
            row.update({f"focal_{k}": v for k, v in focal.items()})
            result.rows.append(row)
    return result


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.4f}"
    return str(value)


def write_tables(
    result: EvalResult, out_dir: str | os.PathLike, info: dict[str, Any] | None = None
) -> list[Path]:
    """Write ``results.md``, ``results.csv``, ``results.json`` and ``per_image.csv`` into ``out_dir``."""
    out = Path(out_dir)
    columns = list(dict.fromkeys(key for row in result.rows for key in row))
    md = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    md += ["| " + " | ".join(_fmt(row.get(c, "")) for c in columns) + " |" for row in result.rows]
    md += ["", f"Depth metrics: mean over images of per-image values; silog = {SILOG_VARIANT}."]

    def csv_text(rows: list[dict[str, Any]], header: list[str]) -> str:
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=header, lineterminator="\n")
        writer.writeheader()
        writer.writerows({k: _fmt(v) for k, v in row.items()} for row in rows)
        return buffer.getvalue()

    paths = []
    for name, text in (
        ("results.md", "\n".join(md) + "\n"),
        ("results.csv", csv_text(result.rows, columns)),
        ("per_image.csv", csv_text(result.per_image, ["dataset", "alignment", "image", *METRIC_NAMES])),
    ):
        with atomic_path(out / name) as tmp:
            tmp.write_text(text)
        paths.append(out / name)
    payload = {"info": info or {}, "silog": SILOG_VARIANT, "rows": result.rows}
    paths.append(write_json(out / "results.json", json.loads(json.dumps(payload, allow_nan=True))))
    return paths
