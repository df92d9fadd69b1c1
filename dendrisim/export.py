"""Export a run's recording to Neurodata Without Borders (NWB 2), the format neuroscience
shares data in: every recorded compartment as a time series, the weights, metrics and
phases as tables, the model file and run settings as metadata. Needs the optional extra
nwb: pip install 'dendrisim[nwb]'."""
from __future__ import annotations

import argparse
import os
import stat
import sys
from pathlib import Path
from typing import Callable, Optional, Sequence

from .errors import DendrisimError, FileFormatError, WriteError, brief
from .paths import path_arg, reason, shown

INSTALL = "pip install 'dendrisim[nwb]'"


def parser(prog: str = "export_nwb.py") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description=__doc__)
    p.add_argument("run", type=path_arg("RUN"), metavar="RUN", help="the run directory (or its recording.h5)")
    p.add_argument("--nwb", type=path_arg("--nwb"), required=True, metavar="FILE.nwb", help="the NWB file to write")
    p.add_argument("--overwrite", action="store_true", help="replace FILE.nwb if it is an existing regular file (default: refuse); a link, a folder, a FIFO, "
                        "a device or a file of the run is never replaced")
    p.add_argument("--partial", action="store_true",
                   help="export a recording that is not complete (a run still going on, stopped or killed): "
                        "the whole records it holds; refused otherwise")
    return p


def main(argv: Optional[Sequence[str]] = None, *, prog: str = "export_nwb.py") -> int:
    args = parser(prog).parse_args(argv)
    try:
        written = export_nwb(args.run, args.nwb, overwrite=args.overwrite, partial=args.partial,
                             log=lambda line: print(line, file=sys.stderr))
    except DendrisimError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(written)
    return 0


def recording_of(run: Path) -> tuple[Path, Path]:
    """``(recording.h5, run directory)`` of a run directory or of a recording file."""
    from .recording import FILENAME

    if "\0" in os.fspath(run):
        raise FileFormatError(f"RUN {_shown(run)}: a path holding a NUL character, which no file system allows; "
                              "name the run directory or its recording")
    if run.is_dir():
        path = run / FILENAME
        if not path.is_file():
            raise FileFormatError(f"{_shown(run)}: not a run directory: it holds no {FILENAME} (a run writes one unless "
                                  "recording.enabled is false)")
        return path, run
    if not run.is_file():
        raise FileFormatError(f"{_shown(run)}: no such run directory or recording")
    return run, run.parent


def check_target(target: Path, source: Path, *, overwrite: bool, run_dir: Optional[Path] = None) -> None:
    """Refuse an NWB target that is not the user's regular file to write: a path with a NUL, a
    folder, a symbolic link (dangling or not), a FIFO, a device or a socket (even with
    ``overwrite``, which replaces only an existing regular file), the recording or another
    file of the run (:func:`_run_file`), an existing file without ``overwrite``, a file in a
    folder that does not exist."""
    text = os.fspath(target)
    if "\0" in text:
        raise WriteError(f"--nwb {_shown(text)}: a path holding a NUL character, which no file system allows; "
                         "name the NWB file to write")
    try:
        st: Optional[os.stat_result] = os.lstat(text)
    except (FileNotFoundError, NotADirectoryError):
        st = None
    except OSError as err:
        raise WriteError(f"--nwb {_shown(target)}: cannot be looked up ({reason(err)}); name another file") from None
    if st is not None and stat.S_ISDIR(st.st_mode):
        raise WriteError(f"{_shown(target)} is a folder; name the NWB file to write, e.g. {_shown(target / 'run.nwb')}")
    if st is not None and not stat.S_ISREG(st.st_mode):
        what = _kind_of(st.st_mode, target)
        raise WriteError(f"{_shown(target)} is {what}, not a regular file; the export never replaces it (--overwrite "
                         "replaces only an existing regular file, never through a link): name the NWB file itself")
    own = _run_file(target, st, source, run_dir)
    if own is not None:
        raise WriteError(f"{_shown(target)} is {own}; the export never writes over a run's files: name another file "
                         "for the NWB export (e.g. run.nwb in the run directory)")
    if st is not None and not overwrite:
        raise WriteError(f"{_shown(target)} exists; pass --overwrite (overwrite=True) to replace it, or name another "
                         "file")
    if not target.parent.is_dir():
        raise WriteError(f"{_shown(target)}: its folder {_shown(target.parent)} does not exist")


