"""Simulated compartments (``dynamics.mode: euler``): proofs against the steady state (its
limit), the closed-form relaxation of one population, and an outside integrator."""
import copy

import numpy as np
import pytest
import torch

from conftest import MLP, build, model, present
from dendrisim.builder import build_scheme
from dendrisim.errors import ConfigError
from dendrisim.training import RunOptions, Trainer


def mlp(hidden: list[int], activation: str, out_act: str, rule: str) -> dict:
    spec = copy.deepcopy(MLP)
    names = [f"h{i + 1}" for i in range(len(hidden))]
    spec["populations"] = {"input": {"type": "input", "size": "auto"},
                           **{n: {"size": s, "activation": activation} for n, s in zip(names, hidden)},
                           "out": {"size": "auto", "activation": out_act}}
    chain = ["input", *names, "out"]
    spec["projections"] = [{"from": a, "to": b, "init": {"normal": {"std": 0.3}}} for a, b in zip(chain, chain[1:])]
    spec["plasticity"] = {"rule": rule, **({"feedback_init": {"normal": {"std": 0.3}}} if rule != "bp" else {})}
    return spec


def euler_of(spec: dict, lam: float, steps: int, **extra) -> dict:
    """``spec`` under euler with no leak and nudging exactly ``lam`` (g_B = 1, g_A = λ/(1 − λ)),
    stepped at dt·g/τ = 1/2."""
    g_apical = lam / (1 - lam)
    out = copy.deepcopy(spec)
    out["dynamics"] = {"mode": "euler", "steps": steps, "dt": (1 - lam) / 2, "tau": 1.0, "g_leak": 0.0,
                       "g_basal": 1.0, "g_apical": g_apical, **extra}
    return out


def updates(spec: dict, x, t, state=None) -> tuple[dict, dict]:
    exp = model([], base=spec)
    net, rule = build(exp, input_shape=(x.shape[1],), output_size=t.shape[1])
    if state is not None:
        net.load_state_dict(state[0])
        rule.load_state_dict(state[1])
    net(x)
    present(net, rule, t, exp)
    grads = {f"net.{n}": p.grad.clone() for n, p in net.named_parameters() if p.grad is not None}
    grads.update({f"rule.{n}": p.grad.clone() for n, p in rule.named_parameters() if p.grad is not None})
    return grads, (net.state_dict(), rule.state_dict())


def relative_error(a: dict, b: dict) -> float:
    """‖a − b‖ / ‖b‖ over every update (weights, biases, feedback weights) together."""
    assert a.keys() == b.keys()
    diff = sum(float((a[k] - b[k]).pow(2).sum()) for k in b)
    return (diff / sum(float(b[k].pow(2).sum()) for k in b)) ** 0.5


#: smooth activations: at a kink (relu) the finite difference (f(u) − f(v̂))/λ straddles it
#: and the error is first order only once λ is small enough that no neuron does
CASES = [([7], "tanh", "softmax"), ([9, 6], "sigmoid", "linear"), ([8, 7, 5], "tanh", "sigmoid"),
         ([12, 4], "tanh", "tanh")]


@pytest.mark.parametrize("rule", ["dll", "bp", "fa"])
@pytest.mark.parametrize("hidden,activation,out_act", CASES)
def test_euler_updates_converge_to_the_steady_state_updates_first_order_in_lambda(rule, hidden, activation, out_act):
    torch.manual_seed(len(hidden) + ["dll", "bp", "fa"].index(rule))
    x = torch.randn(16, 5, dtype=torch.float64)
    t = torch.eye(3, dtype=torch.float64)[torch.randint(0, 3, (16,))]
    if out_act == "tanh":
        t = 0.8 * (2 * t - 1)
    spec = mlp(hidden, activation, out_act, rule)
    steady, state = updates(spec, x, t)
    errors = [relative_error(updates(euler_of(spec, lam, steps=150), x, t, state)[0], steady)
              for lam in (1e-1, 1e-2, 1e-3)]
    assert errors[2] < 1e-2, errors
    for coarse, fine in zip(errors, errors[1:]):  # ten times weaker nudging, about ten times closer
        assert 0.04 < fine / coarse < 0.25, errors


