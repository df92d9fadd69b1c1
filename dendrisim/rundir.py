"""One process owns a run directory; its files are written atomically and read back safely.

- :class:`RunLock`: an exclusive ``fcntl.flock`` on ``RUN/run.lock`` for the whole run
  (``--resume`` included); the file names the holder (pid, host, command), so a second
  process stops at once with an error naming it.
- :func:`check_new_run`: ``--out`` may not name a file, nor a directory holding a run,
  unless ``--overwrite`` is given (then the old run's files are removed, under the lock).
- :func:`write_atomic`: temporary file, fsync, rename; whatever the writer raises becomes a
  :class:`~dendrisim.errors.WriteError` naming the file, and no temporary file is left.
- :func:`load_tensors`: ``torch.load(weights_only=True)``: tensors and plain containers
  only; a damaged file or one holding anything else is a
  :class:`~dendrisim.errors.FileFormatError` naming the file, and no code in it runs.

Fault injection (for tests and the fuzzer): every write to a run directory passes
:func:`fault_point` with its kind (``"recording"``, ``"metrics"``, ``"checkpoint"``,
``"summary"``, ``"weights"``, ``"model"``, ``"run"``) and file, after the bytes are
handed to the library and before they are made durable. Set :data:`fault_hook` to a
callable that raises (``OSError(errno.ENOSPC, ...)``, a ``RuntimeError`` as
``torch.save`` raises on a full disk, ...) to simulate a fault there.
"""
from __future__ import annotations

import json
import os
import pickle
import socket
import sys
import zipfile
from pathlib import Path
from typing import Callable, Optional

from .errors import FileFormatError, RunDirError, WriteError

LOCK = "run.lock"
#: the files that make a directory a run (any one of them)
RUN_FILES = ("model.yaml", "run.json", "recording.h5", "checkpoint.pt", "metrics.csv", "summary.json",
             "weights.pt", "task.json")

#: test seam: ``fault_hook(kind, path)`` is called inside every write (see the module docstring)
fault_hook: Optional[Callable[[str, Path], None]] = None


def fault_point(kind: str, path: Path) -> None:
    """Where a write can be made to fail (a no-op unless :data:`fault_hook` is set)."""
    if fault_hook is not None:
        fault_hook(kind, Path(path))


# ---------------------------------------------------------------------- the lock
class RunLock:
    """An exclusive lock on a run directory, held until :meth:`release` (or process exit)."""

    def __init__(self, run_dir: Path, fd: int):
        self.run_dir, self.fd = run_dir, fd

    @classmethod
    def acquire(cls, run_dir: Path, *, argv: Optional[list[str]] = None) -> "RunLock":
        import fcntl

        run_dir = Path(run_dir)
        path = run_dir / LOCK
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as err:
            raise RunDirError(f"{path}: cannot create the run's lock file ({err.strerror or err})") from None
        if not _flock(fd, fcntl.LOCK_EX, tries=5):  # a reader's brief probe (is_live) may hold it a moment
            holder = _read_holder(fd)
            os.close(fd)
            raise RunDirError(
                f"{run_dir} is in use by another process ({holder}); one process owns a run directory "
                "at a time: wait for it to end, or choose another --out") from None
        info = {"pid": os.getpid(), "host": socket.gethostname(), "command": list(argv or sys.argv)}
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, (json.dumps(info) + "\n").encode(), 0)
        except OSError:  # a full disk: the lock holds all the same, only its label is missing
            pass
        return cls(run_dir, fd)

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)  # closing the descriptor drops the flock
            self.fd = None


def _flock(fd: int, kind: int, *, tries: int = 1) -> bool:
    import fcntl
    import time

    for k in range(tries):
        try:
            fcntl.flock(fd, kind | fcntl.LOCK_NB)
            return True
        except OSError:
            if k + 1 < tries:
                time.sleep(0.05)
    return False


def is_live(run_dir: Path) -> bool:
    """Whether a process holds the run directory's lock now (a run is writing it)."""
    try:
        fd = os.open(Path(run_dir) / LOCK, os.O_RDONLY)
    except OSError:
        return False
    try:
        import fcntl

        return not _flock(fd, fcntl.LOCK_SH)
    finally:
        os.close(fd)  # drops the probe's shared lock


def _read_holder(fd: int) -> str:
    try:
        info = json.loads(os.pread(fd, 4096, 0).decode() or "{}")
        return f"pid {info['pid']} on {info['host']}: {' '.join(map(str, info['command']))[:200]}"
    except (OSError, ValueError, KeyError, TypeError):
        return "its pid is not written yet"


