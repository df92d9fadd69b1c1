r"""Settling schemes: how apical inputs, errors and somata come to be over one presentation.

A scheme runs one presentation of a batch for a rule and leaves the rule's updates in
``.grad``. The rule says only what its feedback weights are and how a projection changes
from its two ends (``PlasticityRule.top_down``, ``compute_updates``); the scheme decides when
each compartment is computed. So every rule whose apical input comes through feedback
weights runs under every scheme, with no per-rule code.

``steady`` (the default): the sweep. The forward pass leaves ``soma = basal``; the rule then
fills apical inputs and errors top-down in one pass (``PlasticityRule.settle``, where a rule
with a relaxation of its own, pc, runs it), and the updates follow. Exact and instant.

``euler``: simulated compartments, one phase. Rate-based, conductance-coupled pyramidal
neurons (Sacramento, Costa, Bengio & Senn 2018, eq. 1; Urbanczik & Senn 2014), every
population stepped at once by forward Euler from the state of the previous step:

.. math::

    τ \frac{du}{dt} &= -g_L u + g_B (v_B - u) + g_A (v_A - u), \qquad r = f(u) \\
    v_B &= Σ_p W_p r_{pre} + b                 &&\text{basal: feedforward drive} \\
    v̂_B &= \tfrac{g_B}{g} v_B, \quad λ = \tfrac{g_A}{g}, \quad g = g_L + g_B + g_A
                                               &&\text{dendritic prediction, nudging} \\
    e &= (f(u) - f(v̂_B)) / λ                  &&\text{local error: soma against dendrite} \\
    v_A &= \text{top\_down}(e \text{ of the populations above})
                                               &&\text{θ (dll), Wᵀ (bp), B (fa, kp), direct B (dfa)}

The output's apical input is the teacher, computed from its dendritic prediction,
``v_A = t − f(v̂_B)``; for an output whose loss is canonical for its activation (softmax,
sigmoid, linear) the error is the potential mismatch ``e = (u − v̂_B)/λ``, which at the
fixed point is exactly ``t − f(v̂_B)``, today's ``δ_out``. A presentation starts from the
free state the forward pass leaves (``u = v̂_B``: no teacher yet, every error zero), and the
teacher's error reaches one population further down per step, as in a circuit: there is
no backward sweep. At the fixed point ``u = v̂_B + λ v_A``; with ``g_L = 0`` and ``g_A → 0``,
``v̂_B → v_B`` and ``e → f'(v̂_B) ⊙ v_A``, the steady δ, so the sweep is the exact limit of
the dynamics (first order in λ; ``tests/test_dynamics.py``). With a leak the forward
drive is attenuated by ``g_B/g`` in every population.

Updates are those of the rule evaluated on the dynamic quantities (rate ``r = f(u)``,
error ``e``, apical ``v_A``): basal synapses ``ΔW ∝ e_postᵀ r_pre`` (the Urbanczik–Senn form),
DLL's θ from ``v_A`` and ``e``. ``plasticity: settled`` takes them at the end of the
presentation; ``online`` averages them over its steps. Euler is stable for
``dt·g/τ < 2`` (checked before any tensor exists).
"""
from __future__ import annotations

from itertools import chain
from typing import TYPE_CHECKING, Optional

import torch

from .config.schema import DynamicsConfig
from .registry import Registry

if TYPE_CHECKING:
    from .network import Network
    from .plasticity.base import PlasticityRule

SETTLING: Registry[type["SteadyState"]] = Registry("dynamics mode")


@SETTLING.register("steady")
class SteadyState:
    """The sweep: the rule settles every population top-down, then computes its updates."""

    #: Euler steps of a presentation kept in recordings (None: a record holds one state)
    trace_steps: Optional[list[int]] = None

    def __init__(self, config: DynamicsConfig):
        self.config = config
        #: batch positions whose trajectory the next presentation keeps (euler only)
        self.capture: Optional[torch.Tensor] = None

    def step(self, network: "Network", rule: "PlasticityRule", target: torch.Tensor) -> None:
        rule.settle(network, target)
        rule.compute_updates(network)

    def describe(self, network: "Network") -> list[str]:
        """A few lines for ``--check`` and the start of a run."""
        return ["dynamics steady: soma = basal; the rule settles apical inputs and errors in one top-down sweep"]


def _check_dense_target(network: "Network") -> None:
    if network.sequential:  # refused by the config checks; a guard for networks built by hand
        raise ValueError("euler dynamics simulate static presentations; this network is recurrent")