def test_the_steady_mode_is_the_default_and_unchanged_by_an_explicit_block():
    torch.manual_seed(0)
    x, t = torch.randn(8, 5, dtype=torch.float64), torch.eye(3, dtype=torch.float64)[torch.randint(0, 3, (8,))]
    spec = mlp([6, 4], "tanh", "softmax", "dll")
    plain, state = updates(spec, x, t)
    explicit = copy.deepcopy(spec)
    explicit["dynamics"] = {"mode": "steady", "steps": 3, "g_leak": 0.5}  # euler keys are inert under steady
    again, _ = updates(explicit, x, t, state)
    assert all(torch.equal(plain[k], again[k]) for k in plain)


def trajectory(spec: dict, x, t) -> tuple:
    """Network, rule and the kept trajectory of every sample of one presentation."""
    exp = model([], base=spec)
    net, rule = build(exp, input_shape=(x.shape[1],), output_size=t.shape[1])
    net(x)
    kept = present(net, rule, t, exp, capture=torch.arange(x.shape[0])).trajectory
    return net, rule, kept


def test_one_population_follows_the_closed_form_exponential_relaxation():
    """input -> out (linear): v_B and the teacher v_A = t − v̂_B are constant, so the soma
    relaxes from the free state v̂_B to v̂_B + λ v_A with rate g/τ: exactly
    (1 − dt·g/τ)^k per Euler step, and within O(dt) of exp(−g t/τ)."""
    spec = copy.deepcopy(MLP)
    spec["populations"] = {"input": {"type": "input", "size": "auto"}, "out": {"size": "auto", "activation": "linear"}}
    spec["projections"] = [{"from": "input", "to": "out"}]
    torch.manual_seed(1)
    x, t = torch.randn(4, 5, dtype=torch.float64), torch.randn(4, 3, dtype=torch.float64)
    errors = []
    for dt in (0.04, 0.02, 0.01):
        torch.manual_seed(2)  # the same weights for every dt
        steps = round(2.0 / dt)
        spec["dynamics"] = {"mode": "euler", "dt": dt, "steps": steps, "g_leak": 0.2, "g_basal": 1.0, "g_apical": 0.5,
                            "populations": {"out": {"tau": 2.0}}}
        net, _, kept = trajectory(spec, x, t)
        out = net.output
        c = out.compartments
        g, lam, a = c.total, c.nudging, c.attenuation
        v_hat = a * out.basal
        target = v_hat + lam * (t - v_hat)
        soma = kept["out"]["soma"]  # [samples, time, neurons]
        k = torch.arange(steps + 1, dtype=torch.float64)[None, :, None]
        discrete = target[:, None] + (v_hat - target)[:, None] * (1 - dt * g / 2.0) ** k
        torch.testing.assert_close(soma, discrete, rtol=1e-12, atol=1e-12)
        exact = target[:, None] + (v_hat - target)[:, None] * torch.exp(-g * k * dt / 2.0)
        errors.append(float((soma - exact).abs().max()))
        assert torch.equal(kept["out"]["basal"], out.basal[:, None].expand_as(soma))
    assert 1.8 < errors[0] / errors[1] < 2.2 and 1.8 < errors[1] / errors[2] < 2.2, errors


