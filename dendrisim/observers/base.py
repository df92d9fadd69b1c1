"""The observer interface: what a training loop tells the things that watch it.

A loop (:class:`dendrisim.training.Trainer`) calls, on each of its observers in the order
they were added:

- ``start(loop)``: a run begins (its folder exists, on rank 0); open files here;
- ``before_step(loop, step)``: a batch is about to be presented; ``step.keep(positions)``
  asks the settling scheme to keep the trajectory of those sample positions (observers'
  requests add up; ``step.kept(positions)`` gives each its own rows afterwards);
- ``after_step(loop, step)``: the step is done (update applied, ``step.presentation``,
  ``step.stats`` and ``loop.global_step`` are this step's);
- ``epoch_end(loop, row)``: an epoch ended and was evaluated; ``row`` is its metrics row
  (already in ``loop.rows``), and the loop stands at the next epoch;
- ``stop(loop, outcome)``: the run ends, however it ends. Stops run in the *reverse* order
  (the last added stops first, as nested ``with`` blocks close), so an observer added
  later still sees what an earlier one keeps (the recording is closed last).

Every hook runs under ``torch.no_grad()``. Steps of ``Trainer.step(x, y)`` outside any
epoch reach observers too, with ``step.epoch`` None; the built-in observers, which keep
the run's files, act only on the steps of an epoch.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Optional

import torch


@dataclass
class Step:
    """One training step, as the loop hands it to its observers.

    ``number`` is the global step it becomes (1-based, what ``loop.global_step`` reads after
    it); ``epoch`` and ``in_epoch`` (1-based) place it in the run, both None for a step of
    ``Trainer.step(x, y)``; ``ids`` are the batch's sample indices in the training split
    (None outside an epoch); ``size`` its number of samples."""

    number: int
    size: int
    epoch: Optional[int] = None
    in_epoch: Optional[int] = None
    ids: Optional[torch.Tensor] = None
    #: the sample positions whose trajectory the scheme keeps: what every ``keep`` asked for
    capture: Optional[torch.Tensor] = None
    #: set by the loop: what ``scheme.present`` returned (``.trajectory`` when captured)
    presentation: Any = None
    #: set by the loop: the task's summed batch statistics, before the update (see :meth:`metrics`)
    stats: Optional[torch.Tensor] = None
    #: set by the loop: the ranks agreed to stop after this step
    stop: bool = False
    finish: Optional[Callable[[torch.Tensor, int], dict]] = field(default=None, repr=False)

    def keep(self, positions: torch.Tensor) -> None:
        """Ask for the trajectory of these batch positions (in ``before_step``); requests of
        several observers add up, so none replaces another's."""
        if self.capture is None or self.capture is positions:
            self.capture = positions
        else:
            self.capture = torch.unique(torch.cat([self.capture, positions]))

    def kept(self, positions: torch.Tensor) -> Optional[dict[str, dict[str, torch.Tensor]]]:
        """The presentation's trajectory of the positions this observer asked for with
        :meth:`keep` in this step (``{population: {variable: [len(positions), states, ...]}}``),
        None when none was kept. Ask only for positions you asked to keep."""
        trajectory = getattr(self.presentation, "trajectory", None)
        if trajectory is None or self.capture is positions:
            return trajectory
        rows = (self.capture[None, :] == positions[:, None]).int().argmax(1)  # where each position was kept
        return {pop: {var: t.index_select(0, rows) for var, t in variables.items()}
                for pop, variables in trajectory.items()}

    def metrics(self) -> dict[str, float]:
        """The batch's metrics (``loss``, ``accuracy``, ...) of the network's prediction
        before the update; one host synchronisation, so ask only when you need them."""
        return self.finish(self.stats.to(torch.float64), self.size)


@dataclass
class Outcome:
    """How a run ended, as ``stop`` hooks see it.

    ``reason``: None when every epoch ran (or early stopping ended the run), else why it
    stopped (``request_stop``'s reason: ``"SIGTERM"``, ``"recording failure"``, ...).
    ``mid_epoch``: it stopped between two steps of an epoch. ``error``: the exception that
    ended the loop (then nothing more is saved). ``complete``: the run's final weights are
    written (set by :class:`~dendrisim.observers.weights.FinalWeights`): the run is finished."""

    reason: Optional[str] = None
    mid_epoch: bool = False
    error: Optional[BaseException] = None
    complete: bool = False

    @property
    def finished(self) -> bool:
        """Every epoch ran (or early stopping ended it), without a stop or an error."""
        return self.reason is None and self.error is None


class Observer:
    """Base class of the loop's observers: every hook does nothing until overridden.

    .. code-block:: python

        class LossLog(Observer):
            def __init__(self):
                self.losses = []

            def after_step(self, loop, step):
                self.losses.append(step.metrics()["loss"])

        trainer.observe(LossLog())
    """

    def start(self, loop) -> None:
        """A run begins (``loop.run_dir`` exists on rank 0)."""

    def before_step(self, loop, step: Step) -> None:
        """A batch is about to be presented; may ask for a trajectory with ``step.keep``."""

    def after_step(self, loop, step: Step) -> None:
        """The step is done: the update is applied, ``step.presentation`` holds the presentation."""

    def epoch_end(self, loop, row: dict) -> None:
        """An epoch ended; ``row`` is its metrics row (the last of ``loop.rows``)."""

    def stop(self, loop, outcome: Outcome) -> None:
        """The run ends (called in reverse order of the observers)."""


class OnEpoch(Observer):
    """Calls ``fn(row)`` at each epoch end (``RunOptions.on_epoch``: a tuner's pruner)."""

    def __init__(self, fn: Callable[[dict], None]):
        self.fn = fn

    def epoch_end(self, loop, row: dict) -> None:
        self.fn(row)
