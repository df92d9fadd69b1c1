"""Write figures from a dendrisim recording (PNG, PDF or SVG): learning curves, compartment
activity, a heatmap of one population, alignment to backprop when it was measured or the
feedback and forward weights were recorded, and one presentation of an euler run. Each is
titled with the run's model, rule and seed; panels without data are left out, with a note
on stderr saying which and why."""
from __future__ import annotations

import argparse
import errno
import os
import sys
from pathlib import Path
from typing import Optional, Sequence

from .errors import DendrisimError
from .paths import make_dir, path_arg, reason, shown
from .recording.plots import FORMATS, check_out, plot_all


def parser(prog: str = "plot_recording.py") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description=__doc__)
    p.add_argument("file", type=path_arg("FILE"), help="recording.h5 (or the run directory holding it)")
    p.add_argument("--out", type=path_arg("--out"), help="folder for the figures (default: plots/ beside the file)")
    p.add_argument("--population",
                   help="population of the heatmap (default: the first recording the variable, in the model file's "
                        "order); one not recorded with the variable is refused, naming what was")
    p.add_argument("--variable",
                   help="variable of the heatmap (default: rate, the heatmap left out with a note when no population "
                        "records it); one the run did not record is refused, naming what it did")
    p.add_argument("--format", choices=FORMATS, default="png",
                   help="file format of the figures: png, pdf or svg (default: png)")
    return p


def main(argv: Optional[Sequence[str]] = None, *, prog: str = "plot_recording.py") -> int:
    args = parser(prog).parse_args(argv)
    path = args.file / "recording.h5" if args.file.is_dir() else args.file
    if not path.is_file():
        print(f"error: {path}: no such recording", file=sys.stderr)
        return 2
    out = args.out if args.out is not None else path.parent / "plots"  # where plot_all writes
    try:
        check_out(out)  # a file at --out: said as such, before the recording is opened
        make_dir(out, what="the folder of the figures")
        for made in plot_all(path, out, population=args.population, variable=args.variable, fmt=args.format,
                             log=lambda line: print(f"note: {line}", file=sys.stderr)):
            print(made)
    except DendrisimError as err:  # a damaged, cut-off or foreign file
        print(f"error: {err}", file=sys.stderr)
        return 2
    except (KeyError, OSError, RuntimeError, ValueError) as err:  # an HDF5 file that is not a recording
        if isinstance(err, OSError) and _writing(err, out):  # a read-only or full folder: not the recording
            print(f"error: cannot write the figures to {shown(out)}: {reason(err)}; the recording {path} is not "
                  "at fault: free space or give another --out", file=sys.stderr)
            return 2
        print(f"error: {path}: not a dendrisim recording, or a damaged one ({type(err).__name__}: "
              f"{str(err).splitlines()[0] if str(err) else ''})", file=sys.stderr)
        return 2
    return 0


#: errors only writing gives (reading a recording never does): a read-only or full file system
_WRITE_ERRNOS = {errno.EROFS, errno.ENOSPC, errno.EDQUOT, errno.EFBIG}


def _writing(err: OSError, out: Path) -> bool:
    """Whether ``err`` is a failure to write the figures into ``out`` (not a damaged recording):
    a full or read-only file system, or any error on a file in ``out``."""
    if err.errno in _WRITE_ERRNOS:
        return True
    name = err.filename if isinstance(err.filename, str) else None
    return name is not None and os.path.abspath(name).startswith(os.path.abspath(out) + os.sep)
