"""Write figures from a dendrisim recording (PNG, PDF or SVG): learning curves, compartment
activity, a heatmap of one population, alignment to backprop when it was measured or the
feedback and forward weights were recorded, and one presentation of an euler run. Each is
titled with the run's model, rule and seed; panels without data are left out, with a note
on stderr saying which and why."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Optional, Sequence

from .errors import DendrisimError
from .recording.plots import FORMATS, plot_all


def parser(prog: str = "plot_recording.py") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description=__doc__)
    p.add_argument("file", type=Path, help="recording.h5 (or the run directory holding it)")
    p.add_argument("--out", type=Path, help="folder for the figures (default: plots/ beside the file)")
    p.add_argument("--population",
                   help="population of the heatmap (default: the first recorded, in the model file's order)")
    p.add_argument("--variable", default="rate", help="variable of the heatmap (default: rate)")
    p.add_argument("--format", choices=FORMATS, default="png",
                   help="file format of the figures: png, pdf or svg (default: png)")
    return p


def main(argv: Optional[Sequence[str]] = None, *, prog: str = "plot_recording.py") -> int:
    args = parser(prog).parse_args(argv)
    path = args.file / "recording.h5" if args.file.is_dir() else args.file
    if not path.is_file():
        print(f"error: {path}: no such recording", file=sys.stderr)
        return 2
    try:
        for made in plot_all(path, args.out, population=args.population, variable=args.variable, fmt=args.format,
                             log=lambda line: print(f"note: {line}", file=sys.stderr)):
            print(made)
    except DendrisimError as err:  # a damaged, cut-off or foreign file
        print(f"error: {err}", file=sys.stderr)
        return 2
    except (KeyError, OSError, RuntimeError, ValueError) as err:  # an HDF5 file that is not a recording
        print(f"error: {path}: not a dendrisim recording, or a damaged one ({type(err).__name__}: "
              f"{str(err).splitlines()[0] if str(err) else ''})", file=sys.stderr)
        return 2
    return 0
