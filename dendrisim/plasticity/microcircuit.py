r"""The synapse models of the cortical microcircuit (family ``microcircuit``).

Sacramento, Costa, Bengio & Senn, "Dendritic cortical microcircuits approximate the
backpropagation algorithm", NeurIPS 2018 (eqs. 1–9 there); the basal rule is Urbanczik &
Senn, "Learning by the dendritic prediction of somatic spiking", Neuron 2014. In the
circuit a hidden pyramidal population ``P_k`` has interneurons ``I_k`` (as many as the
population ``P_k+1`` above, each nudged one to one by it) and an apical dendrite driven by
explicit projections: top-down rates from ``P_k+1`` and lateral rates from ``I_k``,

.. math::

    v_{A,k} = W_{k,k+1} r_{k+1} + W_{k,I} r_{I,k}, \qquad
    v_{D} = W_{I,k} r_k \;(\text{the interneurons' dendrite}).

No rule carries an error back: what reaches an apical dendrite is what its projections
bring (the settling scheme sums it, ``dendrisim.settling``). Each synapse learns from what
is present at its two ends, and each update is written to ``.grad`` as a descent direction,
a mean over the batch (``ΔW = −W.grad`` for plain SGD at learning rate 1):

.. math::

    \text{mc\_basal:}\quad & ΔW_{post,pre} ∝ e_{post} \, r_{pre}^T, \qquad
        e = \frac{f(u) - f(\hat v)}{λ}
        && \text{basal synapses of pyramidal neurons and interneurons} \\
    \text{mc\_lateral:}\quad & ΔW_{k,I} ∝ (v_{rest} - v_{A,k}) \, r_{I,k}^T
        && \text{interneuron → apical: silences the apical dendrite} \\
    \text{mc\_topdown:}\quad & ΔW_{k,k+1} ∝ \frac{f(u_k) - f(\hat v_{TD,k})}{λ_k} \, r_{k+1}^T,
        \quad \hat v_{TD,k} = W_{k,k+1} r_{k+1} (+ b)
        && \text{pyramidal → apical, when learnable}

``u`` is the soma, ``v̂`` the dendritic prediction of the soma (pyramidal:
``v̂ = g_B/(g_L+g_B+g_A) v_B``; interneuron: ``v̂ = g_D/(g_L+g_D) v_D``), ``λ`` the
population's nudging (pyramidal ``g_A/(g_L+g_B+g_A)``, interneuron
``g_som/(g_L+g_D+g_som)``): ``e`` is the settling scheme's ``error`` of the population,
the Urbanczik–Senn mismatch divided by ``λ``, so that it stays of the order of the error it
carries as the nudging weakens (``η_dendrisim = λ · η_paper``). The top-down rule divides
its mismatch by the same ``λ`` of its target, so that one learning rate means the same for
every Urbanczik–Senn synapse of a population; the lateral rule is the paper's, undivided.
``v_A`` is the whole apical potential of the target, what is present at the synapse: in a
circuit mixed with a rule that carries feedback (``{from: h1, to: out, plasticity: {rule:
bp}}``) it includes that rule's part, which a still-learning lateral synapse would cancel too.

Self-predicting state (no teacher): ``W_{k,I} = −W_{k,k+1}`` and
``W_{I,k} = W_{k+1,k} · a_{k+1}/a_I`` (``a`` the attenuation ``v̂ = a v_B`` of the output and
of the interneurons) make ``v_A = 0`` for every input; with a teacher and weak nudging the
apical potential is then backprop's error through ``W_{k,k+1}`` (feedback alignment's when
``W_{k,k+1}`` is not ``W_{k+1,k}ᵀ``), times ``λ_{k+1} (1 − λ_I)``.

All three need simulated compartments (``dynamics.mode: euler``): the steady sweep sets
every soma to its basal drive, so the mismatch each one learns from is zero there and the
explicit apical projections are never summed. A model file names them per projection;
without a ``plasticity`` block an interneuron's dendrite learns by ``mc_basal`` and an
apical projection by ``mc_lateral`` (from interneurons) or ``mc_topdown`` (from a pyramidal
population), whatever the top-level rule (:meth:`PlasticityRule.default_for`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch

from ..config.graph import model_of
from ..config.schema import opt
from .. import functional as Fn
from ..errors import ConfigError
from .base import RULES, PlasticityRule, RuleOptions, _state_of

#: why the steady sweep cannot serve the synapse models (builder.scheme_refusal prints it)
STEADY_NOTE = ("its update is a soma's mismatch with its dendrite or the potential of an apical dendrite driven "
               "by explicit projections, and the steady sweep settles every soma at its basal drive (soma = "
               "basal: the mismatch is zero) and sums no explicit apical projection; the cortical microcircuit "
               "needs simulated compartments (dynamics.mode: euler)")


def _carries_feedback(rule: str) -> bool:
    return rule in RULES and RULES.get(rule).carries_feedback


class MicrocircuitRule(PlasticityRule):
    """What the three synapse models share: no feedback weights, no error carried back,
    per-projection, simulated compartments only. Each governs only projections it serves: a
    network built by hand that gives it another one is refused when the rule is built (model
    files are refused before, by the builder)."""

    family = "microcircuit"
    carries_feedback = False
    per_projection = True
    needs_compartments = True
    settling_note = STEADY_NOTE
    projection_recordables = ("weight", "update")

    def __init__(self, network, options: RuleOptions, *, projections=None):
        super().__init__(network, options, projections=projections)
        self.refuse_unserved(network)

    def feedback_weight(self, network, proj) -> Optional[torch.Tensor]:
        return None

    def feedback_label(self, network, proj) -> str:
        return f"nothing ({self.options.rule} carries no error back)"

    def _write(self, proj, delta: torch.Tensor, rate: torch.Tensor) -> None:
        """``.grad`` of ``proj`` (and of its bias) from ``δ_post`` and ``r_pre``:
        ``−δᵀ r / batch``, clipped if asked (as :meth:`PlasticityRule.compute_updates`)."""
        w = proj.weight
        w.grad = proj.weight_gradient(delta, rate, gain=self.update_gain,
                                      out=w.grad if w.grad is not None and w.grad.shape == w.shape else None)
        if proj.bias is not None:
            proj.bias.grad = proj.bias_gradient(delta, gain=self.update_gain)
        if self.options.clip_update is not None:
            counter = self._counter(f"update:{proj.name}", w)
            Fn.clip_(w.grad, self.options.clip_update, counter)
            if proj.bias is not None:
                Fn.clip_(proj.bias.grad, self.options.clip_update, counter)


@RULES.register("mc_basal")
class MicrocircuitBasal(MicrocircuitRule):
    r"""Urbanczik–Senn plasticity of basal synapses (pyramidal neurons and interneurons):
    ``ΔW ∝ e_post r_preᵀ`` with the settling scheme's error ``e = (f(u) − f(v̂))/λ`` (the
    base class's updates)."""

    @classmethod
    def serves(cls, proj, populations) -> Optional[str]:
        target = model_of(populations[proj.target])
        if proj.compartment != "basal" or target.clamped or not target.constants:
            return ("it is the synapse model of basal projections into pyramidal and interneuron populations "
                    "(apical projections learn by mc_lateral from interneurons and by mc_topdown from pyramidal "
                    "populations)")
        return None

    @classmethod
    def default_for(cls, proj, populations) -> bool:
        return proj.compartment == "basal" and model_of(populations[proj.target]).takes_nudging

    @classmethod
    def check(cls, experiment, graph) -> None:
        """Refuse a model where a hidden pyramidal population whose basal synapses learn by
        mc_basal can never have an error: no explicit apical projection ends on it and no
        projection out of it learns by a rule that carries errors back (a plain network under
        mc_basal alone, where only the output would learn)."""
        cfg = experiment.config
        for name, pop in cfg.populations.items():
            out = [p for p in cfg.projections if p.source == name and p.compartment == "basal"]
            if not model_of(pop).offers_apical or not out:
                continue  # not a hidden pyramidal population (the output's apical input is its teacher)
            if any(p.target == name and p.compartment == "apical" for p in cfg.projections):
                continue
            if any(_carries_feedback(experiment.rule_of(p.name).rule) for p in out):
                continue
            governed = [(i, p.name) for i, p in enumerate(cfg.projections)
                        if p.target == name and p.compartment == "basal" and p.is_learnable
                        and experiment.rule_of(p.name).rule == "mc_basal"]
            if not governed:
                continue
            index, first = governed[0]
            path = f"projections[{index}].plasticity.rule" if first in experiment.projection_rules else "plasticity.rule"
            carriers = ", ".join(n for n in RULES.names() if _carries_feedback(n) and RULES.get(n).per_projection)
            raise ConfigError(
                f"mc_basal learns {first} from {name}'s soma–dendrite mismatch, but nothing ever reaches {name}'s "
                "apical dendrite: no apical projection ends on it and no projection out of it learns by a rule that "
                "carries errors back, so its error stays zero and its basal synapses never learn. Give "
                f"{name} its microcircuit (interneurons nudged by the population above it, with "
                f"{{from: <above>, to: {name}, compartment: apical}} and {{from: <interneurons>, to: {name}, "
                f"compartment: apical}}), or let a projection out of {name} learn by a rule that carries errors "
                f"back ({carriers})", file=experiment.file, path=path)


