"""The cortical microcircuit's synapse models (mc_basal, mc_lateral, mc_topdown; Sacramento,
Costa, Bengio & Senn 2018): their updates against hand-computed formulas, the
self-predicting state they learn, the backprop (and feedback alignment) limit of the hidden
basal updates in that state, and the behaviour every rule shows, on a circuit under euler."""
from __future__ import annotations

import copy
import math

import pytest
import torch

from dendrisim.config.loader import Experiment
from dendrisim.config.parse import parse
from dendrisim.config.schema import ModelConfig
from dendrisim.network import Network
from dendrisim.plasticity import RULES, MixedPlasticity, build_rule
from dendrisim.settling import EulerDynamics

FILE = "t.yaml"


# ---------------------------------------------------------------- building circuits
def circuit(hidden=(12,), out: int = 4, *, inputs: int = 8, hidden_act: str = "sigmoid", out_act: str = "linear",
            rule: str = "mc_basal", std: float = 0.5, basal_std=None, topdown_learnable: bool = False, dynamics=None,
            blocks=None) -> dict:
    """The spec of a circuit input -> h1 -> ... -> out with, below every population P above a
    hidden one h, interneurons i (as many as P, its activation) learning to predict P:
    ``h -> i`` (their dendrite), ``P -> h`` apical (top-down), ``i -> h`` apical (lateral) and
    ``P -> i`` soma (nudging). Weights drawn from N(0, std²) (the feedforward ones from
    N(0, basal_std²) when given). ``blocks``: projection name -> its plasticity block."""
    names = [f"h{k + 1}" for k in range(len(hidden))]
    chain = ["input", *names, "out"]
    sizes = {"input": inputs, **dict(zip(names, hidden)), "out": out}
    acts = {**{n: hidden_act for n in names}, "out": out_act}
    pops = {"input": {"type": "input", "size": inputs},
            **{n: {"type": "pyramidal", "size": sizes[n], "activation": hidden_act} for n in names},
            "out": {"type": "pyramidal", "size": out, "activation": out_act}}
    init = {"normal": {"std": std}}
    projs = [{"from": a, "to": b, "init": {"normal": {"std": basal_std or std}}} for a, b in zip(chain, chain[1:])]
    for k, h in enumerate(names):
        above, i = chain[k + 2], f"i{k + 1}"
        pops[i] = {"type": "interneuron", "size": sizes[above], "activation": acts[above]}
        projs += [{"from": h, "to": i, "init": init},
                  {"from": above, "to": h, "compartment": "apical", "bias": False, "init": init,
                   "learnable": topdown_learnable},
                  {"from": i, "to": h, "compartment": "apical", "bias": False, "init": init, "learnable": True},
                  {"from": above, "to": i, "compartment": "soma", "connectivity": "one_to_one"}]
    for proj in projs:
        block = (blocks or {}).get(f"{proj['from']}->{proj['to']}")
        if block is not None:
            proj["plasticity"] = block
    dyn = {"mode": "euler", "steps": 20, "dt": 0.2, "tau": 1.0, "g_leak": 0.1, "g_basal": 1.0, "g_apical": 0.8,
           "g_dendrite": 1.0, "g_som": 0.8}
    return {"name": "circuit", "task": {"type": "classification", "dataset": "digits", "batch_size": 16},
            "populations": pops, "projections": projs, "plasticity": {"rule": rule},
            "optimizer": {"type": "sgd", "lr": 0.1}, "training": {"epochs": 1, "seed": 0},
            "dynamics": {**dyn, **(dynamics or {})}}


def options(block: dict):
    return parse(RULES.get(block["rule"]).Options, block, file=FILE, path="plasticity")


def experiment(spec: dict) -> Experiment:
    """The experiment of a circuit ``spec`` as the builder will make it: every projection's
    own block, and where the top-level rule does not serve a projection with none, the rule
    that is its default (``default_for``). Built by hand until the builder accepts circuits."""
    cfg = parse(ModelConfig, copy.deepcopy(spec), file=FILE)
    top = options(cfg.plasticity)
    own = {}
    for proj in cfg.projections:
        if proj.plasticity is not None:
            own[proj.name] = options(proj.plasticity)
        elif proj.connectivity != "one_to_one" and RULES.get(top.rule).serves(proj, cfg.populations) is not None:
            (default,) = [n for n in RULES.names() if RULES.get(n).default_for(proj, cfg.populations)]
            own[proj.name] = options({"rule": default})
    return Experiment(config=cfg, task=None, rule=top, file=FILE, projection_rules=own, simulated=True)


