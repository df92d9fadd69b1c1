r"""``euler``: simulated compartments, every population stepped at once by forward Euler
(the equations are in :mod:`dendrisim.settling`'s docstring and docs/math.md), and the
local errors of simulated compartments (:func:`local_errors`), public for any scheme that
simulates them."""
from __future__ import annotations

from itertools import chain
from typing import Optional

import networkx as nx
import torch

from ..config.graph import compartment_constants, feedforward_graph, model_of
from ..config.schema import DynamicsConfig
from ..errors import ConfigError
from ..projections import basal_drive, explicit_drive
from ..state import State
from .base import SCHEMES, Presentation, Rule, SettlingScheme, _refuse_sequences, _split_drive, updates


@SCHEMES.register("euler")
class EulerDynamics(SettlingScheme):
    """Forward-Euler integration of every pyramidal population (and a microcircuit's
    interneurons) at once (module docstring)."""

    simulates_compartments = True
    runs_relaxation = False
    runs_circuits = True

    def __init__(self, config: DynamicsConfig, options=None):
        super().__init__(config, options)
        K, r = config.steps, config.record_every
        self.trace_steps = sorted(set(range(0, K + 1, r)) | {K})

    @classmethod
    def check(cls, config, graph, *, file: str) -> None:
        """The base checks (a circuit needs ``runs_circuits``) and :func:`check_simulated`."""
        super().check(config, graph, file=file)
        check_simulated(config, graph, file=file)
    def _present(self, network, rule: Rule, state: State, capture: Optional[torch.Tensor]) -> Presentation:
        """One presentation: from the free state, ``steps`` Euler steps. Each step first
        observes the state (basal drives from the current rates, errors from the current
        somata, apical inputs from the errors above and the explicit apical projections),
        then moves every soma (:func:`dendrisim.functional.compartment_step`); the updates
        come from the last observation (``settled``) or the mean over steps 1..K
        (``online``). What does not change within a presentation is computed once: the
        drive of the projections from the input (the forward pass's basal, for a population
        fed by the input alone) and then that population's dendritic prediction and its
        rate ``f(v̂_B)``. ``state.target`` None: no teacher, the output's apical input is zero.

        In a microcircuit (``network.circuit``) a population's apical input is the rule's
        part (``top_down``, hidden pyramidal populations, from step 1) plus the drive of its
        explicit apical projections (top-down and lateral rates, from step 0: it is not zero
        in the free state), and an interneuron's is its nudging, the soma of the population
        it predicts (:func:`dendrisim.projections.explicit_drive` of ``network.apical_in``
        and ``network.somatic_in``); every population then takes the same Euler step."""
        _refuse_sequences(network)
        c = self.config
        K, online = c.steps, c.plasticity == "online"
        pops = list(network.simulated())
        out, target = network.output, state.target
        teach = set(network.needs_error) | {out.name}
        taught = [p for p in pops if p.name in teach]  # the others need no error (a frozen embedding's target)
        for p in pops:
            if p.name not in teach:
                state[p.name].apical = state[p.name].error = None
        # the apical inputs: (population, whether the rule's feedback reaches it, its explicit projections)
        inputs = {"apical": network.apical_in, "soma": network.somatic_in}
        apical = [(p, p is not out and p.name in teach and p.offers_apical, inputs[p.second_input][p.name])
                  for p in pops]
        apical = [(p, fed, explicit) for p, fed, explicit in apical if fed or explicit]
        stray = [proj.name for p in pops for kind, lists in inputs.items() for proj in lists[p.name]
                 if kind != p.second_input or p is out]
        if stray:  # refused by the config checks: a guard for networks built by hand
            raise ValueError(f"{', '.join(stray)}: apical projections end on hidden pyramidal populations (the "
                             "output's apical compartment holds the teacher), somatic ones on interneurons")
        soma = {p.name: state[p.name].soma.clone() for p in pops}  # the free state of the forward pass
        trace = None if capture is None else {p.name: {v: [] for v in p.recordable} for p in pops}
        params = [q for q in chain(network.parameters(), rule.parameters()) if q.requires_grad] if online else []
        sums = None
        moving = {p.name for p in pops}
        drives = {p.name: _split_drive(network, p.name, moving, state) for p in pops}
        fixed = {}  # v̂_B and f(v̂_B) of the populations whose basal drive never changes, once computed
        rates = {name: state[name].rate for name in network.populations if name not in moving}
        basal = {p.name: state[p.name].basal for p in pops}
        reads = {"rate": rates, "soma": soma}  # what explicit projections read (rates kept current below)
        for k in range(K + 1):
            rates.update((p.name, state[p.name].rate) for p in pops)
            if k:  # the basal drive of the current rates (at k = 0 the forward pass's)
                basal = {p.name: start if not rest else basal_drive(rest, rates, start=start)
                         for p in pops for start, rest in (drives[p.name],)}
            for p in pops:
                state[p.name].soma, state[p.name].basal = soma[p.name], basal[p.name]
            local_errors(network, state, taught, fixed=fixed, drives=drives)
            for p, fed, explicit in apical:
                # in the free state every error is exactly zero, and so is its feedback
                total = rule.top_down(network, p, state) if fed and k else None
                if explicit:  # a new tensor (every drive is), summed after the rule's gain and clip
                    drive = explicit_drive(explicit, reads)
                    total = drive if total is None else total.add_(drive)
                state[p.name].apical = torch.zeros_like(soma[p.name]) if total is None else total
            if trace is not None and k in self.trace_steps:
                self._keep(trace, pops, state, capture)
            if online and k and network.plastic:
                sums = self._accumulate(rule, network, state, params, sums)
            if k == K:
                break
            for p in pops:  # the neuron model's own step (the pyramidal one: functional.compartment_step)
                p.step(state[p.name], soma[p.name], basal[p.name], dt=c.dt)
        if online and network.plastic:
            for param, total in zip(params, sums or [None] * len(params)):
                param.grad = None if total is None else total.div_(K)
        else:
            updates(network, rule, state)
        return Presentation(trajectory=None if trace is None else self._finish_trace(trace))

    def describe(self, network) -> list[str]:
        c = self.config
        lines = [f"dynamics euler: {c.steps} Euler steps of dt {c.dt} per presentation, plasticity {c.plasticity}, "
                 f"records keep {len(self.trace_steps)} of its {c.steps + 1} states"]
        for pop in network.simulated():
            k = pop.compartments
            stable = f"dt·g/tau {c.dt * k.total / k.tau:.3g} (stable below 2)"
            lines.append(f"  {pop.name}: {pop.describe()}, {stable}")
        return lines

    # ------------------------------------------------------------------ online plasticity
    @staticmethod
    def _accumulate(rule, network, state: State, params, sums):
        """Add this step's updates to the running sums (a parameter no update reaches keeps None)."""
        rule.compute_updates(network, state)
        sums = sums or [None] * len(params)
        for i, q in enumerate(params):
            if q.grad is not None:
                sums[i] = q.grad.clone() if sums[i] is None else sums[i].add_(q.grad)
        return sums

    # ------------------------------------------------------------------ recorded trajectory
    @staticmethod
    def _keep(trace: dict, pops, state: State, positions: torch.Tensor) -> None:
        for p in pops:
            for var, values in trace[p.name].items():
                value = getattr(state[p.name], var)
                values.append(None if value is None else value.index_select(0, positions))

    @staticmethod
    def _finish_trace(trace: dict) -> dict[str, dict[str, torch.Tensor]]:
        return {pop: {var: torch.stack(values, 1) for var, values in variables.items() if values and values[0] is not None}
                for pop, variables in trace.items()}


