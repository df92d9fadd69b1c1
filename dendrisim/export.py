"""Export a run's recording to Neurodata Without Borders (NWB 2), the format neuroscience
shares data in: every recorded compartment as a time series, the weights, metrics and
phases as tables, the model file and run settings as metadata. Needs the optional extra
nwb: pip install 'dendrisim[nwb]'."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Callable, Optional, Sequence

from .errors import DendrisimError, FileFormatError, WriteError

INSTALL = "pip install 'dendrisim[nwb]'"


def parser(prog: str = "export_nwb.py") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description=__doc__)
    p.add_argument("run", type=Path, metavar="RUN", help="the run directory (or its recording.h5)")
    p.add_argument("--nwb", type=Path, required=True, metavar="FILE.nwb", help="the NWB file to write")
    p.add_argument("--overwrite", action="store_true", help="replace FILE.nwb if it exists (default: refuse)")
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

    if run.is_dir():
        path = run / FILENAME
        if not path.is_file():
            raise FileFormatError(f"{run}: not a run directory: it holds no {FILENAME} (a run writes one unless "
                                  "recording.enabled is false)")
        return path, run
    if not run.is_file():
        raise FileFormatError(f"{run}: no such run directory or recording")
    return run, run.parent


def check_target(target: Path, source: Path, *, overwrite: bool) -> None:
    if target.exists() and target.resolve() == source.resolve():
        raise WriteError(f"{target} is the recording itself; name another file for the NWB export")
    if target.is_dir():
        raise WriteError(f"{target} is a folder; name the NWB file to write, e.g. {target / 'run.nwb'}")
    if target.exists() and not overwrite:
        raise WriteError(f"{target} exists; pass --overwrite (overwrite=True) to replace it, or name another file")
    if not target.parent.is_dir():
        raise WriteError(f"{target}: its folder {target.parent} does not exist")


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
    check_target(target, source, overwrite=overwrite)
    missing = _pynwb_missing()
    if missing is not None:
        raise DendrisimError(f"exporting to NWB needs pynwb, and {missing} is not installed; install the optional "
                             f"extra with: {INSTALL} (pynwb and nwbinspector)")
    from .recording import open_recording
    from .recording.nwb import build, write
    from .rundir import is_live, write_atomic

    with open_recording(source) as rec:
        _check_recording(rec, source, run_dir, partial=partial, live=is_live(run_dir))
        try:
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
    if not rec.complete and not partial:
        why = ("its run is still going on" if live else
               "its run stopped or was killed before a clean end, or is still being written")
        raise FileFormatError(f"{source} is not complete: {why}; export the records it holds with --partial "
                              "(partial=True), or wait for the run to finish (dendrisim run --resume continues a "
                              "stopped one)")


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0][:200] if text else type(err).__name__
