"""
A rule comparison over seeds
============================

A fair comparison trains every rule on the same network with several seeds and reports the
test accuracy of the epoch selected on the validation split (``summary["test_accuracy"]``;
the test split is never used for selection). ``dendrisim compare`` / ``scripts/compare_rules.py``
does this with equal tuning budgets; here, without tuning, the file's own settings.

A network may also mix rules per projection: the last contender learns by dll below and by
bp at the top projection (``projections.2.plasticity.rule=bp``).
"""
import statistics
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt

import dendrisim

MODEL = Path(dendrisim.__file__).resolve().parents[1] / "models" / "dll_mlp_digits.yaml"
out = Path(tempfile.mkdtemp(prefix="dendrisim-gallery-"))

contenders = {"dll": ["plasticity.rule=dll"], "bp": ["plasticity.rule=bp"], "fa": ["plasticity.rule=fa"],
              "dfa": ["plasticity.rule=dfa"], "kp": ["plasticity.rule=kp"],
              "dll + bp on top": ["projections.2.plasticity.rule=bp"]}
scores = {}
for name, overrides in contenders.items():
    scores[name] = []
    for seed in (0, 1, 2):
        exp = dendrisim.load(MODEL, [*overrides, f"training.seed={seed}", "training.epochs=8",
                                     "recording.enabled=false"])
        scores[name].append(dendrisim.Trainer(exp, out=out / f"{name}-{seed}").fit()["test_accuracy"])
    print(f"{name:16s} {statistics.mean(scores[name]):.4f} ± {statistics.stdev(scores[name]):.4f}")

# %%
fig, ax = plt.subplots(figsize=(6.5, 3.8))
names = list(scores)
ax.bar(names, [statistics.mean(scores[n]) for n in names], yerr=[statistics.stdev(scores[n]) for n in names],
       capsize=4, color="tab:blue", alpha=0.7)
for i, n in enumerate(names):
    ax.plot([i] * len(scores[n]), scores[n], "k.", ms=4)
ax.set(ylabel="test accuracy (selected epoch)", title="digits, 8 epochs, seeds 0-2", ylim=(0.8, 1.0))
ax.tick_params(axis="x", labelrotation=20)
fig.tight_layout()
