"""Tier 1: DLL on a three-neuron chain against values worked out by hand.

input x ──W1──▶ h (tanh) ──W2──▶ out (linear), no biases, learned feedback θ (out → h).
x = 1, W1 = 0.5, W2 = 2, θ = 0.3, target t = 1, σ = 2, batch of one.

    h.soma   = 0.5 · 1                     = 0.5
    h.rate   = tanh(0.5)                   = 0.46211715726
    out.rate = 2 · 0.46211715726           = 0.92423431452
    δ_out    = t − out.rate                = 0.07576568548
    h.apical = θ · δ_out / σ²  = 0.3 · 0.07576568548 / 4          = 0.00568242641
    δ_h      = (1 − tanh²(0.5)) · h.apical = 0.78644773 · 0.00568242641 = 0.00446893137
    W2.grad  = −(2/σ²) δ_out · h.rate = −0.5 · 0.07576568548 · 0.46211715726 = −0.01750631
    W1.grad  = −(2/σ²) δ_h · x        = −0.5 · 0.00446893137                 = −0.00223447
    θ.grad   = −(2/σ²) h.apical · δ_out = −0.5 · 0.00568242641 · 0.07576568548 = −0.00021527
"""
import pytest
import torch

from conftest import build, model, present

CHAIN = {
    "name": "chain",
    "task": {"type": "classification", "dataset": "digits"},
    "populations": {
        "x": {"type": "input", "size": 1},
        "h": {"type": "pyramidal", "size": 1, "activation": "tanh"},
        "out": {"type": "pyramidal", "size": 1, "activation": "linear"},
    },
    "projections": [{"from": "x", "to": "h", "bias": False}, {"from": "h", "to": "out", "bias": False}],
    "plasticity": {"rule": "dll", "sigma": 2.0},
}


def chain(rule="dll"):
    exp = model([f"plasticity.rule={rule}"], base=CHAIN)
    net, r = build(exp, input_shape=(1,), output_size=1)
    with torch.no_grad():
        net.projections["x->h"].weight.fill_(0.5)
        net.projections["h->out"].weight.fill_(2.0)
    return net, r


def test_dll_chain_matches_hand_computed_values():
    net, rule = chain()
    with torch.no_grad():
        rule.theta["h->out"].fill_(0.3)
    net(torch.ones(1, 1, dtype=torch.float64))
    present(net, rule, torch.ones(1, 1, dtype=torch.float64))
    h, out = net.populations["h"], net.populations["out"]
    assert h.rate.item() == pytest.approx(0.46211715726)
    assert out.rate.item() == pytest.approx(0.92423431452)
    assert out.error.item() == pytest.approx(0.07576568548)
    assert h.apical.item() == pytest.approx(0.00568242641)
    assert h.error.item() == pytest.approx(0.00446893137, rel=1e-8)
    assert net.projections["h->out"].weight.grad.item() == pytest.approx(-0.01750631160, rel=1e-8)
    assert net.projections["x->h"].weight.grad.item() == pytest.approx(-0.00223446568, rel=1e-8)
    assert rule.theta["h->out"].grad.item() == pytest.approx(-0.00021526647, rel=1e-7)


def test_bp_chain_matches_hand_computed_values():
    """Backprop on the same chain: δ_h = (1 − tanh²(0.5)) · W2 · δ_out, gain 1.

    δ_h = 0.78644773 · 2 · 0.07576568548 = 0.11917150; W1.grad = −0.11917150; W2.grad = −0.03501262.
    """
    net, rule = chain("bp")
    net(torch.ones(1, 1, dtype=torch.float64))
    present(net, rule, torch.ones(1, 1, dtype=torch.float64))
    assert net.last_state["h"].error.item() == pytest.approx(0.11917150316, rel=1e-9)
    assert net.projections["x->h"].weight.grad.item() == pytest.approx(-0.11917150316, rel=1e-9)
    assert net.projections["h->out"].weight.grad.item() == pytest.approx(-0.03501262319, rel=1e-9)
