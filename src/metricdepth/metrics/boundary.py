"""Depth Pro's boundary metrics: scale-invariant boundary F1 against depth ground truth and boundary
recall against a mask or alpha matte (Bochkovskii et al., 2024, §4 and appendix).

Definitions follow Apple's reference exactly, vectorised with numpy (no loops over pixels or runs):

* Both maps are turned into inverse depth, 1 / max(d, 1e-6). A neighbour pair is an occluding
  contour at threshold t when the inverse-depth ratio between the 4-neighbours exceeds t, giving four
  relation maps (left, top, right, bottom): horizontal pairs compare (y, x) with (y, x + 1), vertical
  pairs (y, x) with (y + 1, x).
* F1: precision and recall are each averaged over the four directions, then combined.
* Mask recall: ground-truth relations come from a bool mask (alpha > 0.1) with the mask as foreground;
  predicted relations are thinned by 1-D non-maximum suppression: in each run of consecutive
  above-threshold pixels along the direction, only the first maximum survives.
* Both are averaged over thresholds ``linspace(1.05, 1.25, 10)`` with weights proportional to the
  threshold.

Precision, as in the reference under NumPy 2: ratios are computed in the input's floating dtype. F1
compares them with the float64 thresholds of ``np.linspace`` exactly (NumPy 2 promotes a float32 ratio
compared with a float64 scalar to float64); this is done without float64 copies, against the largest
value of the input dtype not above each threshold (:func:`dtype_threshold`), which gives the same
result. Mask recall compares with the thresholds cast to the input dtype (the reference passes Python
floats, which NumPy casts to the array's dtype).
"""

from __future__ import annotations

import numpy as np

__all__ = ["boundary_f1", "boundary_recall", "dtype_threshold", "thresholds_and_weights"]


def thresholds_and_weights(
    t_min: float = 1.05, t_max: float = 1.25, n: int = 10
) -> tuple[np.ndarray, np.ndarray]:
    """Ratio thresholds and their weights (proportional to the threshold, summing to 1)."""
    thresholds = np.linspace(t_min, t_max, n)
    return thresholds, thresholds / thresholds.sum()


def dtype_threshold(threshold: float, dtype: np.dtype) -> np.floating:
    """The largest value of floating ``dtype`` that is ≤ ``threshold`` (a float64).

    For any ``x`` of that dtype, ``x > dtype_threshold(t, dtype)`` equals ``float64(x) > t``: a value
    above the result is at least the next representable one, which is above ``t``.
    """
    kind = np.dtype(dtype).type
    cast = kind(threshold)
    if float(cast) > float(threshold):  # rounded up: step down one representable value
        cast = np.nextafter(cast, kind(-np.inf))
    return cast


def _inverse(depth: np.ndarray) -> np.ndarray:
    depth = np.asarray(depth)
    if depth.ndim != 2:
        raise ValueError(f"boundary metrics take (H, W) maps, got shape {depth.shape}")
    if not np.issubdtype(depth.dtype, np.floating):
        depth = depth.astype(np.float64)
    return 1.0 / np.clip(depth, 1e-6, None)


def _ratios(inv: np.ndarray) -> tuple[np.ndarray, ...]:
    """Neighbour ratios (left, top, right, bottom); a relation holds where the ratio exceeds t."""
    right = inv[:, 1:] / inv[:, :-1]
    left = inv[:, :-1] / inv[:, 1:]
    bottom = inv[1:, :] / inv[:-1, :]
    top = inv[:-1, :] / inv[1:, :]
    return left, top, right, bottom


def _mask_relations(mask: np.ndarray) -> tuple[np.ndarray, ...]:
    """(left, top, right, bottom) contour relations of a foreground mask."""
    right = mask[:, 1:] & ~mask[:, :-1]
    left = mask[:, :-1] & ~mask[:, 1:]
    bottom = mask[1:, :] & ~mask[:-1, :]
    top = mask[:-1, :] & ~mask[1:, :]
    return left, top, right, bottom


class _RowRuns:
    """A ratio map flattened row by row, with a zero after each row so runs never wrap to the next row.

    Built once per map, keeping only the entries above the smallest threshold; :meth:`nms` then runs
    per threshold on that (usually small) subset and returns flat positions in the padded layout, which
    :meth:`flat` gives for any mask of the same shape.
    """

    def __init__(self, ratio: np.ndarray, floor) -> None:
        self.shape = ratio.shape
        flat = np.pad(ratio, ((0, 0), (0, 1))).ravel()  # 0 is below every threshold (> 1)
        self.positions = np.flatnonzero(flat > floor)
        self.values = flat[self.positions]

    def flat(self, mask: np.ndarray) -> np.ndarray:
        """``mask`` (same shape as the ratio map) in the padded row-major layout."""
        return np.pad(mask, ((0, 0), (0, 1))).ravel()

    def nms(self, threshold) -> np.ndarray:
        """Flat positions kept when, in every horizontal run of ``ratio > threshold``, only the first
        maximum survives."""
        above = self.values > threshold
        positions, values = self.positions[above], self.values[above]
        if positions.size == 0:
            return positions
        starts = np.flatnonzero(np.diff(positions, prepend=positions[0] - 2) != 1)  # run starts
        run_max = np.maximum.reduceat(values, starts)
        lengths = np.diff(np.append(starts, positions.size))
        candidates = np.where(
            values == np.repeat(run_max, lengths), np.arange(positions.size), positions.size
        )
        return positions[np.minimum.reduceat(candidates, starts)]


