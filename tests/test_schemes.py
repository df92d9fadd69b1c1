r"""The seam between settling schemes and rules: a scheme written here, outside the package,
runs every rule with no per-rule code (``tests/test_rules.py`` runs the behavioural suite
under it), and it is right: the explicit midpoint rule (RK2) of the equations that
``euler`` integrates by forward Euler,

.. math:: τ \frac{du}{dt} = -g_L u + g_B (v_B - u) + g_A (v_A - u) =: τ F(u),
          \qquad u_{n+1} = u_n + dt \, F\big(u_n + \tfrac{dt}{2} F(u_n)\big),

reaches euler's fixed point, and its error against an outside integrator falls as dt².
It uses only public things: the presentation's state, the populations' constants, the
network's ``basal_input``, the scheme's public error equations (``settling.local_errors``),
the rule's ``top_down`` (the ``Rule`` protocol) and ``settling.updates``."""
from __future__ import annotations

import copy
from contextlib import contextmanager
from typing import Iterator, Optional

import numpy as np
import pytest
import torch

from conftest import BURST_MLP, MLP, build, model, present
from test_dynamics import mlp as dynamics_mlp
from dendrisim.builder import build_scheme, scheme_refusal
from dendrisim.config.schema import DynamicsConfig
from dendrisim.errors import ConfigError
from dendrisim.plasticity import RULES
from dendrisim.settling import SCHEMES, Presentation, Rule, SettlingScheme, check_simulated, local_errors, updates

#: the name the test scheme is registered under while a test uses it
MIDPOINT = "midpoint"


