"""Sign-symmetric feedback (Liao, Leibo & Poggio, AAAI 2016): the error travels back
through the signs of the forward weights only, sign(Wᵀ), scaled here to the root mean
square of W so that the apical input keeps backprop's scale. Load it with
    python scripts/simulate.py --plugin examples/rules/sign_symmetry.py --set plasticity.rule=sign_symmetry
"""
import torch

import dendrisim


@dendrisim.register_rule("sign_symmetry")
class SignSymmetry(dendrisim.PlasticityRule):
    """B = sign(Wᵀ) · rms(W): only the sign of each synapse is transported."""

    def feedback_weight(self, network, proj):
        if proj.source == network.input_name or not proj.has_weight:
            return None  # the input needs no error; pools carry back by unpooling
        w = proj.transported()  # Wᵀ in the feedback layout, a view: no copy
        return torch.sign(w).mul_(w.pow(2).mean().sqrt())

    def feedback_label(self, network, proj):
        return f"sign(W[{proj.name}])ᵀ x rms(W)"
