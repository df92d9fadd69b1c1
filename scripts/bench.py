#!/usr/bin/env python3
"""Speed of dendrisim's rules against autograd and the machine's arithmetic floor:
``dendrisim bench`` (dendrisim/bench.py; ``python scripts/bench.py --help``)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a clone without installing

from dendrisim.bench import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
