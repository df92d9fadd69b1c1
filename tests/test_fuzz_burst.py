"""The ``burst`` kind of the input fuzzer (tests/test_fuzz_inputs.py): issue 28's burst surface
from the outside (``dendrisim neurons burst``, ``dendrisim rules``, docs/reference/keys.md,
models/burstccn_digits.yaml).

Model files made from the shipped BurstCCN digits model (hidden population shrunk, two steps)
by one hostile change or none, and up to two harmless ones:

- hostile: ``reads`` unknown, empty, capitalised or a compartment the model does not offer;
  ``reads`` on a basal projection, from the input, onto the output, a self loop, a second Y, Q
  without Y, neither Y nor Q; burst options out of bounds (NaN, inf, strings, bools, negative or
  zero gain, baseline 0 or 1 or above 1/2 at the output), the output's ignored options
  (``burst_gain``, ``gate``), a non-sigmoid activation under the gate or at
  the output; ``feedback``/``cancel``/``feedback_scale`` out of their sets, modes with no Y or
  Q to act on, a projection's own block asking for a mode for another projection, ``bias`` on
  Y, bp governing Y, network-wide rules (dfa, pc) and dll beside Y and Q, euler dynamics, a
  phase that learns the fixed Q, recording variables the model does not declare or a Y
  gradient, Y recurrent or conv2d, a second Q beside one Y (two cancels), a pyramidal population
  below a burst one that no error reaches, ``--set`` of a projection by its ``SRC:READS->TGT`` name;
- harmless: hidden burst options in bounds, ``gate: false`` with tanh, baselines in bounds,
  every ``feedback`` and ``cancel`` mode with Y and Q present, a learnable Q, burstprop, fa or
  kp at the top, every burst variable and Y/Q weights recorded, a spatial hidden population
  (``channels``, conv2d into it), a pyramidal population below it whose projection up learns by
  fa, an apical projection reading ``burst_prob``, a teacher-free phase, ``lr_scale`` by index.

The oracle is the input fuzzer's (exit 0 and finite results, or exit 2 and one paragraph
``error: ...``), and more: a case with a hostile change must end in an error, one with only
harmless changes must run (or check) clean, and a case whose one change is hostile must name
the field it broke. 40 cases (``--long``: 400), seed ``DENDRISIM_FUZZ_SEED``.
"""
from __future__ import annotations

import copy
import random
import re
from pathlib import Path

import pytest
import yaml

from test_fuzz_inputs import COUNTS, SEED, _Summary, check_failures, record, run_cli, scale

SHIPPED = Path(__file__).resolve().parent.parent / "models" / "burstccn_digits.yaml"
#: the Y and Q of the shipped model, by index
Y, Q = 2, 3


def _pop(name, **kw):
    return lambda m: m["populations"][name].update(kw)


def _proj(i, **kw):
    return lambda m: m["projections"][i].update(kw)


def _plast(**kw):
    return lambda m: m["plasticity"].update(kw)


def _add(**proj):
    return lambda m: m["projections"].append({"compartment": "apical", **proj})


def _spatial(m):
    m["populations"]["h1"].pop("size")
    m["populations"]["h1"]["channels"] = 3
    m["projections"][0].update(connectivity="conv2d", kernel=3)


def _phases(learn):
    return lambda m: m["training"].update(epochs=2, phases=[{"epochs": 1, "teacher": False, "learn": learn},
                                                            {"epochs": 1}])


def _below(rule, **h0_h1):
    """A pyramidal population h0 under h1 (input->h0 learning by ``rule``, h0->h1 with
    ``h0_h1``): h0->h1 takes input->h1's place and input->h0 comes last, so Y and Q keep theirs."""
    def change(m):
        m["populations"] = {"input": {"type": "input", "size": "auto"},
                            "h0": {"type": "pyramidal", "size": 12, "activation": "tanh"}, **{
                                k: v for k, v in m["populations"].items() if k != "input"}}
        m["projections"][0] = {"from": "h0", "to": "h1", **h0_h1}
        m["projections"].append({"from": "input", "to": "h0", "plasticity": {"rule": rule}})
    return change


