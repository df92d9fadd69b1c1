#!/usr/bin/env python3
"""Train and evaluate a dendrisim model file; see ``python scripts/simulate.py --help``."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a clone without installing

from dendrisim.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
