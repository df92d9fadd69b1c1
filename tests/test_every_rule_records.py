"""Shipped models run under every rule, and under every plugin example of the docs, without
editing their recording block: what a rule cannot provide is left out with one note line
saying what and why; a name that is wrong under every rule is still an error.

Whatever registers a plugin rule runs in a fresh process (the page's files are imported
there), so this process's registry stays as the other tests expect."""
import json
import subprocess
import sys
from pathlib import Path

import h5py
import pytest

from test_drtp import page_files

REPO = Path(__file__).resolve().parent.parent

#: in a fresh process: load the plugin files, then ``dendrisim check`` every shipped model
#: under every registered rule, and print what each said
SWEEP = r"""
import contextlib, io, json, sys
from pathlib import Path
from dendrisim.bundled import bundled
from dendrisim.cli import main
from dendrisim.plasticity import RULES
from dendrisim.plugins import load_plugins

from torchvision.datasets import cifar as tv_cifar, svhn as tv_svhn  # the small files written here are not
tv_cifar.CIFAR10._check_integrity = lambda self: True  # the real ones: as test_shipped_models does
tv_cifar.check_integrity = lambda *a, **k: True
tv_svhn.SVHN._check_integrity = lambda self: True
root = sys.argv[1]
load_plugins(sys.argv[2:])
results = []
for model, path in bundled().items():
    for rule in RULES.names():
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main([str(path), "--check", "--data-root", f"{root}/{model}", "--set", f"plasticity.rule={rule}"])
        results.append({"model": model, "rule": rule, "code": code, "out": out.getvalue(), "err": err.getvalue()})
print(json.dumps(results))
"""


#: a rule that carries no error back at all (a readout trained on fixed random features), as
#: a user's first node-perturbation rule does: the default model asks for h2->out's feedback
READOUT_ONLY = '''
import dendrisim


@dendrisim.register_rule("readout_only")
class ReadoutOnly(dendrisim.PlasticityRule):
    """Only the projections into the output learn; nothing is carried back."""

    carries_feedback = False

    def feedback_weight(self, network, proj):
        return None
'''


@pytest.fixture(scope="module")
def plugin_files(tmp_path_factory) -> list[str]:
    folder = tmp_path_factory.mktemp("plugins")
    for name, text in page_files().items():
        (folder / name).write_text(text)
    (folder / "readout_only.py").write_text(READOUT_ONLY)
    return sorted(str(p) for p in [*folder.glob("*.py"), *(REPO / "examples" / "rules").glob("*.py")])


@pytest.mark.slow(reason="checks every shipped model under every rule (about 250 builds)")
def test_every_shipped_model_checks_under_every_rule_with_its_recording_block(plugin_files, tmp_path):
    from test_shipped_models import DATA

    for name, write in DATA.items():  # every shipped model's data, small, made here
        (tmp_path / name).mkdir()
        write(tmp_path / name)
    proc = subprocess.run([sys.executable, "-c", SWEEP, str(tmp_path), *plugin_files], cwd=REPO, capture_output=True, text=True,
                          timeout=900, env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads(proc.stdout.strip().splitlines()[-1])
    rules = {r["rule"] for r in results}
    assert {"dll", "bp", "fa", "dfa", "kp", "pc", "drtp", "sign_symmetry", "readout_only"} <= rules
    checked = [r for r in results if r["code"] == 0]
    refused = [r for r in results if r["code"] != 0]
    # a rule may refuse a network (pc under euler, the microcircuit's synapse models on a plain
    # MLP): never because of the recording block
    errors = [(r["model"], r["rule"], r["code"], r["err"].strip().splitlines()[-1]) for r in refused]
    assert all(code == 2 and last.startswith("error: ") for _, _, code, last in errors), errors
    assert not [e for e in errors if "recording" in e[3] or "not found" in e[3]], errors
    # every rule the docs show runs every plain MLP and CNN of the shipped models
    for rule in rules - {"pc", "mc_basal", "mc_lateral", "mc_topdown", "burstccn", "burstprop"}:
        assert any(r["rule"] == rule and r["model"] == "dll_mlp_digits" for r in checked), rule
    # the burst rules govern burst neurons: burstccn checks its shipped models with their recording blocks
    assert {r["model"] for r in checked if r["rule"] == "burstccn"} >= {"burstccn_digits", "burstccn_fmnist"}
    # what was left out is said, one line each, naming the block's key and the reason
    default = next(r for r in checked if r["model"] == "dll_mlp_digits" and r["rule"] == "readout_only")
    assert ("note: recording.projections.h2->out: 'feedback' is left out: h2->out carries no error back under "
            "rule readout_only") in default["out"]
    dll = next(r for r in checked if r["model"] == "dll_mlp_digits" and r["rule"] == "dll")
    assert "left out" not in dll["out"]


@pytest.mark.slow(reason="a run in a fresh process")
def test_the_default_model_trains_under_a_rule_without_feedback_and_records_what_it_can(plugin_files, tmp_path):
    rule = next(p for p in plugin_files if p.endswith("readout_only.py"))
    proc = subprocess.run([sys.executable, "-m", "dendrisim", "run", "--plugin", rule, "--set", "plasticity.rule=readout_only",
                           "--dry-run", "--out", str(tmp_path / "run")], cwd=tmp_path, capture_output=True, text=True,
                          timeout=600, env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    notes = [line for line in proc.stdout.splitlines() if "left out" in line]
    assert notes == ["note: recording.projections.h2->out: 'feedback' is left out: h2->out carries no error back "
                     "under rule readout_only (its source gets its error another way), so 'feedback' would record nothing"]
    with h5py.File(tmp_path / "run" / "recording.h5", "r") as f:
        assert bool(f.attrs["complete"])
        kept = [key for key in f["projections"]]
        assert kept and all("feedback" not in f[f"projections/{k}"] for k in kept)
        assert all("weight" in f[f"projections/{k}"] for k in kept)


def test_a_name_no_rule_records_is_still_an_error(tmp_path):
    from dendrisim.cli import main

    code = main(["--check", "--set", "recording.projections={h2->out: [weight, thetaa]}"])
    assert code == 2
