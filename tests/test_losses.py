"""metricdepth.losses: gradients, known answers, masking and per-image averaging."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable

import pytest
import torch

from metricdepth import losses

Loss = Callable[[torch.Tensor, torch.Tensor, torch.Tensor | None], torch.Tensor]

LOSSES: dict[str, Loss] = {
    "mae": lambda p, t, m: losses.mae(p, t, m),
    "mae-trim": lambda p, t, m: losses.mae(p, t, m, trim=0.2),
    "mse": lambda p, t, m: losses.mse(p, t, m),
    "mse-trim": lambda p, t, m: losses.mse(p, t, m, trim=0.2),
    "ssi_mae": lambda p, t, m: losses.ssi_mae(p, t, m),
    "ssi_mae-trim": lambda p, t, m: losses.ssi_mae(p, t, m, trim=0.2),
    "scharr-p1": lambda p, t, m: losses.gradient_loss(p, t, m, "scharr", scales=3, p=1),
    "scharr-p2": lambda p, t, m: losses.gradient_loss(p, t, m, "scharr", scales=3, p=2),
    "laplace-p1": lambda p, t, m: losses.gradient_loss(p, t, m, "laplace", scales=3, p=1),
    "laplace-p2": lambda p, t, m: losses.gradient_loss(p, t, m, "laplace", scales=3, p=2),
}


def _generator(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _inputs(
    batch: int = 2, size: int = 12, seed: int = 0, invalid: float = 0.15
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """float64 pred, target (B, 1, size, size) with distinct |pred − target| in [0.1, 1.1], and a mask."""
    gen = _generator(seed)
    shape = (batch, 1, size, size)
    target = torch.rand(shape, generator=gen, dtype=torch.float64)
    offsets = 0.1 + torch.randperm(target.numel(), generator=gen).to(torch.float64).reshape(shape) / (
        target.numel()
    )
    signs = torch.where(torch.rand(shape, generator=gen) < 0.5, -1.0, 1.0).to(torch.float64)
    pred = target + signs * offsets
    mask = torch.rand(shape, generator=gen) >= invalid
    return pred, target, mask


def _dirty(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``x`` with NaN, ±inf and huge values cycled into its invalid pixels."""
    junk = torch.tensor([math.nan, math.inf, -math.inf, 1e30, -7.0], dtype=x.dtype)
    fill = junk[torch.arange(x.numel()) % len(junk)].reshape(x.shape)
    return torch.where(mask, x, fill)


def _value_and_grads(fn: Loss, pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None):
    pred = pred.clone().requires_grad_(True)
    target = target.clone().requires_grad_(True)
    loss = fn(pred, target, mask)
    loss.backward()
    return loss.detach(), pred.grad, target.grad


# --- gradients ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(LOSSES))
def test_gradcheck(name: str) -> None:
    pred, target, mask = _inputs(batch=2, size=12)
    pred.requires_grad_(True)
    target.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda p, t: LOSSES[name](p, t, mask), (pred, target))


def test_gradcheck_normalize() -> None:
    pred, _, mask = _inputs(batch=2, size=8)
    pred.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda x: losses.normalize(x, mask), (pred,))


# --- known answers --------------------------------------------------------------------------------------


def test_mae_mse_known_answers() -> None:
    pred = torch.tensor([[[1.0, 2.0], [3.0, 4.0]], [[1.0, 5.0], [100.0, -100.0]]])
    target = torch.zeros_like(pred)
    mask = torch.tensor([[[True, True], [True, True]], [[True, True], [False, False]]])
    # Per image: (1 + 2 + 3 + 4) / 4 = 2.5 and (1 + 5) / 2 = 3; a pooled mean would give 16 / 6.
    assert losses.mae(pred, target, mask).item() == pytest.approx(2.75)
    # Per image: (1 + 4 + 9 + 16) / 4 = 7.5 and (1 + 25) / 2 = 13.
    assert losses.mse(pred, target, mask).item() == pytest.approx(10.25)
    assert losses.mae(pred[:1], target[:1]).item() == pytest.approx(2.5)
    # Trimming 50 % of image 0 keeps errors 1, 2; image 1 keeps error 1.
    assert losses.mae(pred, target, mask, trim=0.5).item() == pytest.approx((1.5 + 1.0) / 2)


