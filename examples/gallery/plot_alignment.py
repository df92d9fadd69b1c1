"""
Alignment with backprop
=======================

``training.alignment: {every: N}`` measures, every N steps on a fixed probe batch, the angle
between each projection's update under the active rule and the exact backprop update on
the same network, and the angle between the rule's feedback weights and Wᵀ. The values go
to the recording (``/alignment/...``, ``rec.alignment``) and to ``metrics.csv``.

Under fa the feedback is fixed and random, yet the forward weights come to align with it,
so the update angle falls below 90°. Under dll the feedback θ learns, and under kp the
feedback B learns to follow Wᵀ.
"""
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt

import dendrisim
from dendrisim.recording import open_recording

MODEL = Path(dendrisim.__file__).resolve().parents[1] / "models" / "dll_mlp_digits.yaml"
out = Path(tempfile.mkdtemp(prefix="dendrisim-gallery-"))

measured = {}
for rule in ("dll", "fa", "kp"):
    exp = dendrisim.load(MODEL, [f"plasticity.rule={rule}", "training.epochs=8", "training.alignment={every: 10}"])
    summary = dendrisim.Trainer(exp, out=out / rule).fit()
    with open_recording(summary["recording"]) as rec:
        measured[rule] = rec.alignment
print(sorted(measured["dll"]))

# %%
# The middle projection ``h1->h2`` is the one whose update depends on the feedback
# (``h2->out`` is updated by the output error itself under every rule, and ``input->h1``
# depends on two feedback matrices).
fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
for rule, a in measured.items():
    axes[0].plot(a["step"], a["h1->h2"]["update_angle"], label=rule)
    axes[1].plot(a["step"], a["h2->out"]["feedback_angle"], label=rule)
axes[0].set(title="h1->h2: update vs backprop", xlabel="step", ylabel="angle (degrees)")
axes[1].set(title="h2->out: feedback vs Wᵀ", xlabel="step", ylabel="angle (degrees)")
for ax in axes:
    ax.axhline(90, color="grey", lw=0.5)
    ax.legend()
fig.tight_layout()
