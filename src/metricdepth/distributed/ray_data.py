"""Ray Data batch inference: ``predict INPUTS -o OUT --ray [--ray-address ADDR] [--num-actors N]``.

The driver collects the items exactly as a single process does (:func:`~metricdepth.batch.collect_inputs`:
files, folders, patterns, file lists, Parquet manifests; the same output names), turns them into a
Ray Dataset of rows and maps it with :class:`DepthPredictor`, a model-holding class: an actor pool of
``num_actors`` actors, each loading the weights once and running
:func:`~metricdepth.batch.predict_files` on its batches of rows, so every output goes through the
same writers (atomic, never replacing inputs or files metricdepth did not write, ``--skip-existing``
resumes). Each actor takes one GPU (``num_gpus=1``) when the cluster has GPUs, else an equal share
of the CPUs, with as many torch threads. The rows that come back (input, output name, status,
message, files) are written by the driver to ``OUT/manifest.parquet`` (:data:`MANIFEST_COLUMNS`),
atomically, in item order.

Without ``address`` a local Ray instance is started for the run, bound to 127.0.0.1 only, without a
dashboard, and shut down afterwards. With it, the cluster at ``address`` is joined (``ray.init(address=...)``,
e.g. ``auto`` or ``ray://head:10001``); its nodes need metricdepth installed and the inputs, the
output folder and a local checkpoint at the same paths (a shared file system); a Hub checkpoint is
downloaded on each node.

Outputs are byte-identical to a single-process ``predict`` run: on the CPU the forward gives the
same bits at any thread count (:mod:`metricdepth.ops`), so one-thread actors match a multi-thread
process. Videos are not predicted here: each is a failed row of the manifest, and the images go on.
Without ``--ray-address`` a new local instance is started even where ``RAY_ADDRESS`` is set.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..batch import InputItem, predict_files, report_message
from ..io.writers import FORMATS, WRITER_MARK
from .sharding import is_video_item, launch_env, protect_inputs

__all__ = [
    "MANIFEST_COLUMNS",
    "MANIFEST_KIND",
    "MANIFEST_NAME",
    "DepthPredictor",
    "RayReport",
    "RaySetupError",
    "load_depth_pro",
    "predict_with_ray",
    "ray_option_problem",
    "run_cli",
]

MANIFEST_NAME = "manifest.parquet"
MANIFEST_KIND = "predict-manifest"
MANIFEST_COLUMNS = {
    "input": "the input as named (the JSON's input), or an argument that matched nothing",
    "path": "absolute path of the input file (null for an argument that matched nothing)",
    "output": "output name relative to the output folder, without suffix (posix; null if none)",
    "status": "written | skipped | failed",
    "message": "why it failed (null otherwise)",
    "files": "files written, relative to the output folder (posix)",
}
"""The results manifest's columns (strings, and ``files`` a list of strings)."""

_LOCAL_ONLY_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"
"""Ray's switch between a cluster-capable node (its IP on the network) and a local-only one (its
loopback address); read by ``ray._private.ray_constants`` at import."""


_QUIET_LOGGERS = {"ray.data": logging.WARNING, "ray.data._internal.progress": logging.ERROR}
"""Ray Data's execution notes and its note that its progress bars are off (the CLI shows its own)."""


_LOAD_FAILURE = "the model could not be loaded in a Ray actor: "
"""How an actor's result rows begin when its weights did not load; the driver stops the run with it."""


class RaySetupError(ValueError):
    """Ray cannot run the job (not installed, no cluster, no GPUs, unusable options, the model does not
    load in the actors): a usage error, reported before or instead of any output."""


@dataclass
class RayReport:
    """What a Ray run did; per-input rows are in :attr:`manifest`."""

    manifest: Path
    total: int
    written: int = 0
    skipped: int = 0
    failures: list[tuple[str, str]] = field(default_factory=list)
    num_actors: int = 0
    accelerator: str = "cpu"

    @property
    def ok(self) -> bool:
        return not self.failures


def load_depth_pro(
    checkpoint: str,
    device: str = "auto",
    precision: str = "auto",
    *,
    focal: str = "auto",
    compile_model: bool = False,
) -> tuple[Any, dict[str, Any]]:
    """A Depth Pro network set up as ``metricdepth predict`` sets it up, and the fields its outputs'
    JSON records (checkpoint, model, focal policy).

    Raises:
        CheckpointError, ValueError: weights that cannot be read, an unusable device or precision.
    """
    from ..models.depth_pro import DepthPro

    model = DepthPro.for_inference(checkpoint, device, precision, compile=compile_model)
    return model, {"checkpoint": checkpoint, "model": model.config.name, "focal_policy": focal}


