"""The depth study (``dendrisim results --suite depth``, issue 28): which dendritic rules keep
learning as a network gets deeper. Fashion-MNIST MLPs with 1, 3 and 5 hidden populations of
:data:`WIDTH` sigmoid units; backprop, DLL, the Sacramento microcircuit with random top-down
weights, BurstCCN and burstprop.

Each depth has ONE description, :func:`network`: the task of ``models/burstccn_fmnist.yaml``
(Fashion-MNIST, batches of 32) and an MLP with ``depth`` hidden populations of ``WIDTH``
sigmoid units and a sigmoid output, its forward weights drawn as the public BurstCCN code
draws them (:data:`INIT`: Xavier normal, gain 3.6). Every contender's model file is derived
from it by adding only what its rule needs (:func:`steady`, :func:`microcircuit`,
:func:`burst`), and written beside the contender's results
(``OUT/depth_N/CONTENDER/model.yaml``), so the populations, the forward projections, their
initialisation, the task and the steps are the same for every rule by construction.
Every rule trains with the same optimizer, Adam at 1e-3 in the file (Greedy et al. train the
burst rules with plain SGD: at the capped budget here SGD needs a rate near 1 to match Adam,
and the tuning searches a rate from a tenth to ten times the file's); the tuning budget is the
same for every contender.
"""
from __future__ import annotations

import copy
from typing import Callable

from .suites import Comparison, Contender

#: hidden units per population (every population of every depth); small enough that the
#: whole study fits about an hour on two shared cores
WIDTH = 100
DEPTHS = (1, 3, 5)
#: the shared model file the descriptions are derived from
BASE = "models/burstccn_fmnist.yaml"
#: the forward projections' initialisation (neuralml/BurstCCN's for sigmoid units), held here
#: rather than read from BASE so that the study stays the one on the Results page
INIT = {"xavier_normal": {"gain": 3.6}}
#: every epoch is cut to this many steps of 32 samples (25 600 of the 54 000 training samples)
STEPS_PER_EPOCH = 800
EPOCHS = 10
TUNE, TUNE_EPOCHS = 4, 2
SEEDS = (0, 1, 2)
ADAM = {"type": "adam", "lr": 1.0e-3}


def hidden_names(depth: int) -> list[str]:
    return [f"h{i + 1}" for i in range(depth)]


def network(model: dict, depth: int, width: int = WIDTH) -> dict:
    """The description of one depth: ``model``'s input, output size and task, with ``depth``
    hidden pyramidal populations of ``width`` sigmoid units (h1 ... hD) chained by basal
    projections initialised by :data:`INIT`; no apical projections, no rule of its own."""
    pops = model["populations"]
    init = INIT
    names = ["input", *hidden_names(depth), "out"]
    populations = {"input": dict(pops["input"])}
    for name in names[1:-1]:
        populations[name] = {"type": "pyramidal", "size": int(width), "activation": "sigmoid"}
    populations["out"] = {"type": "pyramidal", "size": int(pops["out"]["size"]), "activation": "sigmoid"}
    projections = [{"from": a, "to": b, "init": copy.deepcopy(init)} for a, b in zip(names, names[1:])]
    shape = "-".join(["784", *[str(width)] * depth, str(populations["out"]["size"])])
    return {"name": f"depth_{depth}", "description": f"{shape} sigmoid MLP on Fashion-MNIST (dendrisim.depth.network, "
            f"from {model['name']})", "task": dict(model["task"]), "populations": populations,
            "projections": projections, "plasticity": {"rule": "bp"}, "optimizer": dict(ADAM),
            "training": {"epochs": EPOCHS, "seed": 0, "max_steps_per_epoch": STEPS_PER_EPOCH},
            "recording": {"enabled": False}}


def describe(depth: int) -> Callable[[dict], dict]:
    """The comparison's ``derive``: the description of ``depth`` from :data:`BASE`."""
    def derive(model: dict) -> dict:
        return network(model, depth)
    derive.__qualname__ = f"network{depth}"
    return derive


def _hidden(model: dict) -> list[str]:
    """The description's hidden populations (neither the clamped input, nor the output, nor
    interneurons), in order."""
    from .neurons import NEURONS

    models = {n: NEURONS.get(p.get("type", "pyramidal")) for n, p in model["populations"].items()}
    return [n for n, m in models.items() if n != "out" and not m.clamped and not m.takes_nudging]


