"""The plasticity-rule interface shared by every rule.

A rule decides what reaches the apical compartments (``settle``) and how every
learnable projection changes (``compute_updates``, which writes ``.grad``); a
``torch.optim`` optimizer applies the updates. Rules with feedback weights keep them as
their own parameters, keyed by the forward projection's name.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Optional

import networkx as nx
import torch
from torch import nn

from ..config.schema import opt, req
from ..losses import output_error
from ..registry import Registry
from . import functional as Fn

if TYPE_CHECKING:
    from ..config.loader import Experiment
    from ..network import Network
    from ..populations import PyramidalPopulation
    from ..projections import Projection


@dataclass(frozen=True)
class RuleOptions:
    rule: str = req("name of the rule: " + "dll, bp, fa, dfa, ...")
    clip_apical: Optional[float] = opt(None, "clamp apical inputs to ±value and count how often (off by default)", gt=0)
    clip_update: Optional[float] = opt(None, "clamp weight updates to ±value and count how often (off by default)", gt=0)
    truncate: Optional[int] = opt(None, "recurrent networks: carry errors back through recurrent projections "
                                        "within blocks of N time steps only (truncated BPTT); off: the whole sequence",
                                  ge=1)


RULES: Registry[type["PlasticityRule"]] = Registry("plasticity rule")


class PlasticityRule(nn.Module):
    """Base class: backprop-shaped settling through per-projection feedback weights.

    Subclasses say which feedback weights a projection has (:meth:`feedback_weight`),
    and may change the gains or add their own updates.
    """

    Options: type = RuleOptions
    #: update gain ``c`` in ``ΔW ∝ c · δᵀ r``
    update_gain: float = 1.0
    #: gain applied to the apical input (``1/σ²`` for DLL)
    apical_gain: float = 1.0
    #: recordable variables of each projection under this rule
    projection_recordables: tuple[str, ...] = ("weight", "update", "feedback")
    #: recordable variables of the rule itself
    recordables: tuple[str, ...] = ("clip_counts",)
    #: the settling schemes (``dynamics.mode``) the rule can run under, and why not the others
    settling_modes: tuple[str, ...] = ("steady", "euler")
    settling_note: str = ""

    def __init__(self, network: "Network", options: RuleOptions):
        super().__init__()
        self.options = options
        self.clip_counts: dict[str, torch.Tensor] = {}

    @classmethod
    def check(cls, experiment: "Experiment", graph: nx.DiGraph) -> None:
        """Raise ConfigError when the rule cannot train this topology (before any tensor)."""

    # ----- the feedback pathway -----------------------------------------------------
    def feedback_weight(self, network: "Network", proj: "Projection") -> Optional[torch.Tensor]:
        """Weights of ``proj.feedback_shape`` that carry ``proj``'s target error to its source
        (``[n_pre, n_post]`` for a dense projection, the kernel's shape for conv2d); None for
        fixed pathways (pools) and projections from the input."""
        raise NotImplementedError

    def apical_input(self, network: "Network", pop: "PyramidalPopulation") -> torch.Tensor:
        """Sum of top-down feedback onto ``pop``'s apical dendrite."""
        total = None
        for proj in network.outgoing[pop.name]:
            delta = network.populations[proj.target].error
            a = proj.carry_back(delta, self.feedback_weight(network, proj))
            total = a if total is None else total.add_(a)
        return total

    # ----- the two phases -----------------------------------------------------------
    def settle(self, network: "Network", target: torch.Tensor) -> None:
        """Fill ``apical`` and ``error`` of every pyramidal population, top-down."""
        if network.sequential:
            return self._settle_through_time(network, target)
        out = network.output
        out.apical = target.view_as(out.rate) - out.rate
        out.error = output_error(out)
        for pop in reversed(list(network.hidden())):
            self._set_apical(pop, self.apical_input(network, pop))

    def top_down(self, network: "Network", pop: "PyramidalPopulation") -> torch.Tensor:
        """``pop``'s apical input from the current errors above it: the feedback of
        :meth:`apical_input`, times the rule's apical gain, clipped if asked. The one place
        every settling scheme gets the apical input from."""
        return self._gain_and_clip(pop, self.apical_input(network, pop))

    def _gain_and_clip(self, pop: "PyramidalPopulation", apical: torch.Tensor) -> torch.Tensor:
        if self.apical_gain != 1.0:
            apical = apical.mul_(self.apical_gain)
        if self.options.clip_apical is not None:
            apical = Fn.clip_(apical, self.options.clip_apical, self._counter(f"apical:{pop.name}", apical))
        return apical

    def _set_apical(self, pop: "PyramidalPopulation", apical: torch.Tensor) -> None:
        """Gain and clip the apical input, then ``error = f'(soma) ⊙ apical``."""
        apical = self._gain_and_clip(pop, apical)
        pop.apical = apical
        pop.error = pop.derivative().mul_(apical)

    # ----- recurrent networks: the same settling, backward through time --------------
    #: False for rules whose feedback skips the network's own pathway (DFA): no recursion in time
    temporal_feedback = True

    def _settle_through_time(self, network: "Network", target: torch.Tensor) -> None:
        r"""Settling of an unrolled network, compartments ``[time, batch, ...]``.

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
            if not self.temporal_feedback:
                for name in hidden:
                    pop = network.populations[name]
                    self._set_apical(pop, self.apical_input(network, pop))
                continue
            inside = set(members) if looped else set()
            if not looped:
                pop = network.populations[hidden[0]]
                self._set_apical(pop, self._apical_over_time(network, pop, T, skip=inside))
                continue
            self._settle_loop(network, hidden, inside, T)

    def _apical_over_time(self, network, pop, T: int, skip: set) -> torch.Tensor:
        """Feedback onto ``pop`` from targets outside ``skip``, every time step at once."""
        total = torch.zeros_like(pop.rate)
        k = self.options.truncate
        for proj in network.outgoing[pop.name]:
            if proj.target in skip:
                continue
            delta = network.populations[proj.target].error
            fb = self.feedback_weight(network, proj)
            if proj.kind == "recurrent":
                B = delta.shape[1]
                a = proj.carry_back(delta[1:].flatten(0, 1), fb).view(T - 1, B, *pop.shape)
                if k:
                    a[k - 1::k] = 0  # t + 1 a multiple of k: the block boundary
                total[:-1].add_(a)
            else:
                total.add_(proj.carry_back(delta.flatten(0, 1), fb).view_as(total))
        return total

    def _settle_loop(self, network, hidden: list[str], inside: set, T: int) -> None:
        k = self.options.truncate
        pops = {n: network.populations[n] for n in hidden}
        apical = {n: self._apical_over_time(network, p, T, skip=inside) for n, p in pops.items()}
        errors = {n: torch.empty_like(a) for n, a in apical.items()}
        if network.output_name in inside:
            errors[network.output_name] = network.output.error
        inner = {n: [(p, p.kind == "recurrent", self.feedback_weight(network, p)) for p in network.outgoing[n]
                     if p.target in inside and p.target in errors] for n in hidden}  # looked up once
        for t in reversed(range(T)):
            for name in reversed(hidden):
                pop = pops[name]
                a_t = apical[name][t]
                for proj, recurrent, fb in inner[name]:
                    if recurrent:
                        if t + 1 >= T or (k and (t + 1) % k == 0):
                            continue
                        delta = errors[proj.target][t + 1]
                    else:
                        delta = errors[proj.target][t]
                    a_t.add_(proj.carry_back(delta, fb))
                if self.apical_gain != 1.0:
                    a_t.mul_(self.apical_gain)
                if self.options.clip_apical is not None:
                    Fn.clip_(a_t, self.options.clip_apical, self._counter(f"apical:{name}", a_t))
                torch.mul(pop.activation.df(pop.soma[t], pop.rate[t]), a_t, out=errors[name][t])
        for name, pop in pops.items():
            pop.apical, pop.error = apical[name], errors[name]

    @staticmethod
    def all_steps(network: "Network", post: torch.Tensor) -> tuple[torch.Tensor, float]:
        """``post`` over every time step as rows, with the normalisation of :meth:`paired`."""
        if not network.sequential:
            return post, 1.0
        T = post.shape[0]
        return post.flatten(0, 1), T / len(range(T)[network.readout])

    @staticmethod
    def paired(network: "Network", proj: "Projection", pre: torch.Tensor, post: torch.Tensor
               ) -> tuple[torch.Tensor, torch.Tensor, float]:
        """The two ends of ``proj`` as rows for an update: unchanged in a feedforward
        network; in a recurrent one paired in time (``pre`` at ``t``, ``post`` at ``t + d``)
        and flattened, with the factor that turns the mean over rows into the mean over
        batch and readout steps (the loss's normalisation), so updates are summed over time."""
        if not network.sequential:
            return pre, post, 1.0
        if proj.kind == "recurrent":
            pre, post = pre[:-1], post[1:]
        T, B = network.output.rate.shape[:2]
        steps = len(range(T)[network.readout])
        return pre.flatten(0, 1), post.flatten(0, 1), pre.shape[0] / steps

    def compute_updates(self, network: "Network") -> None:
        """Write ``.grad`` of every learnable projection from its two ends only."""
        for proj in network.learnable_projections():
            rate, delta, scale = self.paired(network, proj, network.populations[proj.source].rate,
                                             network.populations[proj.target].error)
            w = proj.weight
            w.grad = proj.weight_gradient(delta, rate, gain=self.update_gain * scale,
                                          out=w.grad if w.grad is not None and w.grad.shape == w.shape else None)
            if proj.bias is not None:  # every time step, the first included (the start state is zero)
                delta, scale = self.all_steps(network, network.populations[proj.target].error)
                proj.bias.grad = proj.bias_gradient(delta, gain=self.update_gain * scale)
            if self.options.clip_update is not None:
                counter = self._counter(f"update:{proj.name}", w)
                Fn.clip_(w.grad, self.options.clip_update, counter)
                if proj.bias is not None:
                    Fn.clip_(proj.bias.grad, self.options.clip_update, counter)

    def step(self, network: "Network", target: torch.Tensor) -> None:
        """One presentation under the network's settling scheme (``network.dynamics``: the
        steady sweep, :meth:`settle` then :meth:`compute_updates`, or simulated compartments),
        which leaves the updates in ``.grad``; no autograd graph is built."""
        with torch.no_grad():
            network.dynamics.step(network, self, target)

    # ----- optimizer and recording hooks --------------------------------------------
    def param_groups(self, lr: float) -> list[dict[str, Any]]:
        """Optimizer param groups for the rule's own learnable tensors (none by default)."""
        return []

    def projection_state(self, network: "Network", proj: "Projection", variable: str) -> Optional[torch.Tensor]:
        if variable == "weight":
            return proj.weight
        if variable == "update":
            return proj.weight.grad
        if variable == "feedback":
            return self.feedback_weight(network, proj)
        raise KeyError(variable)

    def feedback_label(self, network: "Network", proj: "Projection") -> str:
        """How ``proj``'s target error reaches its source (for summaries)."""
        return "unknown"

    def feedback_pathway(self, network: "Network") -> list[str]:
        """One line per route of the apical input, for ``--check``."""
        def label(proj):
            return self.feedback_label(network, proj) if proj.has_weight else f"{proj.connectivity} unpooling (fixed)"

        return [f"{pop.name}.apical <- {proj.target}.error through {label(proj)}"
                for pop in network.hidden() for proj in network.outgoing[pop.name]]

    def epoch_summary(self) -> dict[str, float]:
        """Rule-specific numbers for the epoch's metrics row (and reset them); none by default."""
        return {}

    def clip_names(self, network: "Network") -> list[str]:
        """Names of the clip counters the options switch on (``apical:POP``, ``update:A->B``)."""
        names = []
        if self.options.clip_apical is not None:
            names += [f"apical:{pop.name}" for pop in network.hidden()]
        if self.options.clip_update is not None:
            names += [f"update:{proj.name}" for proj in network.learnable_projections()]
        return names

    def _counter(self, name: str, like: torch.Tensor) -> torch.Tensor:
        if name not in self.clip_counts:
            self.clip_counts[name] = torch.zeros((), dtype=torch.int64, device=like.device)
        return self.clip_counts[name]
