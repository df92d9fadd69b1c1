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
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch

from ..config.schema import opt
from ..losses import output_error
from .base import RULES, PlasticityRule, RuleOptions


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
    settling_modes = ("steady",)
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

    def _predict(self, network, x: dict) -> dict:
        """Basal predictions μ of every pyramidal population from the current somata."""
        mu = {}
        for name in network.order:
            total = None
            for proj in network.incoming[name]:
                pre = network.populations[proj.source]
                rate = pre.activation.f(x[proj.source]) if proj.source in x else pre.rate
                d = proj.drive(rate)
                total = d if total is None else total + d
            mu[name] = total.reshape(-1, *network.populations[name].shape)
        return mu

    def _errors(self, network, x: dict, mu: dict, target: torch.Tensor) -> dict:
        out = network.output
        out.soma = out.basal = mu[out.name]
        out.rate = out.activation.f(out.soma)
        out.apical = target.view_as(out.rate) - out.rate
        eps = {out.name: output_error(out) * self.options.error_scale}
        for pop in network.hidden():
            eps[pop.name] = x[pop.name] - mu[pop.name]
        return eps

    def _top_down(self, network, pop, eps: dict) -> torch.Tensor:
        total = None
        for proj in network.outgoing[pop.name]:
            a = proj.carry_back(eps[proj.target], proj.transported())
            total = a if total is None else total + a
        return total

    def relax(self, network, target: torch.Tensor) -> None:
        o = self.options
        hidden = list(network.hidden())
        x = {pop.name: pop.soma.clone() for pop in hidden}
        steps = 0
        for steps in range(1, o.inference_steps + 1):
            mu = self._predict(network, x)
            eps = self._errors(network, x, mu, target)
            change = 0.0
            for pop in hidden:
                dx = -eps[pop.name] + pop.activation.df(x[pop.name], pop.activation.f(x[pop.name])) * self._top_down(
                    network, pop, eps)
                x[pop.name].add_(dx, alpha=o.inference_lr)
                change = max(change, float(dx.abs().max()) * o.inference_lr) if o.tolerance else change
            if o.tolerance and change < o.tolerance:
                break
        else:
            self.inference_counts[2] += 1 if o.tolerance else 0
        self.inference_counts[0] += steps
        self.inference_counts[1] += 1
        mu = self._predict(network, x)
        eps = self._errors(network, x, mu, target)
        network.output.error = eps[network.output_name]
        for pop in hidden:
            pop.soma, pop.basal = x[pop.name], mu[pop.name]
            pop.rate = pop.activation.f(pop.soma)
            pop.apical = self._top_down(network, pop, eps)
            pop.error = eps[pop.name]

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
