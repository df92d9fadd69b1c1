"""Make the file of a killed run openable by plain ``h5py.File(path, "r")`` again.

Recordings are written in HDF5's single-writer/multiple-reader (SWMR) mode, in which
the file on disk stays consistent while it is written, so a killed run loses nothing
flushed. The writer marks the superblock "open for SWMR write" and only a clean close
clears that mark; after a SIGKILL, HDF5 refuses a plain open (it suggests the
``h5clear`` tool), while ``h5py.File(path, "r", swmr=True)`` and
:func:`dendrisim.recording.open_recording` read the file as it is.

:func:`clear_open_flags` does what ``h5clear -s`` does: it zeroes the superblock's
file-consistency flags and rewrites the superblock checksum (Jenkins' lookup3, as the
HDF5 format specifies), after checking that the stored checksum matches the bytes.
Run as a command it then also compacts the file, as a clean close would (see
:func:`compact`):

    python -m dendrisim.recording.recover recordings/RUN/recording.h5
"""
from __future__ import annotations

import os
import struct
import sys
from pathlib import Path
from typing import Callable

import h5py

SIGNATURE = b"\x89HDF\r\n\x1a\n"
MASK = 0xFFFFFFFF


def _rot(x: int, k: int) -> int:
    return ((x << k) | (x >> (32 - k))) & MASK


def _mix(a: int, b: int, c: int) -> tuple[int, int, int]:
    a = (a - c) & MASK; a ^= _rot(c, 4); c = (c + b) & MASK  # noqa: E702
    b = (b - a) & MASK; b ^= _rot(a, 6); a = (a + c) & MASK  # noqa: E702
    c = (c - b) & MASK; c ^= _rot(b, 8); b = (b + a) & MASK  # noqa: E702
    a = (a - c) & MASK; a ^= _rot(c, 16); c = (c + b) & MASK  # noqa: E702
    b = (b - a) & MASK; b ^= _rot(a, 19); a = (a + c) & MASK  # noqa: E702
    c = (c - b) & MASK; c ^= _rot(b, 4); b = (b + a) & MASK  # noqa: E702
    return a, b, c


def _final(a: int, b: int, c: int) -> tuple[int, int, int]:
    c ^= b; c = (c - _rot(b, 14)) & MASK  # noqa: E702
    a ^= c; a = (a - _rot(c, 11)) & MASK  # noqa: E702
    b ^= a; b = (b - _rot(a, 25)) & MASK  # noqa: E702
    c ^= b; c = (c - _rot(b, 16)) & MASK  # noqa: E702
    a ^= c; a = (a - _rot(c, 4)) & MASK  # noqa: E702
    b ^= a; b = (b - _rot(a, 14)) & MASK  # noqa: E702
    c ^= b; c = (c - _rot(b, 24)) & MASK  # noqa: E702
    return a, b, c


def lookup3(data: bytes, initval: int = 0) -> int:
    """Bob Jenkins' ``hashlittle`` (lookup3.c), the checksum of HDF5 metadata."""
    length = len(data)
    a = b = c = (0xDEADBEEF + length + initval) & MASK
    k = 0
    while length - k > 12:
        a = (a + int.from_bytes(data[k:k + 4], "little")) & MASK
        b = (b + int.from_bytes(data[k + 4:k + 8], "little")) & MASK
        c = (c + int.from_bytes(data[k + 8:k + 12], "little")) & MASK
        a, b, c = _mix(a, b, c)
        k += 12
    tail = data[k:]
    if not tail:
        return c
    tail = tail + bytes(12 - len(tail))
    a = (a + int.from_bytes(tail[0:4], "little")) & MASK
    b = (b + int.from_bytes(tail[4:8], "little")) & MASK
    c = (c + int.from_bytes(tail[8:12], "little")) & MASK
    return _final(a, b, c)[2]


def clear_open_flags(path: str | Path) -> bool:
    """Zero the file-consistency flags of a v2/v3 superblock; True if they were set."""
    from ..rundir import open_nofollow

    path = Path(path)
    # written in place: never through a link, nor into a file with other hard links
    with os.fdopen(open_nofollow(path, os.O_RDWR, what="the recording"), "r+b") as fh:
        head = fh.read(12)
        if head[:8] != SIGNATURE:
            raise ValueError(f"{path}: not an HDF5 file (or it has a user block)")
        version, size_offsets = head[8], head[9]
        if version < 2:
            return False  # version 0/1 superblocks carry no such flags
        n = 12 + 4 * size_offsets
        fh.seek(0)
        block = bytearray(fh.read(n + 4))
        (stored,) = struct.unpack("<I", block[n:n + 4])
        if lookup3(bytes(block[:n])) != stored:
            raise ValueError(f"{path}: the superblock checksum does not match; not touching the file")
        if block[11] == 0:
            return False
        block[11] = 0
        block[n:n + 4] = struct.pack("<I", lookup3(bytes(block[:n])))
        fh.seek(0)
        fh.write(block)
    return True


def stored_bytes(path: str | Path) -> int:
    """Bytes the datasets of an HDF5 file occupy on disk (their chunks, as stored)."""
    sizes = []
    with h5py.File(path, "r", locking=False) as f:
        f.visititems(lambda _, obj: sizes.append(obj.id.get_storage_size()) if isinstance(obj, h5py.Dataset) else None)
    return sum(sizes)


