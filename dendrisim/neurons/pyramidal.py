r"""Pyramidal neurons with a soma, a basal and an apical compartment.

Every compartment is a batched tensor ``[batch, *shape]``, replaced each presentation:

- ``basal``: summed feedforward input, ``basal = Σ_p W_p · rate_p (+ b_p)``
- ``soma``: the somatic potential; at steady state ``soma = basal`` (with simulated
  compartments the soma integrates basal and apical input in time, :meth:`Pyramidal.step`)
- ``rate``: the output, ``rate = f(soma)``
- ``apical``: top-down input through the rule's feedback plus a microcircuit's explicit
  apical projections (the teacher signal at the output), written by the settling scheme
- ``error``: the somatic error ``δ = f'(soma) ⊙ apical`` (steady), or the soma's mismatch with
  its dendritic prediction ``e = (f(u) − f(v̂_B))/λ`` (simulated), written by the scheme

Simulated compartments (Sacramento, Costa, Bengio & Senn 2018, eq. 1; Urbanczik & Senn 2014):

.. math::

    τ \frac{du}{dt} = -g_L u + g_B (v_B - u) + g_A (v_A - u), \qquad
    v̂_B = \tfrac{g_B}{g} v_B, \qquad e = \frac{f(u) - f(v̂_B)}{λ}, \qquad λ = \tfrac{g_A}{g}
"""
from __future__ import annotations

from typing import Any, Optional

import torch

from .. import functional as Fn
from ..activations import ACTIVATIONS, Activation
from .base import NEURONS, Compartments, NeuronModel

#: the ``dynamics`` keys of a pyramidal population's constants
PYRAMIDAL_CONSTANTS = ("tau", "g_leak", "g_basal", "g_apical")


def own_constants(dynamics, name: str, keys: tuple[str, ...]) -> dict[str, float]:
    """The constants ``keys`` of population ``name``: its own override in
    ``dynamics.populations`` where it has one, the ``dynamics`` block's otherwise."""
    own = dynamics.populations.get(name)
    return {key: getattr(own, key) if own is not None and getattr(own, key) is not None else getattr(dynamics, key)
            for key in keys}


@NEURONS.register("pyramidal")
class PyramidalPopulation(NeuronModel):
    """Pyramidal neurons with a soma, a basal and an apical compartment (module docstring).

    With ``compartments`` (constants) the soma is simulated by a settling scheme that steps
    it in time (euler; :meth:`step`) and its free state, with no apical input, is the
    dendritic prediction ``soma = (g_B/g) · basal``; without, ``soma = basal`` exactly (the
    steady state of the sweep)."""

    variables = {"soma": "somatic potential u", "basal": "basal dendrite's drive v_B = Σ W r_pre + b",
                    "apical": "apical dendrite's input v_A (the rule's feedback, explicit apical projections; "
                              "the teacher at the output)",
                    "rate": "output rate f(u)", "error": "local error δ (steady) or (f(u) − f(v̂_B))/λ (simulated)"}
    summary = "soma, basal and apical compartments (Sacramento et al. 2018; the steady state soma = basal)"
    offers_output = True
    offers_apical = True
    offers_nudging = True
    spatial = True
    constants = PYRAMIDAL_CONSTANTS

    def __init__(self, name: str, shape: tuple[int, ...], activation: Activation, *,
                 compartments: Optional[Compartments] = None):
        super().__init__(name, shape)
        self.activation = activation
        #: the simulated soma's constants (None: the steady state, soma = basal)
        self.compartments = compartments

    @classmethod
    def from_config(cls, name: str, shape: tuple[int, ...], config: Any, *, options: Any,
                    simulated: bool) -> "PyramidalPopulation":
        constants = Compartments(**own_constants(config.dynamics, name, PYRAMIDAL_CONSTANTS)) if simulated else None
        return cls(name, shape, ACTIVATIONS.get(config.populations[name].activation), compartments=constants)

    # ------------------------------------------------------------------ the steady state
    def integrate(self, basal: torch.Tensor) -> torch.Tensor:
        """The free state under basal drive: ``soma = basal`` (steady), or the dendritic
        prediction ``soma = (g_B/g) · basal`` of simulated compartments; ``rate = f(soma)``."""
        self.basal = basal
        self.soma = basal if self.compartments is None else self.prediction(basal)
        self.rate = self.activation.f(self.soma)
        return self.rate

    def derivative(self) -> torch.Tensor:
        """``f'(soma)`` at the current state."""
        return self.activation.df(self.soma, self.rate)

    # ------------------------------------------------------------------ simulated compartments
    def prediction(self, basal: torch.Tensor) -> torch.Tensor:
        """The dendritic prediction ``v̂_B = (g_B/g) · basal`` of the somatic potential."""
        a = self.compartments.attenuation
        return basal if a == 1.0 else basal * a

    def local_error(self, rate: torch.Tensor, f_predicted: torch.Tensor, *,
                    out: Optional[torch.Tensor] = None) -> torch.Tensor:
        """``e = (f(u) − f(v̂_B)) / λ``: the soma's mismatch with its dendritic prediction."""
        return torch.sub(rate, f_predicted, out=out).div_(self.compartments.nudging)

    def step(self, u: torch.Tensor, basal: torch.Tensor, *, dt: float) -> None:
        """``u`` one Euler step of ``dt`` further, in place, toward the basal drive and the
        current apical input (``dendrisim.functional.compartment_step`` with the
        population's τ and conductances), then ``rate = f(u)``."""
        c = self.compartments
        Fn.compartment_step(u, basal, self.apical, dt=dt, tau=c.tau, g_leak=c.g_leak, g_basal=c.g_basal,
                            g_apical=c.g_apical, out=u)
        self.rate = self.activation.f(u)

    def describe(self) -> str:
        c = self.compartments
        if c is None:
            return ""
        return (f"tau {c.tau}, g_leak {c.g_leak}, g_basal {c.g_basal}, g_apical {c.g_apical}: nudging λ "
                f"{c.nudging:.3g}, free soma = {c.attenuation:.3g} x basal")

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, activation={self.activation.name}"
