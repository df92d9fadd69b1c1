"""
The cortical microcircuit: the self-predicting state, then errors in the apical dendrite
=========================================================================================

``models/microcircuit_digits.yaml`` is the dendritic error circuit of Sacramento, Costa,
Bengio & Senn (2018): the apical dendrites of the hidden population receive the output's
rates top-down and the rates of interneurons that learn to predict the output. Its first
phase has no teacher (``teacher: false``) and only the interneurons' and the lateral
synapses learn; the recording marks each record's phase (``rec.phase``).

This example trains the shipped circuit with shorter phases (the shipped file runs 20 + 50
epochs), reads from its recording the mean absolute apical potential ``|v_A|`` of the
hidden population falling while the circuit settles into the self-predicting state and
the interneurons' rates against the output rates they predict, and then presents one batch
with and without the teacher: what the teacher adds to the apical potential is the
output's error, carried down.
"""
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch

import dendrisim
from dendrisim.recording import open_recording

MODEL = Path(dendrisim.__file__).resolve().parents[1] / "models" / "microcircuit_digits.yaml"
out = Path(tempfile.mkdtemp(prefix="dendrisim-gallery-"))

phases = ("training.phases=[{name: self_predicting, epochs: 6, teacher: false, learn: [h1->i1, i1->h1], "
          "lr_scale: {i1->h1: 2.5}}, {name: learning, epochs: 2, teacher: true}]")
exp = dendrisim.load(MODEL, [phases, "recording.every=4"])
summary_trainer = dendrisim.Trainer(exp, out=out / "circuit")
summary = summary_trainer.fit()
print("test accuracy after 6 + 2 epochs:", round(summary["test_accuracy"], 3))

with open_recording(Path(summary["run_dir"]) / "recording.h5") as rec:
    phase, steps = rec.phase, rec.steps
    print("phases:", [(p["name"], p["epochs"], p["teacher"]) for p in rec.phases])
    apical = rec.activity("h1", "apical")          # [records, samples, Euler states, neurons]
    rate_i = rec.activity("i1", "rate")
    rate_out = rec.activity("out", "rate")

free = phase == 0
v_a = np.abs(apical[:, :, -1]).mean(axis=(1, 2))  # mean |v_A| at the end of each recorded presentation
first, last = v_a[free][0], v_a[free][-1]
print(f"mean |v_A| of h1 without a teacher, from step {steps[0]} to the phase's end: {first:.4f} -> {last:.4f} "
      f"({first / last:.0f}x lower)")

# %%
# One batch of test digits presented twice by the trained circuit, with the teacher and
# without it (``target=None``): the difference of the two apical potentials is what the
# teacher put there. The theory of the self-predicting state says it is the output's error
# carried down by the top-down weights B, ``Δv_A ≈ (1 − λ_I) λ_out B (t − f(v̂_out))``
# (docs/howto/microcircuit.md); the interneurons predict the output imperfectly here, after
# a short phase, so the match is close, not exact.
net, rule, scheme = (summary_trainer.network, summary_trainer.rule, summary_trainer.scheme)
x, y = summary_trainer.task.test.x[:64], summary_trainer.task.test.y[:64]
t = summary_trainer.task.target(y, net)
kept = {}
with torch.no_grad(), net.plasticity_off():
    for label, target in (("teacher", t), ("free", None)):
        presented = scheme.present(net, rule, target, state=net.free_state(summary_trainer.task.inputs(x)),
                                   capture=torch.arange(len(x)))
        kept[label] = presented.trajectory
        if label == "teacher":
            predicted_out = net.output.compartments.attenuation * presented.state.output.basal
added = kept["teacher"]["h1"]["apical"] - kept["free"]["h1"]["apical"]   # [samples, Euler states, neurons]
lam_out, lam_i = net.output.compartments.nudging, net.populations["i1"].compartments.nudging
B = net.projections["out->h1"].weight                                    # top-down weights [h1, out]
theory = (1 - lam_i) * lam_out * (t - predicted_out) @ B.T
print("apical change the teacher made vs the predicted error: correlation "
      f"{np.corrcoef(added[:, -1].ravel(), theory.ravel())[0, 1]:.3f}")

# %%
# Left: the mean ``|v_A|`` of ``h1`` at the end of each recorded presentation, falling through
# the self-predicting phase (shaded) and rising when the teacher comes on. Middle: the
# interneurons' rates against the output rates they predict, on the last record without a
# teacher (the diagonal is a perfect prediction). Right: the apical potential the teacher
# adds, against the error the theory predicts for it, one point per neuron and digit.
fig, axes = plt.subplots(1, 3, figsize=(12, 3.6))
axes[0].semilogy(steps, v_a, marker=".", ms=2, lw=0.6)
axes[0].axvspan(steps[free][0], steps[free][-1], color="0.9", label="teacher off")
axes[0].set(title="h1: mean |v_A| per record", xlabel="training step")
axes[0].legend(fontsize=7)
k = np.flatnonzero(free)[-1]
axes[1].scatter(rate_out[k, :, -1].ravel(), rate_i[k, :, -1].ravel(), s=6)
lo, hi = rate_out[k, :, -1].min(), rate_out[k, :, -1].max()
axes[1].plot([lo, hi], [lo, hi], "k--", lw=0.8)
axes[1].set(title="interneuron rate vs output rate", xlabel="output rate", ylabel="interneuron rate")
axes[2].scatter(theory.ravel(), added[:, -1].ravel(), s=2)
lo, hi = float(theory.min()), float(theory.max())
axes[2].plot([lo, hi], [lo, hi], "k--", lw=0.8)
axes[2].set(title="h1: apical change with the teacher", xlabel="(1−λ_I) λ_out B (t − f(v̂_out))",
            ylabel="v_A(teacher) − v_A(free)")
fig.tight_layout()
