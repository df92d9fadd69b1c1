"""Somatic activation functions ``rate = f(soma)`` and their derivatives.

Each activation gives ``f(soma)`` and ``f'(soma)``; the derivative may use the rate
already computed (``tanh' = 1 - rate²``), which saves a transcendental per neuron.
``softmax`` couples the neurons of a population, so it is only allowed on the output
population, where the task's cross-entropy makes ``t - rate`` the exact error.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F

from .registry import Registry


@dataclass(frozen=True)
class Activation:
    name: str
    f: Callable[[torch.Tensor], torch.Tensor]
    df: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (soma, rate) -> f'(soma)
    elementwise: bool = True
    # The loss for which ``t - rate`` is exactly minus the gradient w.r.t. the soma
    # (the canonical link); None means squared error, whose soma gradient needs f'.
    canonical_loss: str | None = None


ACTIVATIONS: Registry[Activation] = Registry("activation")


def _add(act: Activation) -> None:
    ACTIVATIONS.register(act.name)(act)


_add(Activation("tanh", torch.tanh, lambda soma, rate: 1.0 - rate * rate))
_add(Activation("sigmoid", torch.sigmoid, lambda soma, rate: rate * (1.0 - rate),
               canonical_loss="binary_cross_entropy"))
_add(Activation("relu", torch.relu, lambda soma, rate: (soma > 0).to(soma.dtype)))
_add(Activation(
    "leaky_relu",
    lambda x: F.leaky_relu(x, 0.01),
    lambda soma, rate: (soma > 0).to(soma.dtype).mul_(0.99).add_(0.01),
))
_add(Activation("linear", lambda x: x, lambda soma, rate: torch.ones_like(soma), canonical_loss="mse"))
_add(Activation(
    "softmax",
    lambda x: torch.softmax(x, dim=-1),
    lambda soma, rate: rate * (1.0 - rate),  # diagonal of the Jacobian only
    elementwise=False,
    canonical_loss="cross_entropy",
))
