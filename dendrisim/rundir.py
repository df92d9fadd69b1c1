"""One process owns a run directory; its files are written atomically and read back safely.

- :class:`RunLock`: an exclusive ``fcntl.flock`` on the run directory itself (its own
  descriptor) and on ``RUN/run.lock`` for the whole run (``--resume`` included); the file
  names the holder (pid, host, command), so a second process stops at once with an error
  naming it. Deleting ``run.lock`` does not free the directory: its lock is on the folder.
- :func:`refuse_links`: no file of a run (:data:`ALL_FILES`) may be a symbolic link or
  anything but a regular file; every file is created anew (``O_EXCL``) or opened with
  ``O_NOFOLLOW``, so nothing is ever written through a link out of the folder or onto
  another file.
- :func:`check_new_run`: ``--out`` may not name a file, nor a directory holding a run,
  unless ``--overwrite`` is given (then the old run's files are removed, under the lock).
- :func:`write_atomic`: temporary file (created exclusively), fsync, rename; whatever the
  writer raises becomes a :class:`~dendrisim.errors.WriteError` naming the file, and no
  temporary file is left. With ``checksum=True`` (checkpoints, ``weights.pt``) the sha256 of
  the bytes goes into a sidecar ``FILE.sha256``.
- :func:`load_tensors`: ``torch.load(weights_only=True)``: tensors and plain containers
  only; a damaged file, one holding anything else, or one whose bytes do not match its
  sidecar checksum is a :class:`~dendrisim.errors.FileFormatError` naming the file, and no
  code in it runs.

Fault injection (for tests and the fuzzer): every write to a run directory passes
:func:`fault_point` with its kind (``"recording"``, ``"metrics"``, ``"checkpoint"``,
``"summary"``, ``"weights"``, ``"model"``, ``"run"``) and file, after the bytes are
handed to the library and before they are made durable. Set :data:`fault_hook` to a
callable that raises (``OSError(errno.ENOSPC, ...)``, a ``RuntimeError`` as
``torch.save`` raises on a full disk, ...) to simulate a fault there.
"""
from __future__ import annotations

import errno
import hashlib
import json
import os
import pickle
import socket
import stat
import sys
import zipfile
from pathlib import Path
from typing import BinaryIO, Callable, Optional

from .errors import FileFormatError, RunDirError, WriteError

LOCK = "run.lock"
#: the files that make a directory a run (any one of them)
RUN_FILES = ("model.yaml", "run.json", "recording.h5", "checkpoint.pt", "metrics.csv", "summary.json",
             "weights.pt", "task.json", "checkpoint.pt.sha256", "weights.pt.sha256")
#: the suffix of a checksum sidecar (``checkpoint.pt.sha256``: see :func:`write_atomic`)
CHECKSUM_SUFFIX = ".sha256"
#: the recorder's own files beside ``recording.h5`` (a run's temporaries, never read back)
RECORDING_EXTRAS = ("recording.h5.reserve", "recording.h5.resuming", "recording.h5.compacting")
#: every name a run writes in its directory: none may be a symbolic link (:func:`refuse_links`)
ALL_FILES = (LOCK, *RUN_FILES, *(n + ".tmp" for n in RUN_FILES), *RECORDING_EXTRAS)

#: test seam: ``fault_hook(kind, path)`` is called inside every write (see the module docstring)
fault_hook: Optional[Callable[[str, Path], None]] = None


def fault_point(kind: str, path: Path) -> None:
    """Where a write can be made to fail (a no-op unless :data:`fault_hook` is set)."""
    if fault_hook is not None:
        fault_hook(kind, Path(path))


