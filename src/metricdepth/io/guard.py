"""Outputs that never destroy data: which existing files a run may replace.

:class:`OutputGuard` is the one decision ``predict``, ``evaluate --save-predictions`` and ``synth``
share. A run replaces only files of its own kind that metricdepth wrote (a prediction's outputs for
``predict``; generated samples for ``synth``), never ground truth, never an input, never a folder,
never a file another item of the same run claimed, and never anything else unless the user says so.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from .writers import is_prediction_output

__all__ = ["OutputExistsError", "OutputGuard"]


class OutputExistsError(FileExistsError):
    """An output would replace a file the run may not replace; the message names it and the way out."""


def _identity(path: Path) -> tuple[int, int] | str | None:
    """What makes two paths the same file: (device, inode), or the resolved path where the file
    system reports no inode numbers."""
    try:
        stat = path.stat()
    except OSError:
        return None
    return (stat.st_dev, stat.st_ino) if stat.st_ino else str(path.resolve())


class OutputGuard:
    """Decides whether a set of output files may be written.

    Args:
        inputs: files the run reads; an output never replaces one.
        overwrite: replace files that ``replaceable`` does not accept too (``--overwrite``).
        replaceable: which existing files the run may replace without ``overwrite`` (default: a
            prediction's outputs, :func:`~metricdepth.io.writers.is_prediction_output`).
        option: the option that chose the output location, for messages (``--output``).
        overwrite_option: the option that allows replacing, for messages; None if the command has none.
        writer: what writes the files ``replaceable`` accepts, for messages.
    """

    def __init__(
        self,
        inputs: Iterable[Path] = (),
        overwrite: bool = False,
        *,
        replaceable: Callable[[Path], bool] = is_prediction_output,
        option: str = "--output",
        overwrite_option: str | None = "--overwrite",
        writer: str = "metricdepth predict",
    ) -> None:
        self.inputs = {identity for identity in map(_identity, inputs) if identity is not None}
        self.overwrite = overwrite
        self.replaceable = replaceable
        self.option, self.overwrite_option, self.writer = option, overwrite_option, writer
        self.claimed: dict[str, str] = {}

    @staticmethod
    def key(path: Path) -> str:
        """A path as the file system compares it: absolute, and case-folded (names that differ only in
        case are one file on macOS and Windows, so they never share an output folder)."""
        return os.path.normcase(os.path.abspath(path)).casefold()

    def check(self, targets: Sequence[Path], label: str) -> None:
        """Raise ``OutputExistsError`` if any target may not be written by ``label``; then claim them."""
        for target in targets:
            other = self.claimed.get(self.key(target))
            if other is not None and other != label:
                raise OutputExistsError(
                    f"output {target} is also an output of {other} (two inputs share a name); "
                    f"write them to separate {self.option} folders"
                )
            if not target.exists() and not target.is_symlink():
                continue
            if _identity(target) in self.inputs:
                raise OutputExistsError(
                    f"output {target} would overwrite an input; choose another {self.option}"
                )
            if target.is_dir():
                raise OutputExistsError(f"output {target} is a folder; choose another {self.option}")
            if not self.overwrite and not self.replaceable(target):
                way_out = f", or pass {self.overwrite_option} to replace it" if self.overwrite_option else ""
                raise OutputExistsError(
                    f"output {target} exists and was not written by {self.writer}; it is left as it is. "
                    f"Choose another {self.option}{way_out}"
                )
        for target in targets:
            self.claimed[self.key(target)] = label
