"""scripts/twin_burstccn.py without the public code: its model files load, and its plain-torch
BurstCCN step (the bench's third row, written from the equations) is dendrisim's step.

The twin itself needs a checkout of neuralml/BurstCCN (``--reference``) and never runs here."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from conftest import build, present
from dendrisim.builder import load_experiment
from dendrisim.optim import build_optimizer

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "twin_burstccn.py"


@pytest.fixture(scope="module")
def twin():
    spec = importlib.util.spec_from_file_location("twin_burstccn", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop(spec.name, None)


def test_every_case_is_a_valid_model(twin):
    for case in twin.CASES.values():
        exp = load_experiment(twin.model_dict(case, dataset="digits", batch=8, lr=0.1, y_scale=0.1, q_scale=0.1), [],
                              file="twin.yaml")
        names = {p.name for p in exp.config.projections}
        hidden = [f"h{i + 1}" for i in range(len(case.hidden))]
        above = hidden[1:] + ["out"]
        assert {f"{a}:burst->{h}" for h, a in zip(hidden, above)} <= names
        assert ({f"{a}:event->{h}" for h, a in zip(hidden, above)} <= names) == (case.rule == "burstccn")


@pytest.mark.parametrize("hidden", [(6, 5), (6, 5, 4, 4)])
def test_the_plain_step_is_dendrisims_step(twin, hidden):
    case = twin.Case("small", hidden)
    exp = load_experiment(twin.model_dict(case, dataset="digits", batch=8, lr=0.5, y_scale=0.1, q_scale=0.3), [],
                          file="twin.yaml")
    net, rule = build(exp, input_shape=(7,), output_size=3)
    plain = twin.Plain(case, SimpleNamespace(network=net), lr=0.5, lr_q=0.15)
    plain.W, plain.b, plain.Y, plain.Q = ([w.double() for w in ws] for ws in (plain.W, plain.b, plain.Y, plain.Q))
    opt = build_optimizer(net, rule, exp.config.optimizer, exp.config.training.phases)
    names = twin.population_names(case)
    for _ in range(3):
        x = torch.randn(8, 7, dtype=torch.float64)
        t = torch.nn.functional.one_hot(torch.randint(0, 3, (8,)), 3).double()
        net(x)
        present(net, rule, t, exp)
        opt.step()
        rule.after_update(net)
        plain.step(x, t)
    for i, (a, b) in enumerate(zip(names, names[1:])):
        torch.testing.assert_close(net.projections[f"{a}->{b}"].weight.detach(), plain.W[i])
        torch.testing.assert_close(net.projections[f"{a}->{b}"].bias.detach(), plain.b[i])
    for i, (b, a) in enumerate(zip(names[1:-1], names[2:])):
        q = net.projections[f"{a}:event->{b}"].weight.detach()
        torch.testing.assert_close(q, plain.Q[i])
        assert not torch.equal(q, -0.5 * net.projections[f"{a}:burst->{b}"].weight)  # Q has learnt
