"""The builder (issue 22, items 2 and 4): one function builds network and rule, for real
data or on the meta device, and a network is complete when it is built."""
import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from conftest import model
from dendrisim import builder
from dendrisim.builder import DataSpec, build, build_model, load_experiment
from dendrisim.inspect import describe
from dendrisim.tasks import TASKS
from test_sequences import _series, rnn_model


class RealTensors(TorchDispatchMode):
    """Records every operation whose result has storage (a tensor not on the meta device)."""

    def __init__(self):
        super().__init__()
        self.real = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, (tuple, list)) else [out]:
            if isinstance(t, torch.Tensor) and not t.is_meta:
                self.real.append((str(func), tuple(t.shape)))
        return out


def test_the_spy_sees_an_allocation():
    """A guard against a vacuous test below."""
    with RealTensors() as spy:
        torch.zeros(3)
    assert spy.real == [("aten.zeros.default", (3,))]


@pytest.mark.parametrize("rule", ["dll", "bp", "fa", "dfa", "kp", "pc"])
def test_describe_allocates_nothing_even_for_a_model_far_larger_than_memory(rule):
    """h1 -> h2 alone would hold 150,000² weights (84 GiB): described from the file, every
    tensor on the meta device."""
    exp = model(["populations.h1.size=150000", "populations.h2.size=150000", "recording.enabled=false",
                 f"plasticity.rule={rule}"])
    with RealTensors() as spy:
        text = describe(exp)
    assert spy.real == []
    assert "parameters: 22,511,400,010 learnable forward" in text  # 64·150k + 150k² + 150k·10 + biases


def test_a_built_network_carries_readout_and_time_steps_from_the_start(tmp_path, monkeypatch):
    """The task's readout and sequence length reach the network's constructor: nothing is set
    on it afterwards. The spec declared by the file alone (the meta build) is the same."""
    seen = []

    class Spy(builder.Network):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            seen.append((self.readout, self.time_steps))

    monkeypatch.setattr(builder, "Network", Spy)
    path, _ = _series(tmp_path)
    task = {"type": "forecasting", "file": str(path), "window": 6, "horizon": 1, "batch_size": 8}
    exp = load_experiment(rnn_model(task, "linear"), file="test.yaml")
    built = build(exp, device="cpu")
    built_task, net = built.task, built.network
    assert seen == [(slice(-1, None), 6)] * 2  # the memory check's meta build, then the real one
    assert (net.readout, net.time_steps) == (slice(-1, None), 6)
    assert (built_task.readout, built_task.sequence_length) == (slice(-1, None), 6)
    declared = DataSpec.declared(TASKS.get("forecasting"), exp.task)
    real = DataSpec.of(built_task)
    assert declared == real
    meta, _ = build_model(exp, declared, device="meta")
    assert (meta.readout, meta.time_steps) == (slice(-1, None), 6) and all(p.is_meta for p in meta.parameters())


def test_a_feedforward_network_has_no_time_steps():
    net, _ = build_model(model(), DataSpec((64,), 10, time_steps=5, readout=slice(-1, None)))
    assert not net.sequential and net.time_steps is None and net.readout == slice(-1, None)
    net = build(model(), device="cpu").network
    assert (net.readout, net.time_steps) == (slice(None), None)


def test_build_returns_the_whole_model():
    """The task, the network, the rule, the settling scheme and the optimizer over every
    learnable tensor: what the trainer, --check, the memory estimate and bench all build from."""
    from dendrisim.builder import Model
    from dendrisim.settling import EulerDynamics

    built = build(model(["dynamics.mode=euler"]), device="cpu")
    assert isinstance(built, Model) and isinstance(built.scheme, EulerDynamics) and built.task is not None
    learnable = {id(p) for group in built.optimizer.param_groups for p in group["params"]}
    assert {id(p) for proj in built.network.learnable_projections() for p in proj.parameters_to_learn()} <= learnable


def test_check_and_the_memory_estimate_count_the_trajectory_a_simulated_record_keeps():
    """Under euler a record holds the kept states of the presentation; --check's recording
    line and the memory check must count them as the trainer's own estimate does."""
    from dendrisim.observers.recording import check_recording

    sets = ["recording={every: 1, populations: {h1: [soma, basal, apical], h2: [soma]}}", "training.epochs=3"]
    steady = model(sets)
    euler = model([*sets, "dynamics={mode: euler, steps: 20, record_every: 1}"])
    parts = {name: builder.memory_estimate(exp, TASKS.get(exp.task.type)) for name, exp in (("steady", steady),
                                                                                           ("euler", euler))}
    assert parts["euler"]["recording"] > 15 * parts["steady"]["recording"]  # 21 states a record, index aside
    spec = DataSpec.declared(TASKS.get(euler.task.type), euler.task)
    net, rule = build_model(euler, spec, device="meta")
    steps = -(-spec.train_samples // euler.task.batch_size)
    kept = check_recording(euler, net, rule, steps_per_epoch=steps, epochs=3, trace_steps=list(range(21)))
    one = check_recording(euler, net, rule, steps_per_epoch=steps, epochs=3)
    assert kept["bytes"] > 15 * one["bytes"]
    line = next(l for l in describe(euler).splitlines() if l.startswith("recording:"))
    assert f"about {kept['bytes'] / 2**20:,.1f} MiB" in line, line
