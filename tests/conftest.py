"""Shared helpers: small model files built in code, and networks built without a task."""
from __future__ import annotations

import copy

import pytest
import torch

from dendrisim.config import load_experiment
from dendrisim.network import Network
from dendrisim.plasticity import build_rule

MLP = {
    "name": "tiny",
    "task": {"type": "classification", "dataset": "digits", "batch_size": 16},
    "populations": {
        "input": {"type": "input", "size": "auto"},
        "h1": {"type": "pyramidal", "size": 12, "activation": "tanh"},
        "h2": {"type": "pyramidal", "size": 8, "activation": "tanh"},
        "out": {"type": "pyramidal", "size": "auto", "activation": "softmax"},
    },
    "projections": [
        {"from": "input", "to": "h1"},
        {"from": "h1", "to": "h2"},
        {"from": "h2", "to": "out"},
    ],
    "plasticity": {"rule": "dll"},
    "optimizer": {"type": "adam", "lr": 0.003},
    "training": {"epochs": 1, "seed": 0},
}


def model(overrides: list[str] = (), base: dict = MLP):
    """An Experiment from the in-code model ``base`` with ``--set``-style overrides."""
    return load_experiment(copy.deepcopy(base), list(overrides), file="test.yaml")


def build(experiment, *, input_shape=(5,), output_size=3, dtype=torch.float64):
    """Network and rule for ``experiment`` on synthetic shapes, in float64 for tight comparisons."""
    net = Network(experiment, input_shape=input_shape, output_size=output_size)
    rule = build_rule(net, experiment)
    return net.to(dtype), rule.to(dtype)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
