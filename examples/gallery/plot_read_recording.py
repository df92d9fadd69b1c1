"""
Reading a recording with h5py
=============================

Every run writes ``recording.h5`` (HDF5) into its run folder. Plain h5py reads it: the
root's attributes describe the run (the resolved model file among them), ``index/step``
gives the training step of each record, ``populations/POP/VAR`` the recorded compartments
``[records, samples, neurons]``, and ``metrics/SPLIT/METRIC`` one value per epoch. Every
dataset says what its axes are in its ``axes`` attribute.
"""
import tempfile
from pathlib import Path

import h5py
import matplotlib.pyplot as plt
import yaml

import dendrisim

MODEL = Path(dendrisim.__file__).resolve().parents[1] / "models" / "dll_mlp_digits.yaml"
out = Path(tempfile.mkdtemp(prefix="dendrisim-gallery-"))
exp = dendrisim.load(MODEL, ["training.epochs=10", "recording.every=10"])
summary = dendrisim.Trainer(exp, out=out / "run").fit()

with h5py.File(Path(summary["run_dir"]) / "recording.h5", "r") as f:
    print("complete:", f.attrs["complete"], "| rule:", f.attrs["rule"],
          "| plasticity:", yaml.safe_load(f.attrs["model_yaml"])["plasticity"])
    f.visit(lambda name: print(" ", name, f[name].shape if isinstance(f[name], h5py.Dataset) else ""))
    print("axes of h1/apical:", list(f["populations/h1/apical"].attrs["axes"]))
    steps = f["index/step"][:]
    apical = {pop: f[f"populations/{pop}/apical"][:] for pop in ("h1", "h2")}  # [records, samples, neurons]
    rate = f["populations/h1/rate"][:]
    test_accuracy = f["metrics/test/accuracy"][:]

# %%
# The apical input (the error fed back from above) shrinks as the network learns, while
# the hidden rates spread out.
fig, axes = plt.subplots(1, 3, figsize=(12, 3.5))
for pop, a in apical.items():
    axes[0].plot(steps, a.std(axis=(1, 2)), label=pop)
axes[0].set(title="std of the apical input", xlabel="training step", yscale="log")
axes[0].legend()
axes[1].imshow(rate[-1], aspect="auto", cmap="RdBu_r", vmin=-1, vmax=1)
axes[1].set(title="h1 rate, last record", xlabel="neuron", ylabel="sample")
axes[2].plot(range(1, len(test_accuracy) + 1), test_accuracy, marker="o")
axes[2].set(title="test accuracy per epoch", xlabel="epoch")
fig.tight_layout()
