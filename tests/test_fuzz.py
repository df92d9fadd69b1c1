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
from dendrisim.config.graph import is_circuit
from dendrisim.config.schema import PopulationConfig, ProjectionConfig
from dendrisim.errors import ConfigError
from dendrisim.inspect import describe
from dendrisim.optim import build_optimizer
from dendrisim.plasticity import RULES
from dendrisim.tasks import TASKS

HIDDEN_ACTS = [a for a in ACTIVATIONS.names() if ACTIVATIONS.get(a).elementwise]
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
#: a basal projection between pyramidal populations: what a top-level rule of a plain network must serve
_PLAIN = (ProjectionConfig(source="a", target="b"), {"a": PopulationConfig(), "b": PopulationConfig()})


def network_rules() -> list[str]:
    """The registered rules that can be a plain network's top-level rule (the microcircuit's
    synapse models train circuits only: lateral and top-down ones serve apical projections,
    and mc_basal refuses a network where no hidden population would get an error)."""
    return [n for n in RULES.names() if RULES.get(n).serves(*_PLAIN) is None and RULES.get(n).family != "microcircuit"]


def add_circuit(draw, pops: dict, projs: list, chain: list[str], *, wild: bool) -> None:
    """Interneurons for some hidden populations of ``chain`` (each predicting the population above
    it, which nudges it one to one), with top-down and lateral apical projections; ``wild``: also
    sizes that do not match and nudging left out."""
    hidden = chain[1:-1]
    for k in sorted(draw(st.sets(st.integers(0, len(hidden) - 1), min_size=1))):
        low, above, inter = hidden[k], chain[k + 2], f"i{k}"
        size = "auto" if not wild or draw(st.booleans()) else draw(st.integers(1, 12))
        pops[inter] = {"type": "interneuron", "size": size,
                       "activation": draw(st.sampled_from(["auto", *HIDDEN_ACTS]))}
        projs += [{"from": low, "to": inter},
                  {"from": above, "to": low, "compartment": "apical", **(
                      {"learnable": draw(st.booleans())} if draw(st.booleans()) else {})},
                  {"from": inter, "to": low, "compartment": "apical"}]
        if not wild or draw(st.integers(0, 4)):
            projs.append({"from": above, "to": inter, "compartment": "soma"})


def phases_block(draw, learnable: list[str], *, wild: bool) -> list[dict]:
    """1-3 training phases with random epochs, teachers and learn/lr_scale names; ``wild``: also
    unknown names and every teacher off."""
    names = st.sampled_from(learnable + (["h9->out", "out->h0", "x"] if wild else []))
    phases = []
    for _ in range(draw(st.integers(1, 3))):
        phase = {"epochs": draw(st.integers(1, 3)), "teacher": draw(st.booleans())}
        if draw(st.booleans()):
            phase["name"] = draw(st.sampled_from(["self_predicting", "learning", "warm-up", "p"]))
        if draw(st.booleans()):
            phase["learn"] = draw(st.lists(names, max_size=3, unique=True))
        if draw(st.booleans()):
            phase["lr"] = draw(st.floats(1e-4, 1e-1))
        if draw(st.booleans()):
            phase["lr_scale"] = {n: draw(st.floats(0.0, 10.0)) for n in draw(st.lists(names, max_size=2, unique=True))}
        phases.append(phase)
    if not wild:
        phases[-1]["teacher"] = True
        used = [p["name"] for p in phases if "name" in p]
        for i, phase in enumerate(phases):
            if "name" in phase and used.count(phase["name"]) > 1:
                phase["name"] = f"{phase['name']}{i}"
    return phases


