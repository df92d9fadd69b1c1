"""Bad model files fail before anything is built, naming the file, field, value and choices."""
import copy
import textwrap

import pytest

from conftest import MLP, model
from dendrisim.config import apply_overrides
from dendrisim.errors import ConfigError, DataError
from dendrisim.builder import DataSpec, build_network, load_experiment


def bad(*overrides):
    with pytest.raises(ConfigError) as info:
        model(list(overrides))
    return str(info.value)


def test_unknown_top_level_key():
    with pytest.raises(ConfigError, match=r"test.yaml: <top level>: unknown key 'optimiser'; allowed keys are .*optimizer"):
        model(["optimiser.lr=0.1"])


def test_unknown_nested_key_names_the_path():
    assert bad("populations.h1.activaton=tanh").startswith("test.yaml: populations.h1: unknown key 'activaton'")


def test_bad_compartment_lists_choices():
    msg = bad("projections.1.compartment=apicl")
    assert msg == "test.yaml: projections[1].compartment: 'apicl' is not one of basal, apical, soma"


def test_apical_projection_onto_the_output_is_refused_with_reason():
    # apical projections are allowed since issue 23 (the microcircuit's top-down and lateral input), but only
    # onto hidden pyramidal populations; the rest of their checks are in test_circuit_config.py
    with pytest.raises(ConfigError, match=r"projections\[3\].to: 'out' has no apical compartment that takes "
                                          r"projections: it is the output.*hidden pyramidal populations: h1, h2"):
        model(["projections=[{from: input, to: h1}, {from: h1, to: h2}, {from: h2, to: out}, "
               "{from: h1, to: out, compartment: apical}]"])


def test_unknown_rule_lists_registered_rules():
    with pytest.raises(ConfigError, match=r"plasticity.rule: 'dl' is not a known plasticity rule; choose one of bp, burstccn, burstprop, dfa, dll, fa, kp, mc_basal, mc_lateral, mc_topdown, pc"):
        model(["plasticity.rule=dl"])


def test_unknown_activation_lists_choices():
    with pytest.raises(ConfigError, match=r"populations.h2.activation: 'tahn' is not a known activation; choose one of .*tanh"):
        model(["populations.h2.activation=tahn"])


def test_softmax_only_on_output():
    with pytest.raises(ConfigError, match=r"populations.h1.activation: 'softmax' couples neurons"):
        model(["populations.h1.activation=softmax"])


@pytest.mark.parametrize("value,match", [
    ("-3", r"populations.h1.size: -3 must be > 0"),
    ("twelve", r"populations.h1.size: 'twelve' is not int or 'auto'"),
    ("auto", r"populations.h1.size: size auto is only allowed on the input and output"),
])
def test_bad_sizes(value, match):
    with pytest.raises(ConfigError, match=match):
        model([f"populations.h1.size={value}"])


def test_dangling_projection_names_the_populations():
    with pytest.raises(ConfigError, match=r"projections\[2\].to: 'output' is not a population; populations are input, h1, h2, out"):
        model(["projections.2.to=output"])


def test_cycle_is_reported():
    base = copy.deepcopy(MLP)
    base["projections"].append({"from": "h2", "to": "h1"})
    with pytest.raises(ConfigError, match=r"projections: the feedforward projections form a cycle \(h1 -> h2 -> h1\)"):
        model(base=base)


def test_unreachable_population():
    base = copy.deepcopy(MLP)
    base["populations"]["lonely"] = {"type": "pyramidal", "size": 3}
    base["projections"].append({"from": "lonely", "to": "out"})
    with pytest.raises(ConfigError, match=r"populations.lonely: 'lonely' is not reached from the input 'input'"):
        model(base=base)


def test_sigma_must_be_positive():
    with pytest.raises(ConfigError, match=r"plasticity.sigma: 0.0 must be > 0"):
        model(["plasticity.sigma=0"])


def test_bad_init_scheme():
    with pytest.raises(ConfigError, match=r"projections\[0\].init: 'gauss' is not a known initializer; choose one of"):
        model(["projections.0.init={gauss: {std: 1}}"])


