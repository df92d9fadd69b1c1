"""A settling scheme registered from a plugin file (issue 27, item 3): it declares its own
options in the ``dynamics:`` block and its own checks, loads with ``--plugin`` as a rule file
does, and reduces to the scheme it extends in its limit. Each run registers the scheme in a
fresh process, so this process's registry stays as the other tests expect."""
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PLUGIN = REPO / "examples" / "schemes" / "scaled_teacher.py"


def run(*args, cwd) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dendrisim", *map(str, args)], cwd=cwd, capture_output=True,
                          text=True, timeout=300, env={**os.environ, "PYTHONPATH": str(REPO)})


def test_a_plugin_scheme_at_its_limit_is_the_scheme_it_extends(tmp_path):
    """teacher_scale 1 under the plugin scheme trains bit for bit as the steady scheme does."""
    # SGD: Adam would normalise a scaled teacher's updates away
    common = ["--epochs", "2", "--set", "training.max_steps_per_epoch=5", "--set", "recording.enabled=false",
              "--set", "optimizer={type: sgd, lr: 0.05}"]
    plain = run("run", *common, "--out", tmp_path / "steady", cwd=tmp_path)
    mine = run("run", "--plugin", PLUGIN, "--set", "dynamics={mode: scaled_teacher, teacher_scale: 1.0}", *common,
               "--out", tmp_path / "scaled", cwd=tmp_path)
    assert plain.returncode == 0 and mine.returncode == 0, plain.stderr + mine.stderr
    a, b = (json.loads(p.stdout.strip().splitlines()[-1]) for p in (plain, mine))
    assert a["test_loss"] == b["test_loss"] and a["test_accuracy"] == b["test_accuracy"]
    half = run("run", "--plugin", PLUGIN, "--set", "dynamics={mode: scaled_teacher, teacher_scale: 0.5}", *common,
               "--out", tmp_path / "half", cwd=tmp_path)
    assert half.returncode == 0, half.stderr
    assert json.loads(half.stdout.strip().splitlines()[-1])["test_loss"] != a["test_loss"]
    assert "teacher scaled by 0.5" in half.stdout


@pytest.mark.parametrize("dynamics, message", [
    ("{mode: scaled_teacher, teacher_scale: -1}", r"dynamics.teacher_scale: -1(\.0)? must be > 0"),
    ("{mode: scaled_teacher, teacher_scal: 2}", r"dynamics: unknown key 'teacher_scal'; allowed keys are .*"
                                                r"steps, tau, teacher_scale"),
    ("{mode: steady, teacher_scale: 2}", r"dynamics: unknown key 'teacher_scale'; allowed keys are dt, g_apical"),
])
def test_a_schemes_options_are_checked_by_name_and_bound(tmp_path, dynamics, message):
    proc = run("check", "--plugin", PLUGIN, "--set", f"dynamics={dynamics}", cwd=tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert re.search(message, proc.stderr), proc.stderr


def test_a_plugin_scheme_cannot_take_a_built_in_name(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("import dendrisim\nfrom dendrisim.settling import SteadyState\n\n\n"
                   "@dendrisim.register_scheme('euler')\nclass Mine(SteadyState):\n    pass\n")
    proc = run("check", "--plugin", bad, cwd=tmp_path)
    assert proc.returncode == 2 and "settling scheme name 'euler'" in proc.stderr and "is already registered" \
        in proc.stderr, proc.stderr
