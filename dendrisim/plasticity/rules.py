"""Backprop, feedback alignment and direct feedback alignment.

All three share the settling of :class:`PlasticityRule`: for a hidden population ``l``

.. math:: a_l = \\sum_{m \\in post(l)} δ_m B_{l \\leftarrow m}^T, \\qquad δ_l = f'(soma_l) ⊙ a_l,
          \\qquad \\frac{∂L}{∂W_{l→m}} \\leftarrow -\\frac{1}{B} δ_m^T r_l

and differ only in the feedback weights ``B``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import torch
import torch.nn.functional as F
from torch import nn

from ..config.schema import opt
from ..init import initialize, resolve_init
from .base import RULES, PlasticityRule, RuleOptions, _state_of


@RULES.register("bp")
class Backprop(PlasticityRule):
    """Backpropagation: ``B = Wᵀ`` (weight transport), so updates equal autograd's gradients."""

    def feedback_weight(self, network, proj) -> Optional[torch.Tensor]:
        return proj.transported()

    def feedback_label(self, network, proj) -> str:
        return f"W[{proj.name}]ᵀ (weight transport)"


@dataclass(frozen=True)
class RandomFeedbackOptions(RuleOptions):
    feedback_init: dict[str, Any] = opt({"normal": {"std": 0.05}}, "init of the fixed random feedback weights")


def _check_feedback_init(cls, experiment, graph) -> None:
    for path, options in experiment.rule_blocks():
        if options.rule in RULES and issubclass(RULES.get(options.rule), cls) and hasattr(options, "feedback_init"):
            resolve_init(options.feedback_init, file=experiment.file, path=f"{path}.feedback_init")


def _random_matrix(shape: tuple[int, ...], spec: dict, *, learnable: bool) -> nn.Parameter:
    """A feedback weight of ``shape``, drawn from ``spec``."""
    init, options = resolve_init(spec, file=None, path="plasticity.feedback_init")
    weight = nn.Parameter(torch.empty(shape), requires_grad=learnable)
    initialize(weight, None, init, options)
    return weight


def feedback_parameters(network, spec: dict, *, learnable: bool, projections=None) -> nn.ParameterDict:
    """One feedback weight (of ``proj.feedback_shape``: ``[n_pre, n_post]`` for dense, the
    kernel's shape for conv2d) per weighted projection whose source's error is used (of
    ``projections``, the names a rule governs, when given)."""
    params = nn.ParameterDict()
    for proj in network.projections.values():
        if projections is not None and proj.name not in projections:
            continue
        if proj.source in network.needs_error and proj.feedback_shape is not None:
            params[proj.name] = _random_matrix(proj.feedback_shape, spec, learnable=learnable)
    return params


@RULES.register("fa")
class FeedbackAlignment(PlasticityRule):
    """Feedback alignment (Lillicrap et al. 2016): fixed random ``B`` of ``Wᵀ``'s shape."""

    Options = RandomFeedbackOptions
    check = classmethod(_check_feedback_init)
    tunables = {"feedback_init.normal.std": (0.005, 0.5, "log")}

    def __init__(self, network, options: RandomFeedbackOptions, *, projections=None):
        super().__init__(network, options, projections=projections)
        self.feedback = feedback_parameters(network, options.feedback_init, learnable=False, projections=self.projections)

    def feedback_weight(self, network, proj) -> Optional[torch.Tensor]:
        return self.feedback[proj.name] if proj.name in self.feedback else None

    def feedback_label(self, network, proj) -> str:
        return f"B[{proj.name}] {list(self.feedback[proj.name].shape)}, fixed random"