def errors_against_solve_ivp(mode: str, *, rtol: float = 1e-11, atol: float = 1e-13) -> list[float]:
    """The outside integrator: a small network's equations written out independently in
    numpy and integrated by solve_ivp (RK45, tolerances ``rtol``/``atol``), against the
    settling scheme ``mode`` at dt = 0.1, 0.05, 0.025; the largest difference of the somata
    at T for each dt. Also used by tests/test_schemes.py (a midpoint scheme)."""
    from scipy.integrate import solve_ivp

    spec = mlp([6, 5], "tanh", "softmax", "dll")
    spec["plasticity"]["sigma"] = 0.8
    torch.manual_seed(3)
    x = torch.randn(3, 5, dtype=torch.float64)
    t = torch.eye(3, dtype=torch.float64)[[0, 2, 1]]
    g_l, g_b, g_a, tau, T = 0.1, 1.0, 0.4, 1.5, 3.0
    base_net, base_rule = build(model([], base=spec), input_shape=(5,), output_size=3)
    W = {n: (p.weight.detach().numpy(), p.bias.detach().numpy()) for n, p in base_net.projections.items()}
    theta = {n: th.detach().numpy() for n, th in base_rule.theta.items()}
    X, Tt = x.numpy(), t.numpy()
    g = g_l + g_b + g_a
    a, lam, gain = g_b / g, g_a / g, 1 / 0.8**2
    sizes = [6, 5, 3]
    names = ["input->h1", "h1->h2", "h2->out"]

    def softmax(z):
        z = np.exp(z - z.max(1, keepdims=True))
        return z / z.sum(1, keepdims=True)

    def unpack(y):
        out, i = [], 0
        for n in sizes:
            out.append(y[i:i + 3 * n].reshape(3, n))
            i += 3 * n
        return out

    def rhs(_, y):
        u1, u2, u3 = unpack(y)
        vb1 = X @ W[names[0]][0].T + W[names[0]][1]
        vb2 = np.tanh(u1) @ W[names[1]][0].T + W[names[1]][1]
        vb3 = np.tanh(u2) @ W[names[2]][0].T + W[names[2]][1]
        e3 = (u3 - a * vb3) / lam                    # canonical softmax output
        va3 = Tt - softmax(a * vb3)
        e2 = (np.tanh(u2) - np.tanh(a * vb2)) / lam
        va2 = gain * e3 @ theta["h2->out"].T
        va1 = gain * e2 @ theta["h1->h2"].T
        du = [(-g_l * u + g_b * (vb - u) + g_a * (va - u)) / tau for u, vb, va in
              ((u1, vb1, va1), (u2, vb2, va2), (u3, vb3, va3))]
        return np.concatenate([d.ravel() for d in du])

    vb1 = X @ W[names[0]][0].T + W[names[0]][1]
    u1 = a * vb1
    u2 = a * (np.tanh(u1) @ W[names[1]][0].T + W[names[1]][1])
    u3 = a * (np.tanh(u2) @ W[names[2]][0].T + W[names[2]][1])
    y0 = np.concatenate([u1.ravel(), u2.ravel(), u3.ravel()])
    exact = solve_ivp(rhs, (0, T), y0, method="RK45", rtol=rtol, atol=atol).y[:, -1]
    errors = []
    for dt in (0.1, 0.05, 0.025):
        spec["dynamics"] = {"mode": mode, "dt": dt, "steps": round(T / dt), "tau": tau, "g_leak": g_l,
                            "g_basal": g_b, "g_apical": g_a}
        exp = model([], base=spec)
        net, rule = build(exp, input_shape=(5,), output_size=3)
        net.load_state_dict(base_net.state_dict())
        rule.load_state_dict(base_rule.state_dict())
        net(x)
        present(net, rule, t, exp)
        ours = np.concatenate([net.last_state[n].soma.numpy().ravel() for n in ("h1", "h2", "out")])
        errors.append(float(np.abs(ours - exact).max()))
    return errors


def test_a_small_network_matches_scipy_solve_ivp_to_first_order_in_dt():
    """The same equations written out independently in numpy, integrated by solve_ivp
    (RK45, tight tolerances): dendrisim's forward Euler is within O(dt) of it."""
    errors = errors_against_solve_ivp("euler")
    assert errors[-1] < 5e-3, errors
    assert 1.7 < errors[0] / errors[1] < 2.3 and 1.7 < errors[1] / errors[2] < 2.3, errors


def test_errors_reach_one_population_further_down_per_step():
    spec = euler_of(mlp([6, 5, 4], "tanh", "softmax", "bp"), 0.1, steps=4)
    torch.manual_seed(0)
    _, _, kept = trajectory(spec, torch.randn(3, 5, dtype=torch.float64), torch.eye(3, dtype=torch.float64)[[0, 1, 2]])
    # the free state has no error anywhere; the teacher moves the output's soma at step 1, and
    # each step the error appears one population lower (rounding leaves ~1e-17 before that)
    first_nonzero = {name: int((kept[name]["error"].abs().flatten(2).amax((0, 2)) > 1e-9).nonzero()[0])
                     for name in ("out", "h3", "h2", "h1")}
    assert first_nonzero == {"out": 1, "h3": 2, "h2": 3, "h1": 4}  # h1 at step 4: the depth, the fewest steps allowed


