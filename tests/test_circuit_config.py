"""The cortical microcircuit's model file (issue 23): what loads, what the loader writes out,
and every bad file refused with one paragraph naming the file, the field, the value and what
is allowed.

The synapse models are the package's own (``dendrisim.plasticity.microcircuit``).
"""
import copy

import pytest

from conftest import model
from dendrisim.builder import load_experiment
from dendrisim.errors import ConfigError
from dendrisim.plasticity import RULES, PlasticityRule

#: the circuit of the issue at toy size: h1 predicted by i1, which out nudges
CIRCUIT = {
    "name": "mc",
    "task": {"type": "classification", "dataset": "digits", "batch_size": 16},
    "populations": {
        "input": {"type": "input", "size": "auto"},
        "h1": {"type": "pyramidal", "size": 12, "activation": "sigmoid"},
        "i1": {"type": "interneuron", "size": "auto", "activation": "auto"},
        "out": {"type": "pyramidal", "size": "auto", "activation": "linear"},
    },
    "projections": [
        {"from": "input", "to": "h1"},
        {"from": "h1", "to": "out"},
        {"from": "h1", "to": "i1"},
        {"from": "out", "to": "h1", "compartment": "apical"},
        {"from": "i1", "to": "h1", "compartment": "apical"},
        {"from": "out", "to": "i1", "compartment": "soma"},
    ],
    "plasticity": {"rule": "mc_basal"},
    "dynamics": {"mode": "euler", "steps": 20, "dt": 0.2},
    "training": {"phases": [
        {"name": "self_predicting", "epochs": 2, "teacher": False, "learn": ["h1->i1", "i1->h1"]},
        {"name": "learning", "epochs": 3, "teacher": True, "lr_scale": {"i1->h1": 0.05}},
    ]},
}




def circuit(*overrides, base=CIRCUIT):
    return model(list(overrides), base=base)


def refused(match, *overrides, base=CIRCUIT):
    with pytest.raises(ConfigError, match=match) as info:
        circuit(*overrides, base=base)
    message = str(info.value)
    assert message.startswith("test.yaml: ") and "\n" not in message  # one paragraph naming the file
    return message


def edited(edit) -> dict:
    data = copy.deepcopy(CIRCUIT)
    edit(data)
    return data


# ----- what loads -------------------------------------------------------------------------

def test_the_circuit_of_the_issue_loads_and_the_resolved_file_says_what_runs():
    experiment = circuit()
    resolved = experiment.to_dict()
    soma = resolved["projections"][5]
    assert soma["compartment"] == "soma" and soma["connectivity"] == "one_to_one"
    assert "plasticity" not in soma  # weightless: no rule
    top_down, lateral = resolved["projections"][3], resolved["projections"][4]
    assert top_down["learnable"] is False and lateral["learnable"] is True
    assert top_down["bias"] is None and not experiment.config.projections[3].has_bias
    assert not experiment.config.projections[5].is_learnable and not experiment.config.projections[5].has_bias
    # the default synapse models, written into the resolved file
    assert top_down["plasticity"]["rule"] == "mc_topdown" and lateral["plasticity"]["rule"] == "mc_lateral"
    assert "plasticity" not in resolved["projections"][2]  # the top-level rule serves it
    assert experiment.rule_of("h1->i1").rule == experiment.rule_of("h1->out").rule == "mc_basal"
    # loading the resolved file again gives the same experiment
    assert load_experiment(resolved, file="again.yaml").to_dict() == resolved


def test_epochs_are_the_phases_sum_and_phases_get_names():
    experiment = circuit("training.phases.1.name=''")
    assert experiment.config.training.epochs == 5
    assert [p.name for p in experiment.config.training.phases] == ["self_predicting", "phase1"]
    assert circuit("training.epochs=5").config.training.epochs == 5


def test_an_explicit_learnable_top_down_projection_stays_learnable():
    assert circuit("projections.3.learnable=true").config.projections[3].is_learnable


def test_top_level_rule_that_does_not_serve_interneurons_hands_them_to_their_default():
    experiment = circuit("plasticity.rule=bp")
    assert experiment.rule_of("h1->i1").rule == "mc_basal"
    assert experiment.rule_of("h1->out").rule == "bp"


