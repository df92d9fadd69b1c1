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
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import torch

from ..config.schema import opt
from .base import RULES, PlasticityRule
from .rules import RandomFeedbackOptions, _check_feedback_init, feedback_parameters


@dataclass(frozen=True)
class DLLOptions(RandomFeedbackOptions):
    sigma: float = opt(1.0, "noise scale σ of the dendritic model", gt=0)
    learn_feedback: bool = opt(True, "learn the feedback weights θ (false: fixed random θ)")
    feedback_lr_scale: float = opt(0.1, "learning rate of θ relative to W", ge=0)


@RULES.register("dll")
class DendriticLocalizedLearning(PlasticityRule):
    __doc__ = __doc__
    Options = DLLOptions
    projection_recordables = PlasticityRule.projection_recordables + ("feedback_update",)
    tunables = {"feedback_lr_scale": (0.01, 1.0, "log"), "sigma": (0.5, 2.0)}
    check = classmethod(_check_feedback_init)

    def __init__(self, network, options: DLLOptions, *, projections=None):
        super().__init__(network, options, projections=projections)
        self.apical_gain = 1.0 / options.sigma**2
        self.update_gain = 2.0 / options.sigma**2
        self.theta = feedback_parameters(network, options.feedback_init, learnable=options.learn_feedback,
                                         projections=self.projections)

    def feedback_weight(self, network, proj) -> Optional[torch.Tensor]:
        return self.theta[proj.name] if proj.name in self.theta else None

    def feedback_label(self, network, proj) -> str:
        how = (f"learned at lr x {self.options.feedback_lr_scale}" if self.options.learn_feedback else "fixed random")
        return f"θ[{proj.name}] {list(self.theta[proj.name].shape)} / σ² (σ = {self.options.sigma}), {how}"

    def compute_updates(self, network) -> None:
        super().compute_updates(network)
        if not self.options.learn_feedback:
            return
        for proj in network.projections.values():
            if proj.name not in self.theta:
                continue
            theta = self.theta[proj.name]
            apical, delta, scale = self.paired(network, proj, network.populations[proj.source].apical,
                                               network.populations[proj.target].error)
            theta.grad = proj.feedback_gradient(apical, delta, gain=self.update_gain * scale,
                                                out=theta.grad if theta.grad is not None else None)

    def param_groups(self, lr: float) -> list[dict[str, Any]]:
        if not self.options.learn_feedback or not len(self.theta):
            return []
        return [{"params": list(self.theta.values()), "lr": lr * self.options.feedback_lr_scale, "name": "dll.theta"}]

    def projection_state(self, network, proj, variable: str) -> Optional[torch.Tensor]:
        if variable == "feedback_update":
            theta = self.theta[proj.name] if proj.name in self.theta else None
            return None if theta is None else theta.grad
        return super().projection_state(network, proj, variable)
