"""Rules users write: plugin files, entry points, the contract checked at load time, third
factors, and the Python API. Anything that registers a rule of its own runs in a fresh
process, so the registry of this one stays as the other tests expect."""
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

import dendrisim
from conftest import model

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "examples" / "rules" / "sign_symmetry.py"


def python(code: str, *, cwd=REPO, env=None, timeout=300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env=env)


def simulate(*args, timeout=300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "scripts/simulate.py", *map(str, args)], cwd=REPO, capture_output=True,
                          text=True, timeout=timeout)


# ----------------------------------------------------------------------------- the worked example
@pytest.mark.slow(reason="trains and resumes in subprocesses")
def test_the_example_rule_trains_from_the_command_line_and_resumes(tmp_path):
    out = tmp_path / "run"
    proc = simulate("--plugin", EXAMPLE, "--set", "plasticity.rule=sign_symmetry", "--epochs", "4", "--out", out)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert summary["rule"] == "sign_symmetry" and summary["test_accuracy"] > 0.85
    assert json.loads((out / "run.json").read_text())["plugins"] == [str(EXAMPLE)]
    again = simulate("--resume", out, "--set", "training.epochs=5")  # run.json's plugins are never imported
    assert again.returncode == 2 and f"add --plugin {EXAMPLE}" in again.stderr, again.stderr
    again = simulate("--resume", out, "--set", "training.epochs=5", "--plugin", EXAMPLE)
    assert again.returncode == 0 and "resuming" in again.stdout, again.stderr
    check = subprocess.run([sys.executable, "scripts/validate_model.py", "models/dll_mlp_digits.yaml", "--plugin",
                            str(EXAMPLE), "--set", "projections.2.plasticity.rule=sign_symmetry"], cwd=REPO,
                           capture_output=True, text=True, timeout=300)
    assert check.returncode == 0, check.stderr
    assert "h2->out: sign_symmetry (its own plasticity block)" in check.stdout
    assert "h2.apical <- out.error through sign(W[h2->out])ᵀ x rms(W) [sign_symmetry]" in check.stdout


def test_the_example_rule_sends_back_the_signs_of_w_at_its_scale():
    from conftest import build

    net, rule = build(model(["plasticity.rule=sign_symmetry"]))
    w = net.projections["h1->h2"].weight.detach()
    fb = rule.feedback_weight(net, net.projections["h1->h2"])
    assert torch.equal(torch.sign(fb), torch.sign(w.t()))
    assert torch.allclose(fb.abs(), w.pow(2).mean().sqrt().expand_as(fb))
    assert rule.feedback_weight(net, net.projections["input->h1"]) is None