def test_interneuron_size_may_be_written_out_when_it_matches():
    from dendrisim.builder import DataSpec
    from dendrisim.shapes import population_shapes

    experiment = circuit("populations.i1.size=10")
    shapes = population_shapes(experiment, input_shape=(64,), output_size=10)
    assert shapes["i1"] == (10,) == shapes["out"]
    assert population_shapes(circuit(), input_shape=(64,), output_size=7)["i1"] == (7,)
    assert DataSpec  # the builder's spec type is what the shapes come from at run time


# ----- item 8: bad files --------------------------------------------------------------------

def test_interneuron_without_nudging_says_what_to_add():
    refused(r"test.yaml: populations.i1: interneuron 'i1' has no nudging projection.*add "
            r"\{from: out, to: i1, compartment: soma\}", base=edited(lambda d: d["projections"].pop(5)))


def test_interneuron_without_a_dendrite_says_what_to_add():
    def no_dendrite(d):
        d["projections"].pop(2)  # h1->i1
        for phase in d["training"]["phases"]:
            phase["learn"] = [n for n in phase.get("learn", []) if n != "h1->i1"] or None
    refused(r"test.yaml: populations.i1: interneuron 'i1' has no dendrite: no basal projection ends on it.*add "
            r"\{from: h1, to: i1\}", base=edited(no_dendrite))


@pytest.mark.parametrize("extra,what", [({"plasticity": {"rule": "bp"}}, "no plasticity block"),
                                        ({"lr_scale": 3}, "no lr_scale")])
def test_a_nudging_projection_takes_no_rule_and_no_learning_rate(extra, what):
    refused(rf"test.yaml: projections\[5\]: a compartment: soma projection has no weights to learn, so {what}",
            base=edited(lambda d: d["projections"][5].update(extra)))


@pytest.mark.parametrize("value", ["-1", ".nan"])
def test_a_phase_learning_rate_multiplier_is_not_negative(value):
    refused(r"test.yaml: training.phases\[1\].lr_scale.i1->h1: .* must be >= 0", f"training.phases.1.lr_scale={{i1->h1: {value}}}")


def test_interneuron_with_two_nudging_projections():
    def two(d):
        d["populations"]["h0"] = {"size": 10}
        d["projections"] += [{"from": "input", "to": "h0"}, {"from": "h0", "to": "out"},
                             {"from": "h0", "to": "i1", "compartment": "soma"}]
    refused(r"populations.i1: interneuron 'i1' is nudged by 2 soma projections \(projections\[5\] \(out->i1\), "
            r"projections\[8\] \(h0->i1\)\).*keep one", base=edited(two))


def test_interneuron_size_mismatch_names_the_nudging_source():
    from dendrisim.shapes import population_shapes

    experiment = circuit("populations.i1.size=16")
    with pytest.raises(ConfigError, match=r"test.yaml: populations.i1.size: 16 does not match out \(10 neurons\), "
                                          r"which nudges it one to one through projections\[5\]; write size: auto"):
        population_shapes(experiment, input_shape=(64,), output_size=10)


@pytest.mark.parametrize("index,projection,match", [
    (4, "{from: i1, to: out, compartment: apical}",
     r"projections\[4\].to: 'out' has no apical compartment that takes projections: it is the output "
     r"\(its apical compartment holds the teacher\); apical projections end on hidden pyramidal populations: h1"),
    (4, "{from: input, to: i1, compartment: apical}",
     r"projections\[4\].to: 'i1' has no apical compartment.*an interneuron population \(interneurons have a "
     r"soma and a dendrite only\); apical projections end on hidden pyramidal populations: h1"),
    (3, "{from: h1, to: input, compartment: apical}",
     r"projections\[3\].to: 'input' is an input population and cannot receive projections; apical "
     r"projections end on hidden pyramidal populations: h1"),
])
def test_apical_projection_onto_a_population_without_an_apical_compartment(index, projection, match):
    refused(match, f"projections.{index}={projection}")


def test_soma_projection_onto_a_pyramidal_population():
    refused(r"projections\[5\].to: 'h1' is a pyramidal population; compartment: soma projections nudge interneurons"
            r".*: i1", "projections.5.to=h1")


def test_soma_projection_from_an_interneuron():
    def from_interneuron(d):
        d["populations"]["i2"] = {"type": "interneuron", "size": "auto", "activation": "auto"}
        d["projections"] += [{"from": "h1", "to": "i2"}, {"from": "i2", "to": "h1", "compartment": "apical"},
                             {"from": "i1", "to": "i2", "compartment": "soma"}]
    refused(r"projections\[8\].from: 'i1' is an interneuron population;.*source of a compartment: soma projection "
            r"is a pyramidal population", base=edited(from_interneuron))


