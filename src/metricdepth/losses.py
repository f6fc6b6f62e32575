"""Training losses of Depth Pro (arXiv 2410.02073, §3.2 and appendix), masked and reduced per image.

All losses act on *canonical inverse depth* (the network's output C and the target Ĉ = f_px / (w·D)); they
are unitless, as that quantity is. Every loss is computed per image over that image's valid pixels and
then averaged over the images that have at least one valid pixel; a batch with no valid pixel at all gives
a zero that is still connected to the graph. Values of ``pred`` or ``target`` under an invalid mask (NaN
and ±inf included) never reach any arithmetic: they are replaced by 0 first, so they change neither the
loss nor its gradients.

====================== ===============================================================================
:func:`mae`            mean |pred − target| (MAE; ``trim=0.2`` on real-world data, paper Eq. 1)
:func:`mse`            mean (pred − target)² (MSE, stage 2)
:func:`normalize`      MiDaS-style (x − median) / mean|x − median|, per image (for the SSI- variants)
:func:`ssi_mae`        :func:`mae` of the normalised prediction and target (SSI-MAE)
:func:`gradient_loss`  multi-scale derivative loss L_{op,p,M} (paper Eq. 2): MAGE = Scharr, p = 1;
                       MALE = Laplace, p = 1; MSGE = Scharr, p = 2; M = 6 in the paper
====================== ===============================================================================

What the paper leaves open, and the choice made here:

- the loss weights and how the terms are summed: left to the caller (the training configuration);
- the blur before each 2× downsampling: a separable 5-tap binomial kernel [1, 4, 6, 4, 1] / 16 with
  replicated borders (the Gaussian-pyramid ``pyrDown`` kernel);
- the derivative normalisation: Scharr divided by 32 (absolute weights sum to 1, a ramp of slope 1 per
  pixel gives 1), Laplace unnormalised ([[0, 1, 0], [1, −4, 1], [0, 1, 0]], exact on quadratics: x² gives 2);
  derivatives are per pixel of their own scale (not rescaled by 2^j);
- masking in the derivative terms: a derivative counts only where its whole 3×3 stencil is valid and not on
  the image border; a coarse pixel is valid only where every fine pixel under its 5×5 blur footprint was;
- how trimming meets SSI normalisation: :func:`ssi_mae` normalises with all valid pixels, then trims the
  errors; SSI-MAGE is most likely ``gradient_loss(normalize(pred, mask), normalize(target, mask), mask)``.
"""

from __future__ import annotations

from fractions import Fraction

import torch
import torch.nn.functional as F

__all__ = ["OPERATORS", "gradient_loss", "mae", "mse", "normalize", "ssi_mae"]

OPERATORS = ("scharr", "laplace")
"""Derivative operators of :func:`gradient_loss`."""

EPS = 1e-6
"""Lower bound of the mean absolute deviation :func:`normalize` divides by."""

_BINOMIAL_5 = (1.0, 4.0, 6.0, 4.0, 1.0)


def _canonical(x: torch.Tensor, name: str) -> torch.Tensor:
    """``x`` as (B, 1, H, W): a (B, H, W) tensor gains the channel dimension."""
    if x.ndim == 3:
        return x.unsqueeze(1)
    if x.ndim == 4 and x.shape[1] == 1:
        return x
    raise ValueError(f"{name} must have shape (B, 1, H, W) or (B, H, W), got {tuple(x.shape)}")


def _mask(mask: torch.Tensor | None, like: torch.Tensor) -> torch.Tensor:
    """The (B, 1, H, W) bool mask for ``like`` (its original shape): all True when ``mask`` is None."""
    if mask is None:
        return torch.ones(_canonical(like, "input").shape, dtype=torch.bool, device=like.device)
    if mask.dtype != torch.bool:
        raise ValueError(f"mask must be a bool tensor, got {mask.dtype}")
    if mask.shape != like.shape:
        raise ValueError(f"mask shape {tuple(mask.shape)} does not match {tuple(like.shape)}")
    return _canonical(mask, "mask")