ALL = ["soma", "basal", "rate", "event", "apical", "burst_prob", "burst", "error"]
#: (label, change of the model dict, --set overrides, the field a ConfigError must name)
HOSTILE = [
    *[(f"Y reads {v!r}", _proj(Y, reads=v), [], r"projections\[2\]\.reads") for v in ("nope", "", "Burst", "error",
                                                                                       "apical", 3, ["burst"])],
    ("reads on basal", _proj(0, reads="burst"), [], r"projections\[0\]"),
    ("reads event on basal", _proj(1, reads="event"), [], r"projections\[1\]"),
    ("reads from the input", _add(**{"from": "input", "to": "h1", "reads": "burst"}), [], r"projections\[4\]\.reads"),
    ("reads on soma", lambda m: m["projections"].append({"from": "out", "to": "h1", "compartment": "soma",
                                                         "reads": "burst"}), [], r"projections\[4\]"),
    ("Y onto the output", _add(**{"from": "h1", "to": "out", "reads": "burst"}), [], r"projections\[4\]\.to"),
    ("self loop", _add(**{"from": "h1", "to": "h1", "reads": "burst"}), [], r"projections\[4\]\.kind"),
    ("second Y", _add(**{"from": "out", "to": "h1", "reads": "burst"}), [], r"projections\[4\]"),
    ("Q without Y", lambda m: m["projections"].pop(Y), [], r"plasticity\.cancel"),
    ("no Y no Q", lambda m: m["projections"].__delitem__(slice(Y, Q + 1)), [], r"plasticity\.rule"),
    *[(f"h1 burst_gain {v!r}", _pop("h1", burst_gain=v), [], r"populations\.h1\.burst_gain")
      for v in (0, -1, float("nan"), float("inf"), "x", True)],
    *[(f"h1 burst_offset {v!r}", _pop("h1", burst_offset=v), [], r"populations\.h1: unknown key 'burst_offset'")
      for v in (float("nan"), 0.5, "x")],  # the offset is logit(baseline), not an option
    *[(f"h1 baseline {v!r}", _pop("h1", baseline=v), [], r"populations\.h1\.baseline")
      for v in (0, 1, 1.0, -0.1, 1.5, float("nan"), "x", None)],
    *[(f"h1 gate {v!r}", _pop("h1", gate=v), [], r"populations\.h1\.gate") for v in ("x", 1, None)],
    ("h1 tanh under the gate", _pop("h1", activation="tanh"), [], r"populations\.h1\.activation"),
    *[(f"out {k}", _pop("out", **{k: v}), [], rf"populations\.out\.{k}")
      for k, v in (("burst_gain", 2.0), ("gate", False))],
    *[(f"out {a}", _pop("out", activation=a), [], r"populations\.out\.activation") for a in ("softmax", "linear")],
    *[(f"out baseline {v}", _pop("out", baseline=v), [], r"populations\.out\.baseline") for v in (0.6, 1.0)],
    *[(f"{k} {v!r}", _plast(**{k: v}), [], rf"plasticity\.{k}")
      for k, v in (("feedback", "x"), ("cancel", "x"), ("cancel", None), ("feedback_scale", 0),
                   ("feedback_scale", -1), ("feedback_scale", float("nan")), ("feedback_scale", float("inf")))],
    ("feedback symmetric, no Y", lambda m: (m["projections"].pop(Y), _plast(feedback="symmetric", cancel="given")(m)),
     [], r"plasticity\.feedback"),
    ("cancel tied, no Q", lambda m: (m["projections"].pop(Q), _plast(cancel="tied")(m)), [], r"plasticity\.cancel"),
    ("cancel in a basal block", _proj(0, plasticity={"rule": "burstccn", "cancel": "tied"}), [],
     r"projections\[0\]\.plasticity\.cancel"),
    ("feedback in Q's block", _proj(Q, plasticity={"rule": "burstccn", "feedback": "tied"}), [],
     r"projections\[3\]\.plasticity\.feedback"),
    ("bias on Y", _proj(Y, bias=True), [], r"projections\[2\]\.bias"),
    ("Q learnable under cancel tied", lambda m: (_proj(Q, learnable=True)(m), _plast(cancel="tied")(m)), [],
     r"projections\[3\]\.learnable"),
    ("bp governs Y", _proj(Y, plasticity={"rule": "bp"}), [], r"projections\[2\]\.plasticity\.rule"),
    *[(f"top rule {r}", _plast(rule=r), [], r"plasticity\.rule") for r in ("dfa", "pc", "dll", "fa", "kp", "bp")],
    ("top rule burstprop beside Q", _plast(rule="burstprop"), [], r"projections\[3\]\.reads"),
    ("pyramidal h0 under burst, h0->h1 by fa", _below("bp", plasticity={"rule": "fa"}), [],
     r"projections\[\d\]\.plasticity\.rule"),
    ("euler", lambda m: None, ["dynamics.mode=euler"], r"populations\.h1\.type"),
    ("phase learns fixed Q", _phases(["out:event->h1"]), [], r"training\.phases\[0\]\.learn"),
    ("record a variable burst lacks", lambda m: m["recording"]["populations"].update(h1=["dendrite"]), [],
     r"recording\.populations\.h1"),
    ("record Y's grad", lambda m: m["recording"].update(projections={"out:burst->h1": ["grad"]}), [],
     r"recording\.projections\.out:burst->h1"),
    ("Y recurrent", _proj(Y, kind="recurrent"), [], r"projections\[2\]"),
    ("Y conv2d", _proj(Y, connectivity="conv2d", kernel=3), [], r"projections\[2\]"),
    *[(f"pyramidal h0 under burst, {r}", _below(r), [], r"plasticity\.rule") for r in ("fa", "bp", "dll")],
    *[(f"second Q {label}", _add(**{"from": "out", "to": "h1", **extra}), [], r"projections\[3\]")
      for label, extra in (("reads rate", {"reads": "rate"}), ("plain", {}))],
    ("--set by the colon name", lambda m: None, ["projections.out:burst->h1.lr_scale=2"], r"projections"),
]
HARMLESS = [
    *[(f"h1 burst_gain {v}", _pop("h1", burst_gain=v), []) for v in (0.5, 10.0)],
    ("h1 gate false tanh", _pop("h1", gate=False, activation="tanh"), []),
    *[(f"h1 baseline {v}", _pop("h1", baseline=v), []) for v in (0.1, 0.9)],
    ("out baseline 0.2", _pop("out", baseline=0.2), []),
    *[(f"feedback {v}", _plast(feedback=v), []) for v in ("random", "symmetric", "tied")],
    ("feedback_scale 2", _plast(feedback_scale=2.0), []),
    *[(f"cancel {v}", _plast(cancel=v), []) for v in ("symmetric", "given", "tied")],
    ("Q learnable", _proj(Q, learnable=True), []),
    ("record everything", lambda m: m["recording"].update(
        populations={"h1": ALL, "out": ALL}, projections={"out:burst->h1": ["weight"], "out:event->h1": ["weight"]}),
     []),
    ("spatial h1", _spatial, []),
    ("teacher-free phase", _phases(None), []),
    ("an apical projection reading burst_prob", _add(**{"from": "out", "to": "h1", "reads": "burst_prob"}), []),
    ("lr_scale by index", lambda m: None, ["projections.2.lr_scale=2"]),
]

