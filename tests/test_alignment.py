"""Alignment baselines: the median of an even count is the mean of the two middle values."""

import numpy as np
import pytest
import torch

from metricdepth.alignment import align, median


def test_median_matches_numpy_for_even_and_odd_counts():
    assert float(median(torch.tensor([4.0, 1.0, 3.0, 2.0], dtype=torch.float64))) == 2.5
    assert float(torch.tensor([4.0, 1.0, 3.0, 2.0]).median()) == 2.0  # torch's lower middle value
    assert float(median(torch.tensor([5.0, 1.0, 3.0]))) == 3.0
    assert float(median(torch.tensor([7.0]))) == 7.0
    rng = np.random.default_rng(0)
    for count in (2, 10, 101, 1000):
        values = rng.uniform(0.1, 9.0, count)
        assert float(median(torch.from_numpy(values))) == pytest.approx(np.median(values), rel=1e-15)
    assert float(median(torch.ones(2, 3))) == 1.0  # any shape: all elements


def test_median_alignment_even_valid_count_uses_the_mean_of_the_middle_values():
    pred = np.array([[1.0, 2.0], [4.0, 10.0]])
    gt = np.array([[1.0, 3.0], [5.0, 7.0]])
    aligned = align(pred, gt, mode="median")
    scale = 4.0 / 3.0  # median(gt) = (3 + 5) / 2 = 4, median(pred) = (2 + 4) / 2 = 3
    np.testing.assert_allclose(aligned, pred * scale, rtol=1e-15)
    assert not np.allclose(aligned, pred * 3.0 / 2.0)  # what torch.median's lower values would give
    # Invalid pixels (masked, or gt <= 0) do not count: 3 valid values are left, an odd count.
    mask = np.array([[True, True], [True, False]])
    np.testing.assert_allclose(align(pred, gt, mask, "median"), pred * 3.0 / 2.0, rtol=1e-15)
    gt_hole = gt.copy()
    gt_hole[0, 0] = 0.0
    np.testing.assert_allclose(align(pred, gt_hole, mode="median"), pred * 5.0 / 4.0, rtol=1e-15)


def test_median_alignment_on_tensors_keeps_the_type():
    pred = torch.tensor([[1.0, 2.0], [4.0, 10.0]])
    gt = torch.tensor([[1.0, 3.0], [5.0, 7.0]])
    aligned = align(pred, gt, mode="median")
    assert isinstance(aligned, torch.Tensor) and aligned.dtype == torch.float32
    torch.testing.assert_close(aligned, pred * 4.0 / 3.0)