@pytest.mark.parametrize("override,match", [
    ("projections.5.connectivity=dense", r"projections\[5\]: a compartment: soma projection nudges an interneuron one "
                                         r"to one, without weights; connectivity dense is not allowed here"),
    ("projections.5.bias=true", r"projections\[5\]: a compartment: soma projection has no weights, so bias: true"),
    ("projections.5.learnable=true", r"projections\[5\]: .*no weights, so learnable: true is not allowed"),
    ("projections.5.init={normal: {std: 0.1}}", r"projections\[5\]: .*no weights to initialise; remove init"),
    ("projections.3.kind=recurrent", r"projections\[3\]: a compartment: apical projection is not delayed; kind: "
                                     r"recurrent is for basal projections"),
    ("projections.5.kind=recurrent", r"projections\[5\]: .*connectivity one_to_one|projections\[5\]: a compartment: "
                                     r"soma projection is not delayed"),
    ("projections.1.connectivity=one_to_one", r"projections\[1\]: connectivity one_to_one is the somatic nudging of "
                                              r"interneurons and needs compartment: soma, not basal"),
])
def test_projection_fields_against_their_compartment(override, match):
    refused(match, override)


def test_circuits_in_recurrent_networks_are_refused():
    refused(r"projections\[3\].compartment: out->h1 makes this a microcircuit.*h1->h1 \(projections\[6\]\) is "
            r"recurrent. Circuits in recurrent networks are not supported",
            base=edited(lambda d: d["projections"].append({"from": "h1", "to": "h1", "kind": "recurrent"})))


def test_steady_refuses_circuits_saying_why():
    refused(r"test.yaml: dynamics.mode: mode steady cannot run a microcircuit \(out->h1 is an apical projection\): "
            r"steady settles apical inputs by one instant top-down sweep.*nonlinear fixed point.*Use mode: euler",
            "dynamics.mode=steady")


def test_interneuron_constants_only_on_interneurons_and_back():
    refused(r"dynamics.populations.h1.g_som: g_som is a constant of interneurons; 'h1' is a pyramidal population, "
            r"whose constants are tau, g_leak, g_basal, g_apical", "dynamics.populations={h1: {g_som: 0.5}}")
    refused(r"dynamics.populations.i1.g_apical: g_apical is a constant of pyramidal populations; 'i1' is an "
            r"interneuron population, whose constants are tau, g_leak, g_dendrite, g_som",
            "dynamics.populations={i1: {g_apical: 0.5}}")
    assert circuit("dynamics.populations={i1: {g_som: 0.5, g_dendrite: 2.0}}")


def test_euler_stability_includes_interneurons():
    refused(r"dynamics.populations.i1: dt 0.2 is unstable for population 'i1': dt·\(g_leak \+ g_dendrite \+ g_som\)"
            r"/tau = 0.2 x \(0.0 \+ 9.0 \+ 2.0\) / 1.0 = 2.2", "dynamics.populations={i1: {g_dendrite: 9.0, g_som: 2.0}}")
    refused(r"dynamics.dt: dt 0.2 is unstable for population 'i1'", "dynamics.g_som=9.5")


@pytest.mark.parametrize("override,match", [
    ("populations.h1.activation=auto", r"populations.h1.activation: activation auto takes the activation of the "
                                       r"population that nudges an interneuron; 'h1' is a pyramidal population"),
    ("populations.i1.size=null", r"populations.i1: an interneuron population needs size: auto"),
])
def test_interneuron_only_keys(override, match):
    refused(match, override)


def test_interneuron_sends_no_basal_projection():
    refused(r"projections\[6\].compartment: 'i1' is an interneuron population; interneurons project onto the apical "
            r"compartment", base=edited(lambda d: d["projections"].append({"from": "i1", "to": "out"})))


# ----- rules per projection ---------------------------------------------------------------

def test_lateral_model_on_a_basal_projection_names_the_rules_that_serve_it():
    message = refused(r"test.yaml: projections\[1\].plasticity.rule: mc_lateral cannot govern h1->out: it is the "
                      r"synapse model of interneuron -> apical projections; h1->out is a basal projection into a "
                      r"pyramidal population, which .*\bbp\b.*serve", "projections.1.plasticity={rule: mc_lateral}")
    for rule in ("mc_basal", "dll", "fa", "kp"):
        assert rule in message.split("which ")[1]
    assert "mc_topdown" not in message.split("which ")[1]