def test_compare_rules_takes_plugins(tmp_path):
    proc = subprocess.run([sys.executable, "scripts/compare_rules.py", "models/dll_mlp_digits.yaml", "--plugin",
                           str(EXAMPLE), "--rules", "sign_symmetry,bp", "--seeds", "0", "--epochs", "1", "--out",
                           str(tmp_path)], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "sign_symmetry" in (tmp_path / "report.md").read_text()


# ----------------------------------------------------------------------------- entry points
def test_a_rule_from_an_installed_package_entry_point(tmp_path):
    (tmp_path / "hebb_rules.py").write_text(textwrap.dedent('''
        import dendrisim
        from dendrisim.plasticity.rules import FeedbackAlignment

        class ScaledFA(FeedbackAlignment):
            """Feedback alignment at half the update gain: an installed rule."""
            update_gain = 0.5
    '''))
    info = tmp_path / "hebb_rules-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: hebb-rules\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[dendrisim.rules]\nscaled_fa = hebb_rules:ScaledFA\n")
    import os

    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    proc = python('''
        import dendrisim
        exp = dendrisim.load("models/dll_mlp_digits.yaml", ["plasticity.rule=scaled_fa", "training.epochs=2"])
        summary = dendrisim.Trainer(exp, out="''' + str(tmp_path / "run") + '''").fit()
        print(summary["rule"], summary["test_accuracy"] > 0.5, dendrisim.plugins.ORIGIN["scaled_fa"])
    ''', env=env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split()[:2] == ["scaled_fa", "True"] and "entry point scaled_fa" in proc.stdout


# ----------------------------------------------------------------------------- the contract
GOOD = '''
import dendrisim
from dendrisim.plasticity.rules import Backprop
'''
BAD_PLUGINS = [
    ("missing_hook.py", GOOD + "@dendrisim.register_rule('lazy')\nclass Lazy(dendrisim.PlasticityRule):\n    pass\n",
     r"rule 'lazy' \('Lazy', in .*missing_hook.py\) has no feedback_weight\(self, network, proj\) hook"),
    ("not_frozen.py", GOOD + "from dataclasses import dataclass\n@dataclass\nclass O(dendrisim.RuleOptions):\n"
                              "    k: float = 1.0\n@dendrisim.register_rule('loose')\nclass R(Backprop):\n    Options = O\n",
     r"not_frozen.py: importing it raised TypeError at line 5 \(@dataclass\): cannot inherit non-frozen dataclass "
     r"from a frozen one"),
    ("no_default.py", GOOD + "from dataclasses import dataclass\n@dataclass(frozen=True, kw_only=True)\n"
                              "class O(dendrisim.RuleOptions):\n    k: float\n"
                              "@dendrisim.register_rule('need')\nclass R(Backprop):\n    Options = O\n",
     r"rule 'need' .*has Options fields without a default \(k\): every option needs one"),
    ("plain_options.py", GOOD + "@dendrisim.register_rule('plain')\nclass R(Backprop):\n    Options = dict\n",
     r"rule 'plain' .*has an Options that is not a dataclass subclassing dendrisim.RuleOptions"),
    ("old_init.py", GOOD + "@dendrisim.register_rule('old')\nclass R(Backprop):\n"
                           "    def __init__(self, network, options):\n        super().__init__(network, options)\n",
     r"rule 'old' .*overrides __init__ without the keyword-only argument projections"),
    ("clash.py", GOOD + "@dendrisim.register_rule('dll')\nclass R(Backprop):\n    pass\n",
     r"rule name 'dll' \(in .*clash.py\) is a built-in rule; register the rule under another name"),
    ("raises.py", "import dendrisim\nx = 1\nvalue = x / 0\n",
     r"--plugin .*raises.py: importing it raised ZeroDivisionError at line 3 \(value = x / 0\): division by zero"),
    ("empty.py", "import dendrisim\n", r"--plugin .*empty.py: registers no rule"),
    ("bad_tunable.py", GOOD + "@dendrisim.register_rule('tuned')\nclass R(Backprop):\n"
                              "    tunables = {'sigma': (0.5, 2.0)}\n",
     r"rule 'tuned' .*declares the tunable 'sigma', which is not one of its options"),
]


@pytest.mark.parametrize("name,source,match", BAD_PLUGINS, ids=[c[0] for c in BAD_PLUGINS])
def test_a_plugin_that_breaks_the_contract_fails_at_load_with_one_paragraph(tmp_path, name, source, match):
    import re

    path = tmp_path / name
    path.write_text(source)
    proc = simulate("--plugin", path, "--check")
    assert proc.returncode == 2, proc.stdout
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert re.search(match, proc.stderr), proc.stderr


def test_a_missing_plugin_path_and_two_plugins_with_one_name(tmp_path):
    proc = simulate("--plugin", tmp_path / "nope.py", "--check")
    assert proc.returncode == 2 and "--plugin" in proc.stderr and "nope.py: no such file" in proc.stderr
    for name in ("first.py", "second.py"):
        (tmp_path / name).write_text(GOOD + "@dendrisim.register_rule('twice')\nclass R(Backprop):\n    pass\n")
    proc = simulate("--plugin", tmp_path / "first.py", "--plugin", tmp_path / "second.py", "--check")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert f"rule name 'twice' (in {tmp_path / 'second.py'}) is already registered by {tmp_path / 'first.py'}" \
        in proc.stderr


def test_model_files_name_rules_and_never_import_code(tmp_path):
    """A YAML file can only name a registered rule: a module path is an unknown name."""
    bad = tmp_path / "m.yaml"
    bad.write_text((REPO / "models" / "dll_mlp_digits.yaml").read_text().replace("rule: dll", "rule: os.system"))
    proc = simulate(bad, "--check")
    assert proc.returncode == 2 and "plasticity.rule: 'os.system' is not a known plasticity rule" in proc.stderr


# ----------------------------------------------------------------------------- third factors
REWARD_RULE = '''
import dendrisim
from dendrisim.plasticity.rules import FeedbackAlignment


@dendrisim.register_rule("reward_fa")
class RewardModulatedFA(FeedbackAlignment):
    """Three factors: feedback alignment's update (post error x pre rate) gated by a reward."""

    def compute_updates(self, network):
        super().compute_updates(network)
        reward = network.modulator("reward")
        for proj in self.learnable_projections(network):
            for param in proj.parameters_to_learn():
                param.grad.mul_(reward)
'''


def test_a_reward_modulated_plugin_reads_the_third_factor_set_between_steps(tmp_path):
    (tmp_path / "reward_fa.py").write_text(REWARD_RULE)
    proc = python(f'''
        import copy, torch, dendrisim
        dendrisim.load_plugin({str(tmp_path / "reward_fa.py")!r})
        exp = dendrisim.load("models/dll_mlp_digits.yaml", ["plasticity.rule=reward_fa", "optimizer.type=sgd",
                                                           "optimizer.lr=0.1", "recording.enabled=false"])
        tr = dendrisim.Trainer(exp, out={str(tmp_path / "run")!r})
        x, y = tr.task.train.x[:32], tr.task.train.y[:32]
        w = lambda: tr.network.projections["h1->h2"].weight.detach().clone()
        start = w()
        tr.modulate(reward=0.0)
        tr.step(x, y)
        assert torch.equal(w(), start), "reward 0: no change"
        tr.modulate(reward=1.0)
        state = copy.deepcopy(tr.network.state_dict())
        tr.step(x, y)
        plus = w() - start
        tr.network.load_state_dict(state)  # every weight back where the +1 step started
        tr.modulate(reward=-1.0)
        tr.step(x, y)
        minus = w() - start
        assert plus.abs().max() > 0 and torch.allclose(minus, -plus, atol=1e-6), "reward -1 reverses"
        print("ok")
    ''')
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr


# ----------------------------------------------------------------------------- the Python API
def test_fit_returns_the_summary_the_command_line_prints(tmp_path):
    exp = dendrisim.load("models/dll_mlp_digits.yaml", overrides=["training.epochs=3"])
    ours = dendrisim.Trainer(exp, out=tmp_path / "api").fit()
    cli = simulate("--epochs", "3", "--out", tmp_path / "cli")
    theirs = json.loads(cli.stdout.strip().splitlines()[-1])
    for key in ("test_accuracy", "test_loss", "val_loss", "steps", "selected_epoch", "rule"):
        assert ours[key] == theirs[key], key
    assert (tmp_path / "api" / "recording.h5").is_file()


def test_step_evaluate_network_and_plasticity_off(tmp_path):
    tr = dendrisim.Trainer(dendrisim.load("models/dll_mlp_digits.yaml", ["recording.enabled=false"]),
                           out=tmp_path / "run")
    x, y = tr.task.train.x[:64], tr.task.train.y[:64]
    losses = [tr.step(x, y) for _ in range(60)]
    assert isinstance(losses[0], float) and losses[-1] < 0.8 * losses[0]
    h2 = tr.network.populations["h2"]
    assert h2.apical.shape == (64, 64) and h2.apical.abs().sum() > 0
    weights = {n: p.detach().clone() for n, p in [*tr.network.named_parameters(), *tr.rule.named_parameters()]}
    with tr.network.plasticity_off():
        loss = tr.step(x[:8], y[:8])
        assert h2.apical.shape == (8, 64)  # the presentation ran
    assert tr.network.plastic
    for n, p in [*tr.network.named_parameters(), *tr.rule.named_parameters()]:
        assert torch.equal(p, weights[n]), n
    assert loss == pytest.approx(tr.evaluate(type(tr.task.train)(x[:8], y[:8]))["loss"], rel=1e-5)
    metrics = tr.evaluate("test")
    assert set(metrics) == {"loss", "accuracy"} and metrics["accuracy"] > 0.5
    with pytest.raises(ValueError, match="'dev' is not a split of this task; it has train, val, test"):
        tr.evaluate("dev")


def test_plasticity_off_holds_under_simulated_compartments(tmp_path):
    tr = dendrisim.Trainer(dendrisim.load("models/dll_mlp_digits_dynamic.yaml", ["recording.enabled=false",
                                                                                "dynamics.plasticity=online"]),
                           out=tmp_path / "run")
    x, y = tr.task.train.x[:16], tr.task.train.y[:16]
    before = [p.detach().clone() for p in tr.network.parameters()]
    with tr.network.plasticity_off():
        tr.step(x, y)
    assert all(torch.equal(a, b) for a, b in zip(before, tr.network.parameters()))
    tr.step(x, y)
    assert not all(torch.equal(a, b) for a, b in zip(before, tr.network.parameters()))


# ------------------------------------------------- plugins that misbehave say so (issue 20, tracebacks)
@pytest.mark.parametrize("code, match", [
    ("import sys\nsys.exit(0)\n", r"exit.py: importing it called sys.exit\(0\) at line 2 \(sys.exit\(0\)\)"),
    ("raise SystemExit('bye')\n", r"exit.py: importing it called sys.exit\('bye'\) at line 1"),
    ("raise KeyError('k')\n", r"exit.py: importing it raised KeyError at line 1"),
])
def test_a_plugin_that_exits_or_raises_at_import_is_exit_2_with_one_paragraph(tmp_path, code, match):
    import re

    path = tmp_path / "exit.py"
    path.write_text(code)
    proc = simulate("--plugin", path, "--check")
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert re.search(match, proc.stderr), proc.stderr


WRONG = """\
import torch
import dendrisim
from dendrisim.plasticity.rules import Backprop


@dendrisim.register_rule("wrong")
class Wrong(Backprop):
    def compute_updates(self, network):
        for proj in self.learnable_projections(network):
            {body}
"""


@pytest.mark.parametrize("body, match", [
    ("proj.weight.grad = torch.zeros(3)",
     r"rule 'wrong' \(in .*wrong.py\): compute_updates raised RuntimeError for projection input->h1; its update must "
     r"match its weight \(shape \(128, 64\), float32 on cpu\): attempting to assign a gradient of size '\[3\]' "
     r"to a tensor of size '\[128, 64\]'"),
    ("proj.weight.grad = torch.zeros_like(proj.weight); proj.weight.grad.data = torch.zeros(5, 2)",
     r"rule 'wrong' \(in .*wrong.py\): the update of projection input->h1 \(weight\) has shape \(5, 2\), float32 on "
     r"cpu; expected shape \(128, 64\), float32 on cpu, as its weight"),
])
def test_a_plugin_update_of_the_wrong_shape_names_rule_projection_expected_and_got(tmp_path, body, match):
    import re

    path = tmp_path / "wrong.py"
    path.write_text(WRONG.format(body=body))
    proc = simulate("--plugin", path, "--set", "plasticity.rule=wrong", "--dry-run", "--out", tmp_path / "run")
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-3000:])
    assert "Traceback" not in proc.stderr, proc.stderr
    assert re.search(match, proc.stderr), proc.stderr


