r"""Settling schemes: how apical inputs, errors and somata come to be over one presentation.

A settling scheme (chosen by the model file's ``dynamics.mode``) presents a batch: given the
network, the rule and the target, it settles every compartment and leaves the rule's
updates in ``.grad`` (:meth:`SettlingScheme.present`). It returns what observers need (the
trajectory the recorder keeps) in a :class:`Presentation` instead of leaving it in the
populations. The rule says only what its feedback weights are and how a projection changes
from its two ends (``PlasticityRule.top_down``, ``compute_updates``); the scheme decides when
each compartment is computed. So every rule whose apical input comes through feedback
weights runs under every scheme, with no per-rule code.

``steady`` (the default): the sweep. The forward pass leaves ``soma = basal``; the scheme then
fills apical inputs and errors top-down in one pass through the rule's feedback (backward
through time in a recurrent network), and the updates follow. Exact and instant. A rule
with a relaxation of its own (pc's ``relax``) runs it in place of the sweep.

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

from contextlib import contextmanager
from dataclasses import dataclass
from itertools import chain
from typing import Iterator, Optional, Protocol

import torch

from .config.schema import DynamicsConfig
from .losses import output_error
from .registry import Registry


class Rule(Protocol):
    """What a settling scheme asks of a plasticity rule (``dendrisim.PlasticityRule`` has it):
    the scheme owns the loop, the rule the feedback pathway and the updates."""

    #: False where the feedback skips the network's own pathway (dfa): no recursion in time
    temporal_feedback: bool
    #: a rule's own relaxation ``(network, target)`` run in place of the sweep (pc), or None
    relax: Optional[object]

    def feedback_weight(self, network, proj) -> Optional[torch.Tensor]:
        """The weights that carry ``proj``'s target error back to its source."""

    def feedback_gain(self, proj) -> float:
        """The gain on ``proj``'s share of the apical input (1 unless rules are mixed)."""

    def apical_input(self, network, pop) -> torch.Tensor:
        """The summed feedback of the current errors above ``pop``, before gain and clip."""

    def gain_and_clip(self, pop, apical: torch.Tensor) -> torch.Tensor:
        """The rule's apical gain and clip, in place."""

    def top_down(self, network, pop) -> torch.Tensor:
        """``gain_and_clip(apical_input(...))``: ``pop``'s apical input from the errors above it."""

    def compute_updates(self, network) -> None:
        """Every learnable projection's update from its two ends, into ``.grad``."""

    def parameters(self):
        """The rule's own tensors (feedback weights): ``nn.Module.parameters``."""


@dataclass
class Presentation:
    """What one presentation leaves for observers (the weights' updates are in ``.grad``)."""

    #: the kept states of a simulated presentation, ``{population: {variable: [samples, states, *shape]}}``
    #: for the batch positions asked for (``capture``); None when nothing was asked for or kept
    trajectory: Optional[dict[str, dict[str, torch.Tensor]]] = None


SCHEMES: Registry[type["SettlingScheme"]] = Registry("settling scheme (dynamics.mode)")


class SettlingScheme:
    """Base of the settling schemes: :meth:`present` one batch; ``describe`` it for ``--check``."""

    #: states of a presentation kept in recordings (None: a record holds one state)
    trace_steps: Optional[list[int]] = None
    #: whether the scheme simulates the compartments in time: the network's pyramidal neurons then
    #: get their constants (``dynamics``: tau, conductances) and the forward pass leaves their free state
    simulates_compartments: bool = False
    #: whether it runs a rule's own relaxation (``Rule.relax``, pc's): a rule that has one runs only
    #: under schemes that do; every other rule runs under every scheme
    runs_relaxation: bool = False

    def __init__(self, config: DynamicsConfig):
        self.config = config

    def present(self, network, rule: Rule, target: torch.Tensor, *,
                capture: Optional[torch.Tensor] = None) -> Presentation:
        """Present the batch the forward pass has just clamped: settle every compartment for
        ``target`` and leave ``rule``'s updates in ``.grad`` (none while ``network.plastic`` is
        off). ``capture``: batch positions whose trajectory to return (schemes with
        ``trace_steps``). No autograd graph is built."""
        with torch.no_grad(), presenting(network, target):
            return self._present(network, rule, network.target, capture)

    def _present(self, network, rule: Rule, target: torch.Tensor, capture: Optional[torch.Tensor]) -> Presentation:
        raise NotImplementedError

    def describe(self, network) -> list[str]:
        """A few lines for ``--check`` and the start of a run."""
        return []