# ---------------------------------------------------------------------- the lock
class RunLock:
    """An exclusive lock on a run directory, held until :meth:`release` (or process exit).

    Two ``flock`` locks: one on the directory's own descriptor, which holds whatever happens
    to the files in it (deleting ``run.lock`` does not free the directory), and one on
    ``run.lock``, the file that names the holder (pid, host, command). On a file system that
    cannot lock a directory (NFS, say) the lock on ``run.lock`` is the only one."""

    def __init__(self, run_dir: Path, fd: int, dir_fd: Optional[int] = None):
        self.run_dir, self.fd, self.dir_fd = run_dir, fd, dir_fd

    @classmethod
    def acquire(cls, run_dir: Path, *, argv: Optional[list[str]] = None) -> "RunLock":
        import fcntl

        run_dir = Path(run_dir)
        path = run_dir / LOCK
        dir_fd = _open_dir(run_dir)
        if not _flock(dir_fd, fcntl.LOCK_EX, tries=5, unsupported=True):
            holder = _read_holder_at(run_dir)
            os.close(dir_fd)
            raise _in_use(run_dir, holder)
        try:
            fd = open_nofollow(path, os.O_RDWR | os.O_CREAT, what="the run's lock file")
        except BaseException:
            if dir_fd is not None:
                os.close(dir_fd)
            raise
        if not _flock(fd, fcntl.LOCK_EX, tries=5):  # a reader's brief probe (is_live) may hold it a moment
            holder = _read_holder(fd)
            os.close(fd)
            if dir_fd is not None:
                os.close(dir_fd)
            raise _in_use(run_dir, holder)
        lock = cls(run_dir, fd, dir_fd)
        try:
            refuse_links(run_dir)
        except BaseException:
            lock.release()
            raise
        info = {"pid": os.getpid(), "host": socket.gethostname(), "command": list(argv or sys.argv)}
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, (json.dumps(info) + "\n").encode(), 0)
        except OSError:  # a full disk: the lock holds all the same, only its label is missing
            pass
        return lock

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)  # closing the descriptor drops the flock
            self.fd = None
        if self.dir_fd is not None:
            os.close(self.dir_fd)
            self.dir_fd = None


def _in_use(run_dir: Path, holder: str) -> RunDirError:
    return RunDirError(f"{run_dir} is in use by another process ({holder}); one process owns a run directory "
                       "at a time: wait for it to end, or choose another --out")


def _open_dir(run_dir: Path) -> int:
    """A descriptor of the directory itself (to lock it)."""
    try:
        return os.open(run_dir, os.O_RDONLY | os.O_DIRECTORY)
    except OSError as err:
        raise RunDirError(f"{run_dir}: cannot open the run directory ({err.strerror or err})") from None


def _flock(fd: int, kind: int, *, tries: int = 1, unsupported: bool = False) -> bool:
    """``flock(fd, kind)`` without blocking, ``tries`` times 50 ms apart; whether it was taken.
    ``unsupported``: a file system that cannot lock this descriptor at all counts as taken."""
    import fcntl
    import time

    for k in range(tries):
        try:
            fcntl.flock(fd, kind | fcntl.LOCK_NB)
            return True
        except OSError as err:
            if unsupported and err.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                return True
            if k + 1 < tries:
                time.sleep(0.05)
    return False


