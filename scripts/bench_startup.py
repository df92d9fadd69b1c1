"""Whole-process time of a one-epoch Fashion-MNIST run, and what it spends outside the epoch;
with ``--commands``, how long the quick commands take to start and end.

    python scripts/bench_startup.py [--rounds 3] [--reference PATH/TO/Dendritic-Localized-Learning]
    python scripts/bench_startup.py --commands [--rounds 7] [--package-root PATH/TO/CHECKOUT]

``--commands`` times, as separate processes in turn, ``python -c pass`` (the interpreter
alone), ``python -c "import torch"``, and ``python -m dendrisim --version``, ``models`` and
``rules`` with the package of ``--package-root`` (default: this checkout) first on the path,
so a checkout of an older commit gives the "before" numbers of a change.

Each round runs, as separate processes in turn (so machine noise hits all alike):

- ``python -c "import torch"``: the import every run pays;
- ``simulate.py models/dll_mlp_fmnist.yaml --epochs 1``: the whole run. Its epoch line
  gives the time of the training loop; the rest, less ``import torch``, is the start-up
  and wind-down cost (data, network, optimizer, evaluation, files);
- with ``--reference``, the reference implementation's ``train_mlp.py`` for one epoch at
  its README settings on Fashion-MNIST (its ``dataset.py`` needs pandas and the IDX files
  decompressed under ``fashionmnist_data/FashionMNIST/raw/`` in that folder).

Prints the medians and the ratio reference / dendrisim of the whole-process times.
"""
from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
REFERENCE_ARGS = ["--dataset", "fashionmnist", "--channel", "1", "--batch_size", "128", "--num_class", "10",
                  "--dim_list", "[784, 1024, 512, 256, 10]", "--layer_type", "DLL_FCLayer", "--sigma", "1.0",
                  "--seed", "42", "--max_iter", "200", "--epochs", "1", "--learning_rate", "5e-5",
                  "--scheduler_type", "adam", "--earlystop_steps", "30"]


def timed(cmd: list[str], cwd: Path) -> tuple[float, str]:
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{proc.stderr[-2000:]}")
    return seconds, proc.stdout


COMMANDS = {"python -c pass": ["-c", "pass"], "import torch": ["-c", "import torch"],
            "dendrisim --version": ["-m", "dendrisim", "--version"], "dendrisim models": ["-m", "dendrisim", "models"],
            "dendrisim rules": ["-m", "dendrisim", "rules"]}


def commands(rounds: int, package_root: Path) -> None:
    """Median wall time of each quick command, as processes run in turn ``rounds`` times."""
    import os

    env = {**os.environ, "PYTHONPATH": str(package_root.resolve()), "OMP_NUM_THREADS": "1"}
    rows: dict[str, list[float]] = {k: [] for k in COMMANDS}
    with tempfile.TemporaryDirectory() as empty:  # an empty folder, as a user's
        for r in range(rounds):
            for name, argv in COMMANDS.items():
                start = time.perf_counter()
                proc = subprocess.run([sys.executable, *argv], cwd=empty, env=env, capture_output=True, text=True)
                rows[name].append(time.perf_counter() - start)
                if proc.returncode != 0:
                    sys.exit(f"{name} failed:\n{proc.stderr[-2000:]}")
            print(f"round {r + 1}: " + ", ".join(f"{k} {v[-1]:.2f} s" for k, v in rows.items()), flush=True)
    print(f"\npackage: {package_root.resolve()}\n\n| command | median s | all rounds |\n|---|---|---|")
    for k, v in rows.items():
        print(f"| {k} | {statistics.median(v):.3f} | {', '.join(f'{x:.2f}' for x in v)} |")


def main() -> None:
    p = argparse.ArgumentParser(prog="bench_startup.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=None, help="rounds of the processes in turn (default: 3; "
                   "7 with --commands)")
    p.add_argument("--reference", type=Path, help="a checkout of the reference implementation")
    p.add_argument("--commands", action="store_true", help="time the quick commands instead of a run")
    p.add_argument("--package-root", type=Path, default=REPO,
                   help="with --commands: the checkout whose package is timed (default: this one)")
    args = p.parse_args()
    if args.commands:
        return commands(args.rounds or 7, args.package_root)
    args.rounds = args.rounds or 3
    rows: dict[str, list[float]] = {"import torch": [], "dendrisim run": [], "dendrisim epoch": [],
                                    "dendrisim outside the epoch, import torch excluded": []}
    if args.reference:
        rows["reference run"] = []
    for r in range(args.rounds):
        t_import, _ = timed([sys.executable, "-c", "import torch"], REPO)
        with tempfile.TemporaryDirectory() as out:
            t_run, stdout = timed([sys.executable, "scripts/simulate.py", "models/dll_mlp_fmnist.yaml", "--epochs", "1",
                                   "--out", str(Path(out) / "run")], REPO)
        epoch = float(re.search(r"^epoch +1 .* time ([\d.]+)s$", stdout, re.M).group(1))
        rows["import torch"].append(t_import)
        rows["dendrisim run"].append(t_run)
        rows["dendrisim epoch"].append(epoch)
        rows["dendrisim outside the epoch, import torch excluded"].append(t_run - epoch - t_import)
        if args.reference:
            t_ref, _ = timed([sys.executable, "train_mlp.py", *REFERENCE_ARGS], args.reference)
            rows["reference run"].append(t_ref)
        print(f"round {r + 1}: " + ", ".join(f"{k} {v[-1]:.2f} s" for k, v in rows.items()), flush=True)
    print("\n| what | median s | all rounds |\n|---|---|---|")
    for k, v in rows.items():
        print(f"| {k} | {statistics.median(v):.2f} | {', '.join(f'{x:.2f}' for x in v)} |")
    if args.reference:
        ratio = statistics.median(rows["reference run"]) / statistics.median(rows["dendrisim run"])
        print(f"\nwhole process, reference / dendrisim: {ratio:.2f}x")


if __name__ == "__main__":
    main()