def test_a_plugin_feedback_weight_of_the_wrong_shape_is_named(tmp_path):
    import re

    path = tmp_path / "fb.py"
    path.write_text(textwrap.dedent("""\
        import torch
        import dendrisim

        @dendrisim.register_rule("fbwrong")
        class FB(dendrisim.PlasticityRule):
            def feedback_weight(self, network, proj):
                return None if proj.source == network.input_name else proj.weight  # not transposed
    """))
    proc = simulate("--plugin", path, "--set", "plasticity.rule=fbwrong", "--dry-run", "--out", tmp_path / "run")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert re.search(r"rule 'fbwrong' .*feedback_weight of projection h2->out has shape \(10, 64\), float32 on cpu; "
                     r"expected shape \(64, 10\)", proc.stderr), proc.stderr


def test_built_in_rules_are_never_wrapped():
    from dendrisim.plasticity import RULES
    from dendrisim.plasticity.base import PlasticityRule

    for name in ("bp", "dll", "fa", "kp", "dfa", "pc"):
        cls = RULES.get(name)
        assert cls.compute_updates.__module__.startswith("dendrisim.plasticity"), name
        assert cls.compute_updates.__qualname__ != "_guard.<locals>.compute_updates"
    assert PlasticityRule.compute_updates.__qualname__ == "PlasticityRule.compute_updates"
