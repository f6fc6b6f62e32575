"""Training tasks: what a run trains, with which loss, and how it is validated.

The :class:`~metricdepth.train.trainer.Trainer` owns the loop (devices, DDP, precision, clipping,
EMA, schedule, checkpoints, resume, logging, validation cadence); a task supplies the model, the
objective module, the optimiser's parameter groups, the training data and the validation
predictor. Depth Pro's depth stages and its FOV head are two tasks of the one trainer.
"""

from __future__ import annotations

import os
from typing import Any

import torch
from torch import nn

from .config import ConfigError, OptimConfig, TrainConfig

__all__ = ["DepthTask", "FOVTask", "Task", "build_depth_pro", "task_for"]


def build_depth_pro(config: TrainConfig, *, resume_from: str | os.PathLike | None = None) -> nn.Module:
    """The Depth Pro network a run starts from: ``model.weights`` (a checkpoint, a run's ``last``,
    a Hub id), else the preset with DINOv2 (``model.init: dinov2``, from the Hub) or random encoders.
    fp32 on the CPU; the trainer moves it.

    ``resume_from``: a resumed run's own weights file, read for its architecture only (the training
    state holds the weights); nothing is downloaded and the same parameters are frozen as in the run.
    """
    import dataclasses

    from ..models.depth_pro import DepthPro, DepthProConfig
    from ..models.depth_pro.init import init_encoders

    model_config = config.model
    weights = model_config.weights
    preset = DepthProConfig.preset(model_config.preset)
    if not model_config.fov_head:
        preset = dataclasses.replace(preset, fov_encoder=None)
    if model_config.require_weights and not weights:
        raise ConfigError(
            "this config continues a trained network (model.require_weights): give its weights with "
            "--init RUN/last (or model.weights=...)"
        )
    source = resume_from if resume_from is not None else weights
    if source:
        model = DepthPro.from_pretrained(source, device="cpu", precision="fp32")
        if model.config.img_size != preset.img_size:
            raise ConfigError(
                f"{source}: a {model.config.name} checkpoint with {model.config.img_size}² input, but "
                f"model.preset {model_config.preset!r} trains at {preset.img_size}²"
            )
        if model_config.fov_head and model.fov is None:
            raise ConfigError(f"{source}: the checkpoint has no FOV head but model.fov_head is true")
        if not model_config.fov_head and model.fov is not None:  # drop it: the run saves what it trains
            model.fov = None
            model.config = dataclasses.replace(model.config, fov_encoder=None)
    else:
        model = DepthPro(preset)
        if model_config.init != "random":
            init_encoders(model, "hub" if model_config.init in ("dinov2", "hub") else model_config.init)
    if model_config.freeze_layernorm and (weights or model_config.init != "random"):
        model.freeze_layernorms()
    if model_config.grad_checkpointing:
        model.set_grad_checkpointing(True)
    return model


def _groups(
    named: dict[str, list[tuple[str, nn.Parameter]]], rates: dict[str, float]
) -> list[dict[str, Any]]:
    groups = []
    for name, rate in rates.items():
        params = [p for _, p in named.get(name, []) if p.requires_grad]
        if params:
            groups.append({"name": name, "params": params, "lr": rate})
    return groups


class Task:
    """The interface the trainer drives. Subclasses set ``name`` and implement the methods."""

    name = "task"
    run_dir: Any = None  # set by the trainer: the run folder (for caches)

    def input_size(self, config: TrainConfig) -> int:
        """Side of the square training items, pixels: the Depth Pro preset's input."""
        from ..models.depth_pro import DepthProConfig

        return DepthProConfig.preset(config.model.preset).img_size

    def build_model(self, config: TrainConfig, *, resume_from: str | os.PathLike | None = None) -> nn.Module:
        """The model to train (``resume_from``: see :func:`build_depth_pro`)."""
        raise NotImplementedError

    def objective(self, model: nn.Module, config: TrainConfig) -> nn.Module:
        """A module ``(batch) -> (loss, logs)`` holding every trainable parameter (DDP wraps it)."""
        raise NotImplementedError

    def param_groups(self, model: nn.Module, optim: OptimConfig) -> list[dict[str, Any]]:
        raise NotImplementedError

    def training_set(self, config: TrainConfig, size: int) -> torch.utils.data.Dataset:
        """The training mixture, items of ``size``² pixels (the network's input)."""
        from .data import MixtureDataset

        return MixtureDataset(
            config.data.datasets,
            size,
            config.data.augment,
            seed=config.run.seed,
            fov=config.run.task == "fov",
        )

    def validation_predictor(self, model: nn.Module) -> Any:
        """``predict(sample) -> Prediction`` for :func:`metricdepth.evaluation.evaluate`."""
        raise NotImplementedError

    def save_weights(self, model: nn.Module, path: Any) -> None:
        model.save_pretrained(path)


class DepthTask(Task):
    """Depth stages: the depth network trains, the FOV head (if any) is frozen and not run."""

    name = "depth"

    def build_model(self, config: TrainConfig, *, resume_from: str | os.PathLike | None = None) -> nn.Module:
        model = build_depth_pro(config, resume_from=resume_from)
        if model.fov is not None:
            model.fov.requires_grad_(False)
        return model

    def objective(self, model: nn.Module, config: TrainConfig) -> nn.Module:
        from .objectives import DepthObjective

        return DepthObjective(model, config.loss, config.data.datasets)

    def param_groups(self, model: nn.Module, optim: OptimConfig) -> list[dict[str, Any]]:
        return _groups(model.parameter_groups(), {"encoder": optim.lr_encoder, "decoder": optim.lr_decoder})

    def validation_predictor(self, model: nn.Module) -> Any:
        from .validation import ValidationPredictor

        return ValidationPredictor(model, focal="ground-truth")


class FOVTask(Task):
    """The FOV head after the depth network (paper §3.3): depth frozen, FOV encoder + head trained."""

    name = "fov"

    def build_model(self, config: TrainConfig, *, resume_from: str | os.PathLike | None = None) -> nn.Module:
        if not config.model.weights:
            raise ConfigError(
                "the FOV head is trained on a trained, frozen depth network: give it with --init RUN/last "
                "(or model.weights=...)"
            )
        model = build_depth_pro(config, resume_from=resume_from)
        frozen_names = ("encoder", "decoder")
        groups = model.parameter_groups()
        for name in frozen_names:
            for _, param in groups[name]:
                param.requires_grad_(False)
        return model

    def objective(self, model: nn.Module, config: TrainConfig) -> nn.Module:
        from .objectives import FOVObjective

        return FOVObjective(model, config.loss.fov)

    def param_groups(self, model: nn.Module, optim: OptimConfig) -> list[dict[str, Any]]:
        return _groups(
            model.parameter_groups(), {"fov_encoder": optim.lr_encoder, "fov_head": optim.lr_decoder}
        )

    def validation_predictor(self, model: nn.Module) -> Any:
        from .validation import ValidationPredictor

        return ValidationPredictor(model, focal="predicted")


TASKS: dict[str, type[Task]] = {"depth": DepthTask, "fov": FOVTask}


def task_for(config: TrainConfig) -> Task:
    """The task ``run.task`` names (``rsa``: :class:`metricdepth.rsa.training.RSATask`)."""
    if config.run.task == "rsa":
        from ..rsa.training import RSATask

        return RSATask()
    return TASKS[config.run.task]()