@dataclass(frozen=True)
class _NamedInput(InputItem):
    """An input read from an absolute path (any node, any working folder), named as the user named it
    (messages, the JSON's ``input``), so outputs equal a single process's."""

    name: str = ""

    @property
    def label(self) -> str:
        return self.name or str(self.path)

    def load(self) -> tuple[Any, dict[str, Any]]:
        image, info = super().load()
        return image, {**info, "input": self.label}


def _result_schema() -> Any:
    import pyarrow as pa

    columns = [(name, pa.string()) for name in MANIFEST_COLUMNS if name != "files"]
    return pa.schema(
        [*columns, ("files", pa.list_(pa.string()))],
        metadata={"writer": WRITER_MARK, "kind": MANIFEST_KIND},
    )


def _row(
    name: str,
    path: str | None,
    output: str | None,
    status: str,
    message: str | None = None,
    files: Sequence[str] = (),
) -> dict[str, Any]:
    return {
        "input": name,
        "path": path,
        "output": output,
        "status": status,
        "message": message,
        "files": list(files),
    }


class DepthPredictor:
    """The model-holding class of the Ray Data map: one instance per actor.

    ``__init__`` loads the network once (:func:`load_depth_pro`) with ``threads`` torch threads and
    works in the driver's folder ``cwd`` where that folder exists; ``__call__`` runs
    :func:`~metricdepth.batch.predict_files` on a batch of rows (``input`` as named, its absolute
    ``path``, ``output`` name relative to ``output_dir``, ``stem`` as the driver named it) and returns
    one result row per input (:data:`MANIFEST_COLUMNS`). Inputs named relative to the driver's folder
    are read by that name where the folder is the same, so outputs and messages equal a single
    process's; elsewhere the absolute paths are used.
    """

    def __init__(
        self,
        *,
        checkpoint: str,
        output_dir: str,
        cwd: str | None = None,
        device: str = "auto",
        precision: str = "auto",
        focal: str = "auto",
        compile_model: bool = False,
        threads: int | None = None,
        options: dict[str, Any] | None = None,
    ) -> None:
        import torch

        if threads:
            torch.set_num_threads(threads)
        self.output_dir = Path(output_dir)
        self.options = {"focal": focal, **(options or {})}
        self.same_folder = cwd is not None and Path(cwd).is_dir()
        if self.same_folder:
            os.chdir(cwd)
        self.load_error: str | None = None
        try:
            self.model, self.extra = load_depth_pro(
                checkpoint, device, precision, focal=focal, compile_model=compile_model
            )
        except Exception as err:  # every row fails with the reason, rather than the actor dying
            self.model, self.extra = None, {}
            self.load_error = f"{_LOAD_FAILURE}{report_message(err, checkpoint)}"

    def _item(self, row: dict[str, Any]) -> InputItem:
        if self.same_folder and str(Path(row["input"]).absolute()) == row["path"]:
            return InputItem(Path(row["input"]), Path(row["stem"]))
        return _NamedInput(Path(row["path"]), self.output_dir / row["output"], row["input"])

    def __call__(self, batch: Any) -> Any:
        import pyarrow as pa

        rows = batch.to_pylist() if hasattr(batch, "to_pylist") else _numpy_rows(batch)
        items = [self._item(row) for row in rows]
        written: dict[str, list[Path]] = {}
        skipped: set[str] = set()
        failed: dict[str, str] = {}
        batch_error: Exception | None = None
        if self.load_error is None:
            try:
                report = predict_files(self.model, items, extra=self.extra, **self.options)
                written, skipped, failed = report.written, set(report.skipped), dict(report.failures)
            except Exception as err:  # the whole call failed (e.g. out of memory): each of its items fails
                batch_error = err
        results = []
        for row, item in zip(rows, items, strict=True):
            base = (row["input"], row["path"], row["output"])
            if item.label in written:
                files = [
                    Path(p).absolute().relative_to(self.output_dir).as_posix() for p in written[item.label]
                ]
                results.append(_row(*base, "written", files=files))
            elif item.label in skipped:
                results.append(_row(*base, "skipped"))
            else:
                message = failed.get(item.label) or self.load_error
                if message is None:  # not reported by predict_files: the whole call failed
                    message = report_message(
                        batch_error or RuntimeError("no result was reported"), item.label
                    )
                results.append(_row(*base, "failed", message))
        return pa.Table.from_pylist(results, schema=_result_schema())


