r"""The cortical microcircuit under euler (Sacramento, Costa, Bengio & Senn 2018): interneurons,
explicit apical (top-down, lateral) and somatic (nudging) projections, with fixed weights.

Proofs: an interneuron relaxes in closed form; a small circuit matches scipy's ``solve_ivp``
of the same equations written out here in numpy, to first order in dt; in the exact
self-predicting state the apical potentials are zero for any input, and with the teacher on
the error reaches one hidden population further down per step. Networks are built from
model dicts with explicit shapes (``Network(..., simulated=True)``), float64, and presented
under a rule that feeds nothing back (the circuit's synapse models carry no feedback:
their apical input is the explicit projections)."""
from __future__ import annotations

from typing import Optional

import numpy as np
import pytest
import torch

from dendrisim.config.parse import parse
from dendrisim.config.schema import ModelConfig
from dendrisim.network import Network
from dendrisim.observers.guard import watched
from dendrisim.projections import apical_sum
from dendrisim.settling import SCHEMES

#: the paper's conductances (g_L, g_B = g_D, g_A = g_som), τ 1.5 so that τ is not 1 by accident
PAPER = {"tau": 1.5, "g_leak": 0.1, "g_basal": 1.0, "g_apical": 0.8, "g_dendrite": 1.0, "g_som": 0.8}


def circuit(hidden=(12,), out: int = 4, *, inputs: int = 8, hidden_act: str = "tanh", out_act: str = "linear",
            topdown: bool = True, lateral: bool = True, std: float = 0.5, **dynamics) -> dict:
    """The model dict of a microcircuit: ``input -> h1 -> ... -> out`` (basal), for each hidden
    population ``hk`` interneurons ``ik`` (activation auto) with a dendrite from ``hk`` and
    nudged one to one by the population above, and apical projections onto ``hk``: top-down
    from the population above and lateral from ``ik`` (no bias)."""
    names = [f"h{k + 1}" for k in range(len(hidden))]
    chain = ["input", *names, "out"]
    sizes = dict(zip(chain, (inputs, *hidden, out)))
    init = {"normal": {"std": std}}
    pops = {"input": {"type": "input", "size": inputs},
            **{n: {"size": sizes[n], "activation": hidden_act} for n in names},
            "out": {"size": out, "activation": out_act}}
    projs = [{"from": a, "to": b, "init": init} for a, b in zip(chain, chain[1:])]
    for k, name in enumerate(names):
        above, inter = chain[k + 2], f"i{k + 1}"
        pops[inter] = {"type": "interneuron", "size": sizes[above], "activation": "auto"}
        projs += [{"from": name, "to": inter, "init": init},
                  {"from": above, "to": inter, "compartment": "soma", "connectivity": "one_to_one"}]
        if topdown:
            projs.append({"from": above, "to": name, "compartment": "apical", "bias": False, "init": init})
        if lateral:
            projs.append({"from": inter, "to": name, "compartment": "apical", "bias": False, "init": init})
    return {"name": "circuit", "task": {"type": "classification", "dataset": "digits"}, "populations": pops,
            "projections": projs, "dynamics": {"mode": "euler", **dynamics}}


def make(spec: dict, seed: int = 0) -> Network:
    """The float64 network of ``spec`` (shapes from the sizes), weights drawn with ``seed``;
    its euler scheme is ``net.scheme``."""
    config = parse(ModelConfig, spec, file="t.yaml")
    torch.manual_seed(seed)
    shapes = {name: (pop.size,) for name, pop in config.populations.items()}
    net = Network(config, shapes=shapes, simulated=True).double()
    net.scheme = SCHEMES.get("euler")(config.dynamics)
    return net


class NoFeedback:
    """The Rule protocol with no feedback pathway (the circuit's synapse models: their apical
    input is the explicit projections) and no updates: the dynamics with fixed weights."""

    relaxation = None
    relax = None

    def top_down(self, network, pop, state) -> Optional[torch.Tensor]:
        return None

    def compute_updates(self, network, state) -> None:
        pass

    def parameters(self):
        return iter(())

    def named_parameters(self):
        return iter(())


