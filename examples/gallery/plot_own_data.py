"""
Your own data: the Yin-Yang benchmark from an .npz, a .csv and memory
======================================================================

A classification task reads your own data with ``dataset: file``: an ``.npz`` of arrays
(``x_train``, ``y_train``, optionally ``x_test``, ``y_test``, ``x_val``, ``y_val``) or a
``.csv`` (the features, then the integer label in the last column). From Python,
``dendrisim.Trainer(experiment, data=...)`` takes the same arrays in memory. The class count
and the input size come from the data, so ``size: auto`` works on the input and output
populations.

The data here is the Yin-Yang dataset (Kriener, Göltz & Petrovici 2022, "The Yin-Yang
dataset", NICE '22), generated below from its definition: points of the unit disc's
Yin-Yang symbol, three classes (yin, yang, the two dots), input ``(x, y, 1 - x, 1 - y)``.
A linear classifier reaches about 64%; a small hidden layer is needed for more.
"""
import csv
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch

import dendrisim

R_BIG, R_SMALL = 0.5, 0.1


def yin_yang_class(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """0: yang, 1: yin, 2: a dot (the dataset's definition)."""
    d_right = np.hypot(x - 1.5 * R_BIG, y - R_BIG)  # the centre of the right dot
    d_left = np.hypot(x - 0.5 * R_BIG, y - R_BIG)
    yin = (d_right <= R_SMALL) | ((d_left > R_SMALL) & (d_left <= 0.5 * R_BIG)) | ((y > R_BIG) & (d_right > 0.5 * R_BIG))
    dot = (d_right < R_SMALL) | (d_left < R_SMALL)
    return np.where(dot, 2, yin.astype(int))


def yin_yang(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` samples, as many of each class (rejection sampling inside the big circle)."""
    rng = np.random.default_rng(seed)
    xs, ys = [], []
    for k in range(n):
        want = k % 3
        while True:
            x, y = rng.uniform(0, 2 * R_BIG, 2)
            if np.hypot(x - R_BIG, y - R_BIG) <= R_BIG and yin_yang_class(x, y) == want:
                break
        xs.append((x, y, 1 - x, 1 - y))
        ys.append(want)
    return np.array(xs, dtype=np.float32), np.array(ys)


x_train, y_train = yin_yang(600, seed=1)
x_test, y_test = yin_yang(300, seed=2)
folder = Path(tempfile.mkdtemp(prefix="dendrisim-gallery-"))

# %%
# Write the data as an ``.npz`` and as two ``.csv`` files (training and test; a header row
# is detected and skipped because none of its cells is a number).
np.savez(folder / "yinyang.npz", x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
for name, xs, ys in (("train", x_train, y_train), ("test", x_test, y_test)):
    with open(folder / f"yinyang_{name}.csv", "w", newline="") as f:
        rows = csv.writer(f)
        rows.writerow(["x", "y", "1-x", "1-y", "label"])
        rows.writerows([*map(float, features), int(label)] for features, label in zip(xs, ys))
print((folder / "yinyang_train.csv").read_text().splitlines()[:3])

# %%
# One model for all three routes: a 4-30-3 network; the task names the file. The ``csv``
# run keeps the model and changes the rule to ``bp``, for comparison with ``dll``.
MODEL = {
    "name": "yinyang",
    "task": {"type": "classification", "dataset": "file", "file": str(folder / "yinyang.npz"),
             "batch_size": 20, "validation_fraction": 0.1},
    "populations": {"input": {"type": "input", "size": "auto"},
                    "hidden": {"type": "pyramidal", "size": 30, "activation": "tanh"},
                    "out": {"type": "pyramidal", "size": "auto", "activation": "softmax"}},
    "projections": [{"from": "input", "to": "hidden"}, {"from": "hidden", "to": "out"}],
    "plasticity": {"rule": "dll"},
    "optimizer": {"type": "adam", "lr": 0.01},
    "training": {"epochs": 25, "seed": 0},
    "recording": {"enabled": False},
}
CSV = ["task.file=" + str(folder / "yinyang_train.csv"), "task.test_file=" + str(folder / "yinyang_test.csv")]

runs = {}
for label, overrides in (("dll, .npz", []), ("bp, .csv", CSV + ["plasticity.rule=bp"])):
    trainer = dendrisim.Trainer(dendrisim.load(MODEL, overrides), out=folder / label.replace(", .", "_"))
    summary = trainer.fit()
    runs[label] = trainer.history
    print(f"{label}: test accuracy {summary['test_accuracy']:.3f} (selected epoch {summary['selected_epoch']})")

# %%
# The same arrays in memory: the model's ``task.file`` goes (a model names a file or gets
# ``data=``, never both); the arrays are checked as a file's are, and the run is the
# ``.npz`` run, step for step.
experiment = dendrisim.load(MODEL, ["task.file=null"])
trainer = dendrisim.Trainer(experiment, out=folder / "memory",
                            data={"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test})
summary = trainer.fit()
metrics = lambda history: [{k: v for k, v in row.items() if k != "seconds"} for row in history]  # noqa: E731
print(f"dll, data=: test accuracy {summary['test_accuracy']:.3f}; every epoch's metrics as from the .npz:",
      metrics(trainer.history) == metrics(runs["dll, .npz"]))

# %%
# Validation accuracy per epoch of both rules, and the decision regions of the network
# trained from memory (shaded: the class the network chooses at each point). The task normalised each feature by its training split's mean and
# standard deviation (``normalize: standard``; ``task.shift`` and ``task.scale``), so the
# grid is normalised the same way before it is shown to the network.
grid = np.linspace(0, 1, 150)
gx, gy = np.meshgrid(grid, grid)
points = torch.as_tensor(np.stack([gx.ravel(), gy.ravel(), 1 - gx.ravel(), 1 - gy.ravel()], 1))
task, net = trainer.task, trainer.network
with torch.no_grad():
    state = net.free_state(((points - task.shift) / task.scale).float())
    regions = state.output.rate.argmax(1).numpy().reshape(gx.shape)

fig, (left, right) = plt.subplots(1, 2, figsize=(9, 4))
for label, history in runs.items():
    epochs = [row["epoch"] for row in history]
    left.plot(epochs, [row["val_accuracy"] for row in history], marker="o", ms=3, label=label)
left.set(xlabel="epoch", ylabel="validation accuracy", title="Yin-Yang, 4-30-3, seed 0")
left.xaxis.get_major_locator().set_params(integer=True)
left.legend()
colours = ["C0", "C1", "C2"]  # a class's region and its test points share a colour
right.contourf(gx, gy, regions, levels=[-0.5, 0.5, 1.5, 2.5], colors=colours, alpha=0.25)
for k, (name, marker) in enumerate((("yang", "o"), ("yin", "s"), ("dot", "^"))):
    chosen = y_test == k
    right.scatter(x_test[chosen, 0], x_test[chosen, 1], s=8, marker=marker, color=colours[k], label=f"test: {name}")
right.set(xlabel="x", ylabel="y", title=f"dll from data=: test accuracy {summary['test_accuracy']:.2f}", aspect="equal")
right.legend(loc="lower left", fontsize=7)
fig.tight_layout()
