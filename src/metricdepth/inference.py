"""The inference seam: images in, a typed :class:`~metricdepth.Prediction` out, for every depth source.

* :class:`DepthSource`: the one interface every source satisfies (Depth Pro, RSA pipelines, relative
  models, saved predictions): ``infer(image, ...) -> Prediction``.
* :func:`coerce_images`: paths, PIL images, arrays, tensors and lists → RGB pixels + EXIF focal lengths.
* :func:`resolve_focal`: the focal policy, user → EXIF → predicted, with the source of each value.
* :func:`infer_canonical`: batched inference of any network that outputs canonical inverse depth and a
  field of view (Depth Pro): images of different sizes share a forward pass, each comes back at its own
  size.

Conventions: depth in metres along the optical axis; focal lengths in pixels (horizontal, fx); OpenCV
intrinsics (pixel centres at integer coordinates). Metric inverse depth = canonical · W / f_px.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from .camera import focal_to_fov, fov_to_focal, intrinsics_matrix
from .io.images import LoadedImage, image_from_pil, load_image
from .ops import resize_bilinear
from .prediction import FocalSource, Prediction

__all__ = [
    "FOCAL_POLICIES",
    "DepthSource",
    "FocalPolicy",
    "ImageBatch",
    "ImageInput",
    "canonical_predictions",
    "canonical_to_metric",
    "coerce_images",
    "focal_from_predicted_fov",
    "infer_canonical",
    "network_input",
    "resolve_focal",
    "stack_predictions",
]

ImageInput = str | os.PathLike | Image.Image | np.ndarray | Tensor | LoadedImage | Sequence[Any]
"""A path, PIL image, (H, W, 3) array, (3, H, W) / (B, 3, H, W) tensor, :class:`LoadedImage`, or a list
of these (sizes may differ)."""

FocalPolicy = Literal["auto", "exif", "predicted"]
FOCAL_POLICIES: tuple[str, ...] = ("auto", "exif", "predicted")
"""``auto``: user, then EXIF, then the model. ``exif``: EXIF only. ``predicted``: the model only."""

MIN_INVERSE_DEPTH = 1e-4  # 1 / 10 km: the reference's depth ceiling
MAX_INVERSE_DEPTH = 1e4
MIN_FOV_DEG, MAX_FOV_DEG = 1e-3, 179.0
"""A predicted FOV is clamped into this range before f_px = 0.5·W / tan(FOV / 2)."""


@runtime_checkable
class DepthSource(Protocol):
    """Anything that turns images into :class:`~metricdepth.Prediction` results.

    ``infer`` takes an :data:`ImageInput` and returns one prediction per image, in the container
    given: a single image → a ``Prediction``; a list → a list; a (B, 3, H, W) tensor → a batched
    ``Prediction``. Camera keywords (``f_px``, ``K``, ``fov_deg``, ``focal``, ``use_exif``) follow
    :func:`resolve_focal`; sources without a camera (relative models) ignore them and say so by
    returning ``kind="relative"`` predictions.
    """

    def infer(self, image: ImageInput, **camera: Any) -> Prediction | list[Prediction]: ...


# ------------------------------------------------------------------------------ image coercion
@dataclass
class ImageBatch:
    """Images ready for a network.

    Attributes:
        pixels: one (3, H, W) tensor per image, uint8 or float in [0, 1], sizes may differ.
        exif_focal_px: the EXIF focal length of each image (pixels), where its file carried one.
        layout: ``"single"``, ``"list"`` or ``"tensor"`` (a (B, 3, H, W) input): how results return.
    """

    pixels: list[Tensor]
    exif_focal_px: list[float | None]
    layout: Literal["single", "list", "tensor"]

    def __len__(self) -> int:
        return len(self.pixels)

    def size(self, index: int) -> tuple[int, int]:
        """(H, W) of image ``index``."""
        return int(self.pixels[index].shape[-2]), int(self.pixels[index].shape[-1])


def coerce_images(image: ImageInput) -> ImageBatch:
    """Turn any :data:`ImageInput` into an :class:`ImageBatch` (files are read with :func:`load_image`).

    Raises:
        ImageLoadError: a file cannot be read (the message names it).
        ValueError / TypeError: an array or tensor is not an RGB image.
    """
    if isinstance(image, Tensor):
        pixels = image if image.ndim == 4 else image[None]
        if pixels.ndim != 4 or pixels.shape[1] != 3:
            raise ValueError(f"expected a (3, H, W) or (B, 3, H, W) tensor, got {tuple(image.shape)}")
        if len(pixels) == 0 or pixels.shape[-1] == 0 or pixels.shape[-2] == 0:
            raise ValueError(f"empty image batch: tensor of shape {tuple(image.shape)}")
        for item in pixels:
            _check_tensor(item)
        return ImageBatch(list(pixels), [None] * len(pixels), "tensor" if image.ndim == 4 else "single")
    if isinstance(image, (list, tuple)):
        if not image:
            raise ValueError("empty list of images")
        loaded = [_load_one(item) for item in image]
        layout: Literal["single", "list", "tensor"] = "list"
    else:
        loaded = [_load_one(image)]
        layout = "single"
    pixels = [item if isinstance(item, Tensor) else _rgb_tensor(item.rgb) for item in loaded]
    exif = [None if isinstance(item, Tensor) else item.focal_px for item in loaded]
    return ImageBatch(pixels, exif, layout)


def _check_tensor(pixels: Tensor) -> None:
    if pixels.dtype == torch.uint8:
        return
    if not pixels.is_floating_point():
        raise ValueError(f"image tensors must be uint8 or float in [0, 1], got {pixels.dtype}")
    if pixels.numel() and not -1e-3 <= float(pixels.amin()) <= float(pixels.amax()) <= 1.0 + 1e-3:
        raise ValueError(
            "float image tensors must hold RGB values in [0, 1] (divide 0–255 images by 255; "
            "infer normalises itself, so do not pass normalised tensors)"
        )


def _rgb_tensor(rgb: np.ndarray) -> Tensor:
    """(H, W, 3) uint8 array → (3, H, W) uint8 tensor view (no copy; it is only read)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        return torch.from_numpy(rgb).permute(2, 0, 1)