#: harmless changes that each rebuild the bottom of the network, and hostile ones doing so: one at a time
STRUCTURAL = {"spatial h1", "pyramidal h0 under burst, h0->h1 by fa",
              *(f"pyramidal h0 under burst, {r}" for r in ("fa", "bp", "dll"))}

#: cancel: tied resets Q after every update, so a learnable Q beside it is refused
TIED_LEARNABLE = {"Q learnable", "cancel tied"}


def base() -> dict:
    m = yaml.safe_load(SHIPPED.read_text())
    m["populations"]["h1"]["size"] = 16
    m["training"].update(epochs=1, max_steps_per_epoch=2)
    m["recording"]["every"] = 1
    return m


def burst_case(rng: random.Random) -> tuple[list[str], dict, list[str], list[str]]:
    """(labels, the model dict, --set overrides, the field patterns a hostile change must name)."""
    m, labels, sets, fields = base(), [], [], []
    hostile = [rng.choice(HOSTILE)] if rng.random() < 0.65 else []
    changes = rng.sample(HARMLESS, rng.choice([0, 1, 1, 2]))
    if sum(c[0] in STRUCTURAL for c in changes) > 1 or {c[0] for c in changes} >= TIED_LEARNABLE:
        changes = changes[:1]  # each rebuilds the bottom of the network; tied undoes a learnable Q
    if hostile:  # the hostile change comes last (no harmless one undoes it), under a burst rule
        changes = [c for c in changes if not c[0].startswith("top rule")] + hostile
    for change in changes:
        labels.append(("!" if len(change) == 4 else "") + change[0])
        change[1](m)
        sets += change[2]
        if len(change) == 4:
            fields.append(change[3])
    return labels, m, sets, fields


