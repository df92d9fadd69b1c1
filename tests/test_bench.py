"""``bench.py --pc`` (pc's step against its matmul floor) and ``scripts/bench_pcx.py`` (dendrisim's
pc against pcx): the floor's shapes, the rows on a tiny network, and the side-by-side script's
update check where pcx is installed. Times are printed, never asserted."""
import copy
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from conftest import MLP
from dendrisim import bench
from dendrisim.builder import DataSpec, build_network, load_experiment

REPO = Path(__file__).resolve().parent.parent
B = 4


def tiny_pc(tmp_path, **plasticity) -> Path:
    """The conftest MLP (input -> h1 12 -> h2 8 -> out, tanh, softmax) under rule pc."""
    data = copy.deepcopy(MLP)
    data["plasticity"] = {"rule": "pc", **plasticity}
    path = tmp_path / "tiny_pc.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_pc_floor_counts_each_product_pc_must_do(tmp_path):
    """input->h1 once; per inference step the predictions above h1 and the top-down W^T eps of
    the two hidden populations; at the end the predictions above h1 and the three updates."""
    exp = load_experiment(tiny_pc(tmp_path))
    net = build_network(exp, DataSpec((1, 28, 28), 10))
    groups = bench.pc_floor_shapes(net, B)
    assert groups["once"] == {(B, 784, 12): 1}
    assert groups["per_step"] == {(B, 12, 8): 1, (B, 8, 10): 1,  # predictions of h2 and out
                                  (B, 8, 12): 1, (B, 10, 8): 1}  # top-down into h1 and h2
    assert groups["final"] == {(B, 12, 8): 1, (B, 8, 10): 1,  # predictions at the relaxed state
                               (12, B, 784): 1, (8, B, 12): 1, (10, B, 8): 1}  # updates eps^T r


def test_bench_pc_prints_its_rows_with_tolerance_zero_and_the_files(tmp_path, capsys):
    model = tiny_pc(tmp_path, tolerance=0.5)
    args = ["--pc", str(model), "--batch", str(B), "--steps", "1", "--repeats", "2", "--warmup", "0",
            "--pc-steps", "3", "--threads", str(torch.get_num_threads())]
    assert bench.main(args) == 0
    out = capsys.readouterr().out
    assert "pc relaxation, tiny (rule pc), batch 4, T 3" in out and "x floor" in out
    rows = [line.split() for line in out.splitlines() if line[:1].isdigit()]
    assert [r[0] for r in rows] == ["0", "0.5"]
    assert rows[0][1] == "3.00"  # tolerance 0: exactly T iterations

    assert bench.main([*args, "--json"]) == 0
    result = json.loads(capsys.readouterr().out)["pc"]
    assert result["T"] == 3 and [r["tolerance"] for r in result["rows"]] == [0.0, 0.5]
    exact, early = result["rows"]
    assert exact["iterations"] == 3
    assert 1 <= early["iterations"] < 3  # a loose tolerance stops early, and the floor counts what ran
    for row in result["rows"]:
        assert row["step_ms"] > 0 and row["floor_ms"] > 0 and len(row["ratios"]) == 2


def test_bench_pc_refuses_a_network_that_is_not_dense(tmp_path):
    from conftest import CNN

    data = copy.deepcopy(CNN)
    data["plasticity"] = {"rule": "pc"}
    exp = load_experiment(data)
    net = build_network(exp, DataSpec((1, 8, 8), 10))
    with pytest.raises(SystemExit, match="--pc times dense networks"):
        bench.pc_floor_shapes(net, B)


def load_bench_pcx():
    spec = importlib.util.spec_from_file_location("bench_pcx", REPO / "scripts" / "bench_pcx.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_bench_pcx_imports_without_jax_and_presents_through_one_helper():
    module = load_bench_pcx()
    assert "jax" not in module.__dict__ and "pcx" not in module.__dict__
    text = (REPO / "scripts" / "bench_pcx.py").read_text()
    assert text.count(".present(") == 1 and "def _present(" in text  # the one place a presentation runs
    assert module.parser().parse_args([]).inference_steps == 20


@pytest.mark.skipif(importlib.util.find_spec("pcx") is None, reason="pcx (pip install pcx) is not installed")
def test_bench_pcx_computes_dendrisims_updates(tmp_path):
    """On a tiny MLP of Fashion-MNIST: pcx's updates equal dendrisim's, then one timed chunk each."""
    data = copy.deepcopy(MLP)
    data["task"] = {"type": "classification", "dataset": "fashion_mnist", "batch_size": 8}
    model = tmp_path / "tiny_fmnist.yaml"
    model.write_text(yaml.safe_dump(data))
    try:
        load_experiment(model)
        from dendrisim.tasks.datasets import load_dataset

        load_dataset("fashion_mnist", None, False)
    except Exception as e:  # noqa: BLE001 - no Fashion-MNIST on this machine
        pytest.skip(f"Fashion-MNIST is not available: {e}")
    proc = subprocess.run([sys.executable, "scripts/bench_pcx.py", "--model", str(model), "--batch", "8",
                           "--inference-steps", "4", "--steps", "1", "--chunks", "1", "--warmup", "1"],
                          cwd=REPO, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "updates agree to" in proc.stdout and "MORE than" not in proc.stdout
    assert "pcx/dendrisim" in proc.stdout
