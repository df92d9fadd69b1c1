"""
Compartments within one presentation (euler dynamics)
=====================================================

Under ``dynamics: {mode: euler}`` every compartment is simulated in time: each batch is
presented for ``dynamics.steps`` forward-Euler steps, and the recording keeps the whole
trajectory, ``/populations/POP/VAR`` of shape ``[records, samples, time, neurons]``.

The soma follows its basal drive closely (the apical nudging λ = g_A/(g_L+g_B+g_A) is about
0.05), so at the soma's own scale the two curves coincide. The difference soma − basal is
where the dynamics show: it starts at −λ·basal (a presentation starts from the free state,
the attenuated drive g_B/g · basal) and then moves as the teacher's error arrives through
the apical dendrite, one population further down per step.
"""
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt

import dendrisim
from dendrisim.recording import open_recording

MODEL = Path(dendrisim.__file__).resolve().parents[1] / "models" / "dll_mlp_digits_dynamic.yaml"
out = Path(tempfile.mkdtemp(prefix="dendrisim-gallery-"))

exp = dendrisim.load(MODEL, ["training.epochs=2"])
summary = dendrisim.Trainer(exp, out=out / "euler").fit()
print("test accuracy after 2 epochs:", round(summary["test_accuracy"], 3))

with open_recording(Path(summary["run_dir"]) / "recording.h5") as rec:
    print(rec.populations)
    kept = rec.attrs.get("euler_steps")
    traces = {pop: {v: rec.activity(pop, v)[-1, 0] for v in ("soma", "basal", "error")}  # last record, sample 0
              for pop in ("h1", "h2", "out")}
print("trajectory of one sample in h1:", traces["h1"]["soma"].shape, "(time, neurons)")

# %%
# Left: soma and basal potential of three neurons of ``h2`` over the presentation (the
# lines nearly lie on top of each other). Middle: soma − basal of the same neurons, a
# twentieth of that scale or less. Right: the mean absolute error of each population per step: the
# output's error appears first, ``h2``'s one step later, ``h1``'s after that.
fig, axes = plt.subplots(1, 3, figsize=(12, 3.5))
t = range(traces["h2"]["soma"].shape[0])
for n in range(3):
    axes[0].plot(t, traces["h2"]["soma"][:, n], label=f"soma {n}")
    axes[0].plot(t, traces["h2"]["basal"][:, n], "--", label=f"basal {n}")
    axes[1].plot(t, traces["h2"]["soma"][:, n] - traces["h2"]["basal"][:, n], label=f"neuron {n}")
for pop in ("out", "h2", "h1"):
    axes[2].plot(t, abs(traces[pop]["error"]).mean(-1), label=pop)
axes[0].set(title="h2: soma and basal", xlabel="Euler step")
axes[1].set(title="h2: soma − basal", xlabel="Euler step")
axes[2].set(title="mean |error| per population", xlabel="Euler step")
axes[0].legend(fontsize=6, ncol=2)
axes[1].legend(fontsize=7)
axes[2].legend(fontsize=7)
fig.tight_layout()
