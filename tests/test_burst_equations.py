"""The burst neuron and the burst rules against the equations, worked by hand on a tiny network.

Greedy, Zhu, Pemberton, Mellor & Costa (NeurIPS 2022, BurstCCN) in the form of the public code
(``neuralml/BurstCCN``, which dendrisim follows where it differs from the paper: the hidden
burst probability's gate ``1 − e`` and the output's ``p_b ((t − e)(1 − e) + 1)``), and
Payeur et al. (2021, burstprop) as its rate model. The network: input (2) → h1 (2 burst
neurons) → out (2 burst neurons), one Y (``out:burst->h1``) and one Q (``out:event->h1``).
Its weights are chosen so that every event rate is a number you can read: with x = [1, 2],

    h1:  v_B = [[1, −0.5], [0.5, 0]] x + [0, ln 3 − 0.5] = [0, ln 3]   →  e = [1/2, 3/4]
    out: v_B = [[2, 0], [0, 4]] e_h1 + [−1, −3 − ln 3]     = [0, −ln 3]  →  e = [1/2, 1/4]

and the sigmoid of any other argument is left to torch, its argument written out. The
comparison of the whole training step with the public code, step by step, is
``scripts/twin_burstccn.py``; these tests never import that code.
"""
from __future__ import annotations

import math

import pytest
import torch

from conftest import build, model, present

LN3 = math.log(3.0)
X = [1.0, 2.0]
W_IN, B_IN = [[1.0, -0.5], [0.5, 0.0]], [0.0, LN3 - 0.5]
W_OUT, B_OUT = [[2.0, 0.0], [0.0, 4.0]], [-1.0, -3.0 - LN3]
Y = [[1.0, 2.0], [-1.0, 0.0]]  # dendrisim's layout [n_h1, n_out]: v_A = Y b_out + W_Q e_out
E_H1, E_OUT = [0.5, 0.75], [0.5, 0.25]

TINY = {
    "name": "tiny_burst_equations",
    "task": {"type": "classification", "dataset": "digits", "batch_size": 2},
    "populations": {
        "input": {"type": "input", "size": "auto"},
        "h1": {"type": "burst", "size": 2, "activation": "sigmoid"},
        "out": {"type": "burst", "size": "auto", "activation": "sigmoid"},
    },
    "projections": [
        {"from": "input", "to": "h1"},
        {"from": "h1", "to": "out"},
        {"from": "out", "to": "h1", "compartment": "apical", "reads": "burst"},
        {"from": "out", "to": "h1", "compartment": "apical", "reads": "event", "learnable": True},
    ],
    "plasticity": {"rule": "burstccn"},
    "optimizer": {"type": "sgd", "lr": 1.0},
    "training": {"epochs": 1, "seed": 0},
}


def t(rows) -> torch.Tensor:
    return torch.tensor(rows, dtype=torch.float64)


def tiny(*overrides: str, base: dict = TINY):
    """The tiny network with the hand-picked weights (Q as the rule's ``cancel`` sets it)."""
    exp = model(list(overrides), base=base)
    net, rule = build(exp, input_shape=(2,), output_size=2)
    with torch.no_grad():
        for name, w, b in (("input->h1", W_IN, B_IN), ("h1->out", W_OUT, B_OUT)):
            net.projections[name].weight.copy_(t(w))
            net.projections[name].bias.copy_(t(b))
        net.projections["out:burst->h1"].weight.copy_(t(Y))
        if "out:event->h1" in net.projections:  # cancel: symmetric, W_Q = −p_b Y (set again: Y was just written)
            net.projections["out:event->h1"].weight.copy_(t(Y) * -0.5)
    return exp, net, rule


def settle(exp, net, rule, x, target):
    net.zero_grad(set_to_none=True)
    net(t(x))
    return present(net, rule, None if target is None else t(target), exp).state


def test_the_event_rates_are_the_chosen_ones():
    exp, net, rule = tiny()
    s = settle(exp, net, rule, [X], [[1.0, 0.0]])
    torch.testing.assert_close(s["h1"].event, t([E_H1]))
    torch.testing.assert_close(s["out"].event, t([E_OUT]))
    assert s["h1"].event is s["h1"].rate


