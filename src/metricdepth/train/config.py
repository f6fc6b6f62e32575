"""The typed schema of a training run, read from YAML with OmegaConf.

A run's config is one :class:`TrainConfig`. Files may set any subset of its fields; unknown keys and
values of the wrong type are rejected with a message naming the key. Shipped configs
(``metricdepth train --list-configs``) live in ``metricdepth/train/configs/NAME.yaml``: copy one to
start your own. Command-line ``key=value`` overrides use OmegaConf's dotted syntax and value grammar
(``optim.lr_decoder=1e-4``, ``data.datasets.0.weight=2``, ``loss.synthetic={mae: 1, mage: 0.5}``
replaces a dict, ``data.datasets=[{source: folder=a, kind: metric}, {source: synthetic}]`` a list).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from omegaconf import MISSING

__all__ = [
    "LABEL_KINDS",
    "LOSS_TERMS",
    "AugmentConfig",
    "ConfigError",
    "DataConfig",
    "DatasetConfig",
    "ModelConfig",
    "OptimConfig",
    "RSAConfig",
    "RunConfig",
    "SyntheticSourceConfig",
    "TrainConfig",
    "ValidationConfig",
    "list_configs",
    "load_config",
]

LABEL_KINDS = ("metric", "relative", "synthetic")
"""What a dataset's depth means: ``metric`` real metric depth (noisy, trimmed MAE), ``relative``
affine-invariant (SSI losses), ``synthetic`` pixel-accurate metric depth (MAE and derivative losses)."""

LOSS_TERMS = ("mae", "mse", "mage", "male", "msge", "ssi_mae", "ssi_mse", "ssi_mage", "ssi_male", "ssi_msge")
"""Loss terms a label kind may weight (Depth Pro, Eq. 1-2): MAE / MSE on canonical inverse depth,
MAGE = Scharr p=1, MALE = Laplace p=1, MSGE = Scharr p=2 over ``gradient_scales`` scales; the
``ssi_`` variants act on median/MAD-normalised maps."""


class ConfigError(ValueError):
    """A config that cannot be used: unknown key, wrong type, bad value. The message names the key."""


@dataclass
class SyntheticSourceConfig:
    """The procedural scene generator, streamed (``source: synthetic``): every sample is rendered on
    the fly from (seed, index), so a run never sees the same scene twice unless ``length`` is small."""

    size_range: list[int] = field(default_factory=lambda: [256, 640])
    families: list[str] = field(default_factory=lambda: ["tabletop", "room", "street"])
    seed: int = 0
    length: int = 1_000_000


@dataclass
class DatasetConfig:
    """One dataset of the training mixture.

    ``source`` is ``synthetic`` (the generator, see :class:`SyntheticSourceConfig`) or a benchmark
    spec as ``metricdepth evaluate -d`` takes it: ``NAME=PATH[,KEY=VALUE...]``, e.g.
    ``folder=data/my_scenes`` (your own images with depth beside them, or a ``metricdepth synth``
    folder) or ``nyu=nyu_depth_v2_labeled.mat,split=train``.
    """

    source: str = MISSING
    kind: str = "synthetic"
    weight: float = 1.0
    trim: float | None = None  # None: 0.2 for real data (metric, relative), 0 for synthetic (the paper)
    name: str | None = None  # label in logs; default: derived from the source
    losses: dict[str, float] = field(default_factory=dict)  # this dataset's terms; empty: loss.<kind>
    # Take an image's EXIF 35 mm focal length as its focal label where K is unknown (photo
    # collections for the FOV head); off by default: EXIF is metadata, not ground truth.
    use_exif: bool = False
    # RSA: a folder of NAME.txt caption files (one caption per line, the reference's 15-line layout)
    # for samples named NAME; they replace the captions the reader gives (synthetic scenes carry their own).
    captions_dir: str | None = None
    # RSA: this dataset's ground-truth range in metres (default rsa.min_depth / rsa.max_depth), as the
    # reference masks NYU at 10 m, KITTI at 80 m and VOID at 5 m.
    min_depth: float | None = None
    max_depth: float | None = None
    synthetic: SyntheticSourceConfig = field(default_factory=SyntheticSourceConfig)


@dataclass
class AugmentConfig:
    """Augmentations that keep geometry honest (Depth Pro, Tab 16 where stated).

    A random crop of ``scale`` of the image area with aspect ratio (w/h) in ``ratio`` is resized to the
    network's square input (K follows: the canonical target f/W is that of the crop); with probability
    ``center_crop`` the crop is centred instead (FOV augmentation: the paper's p = 0.5). Horizontal
    flips with ``hflip`` (cx mirrored); colour jitter with ``color`` (brightness, contrast,
    saturation, hue of strength ``color_strength``); Gaussian blur with ``blur``.
    """

    scale: list[float] = field(default_factory=lambda: [0.35, 1.0])
    ratio: list[float] = field(default_factory=lambda: [0.75, 1.3333333])
    center_crop: float = 0.5
    hflip: float = 0.5
    color: float = 0.75
    color_strength: float = 0.3
    blur: float = 0.3
    blur_sigma: list[float] = field(default_factory=lambda: [0.1, 1.5])


@dataclass
class DataConfig:
    datasets: list[DatasetConfig] = field(default_factory=list)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    num_workers: int = 2


@dataclass
class ModelConfig:
    """The network and where its weights start.

    ``init`` initialises the ViT encoders: ``random``, ``dinov2`` (timm's DINOv2 weights from the
    Hugging Face Hub, patch 14 resampled to 16) or a local DINOv2 weights file. ``weights`` starts
    from a whole Depth Pro checkpoint instead (``apple/DepthPro``, a Hub id, a file or a run folder
    such as ``RUN/last``): fine-tuning, or stage 2 after stage 1 (``--init`` on the command line).
    """

    preset: str = "tiny"
    init: str = "random"
    weights: str | None = None
    fov_head: bool = True
    grad_checkpointing: bool = False
    freeze_layernorm: bool = True  # the paper freezes the pretrained LayerNorms
    require_weights: bool = False  # a later stage: refuse to start without model.weights / --init


@dataclass
class LossConfig:
    """Loss terms and their weights, per label kind (see :data:`LOSS_TERMS`).

    The paper gives the terms of each stage, not their weights: every weight here is a choice.
    ``fov`` weights the FOV head's L2 loss on the horizontal field of view (degrees²) in ``task:
    fov`` runs.
    """

    metric: dict[str, float] = field(default_factory=dict)
    relative: dict[str, float] = field(default_factory=dict)
    synthetic: dict[str, float] = field(default_factory=dict)
    gradient_scales: int = 6
    fov: float = 1.0


@dataclass
class RSAConfig:
    """RSA runs (``run.task: rsa``, ``metricdepth train-rsa``): an :class:`~metricdepth.rsa.RSAHead`
    learns one scale and shift per image from a caption, on top of a frozen relative depth model.

    ``relative``: the frozen relative model (anything ``--relative`` takes: a Depth Pro / relative
    checkpoint, ``hf:ID``), or ``ground-truth``: each image's own depth turned into min-max normalised
    inverse depth (scale and shift lost per image, as relative models lose them; for studies).
    ``text_encoder``: ``TextEncoder.create`` name (``minilm`` works offline, ``clip-rn50`` is the
    paper's). ``conditioning: image`` trains the Image baseline instead: a small CNN (timm
    ``image_encoder``, random init, ``image_size``² input) replaces the caption.
    ``captions``: which captions of a sample are drawn from, one at random per image per step (all,
    structured, free, none = the empty caption). ``loss``: ``l1`` (the paper) or ``huber`` (the
    official code, ``huber_delta`` metres), per image the mean over pixels with ground truth in
    (``min_depth``, ``max_depth``); ``normalize_datasets``: each dataset's loss is divided by its own
    detached value (the reference's L / |L|), so datasets of very different depth ranges pull equally.
    Relative depth and ground truth are resized to ``size``² (nearest for ground truth) once and
    cached with the caption embeddings in ``cache_dir`` (default ``RUN/cache``): later epochs and
    runs cost only the head.
    """

    relative: str = ""
    text_encoder: str = "minilm"
    layout: str = "large"
    conditioning: str = "text"
    image_encoder: str = "resnet10t"
    image_size: int = 128
    captions: str = "all"
    loss: str = "l1"
    huber_delta: float = 1.0
    normalize_datasets: bool = True
    min_depth: float = 1e-3
    max_depth: float = 80.0
    size: int = 128
    cache_dir: str | None = None
    eval_caption_index: int = 0  # validation: the sample's caption at this index (the reference uses line 0)


@dataclass
class OptimConfig:
    """Adam with per-module learning rates and the paper's step schedule (Tab 16).

    ``lr_encoder`` drives the ViTs (patch, image, FOV encoders), ``lr_decoder`` everything else
    (RSA: the head). ``schedule: step``: linear warm-up over the first ``warmup`` fraction of the
    steps, constant until ``warmup + constant``, then ``decay_factor`` × the rate to the end.
    ``schedule: poly`` (RSA): the same warm-up, then from the rate down to ``decay_factor`` × the
    rate as (1 − step / steps)^``power`` (RSA uses no warm-up: ``warmup: 0``).
    """

    name: str = "adam"  # adam | adamw
    lr_encoder: float = 1.28e-5
    lr_decoder: float = 1.28e-4
    weight_decay: float = 0.0
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    clip_grad_norm: float = 0.2  # 0 disables clipping
    warmup: float = 0.01
    constant: float = 0.80
    decay_factor: float = 0.1
    schedule: str = "step"  # step | poly
    power: float = 0.9


@dataclass
class RunConfig:
    """How the run goes. ``task``: ``depth`` trains the depth network (the FOV head is not run),
    ``fov`` trains only the FOV head on a frozen depth network, ``rsa`` an RSA head (see
    :class:`RSAConfig`). ``batch_size`` is the global batch,
    split evenly over the processes of a ``torchrun`` job."""

    task: str = "depth"
    steps: int = 1000
    batch_size: int = 4
    precision: str = "fp32"  # fp32 | bf16 | fp16 (autocast; fp16 with a gradient scaler)
    ema: float = 0.0  # EMA decay of the weights (0: off), e.g. 0.999
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda
    checkpoint_every: int = 500
    log_every: int = 10


@dataclass
class ValidationConfig:
    """Validation with the evaluation toolkit on held-out data, never a test split.

    Depth runs score δ1, AbsRel, ... and boundary F1 where the ground truth is dense (synthetic
    scenes); depth is made metric with each sample's ground-truth focal length, so the depth
    network is judged apart from the FOV head. FOV runs score δ25 / δ50 of the focal length.
    The checkpoint with the best ``metric`` is kept as ``RUN/best``.
    """

    datasets: list[DatasetConfig] = field(default_factory=list)
    every: int = 500
    metric: str = "d1"  # d1, abs_rel, boundary_f1, ... (fov runs: focal_delta25, focal_delta50)
    max_samples: int = 64
    alignment: str = "none"  # relative models: lstsq-disparity (scale and shift in inverse depth), median


@dataclass
class TrainConfig:
    description: str = ""
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    run: RunConfig = field(default_factory=RunConfig)
    val: ValidationConfig = field(default_factory=ValidationConfig)
    rsa: RSAConfig = field(default_factory=RSAConfig)


# ----------------------------------------------------------------------------- loading
CONFIG_PACKAGE = "metricdepth.train.configs"


def list_configs() -> dict[str, str]:
    """Shipped configs: name → first line of its description."""
    import yaml

    found = {}
    for entry in sorted(resources.files(CONFIG_PACKAGE).iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".yaml"):
            data = yaml.safe_load(entry.read_text()) or {}
            found[entry.name[: -len(".yaml")]] = str(data.get("description", "")).strip().split("\n")[0]
    return found


def _config_text(name_or_path: str | os.PathLike) -> tuple[str, str]:
    """(YAML text, where it came from) for a file path or a shipped config name."""
    path = Path(name_or_path)
    if path.is_file():
        return path.read_text(), str(path)
    shipped = resources.files(CONFIG_PACKAGE) / f"{name_or_path}.yaml"
    if shipped.is_file():
        return shipped.read_text(), f"shipped config {name_or_path!r}"
    if path.suffix in (".yaml", ".yml") or os.sep in str(name_or_path):
        raise ConfigError(f"{name_or_path}: config file not found")
    raise ConfigError(
        f"{name_or_path!r} is neither a config file nor a shipped config "
        f"(shipped: {', '.join(list_configs())})"
    )


def load_config(name_or_path: str | os.PathLike, overrides: list[str] | tuple[str, ...] = ()) -> TrainConfig:
    """Read a config (file path or shipped name), apply ``key=value`` overrides, check it.

    Raises:
        ConfigError: unreadable YAML, unknown keys, wrong types or bad values, naming the key.
    """
    from omegaconf import ListConfig, OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    text, origin = _config_text(name_or_path)
    try:
        schema = OmegaConf.structured(TrainConfig)
        loaded = OmegaConf.create(text)
        merged = OmegaConf.merge(schema, loaded)
        for item in overrides:
            key, sep, text = item.partition("=")
            if not sep or not key:
                raise ConfigError(f"override {item!r}: expected KEY=VALUE (e.g. optim.lr_decoder=1e-4)")
            value = OmegaConf.from_dotlist([f"value={text}"])["value"]  # OmegaConf's value grammar
            try:
                indexed = any(part.isdigit() for part in key.split("."))
                if (
                    isinstance(value, ListConfig) and not indexed
                ):  # e.g. a list of datasets, checked one by one
                    merged = OmegaConf.merge(merged, OmegaConf.from_dotlist([item]))
                else:
                    OmegaConf.update(merged, key, value, merge=False)
            except OmegaConfBaseException as err:
                raise ConfigError(f"override {item!r}: {_omegaconf_message(err)}") from None
            except (IndexError, KeyError, ValueError, AttributeError):
                raise ConfigError(f"override {item!r}: {key} is not a config key") from None
        config: TrainConfig = OmegaConf.to_object(merged)  # type: ignore[assignment]
    except ConfigError:
        raise
    except OmegaConfBaseException as err:
        raise ConfigError(f"{origin}: {_omegaconf_message(err)}") from None
    except Exception as err:  # YAML syntax errors
        raise ConfigError(f"{origin}: {err}") from None
    check_config(config, origin)
    return config


def _omegaconf_message(err: Exception) -> str:
    import re

    from omegaconf.errors import MissingMandatoryValue

    key = getattr(err, "full_key", None)
    key = re.sub(r"\[(\d+)\]", r".\1", key) if key else key  # the dotted form overrides use
    message = str(err).split("\n")[0]
    if isinstance(err, MissingMandatoryValue):
        message = f"must be set (the config leaves it to you): add {key}=VALUE to the command line"
    return f"{key}: {message}" if key else message


def config_to_yaml(config: TrainConfig) -> str:
    """The effective config as YAML (what a run saves as ``RUN/config.yaml``)."""
    from omegaconf import OmegaConf

    return OmegaConf.to_yaml(OmegaConf.structured(config))


def config_to_dict(config: TrainConfig) -> dict[str, Any]:
    from omegaconf import OmegaConf

    return OmegaConf.to_container(OmegaConf.structured(config))  # type: ignore[return-value]


def _check(condition: bool, origin: str, key: str, message: str) -> None:
    if not condition:
        raise ConfigError(f"{origin}: {key}: {message}")


def check_config(config: TrainConfig, origin: str = "config") -> None:
    """Values OmegaConf's types cannot check; raises :class:`ConfigError` naming the key."""
    from ..models.depth_pro.config import PRESETS

    run, optim, loss = config.run, config.optim, config.loss
    _check(config.model.preset in PRESETS, origin, "model.preset", f"choose one of {', '.join(PRESETS)}")
    _check(run.task in ("depth", "fov", "rsa"), origin, "run.task", "choose depth, fov or rsa")
    _check(run.steps > 0, origin, "run.steps", "must be positive")
    _check(run.batch_size > 0, origin, "run.batch_size", "must be positive")
    _check(run.precision in ("fp32", "bf16", "fp16"), origin, "run.precision", "choose fp32, bf16 or fp16")
    _check(0.0 <= run.ema < 1.0, origin, "run.ema", "must be in [0, 1) (0: off)")
    _check(
        run.device in ("auto", "cpu", "cuda") or run.device.startswith("cuda:"),
        origin,
        "run.device",
        "choose auto, cpu or cuda",
    )
    _check(run.checkpoint_every > 0 and run.log_every > 0, origin, "run", "checkpoint_every, log_every > 0")
    _check(optim.name in ("adam", "adamw"), origin, "optim.name", "choose adam or adamw")
    _check(optim.schedule in ("step", "poly"), origin, "optim.schedule", "choose step or poly")
    _check(optim.power > 0, origin, "optim.power", "must be positive")
    _check(optim.lr_encoder >= 0 and optim.lr_decoder > 0, origin, "optim", "learning rates must be >= 0")
    _check(len(optim.betas) == 2, origin, "optim.betas", "two numbers")
    _check(optim.clip_grad_norm >= 0, origin, "optim.clip_grad_norm", "must be >= 0 (0: off)")
    _check(
        min(optim.warmup, optim.constant) >= 0 and optim.warmup + optim.constant <= 1,
        origin,
        "optim.warmup/constant",
        "fractions of the run that add up to at most 1",
    )
    _check(loss.gradient_scales >= 1, origin, "loss.gradient_scales", "must be >= 1")
    for kind in LABEL_KINDS:
        for term, weight in getattr(loss, kind).items():
            _check(
                term in LOSS_TERMS,
                origin,
                f"loss.{kind}.{term}",
                f"unknown term; choose from {', '.join(LOSS_TERMS)}",
            )
            _check(weight >= 0, origin, f"loss.{kind}.{term}", "weights must be >= 0")
    _check(bool(config.data.datasets), origin, "data.datasets", "at least one dataset")
    for index, dataset in enumerate(config.data.datasets):
        key = f"data.datasets.{index}"
        _check(dataset.kind in LABEL_KINDS, origin, f"{key}.kind", f"choose {', '.join(LABEL_KINDS)}")
        _check(dataset.weight > 0, origin, f"{key}.weight", "must be positive")
        _check(dataset.trim is None or 0 <= dataset.trim < 1, origin, f"{key}.trim", "must be in [0, 1)")
        for term, weight in dataset.losses.items():
            _check(
                term in LOSS_TERMS, origin, f"{key}.losses.{term}", f"unknown; choose {', '.join(LOSS_TERMS)}"
            )
            _check(weight >= 0, origin, f"{key}.losses.{term}", "weights must be >= 0")
        if run.task == "depth":
            _check(
                bool(dataset.losses or getattr(loss, dataset.kind)),
                origin,
                f"loss.{dataset.kind}",
                f"no loss terms for the {dataset.kind} data of {key}",
            )
    from ..alignment import ALIGNMENTS

    _check(config.val.alignment in ALIGNMENTS, origin, "val.alignment", f"choose {', '.join(ALIGNMENTS)}")
    from ..metrics.depth import METRIC_NAMES

    measured = (*METRIC_NAMES, "boundary_f1", "boundary_recall", "focal_delta25", "focal_delta50")
    _check(config.val.metric in measured, origin, "val.metric", f"choose one of {', '.join(measured)}")
    focal_metric = config.val.metric.startswith("focal_")
    _check(
        focal_metric == (run.task == "fov"),
        origin,
        "val.metric",
        "fov runs are validated on focal_delta25 / focal_delta50, depth runs on depth metrics",
    )
    _check(config.val.every > 0 and config.val.max_samples > 0, origin, "val", "every, max_samples > 0")
    if run.task == "fov":
        _check(config.model.fov_head, origin, "model.fov_head", "a fov run needs the FOV head")
    if run.task == "rsa":
        _check_rsa(config, origin)


def _check_rsa(config: TrainConfig, origin: str) -> None:
    from ..rsa.captions import CAPTION_KINDS
    from ..rsa.head import LAYOUTS

    rsa = config.rsa

    _check(
        bool(rsa.relative), origin, "rsa.relative", "name the frozen relative depth model (or ground-truth)"
    )
    _check(rsa.layout in LAYOUTS, origin, "rsa.layout", f"choose {', '.join(LAYOUTS)}")
    _check(rsa.conditioning in ("text", "image"), origin, "rsa.conditioning", "choose text or image")
    _check(rsa.captions in CAPTION_KINDS, origin, "rsa.captions", f"choose {', '.join(CAPTION_KINDS)}")
    _check(rsa.loss in ("l1", "huber"), origin, "rsa.loss", "choose l1 or huber")
    _check(rsa.huber_delta > 0, origin, "rsa.huber_delta", "must be positive (metres)")
    _check(0 <= rsa.min_depth < rsa.max_depth, origin, "rsa.min_depth/max_depth", "need 0 <= min < max")
    _check(rsa.size >= 8 and rsa.image_size >= 16, origin, "rsa.size/image_size", "too small")
    for index, dataset in enumerate([*config.data.datasets, *config.val.datasets]):
        key = f"data.datasets.{index}" if index < len(config.data.datasets) else "val.datasets"
        _check(
            dataset.kind != "relative",
            origin,
            f"{key}.kind",
            "RSA learns metric depth: a relative (affine-invariant) dataset cannot supervise it",
        )
        if index >= len(config.data.datasets):
            _check(
                dataset.min_depth is None and dataset.max_depth is None,
                origin,
                "val.datasets.min_depth/max_depth",
                "validation is scored in its protocol's range (synthetic: all valid pixels); set the "
                "range on data.datasets",
            )
        low = rsa.min_depth if dataset.min_depth is None else dataset.min_depth
        high = rsa.max_depth if dataset.max_depth is None else dataset.max_depth
        _check(0 <= low < high, origin, f"{key}.min_depth/max_depth", "need 0 <= min < max (metres)")