@pytest.mark.parametrize("rule", ["dll", "bp", "fa", "dfa", "kp"])
def test_online_plasticity_averages_the_updates_of_every_step(rule):
    """Step k of a presentation is the settled end of a presentation of k steps (the same
    start, the same equations), so the online average is the mean of those settled updates."""
    import dataclasses

    torch.manual_seed(0)
    x, t = torch.randn(8, 5, dtype=torch.float64), torch.eye(3, dtype=torch.float64)[torch.randint(0, 3, (8,))]
    spec = euler_of(mlp([6, 4], "tanh", "softmax", rule), 0.2, steps=6)
    _, state = updates(spec, x, t)
    online = copy.deepcopy(spec)
    online["dynamics"]["plasticity"] = "online"
    averaged, _ = updates(online, x, t, state)
    exp = model([], base=spec)
    net, rule_ = build(exp, input_shape=(5,), output_size=3)
    scheme = build_scheme(exp)
    total = None
    for k in range(1, 7):  # shorter than the depth too, which a model file may not ask for
        net.load_state_dict(state[0])
        rule_.load_state_dict(state[1])
        scheme.config = dataclasses.replace(scheme.config, steps=k)
        net(x)
        scheme.present(net, rule_, t)
        grads = {**{f"net.{n}": p.grad.clone() for n, p in net.named_parameters() if p.grad is not None},
                 **{f"rule.{n}": p.grad.clone() for n, p in rule_.named_parameters() if p.grad is not None}}
        total = grads if total is None else {n: total[n] + g for n, g in grads.items()}
    assert averaged.keys() == total.keys()
    for n in averaged:
        torch.testing.assert_close(averaged[n], total[n] / 6, rtol=1e-10, atol=1e-12)


# ----------------------------------------------------------------------------- recordings
def test_recorded_soma_differs_from_basal_under_euler_and_equals_it_at_steady_state(tmp_path):
    from dendrisim.recording import open_recording

    for mode in ("steady", "euler"):
        out = tmp_path / mode
        exp = model([f"dynamics={{mode: {mode}, steps: 6, record_every: 2}}", "training.max_steps_per_epoch=4",
                     "recording={every: 2, samples: 3}"])
        tr = Trainer(exp, RunOptions(out_dir=out, log=lambda s: None))
        tr.run()
        with open_recording(out / "recording.h5") as rec:
            soma, basal = rec.activity("h1", "soma"), rec.activity("h1", "basal")
            axes = list(rec.file["populations/h1/soma"].attrs["axes"])
            if mode == "steady":
                assert soma.shape == (2, 3, 12) and np.array_equal(soma, basal)
                assert axes == ["record", "sample", "neuron"]
            else:
                assert soma.shape == (2, 3, 4, 12) and axes == ["record", "sample", "time", "neuron"]
                assert rec.file["populations/h1/soma"].attrs["euler_steps"].tolist() == [0, 2, 4, 6]
                assert np.abs(soma - basal).max() > 1e-3
                assert np.isfinite(rec.activity("h2", "apical")).all()
                error = rec.activity("out", "error") if "out" in rec.populations else rec.activity("h2", "error")
                assert np.abs(error[:, :, -1]).max() > 0
        assert tr.recording_estimate["bytes_per_record"] > 0
    steady_est = Trainer(model(["training.max_steps_per_epoch=4"]), RunOptions(out_dir=tmp_path / "a")).recording_estimate
    euler_est = Trainer(model(["training.max_steps_per_epoch=4", "dynamics={mode: euler, steps: 6, record_every: 2}"]),
                        RunOptions(out_dir=tmp_path / "b")).recording_estimate
    per_sample = lambda e: e["bytes_per_record"] - 24 - 8 * 16  # noqa: E731  (index and sample ids)
    assert per_sample(euler_est) == 4 * per_sample(steady_est)  # --check counts the four kept steps


