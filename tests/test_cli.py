"""scripts/simulate.py end to end, in subprocesses, on tiny data."""
import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from test_data import tiny_mnist

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "scripts" / "simulate.py"


def simulate(*args, cwd=None):
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], capture_output=True, text=True,
                          cwd=cwd or REPO, timeout=300)


def test_default_model_dry_run(tmp_path):
    out = tmp_path / "run"
    proc = simulate("--dry-run", "--out", out)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    summary = json.loads(lines[-1])
    assert summary["model"] == "dll_mlp_digits" and summary["rule"] == "dll" and summary["epochs"] == 1
    for key in ("seconds", "run_dir", "test_accuracy", "test_loss"):
        assert key in summary
    assert Path(summary["run_dir"]) == out
    assert any(line.startswith("epoch   1  train_loss") for line in lines)
    assert (out / "model.yaml").is_file() and (out / "summary.json").is_file()
    rows = list(csv.DictReader(open(out / "metrics.csv")))
    assert len(rows) == 1 and float(rows[0]["test_accuracy"]) == summary["test_accuracy"]


def test_fmnist_model_on_tiny_idx_files_with_overrides(tmp_path):
    tiny_mnist(tmp_path / "data" / "FashionMNIST" / "raw", n_train=300, n_test=50)
    out = tmp_path / "run"
    proc = simulate(REPO / "models" / "dll_mlp_fmnist.yaml", "--data-root", tmp_path / "data", "--epochs", 2,
                    "--seed", 3, "--set", "plasticity.rule=fa", "--set", "training.schedule=cosine",
                    "--set", "populations.h1.size=32", "--out", out)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert summary["rule"] == "fa" and summary["epochs"] == 2 and summary["seed"] == 3
    assert "plasticity.sigma is an option of dll, ignored by fa" in proc.stderr
    resolved = yaml.safe_load((out / "model.yaml").read_text())
    assert resolved["populations"]["h1"]["size"] == 32
    assert resolved["plasticity"]["rule"] == "fa" and resolved["training"]["schedule"] == "cosine"


@pytest.mark.parametrize("args,message", [
    (["--set", "plasticity.rule=backprop"], "plasticity.rule: 'backprop' is not a known plasticity rule; choose one of bp, burstccn, burstprop, dfa, dll, fa, kp, mc_basal, mc_lateral, mc_topdown, pc"),
    (["--set", "populations.h1.activation=tanhh"], "populations.h1.activation: 'tanhh' is not a known activation"),
    (["--device", "cuda:7"] if not __import__("torch").cuda.is_available() else ["--device", "tpu"], "--device"),
])
@pytest.mark.slow(reason="runs the script in a fresh process for each bad input")
def test_errors_are_one_paragraph_without_traceback(tmp_path, args, message):
    proc = simulate("--dry-run", "--out", tmp_path / "run", *args)
    assert proc.returncode == 2
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr and proc.stderr.startswith("error: ")


def test_missing_dataset_error(tmp_path):
    proc = simulate(REPO / "models" / "dll_mlp_fmnist.yaml", "--set", "task.dataset=mnist", "--data-root", tmp_path,
                    "--dry-run", "--out", tmp_path / "run")
    assert proc.returncode == 2
    assert "MNIST: missing train-images-idx3-ubyte" in proc.stderr and str(tmp_path) in proc.stderr
    assert "Traceback" not in proc.stderr


def test_check_prints_the_graph_without_data_or_training(tmp_path):
    proc = subprocess.run([sys.executable, str(REPO / "scripts" / "validate_model.py"),
                           str(REPO / "models" / "dll_mlp_fmnist.yaml"), "--data-root", str(tmp_path)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "dll_mlp_fmnist.yaml: valid" in out
    assert "projection input->h1            dense     basal  params=803,840" in out
    assert "h1.apical <- h2.error through θ[h1->h2] [1024, 512] / σ² (σ = 1.0), learned at lr x 0.1" in out
    assert "parameters: 1,462,538 learnable forward, 0 frozen forward, 657,920 learnable feedback" in out
    assert "torchrun: each step all-reduces 2,120,460 values (8.1 MiB) per process" in out
    assert "recording: about" in out
    proc = simulate("--check", "--set", "plasticity.rule=dfa")
    assert proc.returncode == 0 and "h1.apical <- out.error through B[h1] [128, 10], fixed random" in proc.stdout
    proc = simulate("--check", "--set", "projections.1.to=h9")
    assert proc.returncode == 2 and "projections[1].to: 'h9' is not a population" in proc.stderr


@pytest.mark.slow(reason="runs the command in subprocesses")
def test_recording_budget_refuses_to_start(tmp_path):
    out = tmp_path / "run"
    proc = simulate("--set", "recording={every: 1, max_gib: 0.001}", "--out", out)
    assert proc.returncode == 2
    assert "recording.max_gib: the recording would take about" in proc.stderr and "over the budget of 0.001 GiB" in proc.stderr
    assert not out.exists()
    ok = simulate("--dry-run", "--out", out)
    assert "recording: about" in ok.stdout and "budget 20.0 GiB" in ok.stdout


@pytest.mark.slow(reason="trains several rules and seeds")
def test_compare_rules_writes_a_table_and_curves(tmp_path):
    out = tmp_path / "cmp"
    proc = subprocess.run([sys.executable, str(REPO / "scripts" / "compare_rules.py"), str(REPO / "models" / "dll_mlp_digits.yaml"),
                           "--rules", "dll,bp", "--seeds", "0,1", "--epochs", "2", "--set", "training.max_steps_per_epoch=5",
                           "--out", str(out)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    table = (out / "report.md").read_text()
    assert "| rule | runs | final test accuracy | best test accuracy | selected-epoch test accuracy | s / epoch |" in table
    rows = [line for line in table.splitlines() if line.startswith("| dll ") or line.startswith("| bp ")]
    assert len(rows) == 2 and all(" ± " in r and "| 2 |" in r for r in rows)
    assert (out / "learning_curves.png").read_bytes()[:4] == b"\x89PNG"
    results = json.loads((out / "results.json").read_text())
    assert sorted(results["runs"]) == ["bp-s0", "bp-s1", "dll-s0", "dll-s1"]
    assert {r["summary"]["seed"] for r in results["runs"].values()} == {0, 1}
    assert results["rules"] == {"dll": {"tuned": None, "trials": []}, "bp": {"tuned": None, "trials": []}}
    bad = subprocess.run([sys.executable, str(REPO / "scripts" / "compare_rules.py"), str(REPO / "models" / "dll_mlp_digits.yaml"),
                          "--rules", "dll,nope", "--out", str(tmp_path / "bad")], capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2 and "'nope' is not a known plasticity rule" in bad.stderr
    assert not (tmp_path / "bad").exists()
