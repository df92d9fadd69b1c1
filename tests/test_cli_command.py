"""The ``dendrisim`` command: subcommands wired to the scripts' entry points, help on every
argument, --version, rules, models, bundled models by name, --threads, and the generated
CLI reference."""
import argparse
import json
import os
import subprocess
import sys
import tomllib
import types
from pathlib import Path

import pytest

import dendrisim
from dendrisim import commands
from dendrisim.bundled import bundled, resolve_model
from dendrisim.errors import ConfigError

REPO = Path(__file__).resolve().parent.parent
SCRIPTS = sorted(p.name for p in (REPO / "scripts").glob("*.py"))


def dendrisim_cmd(*args, cwd=REPO, timeout=300, env=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dendrisim", *map(str, args)], cwd=cwd, capture_output=True,
                          text=True, timeout=timeout, env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})})


def missing_help(parser: argparse.ArgumentParser) -> list[str]:
    return [a.dest for a in parser._actions if not isinstance(a, argparse._HelpAction) and not (a.help or "").strip()]


# ----------------------------------------------------------------------------- help everywhere
@pytest.mark.parametrize("name", ["dendrisim", *commands.COMMANDS])
def test_every_argument_of_the_command_has_help(name):
    parser = commands.top_parser() if name == "dendrisim" else commands.command_parser(name)
    if parser is None:  # dendrisim.results comes with another change; its wiring is tested below
        assert name == "results"
        pytest.skip("dendrisim.results has no parser() in this build")
    assert parser.prog == ("dendrisim" if name == "dendrisim" else f"dendrisim {name}")
    assert not missing_help(parser), f"{name}: no help for {missing_help(parser)}"


