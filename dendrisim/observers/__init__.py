"""Observers of the training loop: one small interface (:class:`Observer`: ``start``,
``before_step``, ``after_step``, ``epoch_end``, ``stop``), one module per observer.

The trainer's own observers, in the order it calls them:

========================  ==========================================================
:class:`NanGuard`         non-finite compartments, updates or weights end the run
:class:`Recording`        the HDF5 recording (asks the step for a trajectory when due)
:class:`FinalWeights`     ``weights.pt`` of a finished run
:class:`Alignment`        how far the rule's updates are from backprop's
:class:`MetricsFile`      ``metrics.csv`` and the log's epoch lines
:class:`OnEpoch`          ``RunOptions.on_epoch`` (a tuner's pruner)
:class:`Selection`        the best epoch and early stopping
:class:`Checkpoints`      ``checkpoint.pt``
========================  ==========================================================

Observers added with ``trainer.observe(...)`` come after them (and stop before them).
"""
from .alignment import Alignment
from .base import Observer, OnEpoch, Outcome, Step
from .checkpoints import Checkpoints
from .guard import NanGuard
from .metrics import MetricsFile
from .recording import Recording
from .selection import Selection
from .weights import FinalWeights

__all__ = ["Alignment", "Checkpoints", "FinalWeights", "MetricsFile", "NanGuard", "Observer", "OnEpoch",
           "Outcome", "Recording", "Selection", "Step"]
