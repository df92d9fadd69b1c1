# The page docs/howto/writing-a-rule.md showed this rule before a presentation's state became a value
# (issue 27). Kept as it was: tests/test_old_plugins.py holds that it still trains, with a
# DeprecationWarning that names the migration.
# file: learned_feedback.py
"""Feedback weights B that learn by the transposed forward update (Kolen-Pollack without
decay), frozen for the first epochs and scaled back to a bounded norm after every update."""
from dataclasses import dataclass

import torch
from torch import nn

import dendrisim


@dataclass(frozen=True)
class LearnedFeedbackOptions(dendrisim.RuleOptions):
    feedback_lr_scale: float = dendrisim.option(0.1, "learning rate of B relative to W", ge=0)
    frozen_epochs: int = dendrisim.option(1, "keep B at its random start for the first N epochs", ge=0)
    max_norm: float = dendrisim.option(5.0, "after each update, scale each B down to this norm", gt=0)


@dendrisim.register_rule("learned_feedback")
class LearnedFeedback(dendrisim.PlasticityRule):
    """B of Wᵀ's shape, learning by (ΔW)ᵀ after the first epochs."""

    Options = LearnedFeedbackOptions
    tunables = {"feedback_lr_scale": (0.01, 1.0, "log")}
    projection_recordables = dendrisim.PlasticityRule.projection_recordables + ("feedback_update",)

    def __init__(self, network, options, *, projections=None):
        super().__init__(network, options, projections=projections)
        self.epoch = 1
        self.B = nn.ParameterDict({
            name: nn.Parameter(0.05 * torch.randn(proj.feedback_shape))
            for name, proj in network.projections.items()
            if name in self.projections and proj.source != network.input_name and proj.has_weight})

    def feedback_weight(self, network, proj):
        return self.B[proj.name] if proj.name in self.B else None

    def start_epoch(self, epoch):
        self.epoch = epoch

    def compute_updates(self, network):
        super().compute_updates(network)             # W.grad of every learnable projection
        for name, B in self.B.items():
            proj = network.projections[name]
            learning = self.epoch > self.options.frozen_epochs and proj.weight.grad is not None
            B.grad = proj.to_feedback_layout(proj.weight.grad).contiguous() if learning else None

    def after_update(self, network):
        with torch.no_grad():
            for B in self.B.values():
                B.mul_(torch.clamp(self.options.max_norm / B.norm(), max=1.0))

    def param_groups(self, lr):
        return [{"params": list(self.B.values()), "lr": lr * self.options.feedback_lr_scale,
                 "name": "learned_feedback.B"}]

    def projection_state(self, network, proj, variable):
        if variable == "feedback_update":
            return self.B[proj.name].grad if proj.name in self.B else None
        return super().projection_state(network, proj, variable)
