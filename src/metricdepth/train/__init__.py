"""Training: Depth Pro's two-stage curriculum, its FOV head and fine-tuning, as configurations of one
trainer (:class:`Trainer`) that runs on one CPU or on many GPUs under ``torchrun``.

Configs: :func:`load_config` (a file or a shipped name, ``key=value`` overrides); data:
:mod:`.data`; losses: :mod:`metricdepth.losses`; objectives per task: :mod:`.objectives`,
:mod:`.tasks`; the loop, checkpoints and resume: :mod:`.trainer`.
"""

from .config import ConfigError, TrainConfig, list_configs, load_config
from .trainer import RunExistsError, Trainer, TrainResult, train

__all__ = [
    "ConfigError",
    "RunExistsError",
    "TrainConfig",
    "TrainResult",
    "Trainer",
    "list_configs",
    "load_config",
    "train",
]