def check_simulated(config, graph, *, file: str) -> None:
    """What simulating the compartments by forward Euler needs of the network, before any
    tensor: a static input (no recurrent projection), a stable ``dt`` for every population's
    constants (forward Euler diverges from ``dt·g/τ = 2`` on) and at least as many steps as the
    network is deep (errors move down one population per step). The euler scheme's check, for
    any scheme that integrates the same equations."""
    dyn, pops, cfg = config.dynamics, config.populations, config
    ff = feedforward_graph(graph)
    for i, proj in enumerate(cfg.projections):
        if proj.kind == "recurrent":
            raise ConfigError(
                f"mode {dyn.mode} simulates a presentation of a static input; {proj.name} is recurrent, and a "
                "simulation inside every step of a sequence is not implemented. Use mode: steady for recurrent "
                f"networks (projections[{i}] is the recurrent one)", file=file, path="dynamics.mode")
    for name, pop in pops.items():
        keys = model_of(pop).constants
        if not keys:
            continue
        c = compartment_constants(dyn, name, keys)
        g = keys[1:]  # the conductances
        total = sum(c[k] for k in g)
        ratio = dyn.dt * total / c["tau"]
        if ratio >= 2:
            where = f"dynamics.populations.{name}" if name in dyn.populations else "dynamics.dt"
            raise ConfigError(
                f"dt {dyn.dt} is unstable for population {name!r}: dt·({' + '.join(g)})/tau = {dyn.dt} x "
                f"({' + '.join(str(c[k]) for k in g)}) / {c['tau']} = {ratio:.3g}, and forward Euler "
                f"diverges from 2 on. Use dt < {2 * c['tau'] / total:.4g} (below {c['tau'] / total:.4g} it also "
                "never overshoots), or a larger tau", file=file, path=where)
    depth = nx.dag_longest_path_length(ff)
    if dyn.steps < depth:
        path = " -> ".join(nx.dag_longest_path(ff))
        raise ConfigError(
            f"{dyn.steps} steps are fewer than the network's depth {depth} ({path}): errors move down one "
            f"population per step, so the lowest would never learn. Use steps >= {depth} (a few times that lets "
            "the somata settle)", file=file, path="dynamics.steps")