def test_output_burst_probability_is_set_by_the_target():
    """p = p_b ((t − e)(1 − e) + 1), b = p e, error = b − p_b e, v_A = t − e (p_b = 1/2)."""
    exp, net, rule = tiny()
    s = settle(exp, net, rule, [X], [[1.0, 0.0]])
    # neuron 1: t 1, e 1/2: p = ½ (½ · ½ + 1) = 0.625;   neuron 2: t 0, e 1/4: p = ½ (−¼ · ¾ + 1) = 0.40625
    torch.testing.assert_close(s["out"].burst_prob, t([[0.625, 0.40625]]))
    torch.testing.assert_close(s["out"].burst, t([[0.3125, 0.1015625]]))  # p e
    # b − ½ e = [0.3125 − 0.25, 0.1015625 − 0.125]
    torch.testing.assert_close(s["out"].error, t([[0.0625, -0.0234375]]))
    torch.testing.assert_close(s["out"].apical, t([[0.5, -0.25]]))  # t − e


def test_output_without_teacher_bursts_at_the_baseline():
    exp, net, rule = tiny("populations.out.baseline=0.25")
    s = settle(exp, net, rule, [X], None)
    torch.testing.assert_close(s["out"].burst_prob, t([[0.25, 0.25]]))
    torch.testing.assert_close(s["out"].burst, t([[0.125, 0.0625]]))
    torch.testing.assert_close(s["out"].error, t([[0.0, 0.0]]))


def test_hidden_apical_potential_and_burst_probability():
    """v_A = Y b_above − Q e_above (W_Q = −½ Y), p = σ(4 v_A (1 − e)), b = p e."""
    exp, net, rule = tiny()
    s = settle(exp, net, rule, [X], [[1.0, 0.0]])
    # v_A = Y b − ½ Y e = Y (b − ½ e) = [[1, 2], [−1, 0]] [0.0625, −0.0234375] = [0.015625, −0.0625]
    torch.testing.assert_close(s["h1"].apical, t([[0.015625, -0.0625]]))
    # 4 v_A (1 − e): [4 · 0.015625 · ½, 4 · (−0.0625) · ¼] = [0.03125, −0.0625]
    p = torch.sigmoid(t([[0.03125, -0.0625]]))
    torch.testing.assert_close(s["h1"].burst_prob, p)
    torch.testing.assert_close(s["h1"].burst, p * t([E_H1]))
    torch.testing.assert_close(s["h1"].error, (p - 0.5) * t([E_H1]))


def test_burst_gain_offset_and_gate_options():
    """p = σ(β v_A (1 − e) + θ) with θ = logit(p_b), or σ(β v_A + θ) with gate false."""
    exp, net, rule = tiny("populations.h1.burst_gain=2.0", "populations.h1.baseline=0.25")
    s = settle(exp, net, rule, [X], [[1.0, 0.0]])
    # 2 v_A (1 − e) + log(¼ / ¾): [2 · 0.015625 · ½, 2 · (−0.0625) · ¼] = [0.015625, −0.03125], − log 3
    theta = -torch.log(t(3.0))
    torch.testing.assert_close(s["h1"].burst_prob, torch.sigmoid(t([[0.015625, -0.03125]]) + theta))
    torch.testing.assert_close(s["h1"].error, (s["h1"].burst_prob - 0.25) * t([E_H1]))
    exp, net, rule = tiny("populations.h1.gate=false")
    s = settle(exp, net, rule, [X], [[1.0, 0.0]])
    # 4 v_A: [0.0625, −0.25]
    torch.testing.assert_close(s["h1"].burst_prob, torch.sigmoid(t([[0.0625, -0.25]])))


def test_burstccn_basal_update_is_the_burst_deviation_times_the_presynaptic_event_rate():
    """One SGD step at lr 1: ΔW = (b − p_b e) e_preᵀ, Δbias = b − p_b e (batch of one)."""
    exp, net, rule = tiny()
    settle(exp, net, rule, [X], [[1.0, 0.0]])
    out = net.projections["h1->out"]
    # (b − ½ e)_out = [0.0625, −0.0234375], e_h1 = [½, ¾]
    torch.testing.assert_close(-out.weight.grad, t([[0.03125, 0.046875], [-0.01171875, -0.017578125]]))
    torch.testing.assert_close(-out.bias.grad, t([0.0625, -0.0234375]))
    hidden = net.projections["input->h1"]
    err = (torch.sigmoid(t([0.03125, -0.0625])) - 0.5) * t(E_H1)  # (p − ½) e of h1
    torch.testing.assert_close(-hidden.weight.grad, torch.outer(err, t(X)))  # x = [1, 2]
    torch.testing.assert_close(-hidden.bias.grad, err)


