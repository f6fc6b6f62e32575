"""Training data: canonical inverse-depth targets, honest augmentation, the dataset mixture, the sampler.

Depth Pro predicts canonical inverse depth C on a square S × S input (the image resized
anisotropically); metric depth is D = f_px / (W · C) with f_px the horizontal focal length and W the
image width, both in the same pixels. The training target is therefore Ĉ = f_px / (W · D): the ratio
f / W is unchanged by resizing but changes with cropping, so a crop of width w_c (original pixels)
with focal f has target f / (w_c · D). :func:`canonical_target` is the one place it is computed.

One training item (:func:`augment`, :class:`MixtureDataset`) is a dict that torch's
``default_collate`` stacks:

================== =========================================================================
key                value
================== =========================================================================
image              (3, S, S) float32 RGB in [-1, 1] (``RGB / 255 · 2 − 1``, as the network's input)
target             (1, S, S) float32 canonical inverse depth f / (w_c · D) (1/m · px/px); 0 where invalid
valid              (1, S, S) bool, pixels with a usable target
K                  (3, 3) float32 intrinsics of the S × S item, pixels, OpenCV (NaN if focal unknown)
focal_over_width   float, f / w_c of the crop (NaN if unknown)
fov_deg            float, horizontal field of view of the crop, degrees (NaN if unknown)
kind               int, index into :data:`~metricdepth.train.config.LABEL_KINDS`
source             int, index of the dataset in the mixture
trim               float, fraction of largest per-image errors the loss drops
position           int, the sampler position the item was drawn for
================== =========================================================================

Determinism: an item depends only on (seed, position) and the configs, never on call order, worker
or process, so a run resumed at step k (:class:`StepSampler` ``start_step=k``) sees exactly the items
an uninterrupted run would, and a run on N processes sees the items of a 1-process run whose batch
is N times larger.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageEnhance, ImageFilter

from .config import LABEL_KINDS, AugmentConfig, DatasetConfig

__all__ = [
    "MAX_ATTEMPTS",
    "MixtureDataset",
    "StepSampler",
    "augment",
    "canonical_target",
    "check_augment_config",
    "check_dataset_config",
    "crop_box",
    "crop_intrinsics",
    "dataset_label",
    "effective_trim",
    "horizontal_fov_deg",
    "open_source",
    "sample_focal_px",
]

MAX_ATTEMPTS = 10
"""How many draws :class:`MixtureDataset` makes for one position before giving up on bad samples."""

POSITIONS = 1 << 62
"""What ``len(MixtureDataset)`` reports: positions are unbounded, the sampler decides which are used."""

HUE_RANGE = 1 / 6
"""Colour jitter rotates hue by up to ``color_strength · HUE_RANGE`` of a turn (±18° at strength 0.3)."""


# ----------------------------------------------------------------------------------------------------
# Targets and cameras


def canonical_target(
    depth: np.ndarray, valid: np.ndarray | None, focal_over_width: float | None
) -> tuple[np.ndarray, np.ndarray]:
    """The training target: canonical inverse depth ``focal_over_width / depth``.

    Args:
        depth: (H, W) metres along the optical axis (0 or NaN where unknown).
        valid: (H, W) bool, or None (every finite positive depth counts).
        focal_over_width: f_px / W of the image the depth belongs to (both in the same pixels, so the
            ratio is unitless); None for relative data whose scale is unknown: the target is then
            plain inverse depth 1 / depth (1/m up to an unknown scale; affine-invariant losses ignore it).

    Returns:
        target (H, W) float32, 1/m · (px/px), 0 where invalid; valid (H, W) bool: ``valid`` and depth
        finite and > 0 and the target finite.
    """
    depth = np.asarray(depth)
    with np.errstate(invalid="ignore"):
        ok = np.isfinite(depth) & (depth > 0)
    if valid is not None:
        ok &= np.asarray(valid, dtype=bool)
    scale = 1.0 if focal_over_width is None else float(focal_over_width)
    if not (math.isfinite(scale) and scale > 0):
        raise ValueError(f"focal_over_width must be finite and > 0, got {focal_over_width}")
    target = np.zeros(depth.shape, dtype=np.float32)
    with np.errstate(over="ignore"):
        target[ok] = (scale / depth[ok].astype(np.float64)).astype(np.float32)
    ok &= np.isfinite(target)  # a tiny depth can overflow float32
    target[~ok] = 0
    return target, ok


def horizontal_fov_deg(focal_px: float, width: float) -> float:
    """Horizontal field of view (degrees) of an image ``width`` pixels wide with focal ``focal_px`` pixels."""
    return math.degrees(2 * math.atan(width / (2 * focal_px)))


def _positive(value: Any) -> float | None:
    """``value`` as a float when it is a finite positive number, else None."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) and number > 0 else None


