"""How far a rule's updates are from exact backprop, measured on a fixed probe batch.

For every learnable projection with update ``ΔW_rule`` (what the active rule writes to
``.grad``) and ``ΔW_bp`` (what backprop writes for the same network and batch):

- ``update_angle`` = ∠(ΔW_rule, ΔW_bp) in degrees (0: the same direction),
- ``update_norm_ratio`` = ‖ΔW_rule‖ / ‖ΔW_bp‖ (DLL's gain 2/σ² shows here),
- ``feedback_angle`` = ∠(B, Wᵀ) of the feedback weights that carry the projection's
  target error back to its source (0 under bp, which uses Wᵀ itself; NaN where there are
  none: projections from the input, and under dfa those that do not end at the output).

Only projections that backprop has a gradient for are measured: the basal projections into
pyramidal populations. A microcircuit's apical projections (top-down, lateral), its somatic
nudging and its interneurons' dendrites are not in the feedforward graph the loss is taken
through, so there is no backprop update to compare theirs with; they are skipped (and the
reference sweep carries no error back through them).
"""
from __future__ import annotations

import math

import torch

from .settling import SteadyState
from .plasticity.rules import Backprop

MEASURES = ("update_angle", "update_norm_ratio", "feedback_angle")


def feedforward(network) -> list:
    """The projections of the feedforward network the loss is taken through: basal ones into
    pyramidal populations (every projection of a network that is not a microcircuit)."""
    interneurons = {pop.name for pop in network.interneurons()}
    return [p for p in network.projections.values() if p.compartment == "basal" and p.target not in interneurons]


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
        # exact backprop through the feedforward network only (a microcircuit's explicit
        # projections and interneurons are neither governed nor carried back through)
        self.backprop = Backprop(network, rule.options, projections=[p.name for p in feedforward(network)])
        self.sweep = SteadyState(scheme.config)
        self.names = [p.name for p in feedforward(network) if p.learnable]

    def measure(self) -> dict[str, dict[str, float]]:
        """The measures of every measured projection. Measuring changes nothing of the run: the
        probe presents through the scheme's own call, on states of its own, and draws nothing
        from the run's random generators (a stochastic rule's noise included), so a run is
        bit for bit the same with the probe on and off; the clip counters are restored."""
        net, rule = self.network, self.rule
        clips = {k: v.clone() for k, v in rule.clip_counts.items()}  # the probe must not count
        last = net.last_state
        devices = [self.x.device] if self.x.device.type == "cuda" else []
        with torch.no_grad(), torch.random.fork_rng(devices=devices):
            self.scheme.present(net, rule, self.t, state=net.free_state(self.x))
            measured = [net.projections[name] for name in self.names]
            ours = {p.name: p.weight.grad.clone() for p in measured}
            # exact backprop by the sweep, from a free state of its own (the scheme moved the somata);
            # the sweep's own steps: present() refuses a circuit as a whole
            state = net.free_state(self.x)
            state.target = self.t.view_as(state.output.rate)
            self.sweep.settle(net, self.backprop, state)
            self.backprop.compute_updates(net, state)
            out = {}
            for proj in measured:
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
        net.last_state = last
        return {name: dict(zip(MEASURES, v.tolist())) for name, v in out.items()}