def _under(out: dict, model: dict, rule: str) -> dict:
    """``out``, derived from the description ``model``, named for ``rule`` and trained by it
    with the common optimizer."""
    out["name"] = f"{model['name']}_{rule}"
    out["plasticity"] = {"rule": rule}
    out["optimizer"] = dict(ADAM)
    return out


def steady(rule: str) -> Callable[[dict], dict]:
    """bp and DLL: the description as it is (the steady sweep)."""
    def derive(model: dict) -> dict:
        return _under(copy.deepcopy(model), model, rule)
    derive.__qualname__ = f"steady_{rule}"
    return derive


def microcircuit(model: dict) -> dict:
    """The Sacramento et al. (2018) circuit on the description: an interneuron population i_k
    beside every hidden population h_k that predicts the population above it (nudged toward
    it one to one) and cancels its top-down input; fixed random top-down weights (the
    shipped circuits' uniform scale), learned lateral ones; the shipped circuits' Euler
    dynamics, conductances and linear output, and a first epoch without a teacher (the
    self-predicting phase), counted in the epochs like every other."""
    out = copy.deepcopy(model)
    hidden = _hidden(model)
    above = [*hidden[1:], "out"]
    pops = {"input": out["populations"]["input"]}
    for h, a in zip(hidden, above):
        pops[h] = out["populations"][h]
        pops[f"i{h[1:]}"] = {"type": "interneuron", "size": "auto", "activation": "auto"}
    pops["out"] = {**out["populations"]["out"], "activation": "linear"}
    out["populations"] = pops
    top = {"uniform": {"low": -1.0, "high": 1.0}}
    projections = list(out["projections"])
    init = {k: v for k, v in projections[1].items() if k == "init"}  # a hidden-to-hidden (or -output) one
    for h, a in zip(hidden, above):
        i = f"i{h[1:]}"
        projections += [{"from": h, "to": i, **copy.deepcopy(init)},
                        {"from": a, "to": h, "compartment": "apical", "init": copy.deepcopy(top)},
                        {"from": i, "to": h, "compartment": "apical", "init": copy.deepcopy(top), "lr_scale": 0.1},
                        {"from": a, "to": i, "compartment": "soma"}]
    out["projections"] = projections
    out["name"] = f"{model['name']}_microcircuit"
    out["plasticity"] = {"rule": "mc_basal"}
    out["optimizer"] = dict(ADAM)
    out["dynamics"] = {"mode": "euler", "dt": 0.3, "steps": 10, "tau": 1.0, "g_leak": 0.1, "g_basal": 1.0,
                       "g_apical": 0.8, "g_dendrite": 1.0, "g_som": 0.8}
    learn = [p for h in hidden for p in (f"{h}->i{h[1:]}", f"i{h[1:]}->{h}")]
    training = {k: v for k, v in out["training"].items() if k != "epochs"}
    training["phases"] = [{"name": "self_predicting", "epochs": 1, "teacher": False, "learn": learn,
                           "lr_scale": {p: 5 for p in learn}},
                          {"name": "learning", "epochs": model["training"]["epochs"] - 1, "teacher": True}]
    out["training"] = training
    return out


def burst(rule: str) -> Callable[[dict], dict]:
    """BurstCCN and burstprop on the description: every hidden and output population burst
    neurons (sigmoid event rates), top-down Y projections of the burst rate of the
    population above (fixed, random normal, as models/burstccn_fmnist.yaml) into every hidden
    population, and for BurstCCN the subtractive Q projections of its event rate (Q = p_b Y
    at the start); burstprop's hidden populations take the public burstprop code's burst gain
    of 1 (BurstCCN's is 4)."""
    def derive(model: dict) -> dict:
        out = copy.deepcopy(model)
        hidden = _hidden(model)
        for name in [*hidden, "out"]:
            out["populations"][name] = {**out["populations"][name], "type": "burst"}
            if rule == "burstprop" and name != "out":  # the public burstprop code's σ(v_A (1 − e)): no factor 4
                out["populations"][name]["burst_gain"] = 1.0
        projections = list(out["projections"])
        for h, a in zip(hidden, [*hidden[1:], "out"]):
            projections.append({"from": a, "to": h, "compartment": "apical", "reads": "burst",
                                "init": {"normal": {"std": 1.0}}})
            if rule == "burstccn":
                projections.append({"from": a, "to": h, "compartment": "apical", "reads": "event"})
        out["projections"] = projections
        return _under(out, model, rule)
    derive.__qualname__ = f"burst_{rule}"
    return derive