@SCHEMES.register("steady")
class SteadyState(SettlingScheme):
    """The sweep: the rule settles every population top-down, then computes its updates."""

    runs_relaxation = True

    def _present(self, network, rule: Rule, target: torch.Tensor, capture: Optional[torch.Tensor]) -> Presentation:
        if rule.relax is not None:
            rule.relax(network, target)
        else:
            self.settle(network, rule, target)
        updates(network, rule)
        return Presentation()

    # ------------------------------------------------------------------ the sweep
    def settle(self, network, rule: Rule, target: torch.Tensor) -> None:
        """Fill ``apical`` and ``error`` of every pyramidal population, top-down:
        ``a_l = g Σ_m δ_m B_{l←m}ᵀ`` (the rule's feedback and gain), ``δ_l = f'(soma_l) ⊙ a_l``."""
        if network.sequential:
            return self._settle_through_time(network, rule, target)
        out = network.output
        out.apical = target.view_as(out.rate) - out.rate
        out.error = output_error(out)
        for pop in reversed(list(network.hidden())):
            self._set_apical(rule, pop, rule.apical_input(network, pop))

    @staticmethod
    def _set_apical(rule: Rule, pop, apical: torch.Tensor) -> None:
        """Gain and clip the apical input, then ``error = f'(soma) ⊙ apical``."""
        apical = rule.gain_and_clip(pop, apical)
        pop.apical = apical
        pop.error = pop.derivative().mul_(apical)

    # ----- recurrent networks: the same sweep, backward through time ------------------
    def _settle_through_time(self, network, rule: Rule, target: torch.Tensor) -> None:
        r"""The sweep of an unrolled network, compartments ``[time, batch, ...]``.

        The teacher reaches the output at the readout steps (``network.readout``); a
        projection with delay ``d`` (0 feedforward, 1 recurrent) carries its target's
        error at ``t + d`` back to its source at ``t``:

        .. math:: a_l(t) = g \sum_{p: l → m} δ_m(t + d_p) \, B_p^T, \qquad δ_l(t) = f'(soma_l(t)) ⊙ a_l(t)

        (``g`` the rule's apical gain, ``B`` its feedback weights; ``δ(T) = 0``). Outside
        recurrent loops every time step is done at once; inside a loop the recursion
        steps backward from the last time step. With ``truncate: k`` the recurrent
        terms from ``t + 1`` to ``t`` are dropped where ``t + 1`` is a multiple of ``k``.
        """
        out = network.output
        apical = torch.zeros_like(out.rate)
        apical[network.readout] = target - out.rate[network.readout]
        out.apical = apical
        out.error = output_error(out)
        T = out.rate.shape[0]
        for members, looped in reversed(network.plan):
            hidden = [n for n in members if n != network.output_name and n in network.needs_error]
            if not hidden:
                continue
            if not rule.temporal_feedback:
                for name in hidden:
                    pop = network.populations[name]
                    self._set_apical(rule, pop, rule.apical_input(network, pop))
                continue
            inside = set(members) if looped else set()
            if not looped:
                pop = network.populations[hidden[0]]
                self._set_apical(rule, pop, self._apical_over_time(network, rule, pop, T, skip=inside))
                continue
            self._settle_loop(network, rule, hidden, inside, T)

    @staticmethod
    def _apical_over_time(network, rule: Rule, pop, T: int, skip: set) -> torch.Tensor:
        """Feedback onto ``pop`` from targets outside ``skip``, every time step at once."""
        total = torch.zeros_like(pop.rate)
        k = rule.options.truncate
        for proj in network.outgoing[pop.name]:
            if proj.target in skip:
                continue
            delta = network.populations[proj.target].error
            fb, gain = rule.feedback_weight(network, proj), rule.feedback_gain(proj)
            if proj.kind == "recurrent":
                B = delta.shape[1]
                a = proj.carry_back(delta[1:].flatten(0, 1), fb).view(T - 1, B, *pop.shape)
                if k:
                    a[k - 1::k] = 0  # t + 1 a multiple of k: the block boundary
                total[:-1].add_(a, alpha=gain)
            else:
                total.add_(proj.carry_back(delta.flatten(0, 1), fb).view_as(total), alpha=gain)
        return total

    def _settle_loop(self, network, rule: Rule, hidden: list[str], inside: set, T: int) -> None:
        k = rule.options.truncate
        pops = {n: network.populations[n] for n in hidden}
        apical = {n: self._apical_over_time(network, rule, p, T, skip=inside) for n, p in pops.items()}
        errors = {n: torch.empty_like(a) for n, a in apical.items()}
        if network.output_name in inside:
            errors[network.output_name] = network.output.error
        inner = {n: [(p, p.kind == "recurrent", rule.feedback_weight(network, p), rule.feedback_gain(p))
                     for p in network.outgoing[n] if p.target in inside and p.target in errors]
                 for n in hidden}  # looked up once
        for t in reversed(range(T)):
            for name in reversed(hidden):
                pop = pops[name]
                a_t = apical[name][t]
                for proj, recurrent, fb, gain in inner[name]:
                    if recurrent:
                        if t + 1 >= T or (k and (t + 1) % k == 0):
                            continue
                        delta = errors[proj.target][t + 1]
                    else:
                        delta = errors[proj.target][t]
                    a_t.add_(proj.carry_back(delta, fb), alpha=gain)
                rule.gain_and_clip(pop, a_t)
                torch.mul(pop.activation.df(pop.soma[t], pop.rate[t]), a_t, out=errors[name][t])
        for name, pop in pops.items():
            pop.apical, pop.error = apical[name], errors[name]

    def describe(self, network) -> list[str]:
        return ["dynamics steady: soma = basal; the rule settles apical inputs and errors in one top-down sweep"]


