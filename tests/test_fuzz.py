"""Property-based checks of the model-file front door (hypothesis).

Valid files generated at random must build and run a step under every rule; files
corrupted at random must either still be valid or fail with the project's ConfigError
naming the file (and, for a corrupted field, its path), never with a raw traceback.
"""
import copy

import torch
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dendrisim.activations import ACTIVATIONS
from dendrisim.builder import DataSpec, build_model, build_scheme, check_memory, load_experiment, scheme_refusal
from dendrisim.errors import ConfigError
from dendrisim.inspect import describe
from dendrisim.optim import build_optimizer
from dendrisim.plasticity import RULES
from dendrisim.tasks import TASKS

HIDDEN_ACTS = [a for a in ACTIVATIONS.names() if ACTIVATIONS.get(a).elementwise]
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def model_files(draw):
    n_hidden = draw(st.integers(0, 3))
    pops = {"input": {"type": "input", "size": "auto"}}
    names = [f"h{i}" for i in range(n_hidden)]
    for name in names:
        pops[name] = {"type": "pyramidal", "size": draw(st.integers(1, 12)), "activation": draw(st.sampled_from(HIDDEN_ACTS))}
    pops["out"] = {"type": "pyramidal", "size": "auto",
                   "activation": draw(st.sampled_from(["softmax", "sigmoid", "linear", "tanh"]))}
    chain = ["input", *names, "out"]
    init = st.sampled_from([{"normal": {"std": 0.1}}, {"torch_default": {}}, {"xavier_uniform": {"gain": 1.0}},
                            {"uniform": {"low": -0.1, "high": 0.1}}])
    projs = [{"from": a, "to": b, "init": draw(init), "bias": draw(st.booleans())} for a, b in zip(chain, chain[1:])]
    rule = draw(st.sampled_from(RULES.names()))
    if RULES.get(rule).per_projection:  # some projections may learn by a rule of their own
        local = [n for n in RULES.names() if RULES.get(n).per_projection]
        for proj in projs:
            if draw(st.integers(0, 3)) == 0:
                proj["plasticity"] = {"rule": draw(st.sampled_from(local))}
    if n_hidden >= 2 and draw(st.booleans()):
        projs.append({"from": "input", "to": names[-1], "init": draw(init)})
    simulated = scheme_refusal(rule, "euler") is None  # pc runs its own relaxation only (refused, tested)
    return {
        "name": "fuzz",
        "task": {"type": "classification", "dataset": "digits", "batch_size": draw(st.integers(1, 64))},
        "populations": pops,
        "projections": projs,
        "plasticity": {"rule": rule, "sigma": draw(st.floats(0.5, 2.0))},
        "optimizer": {"type": draw(st.sampled_from(["sgd", "momentum", "adam", "adamw"])),
                      "lr": draw(st.floats(1e-4, 1e-1))},
        "training": {"epochs": draw(st.integers(1, 5)), "seed": draw(st.integers(0, 2**31)),
                     "schedule": draw(st.sampled_from(["none", "linear", "cosine"]))},
        "recording": {"every": draw(st.integers(0, 50)), "samples": draw(st.integers(1, 32))},
        "dynamics": draw(dynamics_blocks(n_hidden + 1, ["out", *names])) if simulated else {"mode": "steady"},
    }


@st.composite
def dynamics_blocks(draw, depth: int, pyramidal: list[str]):
    """steady, or euler with constants drawn inside Euler's stability bound and enough steps."""
    if not draw(st.booleans()):
        return {"mode": "steady"}
    tau = draw(st.floats(0.5, 3.0))
    g = {"g_leak": draw(st.floats(0.0, 0.5)), "g_basal": draw(st.floats(0.2, 2.0)), "g_apical": draw(st.floats(0.01, 1.0))}
    block = {"mode": "euler", "tau": tau, **g, "dt": draw(st.floats(0.01, 0.9)) * tau / sum(g.values()),
             "steps": draw(st.integers(depth, depth + 8)), "record_every": draw(st.integers(1, 4)),
             "plasticity": draw(st.sampled_from(["settled", "online"]))}
    if draw(st.booleans()):
        block["populations"] = {draw(st.sampled_from(pyramidal)): {"tau": tau * draw(st.floats(1.0, 2.0))}}
    return block


def run_one_step(exp, *, require_finite: bool = True) -> None:
    net, rule = build_model(exp, DataSpec((1, 8, 8), 10))
    opt = build_optimizer(net, rule, exp.config.optimizer)
    x = torch.randn(4, 1, 8, 8)
    t = torch.eye(10)[torch.randint(0, 10, (4,))]
    with torch.no_grad():
        net(x)
        build_scheme(exp).present(net, rule, t)
        opt.step()
    # (whether weights move is the behavioural tests' business: a dead ReLU chain without
    # biases legitimately learns nothing; a corrupted but well-typed file, e.g. an init std
    # of 1e12, may legitimately overflow, which the trainer's NaN guard reports)
    if require_finite:
        assert all(torch.isfinite(p).all() for p in net.parameters())


