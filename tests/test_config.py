"""Bad model files fail before anything is built, naming the file, field, value and choices."""
import copy
import textwrap

import pytest

from conftest import MLP, model
from dendrisim.builder import load_experiment
from dendrisim.config import apply_overrides
from dendrisim.errors import ConfigError, DataError
from dendrisim.network import Network


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
    assert msg == "test.yaml: projections[1].compartment: 'apicl' is not one of basal, apical"


def test_apical_projection_is_refused_with_reason():
    with pytest.raises(ConfigError, match=r"projections\[1\].compartment: 'apical'.*built by the plasticity rule"):
        model(["projections.1.compartment=apical"])


def test_unknown_rule_lists_registered_rules():
    with pytest.raises(ConfigError, match=r"plasticity.rule: 'dl' is not a known plasticity rule; choose one of bp, dfa, dll, fa, kp, pc"):
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
        Network(exp, input_shape=(1, 8, 8), output_size=10)


def test_output_size_must_match_the_task():
    exp = model(["populations.out.size=7"])
    with pytest.raises(ConfigError, match=r"populations.out.size: 7 does not match the task, which needs 10 output neurons"):
        Network(exp, input_shape=(64,), output_size=10)


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
        for rule in ("dll", "bp", "fa", "dfa"):
            assert load_experiment(f, [f"plasticity.rule={rule}"]).rule.rule == rule


def test_numbers_outside_float32_are_refused():
    with pytest.raises(ConfigError, match=r"projections\[0\].init.uniform.low: -1e\+300 is outside the float32 range"):
        model(["projections.0.init={uniform: {low: -1.0e300, high: 1.0}}"])