def _numpy_rows(batch: dict[str, Any]) -> list[dict[str, Any]]:
    """Rows of a ``{column: array}`` batch (Ray's default batch format)."""
    names = list(batch)
    return [dict(zip(names, values, strict=True)) for values in zip(*(batch[n] for n in names), strict=True)]


def ray_option_problem(
    *,
    use_ray: bool,
    address: str | None,
    num_actors: int | None,
    relative_source: bool = False,
    datasets: Sequence[str] = (),
    device: str = "auto",
) -> str | None:
    """What is wrong with ``predict``'s Ray options (a usage error message), or None."""
    if not use_ray:
        given = [name for name, value in (("--ray-address", address), ("--num-actors", num_actors)) if value]
        verb = "apply" if len(given) > 1 else "applies"
        return f"{' and '.join(given)} only {verb} with --ray" if given else None
    if relative_source:
        return (
            "--ray runs Depth Pro checkpoints; run --relative / --rsa sources without --ray "
            "(or under torchrun)"
        )
    if datasets:
        return (
            "--ray takes image files, folders, patterns, file lists (.txt) and Parquet manifests, not "
            "--dataset; run benchmarks without --ray (or under torchrun)"
        )
    if device not in ("auto", "cpu", "cuda"):
        return f"--device {device} with --ray: use auto, cpu or cuda (each GPU actor has a GPU of its own)"
    if num_actors is not None and num_actors < 1:
        return f"--num-actors must be at least 1, got {num_actors}"
    with contextlib.suppress(ValueError):
        if launch_env().distributed:
            return "--ray under torchrun: use one or the other"
    return None


def _check_manifest_target(manifest: Path, overwrite: bool, items: Sequence[InputItem]) -> None:
    """Usage error if the results manifest would replace a file metricdepth did not write, or an input."""
    if not manifest.exists() and not manifest.is_symlink():
        return
    if manifest.is_dir():
        raise RaySetupError(f"{manifest} is a folder; choose another --output for the results manifest")
    resolved = manifest.resolve()
    if any(item.path.resolve() == resolved for item in items):
        raise RaySetupError(f"{manifest} is an input of this run; choose another --output")
    if overwrite or _is_results_manifest(manifest):
        return
    raise RaySetupError(
        f"{manifest} exists and was not written by metricdepth predict --ray; it is left as it is. "
        "Choose another --output, or pass --overwrite to replace it"
    )


def _is_results_manifest(path: Path) -> bool:
    """Whether ``path`` is a results manifest ``predict --ray`` wrote (its Parquet metadata says so)."""
    try:
        import pyarrow.parquet as pq

        metadata = pq.read_schema(path).metadata or {}
    except Exception:  # unreadable, not Parquet, no pyarrow: not ours
        return False
    return metadata.get(b"writer") == WRITER_MARK.encode() and metadata.get(b"kind") == MANIFEST_KIND.encode()


def _check_checkpoint(checkpoint: str) -> None:
    """Usage error for weights that cannot be found (a Hub checkpoint is downloaded into the cache)."""
    from ..models.depth_pro.weights import CheckpointError, resolve_checkpoint

    try:
        resolve_checkpoint(checkpoint)
    except (CheckpointError, ValueError, OSError) as err:
        raise RaySetupError(str(err)) from None


def _import_ray() -> Any:
    """``ray`` (with Ray Data and pyarrow), or a usage error naming the extra to install."""
    try:
        import pyarrow  # noqa: F401
        import ray
        import ray.data
    except ImportError as err:
        raise RaySetupError(
            f"--ray needs Ray Data and pyarrow ({err.name or err} is missing): pip install 'metricdepth[ray]'"
        ) from None
    return ray


