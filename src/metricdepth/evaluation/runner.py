"""Run a depth source over benchmarks and aggregate every metric that applies to each sample.

What is scored follows from what a sample carries:

* ``depth`` → depth metrics under every alignment, on valid pixels inside the protocol's crop and
  depth range (per-image metrics, then the mean over images: the BTS / RSA protocol); plus Depth
  Pro's boundary F1 on the unaligned prediction where the protocol says the ground truth is dense,
  counting only neighbour pairs of valid ground truth (holes are not edges).
* ``mask`` → Depth Pro's boundary recall of the prediction against the mask or matte.
* ``K`` or ``focal_px`` → focal-length metrics of the model's own estimate (never an EXIF or user
  value: :func:`~metricdepth.evaluation.predictors.model_focal_px`).

A sample with nothing to score (no valid ground truth in range, a prediction that is NaN, infinite or
not positive where it is scored) is a failure, listed by name, never a silent NaN row.

Boundary and focal metrics do not depend on the alignment (both are scale-invariant or use no depth)
and are repeated on every alignment row of a dataset. Output is deterministic: fixed order, no clocks.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..alignment import ALIGNMENTS, GLOBAL_ALIGNMENTS, GlobalAlignment, align
from ..data.sample import Sample
from ..metrics.boundary import boundary_f1, boundary_recall
from ..metrics.depth import DepthMetricAccumulator, crop_mask
from ..metrics.focal import focal_metrics
from ..prediction import Prediction
from .predictors import model_focal_px
from .protocols import EvalSet, Protocol

__all__ = ["EvalResult", "evaluate"]

NO_ALIGNMENT = "-"
"""The alignment column of datasets without depth ground truth (mask and focal sets)."""


@dataclass
class EvalResult:
    """``rows``: one per (dataset, alignment); ``per_image``: one per (dataset, alignment, image);
    ``protocols``: the protocol each dataset label was scored under; ``failures``: skipped samples."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    per_image: list[dict[str, Any]] = field(default_factory=list)
    protocols: dict[str, Protocol] = field(default_factory=dict)
    failures: list[tuple[str, str, str]] = field(default_factory=list)
    """(dataset label, sample name, reason) of every sample that could not be scored."""


def _eval_mask(sample: Sample, protocol: Protocol) -> np.ndarray:
    """Valid ground-truth pixels inside the crop and the (min, max) depth range."""
    gt = sample["depth"]
    valid = sample.get("valid")
    mask = np.isfinite(gt) & (gt > 0) if valid is None else valid.copy()
    mask &= crop_mask(gt.shape, protocol.crop)
    with np.errstate(invalid="ignore"):
        if protocol.min_depth is not None:
            mask &= gt > protocol.min_depth
        if protocol.max_depth is not None:
            mask &= gt < protocol.max_depth
    return mask


def _gt_focal(sample: Sample) -> float | None:
    if sample.get("K") is not None:
        return float(np.asarray(sample["K"])[0, 0])
    return float(sample["focal_px"]) if sample.get("focal_px") is not None else None


def _fit_global(
    predictor: Any,
    fit_set: EvalSet,
    modes: Sequence[str],
    on_image: Callable | None,
    failures: list[tuple[str, str, str]],
) -> dict[str, GlobalAlignment]:
    """Fit each global alignment on ``fit_set``; images that fail are skipped and added to ``failures``."""
    fits = {mode: GlobalAlignment(GLOBAL_ALIGNMENTS[mode]) for mode in modes}
    label = f"{fit_set.label} (global fit)"
    for index in range(len(fit_set.dataset)):
        name = f"#{index}"
        try:
            sample = fit_set.dataset[index]
            name = sample["name"]
            if sample.get("depth") is None:
                raise ValueError(f"{name} has no depth to fit a global alignment on")
            depth = _metric_depth(sample, predictor.predict(sample), aligned=True)
            _check_shape(sample, depth, sample["depth"])
            mask = _scored_mask(sample, fit_set.protocol, depth)
            for fit in fits.values():
                fit.update(depth, sample["depth"], mask)
        except Exception as err:  # unreadable, missing prediction, nothing valid: report, go on
            failures.append((label, name, _reason(err)))
        if on_image is not None:
            on_image(fit_set.label, name)
    try:
        return {mode: fit.fit() for mode, fit in fits.items()}
    except ValueError as err:
        raise ValueError(f"{fit_set.label}: the global fit has nothing to fit on ({err})") from None


def _reason(err: Exception) -> str:
    return str(err) if isinstance(err, (OSError, ValueError)) else f"{type(err).__name__}: {err}"


