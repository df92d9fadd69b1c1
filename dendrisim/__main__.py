"""``python -m dendrisim``: the ``dendrisim`` command (see :mod:`dendrisim.commands`)."""
import sys

from .commands import main

if __name__ == "__main__":
    sys.exit(main())
