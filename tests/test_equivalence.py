"""Tier 2: equivalences. bp equals autograd; fa with Wᵀ feedback equals bp; DLL with
θ = Wᵀ is 2/σ² · bp; a network with no apical input is nn.Linear + activation."""
import copy

import numpy as np
import pytest
import torch
from torch import nn

from conftest import MLP, build, model, present
from dendrisim.losses import output_loss


def random_model(rule: str, widths: list[int], act: str, out_act: str, *, skip: bool = False):
    base = copy.deepcopy(MLP)
    pops = {"input": {"type": "input", "size": "auto"}}
    names = [f"h{i}" for i in range(len(widths))]
    for name, w in zip(names, widths):
        pops[name] = {"type": "pyramidal", "size": w, "activation": act}
    pops["out"] = {"type": "pyramidal", "size": "auto", "activation": out_act}
    chain = ["input", *names, "out"]
    projs = [{"from": a, "to": b, "init": {"normal": {"std": 0.5}}} for a, b in zip(chain, chain[1:])]
    if skip and len(names) >= 2:  # a branch: the input also drives the second hidden population
        projs.append({"from": "input", "to": names[1], "init": {"normal": {"std": 0.5}}})
    base.update(populations=pops, projections=projs, plasticity={"rule": rule})
    return model(base=base)


def transposed_twin(exp, bp_exp, feedback_of, **shapes):
    """The rule's network with its feedback set to Wᵀ, and a bp network with the same weights."""
    net, rule = build(exp, **shapes)
    bp_net, bp = build(bp_exp, **shapes)
    bp_net.load_state_dict(net.state_dict())
    with torch.no_grad():
        for name, fb in feedback_of(rule).items():
            fb.copy_(net.projections[name].transported())
    return net, rule, bp_net, bp


def autograd_grads(net, x, t):
    for p in net.parameters():
        p.grad = None
    with torch.enable_grad():
        net(x)
        output_loss(net.output, net.last_state.output, t).backward()
    return {n: p.grad.clone() for n, p in net.named_parameters()}


def rule_grads(net, rule, x, t):
    for p in net.parameters():
        p.grad = None
    with torch.no_grad():
        net(x)
        present(net, rule, t)
    return {n: p.grad.clone() for n, p in net.named_parameters()}


def target_for(out_act, batch, n, gen):
    if out_act == "softmax":
        return torch.eye(n, dtype=torch.float64)[torch.randint(0, n, (batch,), generator=gen)]
    if out_act == "sigmoid":
        return torch.rand(batch, n, generator=gen, dtype=torch.float64)
    return torch.randn(batch, n, generator=gen, dtype=torch.float64)


CASES = [
    ([7], "tanh", "softmax", 1, False),
    ([9, 6], "tanh", "softmax", 4, False),
    ([9, 6, 5], "sigmoid", "linear", 16, False),
    ([8, 8], "relu", "sigmoid", 7, True),
    ([6, 5], "leaky_relu", "tanh", 3, True),
    ([10, 4, 6], "tanh", "relu", 32, True),
]


@pytest.mark.parametrize("widths,act,out_act,batch,skip", CASES)
def test_bp_equals_autograd(widths, act, out_act, batch, skip):
    gen = torch.Generator().manual_seed(len(widths) * 100 + batch)
    exp = random_model("bp", widths, act, out_act, skip=skip)
    net, rule = build(exp, input_shape=(5,), output_size=3)
    x = torch.randn(batch, 5, generator=gen, dtype=torch.float64)
    t = target_for(out_act, batch, 3, gen)
    expected = autograd_grads(net, x, t)
    got = rule_grads(net, rule, x, t)
    assert expected.keys() == got.keys()
    for name in expected:
        torch.testing.assert_close(got[name], expected[name], rtol=1e-10, atol=1e-12, msg=name)


@pytest.mark.parametrize("widths,act,out_act,batch,skip", CASES[:4])
def test_fa_with_transposed_feedback_equals_bp(widths, act, out_act, batch, skip):
    gen = torch.Generator().manual_seed(7)
    fa_net, fa, bp_net, bp = transposed_twin(random_model("fa", widths, act, out_act, skip=skip),
                                             random_model("bp", widths, act, out_act, skip=skip), lambda r: r.feedback)
    x = torch.randn(batch, 5, generator=gen, dtype=torch.float64)
    t = target_for(out_act, batch, 3, gen)
    fa_g, bp_g = rule_grads(fa_net, fa, x, t), rule_grads(bp_net, bp, x, t)
    for name in bp_g:
        torch.testing.assert_close(fa_g[name], bp_g[name], rtol=1e-12, atol=1e-14, msg=name)


