#!/usr/bin/env python3
"""Write figures (PNG, PDF or SVG) from a dendrisim recording: ``dendrisim plot`` (dendrisim/plot.py;
``python scripts/plot_recording.py --help``)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a clone without installing

from dendrisim.plot import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
