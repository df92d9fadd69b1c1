"""Predictive coding with iterative inference (Whittington & Bogacz 2017).

Each hidden population's soma ``x_l`` relaxes, for up to T steps of size η, between its
basal prediction from below and the top-down errors of the populations it feeds:

.. math::

    μ_m &= Σ_p W_{p→m} f(x_p) + b                       &&\\text{basal prediction} \\\\
    ε_l &= x_l - μ_l                                     &&\\text{prediction error (hidden)} \\\\
    ε_{out} &= γ (t - f(μ_{out}))                        &&\\text{teacher error (output; × f' for a non-canonical loss)} \\\\
    a_l &= Σ_m ε_m W_{l→m}                               &&\\text{top-down input to the apical dendrite} \\\\
    x_l &\\leftarrow x_l + η(-ε_l + f'(x_l) ⊙ a_l)

starting from the feedforward pass (all ε = 0 below the output) and stopping early when
``max |Δx| < tolerance``. At the fixed point ``ε_l = f'(x_l) ⊙ a_l``: the backprop
recursion, evaluated at the relaxed state. With a small output error (``error_scale``
γ ≪ 1) the hidden somata barely move from the feedforward pass, the output prediction
stays put, and the updates approach backprop's (Whittington & Bogacz 2017); with γ = 1
the relaxed state departs from it. The updates are local, postsynaptic error ×
presynaptic rate, rescaled by 1/γ:

.. math:: \\frac{∂L}{∂W_{l→m}} \\leftarrow -\\frac{1}{γB} ε_m^T f(x_l)

After settling, each hidden population holds ``soma = x``, ``basal = μ``,
``rate = f(x)``, ``apical = a`` and ``error = ε``. Feedback uses the forward weights
(symmetric connections, as in the standard formulation).

The rule only declares the relaxation (``relaxation``, a :class:`~dendrisim.plasticity.base.Relaxation`
of T, η, the tolerance and γ) and computes the updates; the steady settling scheme
(``dynamics.mode: steady``, ``dendrisim.settling``) runs it and tells the rule how it went
(``relaxed``), which the rule counts for the epoch's metrics row.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch

from ..config.schema import opt
from .base import RULES, PlasticityRule, Relaxation, RuleOptions


@dataclass(frozen=True)
class PCOptions(RuleOptions):
    inference_steps: int = opt(20, "inference iterations T per training step", ge=1)
    inference_lr: float = opt(0.1, "step size η of the somatic relaxation", gt=0, le=1)
    tolerance: float = opt(1e-5, "stop relaxing when max |Δsoma| falls below this", ge=0)
    error_scale: float = opt(1.0, "γ: the output error in the relaxation is γ(t - rate); updates are divided by γ", gt=0)


@RULES.register("pc")
class PredictiveCoding(PlasticityRule):
    __doc__ = __doc__
    Options = PCOptions
    relaxes = True
    settling_note = ("pc relaxes its own dynamical system (value neurons x moving against prediction errors "
                     "ε = x − μ, with symmetric weights), not the conductance-coupled compartments of mode euler; "
                     "mapping one onto the other would change what pc is. Use mode: steady with pc (its relaxation "
                     "is simulated there: inference_steps, inference_lr)")

    per_projection = False  # one relaxation of the whole network
    tunables = {"inference_lr": (0.02, 0.5, "log"), "inference_steps": (5, 40, "int")}

    def __init__(self, network, options: PCOptions, *, projections=None):
        super().__init__(network, options, projections=projections)
        # iterations, settles, settles that hit T: in the state dict, so a resumed run reports the same
        self.register_buffer("inference_counts", torch.zeros(3, dtype=torch.float64))
        self.update_gain = 1.0 / options.error_scale
        self.relaxation = Relaxation(steps=options.inference_steps, rate=options.inference_lr,
                                     tolerance=options.tolerance, error_scale=options.error_scale)

    @classmethod
    def check(cls, experiment, graph) -> None:
        from ..errors import ConfigError

        for i, proj in enumerate(experiment.config.projections):
            if proj.kind == "recurrent":
                raise ConfigError("rule pc relaxes a feedforward network; recurrent projections are not supported "
                                  "under it (use dll, bp, fa, dfa or kp)", file=experiment.file,
                                  path=f"projections[{i}].kind")

    def feedback_weight(self, network, proj) -> Optional[torch.Tensor]:
        return proj.transported()

    def feedback_label(self, network, proj) -> str:
        return f"W[{proj.name}]ᵀ (symmetric), relaxed for up to {self.options.inference_steps} steps"

    def relaxed(self, iterations: int, converged: Optional[bool]) -> None:
        """Count one relaxation: its inference steps, and whether it hit T without meeting the tolerance."""
        self.inference_counts[0] += iterations
        self.inference_counts[1] += 1
        self.inference_counts[2] += 1 if converged is False else 0

    def epoch_summary(self) -> dict[str, float]:
        """Mean inference iterations per step and, when there is a tolerance to meet, the share of
        steps that hit T without meeting it (then reset). With ``tolerance: 0`` every step runs T
        iterations by choice, so no convergence share is reported."""
        iterations, settles, unconverged = self.inference_counts.tolist()
        if not settles:
            return {}
        self.inference_counts.zero_()
        summary = {"pc_iterations": iterations / settles}
        if self.options.tolerance:
            summary["pc_unconverged"] = unconverged / settles
        return summary
