"""Issue 28's burst surface attacked from the user's side (``type: burst``, ``reads``, the
burstccn and burstprop rules): one test per failure family found, each failing before its fix.

- a projection with ``reads`` lost its ``plasticity:`` block in the resolved model (``to_dict``:
  model.yaml of a run, checkpoints, the recording's ``model_yaml``, resume);
- options of the output population that nothing reads (``burst_gain``, ``gate``: the target
  sets its burst probability), a non-sigmoid output (its teaching formula
  takes ``1 − e``: a linear output diverged to 1e16 in two steps) and baselines that make no
  probability (output ``p_b > 1/2``: ``p`` up to ``2 p_b``) or no signal (hidden ``p_b = 1``);
- rule options with nothing to act on (``feedback`` with no Y, ``cancel`` with no Q, in the
  top-level block or a projection's), ``bias: true`` on an apical projection (never learnt,
  stays 0), and a hidden burst population with no apical projection (never learns);
- ``channels`` refused on burst populations although ``shape`` + conv2d ran;
- ``dendrisim bench --model burstccn_digits`` stopped at dfa, which cannot share the network.

The fuzzer's kind ``burst`` (tests/test_fuzz_burst.py) generates these and more.
"""
from __future__ import annotations

import copy
import math
import re

import pytest
import yaml

from dendrisim.builder import load_experiment
from dendrisim.errors import ConfigError

SHIPPED = "models/burstccn_digits.yaml"


def model(**changes) -> dict:
    """The shipped BurstCCN digits model as data, made small, with ``changes`` applied (a
    function of the dict, by name, for readability)."""
    with open(SHIPPED) as f:
        m = yaml.safe_load(f)
    m["populations"]["h1"]["size"] = 16
    m["training"].update(epochs=1, max_steps_per_epoch=2)
    m["recording"]["every"] = 1
    for change in changes.values():
        change(m)
    return m


def refused(m: dict, path: str, *words: str) -> str:
    """The one-paragraph ConfigError the model raises, naming ``path`` and ``words``."""
    with pytest.raises(ConfigError) as err:
        load_experiment(m, [], file="m.yaml")
    text = str(err.value)
    assert f"m.yaml: {path}:" in text, text
    assert "\n" not in text
    for word in words:
        assert word in text, text
    return text


def no_y_no_q(m):
    del m["projections"][2:4]


# ------------------------------------------------------------------ the resolved model
def test_a_reads_projection_keeps_its_plasticity_block_in_the_resolved_model():
    m = model(q=lambda m: m["projections"][3].update(learnable=True,
                                                     plasticity={"rule": "burstccn", "cancel": "given"}))
    exp = load_experiment(m, [], file="m.yaml")
    data = exp.to_dict()
    assert data["projections"][3]["plasticity"]["cancel"] == "given"
    assert "plasticity" not in data["projections"][2]
    again = load_experiment(yaml.safe_load(exp.to_yaml()), [], file="m.yaml")
    assert again.projection_rules["out:event->h1"].cancel == "given"


def test_a_run_directory_model_yaml_keeps_the_block(tmp_path):
    from test_fuzz_inputs import run_cli

    m = model(q=lambda m: m["projections"][3].update(learnable=True,
                                                     plasticity={"rule": "burstccn", "cancel": "given"}))
    path = tmp_path / "m.yaml"
    path.write_text(yaml.safe_dump(m))
    outcome = run_cli(["run", path, "--out", tmp_path / "run", "--set", "recording.enabled=false"], limit=120)
    assert outcome.kind == "ok", outcome.err[-2000:]
    saved = yaml.safe_load((tmp_path / "run" / "model.yaml").read_text())
    assert saved["projections"][3]["plasticity"]["cancel"] == "given"


# ------------------------------------------------------------------ the output population
@pytest.mark.parametrize("key,value", [("burst_gain", 1e30), ("gate", False)])
def test_options_the_output_ignores_are_refused(key, value):
    m = model(o=lambda m: m["populations"]["out"].update({key: value}))
    refused(m, f"populations.out.{key}", "no effect on the output", "set by the target")


