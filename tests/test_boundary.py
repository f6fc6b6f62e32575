import numpy as np
import pytest

from boundary_loops import boundary_f1_loops, boundary_recall_loops
from metricdepth.metrics import boundary_f1, boundary_recall
from metricdepth.metrics.boundary import dtype_threshold, thresholds_and_weights


def golden_cases(data_dir):
    data = np.load(data_dir / "boundary_public.npz")
    for name in sorted({key.split("__")[0] for key in data}):
        yield (
            name,
            str(data[f"{name}__kind"]),
            data[f"{name}__pred"],
            data[f"{name}__target"],
            float(data[f"{name}__value"]),
        )


def test_reference_values(data_dir):
    cases = list(golden_cases(data_dir))
    assert len(cases) == 9 and "moto_noise_public" in [case[0] for case in cases]
    for name, kind, pred, target, value in cases:
        ours = boundary_f1(pred, target) if kind == "f1" else boundary_recall(pred, target)
        assert abs(ours - value) <= 1e-12, name


def test_float32_f1_compares_ratios_with_float64_thresholds(data_dir):
    """moto_noise_public: float32 maps with ratios between a threshold and its float32 rounding."""
    data = np.load(data_dir / "boundary_public.npz")
    pred, target = data["moto_noise_public__pred"], data["moto_noise_public__target"]
    assert pred.dtype == target.dtype == np.float32
    value = float(data["moto_noise_public__value"])
    assert abs(boundary_f1(pred, target) - value) <= 1e-12
    # The plain-loop oracle compares as the reference does, and agrees; rounding the thresholds to
    # float32 first (the old behaviour) misses the reference on this case.
    assert abs(boundary_f1_loops(pred, target) - value) <= 1e-12
    rounded = [np.float32(t) for t in np.linspace(1.05, 1.25, 10)]
    assert any(
        ((pred[:, :-1] / pred[:, 1:]) > t).sum() != ((pred[:, :-1] / pred[:, 1:]) > np.float64(t64)).sum()
        for t, t64 in zip(rounded, np.linspace(1.05, 1.25, 10), strict=True)
    )


def test_dtype_threshold_equals_a_float64_comparison():
    rng = np.random.default_rng(3)
    for dtype in (np.float16, np.float32, np.float64):
        for t in np.linspace(1.05, 1.25, 10):
            below = dtype_threshold(t, dtype)
            assert below.dtype == dtype and float(below) <= t
            assert float(np.nextafter(below, dtype(np.inf))) > t  # the largest such value
            near = np.nextafter(dtype(t), dtype(-np.inf)) if dtype is not np.float64 else dtype(t)
            x = np.concatenate(
                [
                    rng.uniform(t * 0.999, t * 1.001, 500).astype(dtype),
                    np.array([below, np.nextafter(below, dtype(np.inf)), near, dtype(t)], dtype),
                ]
            )
            np.testing.assert_array_equal(x > below, x.astype(np.float64) > np.float64(t))


def test_thresholds_and_weights():
    thresholds, weights = thresholds_and_weights()
    np.testing.assert_allclose(thresholds[[0, 1, -1]], [1.05, 1.07222222, 1.25])
    assert weights.sum() == pytest.approx(1.0) and weights[0] == pytest.approx(1.05 / 11.5)


def random_scene(rng, height, width, dtype):
    """Piecewise-constant depth (rectangles at random depths) with noise: runs, ties and row-end runs."""
    depth = np.full((height, width), 5.0)
    for _ in range(6):
        y, x = rng.integers(0, height), rng.integers(0, width)
        depth[y : y + rng.integers(1, height), x : x + rng.integers(1, width)] = rng.uniform(1, 9)
    noisy = depth * rng.uniform(0.9, 1.1, size=depth.shape) ** rng.integers(0, 2)
    return noisy.astype(dtype), depth.astype(dtype)


@pytest.mark.parametrize("seed", range(6))
def test_agrees_with_a_plain_loop_implementation(seed):
    rng = np.random.default_rng(seed)
    dtype = (np.float32, np.float64)[seed % 2]
    pred, gt = random_scene(rng, 23 + seed, 31 + 2 * seed, dtype)
    pred[0, -3:] = pred[0, -1]  # equal ratios: the first maximum of a run wins
    assert abs(boundary_f1(pred, gt) - boundary_f1_loops(pred, gt)) <= 1e-12
    alpha = np.clip(rng.normal(0.5, 0.5, size=gt.shape), 0, 1)
    mask = gt < 5.0
    for target in (mask, alpha):
        assert abs(boundary_recall(pred, target) - boundary_recall_loops(pred, target)) <= 1e-12


def test_scale_invariance_and_identity(data_dir):
    gt = np.load(data_dir / "boundary_public.npz")["moto_identity__target"]
    assert boundary_f1(gt, gt) == 1.0
    assert boundary_f1(3.7 * gt, gt) == pytest.approx(1.0)
    flat = np.ones_like(gt)
    assert boundary_f1(flat, gt) == 0.0  # no predicted contours
    assert boundary_recall(flat, gt < 3.0) == 0.0


def test_bad_shapes():
    with pytest.raises(ValueError, match=r"\(H, W\)"):
        boundary_f1(np.ones((2, 3, 3)), np.ones((2, 3, 3)))
    with pytest.raises(ValueError, match="differ"):
        boundary_recall(np.ones((4, 4)), np.ones((4, 5), bool))


def test_boundary_f1_valid_mask_ignores_holes_in_the_ground_truth():
    rng = np.random.default_rng(7)
    gt = np.where(rng.random((40, 50)) > 0.5, 2.0, 5.0) * rng.uniform(0.98, 1.02, (40, 50))
    assert boundary_f1(gt * 3, gt, valid=np.ones_like(gt, bool)) == boundary_f1(gt * 3, gt)
    holes = gt.copy()
    holes[10:20, 10:30] = 0  # unknown ground truth: 0 is read as a very near surface
    filled = np.where(holes > 0, holes * 3, 7.0)
    assert boundary_f1(filled, holes) < 0.99
    assert boundary_f1(filled, holes, valid=holes > 0) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="valid"):
        boundary_f1(gt, gt, valid=np.ones((3, 3), bool))