def sample_focal_px(sample: dict[str, Any], *, use_exif: bool = False) -> float | None:
    """A sample's horizontal focal length (pixels): ``K[0, 0]`` if K is given, else ``focal_px``; with
    ``use_exif`` then ``exif_focal_px`` (an EXIF 35 mm-equivalent estimate, not ground truth: opt-in).
    None when none of them is a finite positive number."""
    K = sample.get("K")
    if K is not None and (focal := _positive(np.asarray(K)[0, 0])) is not None:
        return focal
    if (focal := _positive(sample.get("focal_px"))) is not None:
        return focal
    if use_exif:
        return _positive(sample.get("exif_focal_px"))
    return None


def _sample_K(sample: dict[str, Any], focal: float | None, height: int, width: int) -> np.ndarray | None:
    """(3, 3) float64 intrinsics of the sample: its K, or, with only a focal length, fx = fy = focal and
    the principal point at the image centre ((W − 1) / 2, (H − 1) / 2); None without a focal length."""
    if focal is None:
        return None
    K = sample.get("K")
    if K is not None and _positive(np.asarray(K)[0, 0]) is not None:  # the focal came from K
        return np.array(K, dtype=np.float64)
    return np.array([[focal, 0, (width - 1) / 2], [0, focal, (height - 1) / 2], [0, 0, 1]], dtype=np.float64)


# ----------------------------------------------------------------------------------------------------
# Augmentation


def check_augment_config(config: AugmentConfig) -> None:
    """Raise ValueError naming the field of ``config`` that cannot be used."""
    low, high = config.scale
    if not 0 < low <= high <= 1:
        raise ValueError(f"augment.scale {list(config.scale)} must satisfy 0 < low <= high <= 1")
    low, high = config.ratio
    if not 0 < low <= high:
        raise ValueError(f"augment.ratio {list(config.ratio)} must satisfy 0 < low <= high")
    low, high = config.blur_sigma
    if not 0 < low <= high:
        raise ValueError(f"augment.blur_sigma {list(config.blur_sigma)} must satisfy 0 < low <= high")
    for key in ("center_crop", "hflip", "color", "blur"):
        if not 0 <= getattr(config, key) <= 1:
            raise ValueError(f"augment.{key} = {getattr(config, key)} is a probability: it must be in [0, 1]")
    if not 0 <= config.color_strength <= 1:
        raise ValueError(f"augment.color_strength = {config.color_strength} must be in [0, 1]")