def _prepare(
    pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Validated (B, 1, H, W) pred, target (zero where invalid) and bool mask."""
    if pred.shape != target.shape:
        raise ValueError(f"pred shape {tuple(pred.shape)} does not match target {tuple(target.shape)}")
    valid = _mask(mask, pred)
    pred, target = _canonical(pred, "pred"), _canonical(target, "target")
    return torch.where(valid, pred, 0), torch.where(valid, target, 0), valid


def _check_trim(trim: float) -> None:
    if not 0.0 <= trim < 1.0:
        raise ValueError(f"trim must be in [0, 1), got {trim}")


def _per_image_mean(
    err: torch.Tensor, valid: torch.Tensor, trim: float = 0.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Each image's mean error over its valid pixels, after dropping its floor(trim·n) largest errors.

    Args:
        err: finite errors, :math:`(B, N)`.
        valid: bool, :math:`(B, N)`.
        trim: fraction of each image's n valid errors to drop, in [0, 1); a decimal such as 0.2 is taken
            as the exact fraction 1/5, so floor(0.2·n) is exact.

    Returns:
        the per-image means :math:`(B,)` (0 for an image without valid pixels) and whether each image has a
        valid pixel :math:`(B,)`.
    """
    count = valid.sum(1)
    if trim > 0:
        fraction = Fraction(trim).limit_denominator(1_000_000)
        drop = torch.minimum(count * fraction.numerator // fraction.denominator, (count - 1).clamp(min=0))
        count = count - drop
        ordered = torch.sort(torch.where(valid, err, torch.inf), dim=1).values
        rank = torch.arange(err.shape[1], device=err.device)
        total = torch.where(rank[None] < count[:, None], ordered, 0).sum(1)
    else:
        total = torch.where(valid, err, 0).sum(1)
    return total / count.clamp(min=1), count > 0


def _average(per_image: torch.Tensor, has_valid: torch.Tensor) -> torch.Tensor:
    """Mean of ``per_image`` (B,) over the images with ``has_valid``; 0 (in the graph) when there are none."""
    return torch.where(has_valid, per_image, 0).sum() / has_valid.sum().clamp(min=1)


def _pointwise(
    pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None, trim: float, square: bool
) -> torch.Tensor:
    _check_trim(trim)
    pred, target, valid = _prepare(pred, target, mask)
    diff = pred - target
    err = diff.square() if square else diff.abs()
    return _average(*_per_image_mean(err.flatten(1), valid.flatten(1), trim))


def mae(
    pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None, trim: float = 0.0
) -> torch.Tensor:
    """Mean absolute error over valid pixels, per image then averaged over images (paper Eq. 1).

    Args:
        pred: predicted canonical inverse depth, :math:`(B, 1, H, W)` or :math:`(B, H, W)`.
        target: target canonical inverse depth, same shape as ``pred``.
        mask: bool, same shape, True where the target is valid; None: all valid.
        trim: fraction in [0, 1) of each image's largest errors to drop (floor(trim·n) of its n valid
            pixels); the paper uses 0.2 on real-world data.

    Returns:
        the loss, a scalar tensor (unitless, as canonical inverse depth).
    """
    return _pointwise(pred, target, mask, trim, square=False)


def mse(
    pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None, trim: float = 0.0
) -> torch.Tensor:
    """Mean squared error over valid pixels, per image then averaged over images: :func:`mae` with
    squared errors (same arguments, same trimming); the loss is in squared units of canonical inverse
    depth."""
    return _pointwise(pred, target, mask, trim, square=True)


def normalize(x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """MiDaS-style shift-and-scale normalisation per image: (x − median) / mean|x − median|.

    The median is the lower median of the image's valid pixels; the mean absolute deviation is clamped
    to at least :data:`EPS` (1e-6), so a constant image normalises to 0 rather than blowing up.

    Args:
        x: values, :math:`(B, 1, H, W)` or :math:`(B, H, W)`.
        mask: bool, same shape, True where ``x`` is valid; None: all valid.

    Returns:
        the normalised values, same shape as ``x`` (unitless); 0 on invalid pixels.
    """
    valid = _mask(mask, x)
    flat = torch.where(valid, _canonical(x, "x"), 0).flatten(1)
    valid = valid.flatten(1)
    count = valid.sum(1, keepdim=True)
    ordered = torch.sort(torch.where(valid, flat, torch.inf), dim=1).values
    median = ordered.gather(1, (count - 1).clamp(min=0) // 2)
    median = torch.where(count > 0, median, 0)
    centred = torch.where(valid, flat - median, 0)
    scale = centred.abs().sum(1, keepdim=True) / count.clamp(min=1)
    return (centred / scale.clamp(min=EPS)).reshape(x.shape)


def ssi_mae(
    pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None, trim: float = 0.0
) -> torch.Tensor:
    """Scale-and-shift-invariant MAE: :func:`mae` of :func:`normalize`-d prediction and target.

    Both are normalised with all their valid pixels; trimming then drops the largest normalised errors.

    Args:
        pred: prediction, :math:`(B, 1, H, W)` or :math:`(B, H, W)`.
        target: target, same shape as ``pred``.
        mask: bool, same shape, True where the target is valid; None: all valid.
        trim: fraction in [0, 1) of each image's largest errors to drop (0.2 on real-world data).

    Returns:
        the loss, a scalar tensor (unitless).
    """
    _check_trim(trim)
    if pred.shape != target.shape:
        raise ValueError(f"pred shape {tuple(pred.shape)} does not match target {tuple(target.shape)}")
    return mae(normalize(pred, mask), normalize(target, mask), mask, trim)


def _derivative_kernel(operator: str, like: torch.Tensor) -> torch.Tensor:
    """Convolution weights (K, 1, 3, 3): Scharr x and y (K = 2) divided by 32, or the Laplacian (K = 1)."""
    if operator == "scharr":
        dx = torch.tensor([[-3.0, 0.0, 3.0], [-10.0, 0.0, 10.0], [-3.0, 0.0, 3.0]]) / 32
        weight = torch.stack([dx, dx.T])
    else:
        weight = torch.tensor([[[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]]])
    return weight.unsqueeze(1).to(dtype=like.dtype, device=like.device)


def _downsample(x: torch.Tensor, invalid: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """One pyramid step: binomial blur, then every other pixel, (H, W) → (⌈H/2⌉, ⌈W/2⌉).

    Args:
        x: values, zero where invalid, :math:`(B, 1, H, W)`.
        invalid: 1.0 where invalid, 0.0 where valid, :math:`(B, 1, H, W)`.

    Returns:
        the coarse values and the coarse invalid map: a coarse pixel is invalid when any image pixel under
        its 5×5 footprint is.
    """
    taps = torch.tensor(_BINOMIAL_5, dtype=x.dtype, device=x.device) / 16
    x = F.pad(x, (2, 2, 2, 2), mode="replicate")
    x = F.conv2d(x, taps.view(1, 1, 1, 5), stride=(1, 2))
    x = F.conv2d(x, taps.view(1, 1, 5, 1), stride=(2, 1))
    return x, F.max_pool2d(invalid, 5, stride=2, padding=2)


def gradient_loss(
    pred: torch.Tensor,
    target: torch.Tensor,
    mask: torch.Tensor | None = None,
    operator: str = "scharr",
    scales: int = 6,
    p: int = 1,
) -> torch.Tensor:
    """Multi-scale derivative loss L_{op,p,M} = (1/M) Σ_j mean_i |∇_op pred_i^j − ∇_op target_i^j|^p (Eq. 2).

    Scale 0 is the input; scale j + 1 blurs scale j with the separable binomial kernel [1, 4, 6, 4, 1] / 16
    (replicated borders) and keeps every other pixel. A coarse pixel is valid only if every fine pixel under
    its 5×5 footprint was valid. ``scharr`` gives the x and y derivatives (3×3 Scharr divided by 32: a ramp
    of slope 1 per pixel gives 1) and the per-pixel error is |Δx|^p + |Δy|^p; ``laplace`` gives the
    unnormalised 4-neighbour Laplacian [[0, 1, 0], [1, −4, 1], [0, 1, 0]] and the error |Δ|^p. Derivatives
    are per pixel of their scale, computed without padding (the border is dropped) and valid only where
    their whole 3×3 stencil is. Each image averages its errors over the valid derivative pixels of each
    scale, then over the scales where it has any (scales smaller than 3×3 are skipped); the loss averages
    the images that have a valid derivative at any scale. MAGE = (scharr, p=1), MALE = (laplace, p=1),
    MSGE = (scharr, p=2), all with 6 scales in the paper.

    Args:
        pred: predicted canonical inverse depth, :math:`(B, 1, H, W)` or :math:`(B, H, W)`.
        target: target canonical inverse depth, same shape as ``pred``.
        mask: bool, same shape, True where the target is valid; None: all valid.
        operator: ``"scharr"`` or ``"laplace"``.
        scales: number of pyramid scales M, at least 1.
        p: exponent of the error, 1 or 2.

    Returns:
        the loss, a scalar tensor (units of canonical inverse depth per pixel, to the power p).
    """
    if operator not in OPERATORS:
        raise ValueError(f"unknown operator {operator!r}; choose one of {', '.join(OPERATORS)}")
    if isinstance(scales, bool) or not isinstance(scales, int) or scales < 1:
        raise ValueError(f"scales must be an integer ≥ 1, got {scales!r}")
    if isinstance(p, bool) or p not in (1, 2):
        raise ValueError(f"p must be 1 or 2, got {p!r}")
    pred, target, valid = _prepare(pred, target, mask)
    kernel = _derivative_kernel(operator, pred)
    # Every step is linear, so the derivatives of the difference are the differences of the derivatives.
    diff = pred - target
    invalid = (~valid).to(diff.dtype)
    total = diff.flatten(1)[:, :0].sum(1)  # zeros (B,), in the graph even when no scale fits the stencil
    counted = torch.zeros(diff.shape[0], dtype=torch.long, device=diff.device)
    for scale in range(scales):
        if scale:
            diff, invalid = _downsample(diff, invalid)
        if min(diff.shape[-2:]) < 3:
            break
        delta = F.conv2d(diff, kernel)
        err = (delta.abs() if p == 1 else delta.square()).sum(1)
        stencil_valid = F.max_pool2d(invalid, 3, stride=1)[:, 0] == 0
        mean, has_valid = _per_image_mean(err.flatten(1), stencil_valid.flatten(1))
        total = total + mean
        counted = counted + has_valid.long()
    return _average(total / counted.clamp(min=1), counted > 0)
