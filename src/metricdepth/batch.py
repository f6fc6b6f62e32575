"""Run a model over many image files: gather inputs, name outputs, keep going past bad files."""

from __future__ import annotations

import glob
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .io.images import IMAGE_EXTENSIONS, load_image
from .io.writers import FORMATS, OUTPUT_SUFFIXES, output_path, save_prediction

__all__ = ["BatchReport", "InputItem", "collect_inputs", "output_paths", "predict_files", "report_message"]


@dataclass(frozen=True)
class InputItem:
    """One image to process and where its outputs go (``out_stem`` + format suffix)."""

    path: Path
    out_stem: Path


@dataclass
class BatchReport:
    """What a batch did: files written per input, and failures as (input, message naming the input)."""

    written: dict[Path, list[Path]] = field(default_factory=dict)
    failures: list[tuple[str, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures


def collect_inputs(
    inputs: Sequence[str | os.PathLike], output_dir: str | os.PathLike
) -> tuple[list[InputItem], list[tuple[str, str]]]:
    """Expand files, folders (recursive) and glob patterns into images with output names.

    Files named explicitly are always tried, whatever their extension. Folders and patterns yield
    image files only (by extension), without the images an earlier run wrote (``X_depth.png``,
    ``X_inverse_depth.png`` beside ``X.json``). Outputs of a folder mirror its sub-folders. When
    two inputs would share any output file, the later one gets its extension (``photo_jpg``) and
    then a counter appended.

    Returns:
        The items, and (input, message naming it) for arguments that matched nothing.
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
        elif arg.exists():
            found.append((arg, Path(arg.stem)))
        elif glob.has_magic(str(raw)):
            matches = sorted(Path(p) for p in glob.glob(str(arg), recursive=True) if _is_image_input(Path(p)))
            if not matches:
                missing.append((str(raw), f"{raw}: pattern matched no files"))
            found.extend((p, Path(p.stem)) for p in matches)
        else:
            missing.append((str(raw), f"{raw}: file not found"))

    items: list[InputItem] = []
    seen_inputs: set[Path] = set()
    used: set[Path] = set()  # every output file already claimed
    for path, rel in found:
        if path.resolve() in seen_inputs:
            continue
        seen_inputs.add(path.resolve())
        stem = out / rel
        if not used.isdisjoint(output_paths(stem)):
            stem = stem.with_name(f"{path.stem}_{path.suffix.lstrip('.').lower()}")
        base, n = stem, 2
        while not used.isdisjoint(output_paths(stem)):
            stem, n = base.with_name(f"{base.name}_{n}"), n + 1
        used.update(output_paths(stem))
        items.append(InputItem(path=path, out_stem=stem))
    return items, missing


def output_paths(out_stem: Path, formats: Sequence[str] = FORMATS) -> list[Path]:
    """The files :func:`~metricdepth.io.writers.save_prediction` writes for ``out_stem``."""
    return [output_path(out_stem, fmt) for fmt in formats]


def predict_files(
    model: Any,
    items: Sequence[InputItem],
    *,
    formats: Sequence[str] = FORMATS,
    f_px: float | None = None,
    max_depth: float | None = None,
    extra: dict[str, Any] | None = None,
    on_done: Callable[[InputItem, Exception | None], None] | None = None,
) -> BatchReport:
    """Predict and save each item; a failing item is recorded and the batch goes on.

    Args:
        model: anything with ``infer(image, f_px=...) -> Prediction`` (e.g. :class:`DepthPro`).
        f_px: focal length for every image, pixels (default: EXIF, else predicted).
        on_done: called after each item with the error, or None on success (progress bars).
    """
    unknown = set(formats) - set(FORMATS)
    if unknown:
        raise ValueError(f"unknown output formats {sorted(unknown)}; choose from {', '.join(FORMATS)}")
    report = BatchReport()
    inputs = {item.path.resolve() for item in items}
    for item in items:
        error: Exception | None = None
        try:
            clash = next((t for t in output_paths(item.out_stem, formats) if t.resolve() in inputs), None)
            if clash is not None:
                raise FileExistsError(
                    f"output {clash} would overwrite an input image; choose another --output"
                )
            image = load_image(item.path)
            prediction = model.infer(image, f_px=f_px)
            info = {"input": str(item.path), **(extra or {})}
            report.written[item.path] = save_prediction(
                prediction, image.rgb, item.out_stem, formats=formats, max_depth=max_depth, extra=info
            )
        except Exception as err:  # one bad file must not stop the batch
            error = err
            report.failures.append((str(item.path), report_message(err, item.path)))
        if on_done is not None:
            on_done(item, error)
    return report


def report_message(err: Exception, path: Path) -> str:
    """One line naming the input and what went wrong."""
    message = str(err) or type(err).__name__
    return message if str(path) in message else f"{path}: {type(err).__name__}: {message}"


def _is_image_input(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in IMAGE_EXTENSIONS and not _is_earlier_output(path)


def _is_earlier_output(path: Path) -> bool:
    for fmt in ("depth16", "color"):
        suffix = OUTPUT_SUFFIXES[fmt]
        if path.name.endswith(suffix) and path.with_name(path.name[: -len(suffix)] + ".json").is_file():
            return True
    return False
