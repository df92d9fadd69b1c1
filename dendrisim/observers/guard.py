"""The NaN guard: every ``training.guard_every`` steps, stop at the first non-finite value."""
from __future__ import annotations

from typing import Iterator

import torch

from ..errors import NumericalError
from .base import Observer, Step


def watched(network, rule, state=None) -> Iterator[tuple[str, str, str, torch.Tensor]]:
    """(kind, owner, variable, tensor) of everything the guard checks, in feedforward order:
    populations' recordable variables in ``state`` (the last presentation's), then each
    projection's update and weight, then the rule's parameters and their updates."""
    state = getattr(network, "last_state", None) if state is None else state
    for pop in network.simulated() if state is not None else ():  # interneurons too
        for var in pop.recordable:
            yield "population", pop.name, var, state[pop.name].get(var)
    for proj in network.projections.values():
        if proj.weight is None:
            continue
        yield "projection", proj.name, "update", proj.weight.grad
        yield "projection", proj.name, "weight", proj.weight
    for name, param in rule.named_parameters():
        yield "rule parameter", name, "value", param
        yield "rule parameter", name, "update", param.grad


def first_nonfinite(network, rule, state=None):
    """(kind, owner, variable) of the first non-finite tensor, or None (one host sync when all are finite)."""
    tensors = [w for w in watched(network, rule, state) if w[3] is not None]
    # one cheap sentinel: a NaN or Inf anywhere makes the sum of the sums non-finite
    if bool(torch.isfinite(torch.stack([t.detach().sum(dtype=torch.float32) for *_, t in tensors]).sum())):
        return None
    # the sentinel also overflows when finite values are merely huge (weights near 1e38): then none is bad
    return next((w[:3] for w in tensors if not bool(torch.isfinite(w[3]).all())), None)


class NanGuard(Observer):
    """After every ``every``-th step of an epoch, raise :class:`~dendrisim.errors.NumericalError` naming the
    first population or projection variable that holds NaN or Inf (``every`` 0: never).
    The step is not recorded and no checkpoint holds it."""

    def __init__(self, every: int, *, file: str):
        self.every, self.file = every, file

    def after_step(self, loop, step: Step) -> None:
        if step.epoch is None or not self.every or step.number % self.every:
            return
        bad = first_nonfinite(loop.network, loop.rule, getattr(step.presentation, "state", None))
        if bad is None:
            return
        kind, owner, var = bad
        where = f"in epoch {step.epoch}, training step {step.number}" + (
            f" (checked every {self.every} steps)" if self.every > 1 else "")
        raise NumericalError(
            f"{self.file}: non-finite values (NaN or Inf) in {kind} {owner!r}, variable {var!r}, "
            f"{where} (the first bad one in feedforward order). The recording up to the last flush and the "
            "last checkpoint are kept. Lower optimizer.lr (or a projection's lr_scale), or bound the rule with "
            + ("plasticity.clip_apical / clip_update" if getattr(loop.rule, "carries_feedback", True)
               else "plasticity.clip_update"))