def test_unknown_dataset():
    with pytest.raises(ConfigError, match=r"task.dataset: 'fmnist' is not a known dataset; choose one of cifar10, .*fashion_mnist"):
        model(["task.dataset=fmnist"])


def test_input_shape_must_match_the_data():
    exp = model(["populations.input={type: input, shape: [1, 28, 28]}"])
    with pytest.raises(ConfigError, match=r"populations.input.shape: \[1, 28, 28\] does not match the data, whose samples have shape \[1, 8, 8\]"):
        build_network(exp, DataSpec((1, 8, 8), 10))


def test_output_size_must_match_the_task():
    exp = model(["populations.out.size=7"])
    with pytest.raises(ConfigError, match=r"populations.out.size: 7 does not match the task, which needs 10 output neurons"):
        build_network(exp, DataSpec((64,), 10))


def test_swapping_rules_ignores_other_rules_options():
    exp = model(["plasticity={rule: bp, sigma: 2.0, learn_feedback: false}"])
    assert exp.rule.rule == "bp"
    assert any("plasticity.sigma is an option of dll, ignored by bp" in n for n in exp.notes)
    with pytest.raises(ConfigError, match=r"plasticity: unknown key 'sigmaa'"):
        model(["plasticity={rule: dll, sigmaa: 2.0}"])