def _pair_valid(valid: np.ndarray) -> tuple[np.ndarray, ...]:
    """Per direction (left, top, right, bottom): both pixels of the neighbour pair are valid."""
    horizontal = valid[:, 1:] & valid[:, :-1]
    vertical = valid[1:, :] & valid[:-1, :]
    return horizontal, vertical, horizontal, vertical


def boundary_f1(
    pred_depth: np.ndarray,
    gt_depth: np.ndarray,
    t_min: float = 1.05,
    t_max: float = 1.25,
    n: int = 10,
    valid: np.ndarray | None = None,
) -> float:
    """Scale-invariant boundary F1 of predicted vs ground-truth depth (both (H, W), any positive units).

    ``valid`` (H, W) bool, optional: only neighbour pairs whose two ground-truth pixels are valid count,
    on both sides. Without it (the reference's behaviour) holes in the ground truth read as depth
    edges, since 0 becomes a very near inverse depth.
    """
    pred_ratios, gt_ratios = _ratios(_inverse(pred_depth)), _ratios(_inverse(gt_depth))
    if pred_ratios[0].shape != gt_ratios[0].shape:
        raise ValueError(f"shapes differ: {np.shape(pred_depth)} vs {np.shape(gt_depth)}")
    if valid is not None and np.shape(valid) != np.shape(gt_depth):
        raise ValueError(f"shapes differ: valid {np.shape(valid)} vs {np.shape(gt_depth)}")
    pairs = _pair_valid(np.asarray(valid, dtype=bool)) if valid is not None else (True,) * 4
    thresholds, weights = thresholds_and_weights(t_min, t_max, n)
    pred_dtype, gt_dtype = pred_ratios[0].dtype, gt_ratios[0].dtype
    total = 0.0
    for t, w in zip(thresholds, weights, strict=True):
        precision = recall = 0.0
        t_pred, t_gt = dtype_threshold(t, pred_dtype), dtype_threshold(t, gt_dtype)  # compared as float64
        for p_ratio, g_ratio, pair in zip(pred_ratios, gt_ratios, pairs, strict=True):
            p = (p_ratio > t_pred) & pair
            g = (g_ratio > t_gt) & pair
            hits = np.count_nonzero(p & g)
            precision += hits / max(np.count_nonzero(p), 1)
            recall += hits / max(np.count_nonzero(g), 1)
        precision, recall = precision / 4, recall / 4
        if precision + recall > 0:
            total += w * 2 * precision * recall / (precision + recall)
    return float(total)


def boundary_recall(
    pred_depth: np.ndarray,
    mask: np.ndarray,
    t_min: float = 1.05,
    t_max: float = 1.25,
    n: int = 10,
    alpha_threshold: float = 0.1,
) -> float:
    """Scale-invariant boundary recall of predicted depth (H, W) against a mask or alpha matte (H, W).

    The foreground is ``mask > alpha_threshold`` (a bool mask is used as is).
    """
    inv = _inverse(pred_depth)
    mask = np.asarray(mask)
    if mask.shape != inv.shape:
        raise ValueError(f"shapes differ: {inv.shape} vs mask {mask.shape}")
    foreground = mask if mask.dtype == bool else mask > alpha_threshold
    thresholds, weights = thresholds_and_weights(t_min, t_max, n)
    floor = inv.dtype.type(thresholds[0])
    left, top, right, bottom = _ratios(inv)
    g_left, g_top, g_right, g_bottom = _mask_relations(foreground)
    # Thinning runs along the relation's direction: rows for left/right, columns for top/bottom.
    directions = []  # (runs of predicted ratios, ground-truth relations in their layout, their count)
    for ratio, g in ((left, g_left), (top.T, g_top.T), (right, g_right), (bottom.T, g_bottom.T)):
        runs = _RowRuns(ratio, floor)
        directions.append((runs, runs.flat(g), max(np.count_nonzero(g), 1)))
    total = 0.0
    for t, w in zip(thresholds, weights, strict=True):
        recall = sum(
            np.count_nonzero(g_flat[runs.nms(inv.dtype.type(t))]) / g_count
            for runs, g_flat, g_count in directions
        )
        total += w * recall / 4
    return float(total)