@contextlib.contextmanager
def _local_only() -> Any:
    """Ray's local-only mode while a local instance runs: its node address is the loopback one, so
    every server it starts listens on 127.0.0.1 only (``ray.init(_node_ip_address="127.0.0.1")``
    alone is turned into the machine's network address). Restored afterwards."""
    import ray._private.ray_constants as constants

    saved = os.environ.get(_LOCAL_ONLY_ENV), constants.ENABLE_RAY_CLUSTER
    os.environ[_LOCAL_ONLY_ENV] = "0"  # for the processes Ray starts
    constants.ENABLE_RAY_CLUSTER = False  # what the variable sets when ray is imported
    try:
        yield
    finally:
        if saved[0] is None:
            os.environ.pop(_LOCAL_ONLY_ENV, None)
        else:
            os.environ[_LOCAL_ONLY_ENV] = saved[0]
        constants.ENABLE_RAY_CLUSTER = saved[1]


@contextlib.contextmanager
def _ray_session(address: str | None) -> Any:
    """Ray, connected to ``address`` or to a fresh local instance on 127.0.0.1 (shut down afterwards);
    an instance this process already runs is used as it is."""
    ray = _import_ray()
    if ray.is_initialized():
        yield ray
        return
    with contextlib.ExitStack() as stack:
        try:
            if address is None:
                stack.enter_context(_local_only())
                # address="local": a new instance even where RAY_ADDRESS names a cluster.
                ray.init(
                    address="local",
                    _node_ip_address="127.0.0.1",
                    include_dashboard=False,
                    logging_level=logging.WARNING,
                )
                stack.callback(ray.shutdown)
                node_ip = ray.util.get_node_ip_address()
                if node_ip not in ("127.0.0.1", "::1"):
                    raise RaySetupError(f"the local Ray instance would listen on {node_ip}, not on 127.0.0.1")
            else:
                _check_reachable(address)
                ray.init(address=address, logging_level=logging.WARNING)
                stack.callback(ray.shutdown)
        except RaySetupError:
            raise
        except Exception as err:
            where = f"--ray-address {address}" if address else "a local Ray instance"
            raise RaySetupError(f"{where}: Ray could not start ({_cause_message(err)})") from None
        yield ray


def _check_reachable(address: str, timeout: float = 10.0) -> None:
    """Usage error unless something answers at a ``HOST:PORT`` (or ``ray://HOST:PORT``) address; Ray
    itself would keep retrying for minutes. Other forms (``auto``) are left to Ray."""
    import socket

    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        return
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as err:
        raise RaySetupError(
            f"--ray-address {address}: nothing answers at {host}:{port} ({err.strerror or err}); "
            "is the Ray cluster running (ray start --head)?"
        ) from None


def _cause_message(err: BaseException) -> str:
    """The innermost message of an error Ray wrapped (actor and task errors carry the original)."""
    seen = set()
    while id(err) not in seen:
        seen.add(id(err))
        inner = getattr(err, "cause", None) or err.__cause__
        if not isinstance(inner, BaseException):
            break
        err = inner
    text = str(err).strip().splitlines()
    return text[-1] if text else type(err).__name__


def _rows_per_call(count: int, num_actors: int, batch_size: int) -> int:
    """Rows per actor call: about four calls per actor (balance), whole model batches, at most 256."""
    rows = math.ceil(count / (4 * num_actors)) if count else 1
    rows = max(batch_size, min(256, rows))
    return math.ceil(rows / batch_size) * batch_size