def _kind_of(mode: int, path: Path) -> str:
    """What a file that is not a regular one is, in words."""
    if stat.S_ISLNK(mode):
        try:
            to = os.readlink(path)
        except OSError:
            to = "?"
        dangling = "" if os.path.exists(path) else ", which points nowhere"
        return f"a symbolic link (to {_shown(to)}{dangling})"
    return ("a FIFO (named pipe)" if stat.S_ISFIFO(mode) else "a character device" if stat.S_ISCHR(mode)
            else "a block device" if stat.S_ISBLK(mode) else "a socket" if stat.S_ISSOCK(mode)
            else "not a regular file")


def _run_file(target: Path, st: Optional[os.stat_result], source: Path, run_dir: Optional[Path]) -> Optional[str]:
    """What ``target`` is when it is the recording or a file of the run (None when neither): the
    recording itself (by name or as the same file under another name, a hard link included);
    in the run directory (or below), a name the run writes (run.json, weights.pt, ...: see
    :data:`dendrisim.rundir.ALL_FILES`), a checksum sidecar, or an existing file that is not
    an NWB file (.nwb)."""
    from .rundir import ALL_FILES, CHECKSUM_SUFFIX, is_run

    if st is not None:
        try:
            if os.path.samefile(target, source):
                return f"the recording itself ({_shown(source)})"
        except OSError:
            pass
    if run_dir is None or not is_run(run_dir):
        return None
    try:
        home, folder = os.path.realpath(run_dir), os.path.realpath(target.parent)
    except (OSError, ValueError):
        return None
    if folder != home and not folder.startswith(home.rstrip(os.sep) + os.sep):
        if st is not None:  # a hard link elsewhere to one of the run's files
            for name in ALL_FILES:
                try:
                    if os.path.samefile(target, os.path.join(home, name)):
                        return f"the run's {name} under another name (a hard link to {_shown(Path(home) / name)})"
                except OSError:
                    continue
        return None
    name = target.name
    if folder == home and (name in ALL_FILES or name.endswith(CHECKSUM_SUFFIX)):
        return f"the run's own {name}"
    if st is not None and not name.lower().endswith(".nwb"):
        return (f"a file of the run directory {_shown(run_dir)} (in a run directory --overwrite replaces only an "
                "earlier NWB export, a .nwb file)")
    return None


def _shown(path) -> str:
    """``path`` as a one-line message shows it: :func:`~dendrisim.paths.shown`, quoted with its
    escapes (a newline, a NUL) when it holds a character that does not print."""
    text = shown(path)
    return text if text.isprintable() else repr(text)


def _pynwb_missing() -> Optional[str]:
    try:
        import hdmf  # noqa: F401
        import pynwb  # noqa: F401
    except ImportError as err:
        return err.name or "pynwb"
    return None


