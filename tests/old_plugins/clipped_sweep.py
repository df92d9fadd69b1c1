# The page docs/howto/writing-a-rule.md showed this rule before a presentation's state became a value
# (issue 27). Kept as it was: tests/test_old_plugins.py holds that it still trains, with a
# DeprecationWarning that names the migration.
# file: clipped_sweep.py
"""Backprop's top-down sweep written out as a relaxation, each hidden error clipped to ±1."""
import dendrisim
from dendrisim.losses import output_error


@dendrisim.register_rule("clipped_sweep")
class ClippedSweep(dendrisim.PlasticityRule):
    """Wᵀ feedback, errors clipped to ±1 in every hidden population."""

    settling_note = "clipped_sweep relaxes in place of the steady sweep; use mode: steady"
    per_projection = False

    def feedback_weight(self, network, proj):
        return proj.transported()                       # Wᵀ, as bp

    def relax(self, network, target):
        out = network.output
        out.apical = target.view_as(out.rate) - out.rate
        out.error = output_error(out)                   # the loss's gradient at the output
        for pop in reversed(list(network.hidden())):
            pop.apical = self.top_down(network, pop)    # feedback of the errors above, gain and clip
            pop.error = (pop.derivative() * pop.apical).clamp_(-1.0, 1.0)
