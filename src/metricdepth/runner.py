"""The pipelined batch runner: read in DataLoader workers → infer on the device → write in threads.

:func:`run_pipeline` keeps the device busy: while the network runs on one batch, worker processes read,
decode and resize the next images (for a canonical network such as :class:`DepthPro`, each image
becomes its (3, S, S) network input there, in pinned memory when the model is on CUDA) and writer
threads encode and write the outputs of earlier ones. Post-processing (metric scale, resizing back to
each image's size) runs on the model's device; predictions come back to the CPU once per image.

It knows nothing of output files or reports: :func:`metricdepth.batch.predict_files` gives it three
callbacks (``claim`` an item's outputs, ``save`` a prediction, report an item ``done``). Results are
reported in item order. An item that fails (unreadable file, unmet focal policy, non-finite output,
a write error) is reported with its error and the others go on; an interrupt lets the writes already
running finish (each image's outputs appear together or not at all) and drops the queued ones.
"""

from __future__ import annotations

import dataclasses
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset

from .inference import canonical_predictions, coerce_images, network_input, resolve_focal
from .io.images import LoadedImage

__all__ = ["Loaded", "is_canonical_network", "run_pipeline"]

Claim = Callable[[Any, "dict[str, Any] | None"], "Path | None"]
Save = Callable[[Any, Any, Any, Path, "dict[str, Any]"], "list[Path]"]
Done = Callable[[Any, "list[Path] | Exception | None"], None]


_PENDING = object()
"""An item's slot before its result is known."""


def is_canonical_network(model: Any) -> bool:
    """Whether ``model`` (or the module a ``torch.compile`` wrapper holds) is a Depth Pro network, whose
    batches :func:`run_pipeline` runs itself (inputs made in workers, post-processing on the device)."""
    from .models.depth_pro import DepthPro

    return isinstance(getattr(model, "_orig_mod", model), DepthPro)


@dataclass
class Loaded:
    """What a worker made of one item: the image, its info, the network input (or the error)."""

    position: int
    image: LoadedImage | None = None
    info: dict[str, Any] | None = None
    input: torch.Tensor | None = None
    error: Exception | None = None
    row: int = -1
    """Row of ``input`` in the batch's stacked inputs."""


class _ItemReader(Dataset):
    """Item ``i`` → :class:`Loaded`; errors are returned, not raised, so one bad file fails one item."""

    def __init__(self, items: Sequence[Any], input_size: int | None) -> None:
        self.items = items
        self.input_size = input_size

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, position: int) -> Loaded:
        item = self.items[position]
        try:
            image, info = item.load()
            x = None
            if self.input_size is not None:
                pixels = coerce_images(image).pixels[0]
                x = network_input(pixels, self.input_size, torch.device("cpu"), torch.float32)
            return Loaded(position, image, info, x)
        except Exception as err:  # reported for this item only
            return Loaded(position, error=_transportable(err, item.label))


def _transportable(err: Exception, label: str) -> Exception:
    """The error if it survives pickling (worker → main process), else a ValueError with its message."""
    import pickle

    from .batch import report_message

    try:
        pickle.loads(pickle.dumps(err))
        return err
    except Exception:
        return ValueError(report_message(err, label))


def _collate(records: list[Loaded]) -> dict[str, Any]:
    inputs = [r.input for r in records if r.input is not None]
    row = 0
    for record in records:
        if record.input is not None:
            record.row, row = row, row + 1
            record.input = None  # held once, in the stacked tensor
    return {"records": records, "inputs": torch.stack(inputs) if inputs else None}


def _to_cpu(prediction: Any) -> Any:
    """The prediction with its tensors on the CPU (a no-op there)."""
    changes = {
        name: value.cpu()
        for name in ("depth", "inverse_depth", "intrinsics")
        if isinstance(value := getattr(prediction, name, None), torch.Tensor) and value.device.type != "cpu"
    }
    return dataclasses.replace(prediction, **changes) if changes else prediction


