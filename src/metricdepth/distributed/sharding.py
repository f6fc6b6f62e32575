"""``torchrun``-sharded predict: each process takes a disjoint, deterministic share of the items.

``torchrun --nproc_per_node N -m metricdepth predict INPUTS -o OUT`` starts N copies of ``predict``.
Each collects the same items (same inputs, same output names as one process), keeps every N-th
one starting at its rank (:func:`shard`), runs on ``cuda:LOCAL_RANK`` (GPUs) or the CPU, and writes
through the same writers. At the end the ranks' reports are gathered over a gloo process group
(:class:`RankShard`); rank 0 prints the merged summary and exits 1 if any item of any rank failed.

:func:`launch_env` reads what ``torchrun`` sets (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``) and
:func:`rank_device` picks a process's device; training (:mod:`metricdepth.train.distributed`) uses
both too. Importing this module imports neither torch nor Ray.
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    import torch

    from ..batch import BatchReport

__all__ = [
    "MERGE_TIMEOUT",
    "LaunchEnv",
    "RankShard",
    "launch_env",
    "protect_inputs",
    "rank_device",
    "shard",
]

T = TypeVar("T")

MERGE_TIMEOUT = datetime.timedelta(days=7)
"""How long a rank that finished its share waits for the others at the end (gloo timeout)."""


@dataclass(frozen=True)
class LaunchEnv:
    """This process's place among the processes ``torchrun`` started (one process: 0, 1, 0)."""

    rank: int
    world_size: int
    local_rank: int

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def launch_env(environ: Mapping[str, str] | None = None) -> LaunchEnv:
    """``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK`` as ``torchrun`` sets them (defaults: one process).

    Raises:
        ValueError: a variable that is not an integer, or a rank outside ``[0, WORLD_SIZE)``.
    """
    environ = os.environ if environ is None else environ
    values = {}
    for name, default in (("RANK", 0), ("WORLD_SIZE", 1), ("LOCAL_RANK", 0)):
        text = environ.get(name, "").strip()
        try:
            values[name] = int(text) if text else default
        except ValueError:
            raise ValueError(f"environment variable {name}={text!r} is not an integer") from None
    rank, world_size, local_rank = values["RANK"], values["WORLD_SIZE"], values["LOCAL_RANK"]
    if world_size < 1 or not 0 <= rank < world_size or local_rank < 0:
        raise ValueError(
            f"inconsistent torchrun environment: RANK={rank}, WORLD_SIZE={world_size}, "
            f"LOCAL_RANK={local_rank}"
        )
    return LaunchEnv(rank, world_size, local_rank)


def rank_device(device: str, env: LaunchEnv, option: str = "--device") -> torch.device:
    """The device of this process: ``cuda:LOCAL_RANK`` for ``auto``/``cuda`` where CUDA is available,
    else the CPU for ``auto``; any other device as given. The current CUDA device is set to it.

    Raises:
        ValueError: an unknown or unavailable device, or a numbered GPU (``cuda:1``) under a
            multi-process launch, which would put every process on that one GPU.
    """
    import torch

    from ..device import resolve_device

    if device == "auto":
        resolved = torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")
    else:
        resolved = resolve_device(device)
    if env.distributed and resolved.type == "cuda" and resolved.index is not None:
        raise ValueError(
            f"{option}={device} under torchrun would put every process on one GPU; use cuda or auto "
            "(each process takes the GPU of its LOCAL_RANK)"
        )
    if resolved.type == "cuda" and resolved.index is None:
        resolved = torch.device("cuda", env.local_rank % max(torch.cuda.device_count(), 1))
    if resolved.type == "cuda":
        torch.cuda.set_device(resolved)
    return resolved


def shard(items: Sequence[T], rank: int, world_size: int) -> list[T]:
    """Items ``rank, rank + world_size, rank + 2·world_size, ...``: the shares of ranks
    ``0 .. world_size - 1`` are disjoint, cover every item once, and differ in size by at most one."""
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} is not in [0, {world_size})")
    return list(items[rank::world_size])


