"""
Burst-dependent learning: the burst probability carries the error
=================================================================

``models/burstccn_digits.yaml`` is BurstCCN (Greedy, Zhu, Pemberton, Mellor & Costa 2022) on the 8×8
digits. Its burst neurons send event rates ``e`` forward and burst rates ``b = p e`` back.
The apical dendrite of the hidden population ``h1`` gets the output's burst rate through
fixed random weights ``Y`` (``out:burst->h1``) and its event rate through ``Q = −p_b Y``
(``out:event->h1``). Without a teacher the two cancel, so every burst probability sits at
its baseline ``p_b``. With a teacher, what is left moves the burst probability, and each
basal synapse learns from ``b − p_b e``.

This example trains the shipped model for a few epochs through the Python API, presents
one batch of test digits with and without the teacher, and plots the hidden population's
burst probability in both cases. It then plots the burst probability against the apical
potential: the sigmoid ``p = σ(β v_A (1 − e) + θ)``, whose slope the gate ``1 − e`` sets.
"""
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch

import dendrisim

MODEL = Path(dendrisim.__file__).resolve().parents[1] / "models" / "burstccn_digits.yaml"
out = Path(tempfile.mkdtemp(prefix="dendrisim-gallery-"))

exp = dendrisim.load(MODEL, ["training.epochs=12"])
trainer = dendrisim.Trainer(exp, out=out / "burstccn")
summary = trainer.fit()
print(f"test accuracy after 12 epochs: {summary['test_accuracy']:.3f}")

# %%
# One batch of test digits presented twice by the trained network, with the teacher
# (the one-hot target) and without it (``target=None``). ``plasticity_off`` keeps the
# weights as they are.
net, rule, scheme, task = trainer.network, trainer.rule, trainer.scheme, trainer.task
h1 = net.populations["h1"]
p_b, beta = h1.baseline, h1.options.burst_gain
theta = np.log(p_b / (1 - p_b))  # the offset: the burst probability at rest is p_b
x, y = task.test.x[:64], task.test.y[:64]
states = {}
with torch.no_grad(), net.plasticity_off():
    for label, target in (("teacher", task.target(y, net)), ("no teacher", None)):
        states[label] = scheme.present(net, rule, target, state=net.free_state(task.inputs(x))).state["h1"]
taught, free = states["teacher"], states["no teacher"]
p, e, v_a = (taught.burst_prob.numpy(), taught.event.numpy(), taught.apical.numpy())
print(f"h1 burst probability without a teacher: {free.burst_prob.min():.4f} .. {free.burst_prob.max():.4f} "
      f"(p_b = {p_b})")
print(f"with the teacher: mean |p − p_b| = {np.abs(p - p_b).mean():.4f}, largest {np.abs(p - p_b).max():.4f}")

# The error b − p_b e, against its first-order form (β/4) f'(v_B) v_A = (β/4) e (1 − e) v_A:
# the output's error carried down by Y, times the sigmoid's derivative, as feedback
# alignment would have it.
error = taught.error.numpy()
linear = beta / 4 * e * (1 - e) * v_a
print(f"b − p_b e against (β/4) f'(v_B) v_A: correlation {np.corrcoef(error.ravel(), linear.ravel())[0, 1]:.4f}")

# %%
# Left and middle: ``p − p_b`` of 48 hidden neurons (columns) for 20 test digits (rows), with
# and without the teacher, on the same colour scale. Without a teacher ``Q`` cancels ``Y``
# and every neuron bursts at its baseline. With the teacher, the deviation is the error the
# neuron learns from. Right: the burst probability against the apical potential, one point
# per neuron and digit, coloured by the event rate. The curves are
# ``σ(β v_A (1 − e) + θ)`` for three event rates: the gate ``1 − e`` flattens the sigmoid of
# a neuron that fires near saturation, whose ``f'(v_B)`` is small.
neurons = np.argsort(-np.abs(p - p_b).mean(axis=0))[:48]  # the neurons the teacher moves most
limit = float(np.abs(p[:20][:, neurons] - p_b).max())
fig, axes = plt.subplots(1, 3, figsize=(13, 3.8), layout="constrained")
for ax, (label, state) in zip(axes[:2], states.items()):
    shown = state.burst_prob.numpy()[:20][:, neurons] - p_b
    image = ax.imshow(shown, cmap="RdBu_r", vmin=-limit, vmax=limit, aspect="auto", interpolation="nearest")
    ax.set(title=f"h1: p − p_b, {label}", xlabel="neuron (48 of 256)", ylabel="test digit", yticks=range(0, 20, 5))
fig.colorbar(image, ax=axes[:2], fraction=0.04, label="p − p_b")
points = axes[2].scatter(v_a.ravel(), p.ravel(), c=e.ravel(), s=2, cmap="viridis", vmin=0, vmax=1)
grid = np.linspace(v_a.min(), v_a.max(), 200)
for rate in (0.1, 0.5, 0.9):
    curve = 1 / (1 + np.exp(-(beta * grid * (1 - rate) + theta)))
    axes[2].plot(grid, curve, color=plt.cm.viridis(rate), lw=1.5, label=f"e = {rate}")
axes[2].axhline(p_b, color="k", lw=0.6, ls="--")
axes[2].set(title="h1: burst probability vs apical potential", xlabel="apical potential $v_A$",
            ylabel="burst probability p")
axes[2].legend(fontsize=7, title="$\\sigma(\\beta v_A (1 - e) + \\theta)$", title_fontsize=7)
fig.colorbar(points, ax=axes[2], fraction=0.05, label="event rate e")