@pytest.fixture(scope="module")
def root(tmp_path_factory, request):
    if not getattr(request.config, "_fuzz_inputs_summary", None):
        request.config._fuzz_inputs_summary = _Summary()
        request.config.pluginmanager.register(request.config._fuzz_inputs_summary, "fuzz_inputs_summary")
    return tmp_path_factory.mktemp("fuzz_burst")


@pytest.mark.slow(reason="about 40 generated burst model files, each checked or trained for two steps")
def test_hostile_burst_models_end_in_a_result_or_one_paragraph(request, root):
    rng = random.Random(SEED * 1000 + 28)
    n = scale(request, 40)
    for i in range(n):
        labels, m, sets, fields = burst_case(rng)
        folder = root / f"case{i}"
        folder.mkdir()
        path = folder / "model.yaml"
        path.write_text(yaml.safe_dump(copy.deepcopy(m), sort_keys=False))
        command = "check" if rng.random() < 0.3 else "run"
        argv = [command, path, *[a for s in sets for a in ("--set", s)]]
        if command == "run":
            argv += ["--out", folder / "run"]
        outcome = run_cli(argv, limit=60)
        case = f"{i}:{command}:{'+'.join(labels) or 'shipped'}"
        extra = ""
        if fields and outcome.kind == "ok":
            extra = "accepted a hostile change"
        elif not fields and outcome.kind != "ok":
            extra = f"refused a harmless model ({outcome.kind})"
        elif len(labels) == 1 and fields and outcome.kind == "error" and not re.search(fields[0], outcome.err):
            extra = "the error does not name the field"
        record("burst", case, outcome, extra=extra)
    check_failures("burst")
    assert sum(v for (k, _), v in COUNTS.items() if k == "burst") == n


def test_every_hostile_change_alone_is_refused_naming_its_field(tmp_path):
    """The catalogue's own check (fast): each hostile change on the shipped model, checked."""
    bad = []
    for label, change, sets, field in HOSTILE:
        m = base()
        change(m)
        path = tmp_path / "model.yaml"
        path.write_text(yaml.safe_dump(m, sort_keys=False))
        outcome = run_cli(["check", path, *[a for s in sets for a in ("--set", s)]], limit=60)
        if outcome.kind != "error" or not re.search(field, outcome.err):
            bad.append(f"{label}: {outcome.kind}: {outcome.err.strip()[-300:]}")
    assert not bad, "\n".join(bad)


def test_every_harmless_change_alone_checks_clean(tmp_path):
    bad = []
    for label, change, sets in HARMLESS:
        m = base()
        change(m)
        path = tmp_path / "model.yaml"
        path.write_text(yaml.safe_dump(m, sort_keys=False))
        outcome = run_cli(["check", path, *[a for s in sets for a in ("--set", s)]], limit=60)
        if outcome.kind != "ok":
            bad.append(f"{label}: {outcome.kind}: {outcome.err.strip()[-300:]}")
    assert not bad, "\n".join(bad)