def _metric_depth(sample: Sample, prediction: Prediction, aligned: bool = False) -> np.ndarray:
    """The prediction's (H, W) float32 metric depth.

    A relative prediction (inverse depth y of unknown scale and shift) is scored only after an
    alignment (``aligned``): its depth is then 1 / y, which median scaling, least squares in inverse
    depth and the global fits turn into RSA's Median, Linear-Fit and Global baselines (y is floored at
    1e-8 so that y = 0 stays finite).
    """
    if not prediction.is_metric:
        if not aligned:
            raise ValueError(
                f"{sample['name']}: the prediction is relative (affine-invariant inverse depth), not metric "
                "depth; score it with an alignment (median, lstsq-disparity, global-disparity), not 'none'"
            )
        inverse = prediction.inverse_depth.float().cpu().numpy()
        with np.errstate(invalid="ignore"):
            return (1.0 / np.maximum(inverse, np.float32(RELATIVE_FLOOR))).astype(np.float32)
    return prediction.depth.float().cpu().numpy()  # type: ignore[union-attr]


RELATIVE_FLOOR = 1e-8
"""Smallest inverse relative depth turned into depth (1 / y) for alignment."""


def _scored_mask(sample: Sample, protocol: Protocol, depth: np.ndarray) -> np.ndarray:
    """Pixels to score: valid ground truth in crop and range; raises ValueError naming the sample when
    there is none, or when the prediction is NaN, infinite or not positive on any of them."""
    mask = _eval_mask(sample, protocol)
    if not mask.any():
        low = protocol.min_depth if protocol.min_depth is not None else 0
        high = protocol.max_depth if protocol.max_depth is not None else float("inf")
        raise ValueError(
            f"{sample['name']}: no valid ground-truth pixel inside the crop ({protocol.crop or 'none'}) "
            f"and the depth range {low:g}–{high:g} m"
        )
    scored = depth[mask]
    bad = int(np.count_nonzero(~(np.isfinite(scored) & (scored > 0))))
    if bad:
        raise ValueError(
            f"{sample['name']}: the prediction is NaN, infinite or not positive at {bad} of {scored.size} "
            "scored pixels"
        )
    return mask


class _Scores:
    """Everything one dataset accumulates while its samples are scored."""

    def __init__(self, protocol: Protocol, alignments: Sequence[str], fits: dict[str, GlobalAlignment]):
        self.protocol, self.alignments, self.fits = protocol, alignments, fits
        self.depth = {
            mode: DepthMetricAccumulator(min_depth=protocol.min_depth, max_depth=protocol.max_depth)
            for mode in alignments
        }
        self.f1s: list[float] = []
        self.recalls: list[float] = []
        self.focal_pairs: list[tuple[float, float]] = []
        self.image_rows: list[dict[str, Any]] = []
        self.scored = 0

    def add(self, sample: Sample, prediction: Prediction) -> None:
        """Score one sample; raises ValueError (shape mismatch, nothing valid) before recording anything."""
        extra: dict[str, Any] = {}
        if getattr(prediction, "caption", None) is not None:  # language-conditioned sources (RSA)
            extra["caption"] = prediction.caption
        gt_focal = _gt_focal(sample)
        focal = model_focal_px(prediction)
        if focal is not None and gt_focal is not None:
            extra.update(focal_px=focal, gt_focal_px=gt_focal)
        has_depth, has_mask = sample.get("depth") is not None, sample.get("mask") is not None
        if not (has_depth or has_mask or "focal_px" in extra):
            raise ValueError(f"{sample['name']}: nothing to score (no model focal estimate)")
        rows = [] if has_depth else [{"alignment": NO_ALIGNMENT}]
        if has_depth or has_mask:
            depth = _metric_depth(sample, prediction, aligned="none" not in self.alignments)
        if has_depth:  # every check before anything is recorded
            gt = sample["depth"]
            _check_shape(sample, depth, gt)
            mask = _scored_mask(sample, self.protocol, depth)
        if has_mask:
            _check_shape(sample, depth, sample["mask"])
            extra["boundary_recall"] = boundary_recall(depth, sample["mask"])
        if has_depth:
            if self.protocol.boundary_f1:
                gt_valid = sample.get("valid")
                extra["boundary_f1"] = boundary_f1(
                    depth, gt, valid=gt_valid if gt_valid is not None else gt > 0
                )
            aligned = {
                mode: self.fits[mode].apply(depth) if mode in self.fits else align(depth, gt, mask, mode)
                for mode in self.alignments
            }
            for mode in self.alignments:
                rows.append({"alignment": mode, **self.depth[mode].update(aligned[mode], gt, mask)})
        self.image_rows += [{**row, "image": sample["name"], **extra} for row in rows]
        self.scored += 1
        if "focal_px" in extra:
            self.focal_pairs.append((focal, gt_focal))  # type: ignore[arg-type]
        if "boundary_f1" in extra:
            self.f1s.append(extra["boundary_f1"])
        if "boundary_recall" in extra:
            self.recalls.append(extra["boundary_recall"])

    def rows(self, label: str) -> list[dict[str, Any]]:
        """The dataset's table rows: one per alignment (one ``-`` row without depth ground truth)."""
        shared: dict[str, Any] = {}
        if self.f1s:
            shared["boundary_f1"] = float(np.mean(self.f1s))
        if self.recalls:
            shared["boundary_recall"] = float(np.mean(self.recalls))
        if self.focal_pairs:
            pred_f, gt_f = zip(*self.focal_pairs, strict=True)
            shared.update({f"focal_{k}": v for k, v in focal_metrics(pred_f, gt_f).items()})
        has_depth = any(acc.per_image for acc in self.depth.values())
        rows = []
        for mode in self.alignments if has_depth else [NO_ALIGNMENT]:
            # Images with no valid pixel in range have NaN depth metrics and are left out of the means.
            scored = (
                sum(not math.isnan(m["d1"]) for m in self.depth[mode].per_image) if has_depth else self.scored
            )
            row: dict[str, Any] = {"dataset": label, "alignment": mode, "images": scored}
            if has_depth:
                row.update(self.depth[mode].per_image_mean())
            if mode in self.fits:
                row.update(global_scale=self.fits[mode].scale, global_shift=self.fits[mode].shift)
            rows.append({**row, **shared})
        return rows


