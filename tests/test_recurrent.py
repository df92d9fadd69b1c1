"""Recurrent networks unrolled in time: the rules through time against an independent
plain-torch unrolling differentiated by autograd, and DLL on a hand-checked two-step case."""
import copy

import numpy as np
import pytest
import torch

from conftest import MLP, build, model, present
from dendrisim.errors import ConfigError
from dendrisim.losses import output_loss
from dendrisim.plasticity import RULES
from test_equivalence import rule_grads


def rnn(rule="bp", *, loop=False, out_act="softmax", hidden_act="tanh", extra=()):
    """input -> h1 (self-recurrent) -> out; with ``loop`` also h1 -> h2 -> out and h2 -> h1 delayed."""
    base = copy.deepcopy(MLP)
    pops = {"input": {"type": "input", "size": "auto"}, "h1": {"size": 6, "activation": hidden_act},
            "out": {"size": "auto", "activation": out_act}}
    init = {"normal": {"std": 0.5}}
    projs = [{"from": "input", "to": "h1", "init": init},
             {"from": "h1", "to": "h1", "kind": "recurrent", "init": init},
             {"from": "h1", "to": "out", "init": init}]
    if loop:
        pops["h2"] = {"size": 4, "activation": hidden_act}
        projs += [{"from": "h1", "to": "h2", "init": init}, {"from": "h2", "to": "h1", "kind": "recurrent", "init": init},
                  {"from": "h2", "to": "out", "init": init}, {"from": "input", "to": "h2", "init": init}]
    base.update(populations=pops, projections=projs, plasticity={"rule": rule})
    return model(list(extra), base=base)


def reference_forward(net, x, *, truncate=None):
    """Plain torch, one time step at a time, no in-place work: rates per step per population.
    With ``truncate=k`` the recurrent input at step t is detached where t is a multiple of k."""
    T = x.shape[1]
    rates = {}
    for t in range(T):
        rates[t] = {net.input_name: x[:, t]}
        for name in net.order:
            pop = net.populations[name]
            total = 0
            for proj in net.incoming[name]:
                if proj.kind == "recurrent":
                    if t == 0:
                        r = torch.zeros(x.shape[0], net.populations[proj.source].size, dtype=x.dtype)
                    else:
                        r = rates[t - 1][proj.source]
                        if truncate and t % truncate == 0:
                            r = r.detach()
                else:
                    r = rates[t][proj.source]
                total = total + r.flatten(1) @ proj.weight.t() + (proj.bias if proj.bias is not None else 0)
            rates[t][name] = total if name == net.output_name else pop.activation.f(total)
    return rates


def reference_grads(net, x, t, readout, *, truncate=None):
    params = dict(net.named_parameters())
    with torch.enable_grad():
        rates = reference_forward(net, x, truncate=truncate)
        steps = range(x.shape[1])[readout]
        soma = torch.stack([rates[s][net.output_name] for s in steps])
        kind = net.output.activation.canonical_loss
        if kind == "cross_entropy":
            loss = -(t * torch.log_softmax(soma, -1)).sum(-1).mean()
        else:
            loss = 0.5 * (t - net.output.activation.f(soma)).pow(2).sum(-1).mean()
        grads = torch.autograd.grad(loss, list(params.values()))
    return dict(zip(params, grads)), soma


def target(out_act, steps, batch, n, gen):
    if out_act == "softmax":
        return torch.eye(n, dtype=torch.float64)[torch.randint(0, n, (steps, batch), generator=gen)]
    return torch.randn(steps, batch, n, generator=gen, dtype=torch.float64)


CASES = [  # loop, output activation, readout, T, batch
    (False, "softmax", slice(None), 5, 3),
    (True, "softmax", slice(None), 4, 2),
    (False, "linear", slice(-1, None), 6, 4),  # forecasting: only the last step is taught
    (True, "linear", slice(2, None), 5, 1),
]


@pytest.mark.parametrize("loop,out_act,readout,T,batch", CASES)
def test_bp_is_backprop_through_time(loop, out_act, readout, T, batch):
    gen = torch.Generator().manual_seed(T * 10 + batch)
    net, rule = build(rnn("bp", loop=loop, out_act=out_act), input_shape=(5,), output_size=3, readout=readout)
    assert net.sequential and net.readout == readout
    x = torch.randn(batch, T, 5, generator=gen, dtype=torch.float64)
    steps = len(range(T)[readout])
    t = target(out_act, steps, batch, 3, gen)
    expected, soma = reference_grads(net, x, t, readout)
    got = rule_grads(net, rule, x, t)
    torch.testing.assert_close(net.last_state.output.soma[readout], soma.detach())  # the same unrolling
    for name in expected:
        torch.testing.assert_close(got[name], expected[name], rtol=1e-10, atol=1e-12, msg=name)
    with torch.no_grad():  # and the loss dendrisim reports is the one differentiated
        net(x)
        loss = output_loss(net.output, net.last_state.output, t, readout)
        assert abs(float(loss) - float(reference_loss(net, x, t, readout))) < 1e-10