def build_circuit(spec: dict, *, dtype=torch.float64):
    """``(network, rule, scheme)`` of a circuit spec: the one place tests build circuits (switch
    it to ``conftest.build`` once the builder accepts them)."""
    exp = experiment(spec)
    cfg = exp.config
    shapes = {name: (pop.size,) for name, pop in cfg.populations.items()}
    net = Network(cfg, shapes, simulated=True).to(dtype)
    rule = build_rule(net, exp).to(dtype)
    return net, rule, EulerDynamics(cfg.dynamics)


def present(net, rule, scheme, x, t=None):
    """Forward pass and one presentation (``t`` None: no teacher)."""
    with torch.no_grad():
        net(x)
        scheme.present(net, rule, t)


def above(net, pop: str) -> str:
    """The population that nudges interneuron population ``pop`` (its soma projection's source)."""
    (proj,) = net.somatic_in[pop]
    return proj.source


# ---------------------------------------------------------------- the self-predicting state
def learn_self_predicting(net, rule, scheme, x, *, iterations: int, lr: float, lateral_scale: float) -> None:
    """No teacher; only the interneurons' dendrites (mc_basal) and the lateral synapses
    (mc_lateral) learn: full-batch SGD with momentum 0.9 on the fixed inputs ``x``, the lateral
    synapses at ``lateral_scale`` x ``lr`` (their presynaptic rates, the output's, are larger)."""
    learning = [p for p in net.projections.values()
                if p.learnable and (p.target in net._interneurons or p.source in net._interneurons)]
    groups = [{"params": list(p.parameters()), "lr": lr * (lateral_scale if p.compartment == "apical" else 1.0)}
              for p in learning]
    opt = torch.optim.SGD(groups, lr=lr, momentum=0.9)
    frozen = [q for p in net.projections.values() if p not in learning for q in p.parameters()]
    for _ in range(iterations):
        present(net, rule, scheme, x)
        for q in frozen:
            q.grad = None
        opt.step()


def apical_per_input(net, rule, scheme, x) -> dict[str, torch.Tensor]:
    """Mean |v_A| over each hidden pyramidal population's units at the end of a presentation
    with no teacher, per input (plasticity off)."""
    with net.plasticity_off():
        present(net, rule, scheme, x)
    return {p.name: p.apical.abs().mean(1) for p in net.pyramidal() if p is not net.output}


SELF_PREDICTING = dict(inputs=16, basal_std=2.0, std=0.5)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_interneurons_learn_to_silence_the_apical_dendrite_for_every_input(seed):
    """The self-predicting state (Sacramento et al. 2018): from random weights, with no teacher
    and only the interneurons' dendrites and the lateral synapses learning, mean |v_A| falls at
    least 20x for every one of 64 inputs; the interneurons' rates approach the output's and the
    lateral weights −W_down."""
    torch.manual_seed(seed)
    net, rule, scheme = build_circuit(circuit((10,), **SELF_PREDICTING))
    x = torch.rand(64, 16, dtype=torch.float64)
    before = apical_per_input(net, rule, scheme, x)
    learn_self_predicting(net, rule, scheme, x, iterations=2000, lr=0.05, lateral_scale=0.2)
    after = apical_per_input(net, rule, scheme, x)
    ratio = before["h1"] / after["h1"]
    assert float(ratio.min()) >= 20, (float(ratio.min()), float(before["h1"].mean() / after["h1"].mean()))
    r_i, r_out = net.populations["i1"].rate, net.populations["out"].rate
    assert float((r_i - r_out).norm() / r_out.norm()) < 0.05
    lateral, down = net.projections["i1->h1"].weight, net.projections["out->h1"].weight
    assert float(torch.nn.functional.cosine_similarity(lateral.flatten(), -down.flatten(), dim=0)) > 0.99


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_two_hidden_populations_reach_the_self_predicting_state(seed):
    """The same with two hidden populations, each with its interneurons: mean |v_A| of each falls
    at least 20x (over the inputs; the smallest per-input ratio measured is 15-24, so the test
    asks it of the mean), and each interneuron population's rates approach the ones above."""
    torch.manual_seed(seed)
    net, rule, scheme = build_circuit(circuit((10, 8), **SELF_PREDICTING))
    x = torch.rand(64, 16, dtype=torch.float64)
    before = apical_per_input(net, rule, scheme, x)
    learn_self_predicting(net, rule, scheme, x, iterations=2000, lr=0.05, lateral_scale=0.2)
    after = apical_per_input(net, rule, scheme, x)
    for name in ("h1", "h2"):
        assert float(before[name].mean() / after[name].mean()) >= 20, name
    for i in ("i1", "i2"):
        r_i, r_above = net.populations[i].rate, net.populations[above(net, i)].rate
        assert float((r_i - r_above).norm() / r_above.norm()) < 0.05, i