def predict_with_ray(
    items: Sequence[InputItem],
    output_dir: str | os.PathLike,
    *,
    checkpoint: str,
    missing: Sequence[tuple[str, str]] = (),
    device: str = "auto",
    precision: str = "auto",
    formats: Sequence[str] = FORMATS,
    f_px: float | None = None,
    focal: str = "auto",
    max_depth: float | None = None,
    overwrite: bool = False,
    skip_existing: bool = False,
    batch_size: int = 1,
    workers: int | None = None,
    writers: int = 2,
    compile_model: bool = False,
    address: str | None = None,
    num_actors: int | None = None,
    on_start: Callable[[RayReport], None] | None = None,
    on_result: Callable[[dict[str, Any]], None] | None = None,
) -> RayReport:
    """Predict ``items`` on a pool of Ray Data actors and write ``OUT/manifest.parquet``.

    Args:
        items: from :func:`~metricdepth.batch.collect_inputs` (output names decided there).
        missing: (argument, message) for inputs that matched nothing; recorded as failed rows.
        device: ``auto`` (GPU actors if the cluster has GPUs), ``cuda`` or ``cpu``.
        workers: DataLoader workers per actor (default 0 on CPU, 2 on a GPU).
        address: a Ray cluster (``ray.init(address=...)``); None starts a local instance on 127.0.0.1.
        num_actors: actors in the pool (default: one per GPU of the cluster, else 1).
        on_start: called on the driver once the actors are chosen (the report holds their number).
        on_result: called on the driver with each result row, in item order (progress).
        formats, f_px, focal, max_depth, overwrite, skip_existing, batch_size, writers, compile_model:
            as for ``predict`` / :func:`~metricdepth.batch.predict_files`.

    Raises:
        RaySetupError: Ray is missing or cannot start, the options do not fit the cluster, the model
            does not load in the actors, or the manifest would replace a file metricdepth did not write.
    """
    from ..io.atomic import atomic_path

    out = Path(output_dir).absolute()
    manifest = out / MANIFEST_NAME
    _check_manifest_target(manifest, overwrite, items)
    if device not in ("auto", "cpu", "cuda"):
        raise RaySetupError(f"--device {device} with --ray: use auto, cpu or cuda")
    videos = [item for item in items if is_video_item(item)]  # failed rows: the images go on
    images = [item for item in items if not is_video_item(item)]
    # Weights checked here first (on a local instance a Hub checkpoint is downloaded once, not per actor).
    if address is None or Path(checkpoint).expanduser().exists():
        _check_checkpoint(checkpoint)
    kept, refused = protect_inputs(images, items, formats)
    refused += [
        (item.label, f"{item.label}: --ray predicts images; run videos without --ray") for item in videos
    ]
    report = RayReport(manifest=manifest, total=len(items) + len(missing))

    with _ray_session(address) as ray:
        import pyarrow as pa
        import pyarrow.parquet as pq

        resources = ray.cluster_resources()
        gpus, cpus = int(resources.get("GPU", 0)), float(resources.get("CPU", 1)) or 1.0
        if device == "cuda" and not gpus:
            raise RaySetupError("--device cuda: the Ray cluster has no GPUs")
        on_gpu = gpus > 0 and device != "cpu"
        actors = num_actors or (gpus if on_gpu else 1)
        if on_gpu and actors > gpus:
            raise RaySetupError(f"--num-actors {actors}: the Ray cluster has {gpus} GPU(s), one per actor")
        loader_workers = workers if workers is not None else (2 if on_gpu else 0)
        if on_gpu:
            resources_per_actor = {"num_gpus": 1, "num_cpus": 1 + loader_workers}
            threads = None
        else:
            share = cpus / actors
            resources_per_actor = {"num_cpus": share if share < 1 else math.floor(share)}
            threads = max(1, math.floor(share))
        report.num_actors, report.accelerator = actors, "cuda" if on_gpu else "cpu"
        if on_start is not None:
            on_start(report)

        rows = []
        for item in kept:
            output = item.out_stem.absolute().relative_to(out).as_posix()
            rows.append(
                {
                    "input": item.label,
                    "path": str(item.path.absolute()),
                    "output": output,
                    "stem": str(item.out_stem),
                }
            )
        received: set[str] = set()

        def record(row: dict[str, Any]) -> None:
            received.add(row["input"])
            if row["status"] == "written":
                report.written += 1
            elif row["status"] == "skipped":
                report.skipped += 1
            else:
                report.failures.append((row["input"], row["message"]))
            if on_result is not None:
                on_result(row)

        schema = _result_schema()
        created = not out.exists()
        try:
            with atomic_path(manifest) as temporary, pq.ParquetWriter(temporary, schema) as writer:
                if rows:
                    per_call = _rows_per_call(len(rows), actors, batch_size)
                    table = pa.Table.from_pylist(rows)
                    blocks = [table.slice(start, per_call) for start in range(0, len(rows), per_call)]
                    constructor = {
                        "checkpoint": checkpoint,
                        "output_dir": str(out),
                        "cwd": os.getcwd(),
                        "device": "cuda" if on_gpu else "cpu",
                        "precision": precision,
                        "focal": focal,
                        "compile_model": compile_model,
                        "threads": threads,
                        "options": {
                            "formats": list(formats),
                            "f_px": f_px,
                            "max_depth": max_depth,
                            "overwrite": overwrite,
                            "skip_existing": skip_existing,
                            "batch_size": batch_size,
                            "workers": loader_workers,
                            "writers": writers,
                            "pad_batches": compile_model and on_gpu,
                        },
                    }
                    try:
                        with _data_context(ray):
                            dataset = ray.data.from_arrow(blocks).map_batches(
                                DepthPredictor,
                                fn_constructor_kwargs=constructor,
                                batch_size=per_call,
                                batch_format="pyarrow",
                                compute=ray.data.ActorPoolStrategy(size=actors),
                                **resources_per_actor,
                            )
                            for results in dataset.iter_batches(batch_format="pyarrow", batch_size=None):
                                results = results.cast(schema)
                                rows_back = results.to_pylist()
                                for row in rows_back:
                                    if row["status"] == "failed" and row["message"].startswith(_LOAD_FAILURE):
                                        raise RaySetupError(row["message"])
                                writer.write_table(results)
                                for row in rows_back:
                                    record(row)
                    except RaySetupError:
                        raise
                    except Exception as err:
                        if not received:  # nothing ran: the actors could not start or load the model
                            raise RaySetupError(
                                f"the Ray actors could not run: {_cause_message(err)}"
                            ) from None
                        message = f"not processed: the Ray job stopped ({_cause_message(err)})"
                        lost = [
                            _row(r["input"], r["path"], r["output"], "failed", f"{r['input']}: {message}")
                            for r in rows
                            if r["input"] not in received
                        ]
                        writer.write_table(pa.Table.from_pylist(lost, schema=schema))
                        for row in lost:
                            record(row)
                by_label = {item.label: item for item in items}
                extra_rows = [
                    _row(label, str(by_label[label].path.absolute()), None, "failed", message)
                    for label, message in refused
                ]
                extra_rows += [_row(name, None, None, "failed", message) for name, message in missing]
                if extra_rows:
                    writer.write_table(pa.Table.from_pylist(extra_rows, schema=schema))
                    for row in extra_rows:
                        record(row)
        except RaySetupError:
            if created and out.is_dir() and not any(out.iterdir()):
                out.rmdir()  # nothing was written: no empty output folder is left behind
            raise
    return report