@dataclass(frozen=True)
class LateralOptions(RuleOptions):
    v_rest: float = opt(0.0, "mc_lateral: the apical potential the lateral synapses drive the apical dendrite to "
                             "(ΔW ∝ (v_rest − v_A) r_Iᵀ)")


class ApicalSynapses(MicrocircuitRule):
    """A synapse model of apical projections from one kind of population (``lateral``: from
    populations nudged by the one they predict, interneurons; otherwise top-down, from
    populations with an apical compartment), which it governs by default when the model
    names no rule for them."""

    lateral: bool = False
    #: what it is the synapse model of, for the error on a projection it does not serve
    served: str = ""

    @classmethod
    def serves(cls, proj, populations) -> Optional[str]:
        return None if cls.default_for(proj, populations) else f"it is the synapse model of {cls.served}"

    @classmethod
    def default_for(cls, proj, populations) -> bool:
        source, target = model_of(populations[proj.source]), model_of(populations[proj.target])
        if target.settles_in_sweep:  # a burst population's Y and Q: the burst rules' apical synapses
            return False
        return proj.compartment == "apical" and (source.takes_nudging if cls.lateral else source.offers_apical)


@RULES.register("mc_lateral")
class MicrocircuitLateral(ApicalSynapses):
    r"""Interneuron → apical synapses: ``ΔW ∝ (v_rest − v_A,post) r_Iᵀ``, which silences the
    apical dendrite (``W.grad = (v_A − v_rest)ᵀ r_I / batch``)."""

    Options = LateralOptions
    lateral = True
    served = "interneuron -> apical projections"

    def compute_updates(self, network, state=None) -> None:
        state = _state_of(network, state)
        for proj in self.learnable_projections(network):
            mismatch = torch.neg(state[proj.target].apical)
            if self.options.v_rest:
                mismatch.add_(self.options.v_rest)
            self._write(proj, mismatch, state[proj.source].rate)


@RULES.register("mc_topdown")
class MicrocircuitTopDown(ApicalSynapses):
    r"""Pyramidal → apical (top-down) synapses, when the projection is learnable (fixed by
    default): ``ΔW ∝ (f(u_post) − f(v̂_TD)) r_preᵀ / λ_post`` with ``v̂_TD = W r_pre (+ b)``,
    the top-down prediction of the target's soma."""

    lateral = False
    served = "top-down apical projections from pyramidal populations"

    def compute_updates(self, network, state=None) -> None:
        state = _state_of(network, state)
        for proj in self.learnable_projections(network):
            post, rate = network.populations[proj.target], state[proj.source].rate
            predicted = post.activation.f(proj.drive(rate))
            self._write(proj, torch.sub(state[proj.target].rate, predicted).div_(post.compartments.nudging), rate)
