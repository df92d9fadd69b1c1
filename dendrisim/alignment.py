"""How far a rule's updates are from exact backprop, measured on a fixed probe batch.

For every learnable projection with update ``ΔW_rule`` (what the active rule writes to
``.grad``) and ``ΔW_bp`` (what backprop writes for the same network and batch):

- ``update_angle`` = ∠(ΔW_rule, ΔW_bp) in degrees (0: the same direction),
- ``update_norm_ratio`` = ‖ΔW_rule‖ / ‖ΔW_bp‖ (DLL's gain 2/σ² shows here),
- ``feedback_angle`` = ∠(B, Wᵀ) of the feedback weights that carry the projection's
  target error back to its source (0 under bp, which uses Wᵀ itself; NaN where there are
  none: projections from the input, and under dfa those that do not end at the output).
"""
from __future__ import annotations

import math

import torch

from .settling import SteadyState
from .plasticity.rules import Backprop

MEASURES = ("update_angle", "update_norm_ratio", "feedback_angle")


def angle(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Angle in degrees between two tensors taken as vectors (float64 on their device)."""
    a, b = a.reshape(-1).double(), b.reshape(-1).double()
    cos = torch.dot(a, b) / (a.norm() * b.norm()).clamp_min(1e-300)
    return torch.rad2deg(torch.arccos(cos.clamp(-1.0, 1.0)))


class AlignmentProbe:
    """Measures every ``every`` steps on the first ``size`` training samples."""

    def __init__(self, network, rule, x: torch.Tensor, t: torch.Tensor, *, scheme):
        """``scheme``: the run's settling scheme, under which the rule's updates are measured."""
        self.network, self.rule, self.x, self.t = network, rule, x, t
        self.scheme = scheme
        self.backprop = Backprop(network, rule.options)
        self.sweep = SteadyState(scheme.config)
        self.names = [p.name for p in network.learnable_projections()]

    def measure(self) -> dict[str, dict[str, float]]:
        net, rule = self.network, self.rule
        clips = {k: v.clone() for k, v in rule.clip_counts.items()}  # the probe must not count
        with torch.no_grad():
            net(self.x)
            self.scheme.present(net, rule, self.t)
            ours = {p.name: p.weight.grad.clone() for p in net.learnable_projections()}
            # exact backprop by the sweep, from the free state (simulated compartments moved the somata)
            if self.scheme.trace_steps is not None:
                net(self.x)
            self.sweep.present(net, self.backprop, self.t)
            out = {}
            for proj in net.learnable_projections():
                exact = proj.weight.grad
                fb = rule.feedback_weight(net, proj) if proj.source != net.input_name else None
                values = torch.stack([
                    angle(ours[proj.name], exact),
                    ours[proj.name].double().norm() / exact.double().norm().clamp_min(1e-300),
                    angle(fb, proj.transported()) if fb is not None else torch.tensor(math.nan, device=exact.device,
                                                                                    dtype=torch.float64),
                ])
                out[proj.name] = values
        for k, v in clips.items():
            rule.clip_counts[k].copy_(v)
        return {name: dict(zip(MEASURES, v.tolist())) for name, v in out.items()}