CONTENDERS = (
    Contender("bp", "bp", (), "backprop", derive=steady("bp")),
    Contender("dll", "dll", (), "DLL, steady state", derive=steady("dll")),
    Contender("microcircuit", "mc_basal", (), "Sacramento et al.'s circuit: interneurons, fixed random top-down "
              "weights, Euler dynamics, 1 self-predicting epoch, then learning", derive=microcircuit),
    Contender("burstccn", "burstccn", (), "BurstCCN: burst neurons, fixed random Y, Q = p_b Y",
              derive=burst("burstccn")),
    Contender("burstprop", "burstprop", (), "burstprop: burst neurons, fixed random Y, no Q",
              derive=burst("burstprop")),
)


def comparison(depth: int) -> Comparison:
    shape = "-".join(["784", *[str(WIDTH)] * depth, "10"])
    return Comparison(f"depth_{depth}", f"{depth} hidden population{'s' if depth > 1 else ''}: {shape} sigmoid "
                      "on Fashion-MNIST", BASE, CONTENDERS, epochs=EPOCHS, tune=TUNE, tune_epochs=TUNE_EPOCHS,
                      seeds=SEEDS, needs="fashion_mnist", derive=describe(depth))


SUITE = [comparison(d) for d in DEPTHS]


# ----------------------------------------------------------------------------- the figure
def errors(report: dict) -> dict[str, dict[int, list[float]]]:
    """Test error (%) per contender and depth from the suite's report (OUT/depth.json, or
    results.json's ``depth`` entry): contender -> depth -> one value per seed."""
    found: dict[str, dict[int, list[float]]] = {}
    for comparison in report["comparisons"]:
        if comparison.get("skipped"):
            continue
        depth = int(comparison["name"].split("_")[1])
        for label, row in comparison["contenders"].items():
            found.setdefault(label, {})[depth] = [100.0 * (1.0 - v) for v in row["test"]]
    return found


def error_table(report: dict) -> str:
    """The suite's summary as the Results page shows it under its tables: test error (%, mean ±
    std over seeds) per rule and depth, and its change from the shallowest to the deepest."""
    import statistics

    found = errors(report)
    depths = sorted({d for by_depth in found.values() for d in by_depth})
    cell = lambda v: (f"{statistics.mean(v):.2f} ± {statistics.stdev(v):.2g}%" if len(v) > 1
                      else f"{v[0]:.2f}%")
    lines = ["**Test error (%) against depth** (100 − the test accuracy above; mean ± std over seeds)", "",
             "| rule | " + " | ".join(f"{d} hidden" for d in depths) + f" | {depths[-1]} − {depths[0]} |",
             "|---" * (len(depths) + 2) + "|"]
    for label, by_depth in found.items():
        cells = [cell(by_depth[d]) if d in by_depth else "—" for d in depths]
        change = (f"{statistics.mean(by_depth[depths[-1]]) - statistics.mean(by_depth[depths[0]]):+.2f} points"
                  if depths[0] in by_depth and depths[-1] in by_depth else "—")
        lines.append(f"| {label} | " + " | ".join(cells) + f" | {change} |")
    return "\n".join(lines) + "\n"


def plot(report: dict, path) -> None:
    """Test error against depth, one line per contender (mean over seeds, bars: their standard
    deviation where there are several), chance (90 %) dashed, as a PNG at ``path``."""
    import statistics

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FixedLocator, NullFormatter, NullLocator

    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    for label, by_depth in errors(report).items():
        depths = sorted(by_depth)
        spread = [statistics.stdev(by_depth[d]) if len(by_depth[d]) > 1 else 0.0 for d in depths]
        ax.errorbar(depths, [statistics.mean(by_depth[d]) for d in depths], yerr=spread, marker="o", capsize=3,
                    label=label)
    ax.axhline(90.0, color="grey", linestyle="--", linewidth=1, label="chance")
    ax.set_xticks(list(DEPTHS))
    ax.set_xlabel("hidden populations (100 sigmoid units each)")
    ax.set_ylabel("test error (%)")
    ax.set_yscale("log")
    ticks = [10, 12, 15, 20, 30, 50, 90]
    ax.yaxis.set_major_locator(FixedLocator(ticks))
    ax.yaxis.set_minor_locator(NullLocator())
    ax.yaxis.set_minor_formatter(NullFormatter())
    ax.set_yticklabels([str(t) for t in ticks])
    ax.set_title("Fashion-MNIST: test error against depth")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
