"""Shared helpers: small model files built in code, and networks built without a task."""
from __future__ import annotations

import copy

import pytest
import torch

from pathlib import Path

from dendrisim.builder import DataSpec, build_model, build_scheme, load_experiment
from dendrisim.plugins import load_plugins

#: the worked example rules outside the package: registered before the tests are collected,
#: so the behavioural suite (parametrized over the registry) runs them like the built-in rules
EXAMPLE_RULES = sorted((Path(__file__).resolve().parent.parent / "examples" / "rules").glob("*.py"))
load_plugins(EXAMPLE_RULES)

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

#: the MLP of burst neurons (sigmoid event rates) that the burst rules' behavioural tests run
#: on: the same basal projections, in the same places, then each population's Y (the burst
#: rate of the population above, fixed) and Q (its event rate, learnable)
BURST_MLP = {
    **MLP,
    "name": "tiny_burst",
    "populations": {
        "input": {"type": "input", "size": "auto"},
        "h1": {"type": "burst", "size": 12, "activation": "sigmoid"},
        "h2": {"type": "burst", "size": 8, "activation": "sigmoid"},
        "out": {"type": "burst", "size": "auto", "activation": "sigmoid"},
    },
    "projections": MLP["projections"] + [
        {"from": above, "to": below, "compartment": "apical", "reads": reads, **extra}
        for below, above in (("h1", "h2"), ("h2", "out"))
        for reads, extra in (("burst", {"init": {"normal": {"std": 1.0}}}), ("event", {"learnable": True}))
    ],
    "plasticity": {"rule": "burstccn"},
}


#: the burst MLP without its Q projections: burstprop's (Payeur et al. have no Q)
BURSTPROP_MLP = {**BURST_MLP, "name": "tiny_burstprop", "plasticity": {"rule": "burstprop"},
                 "projections": [p for p in BURST_MLP["projections"] if p.get("reads") != "event"]}


def base_for(rule: str) -> dict:
    """The in-code model a rule's behavioural tests run on: the burst MLP for the burst rules
    (family ``burst``: they govern burst populations only; without Q for burstprop, which
    compares with a free sweep), the MLP for every other."""
    from dendrisim.plasticity import RULES

    if rule not in RULES or RULES.get(rule).family != "burst":
        return MLP
    return BURSTPROP_MLP if RULES.get(rule).contrastive else BURST_MLP


#: a small CNN on the 8x8 digits with two parallel conv branches merging in a pool
#: population, a strided conv and a skip from the pooled maps to the output
CNN = {
    "name": "tiny_cnn",
    "task": {"type": "classification", "dataset": "digits", "batch_size": 16},
    "populations": {
        "input": {"type": "input", "size": "auto"},
        "c1": {"channels": 3, "activation": "tanh"},
        "b1": {"channels": 3, "activation": "relu"},
        "p1": {"activation": "linear"},
        "c2": {"channels": 4, "activation": "tanh"},
        "out": {"size": "auto", "activation": "softmax"},
    },
    "projections": [
        {"from": "input", "to": "c1", "connectivity": "conv2d", "kernel": 3, "padding": 1},
        {"from": "input", "to": "b1", "connectivity": "conv2d", "kernel": [5, 3], "padding": [2, 1]},
        {"from": "c1", "to": "p1", "connectivity": "maxpool", "kernel": 2},
        {"from": "b1", "to": "p1", "connectivity": "maxpool", "kernel": 2},
        {"from": "p1", "to": "c2", "connectivity": "conv2d", "kernel": 3, "stride": 2, "padding": 1},
        {"from": "c2", "to": "out"},
        {"from": "p1", "to": "out"},
    ],
    "plasticity": {"rule": "dll"},
    "optimizer": {"type": "adam", "lr": 0.003},
    "training": {"epochs": 1, "seed": 0},
}


def recording_datasets(path, *, layout: bool = False) -> dict:
    """Every dataset of a recording file by name: its values or, with ``layout``, the tuple
    (values, attributes, chunk shape, compression)."""
    import h5py

    out = {}
    with h5py.File(path, "r") as f:
        f.visititems(lambda name, obj: out.__setitem__(
            name, (obj[()], dict(obj.attrs), obj.chunks, obj.compression) if layout else obj[()])
            if isinstance(obj, h5py.Dataset) else None)
    return out


def model(overrides: list[str] = (), base: dict = MLP):
    """An Experiment from the in-code model ``base`` with ``--set``-style overrides."""
    return load_experiment(copy.deepcopy(base), list(overrides), file="test.yaml")


def build(experiment, *, input_shape=(5,), output_size=3, dtype=torch.float64, readout=slice(None)):
    """Network and rule for ``experiment`` on synthetic shapes, in float64 for tight comparisons."""
    net, rule = build_model(experiment, DataSpec(input_shape, output_size, readout=readout))
    return net.to(dtype), rule.to(dtype)


def present(net, rule, target, experiment=None, *, capture=None):
    """One presentation (forward pass done) under ``experiment``'s settling scheme, the steady
    sweep when no experiment is given; returns the :class:`~dendrisim.settling.Presentation`."""
    return build_scheme(experiment or model()).present(net, rule, target, capture=capture)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def pytest_addoption(parser):
    parser.addoption("--long", action="store_true", default=False,
                     help="tests/test_fuzz_stack.py: ten times as many generated cases")


def pytest_terminal_summary(terminalreporter):
    """The fuzzer's counts by kind and outcome, and by class of issue 29 (tests/test_fuzz_stack.py), when it ran."""
    import sys

    fuzz = sys.modules.get("test_fuzz_stack")
    if fuzz is not None and fuzz.COUNTS:
        for line in fuzz.summary().splitlines():
            terminalreporter.write_line(line)


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "slow(reason): over a few seconds on two cores; left out of the README's test command "
        "(pyproject's addopts) and run by .ci/run as `python -m pytest -q -m slow`. The reason says why.")


def pytest_collection_modifyitems(config, items):
    """Every slow test says why it is slow (``@pytest.mark.slow(reason="...")``)."""
    for item in items:
        for mark in item.iter_markers("slow"):
            if not str(mark.kwargs.get("reason", "")).strip():
                raise pytest.UsageError(f"{item.nodeid}: @pytest.mark.slow needs reason=\"why it is slow\"")
