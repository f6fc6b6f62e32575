"""One process per device under ``torchrun`` (gloo on CPU, NCCL on CUDA), or a single process.

``torchrun --nproc_per_node N -m metricdepth train ...`` sets ``RANK``, ``WORLD_SIZE`` and
``LOCAL_RANK``; :func:`init_distributed` reads them, joins the process group and picks this
process's device. Without them the run is one process and nothing distributed is touched.
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from ..device import resolve_device

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
    """Join the ``torchrun`` process group if there is one; the device for this process."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device == "auto":
        resolved = torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")
    else:
        resolved = resolve_device(device)
    if world_size > 1 and resolved.type == "cuda" and resolved.index is not None:
        raise ValueError(
            f"run.device={device} under torchrun would put every process on one GPU; use cuda or auto "
            "(each process takes the GPU of its LOCAL_RANK)"
        )
    if resolved.type == "cuda" and resolved.index is None:
        resolved = torch.device("cuda", local_rank % max(torch.cuda.device_count(), 1))
    if resolved.type == "cuda":
        torch.cuda.set_device(resolved)
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
