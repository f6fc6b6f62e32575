"""The one training loop: devices, DDP under torchrun, precision, clipping, EMA, schedule, checkpoints,
exact resume, logging and validation. What is trained comes from a :class:`~.tasks.Task`.

A run folder holds::

    RUN/config.yaml              the effective config (after overrides)
    RUN/last/model.safetensors   the latest weights (EMA ones when run.ema > 0); from_pretrained(RUN/last)
    RUN/last/training_state.pt   everything a resume needs: weights, EMA, optimiser, scheduler, scaler,
                                 step, RNG states, data position (read with weights_only=True)
    RUN/best/model.safetensors   the weights with the best validation metric so far, and best/metrics.json
    RUN/log.jsonl                one JSON line per logged step and per validation
    RUN/tensorboard/             TensorBoard event files

Exactness: the data order is a pure function of (seed, step) (:class:`~.data.StepSampler`), so a run
resumed from a checkpoint sees exactly the batches an uninterrupted run would, and a run of N
processes sees at each step the same images as one process with the combined batch.
"""

from __future__ import annotations

import copy
import json
import math
import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..device import PRECISIONS
from ..io.atomic import atomic_path
from .config import ConfigError, TrainConfig, config_to_yaml
from .distributed import DistInfo, all_reduce_mean, barrier, close_distributed, init_distributed
from .tasks import Task, task_for

__all__ = ["RunExistsError", "TrainResult", "Trainer", "lr_factor", "poly_factor", "schedule_factor", "train"]

STATE_FORMAT = "metricdepth.train/1"
RUN_FILES = ("config.yaml", "last", "best", "log.jsonl", "tensorboard")


class RunExistsError(RuntimeError):
    """The run folder already holds a run and ``resume`` was not asked for."""


@dataclass
class TrainResult:
    run_dir: Path
    step: int
    best: dict[str, Any] | None = None
    history: list[dict[str, Any]] = field(default_factory=list)


def lr_factor(step: int, total: int, warmup: float, constant: float, decay_factor: float) -> float:
    """The paper's schedule (Tab 16) as a factor of the base rate at 0-based ``step`` of ``total``:
    linear warm-up over ``warmup``·total steps, 1 until (warmup + constant)·total, then ``decay_factor``."""
    warm = round(warmup * total)
    if step < warm:
        return (step + 1) / warm
    if step < round((warmup + constant) * total):
        return 1.0
    return decay_factor


def poly_factor(step: int, total: int, power: float, end_factor: float) -> float:
    """Polynomial decay (RSA's schedule): ``(1 − end)·(1 − step/total)^power + end``, from 1 at step 0
    to ``end_factor`` at ``total``."""
    progress = min(max(step / total, 0.0), 1.0)
    return (1.0 - end_factor) * (1.0 - progress) ** power + end_factor


def schedule_factor(step: int, total: int, optim: Any) -> float:
    """The rate factor of ``optim.schedule`` (``step``: :func:`lr_factor`; ``poly``: linear warm-up over
    ``optim.warmup``·total steps, then :func:`poly_factor`)."""
    if optim.schedule == "poly":
        warm = round(optim.warmup * total)
        if step < warm:
            return (step + 1) / warm
        return poly_factor(step, total, optim.power, optim.decay_factor)
    return lr_factor(step, total, optim.warmup, optim.constant, optim.decay_factor)


