"""Run a depth source over many images: gather inputs, name outputs, protect files, keep going past bad items.

Inputs are image files (:func:`collect_inputs`: files, folders, glob patterns) or the samples of a
benchmark reader (:func:`dataset_items`: stored under each sample's name, so ``evaluate --predictions``
finds them). :func:`predict_files` never replaces a file metricdepth did not write, resumes with
``skip_existing``, and writes each image's outputs all together or not at all.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .io.atomic import remove_stale_temporaries
from .io.guard import OutputExistsError, OutputGuard
from .io.images import IMAGE_EXTENSIONS, LoadedImage, load_image
from .io.writers import (
    FORMATS,
    OUTPUT_SUFFIXES,
    is_legacy_prediction_image,
    is_prediction_output,
    output_path,
    save_prediction,
)

__all__ = [
    "BatchReport",
    "InputItem",
    "OutputExistsError",
    "OutputGuard",
    "SampleItem",
    "all_finished",
    "check_finite",
    "collect_inputs",
    "dataset_items",
    "output_paths",
    "predict_files",
    "report_message",
    "sample_stem",
]


@dataclass(frozen=True)
class InputItem:
    """One image file to process and where its outputs go (``out_stem`` + format suffix)."""

    path: Path
    out_stem: Path

    @property
    def label(self) -> str:
        return str(self.path)

    def load(self) -> tuple[LoadedImage, dict[str, Any]]:
        return load_image(self.path), {"input": str(self.path)}


@dataclass(frozen=True)
class SampleItem:
    """Sample ``index`` of a benchmark reader; its outputs go to ``out_dir / sample name``.

    The image is used in its stored pixel order, with the EXIF focal length the reader found
    (``exif_focal_px``), exactly as evaluation sees it.
    """

    dataset: Any
    index: int
    out_dir: Path
    spec: str

    @property
    def label(self) -> str:
        return f"{self.spec} #{self.index}"

    def load(self) -> tuple[LoadedImage, dict[str, Any]]:
        sample = self.dataset[self.index]
        image = LoadedImage(rgb=sample["image"], focal_px=sample.get("exif_focal_px"))
        return image, {"sample": sample["name"], "dataset": self.spec}


@dataclass
class BatchReport:
    """What a batch did: files written per input, skipped inputs, failures as (input, message)."""

    written: dict[str, list[Path]] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)
    failures: list[tuple[str, str]] = field(default_factory=list)
    cleaned: list[Path] = field(default_factory=list)
    """Temporaries of killed runs that were removed."""

    @property
    def ok(self) -> bool:
        return not self.failures


def _glob_base(pattern: str) -> Path:
    """The folder a glob pattern starts from: its leading components without wildcards."""
    parts = Path(pattern).expanduser().parts
    fixed = []
    for part in parts:
        if glob.has_magic(part):
            break
        fixed.append(part)
    return Path(*fixed) if fixed else Path(".")


def collect_inputs(
    inputs: Sequence[str | os.PathLike], output_dir: str | os.PathLike
) -> tuple[list[InputItem], list[tuple[str, str]]]:
    """Expand files, folders (recursive) and glob patterns into images with output names.

    Files named explicitly are always tried, whatever their extension. Folders and patterns yield
    image files only (by extension), never files metricdepth wrote (whatever ``--formats`` wrote
    them). Outputs of folders and patterns mirror their sub-folders below the folder (or the
    pattern's fixed leading part). When two inputs would share any output file, the later one gets
    its extension (``photo_jpg``) and then a counter appended.

    Two kinds of file name other files (:func:`read_listing`), for collections too large for a
    command line:

    * a **file list** (``.txt``): one image path per line, relative to the list's folder (or
      absolute); blank lines and lines starting with ``#`` are ignored;
    * a **Parquet manifest** (``.parquet``, needs pyarrow: ``metricdepth[ray]``): a ``path`` column
      (relative to the manifest's folder, or absolute) and optionally an ``output`` column, the
      output name without extension relative to ``output_dir`` (sub-folders allowed). The results
      manifest of ``predict --ray`` is such a manifest.

    Listed images are tried like files named explicitly. Without an ``output`` name, a relative
    entry's outputs mirror its path (``sub/a.png`` → ``OUT/sub/a.*``, as for a folder holding the
    list); an absolute one (or one reaching up with ``..``) is named by its stem.

    Returns:
        The items, and (input, message naming it) for arguments that matched nothing (and list
        entries that name no file).
    """
    out = Path(output_dir)
    found: list[tuple[Path, Path]] = []  # (file, relative output stem)
    missing: list[tuple[str, str]] = []
    for raw in inputs:
        arg = Path(raw).expanduser()
        if arg.is_dir():
            files = sorted(p for p in arg.rglob("*") if _is_image_input(p))
            if not files:
                missing.append((str(raw), f"{raw}: folder holds no image files"))
            found.extend((p, p.relative_to(arg).with_suffix("")) for p in files)
        elif arg.is_file() and arg.suffix.lower() in LISTING_SUFFIXES:  # a file list or a Parquet manifest
            listed, problems = read_listing(arg)
            if not listed and not problems:
                problems = [(str(raw), f"{raw}: lists no files")]
            found.extend(listed)
            missing.extend(problems)
        elif arg.exists():
            found.append((arg, Path(arg.stem)))
        elif glob.has_magic(str(raw)):
            base = _glob_base(str(raw))
            matches = sorted(Path(p) for p in glob.glob(str(arg), recursive=True) if _is_image_input(Path(p)))
            if not matches:
                missing.append((str(raw), f"{raw}: pattern matched no files"))
            found.extend((p, p.relative_to(base).with_suffix("")) for p in matches)
        else:
            missing.append((str(raw), f"{raw}: file not found"))

    items: list[InputItem] = []
    seen_inputs: set[Path] = set()
    used: set[str] = set()  # every output file already claimed, as the file system compares names

    def keys(stem: Path) -> set[str]:
        return {OutputGuard.key(p) for p in output_paths(stem)}

    for path, rel in found:
        if path.resolve() in seen_inputs:
            continue
        seen_inputs.add(path.resolve())
        stem = out / rel
        if not used.isdisjoint(keys(stem)):
            stem = stem.with_name(f"{path.stem}_{path.suffix.lstrip('.').lower()}")
        base, n = stem, 2
        while not used.isdisjoint(keys(stem)):
            stem, n = base.with_name(f"{base.name}_{n}"), n + 1
        used.update(keys(stem))
        items.append(InputItem(path=path, out_stem=stem))
    return items, missing


LISTING_SUFFIXES = (".txt", ".parquet")
"""Inputs that name other files: a file list and a Parquet manifest (:func:`collect_inputs`)."""
MANIFEST_PATH_COLUMN = "path"
MANIFEST_OUTPUT_COLUMN = "output"


def read_listing(
    listing: str | os.PathLike,
) -> tuple[list[tuple[Path, Path]], list[tuple[str, str]]]:
    """The files a file list (``.txt``) or a Parquet manifest (``.parquet``) names (see
    :func:`collect_inputs`), each with its output name relative to the output folder.

    Returns:
        (file, output name) for every entry naming an existing file, and (entry, message naming the
        list, the line or row, and the problem) for the others; an unreadable list is one problem.
    """
    listing = Path(listing)
    try:
        if listing.suffix.lower() == ".parquet":
            entries = _manifest_entries(listing)
        else:
            entries = _file_list_entries(listing)
    except ValueError as err:
        return [], [(str(listing), str(err))]
    found: list[tuple[Path, Path]] = []
    problems: list[tuple[str, str]] = []
    for where, text, output in entries:
        if not text:
            problems.append((where, f"{where}: no path"))
            continue
        entry = Path(text).expanduser()
        path = entry if entry.is_absolute() else listing.parent / entry
        try:
            if output is not None:
                stem = _listed_output_name(output)
            elif entry.is_absolute() or ".." in entry.parts:
                stem = Path(entry.stem)
            else:  # mirrors the entry's place below the list, as a folder's outputs do
                stem = entry.with_suffix("")
        except ValueError as err:
            problems.append((text, f"{where}: {err}"))
            continue
        if path.is_dir():
            problems.append((text, f"{where}: {text}: is a folder; a list names image files"))
        elif not path.exists():
            problems.append((text, f"{where}: {text}: file not found"))
        else:
            found.append((path, stem))
    return found, problems


def _file_list_entries(listing: Path) -> list[tuple[str, str, str | None]]:
    """(where, path text, None) per entry of a file list: one path per line, ``#`` comment lines."""
    try:
        text = listing.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise ValueError(f"{listing}: not a text file list (UTF-8, one path per line)") from None
    except OSError as err:
        raise ValueError(f"{listing}: cannot read the file list ({err.strerror or err})") from None
    entries = []
    for number, line in enumerate(text.splitlines(), start=1):
        entry = line.strip()
        if entry and not entry.startswith("#"):
            entries.append((f"{listing} line {number}", entry, None))
    return entries


