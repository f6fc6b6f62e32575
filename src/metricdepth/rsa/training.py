"""Training RSA with the project's one trainer: a :class:`~metricdepth.train.tasks.Task` and its data.

``metricdepth train-rsa CONFIG`` runs :class:`~metricdepth.train.trainer.Trainer` with
:class:`RSATask`: the trainer owns the loop (devices, DDP, clipping, schedule, checkpoints, exact
resume, logging, validation); this module supplies

* :func:`precompute`: each training sample's inverse relative depth y (the frozen model, run once),
  ground-truth depth and validity, resized to ``rsa.size``² and cached on disk
  (:class:`RSATable`), with the sample's captions;
* :class:`RSAMixture`: the trainer's :class:`~metricdepth.train.data.MixtureDataset` over those
  tables (the same weighted, position-seeded draws, so resumes and multi-process runs are exact),
  drawing one caption per image per step; caption embeddings come from one table computed once by
  the frozen text encoder;
* :class:`RSAObjective`: masked L1 (the paper) or Huber (the official code) on metric depth
  1 / (α·y + β), per image over pixels with ground truth in range, each dataset's loss optionally
  normalised by its own detached value;
* :class:`RSATask`: the head (or the Image baseline), its parameter group, saving, and validation
  through :class:`~metricdepth.rsa.pipeline.RSAPredictor` on held-out data.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..train.config import ConfigError, DatasetConfig, OptimConfig, RSAConfig, TrainConfig
from ..train.data import MixtureDataset, dataset_label, open_source
from ..train.tasks import Task
from .pipeline import ORACLE_RELATIVE, oracle_inverse_depth

__all__ = [
    "ORACLE_RELATIVE",
    "RSAMixture",
    "RSAObjective",
    "RSATable",
    "RSATask",
    "oracle_inverse_depth",
    "precompute",
]

MAX_PRECOMPUTED = 200_000
CACHE_VERSION = 2


# ------------------------------------------------------------------------------ precomputation
@dataclass
class RSATable:
    """One dataset, precomputed: every usable sample at ``size``² pixels.

    Attributes:
        name: the dataset's label.
        names: sample names, (N,).
        y: (N, S, S) float32 inverse relative depth (bilinear from the image's size).
        depth: (N, S, S) float32 ground truth, metres (nearest), 0 where invalid.
        valid: (N, S, S) bool.
        captions: each sample's captions (all kinds; a run draws from the kind it trains on).
        images: (N, 3, I, I) uint8 images for the Image baseline, else None.
        skipped: (sample, reason) of samples left out.
    """

    name: str
    names: list[str]
    y: Tensor
    depth: Tensor
    valid: Tensor
    captions: list[list[str]]
    images: Tensor | None = None
    skipped: list[tuple[str, str]] | None = None

    def __len__(self) -> int:
        return len(self.names)

    def name_of(self, index: int) -> str:
        return self.names[index]


def _stamp(spec: str | None) -> Any:
    """What identifies the contents of a local file or folder (names, sizes, modification times), so a
    cache is not reused after the files change; None for things that are not local paths."""
    if not spec:
        return None
    path = Path(spec)
    if not path.exists():
        return None
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    digest = hashlib.sha256()
    for file in files:
        info = file.stat()
        digest.update(f"{file}|{info.st_size}|{info.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def _relative_path(spec: str) -> str:
    """The local path inside a relative-model spec (``hf:PATH``, ``depth-pro:PATH``, or a path)."""
    for prefix in ("hf:", "depth-pro:"):
        spec = spec.removeprefix(prefix)
    return spec


def _source_path(spec: str) -> str:
    """The main path of a dataset spec ``NAME=PATH[,KEY=VALUE...]``."""
    return spec.split("=", 1)[-1].split(",")[0]


def _cache_key(config: DatasetConfig, rsa: RSAConfig) -> str:
    key = {
        "version": CACHE_VERSION,
        "source": config.source,
        "source_files": _stamp(_source_path(config.source)) if config.source != "synthetic" else None,
        "synthetic": asdict(config.synthetic) if config.source == "synthetic" else None,
        "captions_dir": config.captions_dir,
        "captions_files": _stamp(config.captions_dir),
        "relative": rsa.relative,
        "relative_files": _stamp(_relative_path(rsa.relative)),
        "depth_range": depth_range(config, rsa),
        "size": rsa.size,
        "image_size": rsa.image_size if rsa.conditioning == "image" else None,
    }
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:20]


def depth_range(config: DatasetConfig, rsa: RSAConfig) -> tuple[float, float]:
    """The dataset's supervised ground-truth range, metres (its own, else ``rsa.min_depth/max_depth``)."""
    low = rsa.min_depth if config.min_depth is None else config.min_depth
    high = rsa.max_depth if config.max_depth is None else config.max_depth
    return float(low), float(high)


def _resize(map_: Tensor, size: int, mode: str) -> Tensor:
    if map_.shape[-2:] == (size, size):
        return map_
    options = (
        {"mode": mode} if mode == "nearest" else {"mode": mode, "align_corners": False, "antialias": True}
    )
    return F.interpolate(map_[None, None].float(), size=(size, size), **options)[0, 0]


def precompute(
    config: DatasetConfig,
    rsa: RSAConfig,
    relative: Any,
    *,
    dataset: Any = None,
    cache_dir: str | os.PathLike | None = None,
    on_sample: Callable[[], None] | None = None,
) -> RSATable:
    """Precompute one dataset for RSA training (read from ``cache_dir`` when it was done before).

    ``relative``: a :class:`~metricdepth.models.relative.RelativeDepthModel`, or
    :data:`ORACLE_RELATIVE`. ``dataset``: an opened dataset (default: ``open_source(config)``).
    Samples without valid ground truth in the dataset's depth range, or whose caption file is missing
    (``captions_dir``), are left out and listed in ``skipped``.
    """
    from ..io.atomic import atomic_path

    label = dataset_label(config)
    cache = None
    if cache_dir is not None:
        cache = Path(cache_dir) / f"{_safe(label)}-{_cache_key(config, rsa)}.pt"
        if cache.is_file():
            try:
                return RSATable(**torch.load(cache, map_location="cpu", weights_only=True))
            except Exception as err:  # a damaged cache is recomputed
                warnings.warn(
                    f"{cache}: unreadable RSA cache, recomputing ({err})", RuntimeWarning, stacklevel=2
                )
    dataset = dataset if dataset is not None else open_source(config)
    if len(dataset) > MAX_PRECOMPUTED:
        raise ConfigError(
            f"dataset {label!r}: {len(dataset)} samples; RSA precomputes every sample, so give a finite "
            f"dataset (at most {MAX_PRECOMPUTED}; for synthetic scenes set synthetic.length)"
        )
    size, image_size = rsa.size, rsa.image_size if rsa.conditioning == "image" else None
    names, ys, depths, valids, captions, images, skipped = [], [], [], [], [], [], []
    for index in range(len(dataset)):
        name = str(index)
        try:
            sample = dataset[index]
            name = str(sample.get("name", index))
            if sample.get("depth") is None:
                raise ValueError("no depth")
            depth = torch.as_tensor(np.asarray(sample["depth"], dtype=np.float32))
            valid = torch.isfinite(depth) & (depth > 0)
            if sample.get("valid") is not None:
                valid &= torch.as_tensor(np.asarray(sample["valid"], dtype=bool))
            if not valid.any():
                raise ValueError("no valid depth")
            low, high = depth_range(config, rsa)
            if not (valid & (depth > low) & (depth < high)).any():
                raise ValueError(f"no ground truth between {low:g} and {high:g} m")
            if config.captions_dir:
                from .captions import read_caption_file

                chosen = read_caption_file(Path(config.captions_dir) / f"{name}.txt")
            else:  # samples without captions are kept: the caption-free ablation can use them
                chosen = [str(c) for c in sample.get("captions") or []]
            rgb = torch.from_numpy(np.ascontiguousarray(sample["image"])).permute(2, 0, 1)
            if relative == ORACLE_RELATIVE:
                y = oracle_inverse_depth(depth, valid)
            else:
                y = relative.inverse_depth(rgb).float().cpu()
            if y.shape != depth.shape:
                raise ValueError(f"relative depth {tuple(y.shape)} and depth {tuple(depth.shape)} differ")
        except Exception as err:  # unreadable or unusable samples are left out, and listed
            skipped.append((name, f"{type(err).__name__}: {err}"))
            continue
        finally:
            if on_sample is not None:
                on_sample()
        names.append(name)
        ys.append(_resize(y, size, "bilinear"))
        valid_small = _resize(valid.float(), size, "nearest") > 0.5
        depth_small = _resize(torch.where(valid, depth, torch.zeros_like(depth)), size, "nearest")
        depths.append(torch.where(valid_small, depth_small, torch.zeros_like(depth_small)))
        valids.append(valid_small & (depth_small > 0))
        captions.append(chosen)
        if image_size is not None:
            x = F.interpolate(
                rgb[None].float(),
                size=(image_size,) * 2,
                mode="bilinear",
                align_corners=False,
                antialias=True,
            )
            images.append(x[0].clamp(0, 255).round().to(torch.uint8))
    if not names:
        reasons = "; ".join(f"{n}: {r}" for n, r in skipped[:3])
        raise ValueError(f"dataset {label!r}: no usable sample for RSA ({reasons})")
    table = RSATable(
        name=label,
        names=names,
        y=torch.stack(ys),
        depth=torch.stack(depths),
        valid=torch.stack(valids),
        captions=captions,
        images=torch.stack(images) if images else None,
        skipped=skipped,
    )
    if cache is not None:
        with atomic_path(cache) as tmp:
            torch.save(asdict(table), tmp)
    return table


def _safe(label: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in label)[:60]


# ------------------------------------------------------------------------------ the mixture
class RSAMixture(MixtureDataset):
    """The weighted mixture of precomputed tables; item ``position`` draws a dataset (∝ weight), a
    sample, and one of its captions from ``default_rng([seed, position])``.

    Items: ``y``, ``depth``, ``valid`` (S, S), ``condition`` (the drawn caption's embedding (D,), or the
    (3, I, I) uint8 image for the Image baseline), plus the mixture's ``source``, ``position``, ...
    """

    def __init__(
        self,
        configs: Sequence[DatasetConfig],
        tables: Sequence[RSATable],
        *,
        embeddings: Tensor | None,
        caption_ids: Sequence[Sequence[Sequence[int]]] | None,
        seed: int = 0,
        rsa: RSAConfig | None = None,
    ) -> None:
        from ..train.config import AugmentConfig

        super().__init__(configs, int(tables[0].y.shape[-1]), AugmentConfig(), seed, datasets=tables)
        self.embeddings, self.caption_ids = embeddings, caption_ids
        self.ranges = [depth_range(c, rsa) for c in configs] if rsa is not None else None

    def _sample_name(self, source: int, index: int) -> str | int:
        return self.datasets[source].name_of(index)

    def _try(
        self, source: int, index: int, rng: np.random.Generator
    ) -> tuple[dict[str, Any] | None, str, str]:
        table: RSATable = self.datasets[source]
        if self.embeddings is not None and self.caption_ids is not None:
            ids = self.caption_ids[source][index]
            if not ids:
                return None, table.names[index], "no caption of the kind this run trains on"
            condition = self.embeddings[ids[int(rng.integers(len(ids)))]]
        else:
            condition = table.images[index]  # type: ignore[index]
        item = {"y": table.y[index], "depth": table.depth[index], "valid": table.valid[index]}
        item["condition"] = condition
        if self.ranges is not None:  # the dataset's own range; without it the objective uses rsa's
            item["min_depth"], item["max_depth"] = self.ranges[source]
        return item, table.names[index], ""


# ------------------------------------------------------------------------------ the objective
class RSAObjective(nn.Module):
    """``forward(batch) -> (loss, logs)``: RSA's loss on metric depth 1 / (α·y + β).

    Per image: the mean of L1 (or Huber) over pixels with ground truth in the item's ``min_depth`` ..
    ``max_depth`` (its dataset's range; default ``rsa.min_depth`` .. ``rsa.max_depth``).
    Per dataset: the mean over its images in the batch. With ``normalize_datasets`` each dataset's
    loss enters as L / L.detach() (gradient ∇L / L: the log of the loss), so each dataset pulls with
    equal strength whatever its depth range; the value returned is still the sum of the datasets'
    losses (for logs). Logs: each dataset's loss and the batch's mean α, β.
    """

    def __init__(self, model: nn.Module, config: RSAConfig, names: Sequence[str]) -> None:
        super().__init__()
        self.model, self.config, self.names = model, config, list(names)

    def forward(self, batch: dict[str, Tensor]) -> tuple[Tensor, dict[str, float]]:
        alpha, beta = self.model(batch["condition"])
        with torch.autocast(alpha.device.type, enabled=False):
            return self._loss(alpha.float(), beta.float(), batch)

    def _loss(self, alpha: Tensor, beta: Tensor, batch: dict[str, Tensor]) -> tuple[Tensor, dict[str, float]]:
        config = self.config
        y, gt = batch["y"].float(), batch["depth"].float()
        low = batch["min_depth"] if "min_depth" in batch else torch.full_like(alpha, config.min_depth)
        high = batch["max_depth"] if "max_depth" in batch else torch.full_like(alpha, config.max_depth)
        low, high = low.to(gt)[:, None, None], high.to(gt)[:, None, None]
        mask = batch["valid"] & (gt > low) & (gt < high)
        pred = torch.reciprocal(alpha[:, None, None] * y + beta[:, None, None] + 1e-8)
        if config.loss == "huber":
            error = F.huber_loss(pred, gt, reduction="none", delta=config.huber_delta)
        else:
            error = (pred - gt).abs()
        error = torch.where(mask, error, torch.zeros_like(error))
        count = mask.flatten(1).sum(1)
        per_image = error.flatten(1).sum(1) / count.clamp(min=1)
        sources = batch["source"]
        total = 0.0 * (alpha.sum() + beta.sum())  # a graph even when no pixel is in range
        logs: dict[str, float] = {"alpha": float(alpha.detach().mean()), "beta": float(beta.detach().mean())}
        for source in sorted(set(sources.tolist())):
            chosen = (sources == source) & (count > 0)
            if not chosen.any():
                continue
            loss = per_image[chosen].mean()
            logs[self.names[source]] = float(loss.detach())
            if config.normalize_datasets:
                scale = loss.detach().clamp(min=1e-12)
                total = total + loss / scale - 1.0 + scale  # gradient ∇L / L, value L
            else:
                total = total + loss
        return total, logs


# ------------------------------------------------------------------------------ the task
class RSATask(Task):
    """RSA (``run.task: rsa``): a head from caption embeddings (or the Image baseline from images) to
    α, β over a frozen relative model; everything else is the trainer's."""

    name = "rsa"

    def __init__(self) -> None:
        self.relative: Any = None
        self.text_encoder: Any = None
        self.config: TrainConfig | None = None
        self.val_captions_dir: str | None = None

    def input_size(self, config: TrainConfig) -> int:
        return config.rsa.size

    def _cache_dir(self, config: TrainConfig) -> Path | None:
        if config.rsa.cache_dir:
            return Path(config.rsa.cache_dir)
        return Path(self.run_dir) / "cache" if self.run_dir is not None else None

    def _open_models(self, config: TrainConfig) -> None:
        rsa = config.rsa
        if self.relative is None:
            if rsa.relative == ORACLE_RELATIVE:
                self.relative = ORACLE_RELATIVE
            else:
                from ..models.relative import load_relative

                try:
                    self.relative = load_relative(rsa.relative, device=config.run.device)
                except (ValueError, FileNotFoundError, OSError) as err:
                    raise ConfigError(f"rsa.relative: {err}") from None
        if rsa.conditioning == "text" and self.text_encoder is None:
            from .text import TextEncoder

            try:
                self.text_encoder = TextEncoder.create(rsa.text_encoder, device=config.run.device)
            except (ValueError, RuntimeError, OSError) as err:
                raise ConfigError(f"rsa.text_encoder: {err}") from None

    def training_set(self, config: TrainConfig, size: int) -> torch.utils.data.Dataset:
        self.config = config
        folders = {dataset.captions_dir for dataset in config.val.datasets}
        if len(folders) > 1:
            raise ConfigError("val.datasets: all validation datasets must share one captions_dir (or none)")
        self.val_captions_dir = folders.pop() if folders else None
        self._open_models(config)
        cache = self._cache_dir(config)
        tables = [precompute(c, config.rsa, self.relative, cache_dir=cache) for c in config.data.datasets]
        for table in tables:
            for name, reason in (table.skipped or [])[:5]:
                warnings.warn(
                    f"RSA data: skipping {table.name}/{name}: {reason}", RuntimeWarning, stacklevel=2
                )
        embeddings = caption_ids = None
        if config.rsa.conditioning == "text":
            embeddings, caption_ids = self._embed(tables, config.rsa.captions, cache)
        return RSAMixture(
            config.data.datasets,
            tables,
            embeddings=embeddings,
            caption_ids=caption_ids,
            seed=config.run.seed,
            rsa=config.rsa,
        )

    def _embed(
        self, tables: Sequence[RSATable], kind: str, cache: Path | None
    ) -> tuple[Tensor, list[list[list[int]]]]:
        """One embedding per distinct caption of ``kind`` (cached on disk by encoder and caption list),
        and each sample's caption indices (empty where it has no caption of that kind)."""
        from ..io.atomic import atomic_path
        from .captions import CaptionError, select_captions

        def chosen(captions: list[str]) -> list[str]:
            try:
                return select_captions(captions, kind)
            except CaptionError:
                return []

        selected = [[chosen(captions) for captions in table.captions] for table in tables]
        unique = sorted({c for table in selected for captions in table for c in captions})
        if not unique:
            raise ConfigError(f"rsa.captions: no training sample has a {kind} caption")
        index = {caption: i for i, caption in enumerate(unique)}
        ids = [[[index[c] for c in captions] for captions in table] for table in selected]
        spec = self.config.rsa.text_encoder if self.config is not None else self.text_encoder.name
        weights = _stamp(spec.split("=", 1)[1]) if "=" in spec else None  # clip-rn50=FILE
        digest = hashlib.sha256(json.dumps([spec, weights, unique]).encode()).hexdigest()[:20]
        path = (
            cache / f"embeddings-{_safe(self.text_encoder.name)}-{digest}.pt" if cache is not None else None
        )
        if path is not None and path.is_file():
            embeddings = torch.load(path, map_location="cpu", weights_only=True)
            if embeddings.shape == (len(unique), self.text_encoder.dim):
                return embeddings, ids
        embeddings = self.text_encoder.encode(unique).float().cpu()
        if path is not None:
            with atomic_path(path) as tmp:
                torch.save(embeddings, tmp)
        return embeddings, ids

    def build_model(self, config: TrainConfig, *, resume_from: str | os.PathLike | None = None) -> nn.Module:
        from .baselines import ImageBaseline, load_scale_model
        from .head import RSAHead

        rsa = config.rsa
        source = resume_from if resume_from is not None else config.model.weights
        if source:
            model = load_scale_model(source)
            want = "image" if rsa.conditioning == "image" else "text"
            if getattr(model, "conditioning", "text") != want:
                raise ConfigError(
                    f"{source}: holds a {model.conditioning}-conditioned model, the run trains {want}"
                )
            if want == "text" and model.in_dim != self.text_encoder.dim:  # type: ignore[union-attr]
                raise ConfigError(
                    f"{source}: the head takes {model.in_dim}-d embeddings, {rsa.text_encoder} gives "  # type: ignore[union-attr]
                    f"{self.text_encoder.dim}-d"
                )
            model.train()
        elif rsa.conditioning == "image":
            model = ImageBaseline(rsa.image_encoder, rsa.image_size, rsa.layout)
        else:
            model = RSAHead(self.text_encoder.dim, rsa.layout, text_encoder=self.text_encoder.name)
        if rsa.conditioning == "text":
            model.text_encoder = self.text_encoder.name
        return model.requires_grad_(True)

    def objective(self, model: nn.Module, config: TrainConfig) -> nn.Module:
        names = [dataset_label(c) for c in config.data.datasets]
        return RSAObjective(model, config.rsa, names)

    def param_groups(self, model: nn.Module, optim: OptimConfig) -> list[dict[str, Any]]:
        params = [p for p in model.parameters() if p.requires_grad]
        return [{"name": "head", "params": params, "lr": optim.lr_decoder}] if params else []

    def validation_predictor(self, model: nn.Module) -> Any:
        from .pipeline import RSAPipeline, RSAPredictor

        assert self.config is not None, "training_set is called before validation"
        rsa = self.config.rsa
        pipeline = RSAPipeline(
            self.relative,
            self.text_encoder if rsa.conditioning == "text" else None,
            model,  # type: ignore[arg-type]
            min_depth=max(rsa.min_depth, 1e-3),
            max_depth=rsa.max_depth,
            device=next(model.parameters()).device,
        )
        return RSAPredictor(
            pipeline, kind=rsa.captions, index=rsa.eval_caption_index, captions_dir=self.val_captions_dir
        )

    def save_weights(self, model: nn.Module, path: Any) -> None:
        assert self.config is not None
        model.save_pretrained(path, relative=self.config.rsa.relative)  # type: ignore[operator]
