"""The ``schemes`` kind of the input fuzzer (tests/test_fuzz_inputs.py): issue 27's plugin
surface from the outside (docs/howto/writing-a-rule.md, the last section of
docs/howto/dynamics.md, ``dendrisim run --help``).

- settling-scheme plugin files put together from parts, good and bad: the base class
  (``SteadyState``, ``EulerDynamics``, ``SettlingScheme``, no scheme at all, a function), the
  name (taken, not an identifier, not a string), ``Options`` (good, not a dataclass, not a
  ``SchemeOptions``, a field without a default, named like a shared ``dynamics:`` key, of a
  type no model file can write), ``_present`` (inherited, raising, returning None or the
  state, the old signature), ``check`` (raising a ``ConfigError`` or another error, a plain
  method, calling ``sys.exit``), ``describe`` (empty, a string, raising), capabilities of the
  wrong type, ``trace_steps`` without a trajectory (recording on) and an ``__init__`` of the
  wrong signature; each checked (``dendrisim check``) or
  trained for two steps, with ``--set`` values of the scheme's option in and out of bounds and
  a new-hook or old-hook plugin rule beside it, under its own scheme or steady or euler;
- ``network.free_state(x, perturb=...)`` through the API with perturbations of every kind
  (names of hidden, output, input and unknown populations; tensors of wrong shapes, dtypes,
  batch; None, numbers, lists, non-mappings).

The oracle is the input fuzzer's: exit 0 and finite results, or exit 2 and one paragraph
``error: ...`` (no traceback); through the API a result or the package's own error in one
paragraph. Also: a plugin that breaks the scheme contract is named with its file, and a
stochastic rule's run is the same with ``training.alignment`` on and off. Every scheme and rule
a case registers is unregistered after it (``registered_undone``). 80 cases (``--long``: 800),
seed ``DENDRISIM_FUZZ_SEED``.
"""
from __future__ import annotations

import contextlib
import json
import random
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from test_fuzz_inputs import COUNTS, SEED, _Summary, check_failures, record, run_api, run_cli, scale

HEAD = """\
import sys
from dataclasses import dataclass, field
from typing import Literal, Optional
import torch
import dendrisim
from dendrisim.errors import ConfigError
from dendrisim.settling import Presentation, SchemeOptions, SettlingScheme, SteadyState, EulerDynamics
"""
#: parts of a scheme plugin: (label, text); ``{name}``, ``{base}`` filled in
BASES = [("steady", "SteadyState"), ("euler", "EulerDynamics"), ("bare", "SettlingScheme"), ("object", "object")]
NAMES = [("ok", None), ("taken", "'steady'"), ("dash", "'my-scheme'"), ("int", "3"), ("empty", "''"),
         ("rule name", "'dll'")]
OPTIONS = [
    ("none", ""),
    ("good", "@dataclass(frozen=True)\nclass Opts(SchemeOptions):\n"
             "    scale: float = dendrisim.option(1.0, 'a factor', gt=0)\n"),
    ("literal", "@dataclass(frozen=True)\nclass Opts(SchemeOptions):\n"
                "    how: Literal['a', 'b'] = dendrisim.option('a', 'which')\n"),
    ("not dataclass", "class Opts:\n    scale = 1.0\n"),
    ("not SchemeOptions", "@dataclass(frozen=True)\nclass Opts:\n    scale: float = 1.0\n"),
    ("no default", "@dataclass(frozen=True)\nclass Opts(SchemeOptions):\n    scale: float\n"),
    ("shared key", "@dataclass(frozen=True)\nclass Opts(SchemeOptions):\n"
                   "    steps: int = dendrisim.option(3, 'clashes', ge=1)\n"),
    ("bare list", "@dataclass(frozen=True)\nclass Opts(SchemeOptions):\n"
                  "    scale: list = field(default_factory=list)\n"),
    ("Options int", "Opts = 3\n"),
    ("bad default", "@dataclass(frozen=True)\nclass Opts(SchemeOptions):\n"
                    "    scale: float = dendrisim.option(0.0, 'a factor', gt=0)\n"),
]
PRESENTS = [
    ("inherited", ""),
    ("super", "    def _present(self, network, rule, state, capture):\n"
              "        return super()._present(network, rule, state, capture)\n"),
    ("raises", "    def _present(self, network, rule, state, capture):\n        raise ValueError('boom')\n"),
    ("exits", "    def _present(self, network, rule, state, capture):\n        sys.exit(4)\n"),
    ("None", "    def _present(self, network, rule, state, capture):\n"
             "        super()._present(network, rule, state, capture)\n        return None\n"),
    ("state", "    def _present(self, network, rule, state, capture):\n"
              "        super()._present(network, rule, state, capture)\n        return state\n"),
    ("empty", "    def _present(self, network, rule, state, capture):\n        return Presentation()\n"),
    ("old signature", "    def _present(self, network, rule, target, capture):\n"
                      "        return super()._present(network, rule, network.last_state, capture)\n"),
]
CHECKS = [
    ("inherited", ""),
    ("ConfigError", "    @classmethod\n    def check(cls, config, graph, *, file):\n"
                    "        raise ConfigError('refused by the scheme', file=file, path='dynamics.mode')\n"),
    ("KeyError", "    @classmethod\n    def check(cls, config, graph, *, file):\n        raise KeyError('x')\n"),
    ("exits", "    @classmethod\n    def check(cls, config, graph, *, file):\n        sys.exit(3)\n"),
    ("plain", "    def check(self, config, graph, *, file):\n        pass\n"),
    ("passes", "    @classmethod\n    def check(cls, config, graph, *, file):\n"
               "        super().check(config, graph, file=file)\n"),
]
DESCRIBES = [("inherited", ""), ("[]", "    def describe(self, network):\n        return []\n"),
             ("str", "    def describe(self, network):\n        return 'one line'\n"),
             ("raises", "    def describe(self, network):\n        raise RuntimeError('no')\n"),
             ("ok", "    def describe(self, network):\n        return ['dynamics mine']\n")]