def _manifest_entries(manifest: Path) -> list[tuple[str, str, str | None]]:
    """(where, path, output name or None) per row of a Parquet manifest."""
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise ValueError(
            f"{manifest}: reading a Parquet manifest needs pyarrow: pip install 'metricdepth[ray]'"
        ) from None
    try:
        names = pq.read_schema(manifest).names
        if MANIFEST_PATH_COLUMN not in names:
            raise ValueError(
                f"{manifest}: a manifest needs a {MANIFEST_PATH_COLUMN!r} column of image paths "
                f"(its columns: {', '.join(names) or 'none'})"
            )
        columns = [c for c in (MANIFEST_PATH_COLUMN, MANIFEST_OUTPUT_COLUMN) if c in names]
        table = pq.read_table(manifest, columns=columns)
    except (OSError, pa.ArrowException) as err:
        raise ValueError(f"{manifest}: cannot read the Parquet manifest ({err})") from None
    for column in columns:
        kind = table.schema.field(column).type
        checks = (pa.types.is_string, pa.types.is_large_string, pa.types.is_null)
        checks += (pa.types.is_string_view,) if hasattr(pa.types, "is_string_view") else ()
        if not any(check(kind) for check in checks):
            raise ValueError(f"{manifest}: column {column!r} holds {kind}, not text")
    paths = table.column(MANIFEST_PATH_COLUMN).to_pylist()
    outputs = table.column(MANIFEST_OUTPUT_COLUMN).to_pylist() if MANIFEST_OUTPUT_COLUMN in columns else []
    count = len(paths)
    return [
        (f"{manifest} row {i + 1} of {count}", path or "", outputs[i] if outputs else None)
        for i, path in enumerate(paths)
    ]


