"""Run the whole-stack fuzzer (tests/test_fuzz_stack.py) and print its counts by kind and class.

    python scripts/fuzz.py            # the CI part: about 2,600 cases, a few minutes
    python scripts/fuzz.py --long     # ten times as many
    python scripts/fuzz.py --seed 7   # another stream of cases
    python scripts/fuzz.py -k symlink # only the tests matching a pytest expression

Every case runs through ``dendrisim.cli.main`` or ``dendrisim.commands.main`` (or
``scripts/simulate.py`` in a subprocess where a process is killed, two race, a memory limit
is set or a crash must not take the fuzzer down) under a time limit; see the test module's
docstring for the oracle and the kinds, and tests/fuzz_attacks.py for issue 29's attacks
(code from files, symlinks, the lock, hooks, damaged checkpoints, memory, early faults,
paths, codecs, data headers, devices, ``results``). The ``fuzz:`` lines at the end give the
counts by kind, each kind with the class of issue 29 it attacks, and by class.
``DENDRISIM_FUZZ_LOG=FILE`` writes one line per case. Exit status: pytest's (0 when every
case ended well).
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--long", action="store_true", help="ten times as many cases")
    p.add_argument("--seed", type=int, default=None, help="seed of the generated cases (default 20)")
    p.add_argument("-k", default=None, help="only the tests matching this pytest expression")
    args = p.parse_args()
    if args.seed is not None:
        os.environ["DENDRISIM_FUZZ_SEED"] = str(args.seed)
    sys.path.insert(0, str(REPO))
    import pytest

    # -m "": the fuzzer is marked slow, which the project's addopts leave out; here it is the point
    argv = [str(REPO / "tests" / "test_fuzz_stack.py"), "-q", "-p", "no:cacheprovider", "-m", ""]
    argv += ["--long"] if args.long else []
    argv += ["-k", args.k] if args.k else []
    return int(pytest.main(argv))


if __name__ == "__main__":
    sys.exit(main())