def crop_box(
    height: int, width: int, config: AugmentConfig, rng: np.random.Generator
) -> tuple[int, int, int, int]:
    """Draw a crop ``(x0, y0, w, h)`` (pixels; columns x0 … x0 + w − 1, rows y0 … y0 + h − 1).

    Area fraction uniform in ``config.scale``, aspect w / h log-uniform in ``config.ratio``; sides are
    rounded and clipped to the image (so a crop may cover less area or another aspect than drawn near
    the limits). With probability ``config.center_crop`` the crop is centred, else its position is
    uniform. The rng draws are, in order: centre?, area, aspect, then x0 and y0 (uniform crops only);
    :func:`augment` draws its crop first, so a copy of its rng reproduces the box.
    """
    centred = rng.random() < config.center_crop
    area = rng.uniform(config.scale[0], config.scale[1]) * height * width
    aspect = math.exp(rng.uniform(math.log(config.ratio[0]), math.log(config.ratio[1])))
    w = min(width, max(1, round(math.sqrt(area * aspect))))
    h = min(height, max(1, round(math.sqrt(area / aspect))))
    if centred:
        return (width - w) // 2, (height - h) // 2, w, h
    return int(rng.integers(0, width - w + 1)), int(rng.integers(0, height - h + 1)), w, h


def crop_intrinsics(
    K: np.ndarray, box: tuple[int, int, int, int], size: int, flip: bool = False
) -> np.ndarray:
    """(3, 3) intrinsics after cropping ``box`` = (x0, y0, w, h) and resizing it to ``size`` × ``size``.

    OpenCV convention (pixel centres at integers, the first at 0): a point at x in the image is at
    (x + 0.5 − x0) · S / w − 0.5 in the item, so fx' = fx · S / w, cx' = (cx + 0.5 − x0) · S / w − 0.5
    and likewise fy, cy with h (skew scales with x). A horizontal flip mirrors the scene:
    cx' → S − 1 − cx' and the skew changes sign, fx stays positive.
    """
    x0, y0, w, h = box
    sx, sy = size / w, size / h
    A = np.array(
        [[sx, 0, (0.5 - x0) * sx - 0.5], [0, sy, (0.5 - y0) * sy - 0.5], [0, 0, 1]], dtype=np.float64
    )
    out = A @ np.asarray(K, dtype=np.float64)
    if flip:
        out[0, 1] = -out[0, 1]
        out[0, 2] = size - 1 - out[0, 2]
    return out


def _nearest_indices(start: int, length: int, size: int) -> np.ndarray:
    """(size,) int64: the source pixel (in start … start + length − 1) whose area holds the centre of
    each of ``size`` output pixels spanning it; exact integer arithmetic."""
    return start + (2 * np.arange(size, dtype=np.int64) + 1) * length // (2 * size)


def _color_jitter(image: Image.Image, strength: float, rng: np.random.Generator) -> Image.Image:
    """Brightness, contrast and saturation factors uniform in [1 − s, 1 + s], then a hue rotation uniform
    in ±s · :data:`HUE_RANGE` of a turn (s = ``strength``), in that order."""
    for enhancer in (ImageEnhance.Brightness, ImageEnhance.Contrast, ImageEnhance.Color):
        image = enhancer(image).enhance(float(rng.uniform(1 - strength, 1 + strength)))
    shift = round(float(rng.uniform(-1, 1)) * strength * HUE_RANGE * 256)
    if shift:
        hue, saturation, value = image.convert("HSV").split()
        hue = Image.fromarray(((np.asarray(hue).astype(np.int16) + shift) % 256).astype(np.uint8))
        image = Image.merge("HSV", (hue, saturation, value)).convert("RGB")
    return image


