"""
A rule of your own
==================

A rule is a subclass of :class:`dendrisim.PlasticityRule` registered by name; model files
then name it like a built-in rule. This one is *noisy weight transport*: the error travels
back through Wᵀ corrupted, at every step, by fresh Gaussian noise whose size is a fraction
``noise`` of W's root mean square. ``noise: 0`` is backprop; large ``noise`` approaches
feedback through random matrices that change every step.

The option is declared in a frozen ``Options`` dataclass (``dendrisim.option`` gives it a
default, a one-line doc and bounds), so ``plasticity: {rule: noisy_transport, noise: 2}``
is validated like any built-in option, and ``tunables`` lets ``--tune`` search it.
"""
import tempfile
from dataclasses import dataclass
from pathlib import Path

import matplotlib.pyplot as plt
import torch

import dendrisim


@dataclass(frozen=True)
class NoisyTransportOptions(dendrisim.RuleOptions):
    noise: float = dendrisim.option(0.5, "noise on Wᵀ, relative to W's root mean square", ge=0)


@dendrisim.register_rule("noisy_transport")
class NoisyTransport(dendrisim.PlasticityRule):
    """B = Wᵀ + noise · rms(W) · N(0, 1), drawn afresh at every use."""

    Options = NoisyTransportOptions
    tunables = {"noise": (0.0, 4.0)}

    def feedback_weight(self, network, proj):
        if proj.source == network.input_name or not proj.has_weight:
            return None  # the input needs no error; pools carry back by unpooling
        w = proj.transported()  # Wᵀ in the feedback layout (a view)
        return w + torch.randn_like(w) * (self.options.noise * w.pow(2).mean().sqrt())

    def feedback_label(self, network, proj):
        return f"W[{proj.name}]ᵀ + {self.options.noise} x rms(W) x noise"


MODEL = Path(dendrisim.__file__).resolve().parents[1] / "models" / "dll_mlp_digits.yaml"
out = Path(tempfile.mkdtemp(prefix="dendrisim-gallery-"))

results = {}
for noise in (0.0, 1.0, 4.0, 16.0):
    exp = dendrisim.load(MODEL, ["plasticity={rule: noisy_transport, noise: %s}" % noise, "training.epochs=8",
                                 "recording.enabled=false"])
    results[noise] = dendrisim.Trainer(exp, out=out / f"noise-{noise}").fit()["test_accuracy"]
    print(f"noise {noise:5.1f}: test accuracy {results[noise]:.4f}")

# %%
# How much noise the learning tolerates:
fig, ax = plt.subplots(figsize=(5, 3.5))
ax.plot(list(results), list(results.values()), marker="o")
ax.set(xscale="symlog", xlabel="noise (× rms W)", ylabel="test accuracy", title="noisy weight transport, digits")
fig.tight_layout()