@st.composite
def model_files(draw, wild: bool = False):
    """A valid model file (``wild``: the circuit and phase keys may also take values the
    checks refuse)."""
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
    rule = draw(st.sampled_from(network_rules()))
    modes = [m for m in ("steady", "euler") if scheme_refusal(rule, m) is None]  # pc: its own relaxation only
    if RULES.get(rule).per_projection:  # some projections may learn by a rule of their own
        local = [n for n in network_rules() if RULES.get(n).per_projection
                 and all(scheme_refusal(n, m) is None for m in modes)]
        for proj in projs:
            if draw(st.integers(0, 3)) == 0:
                proj["plasticity"] = {"rule": draw(st.sampled_from(local))}
    if n_hidden >= 2 and draw(st.booleans()):
        projs.append({"from": "input", "to": names[-1], "init": draw(init)})
    # a cortical microcircuit (interneurons, apical and soma projections) on some chains; euler runs them
    circuit = n_hidden >= 1 and "euler" in modes and RULES.get(rule).per_projection and draw(st.integers(0, 4)) == 0
    if circuit:
        add_circuit(draw, pops, projs, chain, wild=wild)
        modes = ["euler"] if not wild else modes
        for proj in projs:  # dll's θ would learn from the explicit apical drive: refused unless fixed
            if proj.get("plasticity", {}).get("rule") == "dll" and not wild:
                proj["plasticity"]["learn_feedback"] = False
    learnable = [f"{p['from']}->{p['to']}" for p in projs if p.get("compartment") != "soma" and p.get(
        "learnable", p.get("compartment") != "apical" or pops[p["from"]]["type"] == "interneuron")]
    training = {"epochs": draw(st.integers(1, 5)), "seed": draw(st.integers(0, 2**31)),
                "schedule": draw(st.sampled_from(["none", "linear", "cosine"]))}
    if draw(st.integers(0, 4)) == 0:
        training["phases"] = phases_block(draw, learnable, wild=wild)
        total = sum(p["epochs"] for p in training["phases"])
        if not wild or draw(st.booleans()):
            del training["epochs"]
        elif draw(st.booleans()):
            training["epochs"] = total
    interneurons = [n for n, p in pops.items() if p["type"] == "interneuron"]
    return {
        "name": "fuzz",
        "task": {"type": "classification", "dataset": "digits", "batch_size": draw(st.integers(1, 64))},
        "populations": pops,
        "projections": projs,
        "plasticity": {"rule": rule, "sigma": draw(st.floats(0.5, 2.0)),
                       # dll's θ would learn from a circuit's explicit apical drive: refused, unless θ is fixed
                       **({"learn_feedback": False} if circuit and rule == "dll" and not wild else {})},
        "optimizer": {"type": draw(st.sampled_from(["sgd", "momentum", "adam", "adamw"])),
                      "lr": draw(st.floats(1e-4, 1e-1))},
        "training": training,
        "recording": {"every": draw(st.integers(0, 50)), "samples": draw(st.integers(1, 32))},
        "dynamics": draw(dynamics_blocks(n_hidden + 1, ["out", *names], interneurons, modes=modes, wild=wild)),
    }


@st.composite
def dynamics_blocks(draw, depth: int, pyramidal: list[str], interneurons: list[str] = (), *,
                    modes=("steady", "euler"), wild: bool = False):
    """steady, or euler with constants drawn inside Euler's stability bound and enough steps
    (``wild``: interneuron conductances out of range, and per-population overrides on the
    wrong type of population)."""
    if "euler" not in modes or ("steady" in modes and not draw(st.booleans())):
        return {"mode": "steady"}
    tau = draw(st.floats(0.5, 3.0))
    g = {"g_leak": draw(st.floats(0.0, 0.5)), "g_basal": draw(st.floats(0.2, 2.0)), "g_apical": draw(st.floats(0.01, 1.0))}
    inter = {"g_dendrite": draw(st.floats(0.2, 2.0)), "g_som": draw(st.floats(0.01, 1.0))}
    use = bool(interneurons) or draw(st.booleans())  # the interneurons' conductances (their defaults otherwise)
    worst = max(sum(g.values()), g["g_leak"] + sum(inter.values())) if interneurons else sum(g.values())
    block = {"mode": "euler", "tau": tau, **g, "dt": draw(st.floats(0.01, 0.9)) * tau / worst,
             "steps": draw(st.integers(depth, depth + 8)), "record_every": draw(st.integers(1, 4)),
             "plasticity": draw(st.sampled_from(["settled", "online"]))}
    if use:
        block.update(inter)
    if wild and draw(st.booleans()):
        block[draw(st.sampled_from(["g_dendrite", "g_som"]))] = draw(st.sampled_from([0.0, -0.5, 1e3, 40.0]))
    if draw(st.booleans()):
        block["populations"] = {draw(st.sampled_from(pyramidal)): {"tau": tau * draw(st.floats(1.0, 2.0))}}
        if interneurons and draw(st.booleans()):
            block["populations"][draw(st.sampled_from(list(interneurons)))] = {
                "g_som": inter["g_som"] * draw(st.floats(0.5, 1.0))}
    if wild and draw(st.booleans()):  # a constant on the wrong type of population
        key, names = draw(st.sampled_from([("g_som", pyramidal), ("g_dendrite", pyramidal)]
                                          + ([("g_apical", interneurons), ("g_basal", interneurons)] if interneurons else [])))
        block.setdefault("populations", {})[draw(st.sampled_from(list(names)))] = {key: 0.5}
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
    exp = load(data)
    run_one_step(exp)
    assert "valid" in describe(exp)