def protect_inputs(
    items: Sequence[Any], all_items: Sequence[Any], formats: Sequence[str]
) -> tuple[list[Any], list[tuple[str, str]]]:
    """Refuse, before any model work, the items whose outputs would replace an input of the whole run.

    :func:`~metricdepth.batch.predict_files` protects the inputs it is given; a rank or a Ray actor
    is given a share of them only. This checks ``items`` against the inputs of ``all_items`` with
    the same :class:`~metricdepth.io.guard.OutputGuard` (and so the same message). Images only: the
    outputs of benchmark samples are named when they are read, videos have outputs of their own
    (their pipeline guards them).

    Returns:
        The items that may go on, and (label, message) for those refused.
    """
    from ..batch import InputItem, output_paths, report_message
    from ..io.guard import OutputExistsError, OutputGuard

    guard = OutputGuard([item.path for item in all_items if isinstance(item, InputItem)], overwrite=True)
    kept, refused = [], []
    for item in items:
        if not isinstance(item, InputItem) or is_video_item(item):
            kept.append(item)
            continue
        try:
            guard.check(output_paths(item.out_stem, formats), item.label)
        except OutputExistsError as err:
            refused.append((item.label, report_message(err, item.label)))
            continue
        kept.append(item)
    return kept, refused


def is_video_item(item: Any) -> bool:
    """Whether ``item`` is a video file for the clip pipeline (:func:`metricdepth.video.is_clip_item`)."""
    try:
        from ..video import is_clip_item
    except ImportError:  # no video support: every item is an image
        return False
    return is_clip_item(item)


class RankShard:
    """This process's share of a ``torchrun``-launched ``predict``, and the merge of all shares.

    Use :meth:`join` (None outside a multi-process launch), :meth:`select` the items, run them,
    then :meth:`merge` the report on every rank (a collective: every rank must call it).
    """

    def __init__(self, env: LaunchEnv, device: torch.device) -> None:
        self.env = env
        self.device = device
        self._items: Sequence[Any] = ()
        self._refused: list[tuple[str, str]] = []

    @classmethod
    def join(cls, device: str = "auto", environ: Mapping[str, str] | None = None) -> RankShard | None:
        """Under ``torchrun`` with more than one process: this rank's device, joined to a gloo process
        group (gloo on GPUs too: only the small reports travel). None for a single process."""
        env = launch_env(environ)
        if not env.distributed:
            return None
        resolved = rank_device(device, env)
        import torch.distributed as dist

        if not dist.is_initialized():
            dist.init_process_group(backend="gloo", timeout=MERGE_TIMEOUT)
        return cls(env, resolved)

    @property
    def rank(self) -> int:
        return self.env.rank

    @property
    def world_size(self) -> int:
        return self.env.world_size

    @property
    def is_main(self) -> bool:
        """Rank 0, which prints the merged summary."""
        return self.env.rank == 0

    def select(self, items: Sequence[Any], formats: Sequence[str]) -> list[Any]:
        """This rank's items (:func:`shard`), less those whose outputs would replace an input of another
        rank's items (reported as failures by :meth:`merge`)."""
        self._items = items
        mine, self._refused = protect_inputs(shard(items, self.rank, self.world_size), items, formats)
        return mine

    def merge(self, report: BatchReport) -> BatchReport:
        """Every rank's report in one, in item order (collective; every rank gets the merged report).
        The process group is closed afterwards."""
        import torch.distributed as dist

        from ..batch import BatchReport

        mine = {
            "written": list(report.written.items()),
            "skipped": list(report.skipped),
            "failures": [*self._refused, *report.failures],
            "cleaned": list(report.cleaned),
        }
        gathered: list[Any] = [None] * self.world_size
        dist.all_gather_object(gathered, mine)
        dist.destroy_process_group()
        order = {item.label: position for position, item in enumerate(self._items)}

        def position(label: str) -> int:
            return order.get(label, len(order))

        written: dict[str, list[Path]] = {}
        for label, paths in sorted(
            (entry for part in gathered for entry in part["written"]), key=lambda e: position(e[0])
        ):
            written[label] = paths
        return BatchReport(
            written=written,
            skipped=sorted((label for part in gathered for label in part["skipped"]), key=position),
            failures=sorted((f for part in gathered for f in part["failures"]), key=lambda f: position(f[0])),
            cleaned=[path for part in gathered for path in part["cleaned"]],
        )