def augment(
    sample: dict[str, Any],
    size: int,
    config: AugmentConfig,
    rng: np.random.Generator,
    *,
    metric: bool = True,
    use_exif: bool = False,
) -> dict[str, Any]:
    """One training item (see the module docstring) from one sample.

    Geometry: a :func:`crop_box` crop, resized to ``size`` × ``size`` — the image bilinearly with
    antialiasing (PIL), depth and valid by nearest neighbour (depths are never mixed across an edge) —
    then a horizontal flip with probability ``config.hflip``. K follows exactly (:func:`crop_intrinsics`),
    and the target is :func:`canonical_target` of the resized depth with f / w_c of the crop.
    Photometry (image only): colour jitter with probability ``config.color``, then Gaussian blur with
    probability ``config.blur``, sigma uniform in ``config.blur_sigma`` pixels of the S × S item.

    Args:
        sample: a :class:`~metricdepth.data.Sample`; ``depth`` may be absent (focal-only data: target
            zeros, valid all False).
        size: S, the side of the square item, pixels.
        rng: the only source of randomness; draws in order: crop, flip, colour, blur.
        metric: False for relative data: the target is 1 / depth (scale unknown) even when the focal
            length is known (``focal_over_width``, ``fov_deg`` and K are still reported).
        use_exif: let ``exif_focal_px`` serve as the focal length (:func:`sample_focal_px`).

    Raises:
        ValueError: an image that is not (H, W, 3) uint8, or depth / valid of another size.
    """
    image = np.asarray(sample["image"])
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"image must be an (H, W, 3) uint8 array, got {image.shape} {image.dtype}")
    height, width = image.shape[:2]
    depth, valid = sample.get("depth"), sample.get("valid")
    for key, value in (("depth", depth), ("valid", valid)):
        if value is not None and np.shape(value) != (height, width):
            raise ValueError(f"{key} is {np.shape(value)}, the image ({height}, {width})")
    focal = sample_focal_px(sample, use_exif=use_exif)
    K = _sample_K(sample, focal, height, width)

    box = crop_box(height, width, config, rng)
    flip = bool(rng.random() < config.hflip)
    x0, y0, w, h = box

    pil = Image.fromarray(image).resize((size, size), Image.BILINEAR, box=(x0, y0, x0 + w, y0 + h))
    if rng.random() < config.color:
        pil = _color_jitter(pil, config.color_strength, rng)
    if rng.random() < config.blur:
        pil = pil.filter(ImageFilter.GaussianBlur(float(rng.uniform(*config.blur_sigma))))
    pixels = np.array(pil)  # a writable copy

    focal_over_width = focal / w if focal is not None else math.nan
    if depth is None:
        target = np.zeros((size, size), dtype=np.float32)
        ok = np.zeros((size, size), dtype=bool)
    else:
        rows, cols = _nearest_indices(y0, h, size), _nearest_indices(x0, w, size)
        depth_s = np.asarray(depth)[rows[:, None], cols[None, :]]
        valid_s = None if valid is None else np.asarray(valid, dtype=bool)[rows[:, None], cols[None, :]]
        scale = focal_over_width if metric and focal is not None else None
        target, ok = canonical_target(depth_s, valid_s, scale)
    if flip:
        pixels, target, ok = pixels[:, ::-1], target[:, ::-1], ok[:, ::-1]

    K_item = crop_intrinsics(K, box, size, flip) if K is not None else np.full((3, 3), np.nan)
    return {
        "image": torch.from_numpy(np.ascontiguousarray(pixels)).permute(2, 0, 1).float() / 255.0 * 2.0 - 1.0,
        "target": torch.from_numpy(np.ascontiguousarray(target))[None],
        "valid": torch.from_numpy(np.ascontiguousarray(ok))[None],
        "K": torch.from_numpy(K_item.astype(np.float32)),
        "focal_over_width": float(focal_over_width),
        "fov_deg": horizontal_fov_deg(focal, w) if focal is not None else math.nan,
    }


# ----------------------------------------------------------------------------------------------------
# Datasets


def dataset_label(config: DatasetConfig) -> str:
    """``config.name``, else from the source: ``synthetic`` or ``NAME:FILE`` (``folder:my_scenes``)."""
    if config.name:
        return config.name
    if config.source == "synthetic":
        return "synthetic"
    name, _, rest = config.source.partition("=")
    path = rest.split(",")[0].rstrip("/\\")
    return f"{name}:{Path(path).name}" if path else config.source


def effective_trim(config: DatasetConfig) -> float:
    """``config.trim``, or the paper's default: 0.2 for real data (metric, relative), 0 for synthetic."""
    if config.trim is not None:
        return float(config.trim)
    return 0.0 if config.kind == "synthetic" else 0.2