def test_yaml_syntax_error_names_file_and_line(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("name: x\npopulations: {input: [1, 2\n")
    with pytest.raises(ConfigError, match=r"broken.yaml: line \d+, column \d+: YAML syntax error"):
        load_experiment(path)


def test_duplicate_population_names_are_refused(tmp_path):
    path = tmp_path / "dup.yaml"
    path.write_text(textwrap.dedent("""\
        name: dup
        task: {type: classification}
        populations:
          input: {type: input, size: auto}
          h1: {size: 4}
          h1: {size: 5}
          out: {size: auto, activation: softmax}
        projections: [{from: input, to: h1}, {from: h1, to: out}]
    """))
    with pytest.raises(ConfigError, match=r"dup.yaml: line 6, column 3: YAML syntax error: duplicate key 'h1'"):
        load_experiment(path)


def test_missing_model_file():
    with pytest.raises(ConfigError, match=r"nope.yaml: model file not found"):
        load_experiment("nope.yaml")


def test_overrides_parse_values_as_yaml_and_index_lists():
    data = apply_overrides(MLP, ["optimizer.lr=1e-3", "projections.0.bias=false", "training.early_stopping.patience=3"], file="f")
    assert data["projections"][0]["bias"] is False
    assert data["training"]["early_stopping"] == {"patience": 3}
    assert model(["optimizer.lr=1e-3"]).config.optimizer.lr == 1e-3  # YAML 1.1 reads 1e-3 as a string
    with pytest.raises(ConfigError, match=r"projections.9: '9' is not an index of a list of 3 items"):
        apply_overrides(MLP, ["projections.9.bias=false"], file="f")
    with pytest.raises(ConfigError, match=r"--set: override 'optimizer.lr' must look like key.path=value"):
        apply_overrides(MLP, ["optimizer.lr"], file="f")


def test_resolved_model_round_trips():
    exp = model(["plasticity.rule=fa"])
    again = load_experiment(exp.to_dict(), file="again.yaml")
    assert again.to_dict() == exp.to_dict()
    assert again.rule == exp.rule and again.task == exp.task


def test_missing_dataset_says_where_it_looked(tmp_path):
    from dendrisim.tasks.datasets import mnist

    with pytest.raises(DataError, match=r"MNIST: missing train-images-idx3-ubyte.*looked in .*MNIST/raw.*download: true"):
        mnist(tmp_path, False)


def test_shipped_models_load():
    import pathlib

    files = sorted(pathlib.Path(__file__).parent.parent.glob("models/*.yaml"))
    assert files
    for f in files:
        config = load_experiment(f).config
        circuit = any(p.compartment != "basal" for p in config.projections)
        burst = any(p.type == "burst" for p in config.populations.values())
        for rule in ("dll", "bp", "fa", "dfa"):
            if burst:  # burst neurons learn by the burst rules only
                with pytest.raises(ConfigError, match=r"plasticity.rule: .* learn by the burst rules only"):
                    load_experiment(f, [f"plasticity.rule={rule}"])
                continue
            if circuit and rule == "dfa":  # network-wide: it cannot share a circuit with its synapse models
                with pytest.raises(ConfigError, match=r"plasticity.rule: dfa is a network-wide rule and cannot share "
                                                      r"the network: .*\(i1->h1: mc_lateral\).* learn by the synapse "
                                                      r"models made for them, which dfa does not serve"):
                    load_experiment(f, [f"plasticity.rule={rule}"])
                continue
            if circuit and rule == "dll":  # θ would learn from the circuit's explicit apical drive
                with pytest.raises(ConfigError, match=r"plasticity.rule: dll learns the θ of .* from .*'s apical "
                                                      r"potential, and .* also takes explicit apical projections"):
                    load_experiment(f, [f"plasticity.rule={rule}"])
                assert load_experiment(f, [f"plasticity.rule={rule}", "plasticity.learn_feedback=false"]).rule.rule == rule
                continue
            assert load_experiment(f, [f"plasticity.rule={rule}"]).rule.rule == rule


def test_numbers_outside_float32_are_refused():
    with pytest.raises(ConfigError, match=r"projections\[0\].init.uniform.low: -1e\+300 is outside the float32 range"):
        model(["projections.0.init={uniform: {low: -1.0e300, high: 1.0}}"])


# ------------------------------------------------------------------ names (issue 20, item 2)
def _renamed(population: str) -> dict:
    """The MLP with its population h1 renamed (in the populations and both projections)."""
    data = copy.deepcopy(MLP)
    data["populations"] = {(population if k == "h1" else k): v for k, v in data["populations"].items()}
    for proj in data["projections"]:
        for end in ("from", "to"):
            if proj[end] == "h1":
                proj[end] = population
    return data


@pytest.mark.parametrize("name", ["../../x", "/tmp/x", "a/b", "a\\b", "a\0b", "", ".hidden", "..", "x" * 65,
                                  "h1->h2", "a b", "é"])
def test_bad_model_names_are_refused_naming_the_field_the_name_and_the_pattern(name):
    from dendrisim.config.limits import NAME_PATTERN

    with pytest.raises(ConfigError) as info:
        load_experiment({**copy.deepcopy(MLP), "name": name}, file="m.yaml")
    msg = str(info.value)
    assert msg.startswith("m.yaml: name: ") and NAME_PATTERN in msg and "model name" in msg
    assert repr(name)[:40] in msg or "..." in msg


@pytest.mark.parametrize("name", ["a/b", "../up", "", "n\0ul", "/abs", "a.b"])
def test_bad_population_names_are_refused_before_they_become_hdf5_groups(name):
    from dendrisim.config.limits import NAME_PATTERN

    with pytest.raises(ConfigError) as info:
        load_experiment(_renamed(name), file="m.yaml")
    msg = str(info.value)
    assert msg.startswith("m.yaml: populations.") and "population name" in msg and NAME_PATTERN in msg
    assert repr(name) in msg


def test_a_projection_end_that_is_no_valid_name_is_refused_by_its_field():
    data = copy.deepcopy(MLP)
    data["projections"][0]["to"] = "../h1"
    with pytest.raises(ConfigError, match=r"m.yaml: projections\[0\].to: '../h1' is not a valid population name"):
        load_experiment(data, file="m.yaml")


@pytest.mark.parametrize("name", ["dll_mlp_digits", "h1", "_x", "run_v2-b", "A" * 64])
def test_good_names_pass(name, tmp_path):
    assert load_experiment({**_renamed(name), "name": name}).config.name == name
    if name == "run_v2-b":  # the name becomes a torch module, an HDF5 group and a folder: a run goes through
        from dendrisim.training import RunOptions, Trainer

        exp = load_experiment({**_renamed(name), "name": name}, ["training.max_steps_per_epoch=1"])
        Trainer(exp, RunOptions(out_dir=tmp_path / "run", log=lambda s: None)).run()
        import h5py

        with h5py.File(tmp_path / "run" / "recording.h5", "r") as f:
            assert name in f["populations"]


def test_every_shipped_model_uses_valid_names():
    import re
    from pathlib import Path

    import yaml

    from dendrisim.config.limits import NAME_PATTERN

    for path in sorted((Path(__file__).resolve().parent.parent / "models").glob("*.yaml")):
        data = yaml.safe_load(path.read_text())
        for name in [data["name"], *data["populations"]]:
            assert re.fullmatch(NAME_PATTERN, name), (path, name)


# ------------------------------------------------------------- bounded YAML (issue 20, item 3)
LAUGHS = ('a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]\n'
          + "".join(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]\n" for i in range(1, 10)))


@pytest.mark.parametrize("text, expected", [
    (LAUGHS, r"line 6, column 5: the aliases expand to more than 100,000 values"),
    ("x: " + "[" * 50_000 + "]" * 50_000 + "\n", r"line 1, column 68: mappings and lists nested more than 64 deep"),
    ("x:\n" + "".join(" " * (i + 1) + f"k{i}:\n" for i in range(200)), r"nested more than 64 deep"),
    ("x: " + "9" * 5000 + "\n", r"line 1, column 4: a number of 5,000 characters \(at most 100 are allowed\)"),
    ("x: -1" + "0" * 5000 + ".5e+3\n", r"a number of 5,007 characters"),
    ("x: &a [1, *a]\n", r"an \*alias refers to the value that holds it \(a cycle\)"),
    ("a: &a [1]\n" + "".join(f"b{i}: *a\n" for i in range(1001)), r"more than 1000 uses of \*aliases"),
    ("a0: &a0 " + "[" * 40 + "1" + "]" * 40 + "\na1: " + "[" * 40 + "*a0" + "]" * 40 + "\n",
     r"the aliases nest mappings and lists more than 64 deep"),
    ("description: " + "x" * (1 << 20) + "\n", r"larger than 1 MiB, the limit of a model file"),
])
def test_yaml_past_its_limits_is_a_config_error_at_once_with_flat_memory(tmp_path, text, expected):
    """Each attack stops with a ConfigError naming the file and the limit, under a generous
    alarm (a hang guard, not a timing test) and with a tracemalloc peak far below what the
    attack would cost expanded (10^9 values, 50,000 frames, 5,000-digit conversions)."""
    import signal
    import tracemalloc

    path = tmp_path / "attack.yaml"
    path.write_text(text)

    def hang(signum, frame):
        raise TimeoutError("read_yaml did not stop within 20 s")

    previous = signal.signal(signal.SIGALRM, hang)
    signal.alarm(20)
    tracemalloc.start()
    try:
        with pytest.raises(ConfigError, match=r"attack.yaml: " + ("" if "MiB" in expected else ".*") + expected) as info:
            load_experiment(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    assert peak < 16 * 2**20 + 2 * len(text), peak
    assert len(str(info.value)) < 400 and "\n" not in str(info.value)


def test_values_near_the_limits_still_load(tmp_path):
    path = tmp_path / "ok.yaml"
    path.write_text("a: &a [1, 2]\nb: *a\nc: " + "[" * 60 + "1" + "]" * 60 + "\nd: " + "9" * 100 + "\n")
    from dendrisim.config import read_yaml

    data = read_yaml(path)
    assert data["b"] == [1, 2] and data["d"] == int("9" * 100)


def test_overrides_are_bounded_like_files():
    with pytest.raises(ConfigError, match=r"nested more than 64 deep"):
        model(["description=" + "[" * 5000 + "]" * 5000])
    with pytest.raises(ConfigError, match=r"a number of 400 characters"):
        model(["training.epochs=" + "7" * 400])


def test_error_messages_never_format_a_value_in_full():
    """A huge value (shared many times over, as aliases build it) is shown cut short."""
    value = ["x" * 1000]
    for _ in range(40):  # 2**40 leaves, shared: only a truncated repr can be formatted
        value = [value, value]
    data = copy.deepcopy(MLP)
    data["optimizer"] = {"betas": value}
    with pytest.raises(ConfigError) as info:
        load_experiment(data, file="m.yaml")
    assert info.value.args[0].startswith("m.yaml: optimizer.betas") and len(str(info.value)) < 400


@pytest.mark.parametrize("override, match", [
    ("populations.h1.size=" + "1" * 60, r"populations.h1.size: <an integer of 60 digits> is larger than the tensors' "
                                        r"integers allow"),
    ("populations.h1.size=9000000000000000000", r"populations.h1.size: 9000000000000000000 must be <= 268435456"),
    ("populations.h1={shape: [100000, 100000]}", r"populations.h1.shape: \[100000, 100000\] holds more than"),
    ("task.batch_size=" + "9" * 20, r"task.batch_size: .* is larger than the tensors' integers allow"),
    ("training.seed=4294967296", r"training.seed: 4294967296 must be <= 4294967295"),
])
def test_integers_past_what_torch_and_numpy_take_are_config_errors(override, match):
    """Found by the whole-stack fuzzer (--long): these ended in torch's and numpy's tracebacks."""
    with pytest.raises(ConfigError, match=match):
        model([override])


# ----------------------------------------------------------------------------- dynamics.mode
def test_an_unknown_settling_scheme_names_the_file_field_value_and_the_registered_schemes():
    from dendrisim.settling import SCHEMES

    msg = bad("dynamics.mode=eular")
    assert msg.startswith("test.yaml: dynamics.mode: 'eular' is not a known settling scheme"), msg
    assert msg.endswith("choose one of " + ", ".join(SCHEMES.names())), msg
    assert {"steady", "euler"} <= set(SCHEMES.names())


def test_the_mode_is_a_name_checked_against_the_registry_not_the_schema():
    """The config layer knows no schemes: any name parses, the builder checks it."""
    import dataclasses
    import typing

    from dendrisim.config.schema import DynamicsConfig

    assert typing.get_type_hints(DynamicsConfig)["mode"] is str
    default = next(f for f in dataclasses.fields(DynamicsConfig) if f.name == "mode").default
    assert default == "steady"


def test_a_rule_with_a_relaxation_of_its_own_is_refused_by_a_scheme_that_runs_none():
    from dendrisim.builder import runs_under, scheme_refusal, schemes_of
    from dendrisim.plasticity import RULES
    from dendrisim.settling import SCHEMES

    assert schemes_of(RULES.get("pc")) == ["steady"]
    for name in RULES.names():
        rule = RULES.get(name)
        if not rule.relaxes and rule.relax is None and not rule.needs_compartments and not rule.contrastive \
                and not rule.needs_sweep:
            # the Rule protocol only: every scheme (a contrastive rule needs one that settles_free)
            assert schemes_of(RULES.get(name)) == SCHEMES.names(), name
            assert all(scheme_refusal(name, mode) is None for mode in SCHEMES.names())
    refusal = scheme_refusal("pc", "euler")
    assert refusal.startswith("rule pc cannot run under mode euler (it runs under steady): ")
    assert refusal.endswith(RULES.get("pc").settling_note)
    assert not runs_under(RULES.get("pc"), SCHEMES.get("euler")) and runs_under(RULES.get("pc"), SCHEMES.get("steady"))
    assert bad("dynamics.mode=euler", "plasticity.rule=pc") == f"test.yaml: dynamics.mode: {refusal}"


def test_only_a_simulating_scheme_gives_the_network_compartments():
    steady, euler = model([]), model(["dynamics.mode=euler"])
    assert not steady.simulated and euler.simulated
    for exp, simulated in ((steady, False), (euler, True)):
        net = build_network(exp, DataSpec((64,), 10))
        assert all((p.compartments is not None) == simulated for p in net.pyramidal())
