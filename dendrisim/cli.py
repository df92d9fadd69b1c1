"""Command line of ``scripts/simulate.py``: train and evaluate one model file."""
from __future__ import annotations

import argparse
import contextlib
import json
import signal
import sys
from pathlib import Path
from typing import Optional, Sequence

from .errors import DendrisimError

REPO = Path(__file__).resolve().parent.parent
DEFAULT_MODEL = REPO / "models" / "dll_mlp_digits.yaml"


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="simulate.py",
        description="Train a dendrisim model file and print a JSON summary as the last line.",
    )
    p.add_argument("model", nargs="?", default=str(DEFAULT_MODEL),
                   help=f"model YAML file (default: {DEFAULT_MODEL.relative_to(REPO)})")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY.PATH=VALUE",
                   help="override a key of the model file, e.g. --set plasticity.rule=fa (repeatable)")
    p.add_argument("--epochs", type=int, help="shorthand for --set training.epochs=N")
    p.add_argument("--seed", type=int, help="shorthand for --set training.seed=N")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto (default: cpu)")
    p.add_argument("--matmul-precision", choices=["highest", "high", "medium"], default="highest",
                   help="float32 matmul precision: high allows TF32 on NVIDIA GPUs, medium bf16 (default: highest)")
    p.add_argument("--data-root", help="folder with the dataset files (default: task.data_root, $DENDRISIM_DATA or ./data)")
    p.add_argument("--dry-run", action="store_true", help="one epoch of a few batches, to check that everything runs")
    p.add_argument("--out", type=Path, help="run directory (default: a new folder under recordings/)")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="show a progress bar (default: only on a terminal)")
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parser().parse_args(argv)
    overrides = list(args.overrides)
    if args.epochs is not None:
        overrides.append(f"training.epochs={args.epochs}")
    if args.seed is not None:
        overrides.append(f"training.seed={args.seed}")
    try:
        import torch

        torch.set_float32_matmul_precision(args.matmul_precision)
        from .config import load_experiment
        from .training import RunOptions, Trainer

        experiment = load_experiment(args.model, overrides)
        for note in experiment.notes:
            print(f"note: {note}", file=sys.stderr)
        options = RunOptions(device=args.device, data_root=args.data_root, out_dir=args.out,
                             dry_run=args.dry_run, progress=args.progress,
                             argv=[sys.argv[0], *(argv if argv is not None else sys.argv[1:])],
                             log=lambda line: print(line, flush=True))
        trainer = Trainer(experiment, options)
        print(trainer.network.summary(), flush=True)
        print(f"rule {experiment.rule.rule}, {trainer.steps_per_epoch} steps/epoch, device {trainer.device}", flush=True)
        with graceful_stop(trainer):
            summary = trainer.run()
    except DendrisimError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(json.dumps(summary), flush=True)
    if "stopped" in summary:
        return 143 if summary["stopped"] == "SIGTERM" else 130
    return 0


@contextlib.contextmanager
def graceful_stop(trainer):
    """SIGINT/SIGTERM ask the trainer to stop after the current step; a second Ctrl-C aborts."""
    def handler(signum, frame):
        name = signal.Signals(signum).name
        print(f"\n{name}: finishing the current step, then closing the recording (Ctrl-C again to abort)",
              file=sys.stderr, flush=True)
        trainer.request_stop(name)
        signal.signal(signal.SIGINT, signal.default_int_handler)

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
