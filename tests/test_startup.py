"""Fast start: the quick commands import no PyTorch (timings: scripts/bench_startup.py
--commands, never a timed test), the package's public names import on first use, and the
shipped catalogue of built-in rules says what the live registry says."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

import dendrisim
from dendrisim import commands

REPO = Path(__file__).resolve().parent.parent


def modules_after(code: str) -> set[str]:
    """The top-level packages imported by ``code`` in a fresh interpreter (run from an empty
    folder so nothing of the working folder is imported)."""
    probe = code + "\nimport sys, json\nprint(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd="/",
                         env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


@pytest.mark.parametrize("argv", [["--version"], ["models"], ["rules"], ["rules", "dll", "fa"]])
def test_quick_commands_import_no_torch(argv):
    heavy = {"torch", "h5py", "matplotlib", "sklearn", "gensim", "networkx"}
    code = ("from dendrisim.commands import main\nimport contextlib, io\n"
            f"with contextlib.redirect_stdout(io.StringIO()):\n    try:\n        main({argv!r})\n"
            "    except SystemExit:\n        pass")
    assert not modules_after(code) & heavy


def test_import_dendrisim_costs_no_torch_and_names_resolve_on_first_use():
    assert "torch" not in modules_after("import dendrisim")
    assert "torch" in modules_after("import dendrisim\ndendrisim.Trainer")
    from dendrisim.api import Trainer
    from dendrisim.plugins import register_rule

    assert dendrisim.Trainer is Trainer and dendrisim.register_rule is register_rule
    for name in dendrisim.__all__:
        assert getattr(dendrisim, name) is not None, name
    assert set(dendrisim.__all__) <= set(dir(dendrisim))
    with pytest.raises(AttributeError, match="no attribute 'Trainr'"):
        dendrisim.Trainr  # noqa: B018


def test_the_shipped_rule_catalogue_is_the_live_registry():
    """Regenerate with ``python -m dendrisim.commands --update-rules`` when this fails."""
    shipped = json.loads(commands.CATALOGUE.read_text())
    assert shipped["version"] == dendrisim.__version__
    assert shipped["rules"] == commands.rules_catalogue()


def test_rules_lists_the_catalogue_and_asks_the_registry_for_what_it_lacks(capsys, tmp_path):
    assert commands.main(["rules"]) == 0
    listed = capsys.readouterr().out
    assert listed == "\n\n".join(commands.describe_rule(name) for name in commands.rules_catalogue()) + "\n"
    assert commands.main(["rules", "nope"]) == 2  # not catalogued: the registry names the error
    assert "'nope' is not a known plasticity rule" in capsys.readouterr().err
    plugin = tmp_path / "myrule.py"
    plugin.write_text((REPO / "examples" / "rules" / "sign_symmetry.py").read_text().replace(
        '"sign_symmetry"', '"sign_symmetry_startup_probe"'))
    try:
        assert commands.main(["rules", "--plugin", str(plugin), "sign_symmetry_startup_probe"]) == 0
        assert capsys.readouterr().out.startswith("sign_symmetry_startup_probe  (")
    finally:
        from dendrisim.plasticity import RULES

        if "sign_symmetry_startup_probe" in RULES:
            RULES.unregister("sign_symmetry_startup_probe")


def test_a_stale_or_damaged_catalogue_is_not_used(tmp_path, monkeypatch, capsys):
    stale = tmp_path / "rules_catalogue.json"
    facts = {**commands.rule_facts("dll"), "origin": "stale"}
    stale.write_text(json.dumps({"version": "0.0.0", "rules": {"dll": facts}}))
    monkeypatch.setattr(commands, "CATALOGUE", stale)
    assert commands.main(["rules", "dll"]) == 0
    assert "(stale)" not in capsys.readouterr().out
    stale.write_text(json.dumps({"version": dendrisim.__version__, "rules": {"dll": "not facts"}}))
    assert commands.main(["rules", "dll"]) == 0
    assert capsys.readouterr().out.startswith("dll  (dendrisim)")
    stale.write_text("{damaged")
    assert commands.main(["rules", "dll"]) == 0
    assert capsys.readouterr().out.startswith("dll  (dendrisim)")
