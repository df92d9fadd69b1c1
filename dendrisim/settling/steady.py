"""``steady`` (the default): the sweep. The forward pass leaves ``soma = basal``; the scheme
fills apical inputs and errors top-down in one pass through the rule's feedback (backward
through time in a recurrent network), and the updates follow. Exact and instant. A rule
that declares a relaxation (pc) is relaxed instead (:func:`dendrisim.settling.relax`)."""
from __future__ import annotations

from typing import Optional

import networkx as nx
import torch

from ..losses import output_error
from ..projections import apical_sum, explicit_drive
from ..state import State
from .base import SCHEMES, Presentation, Rule, SettlingScheme, free_target, updates
from .relaxation import relax


@SCHEMES.register("steady")
class SteadyState(SettlingScheme):
    """The sweep: every population settled top-down through the rule's feedback, then the
    rule's updates; a rule that declares a relaxation (pc) is relaxed instead (:func:`relax`)."""

    runs_relaxation = True
    sweeps_circuits = True
    settles_free = True

    @classmethod
    def check(cls, config, graph, *, file: str) -> None:
        """The base checks, and the sweep's order: an apical projection that reads a variable the
        sweep fills in (a burst rate) comes from a population above its target (the target
        reaches it through basal projections), which the top-down sweep settles first."""
        super().check(config, graph, file=file)
        from ..config.graph import feedforward_graph, model_of
        from ..errors import ConfigError

        ff = feedforward_graph(graph)
        for i, proj in enumerate(config.projections):
            source = model_of(config.populations[proj.source])
            if proj.compartment != "apical" or proj.reads not in source.swept_variables:
                continue
            if not nx.has_path(ff, proj.target, proj.source):
                raise ConfigError(
                    f"{proj.name} reads {proj.source}.{proj.reads}, which the top-down sweep fills in, but "
                    f"{proj.source} is not above {proj.target} ({proj.target} does not reach it through basal "
                    f"projections), so the sweep settles {proj.target} first; project from a population above it",
                    file=file, path=f"projections[{i}].from")

    def _present(self, network, rule: Rule, state: State, capture: Optional[torch.Tensor]) -> Presentation:
        if state.target is None:
            # no teacher: the output's target is what it already says, so every error is zero
            state.target = free_target(network, state)
        if getattr(rule, "contrastive", False):  # the rule compares the taught state with the free one
            free = state.copy()
            free.target = free_target(network, state)
            self.settle(network, rule, free)
            state.free = free
        if rule.relaxation is not None:
            iterations, converged = relax(network, rule, state)
            rule.relaxed(iterations, converged)
            updates(network, rule, state)
            return Presentation(iterations=iterations, converged=converged)
        if rule.relax is not None:
            rule.relax(network, state)
        else:
            self.settle(network, rule, state)
        updates(network, rule, state)
        return Presentation()

    # ------------------------------------------------------------------ the sweep
    def settle(self, network, rule: Rule, state: State) -> None:
        """Fill ``apical`` and ``error`` of every pyramidal population in ``state``, top-down:
        ``a_l = g Σ_m δ_m B_{l←m}ᵀ`` (the rule's feedback and gain), ``δ_l = f'(soma_l) ⊙ a_l``."""
        if network.sequential:
            return self._settle_through_time(network, rule, state)
        out = state.output
        if network.output.settles_in_sweep:
            network.output.teach(out, state.target.view_as(out.rate))
        else:
            out.apical = state.target.view_as(out.rate) - out.rate
            out.error = output_error(network.output, out)
        reads = _Variables(state)
        for pop in reversed(swept(network)):
            s, explicit = state[pop.name], network.apical_in[pop.name]
            apical = rule.apical_input(network, pop, state)
            if not explicit and not pop.settles_in_sweep:
                self._set_apical(rule, pop, s, apical)
                continue
            if apical is not None:
                apical = rule.gain_and_clip(pop, apical)
            if explicit:  # the explicit apical projections (BurstCCN's Y and Q), after the rule's gain and clip
                drive = explicit_drive(explicit, reads)
                apical = drive if apical is None else apical.add_(drive)
            if pop.settles_in_sweep:
                pop.settle(s, apical)
            else:
                s.apical = torch.zeros_like(s.rate) if apical is None else apical
                s.error = pop.derivative(s).mul_(s.apical)

    @staticmethod
    def _set_apical(rule: Rule, pop, s, apical: Optional[torch.Tensor]) -> None:
        """Gain and clip the apical input, then ``error = f'(soma) ⊙ apical`` into ``pop``'s
        state ``s``. None (no projection out of ``pop`` feeds back under the rule:
        ``carries_feedback`` false) leaves the apical dendrite silent, so ``pop`` gets no error."""
        if apical is None:
            s.apical = torch.zeros_like(s.rate)
            s.error = torch.zeros_like(s.rate)
            return
        apical = rule.gain_and_clip(pop, apical)
        s.apical = apical
        s.error = pop.derivative(s).mul_(apical)

    # ----- recurrent networks: the same sweep, backward through time ------------------
    def _settle_through_time(self, network, rule: Rule, state: State) -> None:
        r"""The sweep of an unrolled network, compartments ``[time, batch, ...]``.

        The teacher reaches the output at the readout steps (``network.readout``); a
        projection with delay ``d`` (0 feedforward, 1 recurrent) carries its target's
        error at ``t + d`` back to its source at ``t``:

        .. math:: a_l(t) = g \sum_{p: l → m} δ_m(t + d_p) \, B_p^T, \qquad δ_l(t) = f'(soma_l(t)) ⊙ a_l(t)

        (``g`` the rule's apical gain, ``B`` its feedback weights; ``δ(T) = 0``): the sum of
        ``dendrisim.projections.apical_sum``, over every time step at once. Outside
        recurrent loops every time step is done at once; inside a loop the recursion
        steps backward from the last time step. With ``truncate: k`` (``rule.truncate``) the
        recurrent terms from ``t + 1`` to ``t`` are dropped where ``t + 1`` is a multiple of ``k``.
        """
        out = state.output
        apical = torch.zeros_like(out.rate)
        apical[network.readout] = state.target - out.rate[network.readout]
        out.apical = apical
        out.error = output_error(network.output, out)
        T = out.rate.shape[0]
        for members, looped in reversed(network.plan):
            hidden = [n for n in members if n != network.output_name and n in network.needs_error]
            if not hidden:
                continue
            if not rule.temporal_feedback:
                for name in hidden:
                    pop = network.populations[name]
                    self._set_apical(rule, pop, state[name], rule.apical_input(network, pop, state))
                continue
            inside = set(members) if looped else set()
            if not looped:
                pop = network.populations[hidden[0]]
                self._set_apical(rule, pop, state[pop.name],
                                 self._apical_over_time(network, rule, pop, state, skip=inside))
                continue
            self._settle_loop(network, rule, state, hidden, inside, T)

    @staticmethod
    def _apical_over_time(network, rule: Rule, pop, state: State, skip: set) -> torch.Tensor:
        """Feedback onto ``pop`` from targets outside ``skip``, every time step at once: the
        time-batched ``apical_sum``, a recurrent projection's error taken one step later
        (``δ(t + 1)``, zero after the last step and at the truncation's block boundaries)."""
        k = rule.truncate
        terms = []
        for proj in network.outgoing[pop.name]:
            if proj.target in skip:
                continue
            delta = state[proj.target].error
            if proj.kind == "recurrent":
                delta = torch.cat([delta[1:], torch.zeros_like(delta[:1])])
                if k:
                    delta[k - 1::k] = 0  # t + 1 a multiple of k: the block boundary
            terms.append((proj, delta.flatten(0, 1), rule.feedback_weight(network, proj), rule.feedback_gain(proj)))
        rate = state[pop.name].rate
        total = apical_sum(terms)
        return torch.zeros_like(rate) if total is None else total.view_as(rate)

    def _settle_loop(self, network, rule: Rule, state: State, hidden: list[str], inside: set, T: int) -> None:
        """Inside a recurrent loop, one time step at a time backward: ``apical_sum`` of the
        errors inside the loop (at ``t``, or ``t + 1`` through a recurrent projection) added to
        the feedback from outside, then gain, clip and ``δ = f' ⊙ a``."""
        k = rule.truncate
        pops = {n: network.populations[n] for n in hidden}
        apical = {n: self._apical_over_time(network, rule, p, state, skip=inside) for n, p in pops.items()}
        errors = {n: torch.empty_like(a) for n, a in apical.items()}
        if network.output_name in inside:
            errors[network.output_name] = state.output.error
        inner = {n: [(p, p.kind == "recurrent", rule.feedback_weight(network, p), rule.feedback_gain(p))
                     for p in network.outgoing[n] if p.target in inside and p.target in errors]
                 for n in hidden}  # looked up once
        for t in reversed(range(T)):
            cut = t + 1 >= T or (k and (t + 1) % k == 0)  # no recurrent term from t + 1
            for name in reversed(hidden):
                pop = pops[name]
                a_t = apical_sum([(proj, errors[proj.target][t + 1] if recurrent else errors[proj.target][t], fb, gain)
                                  for proj, recurrent, fb, gain in inner[name] if not (recurrent and cut)],
                                 start=apical[name][t])
                rule.gain_and_clip(pop, a_t)
                s = state[name]
                torch.mul(pop.activation.df(s.soma[t], s.rate[t]), a_t, out=errors[name][t])
        for name in pops:
            state[name].apical, state[name].error = apical[name], errors[name]

    def describe(self, network) -> list[str]:
        return ["dynamics steady: soma = basal; the rule settles apical inputs and errors in one top-down sweep"]


def swept(network) -> list:
    """The populations the steady scheme's top-down sweep settles, in feedforward order: the
    hidden ones (``network.hidden()``) and those that explicit apical projections end on."""
    return [network.populations[n] for n in network.order if n != network.output_name
            and network.populations[n].offers_apical and (n in network.needs_error or network.apical_in[n])]


class _Variables:
    """``reads[variable][population]``: the value of a variable in the state as the sweep has
    settled it so far (what :func:`dendrisim.projections.explicit_drive` reads)."""

    def __init__(self, state: State):
        self._state = state

    def __getitem__(self, variable: str) -> "_Variable":
        return _Variable(self._state, variable)


class _Variable:
    def __init__(self, state: State, variable: str):
        self._state, self._variable = state, variable

    def __getitem__(self, population: str) -> torch.Tensor:
        value = getattr(self._state[population], self._variable, None)
        if value is None:  # refused by the config checks (reads from above only); a guard for hand-built networks
            raise ValueError(f"{population}.{self._variable} is not settled yet when the sweep reaches a population "
                             f"it projects onto: an apical projection reading it must come from a population above")
        return value