EXTRAS = [("none", ""), ("trace_steps", "    trace_steps = -1\n"), ("flag", "    runs_circuits = 'no'\n"),
          ("steps no trajectory", "    trace_steps = [0, 1, 2]\n"),
          ("init", "    def __init__(self):\n        pass\n"), ("steps list", "    trace_steps = [0, 1]\n")]
RULES = {
    "new": ("import torch\nimport dendrisim\n\n\n@dendrisim.register_rule('{name}')\n"
            "class R(dendrisim.PlasticityRule):\n"
            "    def feedback_weight(self, network, proj):\n        return proj.transported()\n\n"
            "    def apical_input(self, network, pop, state):\n"
            "        a = super().apical_input(network, pop, state)\n        return a + 0.01 * torch.randn_like(a)\n\n"
            "    def compute_updates(self, network, state):\n        super().compute_updates(network, state)\n"
            "        clean = network.free_state(state.input)\n"
            "        xi = {{n: 0.01 * torch.randn_like(clean[n].basal) for n in network.order}}\n"
            "        network.free_state(state.input, perturb=xi)\n"),
    "old": ("import torch\nimport dendrisim\n\n\n@dendrisim.register_rule('{name}')\n"
            "class R(dendrisim.PlasticityRule):\n"
            "    def feedback_weight(self, network, proj):\n        return proj.transported()\n\n"
            "    def apical_input(self, network, pop):\n"
            "        a = super().apical_input(network, pop)\n        return a + 0.01 * torch.randn_like(a)\n\n"
            "    def compute_updates(self, network):\n        super().compute_updates(network)\n"),
}
VALUES = ["0.5", "0", "-1", "x", "1e400", "[1]", "true", "b", "a", "null"]
#: what a plugin that breaks the contract must name in its error, by part label
CONTRACT = {("base", "bare"), ("base", "object"), ("name", "taken"), ("name", "dash"), ("name", "int"),
            ("name", "empty"), ("options", "not dataclass"), ("options", "not SchemeOptions"),
            ("options", "no default"), ("options", "shared key"), ("options", "bare list"),
            ("options", "Options int"), ("options", "bad default"), ("check", "plain"), ("extra", "trace_steps"),
            ("extra", "flag")}


@contextlib.contextmanager
def registered_undone():
    """Whatever a case registers (schemes, rules, the plugin modules) is gone after it."""
    from dendrisim import plugins
    from dendrisim.plasticity.base import RULES as rules
    from dendrisim.settling import SCHEMES

    saved = (dict(SCHEMES._entries), dict(plugins.SCHEME_ORIGIN), dict(rules._entries), dict(plugins.ORIGIN),
             set(sys.modules))
    try:
        yield
    finally:
        SCHEMES._entries.clear()
        SCHEMES._entries.update(saved[0])
        plugins.SCHEME_ORIGIN.clear()
        plugins.SCHEME_ORIGIN.update(saved[1])
        rules._entries.clear()
        rules._entries.update(saved[2])
        plugins.ORIGIN.clear()
        plugins.ORIGIN.update(saved[3])
        for name in set(sys.modules) - saved[4]:
            if name.startswith("dendrisim_plugin_"):
                del sys.modules[name]