def _load_one(image: Any) -> LoadedImage | Tensor:
    if isinstance(image, (str, os.PathLike)):
        return load_image(image)
    if isinstance(image, Image.Image):
        return image_from_pil(image)
    if isinstance(image, LoadedImage):
        return image
    if isinstance(image, np.ndarray):
        return LoadedImage(rgb=_array_to_rgb(image))
    if isinstance(image, Tensor):
        if image.ndim != 3 or image.shape[0] != 3:
            raise ValueError(f"a tensor in a list of images must be (3, H, W), got {tuple(image.shape)}")
        _check_tensor(image)
        return image
    raise TypeError(f"unsupported image type {type(image).__name__}")


def _array_to_rgb(array: np.ndarray) -> np.ndarray:
    """(H, W), (H, W, 1|3|4) uint8, or float in [0, 1] → (H, W, 3) uint8."""
    if array.ndim == 2:
        array = array[..., None]
    if array.ndim != 3 or array.shape[2] not in (1, 3, 4):
        raise ValueError(f"expected an (H, W, 3) image array, got shape {array.shape}")
    if array.dtype != np.uint8:
        if not np.issubdtype(array.dtype, np.floating):
            raise ValueError(f"image arrays must be uint8 or float in [0, 1], got {array.dtype}")
        if array.size and not -1e-3 <= float(np.nanmin(array)) <= float(np.nanmax(array)) <= 1.0 + 1e-3:
            raise ValueError("float image arrays must hold values in [0, 1] (use uint8 for 0–255 images)")
        array = np.clip(np.rint(np.nan_to_num(array) * 255.0), 0, 255).astype(np.uint8)
    array = array[..., :3]
    if array.shape[2] == 1:
        array = np.repeat(array, 3, axis=2)
    return np.ascontiguousarray(array)


# ---------------------------------------------------------------------------------- focal policy
@dataclass(frozen=True)
class Camera:
    """The focal length an image's metric scale uses, its intrinsics and where it came from."""

    focal_px: float
    intrinsics: Tensor
    source: FocalSource


def _per_image(value: Any, name: str, count: int, upper: float = math.inf) -> list[float]:
    values = torch.as_tensor(value, dtype=torch.float64).flatten().tolist()
    if len(values) == 1:
        values = values * count
    if len(values) != count:
        raise ValueError(f"{name} has {len(values)} values for {count} images")
    for v in values:
        if not (math.isfinite(v) and 0 < v < upper):
            bound = "positive and finite" if upper == math.inf else f"strictly between 0 and {upper:g}"
            raise ValueError(f"{name} must be {bound}, got {v}")
    return values