def test_burstccn_update_is_the_mean_over_the_batch():
    """Two samples, the same x, targets [1, 0] and [0, 1]: the output's b − ½ e is
    [0.0625, −0.0234375] and [−0.0625, 0.0703125] (second: p = ½ (−½ · ½ + 1) = 0.375,
    b = 0.1875; p = ½ (¾ · ¾ + 1) = 0.78125, b = 0.1953125); the mean is [0, 0.0234375]."""
    exp, net, rule = tiny()
    s = settle(exp, net, rule, [X, X], [[1.0, 0.0], [0.0, 1.0]])
    torch.testing.assert_close(s["out"].error, t([[0.0625, -0.0234375], [-0.0625, 0.0703125]]))
    out = net.projections["h1->out"]
    torch.testing.assert_close(-out.weight.grad, t([[0.0, 0.0], [0.01171875, 0.017578125]]))  # mean ⊗ [½, ¾]
    torch.testing.assert_close(-out.bias.grad, t([0.0, 0.0234375]))


def test_burstccn_q_learns_to_silence_the_apical_dendrite():
    """W_Q.grad = v_A e_outᵀ / batch (the presynaptic event rate), so SGD moves W_Q by
    −lr v_A e_outᵀ: in the public code's Q (= −W_Qᵀ), Q += lr e_outᵀ v_A. Y is fixed."""
    exp, net, rule = tiny()
    settle(exp, net, rule, [X], [[1.0, 0.0]])
    q = net.projections["out:event->h1"]
    # v_A = [0.015625, −0.0625], e_out = [½, ¼]
    torch.testing.assert_close(q.weight.grad, t([[0.0078125, 0.00390625], [-0.03125, -0.015625]]))
    assert q.bias is None
    assert net.projections["out:burst->h1"].weight.grad is None  # Y fixed


def test_learnable_y_learns_from_the_presynaptic_event_rate():
    """As the public code: Y's update is v_A e_outᵀ too (the event rate, not the burst rate)."""
    exp, net, rule = tiny("projections.2.learnable=true")
    settle(exp, net, rule, [X], [[1.0, 0.0]])
    torch.testing.assert_close(net.projections["out:burst->h1"].weight.grad,
                               t([[0.0078125, 0.00390625], [-0.03125, -0.015625]]))


def test_one_training_step_moves_the_weights_by_lr_times_the_update():
    """The optimizer (SGD, lr 1, Q's lr_scale 0.1) applies the .grad written above."""
    exp, net, rule = tiny("projections.3.lr_scale=0.1")
    from dendrisim.optim import build_optimizer

    opt = build_optimizer(net, rule, exp.config.optimizer, exp.config.training.phases)
    settle(exp, net, rule, [X], [[1.0, 0.0]])
    opt.step()
    torch.testing.assert_close(net.projections["h1->out"].weight,
                               t(W_OUT) + t([[0.03125, 0.046875], [-0.01171875, -0.017578125]]))
    torch.testing.assert_close(net.projections["out:event->h1"].weight,
                               t(Y) * -0.5 - 0.1 * t([[0.0078125, 0.00390625], [-0.03125, -0.015625]]))


