r"""Interneurons of a microcircuit (Sacramento, Costa, Bengio & Senn 2018): a soma and a
dendrite, nudged one to one by the soma of the population they predict:

.. math:: τ \frac{du_I}{dt} = -g_L u_I + g_D (v_D - u_I) + g_{som} (u_{k+1} - u_I)

The pyramidal neuron's equation with ``g_B = g_D`` and ``g_A = g_som`` (its constants,
:class:`~dendrisim.neurons.Compartments` with ``target_nudged``), so its step,
prediction and error are the pyramidal ones: ``dendrite`` is the ``basal`` slot (``v_D``),
``nudging`` the ``apical`` slot (``u_{k+1}``, written by the settling scheme), the dendritic
prediction ``v̂_D = g_D/(g_L + g_D) · v_D`` (the free state) and the error
``(f(u_I) − f(v̂_D))/λ_I``. The rule's feedback never reaches it.
"""
from __future__ import annotations

from typing import Any, Optional

import torch

from ..activations import ACTIVATIONS
from ..state import PopulationState
from .base import NEURONS, Compartments
from .pyramidal import PyramidalPopulation, own_constants

#: the ``dynamics`` keys of an interneuron's constants
INTERNEURON_CONSTANTS = ("tau", "g_leak", "g_dendrite", "g_som")


def interneuron_constants(dynamics, name: str) -> Compartments:
    """The constants of interneuron population ``name`` (``g_B = g_dendrite``, ``g_A =
    g_som``, the nudging left out of the dendritic prediction): its own overrides in
    ``dynamics.populations`` where it has them, the ``dynamics`` block's otherwise."""
    c = own_constants(dynamics, name, INTERNEURON_CONSTANTS)
    return Compartments(tau=c["tau"], g_leak=c["g_leak"], g_basal=c["g_dendrite"], g_apical=c["g_som"],
                        target_nudged=True)


def nudging_sources(config: Any, name: str) -> list[str]:
    """The populations that nudge ``name`` (sources of its ``compartment: soma`` projections)."""
    return [p.source for p in config.projections if p.target == name and p.compartment == "soma"]


def interneuron_activation(config: Any, name: str) -> str:
    """The activation of interneuron population ``name``: its own, or for ``auto`` that of the
    population that nudges it (the source of its ``compartment: soma`` projection)."""
    act = config.populations[name].activation
    if act != "auto":
        return act
    sources = nudging_sources(config, name)
    if len(sources) != 1 or config.populations[sources[0]].activation == "auto":
        # refused by the config checks; a guard for networks built by hand
        raise ValueError(f"interneuron population {name!r} has activation auto, which takes the activation of the "
                         f"one population that nudges it (compartment: soma); it has {len(sources)}")
    return config.populations[sources[0]].activation


class InterneuronState(PopulationState):
    """An interneuron's state: ``dendrite`` is the ``basal`` slot (``v_D``), ``nudging`` the
    ``apical`` slot (the predicted population's soma), so the pyramidal equations apply."""

    def __init__(self, variables):
        super().__init__([{"dendrite": "basal", "nudging": "apical"}.get(v, v) for v in variables])

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


@NEURONS.register("interneuron")
class InterneuronPopulation(PyramidalPopulation):
    """Interneurons of a microcircuit (module docstring): the pyramidal step with
    ``g_B = g_dendrite``, ``g_A = g_som`` and the nudging soma in the apical slot."""

    variables = {"soma": "somatic potential u_I", "dendrite": "dendrite's drive v_D = Σ W r_pre + b",
                 "nudging": "the nudging potential: the soma of the population it predicts",
                 "rate": "output rate f(u_I)", "error": "local error (f(u_I) − f(v̂_D))/λ_I"}
    summary = ("soma and dendrite, nudged one to one by the population it predicts (a microcircuit's interneuron, "
               "Sacramento et al. 2018)")
    offers_output = False
    offers_apical = False
    offers_nudging = False
    takes_nudging = True
    spatial = False
    apical_learns = True
    constants = INTERNEURON_CONSTANTS
    second_input = "soma"
    State = InterneuronState

    @classmethod
    def from_config(cls, name: str, shape: tuple[int, ...], config: Any, *, options: Any,
                    simulated: bool) -> "InterneuronPopulation":
        constants = interneuron_constants(config.dynamics, name) if simulated else None
        return cls(name, shape, ACTIVATIONS.get(interneuron_activation(config, name)), compartments=constants)

    def describe(self) -> str:
        c = self.compartments
        if c is None:
            return ""
        return (f"tau {c.tau}, g_leak {c.g_leak}, g_dendrite {c.g_basal}, g_som {c.g_apical}: nudging λ "
                f"{c.nudging:.3g}, free soma = {c.attenuation:.3g} x dendrite")
