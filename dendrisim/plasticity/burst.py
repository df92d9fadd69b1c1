r"""Burst-dependent plasticity: the synapse models of burst-multiplexing networks (family ``burst``).

A network of burst neurons (``type: burst``, :mod:`dendrisim.neurons.burst`) sends event rates
``e`` forward and burst rates ``b = p e`` back down through explicit apical projections: ``Y``
(``reads: burst``) and, in BurstCCN, the subtractive ``Q`` (``reads: event``, weights ``−Q``).
The steady scheme settles it in one top-down sweep; no rule carries an error back. Each
update is written to ``.grad`` as a descent direction, a mean over the batch (``ΔW = −lr ·
W.grad`` under plain SGD):

.. math::

    \text{burstccn (basal):}\quad & ΔW ∝ (b − p_b e) \, e_{pre}^T, \qquad Δb ∝ b − p_b e \\
    \text{burstprop (basal):}\quad & ΔW ∝ (b − \bar b) \, e_{pre}^T, \qquad
        \bar b = \bar p e \text{ the burst rate of the same batch settled without a teacher} \\
    \text{apical, when learnable:}\quad & ΔW ∝ −v_A \, e_{pre}^T \quad \text{(silences the apical dendrite;}
        \text{ burstprop's Y: } ΔY ∝ e_{post} (b − \bar b)_{pre}^T \text{, its forward weights' update transposed)}

- **burstccn** (Greedy, Zhu, Pemberton, Mellor & Costa, NeurIPS 2022; the public code
  ``neuralml/BurstCCN``): ``p_b`` is the population's ``baseline``. ``Q`` learns to cancel
  ``Y``'s top-down input: without a teacher ``b_above = p_b e_above``, so ``W_Q = −p_b W_Y``
  silences every apical dendrite (``cancel: symmetric`` starts there). The public code
  computes the ``Q`` (and ``Y``) update from the apical potential of every presentation,
  teacher or not, with the presynaptic *event* rate; so does this rule. To learn ``Q``
  without a teacher only, use a phase with ``teacher: false`` (as the microcircuit does).
- **burstprop** (Payeur, Guerguiev, Zenke, Richards & Naud, Nature Neuroscience 2021): the
  weight change follows the deviation of the burst probability from its running average.
  In the rate model (the paper's deep networks and the public code) that average is the burst
  probability of the same input without a teacher: the scheme settles the batch twice
  (``contrastive``) and ``b̄`` is the free sweep's burst rate. No ``Q``; the recurrent input the
  public code can add to the apical dendrite is not modelled.

``feedback`` sets ``Y`` (every apical projection that reads ``burst``): ``random`` as its
projection's init draws it, ``symmetric`` the forward weights' transpose at the start
(``Y = W_{above}^T``), ``tied`` the transpose after every update; each times
``feedback_scale``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Optional

import torch

from ..config.graph import model_of
from ..config.schema import opt
from .. import functional as Fn
from ..errors import ConfigError
from .base import RULES, PlasticityRule, RuleOptions, _state_of

#: what a Q reads: the source's event rate (``event``, ``rate``, or no ``reads``: its rate)
Q_READS = ("event", "rate", None)
#: why a scheme other than steady cannot serve the burst rules
SWEEP_NOTE = ("a burst network is settled by the steady scheme's one top-down sweep (the output taught, then every "
              "burst population from its explicit apical projections); use dynamics.mode: steady")


def _is_burst(pop) -> bool:
    model = model_of(pop)
    return model.settles_in_sweep and "burst" in model.variables


@dataclass(frozen=True)
class BurstOptions(RuleOptions):
    feedback: Literal["random", "symmetric", "tied"] = opt(
        "random", "Y, the apical projections that read burst: random (as its init draws it, fixed), symmetric (the "
                  "transpose of the forward weights above at the start) or tied (their transpose after every update)")
    feedback_scale: float = opt(1.0, "Y is scaled by this at the start (random, symmetric) or at every update (tied)",
                                gt=0)


@dataclass(frozen=True)
class BurstCCNOptions(BurstOptions):
    cancel: Literal["symmetric", "given", "tied"] = opt(
        "symmetric", "Q, the apical projections that read event: symmetric (W_Q = −p_b W_Y at the start, which cancels "
                     "Y without a teacher), given (its projection's own init) or tied (−p_b W_Y after every update)")


def _check_applies(cfg, options, mine: set, *, file: str, path: str) -> None:
    """Nothing a burst rule's block asks for is silently ignored: a ``feedback`` mode with no
    Y (an apical projection reading burst) and a ``cancel`` mode with no Q (reading event or
    rate) among the projections the block governs, an apical ``bias`` (the burst rules learn
    none, and Y stays fixed), and a hidden burst population whose basal synapses it governs
    with no apical projection (its burst probability then never moves: nothing to learn from)."""
    projs = [(i, p) for i, p in enumerate(cfg.projections) if p.name in mine]
    apical = [p for _, p in projs if p.compartment == "apical"]
    for key, default, reads, what in (("feedback", "random", ("burst",), "Y (an apical projection with reads: burst)"),
                                      ("cancel", "symmetric", Q_READS, "Q (an apical projection with reads: event)")):
        value = getattr(options, key, default)
        if value != default and not any(p.reads in reads for p in apical):
            raise ConfigError(
                f"{key} {value} sets {what}, and no projection this block governs is one "
                f"({', '.join(sorted(mine)) or 'none'}); remove {key}, or put it in the plasticity block of the model "
                "or of the projection it is meant for", file=file, path=f"{path}.{key}")
    for i, p in projs:
        tied = ("feedback" if p.reads == "burst" and options.feedback == "tied" else
                "cancel" if p.reads in Q_READS and getattr(options, "cancel", None) == "tied" else None)
        if p.compartment == "apical" and tied and p.learnable:
            raise ConfigError(
                f"{tied} tied sets {p.name} after every update, which undoes what it learns; write learnable: false "
                f"(or leave it out), or another {tied} mode", file=file, path=f"projections[{i}].learnable")
        if p.compartment == "apical" and p.bias:
            raise ConfigError(
                f"{options.rule} learns no bias on an apical projection ({p.name}: Y is fixed, Q learns its weights "
                "only), so bias: true would stay at zero; remove it", file=file, path=f"projections[{i}].bias")
    hidden = {p.target for _, p in projs if p.compartment == "basal" and p.is_learnable
              and _is_burst(cfg.populations[p.target])
              and any(q.source == p.target and q.compartment == "basal" for q in cfg.projections)}
    for name in sorted(hidden):
        if not any(q.target == name and q.compartment == "apical" for q in cfg.projections):
            raise ConfigError(
                f"{name} is a hidden burst population with no apical projection, so its burst probability never "
                f"moves from σ(θ) and {options.rule} gives its basal synapses nothing to learn from (no error "
                f"reaches them); add Y, an apical projection from the population above with reads: burst (and, for "
                "burstccn, Q with reads: event)", file=file, path=f"{path}.rule")


def _check_errors_below(experiment, options, mine: set, *, path: str) -> None:
    """A burst rule carries no error back through the basal projections it governs: a hidden
    pyramidal population below a burst population, with no other way for an error to reach it
    (an apical projection, a projection out of it under a rule that carries errors back), would
    leave the rule of its own basal synapses (fa, bp, dll, ...) nothing to learn from."""
    cfg = experiment.config
    for p in cfg.projections:
        source = cfg.populations[p.source]
        if p.name not in mine or p.compartment != "basal" or _is_burst(source) or not model_of(source).offers_apical:
            continue
        if any(q.target == p.source and q.compartment == "apical" for q in cfg.projections):
            continue
        out = [q for q in cfg.projections if q.source == p.source and q.compartment == "basal"]
        if any(_carries(experiment.rule_of(q.name).rule) for q in out):
            continue
        learners = [q.name for q in cfg.projections if q.target == p.source and q.compartment == "basal"
                    and q.is_learnable]
        if learners:
            raise ConfigError(
                f"{options.rule} governs {p.name} and carries no error back to {p.source} (burst rates go down "
                f"through explicit apical projections between burst populations only), and nothing else reaches "
                f"{p.source}, so {learners[0]} (learning by {experiment.rule_of(learners[0]).rule}) would never learn; "
                f"make {p.source} a burst population with its Y (and Q), or freeze {learners[0]} (learnable: false); "
                "rules that carry errors back do not govern projections into burst neurons", file=experiment.file,
                path=f"{path}.rule")


def _carries(rule: str) -> bool:
    return rule in RULES and RULES.get(rule).carries_feedback


class BurstRule(PlasticityRule):
    """What the two burst rules share: per projection, no feedback weights, no error carried
    back, settled by the steady sweep; basal projections into burst populations learn from
    the target's burst rate (:meth:`basal_error`), learnable apical ones silence the apical
    dendrite."""

    Options = BurstOptions
    family = "burst"
    carries_feedback = False
    per_projection = True
    projection_recordables = ("weight", "update")
    tunables = {"feedback_scale": (0.1, 10.0, "log")}
    needs_sweep = True
    settling_note = SWEEP_NOTE

    @classmethod
    def serves(cls, proj, populations) -> Optional[str]:
        if proj.compartment == "soma" or not _is_burst(populations[proj.target]):
            return "it governs the basal and apical projections into burst populations"
        if proj.compartment == "apical" and not _is_burst(populations[proj.source]):
            return "it governs apical projections between burst populations (Y reads burst, Q reads event)"
        return None

    @classmethod
    def check(cls, experiment, graph) -> None:
        """Refuse a ``symmetric``/``tied`` Y whose source is not fed by the target (no forward
        weights to take the transpose of), and a symmetric Q with no Y beside it."""
        cfg = experiment.config
        for path, options in experiment.rule_blocks():
            if options.rule != cls.rule_name():
                continue
            for key, why in (("clip_apical", "it feeds no error back, and the apical potential is the explicit "
                                             "projections' drive, which no rule's clip reaches"),
                             ("truncate", "burst networks are not recurrent")):
                if getattr(options, key) is not None:
                    raise ConfigError(f"{key} does nothing under {options.rule}: {why}; remove it", file=experiment.file,
                                      path=f"{path}.{key}")
            names = {p.name for p in cfg.projections if experiment.rule_of(p.name).rule == options.rule}
            mine = {p.name for p in cfg.projections if experiment.rule_of(p.name) is options}
            _check_applies(cfg, options, mine, file=experiment.file, path=path)
            _check_errors_below(experiment, options, mine, path=path)
            for i, proj in enumerate(cfg.projections):
                if proj.name not in names or proj.compartment != "apical":
                    continue
                if cls.contrastive and proj.reads != "burst":  # burstprop: Y only
                    raise ConfigError(
                        f"{proj.name} carries {proj.source}'s {proj.reads or 'rate'} to {proj.target}'s apical dendrite, "
                        f"and {options.rule} (Payeur et al. 2021) has no such projection: its apical input is the burst "
                        "rate from above (reads: burst) only, compared with the free sweep's, so a Q would add its "
                        "own weights to both; remove it (BurstCCN's Q belongs to burstccn)", file=experiment.file,
                        path=f"projections[{i}].reads")
                forward = [p for p in cfg.projections if p.source == proj.target and p.target == proj.source
                           and p.compartment == "basal"]
                if proj.reads == "burst" and options.feedback != "random" and len(forward) != 1:
                    raise ConfigError(
                        f"feedback {options.feedback} sets {proj.name} to the transpose of the forward weights from "
                        f"{proj.target} to {proj.source}, and there is no such basal projection; use feedback: random "
                        "or project Y from the population directly above", file=experiment.file,
                        path=f"{path}.feedback")
                cancel = getattr(options, "cancel", "given")
                if proj.reads in Q_READS and cancel != "given":
                    ys = [p for p in cfg.projections if p.source == proj.source and p.target == proj.target
                          and p.compartment == "apical" and p.reads == "burst"]
                    qs = [p.name for p in cfg.projections if p.source == proj.source and p.target == proj.target
                          and p.compartment == "apical" and p.reads in Q_READS]
                    if len(qs) > 1:
                        raise ConfigError(
                            f"cancel {cancel} sets every Q from {proj.source} to {proj.target} to −p_b times its Y, "
                            f"and {' and '.join(qs)} both carry {proj.source}'s event rate, so Y would be cancelled "
                            f"{len(qs)} times over; keep one of them, or write cancel: given",
                            file=experiment.file, path=f"projections[{i}]")
                    if len(ys) != 1:
                        raise ConfigError(
                            f"cancel {cancel} sets {proj.name} to −p_b times the Y projection beside it "
                            f"({proj.source}:burst->{proj.target}), which the model does not have; add it, or write "
                            "cancel: given", file=experiment.file, path=f"{path}.cancel")

    @classmethod
    def rule_name(cls) -> str:
        return next(n for n in RULES.names() if RULES.get(n) is cls)

    def __init__(self, network, options: BurstOptions, *, projections=None):
        super().__init__(network, options, projections=projections)
        self.refuse_unserved(network)
        #: Y: apical projections reading burst -> the forward projection whose transpose it may be
        self._feedback = {}
        #: Q: apical projections reading event -> the Y projection beside it
        self._cancel = {}
        for name in sorted(self.projections):
            proj = network.projections[name]
            if proj.compartment != "apical":
                continue
            if proj.reads == "burst":
                forward = [p for p in network.outgoing[proj.target] if p.target == proj.source]
                self._feedback[name] = forward[0] if len(forward) == 1 else None
            elif proj.reads in Q_READS:  # an apical projection reading another variable is neither Y nor Q
                ys = [p for p in network.apical_in[proj.target] if p.source == proj.source and p.reads == "burst"]
                self._cancel[name] = ys[0] if len(ys) == 1 else None
        with torch.no_grad():
            self._set_feedback(network, start=True)

    # ----- Y and Q -------------------------------------------------------------------
    def _set_feedback(self, network, *, start: bool) -> None:
        """Y (``feedback``) and Q (``cancel``) at the start or, when tied, after an update."""
        mode, scale = self.options.feedback, self.options.feedback_scale
        for name, forward in self._feedback.items():
            y = network.projections[name].weight
            if mode == "random" and start and scale != 1.0:
                y.mul_(scale)
            elif (mode == "symmetric" and start) or mode == "tied":
                y.copy_(forward.weight.detach().t()).mul_(scale)
        cancel = getattr(self.options, "cancel", "given")
        for name, y in self._cancel.items():
            if y is not None and ((cancel == "symmetric" and start) or cancel == "tied"):
                p_b = network.populations[y.source].baseline
                network.projections[name].weight.copy_(y.weight.detach()).mul_(-p_b)

    def after_update(self, network) -> None:
        """Tied Y (and Q) follow the forward weights after every update."""
        if self.options.feedback == "tied" or getattr(self.options, "cancel", "given") == "tied":
            with torch.no_grad():
                self._set_feedback(network, start=False)

    # ----- the updates -----------------------------------------------------------------
    def basal_error(self, state, name: str) -> torch.Tensor:
        """What the basal synapses of burst population ``name`` learn from (``ΔW ∝ δ e_preᵀ``)."""
        raise NotImplementedError

    def compute_updates(self, network, state=None) -> None:
        state = _state_of(network, state)
        errors = {}
        for proj in self.learnable_projections(network):
            pre = state[proj.source].rate  # the event rate, for basal and apical synapses alike
            if proj.compartment == "basal":
                if proj.target not in errors:
                    errors[proj.target] = self.basal_error(state, proj.target)
                self._write(proj, errors[proj.target], pre, bias=True)
            else:
                self.apical_update(proj, state, errors)

    def apical_update(self, proj, state, errors: dict) -> None:
        """A learnable apical synapse silences the apical dendrite: it descends ``½‖v_A‖²``,
        ``W.grad = v_Aᵀ e_pre / batch`` (``e_pre`` the source's event rate, as the public code's
        Y and Q updates)."""
        self._write(proj, state[proj.target].apical, state[proj.source].rate, bias=False, sign=-1.0)

    def _write(self, proj, delta: torch.Tensor, pre: torch.Tensor, *, bias: bool, sign: float = 1.0) -> None:
        """``.grad`` of ``proj`` (and its bias) from ``δ_post = sign · delta`` and ``e_pre``:
        ``−δᵀ e / batch``, clipped if asked. ``sign`` −1 negates the gain instead of ``delta``
        (no new tensor; negation is exact, so the update is bit for bit the same)."""
        w = proj.weight
        w.grad = proj.weight_gradient(delta, pre, gain=sign * self.update_gain,
                                      out=w.grad if w.grad is not None and w.grad.shape == w.shape else None)
        if bias and proj.bias is not None:
            proj.bias.grad = proj.bias_gradient(delta, gain=sign * self.update_gain)
        if self.options.clip_update is not None:
            counter = self._counter(f"update:{proj.name}", w)
            Fn.clip_(w.grad, self.options.clip_update, counter)
            if bias and proj.bias is not None:
                Fn.clip_(proj.bias.grad, self.options.clip_update, counter)

    # ----- summaries ------------------------------------------------------------------
    def feedback_weight(self, network, proj) -> Optional[torch.Tensor]:
        return None

    def feedback_label(self, network, proj) -> str:
        return f"nothing ({self.options.rule}: burst rates go down through the explicit apical projections)"


@RULES.register("burstccn")
class BurstCCN(BurstRule):
    r"""BurstCCN (Greedy et al. 2022): ``ΔW ∝ (b − p_b e) e_preᵀ`` on basal synapses; a
    learnable ``Q`` learns to cancel ``Y`` (``ΔW ∝ −v_A e_preᵀ``), which ``cancel: symmetric``
    does from the start (docs/howto/burst.md)."""

    Options = BurstCCNOptions

    @classmethod
    def default_for(cls, proj, populations) -> bool:
        """An apical projection between burst populations learns by burstccn's apical synapse
        model when its model names no rule for it and the top-level rule does not serve it."""
        return proj.compartment == "apical" and _is_burst(populations[proj.target]) and _is_burst(
            populations[proj.source])

    def basal_error(self, state, name: str) -> torch.Tensor:
        """``b − p_b e``: the population's ``error``."""
        return state[name].error