def _listed_output_name(name: str) -> Path:
    """A manifest's output name: relative, below the output folder, not empty."""
    relative = Path(name)
    if not name or relative.is_absolute() or ".." in relative.parts or relative.name in ("", "."):
        raise ValueError(f"output name {name!r} does not name a file below the output folder")
    return relative


def dataset_items(dataset: Any, output_dir: str | os.PathLike, spec: str) -> list[SampleItem]:
    """One item per sample of an opened benchmark reader (:func:`metricdepth.evaluation.open_benchmark`)."""
    return [SampleItem(dataset, index, Path(output_dir), spec) for index in range(len(dataset))]


def output_paths(out_stem: Path, formats: Sequence[str] = FORMATS) -> list[Path]:
    """The files :func:`~metricdepth.io.writers.save_prediction` writes for ``out_stem``."""
    return [output_path(out_stem, fmt) for fmt in formats]


def sample_stem(out_dir: Path, name: str) -> Path:
    """Where the outputs of sample ``name`` go: ``out_dir / name`` (names may hold sub-folders)."""
    relative = Path(name)
    if not name or relative.is_absolute() or ".." in relative.parts or relative.name in ("", "."):
        raise ValueError(f"sample name {name!r} cannot name an output file below {out_dir}")
    return out_dir / relative