@contextmanager
def presenting(network, target: torch.Tensor) -> Iterator[None]:
    """``network.target`` holds the output's target for the length of one presentation, so a
    rule's hooks (``apical_input``) may read it: of the output's shape (``[batch, *out.shape]``;
    in a recurrent network ``[readout steps, batch, *out.shape]``); None again afterwards,
    whatever happens."""
    out = network.output
    network.target = target if network.sequential else target.view_as(out.rate)
    try:
        yield
    finally:
        network.target = None


def updates(network, rule: Rule) -> None:
    """The rule's updates into ``.grad``; with plasticity off (``network.plastic`` false), no
    gradient at all, so the optimizer changes nothing."""
    if network.plastic:
        rule.compute_updates(network)
        return
    for param in chain(network.parameters(), rule.parameters()):
        param.grad = None


def _refuse_sequences(network) -> None:
    if network.sequential:  # refused by the config checks; a guard for networks built by hand
        raise ValueError("euler dynamics simulate static presentations; this network is recurrent")


@SCHEMES.register("euler")
class EulerDynamics(SteadyState):
    """Forward-Euler integration of every pyramidal population at once (module docstring)."""

    simulates_compartments = True
    runs_relaxation = False

    def __init__(self, config: DynamicsConfig):
        super().__init__(config)
        K, r = config.steps, config.record_every
        self.trace_steps = sorted(set(range(0, K + 1, r)) | {K})

    def _present(self, network, rule: Rule, target: torch.Tensor, capture: Optional[torch.Tensor]) -> Presentation:
        """One presentation: from the free state, ``steps`` Euler steps. Each step first
        observes the state (basal drives from the current rates, errors from the current
        somata, apical inputs from the errors above), then moves every soma; the updates
        come from the last observation (``settled``) or the mean over steps 1..K (``online``)."""
        _refuse_sequences(network)
        K, online = self.config.steps, self.config.plasticity == "online"
        pops = list(network.pyramidal())
        out = network.output
        target = target.view_as(out.rate)
        teach = set(network.needs_error) | {out.name}
        hidden = [p for p in pops if p is not out and p.name in teach]
        taught = [p for p in pops if p.name in teach]  # the others need no error (a frozen embedding's target)
        for p in pops:
            if p.name not in teach:
                p.apical = p.error = None
        soma = {p.name: p.soma.clone() for p in pops}  # the free state of the forward pass
        trace = None if capture is None else {p.name: {v: [] for v in p.recordable} for p in pops}
        params = [q for q in chain(network.parameters(), rule.parameters()) if q.requires_grad] if online else []
        sums = None
        basal = {p.name: p.basal for p in pops}
        for k in range(K + 1):
            if k:  # the basal drive of the current rates (at k = 0 the forward pass's)
                basal = {p.name: network.basal_input(p.name) for p in pops}
            for p in pops:
                p.soma, p.basal = soma[p.name], basal[p.name]
            self._errors(network, taught, target)
            for p in hidden:  # in the free state every error is exactly zero, and so is its feedback
                p.apical = rule.top_down(network, p) if k else torch.zeros_like(p.soma)
            if trace is not None and k in self.trace_steps:
                self._keep(trace, pops, capture)
            if online and k and network.plastic:
                sums = self._accumulate(rule, network, params, sums)
            if k == K:
                break
            for p in pops:
                self._euler_step(p, soma[p.name], basal[p.name], self.config.dt / p.compartments.tau)
        if online and network.plastic:
            for param, total in zip(params, sums or [None] * len(params)):
                param.grad = None if total is None else total.div_(K)
        else:
            updates(network, rule)
        return Presentation(trajectory=None if trace is None else self._finish_trace(trace))

    def describe(self, network) -> list[str]:
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
    def _errors(network, pops, target: torch.Tensor) -> None:
        """Output teacher ``v_A = t − f(v̂_B)`` and the local error ``e`` of ``pops`` from the current state."""
        out = network.output
        for p in pops:
            c = p.compartments
            predicted = p.prediction(p.basal)
            if p is out:
                p.apical = target - p.activation.f(predicted)
                if p.activation.canonical_loss is not None:
                    p.error = (p.soma - predicted).div_(c.nudging)
                    continue
            f_predicted = p.activation.f(predicted)
            p.error = torch.sub(p.rate, f_predicted, out=f_predicted).div_(c.nudging)  # no third tensor

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
    def _accumulate(rule, network, params, sums):
        """Add this step's updates to the running sums (a parameter no update reaches keeps None)."""
        rule.compute_updates(network)
        sums = sums or [None] * len(params)
        for i, q in enumerate(params):
            if q.grad is not None:
                sums[i] = q.grad.clone() if sums[i] is None else sums[i].add_(q.grad)
        return sums

    # ------------------------------------------------------------------ recorded trajectory
    @staticmethod
    def _keep(trace: dict, pops, positions: torch.Tensor) -> None:
        for p in pops:
            for var, values in trace[p.name].items():
                value = getattr(p, var)
                values.append(None if value is None else value.index_select(0, positions))

    @staticmethod
    def _finish_trace(trace: dict) -> dict[str, dict[str, torch.Tensor]]:
        return {pop: {var: torch.stack(values, 1) for var, values in variables.items() if values and values[0] is not None}
                for pop, variables in trace.items()}
