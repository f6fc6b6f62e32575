"""Aligning a prediction to ground truth: the baselines of relative-depth evaluation (RSA's Median,
Linear-Fit and Global) and the MiDaS scale-and-shift protocol.

Modes of :func:`align` (pred and gt are depth maps in metres; fits use valid pixels only):

==================== =================================================================
``none``             metric evaluation, the prediction as is
``median``           d · median(g) / median(d); the median of an even count of valid pixels is the
                     mean of the two middle values (as ``numpy.median``, not ``torch.median``)
``lstsq-scale``      s · d, s by least squares in depth
``lstsq-depth``      s · d + t, least squares in depth
``lstsq-disparity``  1 / (s / d + t), least squares in inverse depth (MiDaS / DPT / Depth
                     Anything); the aligned inverse depth is kept ≥ 1 / max(g) so it never blows up
==================== =================================================================

:class:`GlobalAlignment` fits one scale and shift over a whole dataset split (depth or inverse depth)
and applies it to every image of another split: ``global-depth`` and ``global-disparity`` in
:data:`GLOBAL_ALIGNMENTS` (RSA's Global baseline is the inverse-depth one, its own parameterisation).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import torch

from .metrics._tensor import as_float64, as_mask

__all__ = ["ALIGNMENTS", "GLOBAL_ALIGNMENTS", "GlobalAlignment", "align", "fit_scale_shift", "median"]

ALIGNMENTS = ("none", "median", "lstsq-scale", "lstsq-depth", "lstsq-disparity")
"""Per-image modes of :func:`align`."""

GLOBAL_ALIGNMENTS = {"global-depth": "depth", "global-disparity": "disparity"}
"""Dataset-level modes (RSA's Global baseline): name → :class:`GlobalAlignment` space."""


def fit_scale_shift(x: torch.Tensor, y: torch.Tensor, shift: bool = True) -> tuple[float, float]:
    """Least-squares (s, t) minimising Σ (s·x + t − y)² (t = 0 when ``shift`` is False), in float64."""
    x, y = x.double().flatten(), y.double().flatten()
    if x.numel() < (2 if shift else 1):
        raise ValueError("too few valid pixels to fit an alignment")
    if not shift:
        return float((x * y).sum() / (x * x).sum()), 0.0
    design = torch.stack([x, torch.ones_like(x)], dim=1)
    solution = torch.linalg.lstsq(design, y[:, None]).solution[:, 0]
    return float(solution[0]), float(solution[1])


def median(values: torch.Tensor) -> torch.Tensor:
    """The median of all elements (0-d tensor): the middle value, or for an even count the mean of the
    two middle values, as ``numpy.median`` (``torch.median`` returns the lower one). Needs ≥ 1 element."""
    flat = values.flatten()
    count = flat.numel()
    lower = flat.kthvalue((count + 1) // 2).values
    if count % 2:
        return lower
    return (lower + flat.kthvalue(count // 2 + 1).values) / 2


def _valid(pred: torch.Tensor, gt: torch.Tensor, mask) -> torch.Tensor:
    return as_mask(mask, gt) & torch.isfinite(gt) & (gt > 0) & torch.isfinite(pred) & (pred > 0)


def _like(result: torch.Tensor, template):
    """``result`` as the caller's type: a tensor or array of its floating dtype (float32 otherwise)."""
    if isinstance(template, torch.Tensor):
        return result.to(dtype=template.dtype if template.is_floating_point() else torch.float32)
    dtype = np.asarray(template).dtype
    return result.numpy().astype(dtype if np.issubdtype(dtype, np.floating) else np.float32)


def align(pred, gt, mask=None, mode: str = "none"):
    """Align ``pred`` (H, W depth) to ``gt`` on valid pixels; returns the same type as ``pred``."""
    if mode not in ALIGNMENTS:
        raise ValueError(f"unknown alignment {mode!r}; choose one of {', '.join(ALIGNMENTS)}")
    if mode == "none":
        return pred
    p = as_float64(pred)
    g = as_float64(gt).to(p.device)
    valid = _valid(p, g, mask)
    if not valid.any():
        raise ValueError("no valid pixels to align on")
    if mode == "median":
        aligned = p * (median(g[valid]) / median(p[valid]))
    elif mode in ("lstsq-scale", "lstsq-depth"):
        s, t = fit_scale_shift(p[valid], g[valid], shift=mode == "lstsq-depth")
        aligned = s * p + t
    else:
        s, t = fit_scale_shift(1 / p[valid], 1 / g[valid])
        aligned = 1 / (s / p + t).clamp(min=1 / float(g[valid].max()))
    return _like(aligned, pred)


class GlobalAlignment:
    """One scale and shift for a whole dataset: fit on one split, ``apply`` to another.

    Streaming: ``update`` adds one image's valid pixels to running least-squares sums (float64), so a
    split of any size fits in constant memory; ``fit`` solves (or takes an iterable of samples first).

    Args:
        space: ``"depth"`` (s·d + t) or ``"disparity"`` (1 / (s/d + t)).
    """

    def __init__(self, space: str = "disparity") -> None:
        if space not in ("depth", "disparity"):
            raise ValueError("space must be 'depth' or 'disparity'")
        self.space = space
        self.scale: float | None = None
        self.shift: float | None = None
        self._sums = torch.zeros(5, dtype=torch.float64)  # n, Σx, Σy, Σx², Σxy
        self._max_gt = 0.0

    def update(self, pred, gt, mask=None) -> None:
        """Add one image: pred and gt (H, W) depth in metres, optional (H, W) bool mask."""
        p, g = as_float64(pred), as_float64(gt)
        valid = _valid(p, g, mask.to(p.device) if isinstance(mask, torch.Tensor) else mask)
        x, y = (p[valid], g[valid]) if self.space == "depth" else (1 / p[valid], 1 / g[valid])
        self._sums += torch.stack(
            [
                torch.tensor(float(x.numel()), dtype=torch.float64),
                x.sum(),
                y.sum(),
                (x * x).sum(),
                (x * y).sum(),
            ]
        ).cpu()
        if valid.any():
            self._max_gt = max(self._max_gt, float(g[valid].max()))

    def fit(self, samples: Iterable[tuple] = ()) -> GlobalAlignment:
        """Add (pred, gt) or (pred, gt, mask) tuples, then solve the least squares over all pixels so far."""
        for sample in samples:
            self.update(*sample)
        n, sx, sy, sxx, sxy = self._sums.tolist()
        variance = sxx - sx * sx / n if n >= 2 else 0.0
        if variance <= 0:
            raise ValueError("too few distinct valid pixels to fit a global alignment")
        self.scale = (sxy - sx * sy / n) / variance
        self.shift = (sy - self.scale * sx) / n
        return self

    def apply(self, pred):
        """The aligned (H, W) depth, same type as ``pred``."""
        if self.scale is None:
            raise RuntimeError("GlobalAlignment.apply before fit")
        p = as_float64(pred)
        if self.space == "depth":
            aligned = self.scale * p + self.shift
        else:
            aligned = 1 / (self.scale / p + self.shift).clamp(min=1 / self._max_gt)
        return _like(aligned, pred)
