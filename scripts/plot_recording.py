#!/usr/bin/env python3
"""Write PNG figures from a dendrisim recording: learning curves, compartment activity,
a heatmap of one population, and feedback/forward alignment when both were recorded."""
import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a clone without installing

from dendrisim.errors import DendrisimError  # noqa: E402
from dendrisim.recording.plots import plot_all  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("file", type=Path, help="recording.h5 (or the run directory holding it)")
    p.add_argument("--out", type=Path, help="folder for the PNG files (default: plots/ beside the file)")
    p.add_argument("--population", help="population of the heatmap (default: the first recorded)")
    p.add_argument("--variable", default="rate", help="variable of the heatmap (default: rate)")
    args = p.parse_args()
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


if __name__ == "__main__":
    sys.exit(main())