# ----------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("overrides,match", [
    (["dynamics={mode: euler, dt: 1.2, g_leak: 0.1, g_basal: 1.0, g_apical: 0.8}"],
     r"dynamics.dt: dt 1.2 is unstable for population 'h1': dt·\(g_leak \+ g_basal \+ g_apical\)/tau = 1.2 x "
     r"\(0.1 \+ 1.0 \+ 0.8\) / 1.0 = 2.28.*Use dt < 1.053"),
    (["dynamics={mode: euler, populations: {h2: {tau: 0.1}}}"],
     r"dynamics.populations.h2: dt 0.2 is unstable for population 'h2'.* / 0.1 = 2.1"),
    (["dynamics={mode: euler, g_leak: -0.1}"], r"dynamics.g_leak: -0.1 must be >= 0"),
    (["dynamics={mode: euler, g_apical: 0}"], r"dynamics.g_apical: 0.0 must be > 0"),
    (["dynamics={mode: euler, populations: {out: {g_basal: -1}}}"], r"dynamics.populations.out.g_basal: -1.0 must be > 0"),
    (["dynamics={mode: euler, steps: 2}"], r"dynamics.steps: 2 steps are fewer than the network's depth 3 "
                                           r"\(input -> h1 -> h2 -> out\).*Use steps >= 3"),
    (["dynamics={mode: eulr}"], r"dynamics.mode: 'eulr' is not a known settling scheme .*choose one of euler, .*steady"),
    (["dynamics={populations: {hx: {tau: 2}}}"], r"dynamics.populations.hx: 'hx' is not a pyramidal population; "
                                                 r"they are h1, h2, out"),
    (["dynamics={mode: euler}", "plasticity.rule=pc"], r"dynamics.mode: rule pc cannot run under mode euler \(it "
                                                       r"runs under steady\): pc relaxes its own dynamical system"),
    (["dynamics={mode: euler, record: 3}"], r"dynamics: unknown key 'record'"),
])
def test_bad_dynamics_blocks_are_refused_before_any_tensor(overrides, match):
    with pytest.raises(ConfigError, match=match):
        model(overrides)


def test_euler_on_a_recurrent_network_names_the_recurrent_projection():
    spec = copy.deepcopy(MLP)
    spec["projections"].append({"from": "h2", "to": "h1", "kind": "recurrent"})
    with pytest.raises(ConfigError, match=r"dynamics.mode: mode euler simulates a presentation of a static input; "
                                          r"h2->h1 is recurrent.*projections\[3\]"):
        model(["dynamics.mode=euler"], base=spec)


def test_compartment_step_is_one_euler_step_of_the_compartment_equation_by_hand():
    """dendrisim.functional.compartment_step against values worked out by hand. With dt = 0.1,
    τ = 0.5 (so dt/τ = 0.2), g_L = 0.5, g_B = 1, g_A = 0.5 (g = 2):

    u_next = u + 0.2 (−0.5 u + (v_B − u) + 0.5 (v_A − u)) = (1 − 0.4) u + 0.2 v_B + 0.1 v_A

    - u = 1,  v_B = 2,  v_A = −1: 0.6 + 0.4 − 0.1 = 0.9
    - u = 0,  v_B = 1,  v_A = 3:  0 + 0.2 + 0.3 = 0.5
    - u = −2, v_B = 0,  v_A = 0:  −1.2
    - no apical input (None, v_A = 0), u = 1, v_B = 2: 0.6 + 0.4 = 1.0

    The input stays as it was unless ``out`` is given, and ``out=u`` steps in place."""
    from dendrisim.functional import compartment_step

    kw = dict(dt=0.1, tau=0.5, g_leak=0.5, g_basal=1.0, g_apical=0.5)
    u = torch.tensor([1.0, 0.0, -2.0], dtype=torch.float64)
    v_b = torch.tensor([2.0, 1.0, 0.0], dtype=torch.float64)
    v_a = torch.tensor([-1.0, 3.0, 0.0], dtype=torch.float64)
    expected = torch.tensor([0.9, 0.5, -1.2], dtype=torch.float64)
    u_next = compartment_step(u, v_b, v_a, **kw)
    torch.testing.assert_close(u_next, expected, rtol=0, atol=1e-15)
    assert torch.equal(u, torch.tensor([1.0, 0.0, -2.0], dtype=torch.float64)), "a pure function: u is unchanged"
    torch.testing.assert_close(compartment_step(u[:1], v_b[:1], None, **kw),
                               torch.tensor([1.0], dtype=torch.float64), rtol=0, atol=1e-15)
    same = compartment_step(u, v_b, v_a, **kw, out=u)
    assert same is u and torch.equal(u, u_next)
    # the fixed point u* = (g_B v_B + g_A v_A) / g does not move: (1·2 + 0.5·(−1)) / 2 = 0.75
    fixed = torch.tensor([0.75], dtype=torch.float64)
    torch.testing.assert_close(compartment_step(fixed, v_b[:1], v_a[:1], **kw), fixed, rtol=0, atol=1e-15)