def check_dataset_config(config: DatasetConfig) -> None:
    """Raise ValueError naming the dataset (its label and source) when kind, weight or trim is unusable."""
    where = f"dataset {dataset_label(config)!r} ({config.source})"
    if config.kind not in LABEL_KINDS:
        raise ValueError(f"{where}: kind {config.kind!r} is not one of {', '.join(LABEL_KINDS)}")
    if not (math.isfinite(config.weight) and config.weight > 0):
        raise ValueError(f"{where}: weight must be > 0, got {config.weight}")
    if config.trim is not None and not 0 <= config.trim < 1:
        raise ValueError(f"{where}: trim must be in [0, 1), got {config.trim}")


def open_source(config: DatasetConfig) -> Any:
    """The map-style dataset of ``config`` (checked first, :func:`check_dataset_config`).

    ``source == "synthetic"``: :class:`~metricdepth.data.synthetic.SyntheticScenes` from
    ``config.synthetic`` (random sizes in ``size_range``); otherwise the reader of the benchmark spec
    ``NAME=PATH[,KEY=VALUE...]`` (:func:`~metricdepth.evaluation.protocols.open_benchmark`).

    Raises:
        ValueError / FileNotFoundError / OSError: naming the dataset's spec.
    """
    check_dataset_config(config)
    spec = config.source
    try:
        if spec == "synthetic":
            from ..data.synthetic.dataset import SyntheticScenes

            synthetic = config.synthetic
            if len(synthetic.size_range) != 2:
                raise ValueError(f"synthetic.size_range {synthetic.size_range} must be [smallest, largest]")
            return SyntheticScenes(
                size_range=(int(synthetic.size_range[0]), int(synthetic.size_range[1])),
                families=list(synthetic.families),
                seed=synthetic.seed,
                length=synthetic.length,
            )
        from ..evaluation.protocols import open_benchmark

        refuse_test_split(spec, "training")
        return open_benchmark(spec).dataset
    except (ValueError, TypeError) as err:
        if spec in str(err):
            raise
        raise ValueError(f"training dataset {spec!r}: {err}") from err
    except FileNotFoundError as err:
        raise FileNotFoundError(f"training dataset {spec!r}: {err}") from err
    except OSError as err:
        raise OSError(f"training dataset {spec!r}: {err}") from err


def refuse_test_split(spec: str, use: str) -> None:
    """ValueError if the benchmark ``spec`` would read a test split (given, or the reader's default):
    training and validation data must never be the split results are reported on."""
    import inspect

    from ..evaluation.protocols import BENCHMARKS, parse_benchmark_arg

    name, _, options = parse_benchmark_arg(spec)
    benchmark = BENCHMARKS.get(name)
    if benchmark is None or "split" not in (benchmark.reader_options() or ()):
        return
    default = inspect.signature(benchmark.reader_class().__init__).parameters["split"].default
    split = options.get("split", benchmark.options.get("split", default))
    if isinstance(split, str) and split.lower() == "test":
        how = "as given" if "split" in options else "the reader's default"
        raise ValueError(
            f"dataset {spec!r}: {use} would read the {name} test split ({how}); "
            f"name another split, e.g. {spec},split=train"
        )