@pytest.mark.parametrize("activation", ["linear", "softmax", "tanh"])
def test_a_non_sigmoid_output_is_refused_even_without_the_gate(activation):
    """gate: false let a linear output through, whose teaching formula p_b ((t − e)(1 − e) + 1)
    then diverged (test loss 3.6e16 in two steps, no error)."""
    m = model(o=lambda m: m["populations"]["out"].update(activation=activation, gate=False))
    refused(m, "populations.out.gate", "no effect on the output")
    m["populations"]["out"].pop("gate")
    refused(m, "populations.out.activation", "must be sigmoid", activation)


def test_the_hidden_populations_keep_their_burst_options():
    m = model(h=lambda m: m["populations"]["h1"].update(burst_gain=2.0, gate=False,
                                                        activation="tanh"))
    exp = load_experiment(m, [], file="m.yaml")
    assert exp.config.populations["h1"].options["burst_gain"] == 2.0


@pytest.mark.parametrize("value", [0.6, 0.99])
def test_an_output_baseline_above_one_half_is_refused(value):
    m = model(o=lambda m: m["populations"]["out"].update(baseline=value))
    refused(m, "populations.out.baseline", "above 1", "(0, 0.5]")


def test_a_hidden_baseline_of_one_is_refused_and_below_it_accepted():
    refused(model(h=lambda m: m["populations"]["h1"].update(baseline=1.0)), "populations.h1.baseline",
            "must be < 1")
    load_experiment(model(h=lambda m: m["populations"]["h1"].update(baseline=0.9)), [], file="m.yaml")
    load_experiment(model(o=lambda m: m["populations"]["out"].update(baseline=0.5)), [], file="m.yaml")


# ------------------------------------------------------------------ rule options with nothing to act on
@pytest.mark.parametrize("rule", ["burstccn", "burstprop"])
@pytest.mark.parametrize("feedback", ["symmetric", "tied"])
def test_a_feedback_mode_with_no_y_is_refused(rule, feedback):
    """Y removed, Q kept (burstccn then needs cancel: given, which has no Y to copy)."""
    extra = {"cancel": "given"} if rule == "burstccn" else {}
    m = model(y=lambda m: m["projections"].pop(2),
              p=lambda m: m["plasticity"].update(rule=rule, feedback=feedback, **extra))
    refused(m, "plasticity.feedback", f"feedback {feedback}", "no projection this block governs")


@pytest.mark.parametrize("cancel", ["given", "tied"])
def test_a_cancel_mode_with_no_q_is_refused(cancel):
    m = model(q=lambda m: m["projections"].pop(3), p=lambda m: m["plasticity"].update(cancel=cancel))
    refused(m, "plasticity.cancel", f"cancel {cancel}", "Q (an apical projection")


def test_a_projection_block_with_a_mode_for_another_projection_is_refused():
    m = model(b=lambda m: m["projections"][0].update(plasticity={"rule": "burstccn", "cancel": "tied"}))
    refused(m, "projections[0].plasticity.cancel", "input->h1")
    m = model(b=lambda m: m["projections"][3].update(plasticity={"rule": "burstccn", "feedback": "tied"}))
    refused(m, "projections[3].plasticity.feedback", "out:event->h1")


def test_a_bias_on_an_apical_projection_is_refused():
    m = model(y=lambda m: m["projections"][2].update(bias=True))
    refused(m, "projections[2].bias", "stay at zero")


@pytest.mark.parametrize("rule", ["burstccn", "burstprop"])
def test_a_hidden_burst_population_with_no_apical_input_is_refused(rule):
    m = model(n=no_y_no_q, p=lambda m: m["plasticity"].update(rule=rule))
    refused(m, "plasticity.rule", "h1 is a hidden burst population with no apical projection", "reads: burst")


