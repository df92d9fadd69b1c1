#!/usr/bin/env python3
"""Train one model file under several rules and seeds, and report: ``dendrisim compare``
(dendrisim/compare.py; ``python scripts/compare_rules.py --help``)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a clone without installing

from dendrisim.compare import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