def test_symmetric_q_cancels_the_apical_input_exactly_without_a_teacher():
    """cancel: symmetric sets W_Q = −p_b Y; without a teacher b_out = p_b e_out, so v_A = 0
    whatever Y: p = σ(0) = ½ = p_b, no burst deviation, and nothing learns."""
    exp = model([], base=TINY)
    net, rule = build(exp, input_shape=(2,), output_size=2)  # Y as its init draws it, Q as the rule sets it
    y = net.projections["out:burst->h1"].weight
    assert torch.count_nonzero(y) == 4
    torch.testing.assert_close(net.projections["out:event->h1"].weight, -0.5 * y, rtol=0, atol=0)
    s = settle(exp, net, rule, [X, [-3.0, 0.5]], None)
    assert torch.equal(s["h1"].apical, torch.zeros(2, 2, dtype=torch.float64))  # ½ is exact in binary
    torch.testing.assert_close(s["h1"].burst_prob, torch.full((2, 2), 0.5, dtype=torch.float64), rtol=0, atol=0)
    assert torch.count_nonzero(s["h1"].error) == 0
    for proj in net.projections.values():
        if proj.weight.grad is not None:
            assert torch.count_nonzero(proj.weight.grad) == 0, proj.name


def test_given_q_does_not_cancel():
    """cancel: given keeps the Q projection's own init: v_A without a teacher is then not 0."""
    exp, net, rule = tiny("plasticity.cancel=given")
    with torch.no_grad():
        net.projections["out:event->h1"].weight.zero_()
    s = settle(exp, net, rule, [X], None)
    # v_A = Y (½ e_out) = [[1, 2], [−1, 0]] [0.25, 0.125] = [0.5, −0.25]
    torch.testing.assert_close(s["h1"].apical, t([[0.5, -0.25]]))


BURSTPROP = {**TINY, "name": "tiny_burstprop", "projections": TINY["projections"][:3],
             "plasticity": {"rule": "burstprop"}}


def test_burstprop_update_is_the_taught_minus_the_free_burst_rate():
    """ΔW = (b_taught − b_free) e_preᵀ. Output: b_free = ½ e, so it is b − ½ e again; h1
    (no Q): v_A = Y b_out, taught Y [0.3125, 0.1015625] = [0.515625, −0.3125], free
    Y [0.25, 0.125] = [0.5, −0.25]; p = σ(4 v_A (1 − e))."""
    exp, net, rule = tiny(base=BURSTPROP)
    s = settle(exp, net, rule, [X], [[1.0, 0.0]])
    torch.testing.assert_close(s["h1"].apical, t([[0.515625, -0.3125]]))
    torch.testing.assert_close(s.free["h1"].apical, t([[0.5, -0.25]]))
    out = net.projections["h1->out"]
    torch.testing.assert_close(-out.weight.grad, t([[0.03125, 0.046875], [-0.01171875, -0.017578125]]))
    # 4 v_A (1 − e): taught [4 · 0.515625 · ½, 4 · (−0.3125) · ¼] = [1.03125, −0.3125], free [1, −0.25]
    db = (torch.sigmoid(t([1.03125, -0.3125])) - torch.sigmoid(t([1.0, -0.25]))) * t(E_H1)
    hidden = net.projections["input->h1"]
    torch.testing.assert_close(-hidden.weight.grad, torch.outer(db, t(X)))
    torch.testing.assert_close(-hidden.bias.grad, db)
    assert net.projections["out:burst->h1"].weight.grad is None


@pytest.mark.parametrize("feedback", ["symmetric", "tied"])
def test_symmetric_and_tied_feedback_take_the_forward_weights_transpose(feedback):
    """feedback symmetric: Y = W_outᵀ at the start; tied: again after every update; Q
    (cancel: symmetric) = −½ Y at the start."""
    from dendrisim.optim import build_optimizer

    exp = model([f"plasticity.feedback={feedback}", "plasticity.feedback_scale=2.0"], base=TINY)
    net, rule = build(exp, input_shape=(2,), output_size=2)
    w = net.projections["h1->out"].weight
    torch.testing.assert_close(net.projections["out:burst->h1"].weight, 2.0 * w.t())
    torch.testing.assert_close(net.projections["out:event->h1"].weight, -1.0 * w.t())
    opt = build_optimizer(net, rule, exp.config.optimizer, exp.config.training.phases)
    settle(exp, net, rule, [X], [[1.0, 0.0]])
    before = w.detach().clone()
    opt.step()
    rule.after_update(net)
    assert not torch.equal(w, before)
    y = net.projections["out:burst->h1"].weight
    if feedback == "tied":
        torch.testing.assert_close(y, 2.0 * w.t())
    else:
        torch.testing.assert_close(y, 2.0 * before.t())