def reference_loss(net, x, t, readout):
    rates = reference_forward(net, x)
    soma = torch.stack([rates[s][net.output_name] for s in range(x.shape[1])[readout]])
    if net.output.activation.canonical_loss == "cross_entropy":
        return -(t * torch.log_softmax(soma, -1)).sum(-1).mean()
    return 0.5 * (t - soma).pow(2).sum(-1).mean()


@pytest.mark.parametrize("k", [1, 2, 3])
def test_truncated_bptt_equals_autograd_with_the_state_detached_at_block_edges(k):
    gen = torch.Generator().manual_seed(k)
    net, rule = build(rnn("bp", loop=True, extra=[f"plasticity.truncate={k}"]), input_shape=(5,), output_size=3)
    x = torch.randn(2, 7, 5, generator=gen, dtype=torch.float64)
    t = target("softmax", 7, 2, 3, gen)
    expected, _ = reference_grads(net, x, t, slice(None), truncate=k)
    got = rule_grads(net, rule, x, t)
    for name in expected:
        torch.testing.assert_close(got[name], expected[name], rtol=1e-10, atol=1e-12, msg=name)


def _twin(rule, feedback_of, **kw):
    from test_equivalence import transposed_twin

    return transposed_twin(rnn(rule, **kw), rnn("bp", **kw), feedback_of, input_shape=(5,), output_size=3)


@pytest.mark.parametrize("loop", [False, True])
def test_fa_with_transposed_feedback_is_bptt_and_dll_twice_that(loop):
    gen = torch.Generator().manual_seed(9)
    x = torch.randn(3, 5, 5, generator=gen, dtype=torch.float64)
    t = target("softmax", 5, 3, 3, gen)
    fa_net, fa, bp_net, bp = _twin("fa", lambda r: r.feedback, loop=loop)
    f, b = rule_grads(fa_net, fa, x, t), rule_grads(bp_net, bp, x, t)
    for name in b:
        torch.testing.assert_close(f[name], b[name], rtol=1e-12, atol=1e-14, msg=name)
    dll_net, dll, bp_net, bp = _twin("dll", lambda r: r.theta, loop=loop)
    assert set(dll.theta) >= {"h1->h1", "h1->out"}  # one θ for the recurrent projection, one for the readout
    d, b = rule_grads(dll_net, dll, x, t), rule_grads(bp_net, bp, x, t)
    for name in b:
        torch.testing.assert_close(d[name], 2 * b[name], rtol=1e-10, atol=1e-13, msg=name)