def _rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {"torch": torch.get_rng_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _to_device(batch: dict[str, Any], device: torch.device) -> dict[str, Any]:
    return {
        key: value.to(device, non_blocking=True) if isinstance(value, torch.Tensor) else value
        for key, value in batch.items()
    }


class Trainer:
    """Train ``config`` into ``run_dir``.

    Args:
        config: the effective run config.
        run_dir: the run folder (created; an existing run needs ``resume``).
        resume: continue from ``run_dir/last`` exactly where it stopped.
        max_steps: stop after this step (the schedule still spans ``run.steps``); None: run.steps.
        checkpoint_every: override ``run.checkpoint_every``.
        init: start from these Depth Pro weights (overrides ``model.weights``).
        task: what to train (default: the one ``run.task`` names).
        on_log: called on rank 0 with every logged record (progress bars).
    """

    def __init__(
        self,
        config: TrainConfig,
        run_dir: str | os.PathLike,
        *,
        resume: bool = False,
        max_steps: int | None = None,
        checkpoint_every: int | None = None,
        init: str | None = None,
        task: Task | None = None,
        on_log: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        config = copy.deepcopy(config)
        if init is not None:  # the effective config names the weights the run started from
            config.model.weights = init
        self.config = config
        self.run_dir = Path(run_dir)
        self.resume = resume
        self.end_step = min(max_steps, config.run.steps) if max_steps is not None else config.run.steps
        self.checkpoint_every = checkpoint_every or config.run.checkpoint_every
        self.init = init
        self.task = task or task_for(config)
        self.task.run_dir = self.run_dir  # where a task may keep caches (RSA: RUN/cache)
        self.on_log = on_log
        self._replaces_unfinished_run = False  # set by _check_run_dir
        if max_steps is not None and max_steps <= 0:
            raise ValueError("max_steps must be positive")

    # ------------------------------------------------------------------ setup
    def _check_run_dir(self) -> None:
        """A new run may replace the files of one that never reached a checkpoint (its own), nothing else."""
        state = self.run_dir / "last" / "training_state.pt"
        if self.resume:
            if not state.is_file():
                raise ConfigError(f"{self.run_dir}: nothing to resume (no last/training_state.pt)")
            return
        if state.is_file():
            raise RunExistsError(
                f"{self.run_dir} already holds a run (last/training_state.pt): pass --resume to continue "
                "it, or choose another output folder"
            )
        taken = [name for name in RUN_FILES if (self.run_dir / name).exists()]
        if not taken:
            return
        if not _is_run_config(self.run_dir / "config.yaml"):
            raise RunExistsError(
                f"{self.run_dir} holds {', '.join(taken)} that no metricdepth run wrote: choose another "
                "output folder"
            )
        weights = [name for name in ("last", "best") if (self.run_dir / name).exists()]
        if weights:
            raise RunExistsError(
                f"{self.run_dir} holds the weights of a run ({', '.join(weights)}) without a training state "
                "to resume from: choose another output folder"
            )
        self._replaces_unfinished_run = True

    def _setup(self, dist_info: DistInfo) -> None:
        config, run = self.config, self.config.run
        if run.batch_size % dist_info.world_size:
            raise ValueError(
                f"run.batch_size {run.batch_size} is not divisible by the {dist_info.world_size} processes"
            )
        self.dist = dist_info
        self.device = dist_info.device
        state = None
        if self.resume:
            state = torch.load(
                self.run_dir / "last" / "training_state.pt", map_location="cpu", weights_only=True
            )
            self._check_resumable(state)
        # Everything that reads data is opened before the first file is written or step is taken.
        self.training_data = self.task.training_set(config, self._input_size())
        self._val_sets = self._open_validation()  # in every process: a bad one stops them all
        torch.manual_seed(run.seed)  # the same initial weights in every process
        random.seed(run.seed)
        # A resumed run reads its architecture from its own last weights and the weights from the
        # training state: nothing is downloaded again.
        resume_from = self.run_dir / "last" / "model.safetensors" if self.resume else None
        self.model = self.task.build_model(config, resume_from=resume_from).to(self.device)
        self.objective = self.task.objective(self.model, config).to(self.device)
        if dist_info.distributed:
            device_ids = [self.device.index] if self.device.type == "cuda" else None
            self.wrapped: nn.Module = nn.parallel.DistributedDataParallel(
                self.objective, device_ids=device_ids
            )
        else:
            self.wrapped = self.objective
        groups = self.task.param_groups(self.model, config.optim)
        if not groups:
            raise ValueError("nothing to train: every parameter of the task is frozen")
        self.params = [p for group in groups for p in group["params"]]
        optim = config.optim
        cls = torch.optim.AdamW if optim.name == "adamw" else torch.optim.Adam
        self.optimizer = cls(groups, betas=tuple(optim.betas), weight_decay=optim.weight_decay)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer,
            lambda step: schedule_factor(step, run.steps, optim),
        )
        self.autocast_dtype = PRECISIONS[run.precision]
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=run.precision == "fp16")
        self.ema = None
        if run.ema > 0:
            from timm.utils.model_ema import ModelEmaV3

            self.ema = ModelEmaV3(self.model, decay=run.ema, use_warmup=True)
        self.step = 0
        self.redrawn = 0
        self.best: dict[str, Any] | None = None
        if state is not None:
            self._load_state(state)
        self.global_batch = run.batch_size
        self.local_batch = run.batch_size // dist_info.world_size

    def _input_size(self) -> int:
        """Side of the square training items, pixels (the network's input)."""
        return self.task.input_size(self.config)

    def _check_resumable(self, state: dict[str, Any]) -> None:
        path = self.run_dir / "last" / "training_state.pt"
        if state.get("format") != STATE_FORMAT:
            raise ConfigError(f"{path}: not a metricdepth training state")
        import yaml

        saved = yaml.safe_load(state["config"])
        before = saved["model"]["weights"]
        same = self.init is not None and before and Path(self.init).resolve() == Path(before).resolve()
        if self.init is None or same:  # the run's own starting weights, whether or not --init is repeated
            self.config.model.weights = before
        changed = config_changes(state["config"], self.config)
        if changed:
            raise ConfigError(
                f"{path}: the config differs from the run's in {', '.join(changed)}; an exact resume needs "
                f"the same run (only {', '.join(RESUMABLE_CHANGES)} may change). Start a new run with "
                "--init RUN/last to continue with other settings"
            )
        if int(state["step"]) >= self.end_step:
            which = "--max-steps" if self.end_step < self.config.run.steps else "run.steps"
            raise ConfigError(
                f"{self.run_dir}: the run is at step {state['step']}, which is already the end "
                f"({which} = {self.end_step})"
            )

    def _open_validation(self) -> list[Any]:
        from .validation import open_validation_sets

        val = self.config.val
        sets = open_validation_sets(val.datasets, val.max_samples) if val.datasets else []
        unscored = [s.label for s in sets if not s.protocol.boundary_f1]
        if unscored and val.metric == "boundary_f1":
            raise ConfigError(
                f"val.metric boundary_f1 needs dense ground truth, but {', '.join(unscored)} is not "
                "scored for boundaries; choose another val.metric"
            )
        return sets

    def _loader(self) -> torch.utils.data.DataLoader:
        from .data import StepSampler

        dataset = self.training_data
        sampler = StepSampler(
            self.local_batch,
            rank=self.dist.rank,
            world_size=self.dist.world_size,
            start_step=self.step,
            steps=self.end_step,
        )
        workers = self.config.data.num_workers
        self.dataset = dataset
        return torch.utils.data.DataLoader(
            dataset,
            batch_size=self.local_batch,
            sampler=sampler,
            num_workers=workers,
            pin_memory=self.device.type == "cuda",
            persistent_workers=False,
            prefetch_factor=2 if workers else None,
            # Its own generator: the loader's base seed must not draw from the global RNG, whose
            # state belongs to the model (exact resume).
            generator=torch.Generator().manual_seed(self.config.run.seed),
        )

    # ------------------------------------------------------------ checkpoints
    def _weights_module(self) -> nn.Module:
        """What inference uses: the EMA weights when EMA is on."""
        return self.ema.module if self.ema is not None else self.model  # type: ignore[return-value]

    def _save_state(self) -> None:
        last = self.run_dir / "last"
        last.mkdir(parents=True, exist_ok=True)
        state = {
            "format": STATE_FORMAT,
            "step": self.step,
            "model": self.model.state_dict(),
            "ema": self.ema.state_dict() if self.ema is not None else None,
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "rng": _rng_state(),
            "data": {
                "seed": self.config.run.seed,
                "global_batch": self.global_batch,
                "next_step": self.step,
                "redrawn": self.redrawn,
            },
            "best": self.best,
            "config": config_to_yaml(self.config),
        }
        # Weights first, then the state: wherever a state exists, its weights exist too (the state is
        # what a resume reads; RUN/last never holds only the .pt that from_pretrained would pick up).
        self.task.save_weights(self._weights_module(), last / "model.safetensors")
        with atomic_path(last / "training_state.pt") as tmp:
            torch.save(state, tmp)

    def _load_state(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        if self.ema is not None:  # run.ema is part of the config a resume must keep
            self.ema.load_state_dict(state["ema"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        _set_rng_state(state["rng"])
        self.step = int(state["step"])
        self.best = state["best"]
        self.redrawn = int(state["data"].get("redrawn", 0))

    # ------------------------------------------------------------- validation
    def _validate(self) -> dict[str, float] | None:
        from .validation import HIGHER_IS_BETTER, validate

        val = self.config.val
        if not self._val_sets:
            return None
        module = self._weights_module()
        metrics, failures = validate(
            module, self.task.validation_predictor(module), self._val_sets, val.alignment
        )
        self.objective.train()
        if failures:
            self._log({"step": self.step, "val/failures": [f"{d}/{n}: {r}" for d, n, r in failures[:5]]})
        if val.metric not in metrics:
            raise ValueError(
                f"val.metric {val.metric!r} was not measured; validation gave {', '.join(sorted(metrics))}"
            )
        value = metrics[val.metric]
        better = (lambda a, b: a > b) if val.metric in HIGHER_IS_BETTER else (lambda a, b: a < b)
        if not math.isnan(value) and (self.best is None or better(value, self.best["value"])):
            self.best = {"metric": val.metric, "value": value, "step": self.step}
            best = self.run_dir / "best"
            best.mkdir(parents=True, exist_ok=True)
            self.task.save_weights(module, best / "model.safetensors")
            with atomic_path(best / "metrics.json") as tmp:
                tmp.write_text(json.dumps({**self.best, "metrics": metrics}, indent=2))
        return metrics

    # ----------------------------------------------------------------- logging
    def _open_logs(self) -> None:
        log = self.run_dir / "log.jsonl"
        kept = []
        if self.resume and log.is_file():  # drop what was logged after the checkpoint we resume from
            kept = [line for line in log.read_text().splitlines() if _logged_step(line) <= self.step]
        if self._replaces_unfinished_run:  # its logs describe nothing that remains
            import shutil

            shutil.rmtree(self.run_dir / "tensorboard", ignore_errors=True)
        with atomic_path(log) as tmp:
            tmp.write_text("".join(line + "\n" for line in kept))
        self._log_file = log.open("a")
        self._tb = None
        try:
            from torch.utils.tensorboard import SummaryWriter

            self._tb = SummaryWriter(str(self.run_dir / "tensorboard"), purge_step=self.step)
        except ImportError:  # tensorboard is in the [train] extra
            self._tb = None

    def _log(self, record: dict[str, Any]) -> None:
        self._log_file.write(json.dumps(record) + "\n")
        self._log_file.flush()
        if self._tb is not None:
            for key, value in record.items():
                if key != "step" and isinstance(value, (int, float)):
                    self._tb.add_scalar(key, value, record["step"])
        if self.on_log is not None:
            self.on_log(record)

    # -------------------------------------------------------------------- loop
    def _train_step(self, batch: dict[str, Any]) -> tuple[torch.Tensor, dict[str, float], torch.Tensor]:
        batch = _to_device(batch, self.device)
        autocast = torch.autocast(
            self.device.type,
            dtype=self.autocast_dtype,
            enabled=self.autocast_dtype != torch.float32,
        )
        with autocast:
            loss, logs = self.wrapped(batch)
        if not torch.isfinite(loss) and not self.scaler.is_enabled():  # fp16: the scaler skips the step
            raise FloatingPointError(
                f"step {self.step + 1}: the loss is {float(loss.detach())}; stopping the run"
            )
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.unscale_(self.optimizer)
        clip = self.config.optim.clip_grad_norm
        grad_norm = torch.nn.utils.clip_grad_norm_(self.params, clip if clip > 0 else math.inf)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.step_lrs = {f"lr/{g['name']}": g["lr"] for g in self.optimizer.param_groups}  # this step's
        self.scheduler.step()
        if self.ema is not None:
            self.ema.update(self.model, step=self.step + 1)
        return loss.detach(), logs, grad_norm

    def fit(self) -> TrainResult:
        dist_info = init_distributed(self.config.run.device)
        try:
            self._check_run_dir()  # every process (it only reads), so all of them stop together
            self._setup(dist_info)
            result = TrainResult(self.run_dir, self.step, self.best)
            if dist_info.is_main:
                self.run_dir.mkdir(parents=True, exist_ok=True)
                with atomic_path(self.run_dir / "config.yaml") as tmp:
                    tmp.write_text(config_to_yaml(self.config))
                self._open_logs()
            self.objective.train()
            every = self.config.run.log_every
            started, timed_steps = time.perf_counter(), 0
            redrawn = 0  # samples this process replaced by another draw since the last count
            for batch in self._loader():
                redrawn += int(batch.pop("redrawn").sum()) if "redrawn" in batch else 0  # CPU tensor
                loss, logs, grad_norm = self._train_step(batch)
                self.step += 1
                timed_steps += 1
                loss = all_reduce_mean(loss)
                at_end = self.step == self.end_step
                if self.step % every == 0 or self.step % self.checkpoint_every == 0 or at_end:
                    # Counted over all processes at steps every process agrees on (no per-step sync).
                    self.redrawn += round(
                        float(all_reduce_mean(torch.tensor([float(redrawn)], device=self.device)))
                        * dist_info.world_size
                    )
                    redrawn = 0
                if dist_info.is_main and (self.step % every == 0 or at_end):
                    elapsed = time.perf_counter() - started
                    record = {
                        "step": self.step,
                        "loss": float(loss),
                        "grad_norm": float(grad_norm),
                        **self.step_lrs,
                        **{f"loss/{k}": v for k, v in logs.items()},
                        "steps_per_s": timed_steps / elapsed if elapsed > 0 else 0.0,
                        "data/redrawn": self.redrawn,
                    }
                    started, timed_steps = time.perf_counter(), 0
                    self._log(record)
                    result.history.append(record)
                if dist_info.is_main and (self.step % self.config.val.every == 0 or at_end):
                    metrics = self._validate()
                    if metrics is not None:
                        record = {"step": self.step, **{f"val/{k}": v for k, v in metrics.items()}}
                        self._log(record)
                        result.history.append(record)
                if self.step % self.config.val.every == 0 or at_end:
                    barrier()  # the other processes wait here, not inside the next all-reduce
                if self.step % self.checkpoint_every == 0 or at_end:
                    if dist_info.is_main:
                        self._save_state()
                    barrier()
            if dist_info.is_main:
                self._log_file.close()
                if self._tb is not None:
                    self._tb.close()
            result.step, result.best = self.step, self.best
            return result
        finally:
            close_distributed()


RESUMABLE_CHANGES = (
    "val.*",
    "run.log_every",
    "run.checkpoint_every",
    "run.device",
    "data.num_workers",
    "description",
    "rsa.cache_dir",
)
"""Config keys a resumed run may change: they do not alter what is trained."""


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            out.update(_flatten(item, f"{prefix}{key}."))
        return out or {prefix[:-1]: {}}
    if isinstance(value, list):
        out = {}
        for index, item in enumerate(value):
            out.update(_flatten(item, f"{prefix}{index}."))
        return out or {prefix[:-1]: []}
    return {prefix[:-1]: value}


def config_changes(saved_yaml: str, config: TrainConfig) -> list[str]:
    """Keys whose values differ between a run's saved config and ``config``, other than
    :data:`RESUMABLE_CHANGES`."""
    import fnmatch

    import yaml

    from .config import config_to_dict

    before, after = _flatten(yaml.safe_load(saved_yaml)), _flatten(config_to_dict(config))
    keys = sorted(set(before) | set(after))
    return [
        key
        for key in keys
        if before.get(key) != after.get(key)
        and not any(
            fnmatch.fnmatch(key, pattern) or key.startswith(f"{pattern}.") for pattern in RESUMABLE_CHANGES
        )
    ]


def _is_run_config(path: Path) -> bool:
    """Whether ``path`` is a run's saved config (a run that stopped before its first checkpoint)."""
    from .config import load_config

    try:
        load_config(path)
    except Exception:
        return False
    return True


def _logged_step(line: str) -> int:
    """A log line's step; a line cut short by a kill counts as after everything (dropped)."""
    try:
        return int(json.loads(line)["step"])
    except (ValueError, KeyError, TypeError):
        return 2**62


def train(config: TrainConfig, run_dir: str | os.PathLike, **options: Any) -> TrainResult:
    """Run :class:`Trainer` ``(config, run_dir, **options).fit()``."""
    return Trainer(config, run_dir, **options).fit()