@pytest.mark.parametrize("rule", ["fa", "bp", "kp"])
def test_rules_that_carry_errors_back_do_not_govern_burst_neurons(rule):
    """They would only feed their error into the burst sweep: not backprop, not fa (bp gave a
    test loss of 4.997 there against 3.441 on the same network of pyramidal neurons)."""
    refused(model(n=no_y_no_q, p=lambda m: m["plasticity"].update(rule=rule)), "plasticity.rule",
            "learn by the burst rules only", "burstccn, burstprop")


# ------------------------------------------------------------------ spatial burst populations
def test_a_burst_population_takes_channels_and_trains_finite(tmp_path):
    from test_fuzz_inputs import run_cli

    m = model(s=lambda m: (m["populations"]["h1"].pop("size"), m["populations"]["h1"].update(channels=3),
                           m["projections"][0].update(connectivity="conv2d", kernel=3)))
    path = tmp_path / "m.yaml"
    path.write_text(yaml.safe_dump(m))
    outcome = run_cli(["run", path, "--out", tmp_path / "run"], limit=120)
    assert outcome.kind == "ok", outcome.err[-2000:]
    import json

    summary = json.loads(outcome.out.strip().splitlines()[-1])
    assert math.isfinite(summary["test_loss"])


# ------------------------------------------------------------------ bench
def test_bench_steps_only_the_rules_that_load_the_burst_model():
    from dendrisim.bench import steady_rules

    exp = load_experiment(SHIPPED, [])
    rules = steady_rules(exp)
    assert rules == ["burstccn"]  # burstprop refuses the shipped model's Q; bp, fa, dfa, dll, pc its burst neurons
    for rule in rules:
        load_experiment(exp.to_dict(), [f"plasticity.rule={rule}"], file=exp.file)


# ------------------------------------------------------------------ the NaN guard
def test_the_guard_passes_huge_finite_values_whose_sum_overflows():
    """lr 1e38 on the burst model: every weight finite, their float32 sum inf; the guard's
    sentinel then found no bad tensor and raised StopIteration through the CLI (a traceback)."""
    from types import SimpleNamespace

    import torch

    from dendrisim.observers.guard import first_nonfinite

    proj = SimpleNamespace(name="a->b", weight=torch.full((4, 4), 3e38))
    network = SimpleNamespace(last_state=None, projections={"a->b": proj})
    rule = SimpleNamespace(named_parameters=lambda: [])
    assert first_nonfinite(network, rule) is None
    proj.weight[0, 0] = float("nan")
    assert first_nonfinite(network, rule) == ("projection", "a->b", "weight")


def test_a_huge_learning_rate_on_the_burst_model_ends_without_a_traceback(tmp_path):
    from test_fuzz_inputs import run_cli

    m = model(lr=lambda m: (m["optimizer"].update(lr=1e38), m["training"].update(max_steps_per_epoch=20)))
    path = tmp_path / "m.yaml"
    path.write_text(yaml.safe_dump(m))
    outcome = run_cli(["run", path, "--out", tmp_path / "run"], limit=120)
    assert outcome.kind in ("ok", "error"), outcome.err[-2000:]
    assert "Traceback" not in outcome.err


# ------------------------------------------------------------------ pyramidal populations below burst ones
def below(rule_h0: str, **h0_h1) -> dict:
    """input -> h0 (pyramidal, learning by ``rule_h0``) -> h1 (burst) -> out (burst), Y and Q into h1."""
    def build(m):
        m["populations"] = {"input": {"type": "input", "size": "auto"},
                            "h0": {"type": "pyramidal", "size": 12, "activation": "tanh"},
                            "h1": {"type": "burst", "size": 12, "activation": "sigmoid"},
                            "out": {"type": "burst", "size": "auto", "activation": "sigmoid"}}
        m["projections"] = [{"from": "input", "to": "h0", "plasticity": {"rule": rule_h0}},
                            {"from": "h0", "to": "h1", **h0_h1}, {"from": "h1", "to": "out"},
                            {"from": "out", "to": "h1", "compartment": "apical", "reads": "burst"},
                            {"from": "out", "to": "h1", "compartment": "apical", "reads": "event"}]
        m["recording"]["populations"] = {"h0": ["error"]}
    return model(b=build)