def predict_files(
    model: Any,
    items: Sequence[InputItem | SampleItem],
    *,
    formats: Sequence[str] = FORMATS,
    f_px: float | None = None,
    focal: str = "auto",
    max_depth: float | None = None,
    extra: dict[str, Any] | None = None,
    overwrite: bool = False,
    skip_existing: bool = False,
    on_done: Callable[[Any, Exception | None], None] | None = None,
    infer_options: Callable[[Any, dict[str, Any]], dict[str, Any]] | None = None,
    batch_size: int = 1,
    workers: int = 0,
    writers: int = 2,
    pad_batches: bool = False,
) -> BatchReport:
    """Predict and save each item through a pipeline; a failing item is recorded and the batch goes on.

    Three stages overlap (:mod:`metricdepth.runner`): ``workers`` DataLoader processes read and decode
    the images and, for a canonical network (:class:`DepthPro`), resize them to the network input
    (pinned memory on CUDA); the calling thread runs the network on ``batch_size`` images at a time
    (images of any sizes share a batch) and post-processes on the model's device; ``writers`` threads
    write the outputs. Each image's outputs appear all together or not at all, also when the run is
    interrupted (in-flight writes finish, queued ones are dropped). Sources other than canonical
    networks (RSA, relative models) are run one image at a time through their ``infer``.

    Before any model work for an item: an output that would replace an input, or a file metricdepth
    did not write (unless ``overwrite``), fails the item with a message naming the file; with
    ``skip_existing``, an item whose requested outputs metricdepth already wrote is skipped.

    Args:
        model: a :class:`~metricdepth.inference.DepthSource` (e.g. :class:`DepthPro`).
        f_px: focal length for every image, pixels (default: per ``focal``).
        focal: "auto" (user, EXIF, predicted), "exif" or "predicted".
        on_done: called (in the calling thread) after each item with the error, or None on success or
            skip (progress bars).
        infer_options: ``(item, info) -> dict`` of extra keywords for ``model.infer`` per item (e.g. the
            caption of an RSA pipeline); an exception fails that item only.
        batch_size: images per forward pass of a canonical network.
        workers: DataLoader worker processes (0: load in the calling thread).
        writers: threads writing outputs (0: write in the calling thread).
        pad_batches: pad the last, smaller batch to ``batch_size`` (one input shape for compiled
            models and CUDA graphs).
    """
    from .runner import run_pipeline

    unknown = set(formats) - set(FORMATS)
    if unknown:
        raise ValueError(f"unknown output formats {sorted(unknown)}; choose from {', '.join(FORMATS)}")
    if batch_size < 1 or workers < 0 or writers < 0:
        raise ValueError(
            f"batch_size must be ≥ 1, workers and writers ≥ 0 (got {batch_size}, {workers}, {writers})"
        )
    report = BatchReport()
    guard = OutputGuard([item.path for item in items if isinstance(item, InputItem)], overwrite)

    def claim(item: InputItem | SampleItem, info: dict[str, Any] | None) -> Path | None:
        """Check an item's targets before model work: its output stem, or None when it is skipped."""
        stem = item.out_stem if isinstance(item, InputItem) else sample_stem(item.out_dir, info["sample"])
        targets = output_paths(stem, formats)
        guard.check(targets, item.label)
        report.cleaned.extend(remove_stale_temporaries(targets))
        if skip_existing and _finished(targets):
            report.skipped.append(item.label)
            return None
        return stem

    def save(item: Any, prediction: Any, rgb: Any, stem: Path, info: dict[str, Any]) -> list[Path]:
        check_finite(prediction, item.label)
        return save_prediction(
            prediction, rgb, stem, formats=formats, max_depth=max_depth, extra={**info, **(extra or {})}
        )

    def done(item: Any, result: list[Path] | Exception | None) -> None:
        error = result if isinstance(result, Exception) else None
        if error is not None:
            report.failures.append((item.label, report_message(error, item.label)))
        elif result is not None:
            report.written[item.label] = result
        if on_done is not None:
            on_done(item, error)

    run_pipeline(
        model,
        items,
        claim=claim,
        save=save,
        done=done,
        f_px=f_px,
        focal=focal,
        infer_options=infer_options,
        batch_size=batch_size,
        workers=workers,
        writers=writers,
        pad_batches=pad_batches,
    )
    return report


def _finished(targets: Sequence[Path]) -> bool:
    return all(is_prediction_output(target) for target in targets)


def all_finished(items: Sequence[InputItem | SampleItem], formats: Sequence[str] = FORMATS) -> bool:
    """Whether every item is a file whose requested outputs a prediction already wrote (then
    ``--skip-existing`` needs no model at all). Samples are never known finished before they are read."""
    return all(
        isinstance(item, InputItem) and _finished(output_paths(item.out_stem, formats)) for item in items
    )


def check_finite(prediction: Any, label: str) -> None:
    """Refuse to write maps with NaN / inf / non-positive depth (broken weights), naming the input."""
    import torch

    values = prediction.depth if prediction.is_metric else prediction.inverse_depth
    bad = ~torch.isfinite(values)
    if prediction.is_metric:
        bad |= values <= 0
    count = int(bad.sum())
    if count:
        raise ValueError(
            f"{label}: the model produced {count} of {values.numel()} non-finite or non-positive depth "
            "values (broken or incompatible weights?); nothing was written for it"
        )


def report_message(err: Exception, label: str | os.PathLike) -> str:
    """One line naming the input and what went wrong (the error's type only where the message alone
    may not say it: anything but the library's own file and value errors)."""
    label = str(label)
    message = str(err) or type(err).__name__
    if label in message:
        return message
    return (
        f"{label}: {message}"
        if isinstance(err, (OutputExistsError, ValueError))
        else (f"{label}: {type(err).__name__}: {message}")
    )


def _is_image_input(path: Path) -> bool:
    """A file a folder or pattern picks up: an image, or a video for the clip pipeline (by extension),
    never an output metricdepth wrote (a depth video included)."""
    from .io.video import VIDEO_EXTENSIONS, is_depth_video

    suffix = path.suffix.lower()
    if suffix in VIDEO_EXTENSIONS:
        return path.is_file() and not (path.name.endswith("_depth.mp4") and is_depth_video(path))
    return path.is_file() and suffix in IMAGE_EXTENSIONS and not _is_earlier_output(path)


def _is_earlier_output(path: Path) -> bool:
    """An image metricdepth wrote as a prediction (depth PNG, colour map), whatever run or
    ``--formats`` wrote it, this version or an older one."""
    suffixes = tuple(OUTPUT_SUFFIXES[fmt] for fmt in ("depth16", "color"))
    if not path.name.endswith(suffixes):
        return False
    return is_prediction_output(path) or is_legacy_prediction_image(path)