# ---------------------------------------------------------------------- --out
def is_run(path: Path) -> bool:
    return path.is_dir() and any((path / name).exists() for name in RUN_FILES)


def check_out(path: Path) -> None:
    """Before anything is created: ``--out`` may not be a file (or under one)."""
    for p in (path, *path.parents):
        if p.exists() and not p.is_dir():
            raise RunDirError(f"--out {path}: {p} is a file, not a directory; name a new run directory")


def clear_old_run(run_dir: Path, *, overwrite: bool) -> None:
    """Under the lock: refuse a directory that holds a run, or (``overwrite``) remove its files."""
    if not is_run(run_dir):
        return
    if not overwrite:
        found = [name for name in RUN_FILES if (run_dir / name).exists()]
        raise RunDirError(
            f"{run_dir} already holds a run ({', '.join(found)}); a finished run is never replaced silently: "
            f"continue it with --resume {run_dir}, replace it with --overwrite, or choose another --out")
    for name in (*RUN_FILES, *(n + ".tmp" for n in RUN_FILES), "recording.h5.reserve", "recording.h5.resuming"):
        (run_dir / name).unlink(missing_ok=True)


def remove_leftovers(run_dir: Path) -> None:
    """Under the lock: the temporary files a killed process may have left (none is ever read)."""
    for name in (*(n + ".tmp" for n in RUN_FILES), "recording.h5.resuming", "recording.h5.compacting"):
        (run_dir / name).unlink(missing_ok=True)


def inside(path: Path, root: Path) -> Path:
    """``path`` if it lies inside ``root`` (both resolved); a RunDirError otherwise."""
    resolved, base = path.resolve(), root.resolve()
    if resolved != base and base not in resolved.parents:
        raise RunDirError(f"the run directory {path} would lie outside {root}; model names may not hold "
                          "'/', '..' or an absolute path")
    return path


# ---------------------------------------------------------------------- writes
def _fsync_path(path: Path, *, directory: bool = False) -> None:
    fd = os.open(path, os.O_RDONLY | (os.O_DIRECTORY if directory else 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_file(path: Path) -> None:
    """Make a file's written bytes durable (fsync through a descriptor of its own)."""
    _fsync_path(path)


def write_atomic(path: Path, kind: str, write: Callable[[Path], None]) -> None:
    """``write(tmp)``, then fsync and rename over ``path``; on any failure the old ``path``
    stays as it was, the temporary file is removed, and a WriteError names the file."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    try:
        write(tmp)
        fault_point(kind, path)
        _fsync_path(tmp)
        os.replace(tmp, path)
    except Exception as err:  # noqa: BLE001 - torch.save raises RuntimeError on a full disk
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass
        raise WriteError(f"writing {path} failed ({_describe(err)}); the previous version of the file, if any, "
                         "is kept") from err
    try:
        _fsync_path(path.parent, directory=True)
    except OSError:  # some file systems cannot sync a directory; the rename is done all the same
        pass


def write_text(path: Path, kind: str, text: str) -> None:
    write_atomic(path, kind, lambda tmp: tmp.write_text(text))


def _describe(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0] if text else ''}"[:300]


# ---------------------------------------------------------------------- reads
def load_tensors(path: Path, *, what: str = "checkpoint") -> dict:
    """``torch.load(path, weights_only=True)`` with every failure as one FileFormatError."""
    import torch

    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as err:
        raise FileFormatError(f"{path}: cannot read the {what} ({err.strerror or err})") from None
    if size == 0:
        raise FileFormatError(f"{path}: the {what} is empty (0 bytes); it was cut off while written")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        first = str(err).strip().splitlines()
        detail = next((ln for ln in first if "GLOBAL" in ln or "Unsupported" in ln), first[0] if first else "")
        raise FileFormatError(
            f"{path}: the {what} holds something other than tensors and plain containers ({detail.strip()[:200]}); "
            "dendrisim never runs code from a file it reads, so it is refused. Use a file written by dendrisim"
        ) from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError, OSError, KeyError, IndexError,
            AttributeError, TypeError, UnicodeDecodeError) as err:
        raise FileFormatError(f"{path}: the {what} is damaged or not a file torch.save wrote ({_describe(err)}); "
                              "it cannot be read back") from None
    if not isinstance(state, dict):
        raise FileFormatError(f"{path}: the {what} holds a {type(state).__name__}, not the dict dendrisim writes")
    return state