PARSER_PROBE = """
import argparse, json, runpy, sys
def grab(self, args=None, namespace=None):
    print(json.dumps({"prog": self.prog, "missing": [a.dest for a in self._actions
                      if not isinstance(a, argparse._HelpAction) and not (a.help or "").strip()]}))
    raise SystemExit(0)
argparse.ArgumentParser.parse_args = grab
sys.argv = [sys.argv[1]]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


@pytest.mark.parametrize("script", SCRIPTS)
@pytest.mark.slow(reason="starts each script in a fresh process to catch its parser")
def test_every_argument_of_every_script_has_help_and_its_own_name(script):
    """Each script's parser, caught as it parses: its prog is the script's name, and every
    argument has a help line."""
    proc = subprocess.run([sys.executable, "-c", PARSER_PROBE, str(REPO / "scripts" / script)], cwd=REPO,
                          capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.returncode == 0, proc.stderr
    found = json.loads(proc.stdout.strip().splitlines()[-1])
    assert found["prog"] == script
    assert found["missing"] == [], f"{script}: no help for {found['missing']}"


def test_validate_model_says_its_own_name():
    proc = subprocess.run([sys.executable, "scripts/validate_model.py", "--help"], cwd=REPO, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout.startswith("usage: validate_model.py"), proc.stdout[:200]


@pytest.mark.parametrize("name", [n for n in commands.COMMANDS if n != "results"])
@pytest.mark.slow(reason="starts the command in a fresh process for each subcommand")
def test_each_subcommand_prints_its_own_usage(name):
    proc = dendrisim_cmd(name, "--help")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"usage: dendrisim {name}"), proc.stdout[:200]


def test_top_level_help_lists_every_command_and_unknown_ones_fail():
    proc = dendrisim_cmd()
    assert proc.returncode == 0
    for name in commands.COMMANDS:
        assert f"\n  {name} " in proc.stdout
    bad = dendrisim_cmd("trian")
    assert bad.returncode == 2 and "invalid choice: 'trian'" in bad.stderr


def test_version_is_the_package_version():
    proc = dendrisim_cmd("--version")
    assert proc.returncode == 0 and proc.stdout.strip() == f"dendrisim {dendrisim.__version__}"


# ----------------------------------------------------------------------------- wiring
def test_results_dispatches_to_the_package_module(monkeypatch):
    seen = []
    fake = types.ModuleType("dendrisim.results")
    fake.main = lambda argv: seen.append((list(argv), sys.argv[0])) or 7
    monkeypatch.setitem(sys.modules, "dendrisim.results", fake)
    assert commands.main(["results", "--suite", "rules"]) == 7
    assert seen == [(["--suite", "rules"], "dendrisim results")]  # argparse's default prog: the command's name


@pytest.mark.parametrize("name,module", [("run", "dendrisim.cli"), ("check", "dendrisim.cli"),
                                         ("compare", "dendrisim.compare"), ("plot", "dendrisim.plot"),
                                         ("sample", "dendrisim.sample"), ("bench", "dendrisim.bench")])
def test_subcommands_call_the_scripts_entry_points(monkeypatch, name, module):
    import importlib

    seen = []
    monkeypatch.setattr(importlib.import_module(module), "main",
                        lambda argv, *, prog: seen.append((list(argv), prog)) or 0)
    assert commands.main([name, "x"]) == 0
    assert seen == [(["x", "--check"] if name == "check" else ["x"], f"dendrisim {name}")]


def test_scripts_are_thin_wrappers_of_the_package():
    for script, module in [("simulate.py", "dendrisim.cli"), ("validate_model.py", "dendrisim.cli"),
                           ("compare_rules.py", "dendrisim.compare"), ("plot_recording.py", "dendrisim.plot"),
                           ("sample.py", "dendrisim.sample"), ("bench.py", "dendrisim.bench")]:
        text = (REPO / "scripts" / script).read_text()
        assert f"from {module} import main" in text and len(text.splitlines()) < 20, script


def test_check_and_plot_report_errors_with_status_2(tmp_path):
    ok = dendrisim_cmd("check", "dll_mlp_fmnist")
    assert ok.returncode == 0 and "models/dll_mlp_fmnist.yaml: valid" in ok.stdout, ok.stderr
    plot = dendrisim_cmd("plot", tmp_path / "nothing.h5")
    assert plot.returncode == 2 and "no such recording" in plot.stderr


# ----------------------------------------------------------------------------- rules and models
def test_rules_lists_every_rule_with_options_defaults_and_tunables():
    proc = dendrisim_cmd("rules")
    assert proc.returncode == 0, proc.stderr
    from dendrisim.plugins import BUILTIN  # this process has the example rules too (conftest)

    for name in BUILTIN:
        assert f"\n{name}  (dendrisim)" in "\n" + proc.stdout, name
    assert "    sigma                    default 1.0: noise scale σ" in proc.stdout
    assert "plasticity.inference_lr 0.02..0.5 (log)" in proc.stdout
    assert "plasticity.decay 1e-05..0.1 (log)" in proc.stdout


def test_rules_lists_plugins_and_refuses_unknown_names():
    example = REPO / "examples" / "rules" / "sign_symmetry.py"
    proc = dendrisim_cmd("rules", "--plugin", example, "sign_symmetry")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"sign_symmetry  ({example})")
    assert "clip_apical" in proc.stdout and "tunables (dendrisim compare --tune): optimizer.lr" in proc.stdout
    bad = dendrisim_cmd("rules", "nosuch")
    assert bad.returncode == 2 and "nosuch" in bad.stderr and "dll" in bad.stderr


def test_models_lists_every_bundled_file_with_its_description_and_data():
    files = sorted(p.stem for p in (REPO / "models").glob("*.yaml"))
    assert list(bundled()) == files
    proc = dendrisim_cmd("models")
    assert proc.returncode == 0, proc.stderr
    entries = proc.stdout.strip().split("\n\n")
    assert [e.split("  ", 1)[0] for e in entries] == files
    text = dict(zip(files, entries))
    assert "DLL on scikit-learn's 8x8 handwritten digits" in text["dll_mlp_digits"]
    assert "data: digits, bundled with scikit-learn" in text["dll_mlp_digits"]
    assert "/usr/share/datasets/fashion-mnist" in text["dll_mlp_fmnist"]
    assert "text text/harry_potter.txt" in text["dll_rnn_charlm_harrypotter"]
    for entry in entries:  # a description (the key or the first comment) for each
        assert len(entry.splitlines()[0].split("  ", 1)[1]) > 20, entry


def test_model_description_falls_back_to_the_first_comment_sentence():
    text = "# A small net. More words here.\n# And more.\nname: x\n"
    assert commands.model_description(text, {"name": "x"}) == "A small net."
    assert commands.model_description(text, {"description": "Given."}) == "Given."


def test_bundled_models_resolve_by_name_and_paths_stay_paths(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert resolve_model("dll_mlp_fmnist") == REPO / "models" / "dll_mlp_fmnist.yaml"
    assert resolve_model("dll_mlp_fmnist.yaml") == REPO / "models" / "dll_mlp_fmnist.yaml"
    assert resolve_model(None) == REPO / "models" / "dll_mlp_digits.yaml"
    own = tmp_path / "dll_mlp_fmnist.yaml"
    own.write_text("name: mine\n")
    assert resolve_model("dll_mlp_fmnist.yaml") == Path("dll_mlp_fmnist.yaml")  # a file here wins
    assert resolve_model("sub/x.yaml") == Path("sub/x.yaml")  # not found: the loader says so
    with pytest.raises(ConfigError, match="'dll_mlp_fmnst' is neither a model file nor a bundled model; "
                                          "bundled models: burstccn_digits, "):
        resolve_model("dll_mlp_fmnst")


def test_run_from_any_folder_writes_under_its_recordings(tmp_path):
    proc = dendrisim_cmd("run", "dll_mlp_digits", "--dry-run", "--threads", "1", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    run_dir = tmp_path / summary["run_dir"]
    assert run_dir.parent == tmp_path / "recordings" and (run_dir / "recording.h5").is_file()
    assert json.loads((run_dir / "run.json").read_text())["threads"] == 1


# ----------------------------------------------------------------------------- threads
@pytest.mark.slow(reason="runs the command in subprocesses with several thread settings")
def test_threads_default_is_torchs_and_is_logged(tmp_path):
    env = {"OMP_NUM_THREADS": "2"}
    proc = dendrisim_cmd("run", "--dry-run", "--out", tmp_path / "run", env=env)
    assert proc.returncode == 0, proc.stderr
    torch_default = subprocess.run([sys.executable, "-c", "import torch; print(torch.get_num_threads())"],
                                   capture_output=True, text=True, env={**os.environ, **env}).stdout.strip()
    assert json.loads((tmp_path / "run" / "run.json").read_text())["threads"] == int(torch_default) == 2
    bad = dendrisim_cmd("run", "--dry-run", "--threads", "0", "--out", tmp_path / "bad")
    assert bad.returncode == 2 and "--threads: 0 threads: give a whole number of 1 or more" in bad.stderr


def test_compare_takes_threads():
    args = commands.command_parser("compare").parse_args(["dll_mlp_digits", "--out", "x", "--threads", "3"])
    assert args.threads == 3


def test_the_api_trainer_takes_threads(tmp_path):
    code = ("import torch, json, dendrisim; exp = dendrisim.load('models/dll_mlp_digits.yaml', "
            "['training.epochs=1', 'training.max_steps_per_epoch=2']); "
            f"tr = dendrisim.Trainer(exp, out={str(tmp_path / 'run')!r}, threads=1); "
            "print(torch.get_num_threads()); tr.fit()")
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "2"})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split()[0] == "1"
    assert json.loads((tmp_path / "run" / "run.json").read_text())["threads"] == 1


# ----------------------------------------------------------------------------- packaging, reference
def test_the_wheel_carries_every_subpackage_and_the_models_folder():
    meta = tomllib.loads((REPO / "pyproject.toml").read_text())
    tool = meta["tool"]["setuptools"]
    subpackages = {".".join(p.parent.relative_to(REPO).parts) for p in (REPO / "dendrisim").rglob("__init__.py")}
    assert set(tool["packages"]) == subpackages | {"dendrisim.models"}
    assert tool["package-dir"] == {"dendrisim.models": "models"}
    assert tool["package-data"]["dendrisim.models"] == ["*.yaml"]
    assert meta["project"]["scripts"] == {"dendrisim": "dendrisim.commands:main"}
    assert meta["project"]["optional-dependencies"]["docs"] == [
        "sphinx==9.0.4", "myst-parser==5.2.0", "sphinx-gallery==0.22.1", "furo==2025.12.19",
        "sphinx-mathjax-offline==0.0.2"]  # MathJax shipped with the site (docs/conf.py)
    assert not (REPO / "dendrisim" / "models").exists()  # models/ is the one source


def test_the_cli_reference_page_is_current():
    page = REPO / "docs" / "reference" / "cli.md"
    assert page.read_text() == commands.cli_reference(), \
        "regenerate with: python -m dendrisim.commands --update docs/reference/cli.md"


def test_the_cli_reference_has_a_section_and_a_row_per_argument():
    text = commands.cli_reference()
    for name in commands.COMMANDS:
        assert f"\n## dendrisim {name}\n" in text
    assert "| `--threads` N |  | torch's intra-op CPU threads" in text
    assert "| `--rules` RULE,... | `dll,bp,fa,dfa` | the rules to compare" in text


def test_a_closed_pipe_ends_a_listing_quietly():
    """``dendrisim rules | head -1``: the reader leaves early, and no traceback follows."""
    proc = subprocess.run(f"{sys.executable} -m dendrisim rules | head -n 1", shell=True, cwd=REPO,
                          capture_output=True, text=True, timeout=300)
    assert proc.stdout.strip(), proc.stderr
    assert "Traceback" not in proc.stderr and "BrokenPipe" not in proc.stderr, proc.stderr