@RULES.register("dfa")
class DirectFeedbackAlignment(PlasticityRule):
    """Direct feedback alignment (Nøkland 2016): the output error reaches every hidden
    population straight through a fixed random matrix, :math:`a_l = δ_{out} B_l^T`,
    ``B_l`` of shape ``[n_l, n_out]``."""

    Options = RandomFeedbackOptions
    check = classmethod(_check_feedback_init)

    per_projection = False  # the output error goes straight to every population: the whole network or none
    tunables = {"feedback_init.normal.std": (0.005, 0.5, "log")}

    def __init__(self, network, options: RandomFeedbackOptions, *, projections=None):
        super().__init__(network, options, projections=projections)
        n_out = network.output.size
        self.feedback = nn.ParameterDict({
            pop.name: _random_matrix((pop.size, n_out), options.feedback_init, learnable=False)
            for pop in network.hidden()
        })

    def feedback_weight(self, network, proj) -> Optional[torch.Tensor]:
        """Only projections into the output have a feedback path of their own: ``B_source``."""
        if proj.target == network.output_name and proj.source in self.feedback:
            return self.feedback[proj.source]
        return None

    def feedback_pathway(self, network) -> list[str]:
        return [f"{pop.name}.apical <- {network.output_name}.error through B[{pop.name}] "
                f"{list(self.feedback[pop.name].shape)}, fixed random" for pop in network.hidden()]

    temporal_feedback = False  # each time step's output error goes straight to every population

    def apical_input(self, network, pop, state=None) -> torch.Tensor:
        error = _state_of(network, state).output.error
        lead = error.shape[: error.dim() - len(network.output.shape)]  # (batch,) or (time, batch)
        return F.linear(error.reshape(-1, network.output.size), self.feedback[pop.name]).view(*lead, *pop.shape)


@dataclass(frozen=True)
class KolenPollackOptions(RandomFeedbackOptions):
    decay: float = opt(1e-3, "weight decay λ applied to W and to the feedback B alike", ge=0)


@RULES.register("kp")
class KolenPollack(PlasticityRule):
    """Kolen-Pollack (Kolen & Pollack 1994; Akrout et al. 2019): feedback ``B`` of Wᵀ's
    shape, learned by the transposed forward update, with the same weight decay on both:

    .. math:: \\frac{∂L}{∂W} \\leftarrow -\\frac{1}{B} δ_{post}^T r_{pre} + λW, \\qquad
              \\frac{∂L}{∂B} \\leftarrow \\Big(-\\frac{1}{B} δ_{post}^T r_{pre}\\Big)^T + λB

    Both see the same update, so under SGD ``W − Bᵀ`` shrinks by ``(1 − ηλ)`` every step
    and the feedback comes to align with the forward weights, with no weight transport:
    each synapse of ``B`` uses only the pre- and postsynaptic signals of its own
    feedback projection. ``B`` learns at its projection's learning rate.
    """

    Options = KolenPollackOptions
    check = classmethod(_check_feedback_init)
    tunables = {"decay": (1e-5, 1e-1, "log")}

    def __init__(self, network, options: KolenPollackOptions, *, projections=None):
        super().__init__(network, options, projections=projections)
        self.feedback = feedback_parameters(network, options.feedback_init, learnable=True, projections=self.projections)
        self._lr_scale = {p.name: p.lr_scale for p in network.projections.values()}

    def feedback_weight(self, network, proj) -> Optional[torch.Tensor]:
        return self.feedback[proj.name] if proj.name in self.feedback else None

    def feedback_label(self, network, proj) -> str:
        return f"B[{proj.name}] {list(self.feedback[proj.name].shape)}, learned by the transposed W update"

    def compute_updates(self, network, state=None) -> None:
        state = _state_of(network, state)
        super().compute_updates(network, state)
        decay = self.options.decay
        for proj in network.projections.values():
            if proj.name not in self.feedback:
                continue
            feedback = self.feedback[proj.name]
            w = proj.weight
            if w.grad is None:  # a frozen projection: B still learns the update W would get
                rate, delta, scale = self.paired(network, proj, state[proj.source].rate, state[proj.target].error)
                update = proj.weight_gradient(delta, rate, gain=self.update_gain * scale)
            else:
                update = w.grad
            # contiguous, like the parameter: fused optimizers on CUDA refuse other strides
            feedback.grad = torch.add(proj.to_feedback_layout(update), feedback.detach(), alpha=decay).contiguous()
            if w.grad is not None and decay:
                w.grad.add_(w.detach(), alpha=decay)

    def param_groups(self, lr: float) -> list[dict[str, Any]]:
        groups: dict[float, list] = {}
        for name, feedback in self.feedback.items():
            groups.setdefault(self._lr_scale[name], []).append(feedback)
        return [{"params": ps, "lr": lr * s, "name": f"kp.feedback (lr_scale {s})"} for s, ps in groups.items()]