@pytest.mark.parametrize("sigma", [1.0, 0.5, 2.0])
def test_dll_with_transposed_theta_is_scaled_bp(sigma):
    """With θ = Wᵀ and σ = 1 DLL is 2× backprop; for other σ the hidden errors gain 1/σ²
    per layer, so we compare the top projection (gain 2/σ²) and the next one (2/σ⁴)."""
    gen = torch.Generator().manual_seed(3)
    exp = random_model("dll", [6, 4], "tanh", "softmax")
    exp = model([f"plasticity.sigma={sigma}"], base=exp.to_dict())
    dll_net, dll, bp_net, bp = transposed_twin(exp, random_model("bp", [6, 4], "tanh", "softmax"), lambda r: r.theta)
    x = torch.randn(8, 5, generator=gen, dtype=torch.float64)
    t = target_for("softmax", 8, 3, gen)
    d, b = rule_grads(dll_net, dll, x, t), rule_grads(bp_net, bp, x, t)
    s2 = sigma**2
    gains = {"projections.h1->out": 2 / s2, "projections.h0->h1": 2 / s2**2, "projections.input->h0": 2 / s2**3}
    for prefix, gain in gains.items():
        for suffix in (".weight", ".bias"):
            torch.testing.assert_close(d[prefix + suffix], gain * b[prefix + suffix], rtol=1e-10, atol=1e-14)


def test_theta_update_equals_equation_on_random_network():
    """Δθ = (2/σ²) a_preᵀ δ_post / B, checked with numpy on a random two-hidden-layer network."""
    exp = model(["plasticity.sigma=1.5"], base=random_model("dll", [6, 4], "tanh", "softmax").to_dict())
    net, rule = build(exp)
    gen = torch.Generator().manual_seed(11)
    x = torch.randn(9, 5, generator=gen, dtype=torch.float64)
    t = target_for("softmax", 9, 3, gen)
    rule_grads(net, rule, x, t)
    P = {n: p.detach().numpy() for n, p in net.named_parameters()}
    th = {n: p.detach().numpy() for n, p in rule.theta.items()}
    s2 = 1.5**2
    r0 = np.tanh(x.numpy() @ P["projections.input->h0.weight"].T + P["projections.input->h0.bias"])
    r1 = np.tanh(r0 @ P["projections.h0->h1.weight"].T + P["projections.h0->h1.bias"])
    z = r1 @ P["projections.h1->out.weight"].T + P["projections.h1->out.bias"]
    y = np.exp(z - z.max(1, keepdims=True))
    y /= y.sum(1, keepdims=True)
    d_out = t.numpy() - y
    a1 = d_out @ th["h1->out"].T / s2
    d1 = (1 - r1**2) * a1
    a0 = d1 @ th["h0->h1"].T / s2
    np.testing.assert_allclose(rule.theta["h1->out"].grad.numpy(), -(2 / s2) * a1.T @ d_out / 9, rtol=1e-10)
    np.testing.assert_allclose(rule.theta["h0->h1"].grad.numpy(), -(2 / s2) * a0.T @ d1 / 9, rtol=1e-10)
    np.testing.assert_allclose(net.projections["h0->h1"].weight.grad.numpy(), -(2 / s2) * d1.T @ r0 / 9, rtol=1e-10)


