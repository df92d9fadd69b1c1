"""The alignment observer: every ``training.alignment.every`` steps, measure how far the
rule's updates are from backprop's (:mod:`dendrisim.alignment`) and record it."""
from __future__ import annotations

from .base import Observer, Step


class Alignment(Observer):
    """``probe``: an ``AlignmentProbe``; ``last``: its latest
    measures (``{projection: {measure: value}}``), which go into the epoch's metrics row.

    It runs after the recorder: measuring presents the probe batch, so the network no longer
    holds the training batch's state afterwards."""

    def __init__(self, probe, every: int):
        self.probe, self.every = probe, every
        self.last: dict = {}

    @property
    def names(self) -> list[str]:
        """The projections measured (the recording's alignment datasets)."""
        return self.probe.names

    def after_step(self, loop, step: Step) -> None:
        if step.epoch is None or step.number % self.every:
            return
        self.last = self.probe.measure()
        recording = loop.recording
        if recording.recorder is not None:
            recording.recorder.record_alignment(step.number, step.epoch, self.last)
            recording.check(loop)
