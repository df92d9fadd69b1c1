# The page docs/howto/writing-a-rule.md showed this rule before a presentation's state became a value
# (issue 27). Kept as it was: tests/test_old_plugins.py holds that it still trains, with a
# DeprecationWarning that names the migration.
# file: drtp.py
"""Direct random target projection (Frenkel, Lefebvre & Bol 2021): each hidden population
receives the target itself, not an error, through a fixed random matrix B_l."""
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

import dendrisim


@dataclass(frozen=True)
class DRTPOptions(dendrisim.RuleOptions):
    feedback_std: float = dendrisim.option(0.05, "std of the fixed random projection B_l", gt=0)


@dendrisim.register_rule("drtp")
class DirectRandomTargetProjection(dendrisim.PlasticityRule):
    """a_l = B_l t, δ_l = f'(soma_l) ⊙ a_l, ΔW ∝ δ_lᵀ r_pre: the target, not the error."""

    Options = DRTPOptions
    per_projection = False      # one B_l per hidden population: the whole network or none
    temporal_feedback = False   # the target goes straight to every population
    tunables = {"feedback_std": (0.005, 0.5, "log")}

    def __init__(self, network, options, *, projections=None):
        super().__init__(network, options, projections=projections)
        n_out = network.output.size
        self.B = nn.ParameterDict({
            pop.name: nn.Parameter(torch.randn(pop.size, n_out) * options.feedback_std, requires_grad=False)
            for pop in network.hidden()})

    def feedback_weight(self, network, proj):
        """Only for recording and summaries: the B of the population below the output."""
        if proj.target == network.output_name and proj.source in self.B:
            return self.B[proj.source]
        return None

    def feedback_label(self, network, proj):
        return f"B[{proj.source}] times the target, fixed random"

    def apical_input(self, network, pop):
        t = network.target                                   # [batch, *output shape], during a presentation
        flat = F.linear(t.reshape(-1, network.output.size), self.B[pop.name])   # t B_lᵀ: [batch, n_l]
        return flat.view(*pop.rate.shape)
