"""Populations of neurons: the clamped input and pyramidal neurons with three compartments.

A population owns its state, never its incoming weights. Every state variable is a
batched tensor ``[batch, *shape]`` on the population's device, replaced each step:

- ``basal``: summed feedforward input, ``basal = Σ_p W_p · rate_p (+ b_p)``
- ``soma``: the somatic potential; at steady state ``soma = basal``
- ``rate``: the output, ``rate = f(soma)``
- ``apical``: top-down input written by the plasticity rule (teacher signal at the output)
- ``error``: the somatic error ``δ = f'(soma) ⊙ apical`` written by the rule
"""
from __future__ import annotations

import math
from typing import Optional

import torch
from torch import nn

from .activations import Activation


class Population(nn.Module):
    """Base class: a named group of neurons with a shape and declared recordables."""

    recordable: tuple[str, ...] = ()

    def __init__(self, name: str, shape: tuple[int, ...]):
        super().__init__()
        self.name = name
        self.shape = tuple(int(s) for s in shape)
        self.size = math.prod(self.shape)
        for var in self.recordable:
            setattr(self, var, None)

    def state(self, variable: str) -> Optional[torch.Tensor]:
        """The current value of a declared state variable."""
        if variable not in self.recordable:
            raise KeyError(f"{self.name} has no variable {variable!r}; it has {', '.join(self.recordable)}")
        return getattr(self, variable)

    def extra_repr(self) -> str:
        return f"{self.name!r}, shape={self.shape}"


class InputPopulation(Population):
    """Neurons whose rate is clamped to the data."""

    recordable = ("rate",)

    def clamp(self, x: torch.Tensor) -> None:
        self.rate = x


class PyramidalPopulation(Population):
    """Pyramidal neurons with a soma, a basal and an apical compartment."""

    recordable = ("soma", "basal", "apical", "rate", "error")

    def __init__(self, name: str, shape: tuple[int, ...], activation: Activation):
        super().__init__(name, shape)
        self.activation = activation

    def integrate(self, basal: torch.Tensor) -> torch.Tensor:
        """Steady state of the soma under basal drive: ``soma = basal``, ``rate = f(soma)``."""
        self.basal = basal
        self.soma = basal
        self.rate = self.activation.f(basal)
        return self.rate

    def derivative(self) -> torch.Tensor:
        """``f'(soma)`` at the current state."""
        return self.activation.df(self.soma, self.rate)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, activation={self.activation.name}"
