"""Atomic writes: a file appears complete or not at all, and a group of files appears together or not at all.

:func:`atomic_path` writes one file through a temporary name in the same folder and renames it into
place. :class:`FileGroup` stages several files (one image's outputs) and commits them together: the
renames run with SIGINT/SIGTERM/SIGHUP deferred, so a signal can never leave some of the files without the
others; if anything fails, the files already committed are removed again. A hard kill (SIGKILL) can
only leave hidden ``.NAME.PID.HEX.tmp`` files, which :func:`remove_stale_temporaries` clears the next
time the same files are written.
"""

from __future__ import annotations

import contextlib
import glob
import os
import re
import secrets
import signal
import socket
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path

__all__ = ["FileGroup", "atomic_path", "remove_stale_temporaries", "temporary_name"]

_TMP_PATTERN = re.compile(r"^\.(?P<inner>.+)\.(?:(?P<host>[A-Za-z0-9_-]+)-)?(?P<pid>\d+)\.[0-9a-f]{8}\.tmp$")
"""``.NAME.HOST-PID.HEX.tmp`` (``HOST-`` missing in the names of older versions)."""
_HOST = re.sub(r"[^A-Za-z0-9_-]", "_", socket.gethostname()) or "localhost"
"""This machine's name in temporaries: on a shared file system, other machines' PIDs are not ours to judge."""
_HELD_SIGNALS = {signal.SIGINT, signal.SIGTERM} | ({signal.SIGHUP} if hasattr(signal, "SIGHUP") else set())


def temporary_name(path: str | os.PathLike) -> Path:
    """A fresh hidden name beside ``path`` (``.NAME.HOST-PID.HEX.tmp``); nothing is created."""
    path = Path(path)
    return path.with_name(f".{path.name}.{_HOST}-{os.getpid()}.{secrets.token_hex(4)}.tmp")


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it onto ``path``, else delete it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # A fresh name, not a pre-created file: the writer creates it with the usual umask permissions.
    tmp = temporary_name(path)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def _signals_deferred() -> Iterator[None]:
    """Hold SIGINT/SIGTERM/SIGHUP until the block ends, then deliver them to the previous handlers.

    Handlers, not a signal mask: a process-directed signal may be taken by any thread, and only the
    main thread runs Python handlers. Outside the main thread signals cannot be touched; the block
    then runs as it is.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pending: list[int] = []
    previous = {}
    for signum in _HELD_SIGNALS:
        previous[signum] = signal.signal(signum, lambda number, frame: pending.append(number))
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        for signum in pending:
            signal.raise_signal(signum)


class FileGroup:
    """Files that appear together or not at all.

    >>> with FileGroup() as group:                      # doctest: +SKIP
    ...     write_a(group.stage("out/a.npz"))
    ...     write_b(group.stage("out/a.ply"))
    ... # both renamed into place here; on an exception neither is

    ``stage(path)`` returns a temporary path to write ``path``'s content to. On a clean exit every
    staged file is renamed onto its target with signals held back; on an exception (a signal turned
    into one included) the temporaries are deleted and no target is touched.
    """

    def __init__(self) -> None:
        self._staged: list[tuple[Path, Path]] = []

    def stage(self, path: str | os.PathLike) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = temporary_name(path)
        self._staged.append((tmp, path))
        return tmp

    @property
    def targets(self) -> list[Path]:
        return [target for _, target in self._staged]

    def discard(self) -> None:
        for tmp, _ in self._staged:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        self._staged.clear()

    def commit(self) -> list[Path]:
        """Rename every staged file into place, all or none; returns the targets.

        If a rename fails (a full disk, a vanished folder), every target of the group is removed,
        the older files it would have replaced included: no image is left with a mixed set.
        """
        with _signals_deferred():
            try:
                for tmp, target in self._staged:
                    os.replace(tmp, target)
            except BaseException:
                for _, target in self._staged:
                    with contextlib.suppress(OSError):
                        if not target.is_dir():
                            os.unlink(target)
                self.discard()
                raise
        targets = self.targets
        self._staged.clear()
        return targets

    def __enter__(self) -> FileGroup:
        return self

    def __exit__(self, kind, value, traceback) -> None:
        if kind is None:
            self.commit()
        else:
            self.discard()


def remove_stale_temporaries(targets: Iterable[str | os.PathLike]) -> list[Path]:
    """Delete the temporaries of ``targets`` that killed processes of this machine left beside them.

    Only hidden ``.NAME.HOST-PID.HEX.tmp`` files whose ``NAME`` is exactly a target's name (or a
    temporary of it), written on this machine (``HOST``; names without one are older versions' and
    local) by processes that no longer run, are removed; only the targets' folders are read.
    """
    removed = []
    for target in map(Path, targets):
        if not target.parent.is_dir():
            continue
        for path in target.parent.glob(f".*{glob.escape(target.name)}.*.tmp"):
            if not _stale_temporary_of(path.name, target.name) or not path.is_file():
                continue
            with contextlib.suppress(OSError):
                path.unlink()
                removed.append(path)
    return removed


def _stale_temporary_of(name: str, target: str) -> bool:
    """Whether file ``name`` is a temporary of ``target`` (at any depth) left by a dead local process."""
    match = _TMP_PATTERN.match(name)
    if match is None or match["host"] not in (None, _HOST) or _process_alive(int(match["pid"])):
        return False
    inner = match["inner"]
    return inner == target or (_TMP_PATTERN.match(inner) is not None and _temporary_of(inner, target))


def _temporary_of(name: str, target: str) -> bool:
    match = _TMP_PATTERN.match(name)
    if match is None:
        return False
    return match["inner"] == target or _temporary_of(match["inner"], target)


def _process_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    if os.name == "nt":  # os.kill(pid, 0) sends CTRL_C_EVENT there: ask the process table instead
        import ctypes

        kernel32 = ctypes.windll.kernel32  # type: ignore[attr-defined]
        handle = kernel32.OpenProcess(0x1000, False, pid)  # PROCESS_QUERY_LIMITED_INFORMATION
        if not handle:
            return False
        code = ctypes.c_ulong()
        try:
            return bool(kernel32.GetExitCodeProcess(handle, ctypes.byref(code))) and code.value == 259
        finally:  # 259: STILL_ACTIVE
            kernel32.CloseHandle(handle)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    return True