def is_live(run_dir: Path) -> bool:
    """Whether a process holds the run directory's lock now (a run is writing it): the lock
    on the directory itself, or (runs of older versions, file systems that cannot lock a
    directory) the one on ``run.lock``."""
    import fcntl

    try:
        dir_fd = os.open(Path(run_dir), os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return False
    try:
        if not _flock(dir_fd, fcntl.LOCK_SH, unsupported=True):
            return True
    finally:
        os.close(dir_fd)  # drops the probe's shared lock
    try:
        fd = os.open(Path(run_dir) / LOCK, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return False
    try:
        return not _flock(fd, fcntl.LOCK_SH)
    finally:
        os.close(fd)


def _read_holder(fd: int) -> str:
    try:
        info = json.loads(os.pread(fd, 4096, 0).decode() or "{}")
        return f"pid {info['pid']} on {info['host']}: {' '.join(map(str, info['command']))[:200]}"
    except (OSError, ValueError, KeyError, TypeError):
        return "its pid is not written yet"


def _read_holder_at(run_dir: Path) -> str:
    try:
        fd = os.open(run_dir / LOCK, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return f"its label {run_dir / LOCK} was removed, so its pid is unknown"
    try:
        return _read_holder(fd)
    finally:
        os.close(fd)


# ---------------------------------------------------------------------- no links
def _link_error(path: Path, st: os.stat_result) -> RunDirError:
    if stat.S_ISLNK(st.st_mode):
        try:
            target = f" (to {os.readlink(path)})"
        except OSError:
            target = ""
        kind = f"a symbolic link{target}"
    else:
        kind = "not a regular file" if not stat.S_ISREG(st.st_mode) else f"a file with {st.st_nlink} hard links"
    return RunDirError(f"{path} is {kind}; dendrisim never opens a run's file through a link, which could lead "
                       "out of the run directory or onto another file: remove it (rm removes the link, not what "
                       "it points to), or choose another --out")


def refuse_link(path: Path) -> None:
    """A RunDirError if ``path`` exists and is a symbolic link or not a regular file (checked
    with ``lstat``, right before a library that opens by name, h5py, opens it)."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    except OSError as err:
        raise RunDirError(f"{path}: cannot be checked ({err.strerror or err})") from None
    if not stat.S_ISREG(st.st_mode):
        raise _link_error(Path(path), st)


def refuse_links(run_dir: Path) -> None:
    """Under the lock: none of the names a run writes (:data:`ALL_FILES`) may be a symbolic
    link, dangling or not, or anything but a regular file."""
    for name in ALL_FILES:
        refuse_link(Path(run_dir) / name)


def open_nofollow(path: Path, flags: int, *, what: str, mode: int = 0o644) -> int:
    """``os.open(path, flags | O_NOFOLLOW)``, refusing a link, a non-regular file and a file
    with other hard links (writing it would change another file) in one paragraph."""
    try:
        fd = os.open(path, flags | os.O_NOFOLLOW | getattr(os, "O_NONBLOCK", 0), mode)
    except OSError as err:
        if err.errno == errno.ELOOP:
            raise _link_error(Path(path), os.lstat(path)) from None
        raise RunDirError(f"{path}: cannot open {what} ({err.strerror or err})") from None
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode) or st.st_nlink > 1:
        os.close(fd)
        raise _link_error(Path(path), st)
    return fd


def create_new(path: Path, *, what: str) -> int:
    """A new, empty regular file at ``path`` (whatever was there, a leftover or a link, is
    removed first; the link's target is never touched), opened for writing with
    ``O_CREAT | O_EXCL | O_NOFOLLOW``."""
    path = Path(path)
    path.unlink(missing_ok=True)  # unlink removes a link itself, never what it points to
    try:
        return os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
    except OSError as err:
        raise WriteError(f"creating {path} failed ({err.strerror or err}); {what} cannot be written") from None


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
    for name in (*RUN_FILES, *(n + ".tmp" for n in RUN_FILES), *RECORDING_EXTRAS):
        (run_dir / name).unlink(missing_ok=True)


def clear_partial(run_dir: Path) -> None:
    """Under the lock: what a run that stopped before its first checkpoint wrote, except
    ``model.yaml`` and ``run.json`` (which a ``--resume`` that starts it over reads): its
    recording, metrics and temporary files."""
    keep = ("model.yaml", "run.json")
    for name in (*RUN_FILES, *(n + ".tmp" for n in RUN_FILES), *RECORDING_EXTRAS):
        if name not in keep:
            (Path(run_dir) / name).unlink(missing_ok=True)


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


def write_atomic(path: Path, kind: Optional[str], write: Callable[[BinaryIO], None], *,
                 checksum: bool = False) -> None:
    """``write(fh)`` into a new temporary file, then fsync and rename over ``path``; on any
    failure the old ``path`` stays as it was, the temporary file is removed, and a WriteError
    names the file.

    ``fh`` is a binary file object on ``PATH.tmp``, created with ``O_EXCL | O_NOFOLLOW``
    (a leftover or a link of that name is removed first, never followed); the rename replaces
    whatever ``path`` was, a link included, without following it. ``checksum``: the sha256
    of the bytes written goes into the sidecar ``PATH.sha256`` (:func:`write_checksum`),
    which :func:`load_tensors` verifies."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    try:
        fd = create_new(tmp, what=str(path))
        with os.fdopen(fd, "w+b") as fh:
            write(fh)
            fh.flush()
            if kind is not None:  # None: a part of another write (a checksum sidecar), not a fault point
                fault_point(kind, path)
            os.fsync(fh.fileno())
            digest = _sha256_of(fh) if checksum else None
        if digest is not None:
            write_checksum(path, digest)
        elif os.path.lexists(checksum_path(path)):  # a file written unchecked has no checksum to match
            checksum_path(path).unlink()
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
    write_atomic(path, kind, lambda fh: fh.write(text.encode()))


# ---------------------------------------------------------------------- checksums
def _sha256_of(fh: BinaryIO) -> str:
    fh.seek(0)
    digest = hashlib.sha256()
    for block in iter(lambda: fh.read(1 << 20), b""):
        digest.update(block)
    return digest.hexdigest()


def checksum_path(path: Path) -> Path:
    return Path(path).with_name(Path(path).name + CHECKSUM_SUFFIX)


def read_checksums(path: Path) -> Optional[list[str]]:
    """The sha256 digests the sidecar of ``path`` accepts (None: no sidecar). A sidecar holds
    lines ``HEX  NAME`` as ``sha256sum`` writes them; the first is the file's."""
    side = checksum_path(path)
    try:
        fd = open_nofollow(side, os.O_RDONLY, what="the checksum")
    except RunDirError:
        if not os.path.lexists(side):
            return None
        raise
    with os.fdopen(fd, "rb") as fh:
        text = fh.read(4096)
    digests = [line.split()[0] for line in text.decode("ascii", "replace").splitlines() if line.split()]
    if not digests or not all(len(d) == 64 and all(c in "0123456789abcdef" for c in d) for d in digests):
        raise FileFormatError(f"{side}: the checksum of {path} is damaged (expected lines of a sha256 in hex and "
                              "the file's name); remove it to load the file unchecked")
    return digests


def write_checksum(path: Path, digest: str) -> None:
    """Write ``PATH.sha256`` atomically, before ``path`` is renamed into place: its first line
    is the new file's digest, its second the digest the sidecar held first until now, so the
    file on disk matches the sidecar whenever the process stops, before or after the rename."""
    path = Path(path)
    try:
        previous = (read_checksums(path) or [])[:1]
    except (FileFormatError, RunDirError):
        previous = []
    lines = "".join(f"{d}  {path.name}\n" for d in dict.fromkeys([digest, *previous]))
    write_atomic(checksum_path(path), None, lambda fh: fh.write(lines.encode()))


def verify_checksum(path: Path, *, what: str) -> None:
    """A FileFormatError if ``path`` has a sidecar checksum its bytes do not match. A file
    without a sidecar (written before checksums, or copied without it) is not checked."""
    expected = read_checksums(path)
    if expected is None:
        return
    with open(path, "rb") as fh:
        actual = _sha256_of(fh)
    if actual not in expected:
        raise FileFormatError(
            f"{path}: its bytes do not match the checksum in {checksum_path(path)} (sha256 {actual[:16]}..., "
            f"expected {expected[0][:16]}...): the {what} was damaged or changed after it was written, and is "
            "refused rather than resumed from silently. Restore it from a copy, or start the run over (if you "
            f"changed it on purpose, remove {checksum_path(path)} to load it unchecked)")


def _describe(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0] if text else ''}"[:300]


# ---------------------------------------------------------------------- reads
def load_tensors(path: Path, *, what: str = "checkpoint") -> dict:
    """``torch.load(path, weights_only=True)`` with every failure as one FileFormatError.

    When ``PATH.sha256`` exists (dendrisim writes it beside every checkpoint and
    ``weights.pt``), the file's bytes must match it: a flipped bit is refused. A file without
    one (written before checksums existed, or copied alone) loads with no check. The check
    comes after the ``weights_only`` load (which never runs code), so a file that cannot be
    read at all is named for what is wrong with it."""
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
    verify_checksum(path, what=what)
    if not isinstance(state, dict):
        raise FileFormatError(f"{path}: the {what} holds a {type(state).__name__}, not the dict dendrisim writes")
    return state