def run_pipeline(
    model: Any,
    items: Sequence[Any],
    *,
    claim: Claim,
    save: Save,
    done: Done,
    f_px: float | None = None,
    focal: str = "auto",
    infer_options: Callable[[Any, dict[str, Any]], dict[str, Any]] | None = None,
    batch_size: int = 1,
    workers: int = 0,
    writers: int = 2,
    pad_batches: bool = False,
) -> None:
    """Run ``model`` over ``items`` (objects with ``label`` and ``load() -> (LoadedImage, info)``).

    Args:
        claim: ``(item, info) -> output stem | None``: checks an item's outputs before any model work
            (raises to fail it; None skips it). Called before loading for items with an ``out_stem``,
            else with the loaded ``info``.
        save: ``(item, prediction, rgb, stem, info) -> paths``: writes one image's outputs (in a writer
            thread when ``writers`` > 0).
        done: ``(item, paths | error | None)``: called in this thread, in item order (None: skipped).
        infer_options: per-item keywords for ``model.infer`` (sources other than canonical networks).
        batch_size, workers, writers, pad_batches: see :func:`metricdepth.batch.predict_files`.
    """
    canonical = is_canonical_network(model) and infer_options is None
    device = model.device if canonical else None
    # One slot per item, filled as results arrive and reported strictly in item order.
    slots: list[Any] = [_PENDING] * len(items)
    pending: list[tuple[int, Path | None]] = []  # (item index, stem if already claimed)

    def claimed(index: int, info: dict[str, Any] | None) -> Path | None:
        """The item's output stem, or None once its refusal (error) or skip (None) is in its slot."""
        try:
            stem = claim(items[index], info)
        except Exception as err:
            slots[index] = err
            return None
        if stem is None:
            slots[index] = None
        return stem

    for index, item in enumerate(items):
        stem = None
        if hasattr(item, "out_stem") and (stem := claimed(index, None)) is None:
            continue
        pending.append((index, stem))
    cursor = 0
    writing: deque[Future] = deque()

    def drain(block_beyond: int) -> None:
        """Report the finished results at the front, in item order; while more than ``block_beyond``
        writes are unfinished, wait for the oldest."""
        nonlocal cursor
        while cursor < len(slots) and slots[cursor] is not _PENDING:
            result = slots[cursor]
            if isinstance(result, Future):
                if not result.done() and sum(not f.done() for f in writing) <= block_beyond:
                    return
                try:
                    result = result.result()
                except Exception as err:
                    result = err
            slots[cursor] = None
            done(items[cursor], result)
            cursor += 1
        while writing and writing[0].done():
            writing.popleft()

    drain(0)
    if not pending:
        return
    loader = DataLoader(
        _ItemReader([items[index] for index, _ in pending], model.img_size if canonical else None),
        batch_size=batch_size,
        num_workers=workers,
        collate_fn=_collate,
        pin_memory=bool(device is not None and device.type == "cuda"),
        prefetch_factor=1 if workers else None,  # each worker one batch ahead: host memory stays bounded
    )
    batches: Any = None
    pool = ThreadPoolExecutor(writers, thread_name_prefix="metricdepth-writer") if writers else None
    try:
        while True:
            try:
                batches = iter(loader) if batches is None else batches  # starts the workers
                batch = next(batches)
            except StopIteration:
                break
            except Exception as err:  # workers cannot start or died (out of memory, /dev/shm full): the rest
                # fail, named, rather than the run stopping with no report
                for index, _ in pending:
                    if slots[index] is _PENDING:
                        slots[index] = RuntimeError(
                            f"{items[index].label}: not processed: image loading failed ({err})"
                        )
                break
            ready: list[tuple[int, Path, Loaded]] = []
            for record in batch["records"]:
                index, stem = pending[record.position]
                if record.error is not None:
                    slots[index] = record.error
                    continue
                # A benchmark sample: its name (and so its outputs) is known only now.
                if stem is None and (stem := claimed(index, record.info)) is None:
                    continue
                if canonical and focal == "exif" and f_px is None and record.image.focal_px is None:
                    try:  # fails without a forward pass
                        resolve_focal(record.image.rgb.shape[:2], policy="exif", name=items[index].label)
                    except ValueError as err:
                        slots[index] = err
                        continue
                ready.append((index, stem, record))
            results = (
                _infer_canonical_batch(model, ready, batch["inputs"], f_px, focal, batch_size, pad_batches)
                if canonical
                else [
                    _infer_one(model, items[index], record, f_px, focal, infer_options)
                    for index, _, record in ready
                ]
            )
            for (index, stem, record), result in zip(ready, results, strict=True):
                if isinstance(result, Exception):
                    slots[index] = result
                    continue
                assert record.image is not None and record.info is not None
                args = (items[index], result, record.image.rgb, stem, record.info)
                if pool is None:
                    try:
                        slots[index] = save(*args)
                    except Exception as err:
                        slots[index] = err
                else:
                    slots[index] = pool.submit(save, *args)
                    writing.append(slots[index])
            # The last image's prediction and pixels are the writer's alone from here on.
            ready = results = batch = record = args = result = None  # type: ignore[assignment]
            drain(block_beyond=max(2 * batch_size, 2 * writers))
        drain(0)
    finally:
        shutdown = getattr(batches, "_shutdown_workers", None)
        if shutdown is not None:  # worker processes end now, not at garbage collection
            shutdown()
        if pool is not None:  # on an interrupt: running writes finish, queued ones are dropped
            pool.shutdown(wait=True, cancel_futures=True)


def _infer_canonical_batch(
    model: Any,
    ready: list[tuple[Any, Path, Loaded]],
    inputs: torch.Tensor | None,
    f_px: float | None,
    focal: str,
    batch_size: int,
    pad_batches: bool,
) -> list[Any]:
    if not ready:
        return []
    assert inputs is not None
    try:
        rows = [record.row for _, _, record in ready]
        x = inputs if rows == list(range(inputs.shape[0])) else inputs[rows]
        if inputs.is_pinned() and not x.is_pinned():
            x = x.pin_memory()
        images = coerce_images([record.image for _, _, record in ready])
        results = canonical_predictions(
            model,
            images,
            f_px=f_px,
            focal=focal,  # type: ignore[arg-type]
            batch_size=len(ready),
            inputs=x,
            pad_to=batch_size if pad_batches else None,
        )
    except Exception as err:  # the forward itself failed (e.g. out of memory): every image of the batch
        return [_without_frames(err)] * len(ready)
    return [r if isinstance(r, Exception) else _to_cpu(r) for r in results]


def _infer_one(
    model: Any,
    item: Any,
    record: Loaded,
    f_px: float | None,
    focal: str,
    infer_options: Callable[[Any, dict[str, Any]], dict[str, Any]] | None,
) -> Any:
    try:
        assert record.image is not None and record.info is not None
        options = infer_options(item, record.info) if infer_options is not None else {}
        return _to_cpu(model.infer(record.image, f_px=f_px, focal=focal, **options))
    except Exception as err:
        return _without_frames(err)


def _without_frames(err: Exception) -> Exception:
    """The error without its traceback, whose frames would keep the failed batch's tensors (device
    memory after an out-of-memory error) alive until the error is reported."""
    return err.with_traceback(None)
