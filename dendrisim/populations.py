"""Populations of neurons: the clamped input, pyramidal neurons with three compartments and
interneurons with two (a microcircuit's, Sacramento et al. 2018).

A population owns its state, never its incoming weights. Every state variable is a
batched tensor ``[batch, *shape]`` on the population's device, replaced each step:

- ``basal``: summed feedforward input, ``basal = Σ_p W_p · rate_p (+ b_p)``
- ``soma``: the somatic potential; at steady state ``soma = basal`` (with simulated
  compartments, :class:`Compartments`, the soma integrates basal and apical input in time)
- ``rate``: the output, ``rate = f(soma)``
- ``apical``: top-down input through the rule's feedback plus a microcircuit's explicit
  apical projections (top-down and lateral rates), written by the settling scheme
  (``dynamics.mode``; the teacher signal at the output)
- ``error``: the somatic error ``δ = f'(soma) ⊙ apical``, written by the settling scheme

An interneuron (:class:`InterneuronPopulation`) has a ``dendrite`` (its basal-like input
``v_D = Σ_p W_p · rate_p (+ b_p)``) and a ``nudging`` input (the soma of the population it
predicts, one to one) in place of ``basal`` and ``apical``, the same slots under their names.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
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


@dataclass(frozen=True)
class Compartments:
    r"""Constants of the conductance-coupled soma (Sacramento et al. 2018, eq. 1):

    .. math:: τ \frac{du}{dt} = -g_L u + g_B (v_B - u) + g_A (v_A - u)

    whose fixed point is ``u = a v_B + λ v_A`` with the attenuation ``a = g_B / g`` and the
    nudging ``λ = g_A / g`` (``g = g_L + g_B + g_A``).

    ``target_nudged``: the second input is a teacher that is off in the free state (an
    interneuron's somatic nudging, g_A = g_som): the dendritic prediction leaves its
    conductance out, ``a = g_B / (g_L + g_B)``, while ``λ`` stays ``g_A / g``. Without it
    (pyramidal neurons) the apical compartment is always coupled, so ``g_A`` is in ``a``."""

    tau: float
    g_leak: float
    g_basal: float
    g_apical: float
    target_nudged: bool = False

    @property
    def total(self) -> float:
        return self.g_leak + self.g_basal + self.g_apical

    @property
    def attenuation(self) -> float:
        """``g_B / g``: the dendritic prediction is ``v̂_B = attenuation · v_B`` (``g_B / (g_L +
        g_B)`` when ``target_nudged``: the soma with its nudging off)."""
        if self.target_nudged:
            return self.g_basal / (self.g_leak + self.g_basal)
        return self.g_basal / self.total

    @property
    def nudging(self) -> float:
        """``λ = g_A / g``: how far the apical input moves the soma at the fixed point."""
        return self.g_apical / self.total


class PyramidalPopulation(Population):
    """Pyramidal neurons with a soma, a basal and an apical compartment.

    With ``compartments`` the soma is simulated by the euler settling scheme
    (``dynamics.mode: euler``, ``dendrisim.settling``; one step is
    ``dendrisim.functional.compartment_step``) and its free
    state, with no apical input, is the dendritic prediction ``soma = (g_B/g) · basal``;
    without, ``soma = basal`` exactly (the steady state of the sweep)."""

    recordable = ("soma", "basal", "apical", "rate", "error")
    #: whether the rule's feedback (the errors above, carried back) reaches the apical
    #: compartment; the settling scheme reads it (interneurons: no, they are nudged instead)
    rule_feedback = True
    #: the compartment of the projections (``Network.apical_in`` or ``somatic_in``) whose drive
    #: the settling scheme puts in the second slot (``apical``): explicit apical input here,
    #: the nudging soma for interneurons
    second_input = "apical"

    def __init__(self, name: str, shape: tuple[int, ...], activation: Activation, *,
                 compartments: Optional[Compartments] = None):
        super().__init__(name, shape)
        self.activation = activation
        self.compartments = compartments

    def integrate(self, basal: torch.Tensor) -> torch.Tensor:
        """The free state under basal drive: ``soma = basal`` (steady), or the dendritic
        prediction ``soma = (g_B/g) · basal`` of simulated compartments; ``rate = f(soma)``."""
        self.basal = basal
        self.soma = basal if self.compartments is None else self.prediction(basal)
        self.rate = self.activation.f(self.soma)
        return self.rate

    def prediction(self, basal: torch.Tensor) -> torch.Tensor:
        """The dendritic prediction ``v̂_B = (g_B/g) · basal`` of the somatic potential."""
        a = self.compartments.attenuation
        return basal if a == 1.0 else basal * a

    def derivative(self) -> torch.Tensor:
        """``f'(soma)`` at the current state."""
        return self.activation.df(self.soma, self.rate)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, activation={self.activation.name}"


class InterneuronPopulation(PyramidalPopulation):
    r"""Interneurons of a microcircuit (Sacramento et al. 2018): a soma and a dendrite,
    nudged one to one by the soma of the population they predict:

    .. math:: τ \frac{du_I}{dt} = -g_L u_I + g_D (v_D - u_I) + g_{som} (u_{k+1} - u_I)

    The pyramidal neuron's equation with ``g_B = g_D`` and ``g_A = g_som`` (its constants,
    :class:`Compartments` with ``target_nudged``), so the scheme's step, prediction and
    error are the pyramidal ones: ``dendrite`` is the ``basal`` slot (``v_D``), ``nudging``
    the ``apical`` slot (``u_{k+1}``, written by the settling scheme), the dendritic
    prediction ``v̂_D = g_D/(g_L + g_D) · v_D`` (the free state) and the error
    ``(f(u_I) − f(v̂_D))/λ_I``. The rule's feedback never reaches it (``rule_feedback``)."""

    recordable = ("soma", "dendrite", "nudging", "rate", "error")
    rule_feedback = False
    second_input = "soma"

    @property
    def dendrite(self) -> Optional[torch.Tensor]:
        """``v_D``, the dendrite's potential: the ``basal`` slot."""
        return self.basal

    @dendrite.setter
    def dendrite(self, value: Optional[torch.Tensor]) -> None:
        self.basal = value

    @property
    def nudging(self) -> Optional[torch.Tensor]:
        """The nudging potential (the predicted population's soma): the ``apical`` slot."""
        return self.apical

    @nudging.setter
    def nudging(self, value: Optional[torch.Tensor]) -> None:
        self.apical = value