def export_nwb(run: str | Path, nwb_path: str | Path, *, overwrite: bool = False, partial: bool = False,
               log: Optional[Callable[[str], None]] = None) -> Path:
    """Write the recording of ``run`` (a run directory or its ``recording.h5``) to the NWB file
    ``nwb_path`` and return its path.

    What goes where is in ``docs/howto/nwb.md``: each ``/populations/POP/VAR`` becomes the
    TimeSeries ``acquisition["POP.VAR"]`` (one row per recorded sample and kept state, bit for
    bit), the index the ``trials`` table, projections and alignment interval tables, metrics and
    phases tables in ``processing["training"]``, the model file ``protocol`` and the run
    settings ``notes``. The file is written under a temporary name and renamed into place; an
    existing file is replaced only with ``overwrite``, and a recording that is not complete
    (its run still going on, stopped or killed) is exported only with ``partial``.
    ``log`` gets notes (a partial export, series nwbinspector's orientation heuristic flags).
    Needs pynwb (``pip install 'dendrisim[nwb]'``), imported only here."""
    log = log or (lambda line: None)
    source, run_dir = recording_of(Path(run))
    target = Path(nwb_path)
    check_target(target, source, overwrite=overwrite, run_dir=run_dir)
    missing = _pynwb_missing()
    if missing is not None:
        raise DendrisimError(f"exporting to NWB needs pynwb, and {missing} is not installed; install the optional "
                             f"extra with: {INSTALL} (pynwb and nwbinspector)")
    from .recording import open_recording
    from .recording.nwb import build, write
    from .rundir import is_live, write_atomic

    with open_recording(source) as rec:
        try:
            _check_recording(rec, source, run_dir, partial=partial, live=is_live(run_dir))
            if not rec.complete:
                log(f"note: {source} is not complete: exporting the {len(rec.steps)} activity records, "
                    f"{len(rec.weight_steps)} projection records and {len(rec.metrics['epoch'])} epochs it holds whole")
            nwb = build(rec, source=source, run_dir=run_dir, log=log)
        except DendrisimError:
            raise
        except (KeyError, OSError, RuntimeError, ValueError, TypeError) as err:
            raise FileFormatError(f"{source}: not a dendrisim recording, or a damaged one ({type(err).__name__}: "
                                  f"{_first_line(err)})") from None
        try:  # a temporary file, fsynced and renamed into place (removed on any failure)
            write_atomic(target, "nwb", lambda temp: write(nwb, temp))
        except WriteError as err:
            if isinstance(err.__cause__, DendrisimError):  # a damaged dataset met while writing: it names it
                raise err.__cause__ from None
            raise
    return target


def _check_recording(rec, source: Path, run_dir: Path, *, partial: bool, live: bool) -> None:
    attrs = rec.attrs
    if "schema_version" not in attrs or "index" not in rec.file or "created" not in attrs:
        raise FileFormatError(f"{source}: an HDF5 file, but not a dendrisim recording (it has no schema_version, "
                              "created or /index)")
    import numpy as np

    complete = attrs.get("complete", False)
    if not isinstance(complete, (bool, np.bool_)) and not (isinstance(complete, (int, np.integer))
                                                            and complete in (0, 1)):
        raise FileFormatError(f"{source}: its attribute complete is {brief(complete)}, not true or false; not a "
                              "dendrisim recording, or a damaged one")
    if complete:
        _check_whole(rec, source)
    if not rec.complete and not partial:
        why = ("its run is still going on" if live else
               "its run stopped or was killed before a clean end, or is still being written")
        raise FileFormatError(f"{source} is not complete: {why}; export the records it holds with --partial "
                              "(partial=True), or wait for the run to finish (dendrisim run --resume continues a "
                              "stopped one)")


def _check_whole(rec, source: Path) -> None:
    """A complete recording whose activity records are none although some of its datasets hold
    rows is damaged (a dataset emptied): refused, naming the empty ones, rather than exported
    without a series."""
    import h5py

    if len(rec.steps):
        return
    rows: dict[str, int] = {}
    for group in ("index", "populations"):
        if isinstance(rec.file.get(group), h5py.Group):
            rec.file[group].visititems(lambda name, item, g=group: rows.__setitem__(f"{g}/{name}", item.shape[0])
                                       if isinstance(item, h5py.Dataset) and item.ndim
                                       and not name.startswith("weight_") else None)
    empty = sorted(name for name, n in rows.items() if n == 0)
    if empty and max(rows.values()) > 0:
        raise FileFormatError(f"{source}: a damaged recording: it says it is complete, yet {', '.join(empty[:3])}"
                              f"{', ...' if len(empty) > 3 else ''} hold no rows while other activity datasets hold "
                              f"{max(rows.values())}, so it holds no whole activity record to export")


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0][:200] if text else type(err).__name__
