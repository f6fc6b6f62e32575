"""One process per device under ``torchrun`` (gloo on CPU, NCCL on CUDA), or a single process.

``torchrun --nproc_per_node N -m metricdepth train ...`` sets ``RANK``, ``WORLD_SIZE`` and
``LOCAL_RANK``; :func:`init_distributed` reads them, joins the process group and picks this
process's device. Without them the run is one process and nothing distributed is touched.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass

import torch
import torch.distributed as dist

from ..distributed.sharding import launch_env, rank_device

__all__ = ["DistInfo", "all_reduce_mean", "barrier", "close_distributed", "init_distributed"]


@dataclass(frozen=True)
class DistInfo:
    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        """Rank 0: the process that logs, validates and saves."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def init_distributed(device: str = "auto") -> DistInfo:
    """Join the ``torchrun`` process group if there is one; the device for this process.

    ``RANK`` / ``WORLD_SIZE`` / ``LOCAL_RANK`` and the device choice (``cuda:LOCAL_RANK``) are shared
    with ``torchrun``-sharded predict (:mod:`metricdepth.distributed.sharding`)."""
    env = launch_env()
    rank, world_size, local_rank = env.rank, env.world_size, env.local_rank
    resolved = rank_device(device, env, option="run.device")
    if world_size > 1 and not dist.is_initialized():
        # A long timeout: rank 0 validates and saves while the others wait at a barrier.
        dist.init_process_group(
            backend="nccl" if resolved.type == "cuda" else "gloo", timeout=datetime.timedelta(hours=2)
        )
    return DistInfo(rank, world_size, local_rank, resolved)


def close_distributed() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def barrier() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def all_reduce_mean(value: torch.Tensor) -> torch.Tensor:
    """Mean of ``value`` over processes (itself in a single process)."""
    if dist.is_available() and dist.is_initialized():
        value = value.detach().clone()
        dist.all_reduce(value)
        value /= dist.get_world_size()
    return value