@pytest.mark.parametrize("rule", ["fa", "bp", "dll"])
def test_a_pyramidal_population_below_a_burst_one_with_no_error_is_refused(rule):
    """Before: input->h0 never moved (every rule gave the same test loss) and nothing said so."""
    refused(below(rule), "plasticity.rule", "carries no error back to h0", f"input->h0 (learning by {rule})")


def test_a_pyramidal_population_below_a_burst_one_may_be_frozen():
    """No rule can carry an error into it (rules that carry errors back do not govern
    projections into burst neurons), so the refusal's way out is a frozen projection."""
    refused(below("fa", plasticity={"rule": "fa"}), "projections[1].plasticity.rule", "learn by the burst rules only")
    m = below("fa")
    m["projections"][0]["learnable"] = False
    load_experiment(m, [], file="m.yaml")


# ------------------------------------------------------------------ what cancel sets
def test_cancel_sets_only_the_projections_that_carry_the_event_rate(tmp_path):
    """An apical projection reading burst_prob was taken for a Q: its own init silently
    replaced by −p_b Y."""
    import torch

    import dendrisim

    m = model(extra=lambda m: m["projections"].append({"from": "out", "to": "h1", "compartment": "apical",
                                                       "reads": "burst_prob", "init": {"normal": {"std": 0.3}}}))
    projections = dendrisim.Trainer(load_experiment(m, [], file="m.yaml"), out=tmp_path / "run").network.projections
    y = projections["out:burst->h1"].weight
    assert torch.allclose(projections["out:event->h1"].weight, -0.5 * y)
    assert not torch.allclose(projections["out:burst_prob->h1"].weight, -0.5 * y)


@pytest.mark.parametrize("second", [{"reads": "rate"}, {}])
def test_two_qs_for_one_y_are_refused_under_cancel(second):
    """Both were set to −p_b Y: the top-down input was cancelled twice over."""
    m = model(extra=lambda m: m["projections"].append({"from": "out", "to": "h1", "compartment": "apical", **second}))
    refused(m, "projections[3]", "cancelled 2 times over")
    m["plasticity"]["cancel"] = "given"
    load_experiment(m, [], file="m.yaml")


@pytest.mark.parametrize("index,key", [(3, "cancel"), (2, "feedback")])
def test_a_learnable_projection_that_tied_overwrites_is_refused(index, key):
    """Q learnable under cancel: tied (Y under feedback: tied) learnt, then was reset every step."""
    m = model(p=lambda m: (m["projections"][index].update(learnable=True), m["plasticity"].update({key: "tied"})))
    refused(m, f"projections[{index}].learnable", f"{key} tied", "undoes what it learns")


# ------------------------------------------------------------------ export
def test_a_burst_recording_with_y_and_q_weights_exports_to_nwb(tmp_path):
    """NWB names cannot hold ':': export refused every recording of a SRC:READS->TGT projection,
    calling it 'not a dendrisim recording, or a damaged one'."""
    pytest.importorskip("pynwb")
    from test_fuzz_inputs import run_cli

    m = model(r=lambda m: m["recording"].update(projections={"out:burst->h1": ["weight"],
                                                              "out:event->h1": ["weight"]}))
    path = tmp_path / "m.yaml"
    path.write_text(yaml.safe_dump(m))
    assert run_cli(["run", path, "--out", tmp_path / "run"], limit=120).kind == "ok"
    outcome = run_cli(["export", tmp_path / "run", "--nwb", tmp_path / "r.nwb"], limit=120)
    assert outcome.kind == "ok", outcome.err[-2000:]
    from pynwb import NWBHDF5IO

    with NWBHDF5IO(str(tmp_path / "r.nwb"), "r") as io:
        columns = io.read().intervals["weight_records"].colnames
    assert {"out.burst->h1.weight", "out.event->h1.weight"} <= set(columns)