class Midpoint(SettlingScheme):
    """Explicit midpoint (RK2) integration of every pyramidal population at once: the
    compartments, errors and apical inputs of ``euler`` (``dendrisim.settling``), second
    order in dt. Updates from the settled end of the presentation."""

    simulates_compartments = True  # the network gets the compartments' constants and free state

    @classmethod
    def check(cls, config, graph, *, file):
        """The euler scheme's checks of the same equations: static input, stable dt, enough steps."""
        super().check(config, graph, file=file)
        check_simulated(config, graph, file=file)

    def __init__(self, config: DynamicsConfig):
        super().__init__(config)
        if config.plasticity != "settled":
            raise ValueError("the midpoint scheme takes updates at the settled end only")

    def _present(self, network, rule: Rule, state, capture: Optional[torch.Tensor]) -> Presentation:
        if network.sequential:
            raise ValueError("the midpoint scheme simulates static presentations")
        dt = self.config.dt
        u = {p.name: state[p.name].soma.clone() for p in network.pyramidal()}  # the free state of the forward pass
        for _ in range(self.config.steps):
            k1 = self.velocity(network, rule, state, u)
            k2 = self.velocity(network, rule, state, {n: u[n] + 0.5 * dt * k1[n] for n in u})
            u = {n: u[n] + dt * k2[n] for n in u}
        self.observe(network, rule, state, u)
        updates(network, rule, state)
        return Presentation()

    @staticmethod
    def observe(network, rule: Rule, state, soma: dict[str, torch.Tensor]) -> None:
        """Put every population of ``state`` at ``soma`` and compute what it sees there: basal
        drives from the rates, the local errors (the output's teacher with them: the public
        ``settling.local_errors``), and the hidden apical inputs from the errors above (the
        rule's ``top_down``)."""
        pops = list(network.pyramidal())
        out = network.output
        taught = set(network.needs_error) | {out.name}
        for p in pops:
            s = state[p.name]
            s.soma = soma[p.name]
            s.rate = p.activation.f(s.soma)
        for p in pops:
            state[p.name].basal = network.basal_input(p.name, state)
        for p in pops:
            if p.name not in taught:
                state[p.name].apical = state[p.name].error = None
        local_errors(network, state, [p for p in pops if p.name in taught])
        for p in pops:
            if p is not out and p.name in taught:
                state[p.name].apical = rule.top_down(network, p, state)

    def velocity(self, network, rule: Rule, state, soma: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """``F(u) = (−g_L u + g_B (v_B − u) + g_A (v_A − u)) / τ`` of every population at ``soma``."""
        self.observe(network, rule, state, soma)
        velocity = {}
        for p in network.pyramidal():
            c, u, s = p.compartments, soma[p.name], state[p.name]
            apical = 0.0 if s.apical is None else s.apical
            velocity[p.name] = (-c.g_leak * u + c.g_basal * (s.basal - u) + c.g_apical * (apical - u)) / c.tau
        return velocity

    def describe(self, network) -> list[str]:
        return [f"dynamics {MIDPOINT}: {self.config.steps} midpoint (RK2) steps of dt {self.config.dt}"]


@contextmanager
def registered(name: str, scheme: type[SettlingScheme] = Midpoint) -> Iterator[None]:
    """``scheme`` in ``SCHEMES`` as ``name`` for the length of the block (none if ``name`` is
    already there: a built-in)."""
    if name in SCHEMES:
        yield
        return
    SCHEMES.register(name)(scheme)
    try:
        yield
    finally:
        SCHEMES.unregister(name)


@pytest.fixture
def midpoint():
    with registered(MIDPOINT):
        yield MIDPOINT


def mlp(hidden: list[int], rule: str, out_act: str = "softmax") -> dict:
    """tests/test_dynamics.py's MLP with tanh hidden populations."""
    return dynamics_mlp(hidden, "tanh", out_act, rule)


def settle(spec: dict, mode: str, dynamics: dict, x, t, state=None):
    """Somata and updates after one presentation of ``x`` under scheme ``mode``, the state,
    and the free somata the forward pass left."""
    spec = copy.deepcopy(spec)
    spec["dynamics"] = {"mode": mode, **dynamics}
    exp = model([], base=spec)
    net, rule = build(exp, input_shape=(x.shape[1],), output_size=t.shape[1])
    if state is not None:
        net.load_state_dict(state[0])
        rule.load_state_dict(state[1])
    net(x)
    free = {p.name: p.soma.detach().clone() for p in net.pyramidal()}
    present(net, rule, t, exp)
    soma = {p.name: p.soma.clone() for p in net.pyramidal()}
    grads = {f"net.{n}": p.grad.clone() for n, p in net.named_parameters() if p.grad is not None}
    grads.update({f"rule.{n}": p.grad.clone() for n, p in rule.named_parameters() if p.grad is not None})
    return soma, grads, (net.state_dict(), rule.state_dict()), free


# ----------------------------------------------------------------------------- the registry
def test_the_test_scheme_is_registered_only_while_a_test_uses_it(midpoint):
    assert midpoint in SCHEMES and isinstance(build_scheme(model([f"dynamics.mode={midpoint}"])), Midpoint)
    SCHEMES.unregister(midpoint)
    try:
        with pytest.raises(ConfigError, match=r"dynamics.mode: 'midpoint' is not a known settling scheme"):
            model([f"dynamics.mode={midpoint}"])
    finally:
        SCHEMES.register(midpoint)(Midpoint)


def test_a_user_scheme_runs_every_rule_that_needs_only_the_rule_protocol(midpoint):
    """No rule names the new scheme, yet each one without a relaxation of its own runs under
    it; pc is refused with its own message, as under euler."""
    for name in RULES.names():
        rule = RULES.get(name)
        if rule.needs_compartments:  # the microcircuit's synapse models: any scheme that simulates compartments
            assert scheme_refusal(name, midpoint) is None, name
        elif rule.family == "burst":  # burst neurons have no simulated compartments, which midpoint steps
            with pytest.raises(ConfigError, match=r"'burst' has no simulated compartments"):
                model([f"dynamics.mode={midpoint}", f"plasticity.rule={name}"], base=BURST_MLP)
        elif not rule.relaxes and rule.relax is None:
            assert scheme_refusal(name, midpoint) is None, name
            assert model([f"dynamics.mode={midpoint}", f"plasticity.rule={name}"]).simulated
    with pytest.raises(ConfigError, match=r"dynamics.mode: rule pc cannot run under mode midpoint \(it runs under "
                                          r"steady\): pc relaxes its own dynamical system"):
        model([f"dynamics.mode={midpoint}", "plasticity.rule=pc"])


def test_a_user_scheme_declares_its_checks_as_the_euler_scheme_does(midpoint):
    """The scheme's own check (here euler's, ``settling.check_simulated``) runs when the file is loaded."""
    spec = copy.deepcopy(MLP)
    spec["projections"].append({"from": "h2", "to": "h1", "kind": "recurrent"})
    with pytest.raises(ConfigError, match=r"dynamics.mode: mode midpoint simulates a presentation of a static input; "
                                          r"h2->h1 is recurrent"):
        model([f"dynamics.mode={midpoint}"], base=spec)
    with pytest.raises(ConfigError, match=r"dynamics.steps: 2 steps are fewer than the network's depth 3"):
        model([f"dynamics={{mode: {midpoint}, steps: 2}}"])


def test_the_keys_page_lists_the_built_in_schemes():
    """Every scheme the package registers is named in the ``dynamics.mode`` documentation."""
    import dataclasses

    field = next(f for f in dataclasses.fields(DynamicsConfig) if f.name == "mode")
    built_in = [n for n in SCHEMES.names() if SCHEMES.get(n).__module__.startswith("dendrisim.settling.")]
    assert set(built_in) == {"steady", "euler"}
    for name in built_in:
        assert f"{name}:" in field.metadata["doc"] and f"'{name}'" in field.metadata["type_text"], name


# ----------------------------------------------------------------------------- it is right
@pytest.mark.parametrize("rule", ["dll", "bp", "fa", "dfa", "kp"])
def test_midpoint_settles_at_the_fixed_point_of_euler(midpoint, rule):
    """Many small steps of each scheme from the same free state: the somata agree to 1e-6,
    and so do the updates taken there."""
    torch.manual_seed(1)
    x = torch.randn(8, 5, dtype=torch.float64)
    t = torch.eye(3, dtype=torch.float64)[torch.randint(0, 3, (8,))]
    spec = mlp([7, 6], rule)
    dynamics = {"dt": 0.05, "steps": 1600, "tau": 1.0, "g_leak": 0.1, "g_basal": 1.0, "g_apical": 0.3}
    euler_soma, euler_grads, state, free_soma = settle(spec, "euler", dynamics, x, t)
    mid_soma, mid_grads, _, _ = settle(spec, midpoint, dynamics, x, t, state)
    for name in euler_soma:
        assert float((mid_soma[name] - euler_soma[name]).abs().max()) < 1e-6, name
        assert float((free_soma[name] - euler_soma[name]).abs().max()) > 1e-3, name  # they did move
    assert mid_grads.keys() == euler_grads.keys()
    for name in euler_grads:
        assert float((mid_grads[name] - euler_grads[name]).abs().max()) < 1e-6, name


def midpoint_errors_against_solve_ivp(mode: str) -> list[float]:
    """``tests/test_dynamics.py``'s outside integrator (solve_ivp of the same equations, at
    tighter tolerances, since the midpoint error is smaller) against ``mode``."""
    from test_dynamics import errors_against_solve_ivp

    return errors_against_solve_ivp(mode, rtol=1e-12, atol=1e-14)


def test_midpoint_matches_scipy_solve_ivp_to_second_order_in_dt(midpoint):
    """Halving dt divides the error by about 4 (euler's by about 2: tests/test_dynamics.py),
    which also shows that dt, τ and every conductance reach the scheme as the file gives them:
    a wrong one would leave an error that does not fall with dt."""
    errors = midpoint_errors_against_solve_ivp(midpoint)
    assert errors[-1] < 1e-4, errors
    assert 3.5 < errors[0] / errors[1] < 4.5 and 3.5 < errors[1] / errors[2] < 4.5, errors
    euler = midpoint_errors_against_solve_ivp("euler")
    assert all(m < e / 10 for m, e in zip(errors, euler)), (errors, euler)


def test_a_scheme_that_runs_no_relaxation_refuses_a_rule_that_declares_one():
    """A rule class that forgot ``relaxes = True`` passes the model-file check under euler; its
    relaxation must not then be skipped in silence: presenting refuses it, naming why."""
    from conftest import build, present
    from dendrisim.builder import build_scheme

    exp = model(["plasticity.rule=pc"])
    net, rule = build(exp)
    net(torch.randn(4, 5, dtype=torch.float64))
    euler = build_scheme(model(["dynamics.mode=euler"]))
    with pytest.raises(ValueError, match=r"EulerDynamics runs no relaxation, but the rule declares one"):
        euler.present(net, rule, torch.eye(3, dtype=torch.float64)[[0, 1, 2, 0]])
    present(net, rule, torch.eye(3, dtype=torch.float64)[[0, 1, 2, 0]], exp)  # the steady scheme runs it


def test_a_scheme_that_does_not_declare_runs_circuits_refuses_a_microcircuit():
    """The midpoint scheme above computes apical inputs from the rule alone: it would run a
    microcircuit without its explicit apical and somatic projections. It inherits
    ``runs_circuits = False``, so presenting a circuit under it is refused, naming why."""
    from test_circuit_dynamics import NoFeedback, circuit, make

    assert not Midpoint.runs_circuits
    net = make(circuit())
    net(torch.randn(2, 8, dtype=torch.float64))
    scheme = Midpoint(DynamicsConfig(mode=MIDPOINT))
    with pytest.raises(ValueError, match=r"settling scheme Midpoint does not run microcircuits, and network 'circuit' "
                                         r"is one \(it has apical or somatic projections\).*Use dynamics.mode: euler"):
        scheme.present(net, NoFeedback(), torch.zeros(2, 4, dtype=torch.float64))
