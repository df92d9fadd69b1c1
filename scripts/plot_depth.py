#!/usr/bin/env python3
"""The depth study's figure (docs/images/depth.png): test error against depth, one line per
rule, from the ``depth`` entry of results.json (what ``scripts/results.py --suite depth
--update docs/results.md`` stored) or from a suite's OUT/depth.json.

    python scripts/plot_depth.py [results.json | OUT/depth.json] [--out docs/images/depth.png]
"""
import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run from a clone without installing

from dendrisim.depth import plot  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("report", nargs="?", default=str(ROOT / "results.json"),
                   help="results.json (its depth entry) or a suite's OUT/depth.json (default: the checkout's results.json)")
    p.add_argument("--out", default=str(ROOT / "docs" / "images" / "depth.png"),
                   help="the PNG to write (default docs/images/depth.png)")
    args = p.parse_args()
    data = json.loads(Path(args.report).read_text())
    report = data if data.get("suite") == "depth" else data.get("depth")
    if report is None:
        print(f"error: {args.report}: no depth suite in it; run scripts/results.py --suite depth first",
              file=sys.stderr)
        return 2
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    plot(report, args.out)
    print(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