def user_cameras(
    count: int,
    widths: Sequence[int],
    *,
    f_px: Any = None,
    K: Any = None,
    fov_deg: Any = None,
) -> list[tuple[float, Tensor | None]] | None:
    """The user's camera per image as (focal_px, K or None), or None when none was given."""
    given = [name for name, value in (("f_px", f_px), ("K", K), ("fov_deg", fov_deg)) if value is not None]
    if len(given) > 1:
        raise ValueError(f"give at most one of f_px, K and fov_deg (got {', '.join(given)})")
    if K is not None:
        intrinsics = torch.as_tensor(K, dtype=torch.float32)
        if intrinsics.shape == (3, 3):
            intrinsics = intrinsics.expand(count, 3, 3)
        if intrinsics.shape != (count, 3, 3):
            raise ValueError(f"K must be (3, 3) or ({count}, 3, 3), got {tuple(intrinsics.shape)}")
        focals = _per_image(intrinsics[:, 0, 0], "K[0, 0]", count)
        return [(f, k.clone()) for f, k in zip(focals, intrinsics, strict=True)]
    if f_px is not None:
        return [(f, None) for f in _per_image(f_px, "f_px", count)]
    if fov_deg is not None:
        fovs = _per_image(fov_deg, "fov_deg", count, upper=180.0)
        return [(fov_to_focal(fov, w), None) for fov, w in zip(fovs, widths, strict=True)]
    return None


def resolve_focal(
    size: tuple[int, int],
    *,
    user: tuple[float, Tensor | None] | None = None,
    exif_focal_px: float | None = None,
    predicted_fov_deg: float | None = None,
    policy: FocalPolicy = "auto",
    name: str = "image",
) -> Camera:
    """Choose the focal length of one (H, W) image.

    ``auto``: the user's value, else EXIF, else the model's FOV. ``exif``: EXIF only (an image
    without one is an error). ``predicted``: the model's FOV only. A predicted FOV outside
    (0°, 180°) (untrained weights) is clamped into it with a warning, so the focal stays defined.

    Raises:
        ValueError: the policy cannot be met (no EXIF focal, no FOV head); the message names ``name``.
    """
    if policy not in FOCAL_POLICIES:
        raise ValueError(f"unknown focal policy {policy!r}; choose from {', '.join(FOCAL_POLICIES)}")
    height, width = size
    if user is not None and policy != "auto":
        raise ValueError(f"a focal length given by the user cannot be combined with focal={policy!r}")
    if user is not None:
        focal, K = user
        if K is None:
            K = intrinsics_matrix(torch.tensor(focal, dtype=torch.float32), width, height)
        return Camera(focal, K, "user")
    if exif_focal_px is not None and policy in ("auto", "exif"):
        focal, source = float(exif_focal_px), "exif"
    elif policy == "exif":
        raise ValueError(
            f"{name}: no EXIF focal length (FocalLengthIn35mmFilm); use focal 'auto' or 'predicted'"
        )
    elif predicted_fov_deg is not None:
        if not MIN_FOV_DEG <= predicted_fov_deg <= MAX_FOV_DEG:
            warnings.warn(
                f"predicted FOV {predicted_fov_deg:.4g}° is outside (0°, 180°); using "
                f"{min(max(predicted_fov_deg, MIN_FOV_DEG), MAX_FOV_DEG):.4g}° "
                "(untrained or unsuitable weights?)",
                stacklevel=8,  # the caller of DepthPro.infer
            )
        focal, source = focal_from_predicted_fov(predicted_fov_deg, width), "predicted"
    elif policy == "predicted":
        raise ValueError(f"{name}: focal 'predicted' needs a model with a FOV head; this one has none")
    else:
        raise ValueError(
            f"{name}: this model has no FOV head: give f_px, K or fov_deg "
            "(or an image with an EXIF focal length)"
        )
    K = intrinsics_matrix(torch.tensor(focal, dtype=torch.float32), width, height)
    return Camera(focal, K, source)  # type: ignore[arg-type]


def focal_from_predicted_fov(fov_deg: float, width: int) -> float:
    """f_px = 0.5·W / tan(FOV / 2) of a model's raw FOV, clamped into [1e-3°, 179°] first (a raw head
    output can lie outside (0°, 180°)); the focal length the model's own estimate stands for."""
    return fov_to_focal(min(max(float(fov_deg), MIN_FOV_DEG), MAX_FOV_DEG), width)


