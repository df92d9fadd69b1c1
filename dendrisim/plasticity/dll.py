"""Dendritic Localized Learning (Lv et al., ICML 2025, arXiv 2501.09976).

For a hidden population ``l`` below populations ``m`` (σ the noise scale, default 1):

.. math::

    a_l &= \\frac{1}{σ^2} \\sum_m δ_m θ_{m→l}^T        &&\\text{apical dendrite, learned feedback } θ \\\\
    δ_l &= f'(soma_l) ⊙ a_l                            &&\\text{error at the soma (output: } δ = t - r) \\\\
    ΔW_{l→m} &\\propto \\frac{2}{σ^2} δ_m^T r_l          &&\\text{basal synapses, } [n_m, n_l] \\\\
    Δθ_{m→l} &\\propto \\frac{2}{σ^2} a_l^T δ_m          &&\\text{apical synapses, } [n_l, n_m]

Updates are averaged over the batch and written as descent directions
(``W.grad = -ΔW``). θ has the shape of ``Wᵀ`` (torch's ``[n_post, n_pre]`` for the
feedback projection ``m → l``); it learns with the optimizer's learning rate times
``feedback_lr_scale`` (default 0.1, ten times slower than W) unless
``learn_feedback: false``. No weight is ever transported.

Through time, the θ of a recurrent projection carries the apical error back one step per
step, and nothing in the rule as specified keeps that recursion contractive. Five named
options change how θ learns (all off by default, so the rule is the paper's):

- ``feedback_update: rate``: θ pairs the error from above with the rate of its own neuron
  instead of its apical potential, ``Δθ ∝ rᵀδ``: the transposed basal update, as in
  Kolen-Pollack, so with the same decay on W and θ (``optimizer.weight_decay``) θ comes to
  align with Wᵀ; the synapse still uses only what is present at its two ends;
- ``recurrent_feedback_sign: anti_hebbian``: the recurrent θ learns with the opposite sign,
  ``Δθ ∝ -a(t)ᵀ δ(t+1)``, as the reference implementation's RNN code does;
- ``fix_feedback_until: N``: θ stays at its random start for the first N epochs (the
  reference's ``fix_theta_until``), then learns;
- ``feedback_decay: λ``: a pull of θ toward zero, ``θ.grad += λ θ`` (an L2 term, as kp's);
- ``recurrent_feedback_norm: ρ``: after every update the recurrent θ is scaled back onto
  the ball of spectral norm ρ (its largest singular value), which bounds its spectral radius
  by ρ too, so the backward recursion through it is contractive for ρ < 1 (times f' ≤ 1).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Optional

import torch

from ..config.schema import opt
from ..errors import ConfigError
from .base import RULES, PlasticityRule, _state_of
from .rules import RandomFeedbackOptions, _check_feedback_init, feedback_parameters


@dataclass(frozen=True)
class DLLOptions(RandomFeedbackOptions):
    sigma: float = opt(1.0, "noise scale σ of the dendritic model", gt=0)
    learn_feedback: bool = opt(True, "learn the feedback weights θ (false: fixed random θ)")
    feedback_lr_scale: float = opt(0.1, "learning rate of θ relative to W", ge=0)
    feedback_update: Literal["apical", "rate"] = opt(
        "apical", "what θ's update pairs with the error from above: apical (as specified, Δθ ∝ aᵀδ) or rate "
                  "(Δθ ∝ rᵀδ, the transposed basal update: Kolen-Pollack's, which aligns θ with Wᵀ under "
                  "equal decay)")
    recurrent_feedback_sign: Literal["hebbian", "anti_hebbian"] = opt(
        "hebbian", "sign of the recurrent θ's update: hebbian (as specified, Δθ ∝ aᵀδ) or anti_hebbian "
                   "(Δθ ∝ -aᵀδ, the reference implementation's RNN code)")
    fix_feedback_until: int = opt(0, "keep θ fixed at its random start for the first N epochs "
                                     "(the reference's fix_theta_until)", ge=0)
    feedback_decay: float = opt(0.0, "pull of θ toward zero: θ.grad += decay · θ", ge=0)
    recurrent_feedback_norm: Optional[float] = opt(None, "after every update, scale the recurrent θ down to "
                                                         "spectral norm ≤ this value (off by default)", gt=0)


@RULES.register("dll")
class DendriticLocalizedLearning(PlasticityRule):
    __doc__ = __doc__
    Options = DLLOptions
    projection_recordables = PlasticityRule.projection_recordables + ("feedback_update",)
    tunables = {"feedback_lr_scale": (0.01, 1.0, "log"), "sigma": (0.5, 2.0)}

    @classmethod
    def check(cls, experiment, graph) -> None:
        """The feedback init; and no learned θ out of a population with explicit apical
        projections (a microcircuit's top-down or lateral input): θ learns from the apical
        potential, which there holds that input too, so θ would learn to carry the circuit's
        drive rather than the errors above."""
        _check_feedback_init(cls, experiment, graph)
        cfg = experiment.config
        explicit = {p.target for p in cfg.projections if p.compartment == "apical"}
        for i, proj in enumerate(cfg.projections):
            options = experiment.rule_of(proj.name)
            if (options.rule == "dll" and options.learn_feedback and proj.source in explicit
                    and proj.compartment == "basal" and proj.is_learnable):
                path = (f"projections[{i}].plasticity.rule" if proj.plasticity is not None else "plasticity.rule")
                raise ConfigError(
                    f"dll learns the θ of {proj.name} from {proj.source}'s apical potential, and {proj.source} also "
                    "takes explicit apical projections (a microcircuit's top-down or lateral input), so θ would learn "
                    f"from that drive too, not only from the errors above; give {proj.name} a rule whose feedback "
                    "does not learn from the apical potential (bp, fa, kp, mc_basal), or dll with learn_feedback: "
                    "false", file=experiment.file, path=path)

    def __init__(self, network, options: DLLOptions, *, projections=None):
        super().__init__(network, options, projections=projections)
        self.apical_gain = 1.0 / options.sigma**2
        self.update_gain = 2.0 / options.sigma**2
        self.theta = feedback_parameters(network, options.feedback_init, learnable=options.learn_feedback,
                                         projections=self.projections)
        self.recurrent = frozenset(name for name in self.theta if network.projections[name].kind == "recurrent")
        self.epoch = 1  # the epoch in progress, as the loop says (start_epoch)

    def feedback_weight(self, network, proj) -> Optional[torch.Tensor]:
        return self.theta[proj.name] if proj.name in self.theta else None

    def feedback_label(self, network, proj) -> str:
        o = self.options
        how = f"learned at lr x {o.feedback_lr_scale}" if o.learn_feedback else "fixed random"
        if o.learn_feedback:
            if o.fix_feedback_until:
                how += f" after {o.fix_feedback_until} epochs fixed"
            if o.feedback_update == "rate":
                how += ", by rate x error (Kolen-Pollack)"
            if o.feedback_decay:
                how += f", decay {o.feedback_decay}"
            if proj.name in self.recurrent and o.recurrent_feedback_sign == "anti_hebbian":
                how += ", anti-Hebbian"
            if proj.name in self.recurrent and o.recurrent_feedback_norm is not None:
                how += f", spectral norm <= {o.recurrent_feedback_norm}"
        return f"θ[{proj.name}] {list(self.theta[proj.name].shape)} / σ² (σ = {o.sigma}), {how}"

    def learns_feedback(self) -> bool:
        """Whether θ learns in this epoch (``learn_feedback``, after ``fix_feedback_until``)."""
        return self.options.learn_feedback and self.epoch > self.options.fix_feedback_until

    def start_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def compute_updates(self, network, state=None) -> None:
        state = _state_of(network, state)
        super().compute_updates(network, state)
        if not self.learns_feedback():
            return
        anti = self.options.recurrent_feedback_sign == "anti_hebbian"
        for proj in network.projections.values():
            if proj.name not in self.theta:
                continue
            theta = self.theta[proj.name]
            source = state[proj.source]
            pre = source.apical if self.options.feedback_update == "apical" else source.rate
            pre, delta, scale = self.paired(network, proj, pre, state[proj.target].error)
            gain = self.update_gain * scale * (-1.0 if anti and proj.name in self.recurrent else 1.0)
            theta.grad = proj.feedback_gradient(pre, delta, gain=gain,
                                                out=theta.grad if theta.grad is not None else None)
            if self.options.feedback_decay:
                theta.grad.add_(theta.detach(), alpha=self.options.feedback_decay)

    def after_update(self, network) -> None:
        """Scale each recurrent θ back onto the ball of spectral norm ``recurrent_feedback_norm``."""
        bound = self.options.recurrent_feedback_norm
        if bound is None or not self.learns_feedback():
            return
        for name in self.recurrent:
            theta = self.theta[name].detach()
            # min(1, ρ / ‖θ‖₂) on the device: no host sync (an SVD of [n, n], ~5 ms at n = 256 on a CPU core)
            theta.mul_(torch.clamp(bound / torch.linalg.matrix_norm(theta, 2), max=1.0))

    def spectral_norms(self) -> dict[str, float]:
        """The spectral norm (largest singular value) of every recurrent θ, for study and tests."""
        return {name: float(torch.linalg.matrix_norm(self.theta[name].detach(), 2)) for name in self.recurrent}

    def param_groups(self, lr: float) -> list[dict[str, Any]]:
        if not self.options.learn_feedback or not len(self.theta):
            return []
        return [{"params": list(self.theta.values()), "lr": lr * self.options.feedback_lr_scale, "name": "dll.theta"}]

    def projection_state(self, network, proj, variable: str) -> Optional[torch.Tensor]:
        if variable == "feedback_update":
            theta = self.theta[proj.name] if proj.name in self.theta else None
            return None if theta is None else theta.grad
        return super().projection_state(network, proj, variable)
