r"""Burst-multiplexing pyramidal neurons (Payeur, Guerguiev, Zenke, Richards & Naud 2021;
Greedy, Zhu, Pemberton, Mellor & Costa 2022).

A burst neuron sends two signals out of one spike train. Its **event rate**, driven by the
basal dendrite, goes forward; its apical dendrite sets the **probability that an event is a
burst**, and the **burst rate** goes back down:

.. math::

    v_B = \sum_p W_p e_{pre} + b, \qquad e = f(v_B), \qquad
    p = σ\big(β \, v_A \, g(e) + θ\big), \qquad θ = \log\frac{p_b}{1 − p_b}, \qquad b = p \, e

with ``β`` the ``burst_gain``, ``p_b`` the ``baseline`` (the offset ``θ`` puts the burst
probability at rest, ``v_A = 0``, at ``p_b``: 0 for the public code's ``p_b = 1/2``) and
``g(e) = 1 − e`` (``gate: true``, the public BurstCCN code's ``sigmoid(4 * apic * (1 -
e))``; with a sigmoid event rate ``e (1 − e) = f'(v_B)``, so ``b`` moves with ``v_A
f'(v_B)``) or ``g = 1`` (``gate: false``, the papers' ``σ(β v_A + θ)``). The public
burstprop code has no factor 4: its models set ``burst_gain: 1``. The apical potential is what the explicit apical
projections into the population bring (BurstCCN's ``Y``, ``reads: burst``, and its
subtractive ``Q``, ``reads: event``, whose weights carry their sign):

.. math:: v_A = \sum_{Y} W_Y \, b_{above} + \sum_{Q} W_Q \, e_{above} \qquad (W_Q = −Q^T)

At the output the teacher sets the burst probability (both papers' rate models, and the
public code's output layer): ``p = p_b ((t − e)(1 − e) + 1)``, so ``b − p_b e = p_b (t −
e) e (1 − e)``; without a teacher ``p = p_b``. ``p_b`` is the ``baseline``. ``error`` is the
burst rate's deviation from the baseline, ``b − p_b e``: what BurstCCN's basal synapses
learn from (``dendrisim.plasticity.burst``).

The steady settling scheme settles a network of burst neurons in one top-down sweep: the
output first, then each hidden population in reverse feedforward order (its apical input
reads populations above it, already settled). The event rates do not depend on the apical
input, so the sweep is exact: there is no fixed point to find.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Optional

import torch

from ..activations import ACTIVATIONS, Activation
from ..fields import opt
from ..errors import ConfigError
from ..state import PopulationState
from .base import NEURONS, NeuronModel, NeuronOptions


@dataclass(frozen=True)
class BurstOptions(NeuronOptions):
    burst_gain: float = opt(4.0, "β in p = σ(β v_A g(e) + logit(p_b)): how steeply the apical potential sets the "
                                 "burst probability (4 in the public BurstCCN code, 1 in its burstprop)", gt=0)
    gate: bool = opt(True, "multiply the apical potential by 1 − e before the sigmoid (the public BurstCCN code; "
                           "with a sigmoid event rate, b then moves with v_A f'(v_B)); false: σ(β v_A + logit(p_b))")
    baseline: float = opt(0.5, "p_b: the burst probability at rest (no apical input; the output without a teacher), "
                               "set by the offset θ = logit(p_b), and the baseline the burst rate is compared with "
                               "(error = b − p_b e); at most 0.5 on the output (its p reaches 2 p_b)", gt=0, lt=1)


class BurstState(PopulationState):
    """A burst population's state: ``event`` is the ``rate`` slot (what goes forward)."""

    def __init__(self, variables):
        super().__init__([v for v in variables if v != "event"])

    @property
    def event(self) -> Optional[torch.Tensor]:
        """The event rate ``e = f(v_B)``: the ``rate`` slot."""
        return self.rate

    @event.setter
    def event(self, value: Optional[torch.Tensor]) -> None:
        self.rate = value