def test_basal_model_on_an_apical_projection():
    refused(r"projections\[4\].plasticity.rule: mc_basal cannot govern i1->h1: .*basal projections.*; i1->h1 is an "
            r"apical projection from an interneuron population, which mc_lateral serve",
            "projections.4.plasticity={rule: mc_basal}")


def test_a_feedback_rule_on_an_interneuron_dendrite():
    refused(r"projections\[2\].plasticity.rule: dll cannot govern h1->i1: it governs basal projections into "
            r"pyramidal populations; h1->i1 is a basal projection into an interneuron population, which mc_basal serve",
            "projections.2.plasticity={rule: dll}")


def test_a_projection_no_registered_rule_governs_by_default():
    # an apical projection from the input: nothing serves it, nothing claims it
    def from_the_input(d):
        d["populations"]["h0"] = {"size": 6}
        d["projections"][0] = {"from": "input", "to": "h0"}
        d["projections"] += [{"from": "h0", "to": "h1"}, {"from": "input", "to": "h1", "compartment": "apical"}]
    refused(r"test.yaml: plasticity.rule: mc_basal cannot govern input->h1: .*; input->h1 is an apical projection from an "
            r"input population, which no registered rule serves",
            base=edited(from_the_input))


def test_default_table_without_the_microcircuit_models(monkeypatch):
    """The default-rule mechanism alone: a rule registered only for this test claims the
    projections the top-level rule leaves, with its default options."""

    class Claims(PlasticityRule):
        carries_feedback = False

        @classmethod
        def serves(cls, proj, populations):
            return None

        @classmethod
        def default_for(cls, proj, populations):
            return proj.compartment != "basal" or populations[proj.target].type == "interneuron"

    for name in ("mc_basal", "mc_lateral", "mc_topdown"):
        monkeypatch.setattr(RULES.get(name), "default_for", classmethod(lambda cls, proj, populations: False))
    RULES.register("claims_test")(Claims)
    try:
        experiment = circuit("plasticity.rule=bp")
    finally:
        RULES.unregister("claims_test")
    assert {n: o.rule for n, o in experiment.projection_rules.items()} == {
        "h1->i1": "claims_test", "out->h1": "claims_test", "i1->h1": "claims_test"}
    assert experiment.rule_of("h1->out").rule == "bp" and "out->i1" not in experiment.projection_rules


# ----- phases --------------------------------------------------------------------------------

def test_every_phase_without_a_teacher_is_refused():
    refused(r"test.yaml: training.phases: no phase has teacher: true \(self_predicting, learning all run without "
            r"it\), so the output is never nudged.*give the learning phase teacher: true",
            "training.phases.1.teacher=false")


@pytest.mark.parametrize("key,value", [("learn", "[h1->i1, h1->i2]"), ("lr_scale", "{h2->out: 2}")])
def test_phase_names_unknown_projections(key, value):
    refused(rf"test.yaml: training.phases\[1\].{key}: '(h1->i2|h2->out)' is not a learnable projection of this "
            r"model; .*: input->h1, h1->out, h1->i1, i1->h1$", f"training.phases.1.{key}={value}")


def test_phase_names_a_fixed_projection():
    # the top-down projection is fixed by default: naming it in learn is an error, not a silent no-op
    refused(r"training.phases\[0\].learn: 'out->h1' is not a learnable projection", "training.phases.0.learn=[out->h1]")


def test_a_files_epochs_must_be_the_phases_sum():
    spec = copy.deepcopy(CIRCUIT)
    spec["training"]["epochs"] = 7
    refused(r"test.yaml: training.epochs: 7 is not the sum of the phases' epochs \(2 \+ 3 = 5\); with "
            r"training.phases, training.epochs is their sum: write 5 or leave it out", base=spec)
    spec["training"]["epochs"] = 5
    assert circuit(base=spec).config.training.epochs == 5
    # phases given on the command line replace the file's: their sum is the total
    training = circuit("training.phases=[{epochs: 4, teacher: false}, {epochs: 4}]", base=spec).config.training
    assert training.epochs == 8