@SETTLING.register("euler")
class EulerDynamics(SteadyState):
    """Forward-Euler integration of every pyramidal population at once (module docstring)."""

    def __init__(self, config: DynamicsConfig):
        super().__init__(config)
        K, r = config.steps, config.record_every
        self.trace_steps = sorted(set(range(0, K + 1, r)) | {K})

    def step(self, network: "Network", rule: "PlasticityRule", target: torch.Tensor) -> None:
        _check_dense_target(network)
        K, online = self.config.steps, self.config.plasticity == "online"
        pops = list(network.pyramidal())
        out = network.output
        target = target.view_as(out.rate)
        teach = set(network.needs_error) | {out.name}
        hidden = [p for p in pops if p is not out and p.name in teach]
        soma = {p.name: p.soma.clone() for p in pops}  # the free state of the forward pass
        trace = self._start_trace(pops)
        params, sums = self._learnable(network, rule) if online else ([], None)
        basal = {p.name: p.basal for p in pops}
        for k in range(K + 1):
            if k:  # the basal drive of the current rates (at k = 0 the forward pass's)
                basal = {p.name: network.basal_input(p.name) for p in pops}
            for p in pops:
                p.soma, p.basal = soma[p.name], basal[p.name]
            self._errors(network, pops, target)
            for p in hidden:
                p.apical = rule.top_down(network, p)
            for p in pops:
                if p.name not in teach:
                    p.apical = p.error = None
            if trace is not None and k in self.trace_steps:
                self._keep(trace, pops)
            if online and k:
                sums = self._accumulate(rule, network, params, sums)
            if k == K:
                break
            for p in pops:
                self._euler_step(p, soma[p.name], basal[p.name], self.config.dt / p.compartments.tau)
        if online:
            for param, total in zip(params, sums):
                param.grad = None if total is None else total.div_(K)
        else:
            rule.compute_updates(network)
        if trace is not None:
            self._finish_trace(trace, pops)

    def describe(self, network: "Network") -> list[str]:
        c = self.config
        lines = [f"dynamics euler: {c.steps} Euler steps of dt {c.dt} per presentation, plasticity {c.plasticity}, "
                 f"records keep {len(self.trace_steps)} of its {c.steps + 1} states"]
        for pop in network.pyramidal():
            k = pop.compartments
            lines.append(f"  {pop.name}: tau {k.tau}, g_leak {k.g_leak}, g_basal {k.g_basal}, g_apical {k.g_apical}: "
                         f"nudging λ {k.nudging:.3g}, free soma = {k.attenuation:.3g} x basal, "
                         f"dt·g/tau {c.dt * k.total / k.tau:.3g} (stable below 2)")
        return lines

    # ------------------------------------------------------------------ the equations
    @staticmethod
    def _errors(network: "Network", pops, target: torch.Tensor) -> None:
        """Output teacher ``v_A = t − f(v̂_B)`` and every local error ``e`` from the current state."""
        out = network.output
        for p in pops:
            c = p.compartments
            predicted = p.prediction(p.basal)
            if p is out:
                p.apical = target - p.activation.f(predicted)
                if p.activation.canonical_loss is not None:
                    p.error = (p.soma - predicted).div_(c.nudging)
                    continue
            p.error = (p.rate - p.activation.f(predicted)).div_(c.nudging)

    @staticmethod
    def _euler_step(p, u: torch.Tensor, basal: torch.Tensor, dt: float) -> None:
        r"""``u ← u + dt/τ (−g_L u + g_B (v_B − u) + g_A (v_A − u))`` in place (``dt`` is dt/τ),
        written as ``(1 − dt·g) u + dt·g_B v_B + dt·g_A v_A``; then ``r = f(u)``."""
        c = p.compartments
        u.mul_(1.0 - dt * c.total).add_(basal, alpha=dt * c.g_basal)
        if p.apical is not None:
            u.add_(p.apical, alpha=dt * c.g_apical)
        p.rate = p.activation.f(u)

    # ------------------------------------------------------------------ online plasticity
    @staticmethod
    def _learnable(network, rule) -> tuple[list, Optional[list]]:
        params = [q for q in chain(network.parameters(), rule.parameters()) if q.requires_grad]
        return params, None

    @staticmethod
    def _accumulate(rule, network, params, sums):
        """Add this step's updates to the running sums (a parameter no update reaches keeps None)."""
        rule.compute_updates(network)
        sums = sums or [None] * len(params)
        for i, q in enumerate(params):
            if q.grad is not None:
                sums[i] = q.grad.clone() if sums[i] is None else sums[i].add_(q.grad)
        return sums

    # ------------------------------------------------------------------ recorded trajectory
    def _start_trace(self, pops) -> Optional[dict]:
        if self.capture is None:
            for p in pops:
                p.trace = {}
            return None
        return {p.name: {v: [] for v in p.recordable} for p in pops}

    def _keep(self, trace: dict, pops) -> None:
        pos = self.capture
        for p in pops:
            for var, values in trace[p.name].items():
                value = getattr(p, var)
                values.append(None if value is None else value.index_select(0, pos))

    @staticmethod
    def _finish_trace(trace: dict, pops) -> None:
        for p in pops:
            p.trace = {var: torch.stack(values, 1) for var, values in trace[p.name].items()
                       if values and values[0] is not None}