def present(net: Network, x: torch.Tensor, target: Optional[torch.Tensor], rule=None) -> dict:
    """Forward ``x``, present it under euler (``target`` None: no teacher); the trajectory of
    every sample, ``{population: {variable: [samples, states, n]}}``."""
    net(x)
    return net.scheme.present(net, rule or NoFeedback(), target, capture=torch.arange(x.shape[0])).trajectory


def self_predicting(net: Network) -> None:
    """Set the exact self-predicting state (Sacramento et al. 2018; §1 of the design):
    lateral = −top-down, and each interneuron's dendritic weights (and bias) those of the
    population it predicts times ``attenuation(predicted) / attenuation(interneuron)``, so
    that its free soma equals the predicted population's."""
    with torch.no_grad():
        for inter in net.interneurons():
            (nudge,) = net.somatic_in[inter.name]
            above = net.populations[nudge.source]
            (dendrite,) = net.incoming[inter.name]
            (forward,) = [p for p in net.incoming[above.name] if p.source == dendrite.source]
            scale = above.compartments.attenuation / inter.compartments.attenuation
            dendrite.weight.copy_(forward.weight * scale)
            dendrite.bias.copy_(forward.bias * scale)
            hidden = dendrite.source
            down = net.projections[f"{above.name}->{hidden}"]
            net.projections[f"{inter.name}->{hidden}"].weight.copy_(-down.weight)


def first_nonzero_step(values: torch.Tensor, threshold: float = 1e-9) -> int:
    """The first state (axis 1) at which any sample's ``|values|`` exceeds ``threshold``."""
    return int((values.abs().flatten(2).amax((0, 2)) > threshold).nonzero()[0])


# ------------------------------------------------------------------------ the network's lists
def test_a_circuits_lists_keep_the_feedforward_network_apart_from_its_apical_and_somatic_projections():
    net = make(circuit(hidden=(6, 5), out=3, **PAPER))
    assert net.circuit and net.output_name == "out"  # interneurons are basal sinks, not the output
    assert [p.name for p in net.pyramidal()] == ["h1", "h2", "out"]
    assert [p.name for p in net.interneurons()] == ["i1", "i2"]
    assert [p.name for p in net.simulated()] == net.order and set(net.order) == {"h1", "h2", "out", "i1", "i2"}
    assert [p.name for p in net.hidden()] == ["h1", "h2"]
    assert {p.compartment for ps in (*net.incoming.values(), *net.outgoing.values()) for p in ps} == {"basal"}
    assert [p.name for p in net.outgoing["h1"]] == ["h1->h2", "h1->i1"]
    assert [p.name for p in net.apical_in["h1"]] == ["h2->h1", "i1->h1"]
    assert [p.name for p in net.somatic_in["i2"]] == ["out->i2"]
    assert net.needs_error >= {"h1", "h2", "out", "i1", "i2"}
    nudge = net.projections["out->i2"]
    assert nudge.reads == "soma" and not nudge.learnable and not list(nudge.parameters())
    assert net.projections["h2->h1"].reads == "rate" and net.projections["h2->h1"].bias is None
    with pytest.raises(TypeError, match="carries nothing back"):
        nudge.carry_back(torch.zeros(1, 3), None)
    # interneurons take the constants of the dynamics block and the activation of what nudges them
    i1 = net.populations["i1"]
    assert i1.activation.name == "tanh" and net.populations["i2"].activation.name == "linear"
    c = i1.compartments
    assert (c.g_basal, c.g_apical, c.target_nudged) == (PAPER["g_dendrite"], PAPER["g_som"], True)
    assert c.attenuation == pytest.approx(1.0 / 1.1) and c.nudging == pytest.approx(0.8 / 1.9)
    assert i1.recordable == ("soma", "dendrite", "nudging", "rate", "error") and not i1.offers_apical
    lines = net.scheme.describe(net)  # --check: interneurons with their own constants
    assert "  i1: tau 1.5, g_leak 0.1, g_dendrite 1.0, g_som 0.8: nudging λ 0.421, free soma = 0.909 x dendrite, " \
           "dt·g/tau 0.253 (stable below 2)" in lines, lines
    assert "  h1: tau 1.5, g_leak 0.1, g_basal 1.0, g_apical 0.8: nudging λ 0.421, free soma = 0.526 x basal, " \
           "dt·g/tau 0.253 (stable below 2)" in lines, lines
    # the guard checks interneurons' variables too
    assert ("population", "i2", "nudging") in {w[:3] for w in watched(net, NoFeedback(), net.new_state())}
    assert make(circuit(topdown=False, lateral=False)).circuit  # the somatic projection alone makes it one