# ------------------------------------------------------------------------ pre- and post-processing
def network_input(pixels: Tensor, size: int, device: torch.device, dtype: torch.dtype) -> Tensor:
    """(3, H, W) RGB (uint8, or float in [0, 1]) → (3, S, S) input normalised to [-1, 1].

    Exactly the reference's maths (float32; mean = std = 0.5; bilinear, align_corners=False, no
    antialias), one channel at a time so a large photo costs 4 bytes per pixel, not 12.
    """
    out = torch.empty((3, size, size), dtype=torch.float32, device=device)
    for channel in range(3):
        plane = pixels[channel].to(device)
        plane = plane.float() / 255.0 if plane.dtype == torch.uint8 else plane.float()
        plane = plane * 2.0 - 1.0
        if plane.shape != (size, size):
            plane = resize_bilinear(plane[None, None], size=(size, size))[0, 0]
        out[channel] = plane
        del plane
    return out.to(dtype)


def canonical_to_metric(
    canonical_inverse_depth: Tensor, focal_px: float, size: tuple[int, int]
) -> tuple[Tensor, Tensor]:
    """Canonical inverse depth (1, S, S) → metric inverse depth and depth, (H, W) float32 each.

    Inverse depth = canonical · W / f_px, resized bilinearly to (H, W), clamped to [1e-4, 1e4] (1/m);
    depth = 1 / inverse depth (m).
    """
    height, width = size
    inverse = canonical_inverse_depth.float()[None] * (width / focal_px)
    if inverse.shape[-2:] != (height, width):
        inverse = resize_bilinear(inverse, size=(height, width))
    inverse = inverse[0, 0].clamp_(MIN_INVERSE_DEPTH, MAX_INVERSE_DEPTH)
    return inverse, torch.reciprocal(inverse)


class CanonicalDepthNetwork(Protocol):
    """A network that maps (B, 3, S, S) images in [-1, 1] to canonical inverse depth and an FOV."""

    img_size: int

    @property
    def device(self) -> torch.device: ...

    @property
    def dtype(self) -> torch.dtype: ...

    def __call__(self, x: Tensor) -> tuple[Tensor, Tensor | None]: ...


@torch.no_grad()
def infer_canonical(
    network: CanonicalDepthNetwork,
    image: ImageInput,
    *,
    f_px: float | Sequence[float] | Tensor | None = None,
    K: np.ndarray | Tensor | None = None,
    fov_deg: float | Sequence[float] | Tensor | None = None,
    focal: FocalPolicy = "auto",
    use_exif: bool = True,
    batch_size: int = 4,
) -> Prediction | list[Prediction]:
    """Metric depth from a canonical-inverse-depth network (Depth Pro): the body of ``DepthPro.infer``.

    Images of any sizes are resized to the network input and run ``batch_size`` at a time; each
    prediction comes back at its image's own size. See :func:`resolve_focal` for the focal policy
    (``use_exif=False`` skips EXIF under ``auto``).

    Returns:
        One :class:`Prediction` per image in the container given: a single image → ``Prediction``;
        a list → ``list[Prediction]``; a (B, 3, H, W) tensor → a batched ``Prediction``.
    """
    images = coerce_images(image)
    if focal == "exif" and use_exif and f_px is None and K is None and fov_deg is None:
        for i, exif in enumerate(images.exif_focal_px):  # fail before any forward pass
            if exif is None:
                name = f"image {i}" if len(images) > 1 else "image"
                resolve_focal(images.size(i), policy="exif", name=name)
    results = canonical_predictions(
        network,
        images,
        f_px=f_px,
        K=K,
        fov_deg=fov_deg,
        focal=focal,
        use_exif=use_exif,
        batch_size=batch_size,
    )
    for result in results:
        if isinstance(result, Exception):
            raise result
    predictions: list[Prediction] = results  # type: ignore[assignment]
    if images.layout == "single":
        return predictions[0]
    if images.layout == "list":
        return predictions
    return stack_predictions(predictions)