@pytest.mark.parametrize("trim", [0.0, 0.1, 0.2, 0.25, 0.3, 0.5, 0.95])
@pytest.mark.parametrize("count", [10, 17, 20])
def test_trim_drops_exact_fraction(trim: float, count: int) -> None:
    errors = torch.arange(1, 21, dtype=torch.float64)[torch.randperm(20, generator=_generator(count))]
    target = torch.zeros(1, 1, 4, 5, dtype=torch.float64)
    pred = errors.reshape(target.shape)
    # The valid pixels are those with errors 1..count.
    mask = pred <= count
    keep = count - math.floor(round(trim * count, 9))
    expected_mae = sum(range(1, keep + 1)) / keep
    expected_mse = sum(e * e for e in range(1, keep + 1)) / keep
    assert losses.mae(pred, target, mask, trim=trim).item() == pytest.approx(expected_mae, rel=1e-12)
    assert losses.mse(pred, target, mask, trim=trim).item() == pytest.approx(expected_mse, rel=1e-12)


def test_trim_keeps_at_least_one_error() -> None:
    pred = torch.tensor([[[3.0]]])
    assert losses.mae(pred, torch.zeros_like(pred), trim=0.9).item() == 3.0


@pytest.mark.parametrize(("scale", "shift"), [(1.0, 0.0), (2.0, -3.0), (0.01, 5.0), (1000.0, 1.0)])
def test_ssi_mae_invariant_to_positive_scale_and_shift(scale: float, shift: float) -> None:
    _, target, mask = _inputs(batch=2, size=9, seed=3)
    assert losses.ssi_mae(scale * target + shift, target, mask).item() < 1e-9
    assert losses.ssi_mae(scale * target + shift, target, mask, trim=0.2).item() < 1e-9
    assert losses.ssi_mae(-scale * target + shift, target, mask).item() > 0.5


def test_normalize_median_zero_mean_abs_one() -> None:
    pred, _, mask = _inputs(batch=3, size=9, seed=4, invalid=0.3)
    out = losses.normalize(3.0 * pred + 2.0, mask)
    assert out.shape == pred.shape
    for image, valid in zip(out, mask, strict=True):
        values = image[valid]
        assert values.median().item() == 0.0  # torch.median is the lower median, as normalize's
        assert values.abs().mean().item() == pytest.approx(1.0, rel=1e-12)
        assert torch.all(image[~valid] == 0)


def test_normalize_constant_and_empty_images() -> None:
    x = torch.full((2, 5, 5), 4.0, requires_grad=True)
    mask = torch.ones(2, 5, 5, dtype=torch.bool)
    mask[1] = False
    out = losses.normalize(x, mask)
    assert out.shape == x.shape
    assert torch.all(out == 0)
    out.sum().backward()
    assert torch.isfinite(x.grad).all()


@pytest.mark.parametrize("operator", losses.OPERATORS)
def test_gradient_loss_ignores_constant_offset(operator: str) -> None:
    target = torch.rand(2, 1, 40, 40, generator=_generator(5)) * 10
    mask = torch.ones_like(target, dtype=torch.bool)
    # Holes: their zeroed values would create edges unless stencils and coarse footprints avoid them.
    mask[0, 0, 10:14, 20:23] = False
    mask[1, 0, 3, :] = False
    mask[1, 0, 25, 30] = False
    for p in (1, 2):
        loss = losses.gradient_loss(target + 3.7, target, mask, operator, scales=4, p=p)
        assert abs(loss.item()) < 1e-6
        assert losses.gradient_loss(target + 3.7, target, None, operator, scales=6, p=p).item() < 1e-6