def scheme_case(rng: random.Random, i: int) -> tuple[dict, str, str]:
    """(the parts' labels, the plugin's text, the name a model file writes)."""
    parts = {"base": rng.choice(BASES), "name": rng.choice(NAMES), "options": rng.choice(OPTIONS),
             "present": rng.choice(PRESENTS), "check": rng.choice(CHECKS), "describe": rng.choice(DESCRIBES),
             "extra": rng.choice(EXTRAS)}
    if rng.random() < 0.6:  # a bad name stops everything else: most cases keep a good one
        parts["name"] = NAMES[0]
    if rng.random() < 0.5:  # half the cases keep to the contract but for one part
        good = {"base": BASES[0], "name": NAMES[0], "options": OPTIONS[1], "present": PRESENTS[1],
                "check": CHECKS[0], "describe": DESCRIBES[0], "extra": EXTRAS[0]}
        keep = rng.choice(list(parts))
        parts = {k: (parts[k] if k == keep else v) for k, v in good.items()}
    name = f"fz{i}"
    written = parts["name"][1] or repr(name)
    body = ""
    if parts["options"][1]:
        body += parts["options"][1] + "\n\n"
    decorated = "def Mine(): pass\n" if parts["base"][0] == "object" and rng.random() < 0.3 else None
    body += f"@dendrisim.register_scheme({written})\n"
    if decorated:
        body += decorated
    else:
        body += f"class Mine({parts['base'][1]}):\n"
        members = "".join([("    Options = Opts\n" if parts["options"][1] else ""), parts["present"][1],
                           parts["check"][1], parts["describe"][1], parts["extra"][1]])
        body += members or "    pass\n"
    labels = {k: v[0] for k, v in parts.items()}
    mode = name if parts["name"][0] == "ok" else "steady"
    return labels, HEAD + "\n\n" + body, mode


def run_scheme_case(root: Path, rng: random.Random, i: int) -> None:
    labels, text, mode = scheme_case(rng, i)
    folder = root / f"case{i}"
    folder.mkdir()
    path = folder / "scheme.py"
    path.write_text(text)
    argv = ["check" if rng.random() < 0.4 else "run", "dll_mlp_digits", "--plugin", path]
    mode = rng.choice([mode, mode, "steady", "euler"])
    argv += ["--set", f"dynamics.mode={mode}"]
    if rng.random() < 0.5 and labels["options"] in ("good", "literal"):
        key = "scale" if labels["options"] == "good" else "how"
        argv += ["--set", f"dynamics.{key}={rng.choice(VALUES)}"]
    if rng.random() < 0.4:
        kind = rng.choice(list(RULES))
        rule = f"fzrule{i}"
        (folder / "rule.py").write_text(RULES[kind].format(name=rule))
        argv += ["--plugin", folder / "rule.py", "--set", f"plasticity.rule={rule}"]
        labels["rule"] = kind
    if argv[0] == "run":
        recording = "recording.enabled=false" if rng.random() < 0.5 else "recording.every=1"  # trace_steps asked for
        argv += ["--epochs", "1", "--set", "training.max_steps_per_epoch=2", "--set", recording,
                 "--out", folder / "run"]
    case = f"{i}:{','.join(f'{k}={v}' for k, v in labels.items())}:{mode}:{argv[0]}"
    with registered_undone():
        outcome = run_cli(argv, limit=60)
    extra = ""
    broken = [f"{k}={v}" for k, v in labels.items() if (k, v) in CONTRACT
              and not (k == "base" and v == "bare" and labels["present"] != "inherited")]
    if outcome.kind == "ok" and broken:
        extra = f"accepted a plugin that breaks the contract ({broken[0]})"
    elif outcome.kind == "error" and broken and str(path) not in outcome.err:
        extra = f"the error does not name the plugin file ({broken[0]})"
    record("schemes", case, outcome, extra=extra)


PERTURB_NAMES = ["h1", "h2", "out", "input", "nope", 0, None]


