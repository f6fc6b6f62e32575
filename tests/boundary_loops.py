"""Depth Pro's boundary metrics written plainly with Python loops, from the definitions.

An independent oracle for the vectorised ``metricdepth.metrics.boundary`` (tests) and the baseline of
``benchmarks/boundary_speed.py``: per-run NMS walks the above-threshold pixels one by one.
"""

from __future__ import annotations

import numpy as np


def _inverse(d):
    return 1.0 / np.clip(d, 1e-6, None)


def _relations(inv, t):
    # As the reference under NumPy 2: float32 ratios against the float64 threshold compare in float64.
    return (
        inv[:, :-1] / inv[:, 1:] > t,
        inv[:-1, :] / inv[1:, :] > t,
        inv[:, 1:] / inv[:, :-1] > t,
        inv[1:, :] / inv[:-1, :] > t,
    )


def _nms_rows(ratio, t):
    keep = np.zeros(ratio.shape, bool)
    rows, cols = np.nonzero(ratio > t)
    run: list[tuple[int, int]] = []
    for r, c in zip(rows.tolist(), cols.tolist(), strict=True):
        if run and (r != run[-1][0] or c != run[-1][1] + 1):
            keep[max(run, key=lambda rc: (ratio[rc], -rc[1]))] = True
            run = []
        run.append((r, c))
    if run:
        keep[max(run, key=lambda rc: (ratio[rc], -rc[1]))] = True
    return keep


def boundary_f1_loops(pred, gt, n=10):
    thresholds = np.linspace(1.05, 1.25, n)
    total = 0.0
    for t, w in zip(thresholds, thresholds / thresholds.sum(), strict=True):
        pr, gr = _relations(_inverse(pred), t), _relations(_inverse(gt), t)
        p = sum((a & b).sum() / max(a.sum(), 1) for a, b in zip(pr, gr, strict=True)) / 4
        r = sum((a & b).sum() / max(b.sum(), 1) for a, b in zip(pr, gr, strict=True)) / 4
        total += 0.0 if p + r == 0 else w * 2 * p * r / (p + r)
    return total


def boundary_recall_loops(pred, mask, n=10):
    inv = _inverse(pred)
    fg = mask if mask.dtype == bool else mask > 0.1
    gt = (fg[:, :-1] & ~fg[:, 1:], fg[:-1, :] & ~fg[1:, :], fg[:, 1:] & ~fg[:, :-1], fg[1:, :] & ~fg[:-1, :])
    thresholds = np.linspace(1.05, 1.25, n)
    total = 0.0
    for t, w in zip(thresholds, thresholds / thresholds.sum(), strict=True):
        t = inv.dtype.type(t)
        ratios = (
            inv[:, :-1] / inv[:, 1:],
            inv[:-1, :] / inv[1:, :],
            inv[:, 1:] / inv[:, :-1],
            inv[1:, :] / inv[:-1, :],
        )
        pred_rel = (
            _nms_rows(ratios[0], t),
            _nms_rows(ratios[1].T, t).T,
            _nms_rows(ratios[2], t),
            _nms_rows(ratios[3].T, t).T,
        )
        total += w * sum((a & b).sum() / max(b.sum(), 1) for a, b in zip(pred_rel, gt, strict=True)) / 4
    return total