@pytest.mark.parametrize("act", ["tanh", "sigmoid", "relu", "linear"])
def test_network_without_apical_input_equals_linear_stack(act):
    exp = random_model("dll", [7, 4], act, "softmax")
    net, _ = build(exp)
    ref = nn.Sequential(nn.Linear(5, 7), _act(act), nn.Linear(7, 4), _act(act), nn.Linear(4, 3), nn.Softmax(1)).double()
    for lin, name in zip([ref[0], ref[2], ref[4]], ["input->h0", "h0->h1", "h1->out"]):
        lin.load_state_dict(net.projections[name].state_dict())
    x = torch.randn(6, 5, dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(net(x), ref(x), rtol=1e-12, atol=1e-14)
        torch.testing.assert_close(net.last_state["h0"].rate, ref[:2](x), rtol=1e-12, atol=1e-14)


def _act(name):
    return {"tanh": nn.Tanh(), "sigmoid": nn.Sigmoid(), "relu": nn.ReLU(), "linear": nn.Identity()}[name]


def test_kp_with_transposed_feedback_and_no_decay_equals_bp():
    gen = torch.Generator().manual_seed(5)
    exp = model(["plasticity.decay=0"], base=random_model("kp", [7, 5], "tanh", "softmax", skip=True).to_dict())
    kp_net, kp, bp_net, bp = transposed_twin(exp, random_model("bp", [7, 5], "tanh", "softmax", skip=True),
                                             lambda r: r.feedback)
    x = torch.randn(6, 5, generator=gen, dtype=torch.float64)
    t = target_for("softmax", 6, 3, gen)
    k, b = rule_grads(kp_net, kp, x, t), rule_grads(bp_net, bp, x, t)
    for name in b:
        torch.testing.assert_close(k[name], b[name], rtol=1e-12, atol=1e-14, msg=name)
    for name, B in kp.feedback.items():  # B learns the transposed forward update
        torch.testing.assert_close(B.grad, kp_net.projections[name].weight.grad.t())


@pytest.mark.parametrize("out_act", ["linear", "softmax"])
def test_pc_approaches_bp_for_a_small_output_error(out_act):
    """With the output error scaled down to 1e-4 and 400 relaxation steps, predictive
    coding's updates match backprop's to 1% (relative), hidden layers included."""
    exp = model(["plasticity={rule: pc, inference_steps: 400, inference_lr: 0.2, tolerance: 0, error_scale: 1.0e-4}"],
                base=random_model("pc", [6, 4], "tanh", out_act).to_dict())
    pc_net, pc = build(exp)
    bp_net, bp = build(random_model("bp", [6, 4], "tanh", out_act))
    bp_net.load_state_dict(pc_net.state_dict())
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(5, 5, generator=gen, dtype=torch.float64)
    t = target_for(out_act, 5, 3, gen)
    p, b = rule_grads(pc_net, pc, x, t), rule_grads(bp_net, bp, x, t)
    for name in b:
        rel = float((p[name] - b[name]).norm() / b[name].norm())
        assert rel < 1e-2, (name, rel)
    # with the full error (γ = 1) the relaxed state moves away from the feedforward pass
    full = model(["plasticity={rule: pc, inference_steps: 400, inference_lr: 0.2, tolerance: 0}"], base=exp.to_dict())
    full_net, full_pc = build(full)
    full_net.load_state_dict(pc_net.state_dict())
    p = rule_grads(full_net, full_pc, x, t)
    rel = float((p["projections.input->h0.weight"] - b["projections.input->h0.weight"]).norm()
                / b["projections.input->h0.weight"].norm())
    assert rel > 0.05


def old_pc_relax(network, rule, target):
    """pc's relaxation as the rule ran it before the settling scheme took it over (#22),
    copied literally: every step recomputes every prediction (the input's drive included),
    f and f' anew for each use, and a host sync per population for the tolerance."""
    from dendrisim.losses import output_error

    o = rule.options
    state = network.last_state

    def predict(x):
        mu = {}
        for name in network.order:
            total = None
            for proj in network.incoming[name]:
                pre = network.populations[proj.source]
                rate = pre.activation.f(x[proj.source]) if proj.source in x else state[proj.source].rate
                d = proj.drive(rate)
                total = d if total is None else total + d
            mu[name] = total.reshape(-1, *network.populations[name].shape)
        return mu

    def errors(x, mu):
        out, s = network.output, state.output
        s.soma = s.basal = mu[out.name]
        s.rate = out.activation.f(s.soma)
        s.apical = target.view_as(s.rate) - s.rate
        eps = {out.name: output_error(out, s) * o.error_scale}
        for pop in network.hidden():
            eps[pop.name] = x[pop.name] - mu[pop.name]
        return eps

    def top_down(pop, eps):
        total = None
        for proj in network.outgoing[pop.name]:
            a = proj.carry_back(eps[proj.target], proj.transported())
            total = a if total is None else total + a
        return total

    hidden = list(network.hidden())
    x = {pop.name: state[pop.name].soma.clone() for pop in hidden}
    steps = 0
    for steps in range(1, o.inference_steps + 1):
        mu = predict(x)
        eps = errors(x, mu)
        change = 0.0
        for pop in hidden:
            dx = -eps[pop.name] + pop.activation.df(x[pop.name], pop.activation.f(x[pop.name])) * top_down(pop, eps)
            x[pop.name].add_(dx, alpha=o.inference_lr)
            change = max(change, float(dx.abs().max()) * o.inference_lr) if o.tolerance else change
        if o.tolerance and change < o.tolerance:
            break
    mu = predict(x)
    eps = errors(x, mu)
    state.output.error = eps[network.output_name]
    for pop in hidden:
        s = state[pop.name]
        s.soma, s.basal = x[pop.name], mu[pop.name]
        s.rate = pop.activation.f(s.soma)
        s.apical = top_down(pop, eps)
        s.error = eps[pop.name]
    rule.compute_updates(network, state)
    return steps


@pytest.mark.parametrize("out_act,skip,tolerance,widths,steps", [
    ("softmax", False, 0.0, [6, 4], 12), ("tanh", True, 0.02, [6, 4], 12), ("linear", True, 0.0, [6, 4], 12),
    ("softmax", True, 0.0, [6, 5, 4], 12), ("tanh", False, 0.0, [6, 5, 4, 3], 2)])
def test_pc_relaxation_drives_from_the_input_once_and_updates_as_before(out_act, skip, tolerance, widths, steps):
    """The settling scheme's relaxation of pc: the input's drive into the first hidden
    population is computed once per presentation (by the forward pass; its spy counts one
    call for forward and relaxation together, where the old loop made one per step), and
    every update, state and the step count equal the old loop's (copied above) to 1e-12,
    also where the errors have not yet spread down to the first hidden population (T = 2)."""
    spec = (f"plasticity={{rule: pc, inference_steps: {steps}, inference_lr: 0.2, tolerance: {tolerance}, "
            "error_scale: 0.5}")
    exp = model([spec], base=random_model("pc", widths, "tanh", out_act, skip=skip).to_dict())
    net, pc = build(exp)
    old_net, old_pc = build(exp)
    old_net.load_state_dict(net.state_dict())
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(5, 5, generator=gen, dtype=torch.float64)
    t = target_for(out_act, 5, 3, gen)
    first = net.projections["input->h0"]
    calls = []
    inner = first.drive
    first.drive = lambda rate: calls.append(1) or inner(rate)
    with torch.no_grad():
        for _ in range(2):  # twice: the second presentation starts from changed weights
            net(x)
            present(net, pc, t)
            old_net(x)
            old_steps = old_pc_relax(old_net, old_pc, t)
            assert len(calls) == 1, f"the input's drive was computed {len(calls)} times in one presentation"
            calls.clear()
            for (name, p), q in zip(net.named_parameters(), old_net.parameters()):
                torch.testing.assert_close(p.grad, q.grad, rtol=1e-12, atol=1e-12, msg=name)
                p.sub_(0.5 * p.grad)
                q.sub_(0.5 * q.grad)
            for pop, old in zip(net.pyramidal(), old_net.pyramidal()):
                for var in ("soma", "basal", "rate", "apical", "error"):
                    torch.testing.assert_close(getattr(pop, var), getattr(old, var), rtol=1e-12, atol=1e-12,
                                               msg=f"{pop.name}.{var}")
            assert pc.inference_counts[0] == old_steps * (pc.inference_counts[1])
            pc.inference_counts.zero_()
    assert tolerance == 0 or old_steps < steps, "the tolerance stops the relaxation early in this case"


@pytest.mark.parametrize("steps", [1, 2, 5])
def test_pc_relaxation_spreads_the_errors_down_one_population_per_step(steps):
    """From the forward state every hidden ε is zero, so in a chain the population d below
    the top hidden one first moves at step d + 1: before that its top-down product (zero)
    is not computed. The products counted: every moving population's per step, and every
    population's once at the relaxed state (its apical input)."""
    spec = f"plasticity={{rule: pc, inference_steps: {steps}, inference_lr: 0.2, tolerance: 0}}"
    net, pc = build(model([spec], base=random_model("pc", [6, 5, 4], "tanh", "softmax").to_dict()))
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(5, 5, generator=gen, dtype=torch.float64)
    t = target_for("softmax", 5, 3, gen)
    calls = []
    for proj in net.projections.values():
        proj.carry_back = (lambda inner: lambda *a: calls.append(1) or inner(*a))(proj.carry_back)
    with torch.no_grad():
        net(x)
        present(net, pc, t)
    depth = 3
    assert len(calls) == sum(max(0, steps - d) for d in range(depth)) + depth
    for pop in net.hidden():  # no population was skipped at the relaxed state
        assert pop.apical is not None and pop.apical.shape == pop.soma.shape
