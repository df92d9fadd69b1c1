"""The metrics observer: each epoch's row into ``metrics.csv`` (atomically) and onto the log;
an epoch whose metrics are not finite ends the run, whatever ``guard_every`` says."""
from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np

from .. import rundir
from ..errors import NumericalError, WriteError
from .base import Observer
from .checkpoints import CHECKPOINT

FILENAME = "metrics.csv"


def write_metrics(path: Path, rows: list[dict]) -> None:
    """``rows`` as a CSV file (the first row's keys are the columns), written atomically."""
    def write(fh) -> None:
        text = io.TextIOWrapper(fh, encoding="utf-8", newline="", write_through=True)
        writer = csv.DictWriter(text, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
        text.detach()  # the binary file stays open for write_atomic

    rundir.write_atomic(path, "metrics", write)


def epoch_line(row: dict, metrics: list[str]) -> str:
    """The log's line for an epoch: its metrics, the clips that fired and its time."""
    parts = [f"epoch {row['epoch']:>3}"]
    for prefix in ("train", "val", "test"):
        for m in metrics:
            key = f"{prefix}_{m}"
            if key in row:
                parts.append(f"{key} {row[key]:.4f}")
    clips = [f"{k[6:]}={v}" for k, v in row.items() if k.startswith("clips_") and v]
    if clips:
        parts.append("clipped " + " ".join(clips))
    parts.append(f"time {row['seconds']:.1f}s")
    return "  ".join(parts)


class MetricsFile(Observer):
    """``metrics.csv`` in the run directory holds exactly ``loop.rows`` (rank 0 writes it:
    at the start of a resumed run, then after each epoch)."""

    def __init__(self, *, file: str):
        self.file = file

    def start(self, loop) -> None:
        if loop.dist.is_main and loop.rows:  # resumed: metrics.csv holds exactly the checkpoint's epochs
            write_metrics(loop.run_dir / FILENAME, loop.rows)

    def epoch_end(self, loop, row: dict) -> None:
        if loop.dist.is_main and loop.failure is None:
            try:
                write_metrics(loop.run_dir / FILENAME, loop.rows)
            except WriteError as err:
                loop.fail(err, "metrics failure")
        loop.options.log(epoch_line(row, list(loop.task.metrics)))
        self.check_finite(loop, row)

    def check_finite(self, loop, row: dict) -> None:
        """An epoch whose metrics are not finite ends the run (a :class:`~dendrisim.errors.NumericalError`)."""
        bad = [k for k, v in row.items() if k.split("_")[0] in ("train", "val", "test")
               and isinstance(v, float) and not np.isfinite(v)]
        if not bad:
            return
        step = loop.last_checkpoint_step
        where = f"{Path(loop.run_dir) / CHECKPOINT} (step {step})" if step is not None else "no checkpoint"
        raise NumericalError(
            f"{self.file}: epoch {row['epoch']} ended with non-finite metrics "
            f"({', '.join(f'{k} {row[k]}' for k in bad)}); the run stops without checkpointing this state, "
            f"the last good checkpoint is {where}. Lower optimizer.lr, bound the rule "
            "(plasticity.clip_apical / clip_update), or set training.guard_every to find the first bad step")