class MixtureDataset(torch.utils.data.Dataset):
    """The weighted training mixture: item ``position`` is a pure function of (``seed``, ``position``).

    For each position: ``rng = np.random.default_rng([seed, position])`` chooses a dataset with
    probability ∝ its weight, then a sample uniformly — with replacement: positions are independent
    draws, so a sample may repeat before another is seen (there are no epochs) — and :func:`augment`
    makes the item with the same rng. A sample that cannot be read or used (the reader raises, no valid
    depth in the sample or in its crop, no focal length for a metric or synthetic dataset) is replaced
    by a redraw with ``rng = default_rng([seed, position, attempt])``, attempt = 1, 2, …; after
    :data:`MAX_ATTEMPTS` draws a RuntimeError names the samples. Each skip is appended to
    :attr:`skipped` as (dataset label, sample name or index, reason) and warned about once per sample.
    With DataLoader workers, each worker process keeps its own :attr:`skipped` (warnings still show).

    ``len()`` is :data:`POSITIONS` (2**62): positions are unbounded and the sampler (:class:`StepSampler`)
    decides which are used; do not use torch's RandomSampler on it.

    Args:
        configs: the datasets of the mixture (checked; see :func:`check_dataset_config`).
        size: S, side of the square items, pixels.
        augment: the augmentation settings (checked).
        seed: the mixture's seed (independent of a synthetic source's own seed).
        datasets: the already-opened datasets, one per config (e.g. lists of sample dicts, for tests);
            default: :func:`open_source` of each config.
        fov: items for FOV training: a focal length is required and depth is not (photos with only a
            focal label, e.g. ``focal=PATH``, are usable).
    """

    def __init__(
        self,
        configs: Sequence[DatasetConfig],
        size: int,
        augment: AugmentConfig,
        seed: int = 0,
        *,
        datasets: Sequence[Any] | None = None,
        fov: bool = False,
    ) -> None:
        self.fov = fov
        if not configs:
            raise ValueError("the training mixture needs at least one dataset")
        if size < 1:
            raise ValueError(f"item size must be a positive number of pixels, got {size}")
        for config in configs:
            check_dataset_config(config)
        check_augment_config(augment)
        if datasets is not None and len(datasets) != len(configs):
            raise ValueError(f"{len(datasets)} datasets given for {len(configs)} dataset configs")
        self.configs = list(configs)
        self.size, self.augment, self.seed = int(size), augment, int(seed)
        self.datasets = list(datasets) if datasets is not None else [open_source(c) for c in self.configs]
        labels: list[str] = []
        for config in self.configs:
            label, n = dataset_label(config), 2
            while label in labels:
                label, n = f"{dataset_label(config)}_{n}", n + 1
            labels.append(label)
        self._names = labels
        for label, config, dataset in zip(labels, self.configs, self.datasets, strict=True):
            if len(dataset) == 0:
                raise ValueError(f"dataset {label!r} ({config.source}) has no samples")
        weights = np.array([c.weight for c in self.configs], dtype=np.float64)
        self._cumulative = np.cumsum(weights / weights.sum())
        self._cumulative[-1] = 1.0
        self.kinds = [LABEL_KINDS.index(c.kind) for c in self.configs]
        self.trims = [effective_trim(c) for c in self.configs]
        self.skipped: list[tuple[str, str | int, str]] = []
        self._warned: set[tuple[str, str | int]] = set()

    @property
    def names(self) -> list[str]:
        """Each dataset's label (``config.name`` or derived from its source, made unique), in config order."""
        return list(self._names)

    @property
    def probabilities(self) -> np.ndarray:
        """(n_datasets,) float64: the chance that a position draws each dataset (weights normalised)."""
        return np.diff(self._cumulative, prepend=0.0)

    def __len__(self) -> int:
        return POSITIONS

    def _draw(self, rng: np.random.Generator) -> tuple[int, int]:
        """(dataset index, sample index) for one draw."""
        source = min(
            int(np.searchsorted(self._cumulative, rng.random(), side="right")), len(self.datasets) - 1
        )
        return source, int(rng.integers(len(self.datasets[source])))

    def _sample_name(self, source: int, index: int) -> str | int:
        """The name of sample ``index`` without reading it, where the reader can tell (``name(i)`` or
        ``names[i]``); else the index."""
        dataset = self.datasets[source]
        try:
            if callable(getattr(dataset, "name", None)):
                return str(dataset.name(index))
            names = getattr(dataset, "names", None)
            if names is not None:
                return str(names[index])
        except Exception:  # a name is only for messages
            pass
        return index

    def _try(
        self, source: int, index: int, rng: np.random.Generator
    ) -> tuple[dict[str, Any] | None, str | int, str]:
        """(item or None, sample name or index, why it cannot be used) for one draw."""
        name = self._sample_name(source, index)
        try:
            sample = self.datasets[source][index]
            name = sample.get("name", name)
            kind = self.configs[source].kind
            use_exif = self.configs[source].use_exif
            if (self.fov or kind in ("metric", "synthetic")) and sample_focal_px(
                sample, use_exif=use_exif
            ) is None:
                return None, name, "no focal length (K or focal_px)"
            depth = sample.get("depth")
            if not self.fov and (
                depth is None or not canonical_target(depth, sample.get("valid"), None)[1].any()
            ):
                return None, name, "no valid depth"
            item = augment(sample, self.size, self.augment, rng, metric=kind != "relative", use_exif=use_exif)
        except Exception as err:  # unreadable or unusable: redrawn, and recorded
            return None, name, f"{type(err).__name__}: {err}"
        if not self.fov and not item["valid"].any():
            return None, name, "no valid depth in the crop"
        return item, name, ""

    def __getitem__(self, position: int) -> dict[str, Any]:
        position = int(position)
        if position < 0:
            raise IndexError(f"position {position} is negative")
        failures = []
        for attempt in range(MAX_ATTEMPTS):
            entropy = [self.seed, position] if attempt == 0 else [self.seed, position, attempt]
            rng = np.random.default_rng(entropy)
            source, index = self._draw(rng)
            item, name, reason = self._try(source, index, rng)
            if item is None:
                self._record(source, name, reason)
                failures.append(f"{self._names[source]}/{name} ({reason})")
                continue
            item.update(
                kind=self.kinds[source],
                source=source,
                trim=self.trims[source],
                position=position,
                redrawn=attempt,
            )
            return item
        raise RuntimeError(
            f"position {position}: no usable sample in {MAX_ATTEMPTS} draws: " + "; ".join(failures)
        )

    def _record(self, source: int, name: str | int, reason: str) -> None:
        label = self._names[source]
        self.skipped.append((label, name, reason))
        if (label, name) not in self._warned:
            self._warned.add((label, name))
            warnings.warn(f"training data: skipping {label}/{name}: {reason}", RuntimeWarning, stacklevel=3)