def load(data, **kw):
    return load_experiment(data, file="test.yaml", **kw)


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
        exp = load(data)
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
@given(model_files(wild=True), st.data())
def test_corrupted_values_fail_with_a_config_error(data, draw):
    paths = sorted(set(leaves(data)), key=str)
    path = draw.draw(st.sampled_from(paths))
    value = draw.draw(st.sampled_from(BAD_VALUES))
    bad = copy.deepcopy(data)
    set_at(bad, path, value)
    accepts_or_config_error(bad)


@FUZZ
@given(model_files(), st.sampled_from(["unknown_key", "dangling", "cycle", "negative_size", "huge_size", "drop_key",
                                       "soma_weighted", "no_nudging", "one_to_one_basal", "phase_epochs_0",
                                       "teacher_yes", "all_free", "wild"]), st.data())
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
        top_down = [p for p in bad["projections"] if (p["from"], p["to"]) == ("out", hidden[0])]
        if top_down:  # a circuit's apical projection out -> hidden[0] made basal
            top_down[0]["compartment"] = "basal"
        else:
            bad["projections"].append({"from": "out", "to": hidden[0]})
        expect = ["form a cycle"]
    elif kind in ("negative_size", "huge_size"):
        if not hidden:
            return
        name = draw.draw(st.sampled_from(hidden))
        bad["populations"][name]["size"] = -5 if kind == "negative_size" else 10**12
        expect = [f"populations.{name}.size: -5 must be > 0"] if kind == "negative_size" else ["must be <= 268435456"]
    elif kind == "soma_weighted":  # a weighted dense projection marked as the nudging of an interneuron
        i = draw.draw(st.integers(0, len(bad["projections"]) - 1))
        bad["projections"][i].update(compartment="soma", bias=True)
        expect = [f"projections[{i}]: a compartment: soma projection has no weights, so bias: true"]
    elif kind == "no_nudging":
        last = [n for n, p in bad["populations"].items() if n != "out" and p["type"] != "interneuron"][-1]
        bad["populations"]["ix"] = {"type": "interneuron", "size": "auto", "activation": "auto"}
        bad["projections"].append({"from": last, "to": "ix"})
        expect = ["populations.ix: interneuron 'ix' has no nudging projection", "to: ix, compartment: soma}"]
    elif kind == "one_to_one_basal":  # also between populations of unequal sizes
        basal = [k for k, p in enumerate(bad["projections"]) if p.get("compartment", "basal") == "basal"]
        i = draw.draw(st.sampled_from(basal))
        bad["projections"][i]["connectivity"] = "one_to_one"
        expect = [f"projections[{i}]", "connectivity one_to_one is the somatic nudging of interneurons and needs "
                                       "compartment: soma"]
    elif kind in ("phase_epochs_0", "teacher_yes", "all_free"):
        phase = {"phase_epochs_0": {"epochs": 0}, "teacher_yes": {"epochs": 1, "teacher": "yes"},
                 "all_free": {"epochs": 2, "teacher": False}}[kind]
        bad["training"] = {"seed": 0, "phases": [{"epochs": 1, "teacher": kind != "all_free"}, phase]}
        expect = {"phase_epochs_0": ["training.phases[1].epochs: 0 must be >= 1"],
                  "teacher_yes": ["training.phases[1].teacher: 'yes' is not bool"],
                  "all_free": ["training.phases: no phase has teacher: true"]}[kind]
    elif kind == "wild":  # a file with the circuit and phase keys drawn freely: valid or one ConfigError
        accepts_or_config_error(draw.draw(model_files(wild=True)))
        return
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


def test_the_fuzzers_generate_circuits_and_phases_that_load():
    """Guard against vacuous circuit keys: the valid generator's circuits and phases pass the checks
    (the microcircuit's synapse models stood in where the package lacks them)."""
    seen = set()

    @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck), database=None, derandomize=True)
    @given(model_files())
    def loads(data):
        exp = load(data)
        seen.add((is_circuit(exp.config), bool(exp.config.training.phases)))

    loads()
    assert (True, True) in seen or {(True, False), (False, True)} <= seen, seen
