"""
A neuron model of your own: a pyramidal neuron with a low-pass dendrite
=======================================================================

A neuron model is one class in one Python file, registered by name with
``@dendrisim.register_neuron``; a model file then writes that name as a population's
``type:``. This one is a pyramidal neuron whose basal dendrite has a potential of its own,
``v_D``, that follows the summed basal drive ``v_B = Σ W r_pre + b`` with its own time
constant ``τ_D`` (the option ``tau_dendrite``); the soma is coupled to that filtered
potential instead of to the drive:

.. math::

    τ_D \\frac{dv_D}{dt} = v_B - v_D, \\qquad
    τ \\frac{du}{dt} = -g_L u + g_B (v_D - u) + g_A (v_A - u), \\qquad r = f(u)

The example writes the file into a temporary folder, outside the package, loads it with
:func:`dendrisim.load_plugin` (what ``--plugin`` does on the command line), and trains
digits with it under ``dll`` with simulated compartments (``dll_mlp_digits_dynamic``) and
under the microcircuit's synapse models (``microcircuit_digits``, shorter phases).

The filter only acts where the basal drive moves during a presentation. Every presentation
starts from the free state, where ``v_D = v_B``; ``h1`` is fed by the input alone, whose
drive does not change during a presentation, so a low-pass ``h1`` is the pyramidal ``h1``
exactly (checked below). The low-pass neuron goes where its drive moves: ``h2`` of the dll
network, and the output of the microcircuit, whose drive changes as ``h1``'s apical input
moves its somata.
"""
import csv
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import torch

import dendrisim

# The model file is ``examples/neurons/lowpass_pyramidal.py`` (shown in full, with what each
# part does, in the how-to "Writing a neuron model"): a subclass of the pyramidal model whose
# ``integrate``, ``prediction`` and ``step`` keep and use the filtered potential ``v_D`` as a
# variable of the presentation's state, ``s.dendrite``. It is copied into a folder outside the
# package and loaded from there, as ``--plugin`` would load it.
SOURCE = Path(dendrisim.__file__).resolve().parents[1] / "examples" / "neurons" / "lowpass_pyramidal.py"
out = Path(tempfile.mkdtemp(prefix="dendrisim-gallery-"))
plugin = out / "lowpass_pyramidal.py"
plugin.write_text(SOURCE.read_text())
print("".join(line for line in SOURCE.read_text().splitlines(keepends=True) if line.startswith(("class", "    def"))))
print("registered:", dendrisim.load_plugin(plugin))

MODELS = Path(dendrisim.__file__).resolve().parents[1] / "models"


def train(model, overrides, label):
    """Train ``model`` with ``overrides``; the test accuracy of every epoch and the summary."""
    exp = dendrisim.load(MODELS / model, [*overrides, "recording.enabled=false"])
    trainer = dendrisim.Trainer(exp, out=out / label)
    summary = trainer.fit()
    with open(Path(summary["run_dir"]) / "metrics.csv") as f:
        curve = [float(row["test_accuracy"]) for row in csv.DictReader(f)]
    print(f"{label:28s} test accuracy {curve[-1]:.4f} after {len(curve)} epochs (test loss {summary['final_test_loss']:.4f})")
    return curve, summary, trainer


# %%
# DLL with simulated compartments (20 Euler steps of dt 0.2 per batch), 10 epochs: the shipped
# network, then ``h1`` as the low-pass neuron (the same run bit for bit), then ``h2``.
dll = {}
for label, extra in (("dll, pyramidal", []), ("dll, low-pass h1", ["populations.h1.type=lowpass_pyramidal"]),
                     ("dll, low-pass h2", ["populations.h2.type=lowpass_pyramidal"])):
    dll[label] = train("dll_mlp_digits_dynamic.yaml", ["training.epochs=10", *extra], label)
print("low-pass h1 is the pyramidal h1 exactly:",
      dll["dll, low-pass h1"][1]["final_test_loss"] == dll["dll, pyramidal"][1]["final_test_loss"])

# %%
# The microcircuit (mc_basal, mc_lateral, mc_topdown; dt 0.3, 10 steps): 6 epochs without a
# teacher for the self-predicting state, then 10 with it. The output is the low-pass neuron.
phases = ("training.phases=[{name: self_predicting, epochs: 6, teacher: false, learn: [h1->i1, i1->h1], "
          "lr_scale: {i1->h1: 2.5}}, {name: learning, epochs: 10, teacher: true}]")
mc = {}
for label, extra in (("microcircuit, pyramidal", []),
                     ("microcircuit, low-pass out", ["populations.out.type=lowpass_pyramidal"])):
    mc[label] = train("microcircuit_digits.yaml", [phases, *extra], label)

# %%
# One batch of test digits presented by the trained circuit with its teacher, for two values
# of ``tau_dendrite`` (an attribute of the population, so it can be changed between
# presentations): the output's basal drive ``v_B`` rises as ``h1`` moves, and the filtered
# ``v_D`` follows it one Euler step late and then with the time constant ``τ_D``.
trainer = mc["microcircuit, low-pass out"][2]
net, rule, scheme = trainer.network, trainer.rule, trainer.scheme
x, y = trainer.task.test.x[:8], trainer.task.test.y[:8]
target = trainer.task.target(y, net)
neuron = int(y[0])  # the output neuron of the first digit's class
traces = {}
for tau in (1.0, 3.0):
    net.populations["out"].tau_dendrite = tau
    with torch.no_grad(), net.plasticity_off():
        kept = scheme.present(net, rule, target, state=net.free_state(trainer.task.inputs(x)),
                              capture=torch.arange(len(x))).trajectory["out"]
    traces[tau] = {var: kept[var][0, :, neuron] for var in ("basal", "dendrite", "soma")}  # [Euler states]

# %%
# Left: the output neuron of the first test digit's class over the 10 Euler steps of one
# presentation: its basal drive ``v_B`` and the filtered dendrite ``v_D`` for ``τ_D`` = 1 and 3.
# Middle and right: test accuracy per epoch, pyramidal against low-pass, under dll (euler;
# ``h1`` barely moves under the weak nudging λ ≈ 0.05, so neither does ``h2``'s drive, and
# the curves nearly coincide) and under the microcircuit (shaded: its phase without a teacher,
# in which only the interneurons and the lateral synapses learn).
fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
steps = range(len(traces[1.0]["basal"]))
axes[0].plot(steps, traces[1.0]["basal"], "k", marker=".", label="v_B (drive)")
for tau, colour in ((1.0, "C0"), (3.0, "C1")):
    axes[0].plot(steps, traces[tau]["dendrite"], colour, marker=".", label=f"v_D, τ_D = {tau:g}")
axes[0].set(title=f"circuit output neuron {neuron}, one presentation", xlabel="Euler step",
            ylabel="potential")
axes[0].legend(fontsize=8)
for ax, runs, title in ((axes[1], dll, "dll_mlp_digits_dynamic"), (axes[2], mc, "microcircuit_digits")):
    for label, (curve, _, _) in runs.items():
        if label != "dll, low-pass h1":  # the same curve as the pyramidal one
            style = ("k", "-") if label.endswith("pyramidal") else ("C1", "--")
            ax.plot(range(1, len(curve) + 1), curve, style[0], ls=style[1], marker="o", ms=3, label=label)
    ax.set(title=title, xlabel="epoch", ylabel="test accuracy", ylim=(0, 1))
    ax.legend(fontsize=8, loc="lower right")
axes[2].axvspan(0.5, 6.5, color="0.92")
fig.tight_layout()