def local_errors(network, state: State, pops, *, fixed: Optional[dict] = None, drives: Optional[dict] = None
                 ) -> None:
    r"""The output's teacher and every population's local error under simulated compartments,
    from the somata and basal drives in ``state`` (the equations of the euler scheme, for any
    scheme that simulates compartments): the output's apical input ``v_A = t − f(v̂_B)``
    (zero with no ``state.target``) and the error of each of ``pops`` (neuron models; an
    interneuron with its own prediction ``v̂_D``),

    .. math:: e = (f(u) − f(v̂_B)) / λ, \qquad e_{out} = (u − v̂_B) / λ \text{ for a canonical loss},

    ``v̂_B`` the model's ``prediction`` and ``e`` its ``local_error``. ``fixed`` and ``drives``
    (the euler scheme's): ``v̂_B`` and ``f(v̂_B)`` of a population whose basal drive never
    changes in the presentation (``drives[name][1]`` empty) are computed once and kept in
    ``fixed``."""
    out, target = network.output, state.target
    for p in pops:
        c, st = p.compartments, state[p.name]
        if fixed is not None and p.name in fixed:
            predicted, f_predicted = fixed[p.name]
            shared = True
        else:
            predicted = p.prediction(st, st.basal)
            f_predicted = p.activation.f(predicted)
            # the basal never changes and the model predicts from it alone: keep both for the next steps
            shared = fixed is not None and not drives[p.name][1] and p.prediction_from_basal
            if shared:
                fixed[p.name] = (predicted, f_predicted)
        if p is out:
            st.apical = torch.zeros_like(f_predicted) if target is None else target - f_predicted
            if p.activation.canonical_loss is not None:
                st.error = (st.soma - predicted).div_(c.nudging)
                continue
        # e = (f(u) − f(v̂_B)) / λ, into f(v̂_B)'s storage unless it is kept or is the basal
        # drive itself (attenuation 1, no leak, and a linear f: an interneuron's dendrite)
        own = not shared and f_predicted is not st.basal
        st.error = p.local_error(st.rate, f_predicted, out=f_predicted if own else None)