def evaluate(
    predictor: Any,
    eval_sets: Sequence[EvalSet],
    alignments: Sequence[str] = ("none",),
    *,
    global_fit: dict[str, EvalSet] | None = None,
    fit_predictor: Any | None = None,
    on_image: Callable[[str, str], None] | None = None,
) -> EvalResult:
    """Evaluate ``predictor`` (``predict(sample) -> Prediction``, see :mod:`.predictors`) on every sample.

    A sample that cannot be read or predicted, or whose prediction does not fit its ground truth, is
    skipped and listed in ``EvalResult.failures``; the tables count only the images scored.

    Args:
        eval_sets: opened benchmarks (:func:`~metricdepth.evaluation.open_benchmark`).
        alignments: per-image modes of :func:`metricdepth.alignment.align` and/or the dataset-level
            ``global-depth`` / ``global-disparity``, which need a fit split per dataset label in
            ``global_fit`` (e.g. the training split: never fit on the set being scored).
        fit_predictor: the depth source for the ``global_fit`` splits (default: ``predictor``); give
            one when saved predictions of the two splits live in different folders.
        on_image: called with (dataset label, sample name) after each image, for progress bars.
    """
    known = (*ALIGNMENTS, *GLOBAL_ALIGNMENTS)
    unknown = [a for a in alignments if a not in known]
    if unknown:
        raise ValueError(f"unknown alignments {unknown}; choose from {', '.join(known)}")
    global_modes = [a for a in alignments if a in GLOBAL_ALIGNMENTS]
    global_fit = global_fit or {}
    missing = [s.label for s in eval_sets if global_modes and s.label not in global_fit]
    if missing:
        raise ValueError(f"{', '.join(global_modes)} needs a split to fit on for {', '.join(missing)}")
    result = EvalResult()
    for eval_set in eval_sets:
        label, dataset = eval_set.label, eval_set.dataset
        result.protocols[label] = eval_set.protocol
        try:
            fits = (
                _fit_global(
                    fit_predictor or predictor, global_fit[label], global_modes, on_image, result.failures
                )
                if global_modes
                else {}
            )
        except ValueError as err:  # nothing at all to fit on: the dataset cannot be scored
            result.failures.append((label, "(global fit)", str(err)))
            continue
        scores = _Scores(eval_set.protocol, alignments, fits)
        for index in range(len(dataset)):
            name = f"#{index}"
            try:
                sample = dataset[index]
                name = sample["name"]
                scores.add(sample, predictor.predict(sample))
            except Exception as err:  # unreadable file, missing prediction, bad shape: report, go on
                result.failures.append((label, name, _reason(err)))
            if on_image is not None:
                on_image(label, name)
        result.per_image += [{"dataset": label, **row} for row in scores.image_rows]
        result.rows += scores.rows(label)
    return result


def _check_shape(sample: Sample, depth: np.ndarray, target: np.ndarray) -> None:
    if depth.shape != target.shape[:2]:
        raise ValueError(f"{sample['name']}: prediction is {depth.shape}, ground truth {target.shape[:2]}")
