"""The recording observer: opens the run's HDF5 recording, asks the step for a trajectory
when a record is due, hands the presentation's trajectory to the recorder, closes the file."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

from ..errors import ConfigError, WriteError
from ..phases import phase_index
from .base import Observer, Outcome, Step


def check_recording(experiment, network, rule, *, steps_per_epoch: int, epochs: int,
                    trace_steps: Optional[list[int]] = None, notes: Optional[list[str]] = None) -> dict:
    """Check the recording block (names, size budget); return the size estimate. What the
    rule cannot provide is left out, one line each appended to ``notes``."""
    from ..recording.plan import estimate_bytes, selection

    rec = experiment.config.recording
    selection(rec, network, rule, file=experiment.file, notes=notes)
    est = estimate_bytes(rec, network, rule, batch_size=experiment.task.batch_size,
                         steps=steps_per_epoch * epochs, epochs=epochs, trace_steps=trace_steps)
    if est["bytes"] > rec.max_gib * 2**30:
        raise ConfigError(
            f"the recording would take about {est['bytes'] / 2**30:.1f} GiB ({est['records']} records of "
            f"{est['bytes_per_record'] / 2**20:.2f} MiB, {est['weight_records']} projection records of "
            f"{est['bytes_per_weight_record'] / 2**20:.2f} MiB), over the budget of {rec.max_gib} GiB; record less "
            "often (recording.every, projections_every), fewer samples or neurons, float16, or raise recording.max_gib",
            file=experiment.file, path="recording.max_gib")
    return est


def rank_batch(loop, k: int) -> int:
    """Samples of this rank's part of the epoch's ``k``-th global batch (0-based; the last
    one may be partial): what ``Split.indexed_batches`` hands out."""
    step = loop.experiment.task.batch_size * loop.dist.world
    glob = min(step, len(loop.task.train) - k * step)
    rank, world = loop.dist.rank, loop.dist.world
    return glob * (rank + 1) // world - glob * rank // world


class Recording(Observer):
    """Keeps ``recorder`` (a ``Recorder``, on rank 0 of a
    run with ``recording.enabled``); ``resume_from``: the recording's position to continue
    from (a checkpoint's, or the last run's of this trainer)."""

    def __init__(self, enabled: bool):
        self.enabled = enabled
        self.recorder = None
        self.resume_from: Optional[dict] = None

    def start(self, loop) -> None:
        if self.enabled and loop.dist.is_main:
            self.open(loop, loop.run_dir, resume=self.resume_from)

    def open(self, loop, run_dir: Path, *, resume: Optional[dict] = None) -> None:
        from ..recording.recorder import FILENAME, Recorder

        task, cfg = loop.task, loop.experiment.config
        splits = {"train": list(task.metrics), "test": list(task.metrics)}
        if task.val is not None:
            splits["val"] = list(task.metrics)
        self.recorder = Recorder(cfg.recording, Path(run_dir) / FILENAME, network=loop.network, rule=loop.rule,
                                 experiment=loop.experiment, metric_names=splits,
                                 batch_size=rank_batch(loop, 0), seed=cfg.training.seed,
                                 device=loop.device, argv=loop.options.argv, resume=resume,
                                 alignment=loop.alignment.names if loop.alignment is not None else None,
                                 scheme=loop.scheme)

    def epoch_end_step(self, loop) -> int:
        """The step of the epoch (1-based) whose state the epoch-end record holds: the last
        one, unless its batch is too short for the recorded samples, then the one before."""
        last = loop.steps_per_epoch
        if last > 1 and not self.recorder.fits(rank_batch(loop, last - 1)):
            return last - 1
        return last

    #: whether the step under way keeps the recorded samples' trajectory (asked in before_step)
    capturing = False

    def before_step(self, loop, step: Step) -> None:
        self.capturing = False
        if step.epoch is None or self.recorder is None or not loop.scheme.trace_steps:
            return
        # keep a recorded step's trajectory
        if self.recorder.due(step.number, step.size, epoch_end=step.in_epoch == self.epoch_end_step(loop)):
            step.keep(self.recorder.positions)
            self.capturing = True

    def after_step(self, loop, step: Step) -> None:
        if step.epoch is None or self.recorder is None:
            return
        # the state is this batch's (the epoch-end one: before evaluation)
        self.recorder.after_step(step.number, step.epoch, step.ids,
                                 epoch_end=step.in_epoch == self.epoch_end_step(loop),
                                 state=getattr(step.presentation, "state", None),
                                 trajectory=step.kept(self.recorder.positions) if self.capturing else None,
                                 phase=phase_index(loop.phases, step.epoch))
        self.check(loop)

    def check(self, loop) -> None:
        """A failed write stops the run after this step (rank 0's failure stops every rank)."""
        if self.recorder is not None and self.recorder.failure is not None:
            loop.fail(WriteError(self.recorder.failure), "recording failure")

    def epoch_end(self, loop, row: dict) -> None:
        # the recording flushes the epoch first, so an epoch in metrics.csv is always on disk in it
        if self.recorder is not None:
            self.recorder.end_epoch(loop.global_step, row["epoch"], loop.last_batch_ids, row)
            self.check(loop)

    def stop(self, loop, outcome: Outcome) -> None:
        """Close the file, marked complete only when the run's weights are written."""
        if self.recorder is None:
            return
        self.recorder.close(complete=outcome.complete)
        if self.recorder.failure is not None and loop.failure is None:
            loop.failure = WriteError(self.recorder.failure)
        if self.recorder.final_position is not None:  # a later run() (fit) continues this recording
            self.resume_from = self.recorder.final_position