def test_gradient_loss_operator_normalisation() -> None:
    rows, cols = torch.meshgrid(torch.arange(8.0), torch.arange(10.0), indexing="ij")
    zero = torch.zeros(1, 8, 10)
    # Scharr / 32: a ramp of slope 1 per pixel has derivative 1; p = 2 squares it.
    assert losses.gradient_loss(cols[None], zero, operator="scharr", scales=1).item() == pytest.approx(1.0)
    slope = (2 * cols + rows)[None]
    assert losses.gradient_loss(slope, zero, operator="scharr", scales=1, p=1).item() == pytest.approx(3.0)
    assert losses.gradient_loss(slope, zero, operator="scharr", scales=1, p=2).item() == pytest.approx(5.0)
    # Laplace, unnormalised: x² has Laplacian 2.
    assert losses.gradient_loss(cols[None] ** 2, zero, operator="laplace", scales=1).item() == pytest.approx(
        2.0
    )
    assert losses.gradient_loss(cols[None], zero, operator="laplace", scales=1).item() == pytest.approx(0.0)


@pytest.mark.parametrize(("operator", "p"), [("scharr", 1), ("scharr", 2), ("laplace", 1), ("laplace", 2)])
def test_gradient_loss_grows_with_blur(operator: str, p: int) -> None:
    position = torch.arange(64, dtype=torch.float64) - 31.5
    sharp = (position > 0).to(torch.float64).expand(1, 1, 48, 64)
    values = []
    for sigma in (0.3, 0.6, 1.0, 2.0, 4.0, 8.0):
        blurred = 0.5 * (1 + torch.erf(position / (sigma * math.sqrt(2)))).expand(1, 1, 48, 64)
        values.append(losses.gradient_loss(blurred, sharp, operator=operator, scales=6, p=p).item())
    assert values[0] > 0
    assert all(a < b for a, b in itertools.pairwise(values)), values


def test_gradient_loss_skips_scales_smaller_than_the_stencil() -> None:
    pred, target, _ = _inputs(batch=1, size=12, seed=6)
    # 12 → 6 → 3 → 2 (skipped): 3 and 30 scales are the same loss.
    three = losses.gradient_loss(pred, target, scales=3)
    assert torch.equal(three, losses.gradient_loss(pred, target, scales=30))
    assert not torch.equal(three, losses.gradient_loss(pred, target, scales=2))
    tiny = torch.ones(1, 2, 2, requires_grad=True)
    loss = losses.gradient_loss(tiny, torch.zeros(1, 2, 2))
    assert loss.item() == 0.0
    loss.backward()
    assert torch.isfinite(tiny.grad).all()


# --- shapes, masks, per-image averaging ----------------------------------------------------------------


@pytest.mark.parametrize("name", list(LOSSES))
def test_3d_input_matches_4d(name: str) -> None:
    pred, target, mask = _inputs(batch=2, size=12, seed=7)
    fn = LOSSES[name]
    assert torch.equal(fn(pred[:, 0], target[:, 0], mask[:, 0]), fn(pred, target, mask))
    assert torch.equal(fn(pred[:, 0], target[:, 0], None), fn(pred, target, None))


@pytest.mark.parametrize("name", list(LOSSES))
def test_invalid_pixels_never_matter(name: str) -> None:
    pred, target, mask = _inputs(batch=2, size=12, seed=8, invalid=0.25)
    fn = LOSSES[name]
    clean = _value_and_grads(fn, pred, target, mask)
    dirty = _value_and_grads(fn, _dirty(pred, mask), _dirty(target, mask), mask)
    assert torch.isfinite(clean[0])
    for a, b in zip(clean, dirty, strict=True):
        assert torch.isfinite(b).all()
        assert torch.equal(a, b)
    assert torch.all(dirty[1][~mask] == 0)