def test_dll_through_time_on_a_hand_checked_two_step_example():
    """x(0), x(1) -> h (2 tanh neurons, self-recurrent) -> y (1 linear), both steps taught, σ = 0.5.

    a_h(1) = δ_y(1) θ_yᵀ / σ²              δ_h(1) = (1 − h(1)²) ⊙ a_h(1)
    a_h(0) = (δ_y(0) θ_yᵀ + δ_h(1) θ_hᵀ) / σ²   δ_h(0) = (1 − h(0)²) ⊙ a_h(0)
    ΔW_hh = c/(2B) δ_h(1)ᵀ h(0)              Δθ_hh = c/(2B) a_h(0)ᵀ δ_h(1)      (c = 2/σ²)
    ΔW_xh = c/(2B) Σ_t δ_h(t)ᵀ x(t)           Δθ_y = c/(2B) Σ_t a_h(t)ᵀ δ_y(t)
    """
    base = copy.deepcopy(MLP)
    base.update(populations={"input": {"type": "input", "size": "auto"}, "h": {"size": 2, "activation": "tanh"},
                             "y": {"size": "auto", "activation": "linear"}},
                projections=[{"from": "input", "to": "h", "bias": False}, {"from": "h", "to": "h", "kind": "recurrent",
                                                                            "bias": False},
                             {"from": "h", "to": "y", "bias": False}],
                plasticity={"rule": "dll", "sigma": 0.5})
    net, rule = build(model(base=base), input_shape=(1,), output_size=1)
    P = {"input->h": [[0.5], [-0.3]], "h->h": [[0.2, -0.4], [0.1, 0.3]], "h->y": [[0.7, -0.6]]}
    TH = {"h->h": [[0.3, 0.2], [-0.1, 0.4]], "h->y": [[0.5], [0.25]]}
    with torch.no_grad():
        for k, v in P.items():
            net.projections[k].weight.copy_(torch.tensor(v, dtype=torch.float64))
        for k, v in TH.items():
            rule.theta[k].copy_(torch.tensor(v, dtype=torch.float64))
    x = torch.tensor([[[1.0], [-2.0]]], dtype=torch.float64)  # B = 1, T = 2
    tgt = torch.tensor([[[0.4]], [[-0.2]]], dtype=torch.float64)
    g = rule_grads(net, rule, x, tgt)
    Wx, Wh, Wy = (np.array(P[k]) for k in ("input->h", "h->h", "h->y"))
    Th, Ty = np.array(TH["h->h"]), np.array(TH["h->y"])
    s2, c = 0.25, 2 / 0.25
    h0 = np.tanh(Wx @ [1.0])
    h1 = np.tanh(Wx @ [-2.0] + Wh @ h0)
    dy = np.array([0.4 - Wy @ h0, -0.2 - Wy @ h1]).reshape(2, 1)
    a1 = (dy[1] @ Ty.T) / s2
    d1 = (1 - h1**2) * a1
    a0 = (dy[0] @ Ty.T + d1 @ Th.T) / s2
    d0 = (1 - h0**2) * a0
    n = 2  # B × readout steps
    np.testing.assert_allclose(g["projections.h->h.weight"], -c / n * np.outer(d1, h0), rtol=1e-12)
    np.testing.assert_allclose(g["projections.input->h.weight"], -c / n * (np.outer(d0, [1.0]) + np.outer(d1, [-2.0])),
                               rtol=1e-12)
    np.testing.assert_allclose(g["projections.h->y.weight"], -c / n * (np.outer(dy[0], h0) + np.outer(dy[1], h1)),
                               rtol=1e-12)
    np.testing.assert_allclose(rule.theta["h->h"].grad, -c / n * np.outer(a0, d1), rtol=1e-12)
    np.testing.assert_allclose(rule.theta["h->y"].grad, -c / n * (np.outer(a0, dy[0]) + np.outer(a1, dy[1])),
                               rtol=1e-12)
    np.testing.assert_allclose(net.last_state["h"].apical[:, 0].numpy(), np.stack([a0, a1]), rtol=1e-12)


def test_recurrent_graph_validation_names_the_field():
    base = copy.deepcopy(MLP)
    base["projections"].append({"from": "h2", "to": "h1"})
    with pytest.raises(ConfigError, match=r"projections: the feedforward projections form a cycle \(h1 -> h2 -> h1\); "
                                          r"a loop needs at least one projection with kind: recurrent"):
        model(base=base)
    base["projections"][-1]["kind"] = "recurrent"
    assert model(base=base).config.projections[-1].kind == "recurrent"
    base["projections"][-1] = {"from": "h1", "to": "h1"}
    with pytest.raises(ConfigError, match=r"projections\[3\].kind: 'h1' projects onto itself in the same time step"):
        model(base=base)
    base["projections"][-1] = {"from": "input", "to": "h2", "kind": "recurrent"}
    with pytest.raises(ConfigError, match=r"projections\[3\].kind: a recurrent projection joins pyramidal"):
        model(base=base)
    base["projections"][-1] = {"from": "h2", "to": "h1", "kind": "recurrent", "connectivity": "conv2d", "kernel": 3}
    with pytest.raises(ConfigError, match=r"projections\[3\]: a recurrent projection is dense"):
        model(base=base)
    with pytest.raises(ConfigError, match=r"projections\[1\].kind: rule pc relaxes a feedforward network"):
        rnn("pc")


@pytest.mark.parametrize("rule", [r for r in RULES.names() if r != "pc" and RULES.get(r).family not in ("microcircuit", "burst")])
def test_every_rule_learns_to_recall_the_previous_input(rule):
    """Target at t is the one-hot input of t − 1: impossible without the recurrent projection.
    (The microcircuit's and the burst rules need explicit apical projections, which recurrent
    networks do not take.)"""
    net, r = build(rnn(rule, extra=["populations.h1.size=16"]), input_shape=(4,), output_size=4,
                   dtype=torch.float32)
    from dendrisim.optim import build_optimizer

    opt = build_optimizer(net, r, model(["optimizer.lr=0.02"]).config.optimizer)
    gen = torch.Generator().manual_seed(0)

    def batch():
        ids = torch.randint(0, 4, (32, 8), generator=gen)
        x = torch.nn.functional.one_hot(ids, 4).float()
        return x, x.transpose(0, 1)[:-1]

    net.readout = slice(1, None)

    def loss():
        x, t = batch()
        with torch.no_grad():
            net(x)
            return float(output_loss(net.output, net.last_state.output, t, net.readout))

    before = loss()
    for _ in range(300):
        x, t = batch()
        with torch.no_grad():
            net(x)
            present(net, r, t)
        opt.step()
    after = loss()
    assert after < 0.5 * before, (rule, before, after)
