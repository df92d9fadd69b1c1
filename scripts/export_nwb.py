#!/usr/bin/env python3
"""Export a run's recording to NWB: ``dendrisim export`` (dendrisim/export.py;
``python scripts/export_nwb.py --help``)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a clone without installing

from dendrisim.export import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