@RULES.register("burstprop")
class Burstprop(BurstRule):
    r"""Burstprop (Payeur et al. 2021): ``ΔW ∝ (b − b̄) e_preᵀ`` with ``b̄`` the burst rate
    of the same batch settled without a teacher, the rate model's running average
    (docs/howto/burst.md)."""

    contrastive = True
    settling_note = ("burstprop compares the taught burst rates with those of the same batch settled without a "
                     "teacher, and only the steady scheme settles both (settles_free); " + SWEEP_NOTE)

    def basal_error(self, state, name: str) -> torch.Tensor:
        """``b − b̄``: the taught burst rate's deviation from the free one."""
        if state.free is None:  # the steady scheme settles it (settles_free); a guard for hand-driven presentations
            raise ValueError("burstprop compares the taught state with the free one (state.free), which this "
                             "presentation did not settle: present it under dynamics.mode steady")
        return torch.sub(state[name].burst, state.free[name].burst)

    def apical_update(self, proj, state, errors: dict) -> None:
        """A learnable Y (``reads: burst``) learns as the forward weights it mirrors, as in the
        public burstprop code: ``ΔY ∝ e_post (b − b̄)_preᵀ``, the transpose of the forward
        projection's update; other learnable apical synapses silence the apical dendrite."""
        if proj.reads != "burst":
            return super().apical_update(proj, state, errors)
        if proj.source not in errors:
            errors[proj.source] = self.basal_error(state, proj.source)
        self._write(proj, state[proj.target].rate, errors[proj.source], bias=False)