def compact(path: Path, *, slack: float = 0.1) -> bool:
    """Rewrite a closed recording without the dead space SWMR mode leaves in it.

    In SWMR mode HDF5 never reuses the space of a chunk it rewrites, and a compressed chunk
    that a flush leaves partly filled (at each epoch end) is rewritten elsewhere once it
    fills: a 10-epoch Fashion-MNIST run's file held 43.9 MiB for 27.4 MiB of data. Giving
    each record a chunk of its own avoids that but tripled what recording costs training
    (3% to 8-10%), so instead the file is copied once, at a clean close, when more than
    ``slack`` of it is dead space. The copy goes to a temporary file that replaces the
    original only once complete; if anything fails, the original stays as it was.
    Returns whether the file was rewritten.
    """
    path = Path(path)
    if path.stat().st_size <= (1 + slack) * stored_bytes(path) + 2**18:
        return False
    tmp = path.with_name(path.name + ".compacting")
    try:
        tmp.unlink(missing_ok=True)  # a new file ("x": O_EXCL), never one reached through a planted link
        with h5py.File(path, "r", locking=False) as src, h5py.File(tmp, "x", libver="latest", locking=False) as dst:
            for key, value in src.attrs.items():
                dst.attrs[key] = value
            for name in src:
                src.copy(src[name], dst, name=name)
        os.replace(tmp, path)
    except Exception:  # noqa: BLE001 - a full disk, say: the original file is whole, keep it
        tmp.unlink(missing_ok=True)
        return False
    return True


def cut_back(path: Path, length: Callable[[str], int], *, rows_per_copy: int = 4096) -> None:
    """Rewrite ``path`` with each dataset cut to ``length(name)`` records (its first axis).

    A resumed run calls this with the lengths its checkpoint recorded, so the recording
    ends exactly where the checkpoint stands, whatever a fault or a kill left after it.
    The rows kept are read (their checksums checked) and written to a temporary file that
    replaces ``path`` only once complete; creation properties and attributes are kept. A
    dataset shorter than its length, or one whose kept rows cannot be read, is a
    :class:`~dendrisim.errors.FileFormatError` naming it; a failed write a WriteError.
    """
    from .. import rundir
    from ..errors import FileFormatError, WriteError

    path = Path(path)
    tmp = path.with_name(path.name + ".resuming")

    def copy(src: h5py.File, dst: h5py.File) -> None:
        for key, value in src.attrs.items():
            dst.attrs[key] = value
        names: list[str] = []
        src.visititems(lambda name, obj: names.append(name) if isinstance(obj, h5py.Dataset) else None)
        for name in names:
            ds, n = src[name], length(name)
            if ds.shape[0] < n:
                raise FileFormatError(f"{path}: dataset {name} holds {ds.shape[0]} records, but the checkpoint "
                                      f"it resumes from expects {n}; this recording does not belong to that checkpoint")
            out = dst.create_dataset(name, shape=(n, *ds.shape[1:]), maxshape=ds.maxshape, dtype=ds.dtype,
                                     chunks=ds.chunks, compression=ds.compression,
                                     compression_opts=ds.compression_opts, shuffle=ds.shuffle,
                                     fletcher32=ds.fletcher32)
            for key, value in ds.attrs.items():
                out.attrs[key] = value
            for a in range(0, n, rows_per_copy):
                b = min(n, a + rows_per_copy)
                try:
                    block = ds[a:b]
                except Exception as err:  # noqa: BLE001 - a checksum or a cut-off chunk
                    raise FileFormatError(f"{path}: dataset {name}, records {a} to {b - 1}, cannot be read "
                                          f"({str(err).splitlines()[0] if str(err) else type(err).__name__}); "
                                          "the recording is damaged before the checkpoint") from None
                out[a:b] = block

    try:
        try:
            rundir.refuse_link(path)
            src = h5py.File(path, "r", locking=False)
        except rundir.RunDirError:
            raise
        except Exception as err:  # noqa: BLE001
            raise FileFormatError(f"{path}: the recording cannot be opened to resume it ({err})") from None
        tmp.unlink(missing_ok=True)  # a new file ("x": O_EXCL), never one reached through a planted link
        with src, h5py.File(tmp, "x", libver="latest", locking=False) as dst:
            copy(src, dst)
        rundir.fault_point("recording", path)
        rundir.fsync_file(tmp)
        os.replace(tmp, path)
    except (FileFormatError, rundir.RunDirError):
        tmp.unlink(missing_ok=True)
        raise
    except Exception as err:  # noqa: BLE001 - a full disk while copying
        tmp.unlink(missing_ok=True)
        raise WriteError(f"cutting {path} back to the checkpoint failed ({type(err).__name__}: {err}); "
                         "the recording is unchanged") from err


if __name__ == "__main__":
    for arg in sys.argv[1:]:
        cleared = clear_open_flags(arg)
        compacted = compact(arg)  # a killed run's file still holds SWMR's dead space
        print(f"{arg}: {'cleared' if cleared else 'nothing to clear'}{', compacted' if compacted else ''}")