@torch.no_grad()
def canonical_predictions(
    network: CanonicalDepthNetwork,
    images: ImageBatch,
    *,
    f_px: float | Sequence[float] | Tensor | None = None,
    K: np.ndarray | Tensor | None = None,
    fov_deg: float | Sequence[float] | Tensor | None = None,
    focal: FocalPolicy = "auto",
    use_exif: bool = True,
    batch_size: int = 4,
    inputs: Tensor | None = None,
    pad_to: int | None = None,
) -> list[Prediction | Exception]:
    """One :class:`Prediction` per image, or the error that image alone raised (its focal policy could
    not be met), so a batch runner fails that image only; :func:`infer_canonical` raises it instead.

    Args:
        images: the images (:func:`coerce_images`).
        inputs: (N, 3, S, S) network inputs already made from ``images`` by :func:`network_input` (e.g. in
            DataLoader workers, in pinned memory); moved to the network's device and dtype here.
        pad_to: pad each forward batch to this many images (zeros; their outputs are dropped), so a
            compiled network or CUDA graph sees one shape only.
        Others: as :func:`infer_canonical`.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    count = len(images)
    widths = [images.size(i)[1] for i in range(count)]
    users = user_cameras(count, widths, f_px=f_px, K=K, fov_deg=fov_deg)
    if users is not None and focal != "auto":
        raise ValueError(f"f_px, K or fov_deg cannot be combined with focal={focal!r}")
    if focal == "exif" and not use_exif:
        raise ValueError("focal='exif' cannot be combined with use_exif=False")
    if inputs is not None and tuple(inputs.shape[:2]) != (count, 3):
        raise ValueError(f"inputs must be ({count}, 3, S, S) for {count} images, got {tuple(inputs.shape)}")
    exif = images.exif_focal_px if use_exif else [None] * count
    results: list[Prediction | Exception] = []
    device, dtype, size = network.device, network.dtype, network.img_size
    for start in range(0, count, batch_size):
        chunk = range(start, min(start + batch_size, count))
        if inputs is None:
            x = torch.stack([network_input(images.pixels[i], size, device, dtype) for i in chunk])
        else:
            # Copy first (asynchronous from pinned memory), then cast on the device.
            x = inputs[chunk.start : chunk.stop].to(device=device, non_blocking=True).to(dtype)
        if pad_to is not None and len(chunk) < pad_to:
            x = torch.cat([x, x.new_zeros((pad_to - len(chunk), *x.shape[1:]))])
        canonical, fov = network(x)
        del x
        fovs = None if fov is None else fov[: len(chunk)].float().cpu().tolist()  # one sync per batch
        for j, i in enumerate(chunk):
            try:
                results.append(
                    _metric_prediction(
                        canonical[j],
                        images.size(i),
                        user=None if users is None else users[i],
                        exif_focal_px=exif[i],
                        predicted_fov_deg=None if fovs is None else fovs[j],
                        policy=focal,
                        name=f"image {i}" if count > 1 else "image",
                    )
                )
            except ValueError as err:  # this image's focal policy cannot be met
                results.append(err)
        del canonical
    return results


def _metric_prediction(
    canonical: Tensor,
    size: tuple[int, int],
    *,
    user: tuple[float, Tensor | None] | None,
    exif_focal_px: float | None,
    predicted_fov_deg: float | None,
    policy: FocalPolicy,
    name: str,
) -> Prediction:
    """One image's prediction from its (1, S, S) canonical inverse depth, on the network's device."""
    camera = resolve_focal(
        size,
        user=user,
        exif_focal_px=exif_focal_px,
        predicted_fov_deg=predicted_fov_deg,
        policy=policy,
        name=name,
    )
    inverse, depth = canonical_to_metric(canonical, camera.focal_px, size)
    return Prediction(
        depth=depth,
        inverse_depth=inverse,
        focal_px=camera.focal_px,
        focal_source=camera.source,
        fov_deg=focal_to_fov(camera.focal_px, size[1]),
        intrinsics=camera.intrinsics.to(depth.device),
        predicted_fov_deg=predicted_fov_deg,
    )


def stack_predictions(predictions: list[Prediction]) -> Prediction:
    """One batched prediction from same-size single ones (any source: metric or relative; camera
    fields and captions kept where every prediction has them)."""

    device = predictions[0].inverse_depth.device

    def column(name: str) -> Tensor | None:
        values = [getattr(p, name) for p in predictions]
        if any(v is None for v in values):
            return None
        return torch.tensor(values, dtype=torch.float32, device=device)

    def stacked(name: str) -> Tensor | None:
        values = [getattr(p, name) for p in predictions]
        return None if any(v is None for v in values) else torch.stack(values)

    sources = [p.focal_source for p in predictions]
    captions = [p.caption for p in predictions]
    return Prediction(
        depth=stacked("depth"),
        inverse_depth=torch.stack([p.inverse_depth for p in predictions]),
        kind=predictions[0].kind,
        focal_px=column("focal_px"),
        focal_source=None if any(v is None for v in sources) else sources,  # type: ignore[arg-type]
        fov_deg=column("fov_deg"),
        intrinsics=stacked("intrinsics"),
        predicted_fov_deg=column("predicted_fov_deg"),
        caption=None if all(c is None for c in captions) else captions,  # type: ignore[arg-type]
    )