def perturbation(rng: random.Random, x: torch.Tensor):
    """A perturbation argument: mostly a dict of name -> something tensor-like, sometimes not."""
    shapes = {"h1": [128], "h2": [64], "out": [10], "input": [1, 8, 8]}
    roll = rng.random()
    if roll < 0.1:
        return rng.choice([[torch.zeros(4, 128)], torch.zeros(4, 128), "h1", 3, ()])
    result = {}
    for _ in range(rng.randint(0, 3)):
        name = rng.choice(PERTURB_NAMES)
        shape = [x.shape[0], *shapes.get(name, [7])]
        how = rng.choice(["right", "right", "batch", "flat", "extra", "dtype", "int", "None", "float", "list", "grad"])
        if how == "batch":
            shape[0] += 1
        elif how == "flat":
            shape = shape[1:]
        elif how == "extra":
            shape = shape + [1]
        value = torch.randn(shape) * 0.1
        value = {"dtype": value.double(), "int": value.long(), "None": None, "float": 0.5,
                 "list": value.tolist(), "grad": value.requires_grad_()}.get(how, value)
        result[name] = value
    return result


@pytest.fixture(scope="module")
def root(tmp_path_factory, request):
    if not getattr(request.config, "_fuzz_inputs_summary", None):
        request.config._fuzz_inputs_summary = _Summary()
        request.config.pluginmanager.register(request.config._fuzz_inputs_summary, "fuzz_inputs_summary")
    return tmp_path_factory.mktemp("fuzz_schemes")


@pytest.mark.slow(reason="about 80 generated scheme plugins and perturbations, each checked or trained for two steps")
def test_hostile_scheme_plugins_and_perturbations_end_in_a_result_or_one_paragraph(request, root):
    import dendrisim

    rng = random.Random(SEED * 1000 + 27)
    n = scale(request, 80)
    for i in range(n * 3 // 4):
        run_scheme_case(root, rng, i)
    network = dendrisim.Trainer(dendrisim.load("dll_mlp_digits"), out=root / "api").network
    x = torch.randn(4, 1, 8, 8)
    for i in range(n - n * 3 // 4):
        perturb = perturbation(rng, x)
        shown = {k: (tuple(v.shape), str(v.dtype)) if isinstance(v, torch.Tensor) else type(v).__name__
                 for k, v in perturb.items()} if isinstance(perturb, dict) else type(perturb).__name__
        outcome = run_api(lambda: {"out": float(network.free_state(x, perturb=perturb).output.rate.detach().sum())},
                          limit=20)
        bad = {k for k in perturb if k not in ("h1", "h2", "out")} if isinstance(perturb, dict) else {"not a dict"}
        extra = f"accepted perturb {sorted(map(str, bad))}" if outcome.kind == "ok" and bad else ""
        record("schemes", f"perturb {i}: {shown}", outcome, extra=extra)
    check_failures("schemes")
    assert sum(v for (k, _), v in COUNTS.items() if k == "schemes") == n


@pytest.mark.slow(reason="two two-step runs of a stochastic plugin rule")
def test_a_stochastic_rule_runs_the_same_with_the_alignment_probe_on_and_off(root):
    """Measuring never changes training (docs/howto/writing-a-rule.md): the new-hook rule above draws
    from torch's generator in apical_input and through free_state perturbations."""
    path = root / "noisy.py"
    path.write_text(RULES["new"].format(name="fznoisy"))
    results = []
    for alignment in ("null", "{every: 1, probe_size: 16}"):
        with registered_undone():
            outcome = run_cli(["run", "dll_mlp_digits", "--plugin", path, "--set", "plasticity.rule=fznoisy",
                               "--set", f"training.alignment={alignment}", "--epochs", "1", "--set",
                               "training.max_steps_per_epoch=3", "--set", "recording.enabled=false",
                               "--out", root / f"noisy_{len(results)}"], limit=60)
        assert outcome.kind == "ok", outcome.err[-2000:]
        results.append(json.loads(outcome.out.strip().splitlines()[-1]))
    assert results[0]["test_loss"] == results[1]["test_loss"]
    assert results[0]["val_loss"] == results[1]["val_loss"]


def test_the_registry_is_restored_after_a_case(tmp_path):
    from dendrisim.settling import SCHEMES

    before = SCHEMES.names()
    path = tmp_path / "scheme.py"
    path.write_text(HEAD + textwrap.dedent("""
        @dendrisim.register_scheme("fz_restored")
        class Mine(SteadyState):
            pass
        """))
    with registered_undone():
        outcome = run_cli(["check", "dll_mlp_digits", "--plugin", path, "--set", "dynamics.mode=fz_restored"], limit=60)
        assert "fz_restored" in SCHEMES.names()
    assert outcome.kind == "ok", outcome.err[-2000:]
    assert SCHEMES.names() == before
