"""The model-selection observer: keeps the epoch with the best validation metric (its
weights when ``training.select_best``), signals early stopping, and restores the best
epoch's weights when the run ends."""
from __future__ import annotations

import copy
from typing import Optional

from ..phases import phase_index
from .base import Observer, Outcome


def snapshot(network, rule) -> dict:
    """A copy of the network's and the rule's state."""
    return {"network": copy.deepcopy(network.state_dict()), "rule": copy.deepcopy(rule.state_dict())}


def restore(network, rule, state: dict) -> None:
    network.load_state_dict(state["network"])
    rule.load_state_dict(state["rule"])


class Selection(Observer):
    """Watches ``val_<metric>`` (``higher``: whether larger is better).

    ``early_stopping``: the ``training.early_stopping`` block or None; after ``patience``
    epochs without an improvement of more than ``min_delta``, ``early_stopped`` turns
    True and the loop ends the run as finished. ``keep_best``: keep the best epoch's
    weights (``training.select_best``) and put them back in the network at the end. Epochs
    of a phase without a teacher (``training.phases``) are neither selected nor counted: their
    validation scores say nothing of the learning the task asks for."""

    def __init__(self, metric: str, higher: bool, *, early_stopping=None, keep_best: bool = True):
        self.metric, self.higher = metric, higher
        self.early_stopping, self.keep_best = early_stopping, keep_best
        self.best: Optional[float] = None
        self.best_epoch = 0
        self.best_state: Optional[dict] = None
        self.stale = 0
        self.early_stopped = False
        #: the epoch whose weights the network holds since the run ended (None: the last one)
        self.restored: Optional[int] = None
        #: the last epoch's weights, set aside while the network holds the best (a later run continues them)
        self.final_state: Optional[dict] = None

    # the part of a checkpoint this observer keeps
    def state(self) -> dict:
        return {"best": self.best, "best_epoch": self.best_epoch, "stale": self.stale,
                "early_stopped": self.early_stopped, "best_state": self.best_state}

    def load(self, state: dict) -> None:
        self.best, self.best_epoch, self.stale = state["best"], state["best_epoch"], state["stale"]
        self.early_stopped, self.best_state = state["early_stopped"], state["best_state"]

    def better(self, score: float) -> bool:
        delta = self.early_stopping.min_delta if self.early_stopping else 0.0
        return score > self.best + delta if self.higher else score < self.best - delta

    def start(self, loop) -> None:
        if self.final_state is not None:  # the last run left the selected epoch's weights in place
            restore(loop.network, loop.rule, self.final_state)
            self.final_state = None
        self.restored = None

    def epoch_end(self, loop, row: dict) -> None:
        score = row.get(f"val_{self.metric}")
        if score is None:
            return
        epoch = row["epoch"]
        phases = loop.phases
        if phases and not phases[phase_index(phases, epoch)].teacher:
            return  # a phase without a teacher (a circuit's self-predicting one) is not judged on the task
        if self.best is None or self.better(score):
            self.best, self.best_epoch, self.stale = score, epoch, 0
            if self.keep_best:
                self.best_state = snapshot(loop.network, loop.rule)
            return
        self.stale += 1
        stop = self.early_stopping
        if stop and self.stale >= stop.patience:
            loop.options.log(f"early stopping after epoch {epoch}: val_{stop.metric} has not improved "
                             f"for {self.stale} epochs")
            self.early_stopped = True

    def stop(self, loop, outcome: Outcome) -> None:
        """Put the best epoch's weights back (after the checkpoint, before the final weights)."""
        if outcome.error is not None or not loop.rows:
            return
        if self.best_state is not None and self.best_epoch != loop.rows[-1]["epoch"]:
            self.final_state = snapshot(loop.network, loop.rule)
            restore(loop.network, loop.rule, self.best_state)
            self.restored = self.best_epoch