@NEURONS.register("burst")
class BurstPopulation(NeuronModel):
    """Burst-multiplexing pyramidal neurons: event rate forward, burst probability set by the
    apical potential, burst rate back (docs/howto/burst.md has the equations)."""

    variables = {"soma": "somatic potential: the basal drive (steady state)",
                 "basal": "basal dendrite's drive v_B = Σ W e_pre + b",
                 "rate": "event rate e = f(v_B), what goes forward (also named event)",
                 "event": "event rate e = f(v_B) (the rate)",
                 "apical": "apical potential v_A = Σ W_Y b_above + Σ W_Q e_above (the output: t − e)",
                 "burst_prob": "burst probability p = σ(β v_A g(e) + logit(p_b)) (the output: p_b ((t − e)(1 − e) + 1))",
                 "burst": "burst rate b = p e, what goes back down",
                 "error": "the burst rate's deviation from its baseline, b − p_b e"}
    summary = ("burst-multiplexing pyramidal neurons: event rate forward, apical input sets the burst probability, "
               "burst rate back (Payeur et al. 2021, Greedy et al. 2022)")
    Options = BurstOptions
    State = BurstState
    offers_output = True
    offers_apical = True
    #: a map of feature channels when conv2d projections feed it (its sweep is element-wise)
    spatial = True
    #: settled by the steady scheme's top-down sweep: its apical input never moves its rate
    settles_in_sweep = True
    swept_variables = ("apical", "burst_prob", "burst", "error")
    twin_type = "pyramidal"  # the same event rates, f(v_B), without bursts
    twin_renames = {"event": "rate"}
    learns_by = "burst"  # bp's error fed into the burst sweep would not be backprop (its twin runs bp)

    def __init__(self, name: str, shape: tuple[int, ...], activation: Activation, options: BurstOptions):
        super().__init__(name, shape)
        self.activation = activation
        self.options = options

    @classmethod
    def from_config(cls, name: str, shape: tuple[int, ...], config: Any, *, options: Any,
                    simulated: bool) -> "BurstPopulation":
        return cls(name, shape, ACTIVATIONS.get(config.populations[name].activation), options)

    @classmethod
    def check(cls, name: str, config: Any, options: Any, *, file: str) -> None:
        """The gate ``1 − e`` is the sigmoid's ``f'/f``: refused with another activation. The
        output's burst probability is set by the target (:meth:`teach`), so it takes a sigmoid
        event rate and ``p_b ≤ 1/2`` (``p`` reaches ``2 p_b``), and no ``burst_gain`` or ``gate``
        other than their defaults (they would be ignored)."""
        where = f"populations.{name}"
        activation = config.populations[name].activation
        output = not any(p.source == name and p.compartment == "basal" for p in config.projections)
        if output:
            _check_output(config.populations[name], options, file=file, where=where)
        if options.gate and activation != "sigmoid":
            raise ConfigError(
                f"a burst population with gate: true multiplies its apical potential by 1 − e, the sigmoid's f'/f, so "
                f"its activation must be sigmoid, not {activation}; write activation: sigmoid, or gate: false",
                file=file, path=f"{where}.activation")

    @property
    def baseline(self) -> float:
        """``p_b``: the burst probability without a teacher, and the baseline of ``error``."""
        return self.options.baseline

    # ------------------------------------------------------------------ the forward pass
    def integrate(self, s, basal: torch.Tensor) -> torch.Tensor:
        """``e = f(v_B)``: the free state under the basal drive (``soma`` is ``v_B``)."""
        s.basal = s.soma = basal
        s.rate = self.activation.f(basal)
        return s.rate

    def derivative(self, s) -> torch.Tensor:
        """``f'(v_B)`` at the state ``s``."""
        return self.activation.df(s.soma, s.rate)

    # ------------------------------------------------------------------ the top-down sweep
    def burst_probability(self, apical: torch.Tensor, event: torch.Tensor) -> torch.Tensor:
        """``p = σ(β v_A g(e) + logit(p_b))`` (a new tensor)."""
        o = self.options
        x = torch.mul(apical, o.burst_gain)
        if o.gate:
            x.mul_(1.0 - event)
        if o.baseline != 0.5:
            x.add_(math.log(o.baseline / (1.0 - o.baseline)))
        return x.sigmoid_()

    def settle(self, s, apical: Optional[torch.Tensor]) -> None:
        """A hidden population's burst variables from its apical potential (None: no apical
        input, ``v_A = 0``): ``apical``, ``burst_prob``, ``burst`` and ``error`` into ``s``."""
        e = s.rate
        s.apical = torch.zeros_like(e) if apical is None else apical
        s.burst_prob = self.burst_probability(s.apical, e)
        self._finish(s)

    def teach(self, s, target: Optional[torch.Tensor]) -> None:
        """The output's burst variables from the target (None: no teacher, ``p = p_b``):
        ``p = p_b ((t − e)(1 − e) + 1)``, ``v_A = t − e``."""
        e = s.rate
        p_b = self.options.baseline
        if target is None:
            s.apical = torch.zeros_like(e)
            s.burst_prob = torch.full_like(e, p_b)
        else:
            s.apical = torch.sub(target, e)
            s.burst_prob = torch.rsub(e, 1.0).mul_(s.apical).add_(1.0).mul_(p_b)
        self._finish(s)

    def _finish(self, s) -> None:
        s.burst = torch.mul(s.burst_prob, s.rate)
        s.error = torch.mul(s.rate, -self.options.baseline).add_(s.burst)

    def describe(self) -> str:
        o = self.options
        gate = " (1 − e)" if o.gate else ""
        offset = f" + logit({o.baseline:g})" if o.baseline != 0.5 else ""
        return f"burst p = σ({o.burst_gain:g} v_A{gate}{offset}), baseline p_b {o.baseline:g}"

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, activation={self.activation.name}"


def _check_output(pop: Any, options: BurstOptions, *, file: str, where: str) -> None:
    """The output population of burst neurons: its burst probability is the target's,
    ``p = p_b ((t − e)(1 − e) + 1)`` (:meth:`BurstPopulation.teach`), whatever its apical input."""
    # a run's model.yaml writes every option out with its default (fill_neuron_options): those are not refused
    defaults = BurstOptions()
    given = [key for key in ("burst_gain", "gate") if key in pop.options and getattr(options, key) != getattr(
        defaults, key)]
    if given:
        raise ConfigError(
            f"{given[0]} has no effect on the output population: its burst probability is set by the target, "
            "p = p_b ((t − e)(1 − e) + 1), not by σ(β v_A g(e) + logit(p_b)); remove it (baseline is the output's one "
            "option)", file=file, path=f"{where}.{given[0]}")
    if pop.activation != "sigmoid":
        raise ConfigError(
            f"the output's burst probability p = p_b ((t − e)(1 − e) + 1) takes the sigmoid's f'/f = 1 − e and an event "
            f"rate in (0, 1), so the output's activation must be sigmoid, not {pop.activation}; write activation: "
            "sigmoid", file=file, path=f"{where}.activation")
    if options.baseline > 0.5:
        raise ConfigError(
            f"{options.baseline:g}: the output's burst probability p = p_b ((t − e)(1 − e) + 1) reaches 2 p_b when the "
            "target is 1 and the event rate near 0, so an output baseline p_b above 0.5 gives burst probabilities "
            "above 1; write a baseline in (0, 0.5] (0.5 in the public BurstCCN code)", file=file,
            path=f"{where}.baseline")
