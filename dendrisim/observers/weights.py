"""The final-weights observer: ``weights.pt`` of a finished run, written when it stops.

It stops after model selection (which puts the best epoch's weights back) and before
the recording (which is marked complete only once ``weights.pt`` is written)."""
from __future__ import annotations

import torch

from .. import rundir
from ..errors import NumericalError, WriteError
from .base import Observer, Outcome
from .checkpoints import check_storable, nonfinite_tensor, weights_sources

FILENAME = "weights.pt"


class FinalWeights(Observer):
    """At the stop of a finished run (no stop, no failure): rank 0 writes the network's and
    the rule's state to ``weights.pt`` atomically, then ``outcome.complete`` turns True. A
    failed write stops the run with the error (``loop.failure``); non-finite weights are a
    :class:`~dendrisim.errors.NumericalError` and nothing is written."""

    def __init__(self, *, file: str):
        self.file = file

    def stop(self, loop, outcome: Outcome) -> None:
        if not outcome.finished or loop.stop_requested is not None or loop.failure is not None:
            return
        try:
            if loop.dist.is_main:
                state = {"network": loop.network.state_dict(), "rule": loop.rule.state_dict()}
                bad = nonfinite_tensor(state)
                if bad:
                    raise NumericalError(f"{self.file}: the final weights hold non-finite values ({bad}); "
                                         f"{FILENAME} is not written")
                check_storable(state, str(loop.run_dir / FILENAME), sources=weights_sources(loop))
                rundir.write_atomic(loop.run_dir / FILENAME, "weights", lambda fh: torch.save(state, fh),
                                    checksum=True)
            outcome.complete = True
        except WriteError as err:
            loop.failure = err