def test_normalize_invalid_pixels_never_matter() -> None:
    x, _, mask = _inputs(batch=2, size=9, seed=9, invalid=0.25)
    weights = torch.rand(x.shape, generator=_generator(1), dtype=torch.float64)
    outputs, grads = [], []
    for values in (x, _dirty(x, mask)):
        values = values.clone().requires_grad_(True)
        out = losses.normalize(values, mask)
        (out * weights).sum().backward()
        outputs.append(out.detach())
        grads.append(values.grad)
    assert torch.equal(outputs[0], outputs[1])
    assert torch.isfinite(grads[1]).all()
    assert torch.equal(grads[0], grads[1])


@pytest.mark.parametrize("name", list(LOSSES))
def test_all_invalid_gives_zero_and_finite_gradients(name: str) -> None:
    pred, target, _ = _inputs(batch=2, size=12, seed=10)
    mask = torch.zeros_like(pred, dtype=torch.bool)
    loss, pred_grad, target_grad = _value_and_grads(
        LOSSES[name], torch.full_like(pred, math.nan), _dirty(target, mask), mask
    )
    assert loss.item() == 0.0
    assert torch.all(pred_grad == 0)
    assert torch.all(target_grad == 0)


@pytest.mark.parametrize("name", list(LOSSES))
def test_empty_image_does_not_change_the_average(name: str) -> None:
    pred, target, mask = _inputs(batch=2, size=12, seed=11)
    mask[1] = False
    fn = LOSSES[name]
    both = fn(_dirty(pred, mask), _dirty(target, mask), mask)
    assert both.item() == pytest.approx(fn(pred[:1], target[:1], mask[:1]).item(), rel=1e-12)


@pytest.mark.parametrize("name", list(LOSSES))
def test_loss_is_mean_of_per_image_losses(name: str) -> None:
    pred, target, mask = _inputs(batch=2, size=12, seed=12, invalid=0.1)
    mask[1, :, :6] = False  # image 1 has about half as many valid pixels as image 0
    fn = LOSSES[name]
    singles = [fn(pred[i : i + 1], target[i : i + 1], mask[i : i + 1]).item() for i in range(2)]
    assert singles[0] != pytest.approx(singles[1])
    assert fn(pred, target, mask).item() == pytest.approx(sum(singles) / 2, rel=1e-12)


# --- argument checks -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda p, t, m: losses.gradient_loss(p, t, m, operator="sobel"), "operator"),
        (lambda p, t, m: losses.gradient_loss(p, t, m, scales=0), "scales"),
        (lambda p, t, m: losses.gradient_loss(p, t, m, scales=2.0), "scales"),
        (lambda p, t, m: losses.gradient_loss(p, t, m, p=3), "p must"),
        (lambda p, t, m: losses.mae(p, t, m, trim=1.0), "trim"),
        (lambda p, t, m: losses.mse(p, t, m, trim=-0.1), "trim"),
        (lambda p, t, m: losses.ssi_mae(p, t, m, trim=1.5), "trim"),
        (lambda p, t, m: losses.mae(p, t[..., :-1], m), "shape"),
        (lambda p, t, m: losses.ssi_mae(p, t[..., :-1], m), "shape"),
        (lambda p, t, m: losses.gradient_loss(p, t, m[..., :-1]), "mask shape"),
        (lambda p, t, m: losses.mae(p, t, m.double()), "bool"),
        (lambda p, t, m: losses.mse(p.expand(2, 3, 12, 12), t.expand(2, 3, 12, 12), None), "shape"),
        (lambda p, t, m: losses.normalize(p[0, 0], m[0, 0]), "shape"),
    ],
)
def test_bad_arguments(call: Callable, message: str) -> None:
    pred, target, mask = _inputs(batch=2, size=12)
    with pytest.raises(ValueError, match=message):
        call(pred, target, mask)