@contextlib.contextmanager
def _data_context(ray: Any) -> Any:
    """Ray Data settings for the run: results in item order, no Ray progress bars (the CLI shows its
    own); restored afterwards."""
    context = ray.data.DataContext.get_current()
    saved = (context.execution_options.preserve_order, context.enable_progress_bars)
    context.execution_options.preserve_order = True
    context.enable_progress_bars = False
    loggers = {name: logging.getLogger(name) for name in _QUIET_LOGGERS}
    levels = {name: logger.level for name, logger in loggers.items()}
    for name, logger in loggers.items():
        logger.setLevel(_QUIET_LOGGERS[name])
    try:
        yield context
    finally:
        context.execution_options.preserve_order, context.enable_progress_bars = saved
        for name, logger in loggers.items():
            logger.setLevel(levels[name])


def run_cli(
    items: Sequence[InputItem],
    missing: Sequence[tuple[str, str]],
    output_dir: Path,
    *,
    say: Callable[..., None],
    progress: Callable[[], Any] | None = None,
    **options: Any,
) -> int:
    """``predict --ray``: run :func:`predict_with_ray`, print progress and the summary with ``say``, and
    return the exit code (1 if any input failed). Raises :class:`RaySetupError` for usage errors."""
    where = options.get("address") or "a local Ray instance (127.0.0.1)"
    with contextlib.ExitStack() as stack:
        bar: Any = None
        task: Any = None

        def on_start(report: RayReport) -> None:
            nonlocal bar, task
            plural = "s" if report.num_actors != 1 else ""
            say(f"Ray: {report.num_actors} {report.accelerator.upper()} actor{plural} on ", where)
            if progress is not None:
                bar = stack.enter_context(progress())
                task = bar.add_task("predicting", total=len(items))

        def on_result(row: dict[str, Any]) -> None:
            if row["path"] is None:  # an argument that matched nothing: listed in the summary
                return
            if row["status"] == "failed":
                say(("failed", "red"), " ", row["message"], **({"console": bar.console} if bar else {}))
            if bar is not None:
                bar.advance(task)

        report = predict_with_ray(
            items, output_dir, missing=missing, on_start=on_start, on_result=on_result, **options
        )
    skipped = f", {report.skipped} skipped (already done)" if report.skipped else ""
    say(f"{report.written} of {report.total} inputs written to ", str(output_dir), skipped)
    say("results manifest: ", str(report.manifest))
    if report.failures:
        say((f"{len(report.failures)} failed:", "red"))
        for _, message in report.failures:
            say("  ", message)
        return 1
    return 0