class StepSampler(torch.utils.data.Sampler[int]):
    """Positions of :class:`MixtureDataset` for one process (rank) of a run, step after step.

    At step s the k-th of this rank's ``batch_size`` items is position
    ``(s · batch_size + k) · world_size + rank`` — DistributedSampler's interleaving — for s from
    ``start_step`` up to ``steps`` (exclusive; None: forever). Hence the union over ranks of one
    step's items is exactly the positions a 1-process run with batch ``batch_size · world_size`` uses at
    that step, and a run resumed with ``start_step = k`` continues exactly where it stopped. Use with
    ``DataLoader(batch_size=batch_size)``.
    """

    def __init__(
        self,
        batch_size: int,
        rank: int = 0,
        world_size: int = 1,
        start_step: int = 0,
        steps: int | None = None,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if world_size < 1 or not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} must be in [0, world_size = {world_size})")
        if start_step < 0 or (steps is not None and steps < start_step):
            raise ValueError(f"start_step {start_step} must be in [0, steps = {steps}]")
        self.batch_size, self.rank, self.world_size = batch_size, rank, world_size
        self.start_step, self.steps = start_step, steps

    def __iter__(self) -> Iterator[int]:
        step = self.start_step
        while self.steps is None or step < self.steps:
            base = step * self.batch_size
            for k in range(self.batch_size):
                yield (base + k) * self.world_size + self.rank
            step += 1

    def __len__(self) -> int:
        if self.steps is None:
            raise TypeError("an endless StepSampler (steps=None) has no length")
        return (self.steps - self.start_step) * self.batch_size
