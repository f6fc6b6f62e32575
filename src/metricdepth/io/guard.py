"""Outputs that never destroy data: which existing files a run may replace.

:class:`OutputGuard` is the one decision ``predict``, ``evaluate --save-predictions`` and ``synth``
share: a file metricdepth did not write, an input, a folder, or a file another item of the same run
already claimed is never replaced.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path

from .writers import is_metricdepth_output

__all__ = ["OutputExistsError", "OutputGuard"]


class OutputExistsError(FileExistsError):
    """An output would replace a file metricdepth did not write (or an input)."""


def _identity(path: Path) -> tuple[int, int] | None:
    try:
        stat = path.stat()
    except OSError:
        return None
    return stat.st_dev, stat.st_ino


class OutputGuard:
    """Decides whether a set of output files may be written: one place for predict and evaluate.

    Refuses (``OutputExistsError`` naming the file and what to do) a target that is an input file,
    a folder, a file metricdepth did not write (unless ``overwrite``), or a file another item of the
    same run already claimed. Paths are compared as the file system would (case-folded where it is).
    """

    def __init__(self, inputs: Iterable[Path] = (), overwrite: bool = False) -> None:
        self.inputs = {identity for identity in map(_identity, inputs) if identity is not None}
        self.overwrite = overwrite
        self.claimed: dict[str, str] = {}

    @staticmethod
    def key(path: Path) -> str:
        """A path as the file system compares it (absolute, case-folded where names are)."""
        return os.path.normcase(os.path.abspath(path)).casefold()

    def check(self, targets: Sequence[Path], label: str) -> None:
        """Raise ``OutputExistsError`` if any target may not be written by ``label``; then claim them."""
        for target in targets:
            other = self.claimed.get(self.key(target))
            if other is not None and other != label:
                raise OutputExistsError(
                    f"output {target} is also an output of {other} (two inputs share a name); "
                    "predict them into separate --output folders"
                )
            if not target.exists() and not target.is_symlink():
                continue
            if _identity(target) in self.inputs:
                raise OutputExistsError(
                    f"output {target} would overwrite an input image; choose another --output"
                )
            if target.is_dir():
                raise OutputExistsError(f"output {target} is a folder; choose another --output")
            if not self.overwrite and not is_metricdepth_output(target):
                raise OutputExistsError(
                    f"output {target} exists and was not written by metricdepth; it is left as it is. "
                    "Choose another --output, or pass --overwrite to replace it"
                )
        for target in targets:
            self.claimed[self.key(target)] = label
