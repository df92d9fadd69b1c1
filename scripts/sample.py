#!/usr/bin/env python3
"""Generate text from a trained char-level language model:

    python scripts/sample.py RUN_DIR --length 500 --temperature 0.8 --prime "The "
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from dendrisim.sample import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
