"""Write PNG figures from a dendrisim recording: learning curves, compartment activity,
a heatmap of one population, and feedback/forward alignment when both were recorded."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Optional, Sequence

from .errors import DendrisimError
from .paths import path_arg
from .recording.plots import plot_all


def parser(prog: str = "plot_recording.py") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description=__doc__)
    p.add_argument("file", type=path_arg("FILE"), help="recording.h5 (or the run directory holding it)")
    p.add_argument("--out", type=path_arg("--out"), help="folder for the PNG files (default: plots/ beside the file)")
    p.add_argument("--population", help="population of the heatmap (default: the first recorded)")
    p.add_argument("--variable", default="rate", help="variable of the heatmap (default: rate)")
    return p


def main(argv: Optional[Sequence[str]] = None, *, prog: str = "plot_recording.py") -> int:
    args = parser(prog).parse_args(argv)
    path = args.file / "recording.h5" if args.file.is_dir() else args.file
    if not path.is_file():
        print(f"error: {path}: no such recording", file=sys.stderr)
        return 2
    try:
        for made in plot_all(path, args.out, population=args.population, variable=args.variable):
            print(made)
    except DendrisimError as err:  # a damaged, cut-off or foreign file
        print(f"error: {err}", file=sys.stderr)
        return 2
    except (KeyError, OSError, RuntimeError, ValueError) as err:  # an HDF5 file that is not a recording
        print(f"error: {path}: not a dendrisim recording, or a damaged one ({type(err).__name__}: "
              f"{str(err).splitlines()[0] if str(err) else ''})", file=sys.stderr)
        return 2
    return 0
