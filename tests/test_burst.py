"""Burst-multiplexing networks as a whole: the sweep that settles them, the burst rules'
limits and equivalences, and how they sit in the framework (names, twins, checks). The
equations on hand-checked numbers are in tests/test_burst_equations.py."""
import copy

import pytest
import torch

from conftest import BURST_MLP, BURSTPROP_MLP, build, model, present
from dendrisim.errors import ConfigError
from dendrisim.results import feedforward_twin


def burst(*overrides: str, base: dict = BURST_MLP):
    return model(list(overrides), base=base)


def symmetric_network(*overrides: str):
    """The burst MLP with Y = Wᵀ and Q = p_b Y (the exact cancellation), in float64."""
    exp = burst("plasticity.feedback=symmetric", "plasticity.cancel=symmetric", *overrides)
    return exp, *build(exp, input_shape=(5,), output_size=3)


def test_y_and_q_join_the_same_pair_under_their_own_names():
    exp, net, rule = symmetric_network()
    names = list(net.projections)
    assert "h2:burst->h1" in names and "h2:event->h1" in names and "out:burst->h2" in names
    assert [p.reads for p in net.apical_in["h1"]] == ["burst", "event"]
    # cancel: symmetric made Q = −p_b Y, and feedback: symmetric Y = Wᵀ of the projection above
    y, q = net.projections["h2:burst->h1"].weight, net.projections["h2:event->h1"].weight
    torch.testing.assert_close(y, net.projections["h1->h2"].weight.t())
    torch.testing.assert_close(q, -0.5 * y)


def test_without_a_teacher_q_cancels_y_exactly_and_nothing_learns():
    """Without a teacher the output bursts at p_b, so b = p_b e everywhere: Q = p_b Y silences
    every apical dendrite and every basal update is zero."""
    exp, net, rule = symmetric_network()
    x = torch.randn(7, 5, dtype=torch.float64)
    net(x)
    p = present(net, rule, None, exp)
    for name in ("h1", "h2"):
        s = p.state[name]
        torch.testing.assert_close(s.apical, torch.zeros_like(s.apical), atol=1e-12, rtol=0)
        torch.testing.assert_close(s.burst_prob, torch.full_like(s.burst_prob, 0.5))
        torch.testing.assert_close(s.error, torch.zeros_like(s.error), atol=1e-12, rtol=0)
    for proj in net.learnable_projections():
        assert float(proj.weight.grad.abs().max()) < 1e-12, proj.name


def test_burstccn_reduces_to_backprop_for_small_errors():
    """With Y = Wᵀ, Q = p_b Y, p_b = 1/2 and the gate, a hidden burst deviation is
    σ(4 a (1 − e)) e − e/2 = a e (1 − e) + O(a³) = f' ⊙ Wᵀ δ_above: BurstCCN's updates are
    p_b times backprop's gradient of ½‖t − e‖² to first order in the output error (the
    output's own form is exact). Halving the error quarters the relative gap."""
    exp, net, rule = symmetric_network()
    torch.manual_seed(3)
    x = torch.randn(6, 5, dtype=torch.float64)
    direction = torch.randn(6, 3, dtype=torch.float64)
    gaps = []
    for eps in (1e-2, 5e-3):
        e_out = net(x).detach()
        target = e_out + eps * direction
        present(net, rule, target, exp)
        ours = {p.name: p.weight.grad.clone() for p in net.learnable_projections() if p.compartment == "basal"}
        # autograd on the same weights: the forward pass of sigmoid layers, loss ½‖t − e‖² (mean over the batch)
        params = {name: net.projections[name].weight.detach().clone().requires_grad_(True) for name in ours}
        biases = {name: net.projections[name].bias.detach() for name in ours}
        h = x
        for name in ("input->h1", "h1->h2", "h2->out"):
            h = torch.sigmoid(h @ params[name].t() + biases[name])
        loss = 0.5 * (target - h).pow(2).sum(1).mean()
        grads = torch.autograd.grad(loss, list(params.values()))
        gap = max(float((ours[n] - 0.5 * g).norm() / (0.5 * g).norm()) for n, g in zip(params, grads))
        gaps.append(gap)
    assert gaps[0] < 1e-5, gaps  # measured 7.3e-7 and 1.8e-7: the relative gap is O(ε²)
    assert gaps[1] < 0.3 * gaps[0], gaps  # it shrinks as the error squared: an equivalence in the limit


