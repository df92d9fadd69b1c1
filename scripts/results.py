#!/usr/bin/env python3
"""Regenerate the documented results (docs/results.md): a thin wrapper of dendrisim.results.main.

    python scripts/results.py --text stdlib.txt --series temps.csv --out reports/results --update docs/results.md
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from dendrisim.results import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