@FUZZ
@given(model_files())
def test_generated_model_files_build_and_step(data):
    exp = load_experiment(data, file="test.yaml")
    run_one_step(exp)
    assert "valid" in describe(exp)


def leaves(node, path=()):
    if isinstance(node, dict):
        for k, v in node.items():
            yield from leaves(v, (*path, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from leaves(v, (*path, i))
    if path:
        yield path


BAD_VALUES = ["x", -1, 0, 10**12, 2.5, [1, 2], {"a": 1}, None, True, float("nan"), float("inf"), -1e300]


def set_at(data, path, value):
    node = data
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = value


def path_text(path) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def accepts_or_config_error(data, *, expect_in_message=()):
    """The property: valid (and then it runs a step) or a ConfigError naming the file."""
    try:
        exp = load_experiment(data, file="test.yaml")
        check_memory(exp, TASKS.get(exp.task.type), device="cpu")  # as builder.build does, before any tensor
        run_one_step(exp, require_finite=False)
        describe(exp)
        return "valid"
    except ConfigError as err:
        message = str(err)
        assert message.startswith("test.yaml: "), message
        for text in expect_in_message:
            assert text in message, (text, message)
        return "error"


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(model_files(), st.data())
def test_corrupted_values_fail_with_a_config_error(data, draw):
    paths = sorted(set(leaves(data)), key=str)
    path = draw.draw(st.sampled_from(paths))
    value = draw.draw(st.sampled_from(BAD_VALUES))
    bad = copy.deepcopy(data)
    set_at(bad, path, value)
    accepts_or_config_error(bad)


@FUZZ
@given(model_files(), st.sampled_from(["unknown_key", "dangling", "cycle", "negative_size", "huge_size", "drop_key"]), st.data())
def test_structural_corruptions(data, kind, draw):
    bad = copy.deepcopy(data)
    hidden = [n for n in bad["populations"] if n.startswith("h")]
    if kind == "unknown_key":
        blocks = ["optimizer", "training", "task", "recording", "dynamics"]
        block = draw.draw(st.sampled_from(blocks))
        bad[block]["typo_key"] = 1
        expect = ["unknown key 'typo_key'"]
    elif kind == "dangling":
        bad["projections"][draw.draw(st.integers(0, len(bad["projections"]) - 1))]["to"] = "nowhere"
        expect = ["'nowhere' is not a population"]
    elif kind == "cycle":
        if not hidden:
            return
        bad["projections"].append({"from": "out", "to": hidden[0]})
        expect = ["form a cycle"]
    elif kind in ("negative_size", "huge_size"):
        if not hidden:
            return
        name = draw.draw(st.sampled_from(hidden))
        bad["populations"][name]["size"] = -5 if kind == "negative_size" else 10**12
        expect = [f"populations.{name}.size: -5 must be > 0"] if kind == "negative_size" else ["must be <= 268435456"]
    else:
        key = draw.draw(st.sampled_from(["name", "task", "populations", "projections"]))
        del bad[key]
        expect = [f"missing required key '{key}'"]
    assert accepts_or_config_error(bad, expect_in_message=expect) == "error"


@settings(max_examples=100, deadline=None)
@given(model_files(), st.data())
def test_damaged_yaml_text_fails_with_a_config_error(tmp_path_factory, data, draw):
    text = yaml.safe_dump(data, sort_keys=False)
    kind = draw.draw(st.sampled_from(["truncate", "tab", "bracket", "colon"]))
    pos = draw.draw(st.integers(0, len(text) - 1))
    damaged = {"truncate": text[:pos], "tab": text[:pos] + "\t" + text[pos:],
               "bracket": text[:pos] + "[" + text[pos:], "colon": text[:pos] + ": :" + text[pos:]}[kind]
    path = tmp_path_factory.mktemp("yaml") / "test.yaml"
    path.write_text(damaged)
    try:
        exp = load_experiment(path)
    except ConfigError as err:
        assert str(err).startswith(f"{path}: ")
        return
    run_one_step(exp, require_finite=False)  # the damage happened to leave a valid file


def test_the_fuzzers_find_errors_and_valid_files():
    """Guard against a vacuous property: both outcomes occur on simple examples."""
    from conftest import MLP

    base = copy.deepcopy(MLP)
    assert accepts_or_config_error(base) == "valid"
    bad = copy.deepcopy(base)
    set_at(bad, ("optimizer", "lr"), "x")
    assert accepts_or_config_error(bad, expect_in_message=["optimizer.lr: 'x' is not float"]) == "error"
