"""A model path that does not exist, but whose file name is a bundled model's (or close to
one), names the bundled model to load instead: the first thing a user outside a checkout
meets when copying ``dendrisim.load("models/dll_mlp_digits.yaml")`` from an example."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

import dendrisim
from dendrisim.bundled import bundled, resolve_model, similar_names
from dendrisim.errors import ConfigError

REPO = Path(__file__).resolve().parent.parent


def test_a_checkout_path_outside_a_checkout_names_the_bundled_model(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match=r"^models/dll_mlp_digits\.yaml: model file not found \(looked at .*"
                                          r"models/dll_mlp_digits\.yaml\); dendrisim ships a model of that name, "
                                          r"'dll_mlp_digits'; load it by name: dendrisim\.load\('dll_mlp_digits'\)"):
        dendrisim.load("models/dll_mlp_digits.yaml")
    with pytest.raises(ConfigError, match="ships a model of that name, 'dll_mlp_fmnist'"):
        resolve_model(tmp_path / "elsewhere" / "dll_mlp_fmnist.yaml")


def test_a_misspelt_path_or_name_gets_the_close_bundled_names(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match=r"did you mean the bundled model 'dll_mlp_digits'"):
        dendrisim.load("models/dll_mlp_digit.yaml")
    with pytest.raises(ConfigError, match=r"bundled models: .*\(list them with: dendrisim models\); "
                                          r"did you mean dll_mlp_fmnist\?$"):
        resolve_model("dll_mlp_fmnst")


def test_an_unrelated_missing_path_still_reaches_the_loaders_message(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert resolve_model("sub/my_model.yaml") == Path("sub/my_model.yaml")
    with pytest.raises(ConfigError, match=r"my_model\.yaml: model file not found \(looked at [^)]*\)$"):
        dendrisim.load("sub/my_model.yaml")


def test_similar_names_prefers_the_exact_name():
    models = bundled()
    assert similar_names("dll_mlp_digits", models) == ["dll_mlp_digits"]
    assert similar_names("dll_mlp_digitz", models)[0] == "dll_mlp_digits"
    assert similar_names("my_model", models) == []


def test_the_command_prints_the_hint_as_one_error_line(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "dendrisim", "check", "models/dll_mlp_digits.yaml"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.startswith("error: models/dll_mlp_digits.yaml: model file not found")
    assert "'dendrisim run dll_mlp_digits'" in proc.stderr and proc.stderr.count("\n") == 1