def test_interneuron_overrides_take_their_own_constants():
    spec = circuit(**PAPER)
    spec["dynamics"]["populations"] = {"i1": {"g_som": 0.3, "tau": 2.0}}
    c = make(spec).populations["i1"].compartments
    assert (c.tau, c.g_leak, c.g_basal, c.g_apical) == (2.0, PAPER["g_leak"], PAPER["g_dendrite"], 0.3)


# ------------------------------------------------------------------------ proofs
def test_an_interneuron_relaxes_in_closed_form_toward_the_soma_that_nudges_it():
    """input -> h1 -> out, i1 nudged by out, no apical projections, no teacher: h1 and out stay
    at their free state v̂, the interneuron's dendrite ``v_D`` and nudging ``u_out`` are constant,
    so it relaxes from v̂_D = g_D/(g_L+g_D) v_D to u* = (g_D v_D + g_som u_out)/g_I, exactly
    (1 − dt·g_I/τ)^k per step and within O(dt) of exp(−g_I t/τ)."""
    constants = dict(tau=1.5, g_leak=0.1, g_basal=1.0, g_apical=0.3, g_dendrite=0.9, g_som=0.6)
    spec = circuit(hidden=(6,), out=3, out_act="tanh", topdown=False, lateral=False, **constants)
    torch.manual_seed(1)
    x = torch.randn(4, 8, dtype=torch.float64)
    errors = []
    for dt in (0.04, 0.02, 0.01):
        steps = round(2.0 / dt)
        spec["dynamics"].update(dt=dt, steps=steps)
        net = make(spec, seed=2)  # the same weights for every dt
        kept = present(net, x, None)
        h, out, i = (net.populations[n] for n in ("h1", "out", "i1"))
        for pop in (h, out):  # no apical input, no teacher: the free state is the fixed point
            free = pop.compartments.attenuation * pop.basal
            torch.testing.assert_close(kept[pop.name]["soma"], free[:, None].expand_as(kept[pop.name]["soma"]),
                                       rtol=1e-12, atol=1e-12)
        c = i.compartments
        g = c.total
        assert g == pytest.approx(0.1 + 0.9 + 0.6)
        v_d, u_out = i.dendrite, out.soma
        start = 0.9 / (0.1 + 0.9) * v_d
        fixed = (0.9 * v_d + 0.6 * u_out) / g
        k = torch.arange(steps + 1, dtype=torch.float64)[None, :, None]
        soma = kept["i1"]["soma"]
        discrete = fixed[:, None] + (start - fixed)[:, None] * (1 - dt * g / 1.5) ** k
        torch.testing.assert_close(soma, discrete, rtol=1e-12, atol=1e-12)
        exact = fixed[:, None] + (start - fixed)[:, None] * torch.exp(-g * k * dt / 1.5)
        errors.append(float((soma - exact).abs().max()))
        torch.testing.assert_close(kept["i1"]["dendrite"], v_d[:, None].expand_as(soma), rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(kept["i1"]["nudging"], u_out[:, None].expand_as(soma), rtol=1e-12, atol=1e-12)
        # its error is the pyramidal one with its own prediction: (f(u) − f(v̂_D))/λ_I
        torch.testing.assert_close(kept["i1"]["error"], (torch.tanh(soma) - torch.tanh(start)[:, None]) / (0.6 / g),
                                   rtol=1e-10, atol=1e-12)
        assert not kept["out"]["apical"].any()  # no teacher
    assert 1.8 < errors[0] / errors[1] < 2.2 and 1.8 < errors[1] / errors[2] < 2.2, errors


def circuit_errors_against_solve_ivp(*, rtol: float = 1e-11, atol: float = 1e-13) -> list[float]:
    """input 8 -> h 12 -> out 4 with interneurons i 4 (nudged by out), top-down out -> h and
    lateral i -> h apical projections, fixed random weights, the teacher on. The equations
    (§1 of the design, dendrisim's output convention) written out in numpy and integrated by
    solve_ivp (RK45); the largest difference of the somata at T against euler at dt 0.1,
    0.05, 0.025."""
    from scipy.integrate import solve_ivp

    g_l, g_b, g_a, g_ao, g_d, g_s, tau, T = 0.1, 1.0, 0.8, 0.3, 0.9, 0.7, 1.5, 3.0
    spec = circuit(hidden=(12,), out=4, out_act="tanh", tau=tau, g_leak=g_l, g_basal=g_b, g_apical=g_a,
                   g_dendrite=g_d, g_som=g_s, populations={"out": {"g_apical": g_ao}})
    torch.manual_seed(3)
    x = torch.randn(3, 8, dtype=torch.float64)
    t = torch.rand(3, 4, dtype=torch.float64) * 1.6 - 0.8
    base = make(spec, seed=4)
    W = {n: p.weight.detach().numpy().copy() for n, p in base.projections.items() if p.weight is not None}
    b = {n: p.bias.detach().numpy().copy() for n, p in base.projections.items() if p.bias is not None}
    X, Tt = x.numpy(), t.numpy()
    a_h, a_o, a_i = g_b / (g_l + g_b + g_a), g_b / (g_l + g_b + g_ao), g_d / (g_l + g_d)

    def unpack(y):
        return y[:36].reshape(3, 12), y[36:48].reshape(3, 4), y[48:].reshape(3, 4)

    def rhs(_, y):
        u_h, u_o, u_i = unpack(y)
        r_h, r_o, r_i = np.tanh(u_h), np.tanh(u_o), np.tanh(u_i)
        vb_h = X @ W["input->h1"].T + b["input->h1"]
        va_h = r_o @ W["out->h1"].T + r_i @ W["i1->h1"].T          # top-down + lateral
        vb_o = r_h @ W["h1->out"].T + b["h1->out"]
        va_o = Tt - np.tanh(a_o * vb_o)                             # the teacher, from the prediction
        vd = r_h @ W["h1->i1"].T + b["h1->i1"]
        du_h = -g_l * u_h + g_b * (vb_h - u_h) + g_a * (va_h - u_h)
        du_o = -g_l * u_o + g_b * (vb_o - u_o) + g_ao * (va_o - u_o)
        du_i = -g_l * u_i + g_d * (vd - u_i) + g_s * (u_o - u_i)  # nudged by the output's soma
        return np.concatenate([du_h.ravel(), du_o.ravel(), du_i.ravel()]) / tau

    u_h = a_h * (X @ W["input->h1"].T + b["input->h1"])
    u_o = a_o * (np.tanh(u_h) @ W["h1->out"].T + b["h1->out"])
    u_i = a_i * (np.tanh(u_h) @ W["h1->i1"].T + b["h1->i1"])
    y0 = np.concatenate([u_h.ravel(), u_o.ravel(), u_i.ravel()])
    exact = solve_ivp(rhs, (0, T), y0, method="RK45", rtol=rtol, atol=atol).y[:, -1]
    errors = []
    for dt in (0.1, 0.05, 0.025):
        spec["dynamics"].update(dt=dt, steps=round(T / dt))
        net = make(spec)
        net.load_state_dict(base.state_dict())
        present(net, x, t)
        ours = np.concatenate([net.last_state[n].soma.numpy().ravel() for n in ("h1", "out", "i1")])
        errors.append(float(np.abs(ours - exact).max()))
    return errors


def test_a_small_circuit_matches_scipy_solve_ivp_to_first_order_in_dt():
    errors = circuit_errors_against_solve_ivp()
    assert errors[-1] < 5e-3, errors
    assert 1.7 < errors[0] / errors[1] < 2.3 and 1.7 < errors[1] / errors[2] < 2.3, errors


@pytest.mark.parametrize("hidden", [(12,), (7, 5)])
def test_the_self_predicting_state_silences_every_apical_dendrite_for_any_input(hidden):
    """Lateral = −top-down and interneurons predicting the population above exactly: with no
    teacher every apical potential is zero (to rounding) for any input at every step, every
    soma stays at its free state and the interneurons' somata equal those they predict."""
    spec = circuit(hidden=hidden, out=4, dt=0.1, steps=20, std=0.8, **PAPER)
    net = make(spec, seed=5)
    self_predicting(net)
    for seed in range(3):
        torch.manual_seed(10 + seed)
        x = torch.randn(16, 8, dtype=torch.float64) * (1 + seed)
        kept = present(net, x, None)
        for pop in net.hidden():
            assert float(kept[pop.name]["apical"].abs().max()) < 1e-12
            start = kept[pop.name]["soma"][:, :1]
            torch.testing.assert_close(kept[pop.name]["soma"], start.expand_as(kept[pop.name]["soma"]),
                                       rtol=0, atol=1e-12)
        for inter in net.interneurons():
            (nudge,) = net.somatic_in[inter.name]
            torch.testing.assert_close(kept[inter.name]["soma"], kept[nudge.source]["soma"], rtol=0, atol=1e-12)
        assert not kept["out"]["apical"].any() and float(kept["out"]["error"].abs().max()) < 1e-12


def test_without_the_self_predicting_state_the_apical_input_is_on_from_the_free_state():
    """Random lateral weights: the explicit apical input is not zero at step 0 (no error yet
    anywhere), so the hidden soma moves without a teacher."""
    net = make(circuit(dt=0.1, steps=5, **PAPER), seed=6)
    torch.manual_seed(0)
    kept = present(net, torch.randn(5, 8, dtype=torch.float64), None)
    assert first_nonzero_step(kept["h1"]["apical"]) == 0
    assert first_nonzero_step(kept["h1"]["soma"] - kept["h1"]["soma"][:, :1]) == 1


def test_from_the_self_predicting_state_the_teacher_reaches_one_hidden_population_further_down_per_step():
    """Two hidden populations in the self-predicting state, the teacher on: the output's soma
    moves at step 1, so h2's apical input (top-down from the output minus i2's prediction of
    it) from step 1; h2's soma moves at step 2, and h1's apical input with it."""
    spec = circuit(hidden=(7, 5), out=3, dt=0.1, steps=6, **PAPER)
    net = make(spec, seed=7)
    self_predicting(net)
    torch.manual_seed(1)
    kept = present(net, torch.randn(4, 8, dtype=torch.float64), torch.eye(3, dtype=torch.float64)[[0, 1, 2, 0]])
    steps = {name: first_nonzero_step(kept[name]["apical"]) for name in ("out", "h2", "h1")}
    moved = {name: first_nonzero_step(kept[name]["soma"] - kept[name]["soma"][:, :1])
             for name in ("out", "i2", "h2", "i1", "h1")}
    assert steps == {"out": 0, "h2": 1, "h1": 2}
    assert moved == {"out": 1, "i2": 2, "h2": 2, "i1": 3, "h1": 3}


class OutputFeedback(NoFeedback):
    """A rule part: the output's error carried back through the transposed forward weights,
    times a gain (``top_down`` is ``gain_and_clip(apical_input)``), onto the population below."""

    gain = 0.5

    def top_down(self, network, pop, state):
        terms = [(p, state.output.error, p.transported(), 1.0) for p in network.outgoing[pop.name]
                 if p.target == network.output_name]
        total = apical_sum(terms)
        return None if total is None else total.mul_(self.gain)


def test_the_apical_input_is_the_rules_feedback_from_step_one_plus_the_explicit_drive_from_step_zero():
    net = make(circuit(dt=0.1, steps=4, **PAPER), seed=8)
    torch.manual_seed(2)
    kept = present(net, torch.randn(3, 8, dtype=torch.float64), torch.randn(3, 4, dtype=torch.float64),
                   rule=OutputFeedback())
    P = net.projections
    explicit = (kept["out"]["rate"] @ P["out->h1"].weight.t() + kept["i1"]["rate"] @ P["i1->h1"].weight.t())
    fed = OutputFeedback.gain * kept["out"]["error"] @ P["h1->out"].weight
    fed[:, 0] = 0  # the free state: no error, and the rule is not asked
    torch.testing.assert_close(kept["h1"]["apical"], explicit + fed, rtol=1e-12, atol=1e-13)
    assert kept["out"]["error"][:, 1:].abs().amax() > 1e-3  # the rule's part is there to see


def test_without_a_teacher_the_output_is_not_nudged():
    spec = circuit(hidden=(6,), out=3, dt=0.2, steps=8, **PAPER)
    net = make(spec, seed=9)
    torch.manual_seed(3)
    kept = present(net, torch.randn(5, 8, dtype=torch.float64), None)
    assert not kept["out"]["apical"].any()
    taught = present(net, torch.randn(5, 8, dtype=torch.float64), torch.zeros(5, 3, dtype=torch.float64) + 0.5)
    assert taught["out"]["apical"].abs().amax() > 1e-3


def test_schemes_that_do_not_run_circuits_refuse_them():
    net = make(circuit(**PAPER))
    net(torch.randn(2, 8, dtype=torch.float64))
    steady = SCHEMES.get("steady")(parse(ModelConfig, circuit(), file="t.yaml").dynamics)
    assert not steady.runs_circuits and SCHEMES.get("euler").runs_circuits
    with pytest.raises(ValueError, match="does not run microcircuits.*Use dynamics.mode: euler"):
        steady.present(net, NoFeedback(), None)


def test_the_memory_estimate_counts_the_interneurons_compartments():
    from types import SimpleNamespace

    from dendrisim.config.schema import OptimizerConfig
    from dendrisim.memory import FLOAT, estimate

    net = make(circuit(hidden=(12,), out=4))  # input 8, h1 12, i1 4, out 4
    experiment = SimpleNamespace(task=SimpleNamespace(batch_size=16, validation_fraction=0.0),
                                 config=SimpleNamespace(optimizer=OptimizerConfig(),
                                                        recording=SimpleNamespace(enabled=False),
                                                        training=SimpleNamespace(select_best=False)))
    parts = estimate(experiment, net, NoFeedback(), train_samples=0)
    assert parts["compartments"] == (5 * (12 + 4 + 4) + 8) * 16 * FLOAT


@pytest.mark.parametrize("stray", [{"from": "i1", "to": "out", "compartment": "apical"},
                                   {"from": "i1", "to": "h1", "compartment": "soma", "connectivity": "one_to_one"}])
def test_a_hand_built_network_with_a_projection_onto_a_slot_that_takes_none_is_refused_by_name(stray):
    """The config checks refuse these; euler refuses them too rather than ignore them."""
    spec = circuit(hidden=(4,), out=4)
    spec["projections"].append(stray)
    net = make(spec)
    with pytest.raises(ValueError, match=rf"^{stray['from']}->{stray['to']}: apical projections end on hidden "
                                         "pyramidal populations"):
        present(net, torch.randn(2, 8, dtype=torch.float64), torch.zeros(2, 4, dtype=torch.float64))