def test_burstprop_compares_with_the_same_batch_settled_without_a_teacher():
    exp = burst(base=BURSTPROP_MLP)
    net, rule = build(exp, input_shape=(5,), output_size=3)
    x = torch.randn(4, 5, dtype=torch.float64)
    net(x)
    p = present(net, rule, None, exp)
    assert p.state.free is not None
    for proj in net.learnable_projections():
        if proj.compartment == "basal":  # no teacher: taught and free states are the same
            assert float(proj.weight.grad.abs().max()) == 0.0, proj.name
    net(x)
    target = torch.eye(3, dtype=torch.float64)[[0, 1, 2, 0]]
    p = present(net, rule, target, exp)
    free, taught = p.state.free, p.state
    torch.testing.assert_close(free["out"].burst_prob, torch.full_like(free["out"].burst_prob, 0.5))
    delta = taught["h1"].burst - free["h1"].burst
    expected = -(delta.t() @ taught.input) / 4
    torch.testing.assert_close(net.projections["input->h1"].weight.grad, expected)


def test_tied_feedback_follows_the_forward_weights_after_every_update():
    from dendrisim.training import RunOptions, Trainer

    exp = burst("plasticity.feedback=tied", "plasticity.cancel=tied", "projections.4.learnable=false",
                "projections.6.learnable=false", "training.max_steps_per_epoch=3",
                "recording.enabled=false", "task.validation_fraction=0")
    tr = Trainer(exp, RunOptions(progress=False, log=lambda s: None))
    before = tr.network.projections["out:burst->h2"].weight.detach().clone()
    tr.train_epoch(1)
    y = tr.network.projections["out:burst->h2"].weight
    assert not torch.equal(y, before)
    torch.testing.assert_close(y, tr.network.projections["h2->out"].weight.t())
    torch.testing.assert_close(tr.network.projections["out:event->h2"].weight, -0.5 * y)


def test_the_feedforward_twin_of_a_burst_network_is_pyramidal():
    spec = copy.deepcopy(BURST_MLP)
    spec["populations"]["h1"]["burst_gain"] = 2.0
    spec["recording"] = {"populations": {"h1": ["event", "burst_prob", "apical"]}}
    twin = feedforward_twin(spec)
    assert {n: p["type"] for n, p in twin["populations"].items()} == {
        "input": "input", "h1": "pyramidal", "h2": "pyramidal", "out": "pyramidal"}
    assert "burst_gain" not in twin["populations"]["h1"]
    assert all(p.get("compartment", "basal") == "basal" for p in twin["projections"])
    assert twin["recording"]["populations"]["h1"] == ["rate", "apical"]
    model_twin = model(["plasticity.rule=bp"], base=twin)
    assert model_twin.config.populations["h1"].type == "pyramidal"


def test_the_gate_needs_a_sigmoid_event_rate():
    with pytest.raises(ConfigError, match=r"populations.h1.activation: a burst population with gate: true .* must be "
                                          r"sigmoid, not tanh"):
        burst("populations.h1.activation=tanh")
    assert burst("populations.h1.activation=tanh", "populations.h1.gate=false").config.populations["h1"]


def test_a_burst_rate_read_from_below_is_refused_before_the_run():
    spec = copy.deepcopy(BURST_MLP)
    spec["projections"].append({"from": "h1", "to": "h2", "compartment": "apical", "reads": "burst"})
    with pytest.raises(ConfigError, match=r"projections\[7\].from: h1:burst->h2 reads h1.burst, which the top-down "
                                          r"sweep fills in, but h1 is not above h2"):
        model(base=spec)


def test_reads_names_a_variable_of_the_source_on_apical_projections_only():
    with pytest.raises(ConfigError, match=r"projections\[3\].reads: 'spikes' is not a variable that 'h2' \(burst\) "
                                          r"offers to an apical projection; it offers soma, basal, rate, event, "
                                          r"burst_prob, burst"):
        burst("projections.3.reads=spikes")
    with pytest.raises(ConfigError, match=r"reads names the source variable an apical projection carries"):
        burst("projections.0.reads=rate")
