#!/usr/bin/env python3
"""Check a model file without data or training and print what it builds:
populations, projections, the rule's feedback pathway, parameter counts and the
recording's size estimate. Exit status 0 when valid, 2 with the error otherwise.
Same as ``python scripts/simulate.py MODEL --check`` and ``dendrisim check MODEL``."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from dendrisim.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main([*sys.argv[1:], "--check"], prog="validate_model.py"))
