"""What a training step minimises: modules ``objective(batch) -> (loss, logs)`` that DDP wraps.

The loss of a batch is the average over its images of each image's own loss, whatever mix of label
kinds the batch holds: images are grouped by (label kind, trim), each group's terms are averaged over
its images by :mod:`metricdepth.losses`, and the groups are weighted by their share of the batch. So
a 2-process run averages exactly what a 1-process run with the combined batch averages.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn

from .. import losses
from .config import DatasetConfig, LossConfig

__all__ = ["DepthObjective", "FOVObjective", "depth_terms"]

_GRADIENT_TERMS = {"mage": ("scharr", 1), "male": ("laplace", 1), "msge": ("scharr", 2)}


def depth_terms(scales: int) -> dict[str, Callable[[Tensor, Tensor, Tensor, float], Tensor]]:
    """Term name → ``fn(pred, target, valid, trim)``, for every name in :data:`~.config.LOSS_TERMS`."""

    def gradient(operator: str, p: int, normalized: bool):
        def term(pred: Tensor, target: Tensor, valid: Tensor, trim: float) -> Tensor:
            if normalized:
                pred, target = losses.normalize(pred, valid), losses.normalize(target, valid)
            return losses.gradient_loss(pred, target, valid, operator=operator, scales=scales, p=p)

        return term

    terms: dict[str, Callable[[Tensor, Tensor, Tensor, float], Tensor]] = {
        "mae": lambda pred, target, valid, trim: losses.mae(pred, target, valid, trim=trim),
        "mse": lambda pred, target, valid, trim: losses.mse(pred, target, valid, trim=trim),
        "ssi_mae": lambda pred, target, valid, trim: losses.ssi_mae(pred, target, valid, trim=trim),
        "ssi_mse": lambda pred, target, valid, trim: losses.mse(
            losses.normalize(pred, valid), losses.normalize(target, valid), valid, trim=trim
        ),
    }
    for name, (operator, p) in _GRADIENT_TERMS.items():
        terms[name] = gradient(operator, p, normalized=False)
        terms[f"ssi_{name}"] = gradient(operator, p, normalized=True)
    return terms


class DepthObjective(nn.Module):
    """Depth training: the network without its FOV head, each dataset's loss terms on its images.

    A dataset's terms are its own ``losses`` when set, else those of its label kind (``loss.<kind>``).
    ``forward(batch)`` takes a collated batch of :class:`~metricdepth.train.data.MixtureDataset` items
    (``image`` (B, 3, S, S) in [-1, 1], ``target`` (B, 1, S, S) canonical inverse depth, ``valid``,
    ``source``, ``trim``) and returns the scalar loss and per-term values for logging (each term's
    mean over the images it applies to, keyed ``KIND/TERM``).
    """

    def __init__(self, model: nn.Module, config: LossConfig, datasets: Sequence[DatasetConfig]) -> None:
        super().__init__()
        self.model = model
        self.kinds = [dataset.kind for dataset in datasets]
        self.weights = [
            {name: w for name, w in (dict(d.losses) or dict(getattr(config, d.kind))).items() if w != 0}
            for d in datasets
        ]
        self.terms = depth_terms(config.gradient_scales)

    def forward(self, batch: dict[str, Tensor]) -> tuple[Tensor, dict[str, float]]:
        pred, _ = self.model(batch["image"], with_fov=False)
        with torch.autocast(
            pred.device.type, enabled=False
        ):  # losses in float32, whatever the network ran in
            return self._loss(pred.float(), batch)

    def _loss(self, pred: Tensor, batch: dict[str, Tensor]) -> tuple[Tensor, dict[str, float]]:
        target, valid = batch["target"].float(), batch["valid"]
        sources, trims = batch["source"].tolist(), batch["trim"].tolist()
        total = pred.new_zeros(())
        sums: dict[str, float] = {}
        counts: dict[str, int] = {}
        for source, trim in sorted(set(zip(sources, trims, strict=True))):
            rows = [i for i, key in enumerate(zip(sources, trims, strict=True)) if key == (source, trim)]
            index = torch.tensor(rows, device=pred.device)
            share = len(rows) / len(sources)
            for name, weight in self.weights[source].items():
                value = self.terms[name](pred[index], target[index], valid[index], float(trim))
                total = total + share * weight * value
                key = f"{self.kinds[source]}/{name}"
                sums[key] = sums.get(key, 0.0) + float(value.detach()) * len(rows)
                counts[key] = counts.get(key, 0) + len(rows)
        return total, {key: sums[key] / counts[key] for key in sums}


class FOVObjective(nn.Module):
    """FOV head training: the depth network frozen (no gradient, eval mode), the FOV encoder and head
    trained with ``weight`` × the squared error of the horizontal field of view, degrees².

    Images without a known FOV (NaN) count in the batch average with zero loss.
    """

    def __init__(self, model: nn.Module, weight: float = 1.0) -> None:
        super().__init__()
        if getattr(model, "fov", None) is None:
            raise ValueError("FOV training needs a model with an FOV head (model.fov_head: true)")
        self.model = model
        self.weight = weight

    def train(self, mode: bool = True) -> FOVObjective:
        super().train(mode)
        self.model.encoder.eval()
        self.model.decoder.eval()
        self.model.head.eval()
        return self

    def forward(self, batch: dict[str, Tensor]) -> tuple[Tensor, dict[str, float]]:
        x = batch["image"]
        with torch.no_grad():
            _, lowres = self.model.decoder(self.model.encoder(x))
        fov = self.model.fov(x, lowres)
        with torch.autocast(fov.device.type, enabled=False):
            return self._loss(fov.float(), batch["fov_deg"])

    def _loss(self, fov: Tensor, target: Tensor) -> tuple[Tensor, dict[str, float]]:
        target = target.to(fov)
        known = torch.isfinite(target)
        error = torch.where(known, fov - torch.where(known, target, 0.0), 0.0)
        loss = self.weight * (error**2).sum() / max(len(target), 1)
        n = int(known.sum())
        logs = {
            "fov/l2": float((error.detach() ** 2).sum()) / max(n, 1),
            "fov/abs_deg": float(error.detach().abs().sum()) / max(n, 1),
        }
        return loss, logs