def test_an_explicit_total_of_epochs_changes_the_last_phase_only():
    # --epochs N, --set training.epochs=N and a tuner's trial length give the total: the last phase absorbs it
    for total, last in ((7, 5), (3, 1), (5, 3)):
        training = circuit(f"training.epochs={total}").config.training
        assert training.epochs == total and [p.epochs for p in training.phases] == [2, last]
    refused(r"test.yaml: training.epochs: 2 epochs would end before the last phase 'learning' starts \(the phases take "
            r"2 \+ 3 = 5 epochs\);.*give at least 3, or change the phases", "training.epochs=2")


@pytest.mark.parametrize("override,match", [
    ("training.phases.1.name=self_predicting", r"training.phases\[1\].name: 'self_predicting' is also the name of "
                                                r"training.phases\[0\]; phase names are unique"),
    ("training.phases.1.name='a b/c'", r"training.phases\[1\].name: .*'a b/c'"),
    ("training.phases.0.epochs=0", r"training.phases\[0\].epochs: 0 must be >= 1"),
    ("training.phases.0.teacher='yes'", r"training.phases\[0\].teacher: 'yes' is not bool"),
])
def test_bad_phase_fields(override, match):
    refused(match, override)


def test_phases_work_without_a_circuit():
    experiment = model(["training.phases=[{epochs: 1, learn: [h2->out]}, {epochs: 2}]", "training.epochs=3"])
    assert experiment.config.training.epochs == 3
    assert [p.name for p in experiment.config.training.phases] == ["phase0", "phase1"]


# ----- --check -----------------------------------------------------------------------------

def test_check_lists_apical_and_somatic_projections_and_their_loops():
    from dendrisim.inspect import circuit_lines

    lines = circuit_lines(circuit("projections.3.learnable=true"))
    assert lines[:4] == ["apical and somatic projections (may close loops):",
                         "  out->h1 apical top-down, learnable (mc_topdown)",
                         "  i1->h1 apical lateral (mc_lateral)",
                         "  out->i1 soma nudging one-to-one, g_som 0.8"]
    assert lines[4] == "  loops: h1 -> i1 -> h1; h1 -> out -> h1; h1 -> out -> i1 -> h1"
    assert circuit_lines(circuit())[1] == "  out->h1 apical top-down, fixed (mc_topdown)"
    assert circuit_lines(model()) == []


def test_check_lists_the_phases():
    from dendrisim.inspect import phase_lines

    assert phase_lines(circuit("training.phases.0.lr=0.03")) == [
        "phases (2, 5 epochs in all):",
        "  self_predicting: epochs 1-2; teacher off; learn h1->i1, i1->h1; lr 0.03",
        "  learning: epochs 3-5; teacher on; learn every learnable projection; lr_scale i1->h1 x0.05"]
    steady = model(["training.phases=[{epochs: 1, teacher: false}, {epochs: 1}]", "training.epochs=2"])
    assert phase_lines(steady)[1] == ("  phase0: epoch 1; teacher off (under mode steady every update is then zero); "
                                      "learn every learnable projection")
    assert phase_lines(model()) == []


def _network_builds_circuits() -> bool:
    from dendrisim.network import Network

    return hasattr(Network, "interneurons")


@pytest.mark.skipif(not _network_builds_circuits(), reason="describe builds the network on the meta device: needs "
                    "the network that builds interneurons and apical/soma projections (helper B, issue 23); unskip "
                    "after merging")
def test_describe_shows_the_circuit_block():
    from dendrisim.inspect import describe

    text = describe(circuit())
    assert "apical and somatic projections (may close loops):\n  out->h1 apical top-down, fixed (mc_topdown)" in text
    assert "h1 -> out -> h1" in text and "  self_predicting: epochs 1-2; teacher off" in text
    # how each projection came by its rule
    for line in ("input->h1: mc_basal (the top-level rule)",
                 "h1->i1: mc_basal (the top-level rule)",
                 "out->h1: mc_topdown (the synapse model made for it: the top-level rule does not serve it)",
                 "i1->h1: mc_lateral (the synapse model made for it: the top-level rule does not serve it)",
                 "out->i1: no weights (fixed)"):
        assert f"  {line}\n" in text, line
    assert "  h1.apical <- i1.rate through W[i1->h1] (explicit apical projection)\n" in text
    with_bp = describe(circuit("plasticity.rule=bp"))
    assert "h1->out: bp (the top-level rule)" in with_bp
    assert "  h1.apical <- out.error through W[h1->out]ᵀ" in with_bp  # bp's errors beside the circuit's rates
