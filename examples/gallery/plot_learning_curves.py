"""
Learning curves of the rules on digits
======================================

The same network (``models/dll_mlp_digits.yaml``: 64-128-64-10, tanh, softmax output,
Adam) trained by each built-in rule for a few epochs; every epoch's validation accuracy
comes from the run's ``metrics.csv``. Only the rule changes between runs
(``plasticity.rule=...``, the same override as ``--set`` on the command line).
"""
import csv
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt

import dendrisim

MODEL = Path(dendrisim.__file__).resolve().parents[1] / "models" / "dll_mlp_digits.yaml"  # the repository's models/
out = Path(tempfile.mkdtemp(prefix="dendrisim-gallery-"))

curves = {}
for rule in ("dll", "bp", "fa", "dfa", "kp", "pc"):
    exp = dendrisim.load(MODEL, [f"plasticity.rule={rule}", "training.epochs=12", "recording.enabled=false"])
    summary = dendrisim.Trainer(exp, out=out / rule).fit()
    with open(Path(summary["run_dir"]) / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    curves[rule] = [float(r["val_accuracy"]) for r in rows]
    print(f"{rule:4s} test accuracy {summary['test_accuracy']:.3f} (epoch {summary['selected_epoch']})")

# %%
# Every rule reaches over 90% on this small problem within a dozen epochs; the
# ``dll`` options (``sigma``, ``feedback_lr_scale``) are the model file's.
fig, ax = plt.subplots(figsize=(6, 4))
for rule, acc in curves.items():
    ax.plot(range(1, len(acc) + 1), acc, marker="o", ms=3, label=rule)
ax.set(xlabel="epoch", ylabel="validation accuracy", title="digits, one seed per rule", ylim=(0.5, 1.0))
ax.legend()
fig.tight_layout()
