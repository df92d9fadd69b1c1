"""Data-parallel training with torch.distributed (gloo on CPU), processes spawned here."""
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parent.parent
SIM = str(REPO / "scripts" / "simulate.py")
COMMON = ["--set", "training.max_steps_per_epoch=6", "--set", "task.validation_fraction=0.1",
          "--set", "recording.enabled=false", "--epochs", "2"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_ranks(world: int, out: Path, *args) -> list[subprocess.CompletedProcess]:
    port = free_port()
    procs = []
    for rank in range(world):
        env = dict(os.environ, WORLD_SIZE=str(world), RANK=str(rank), LOCAL_RANK=str(rank),
                   MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
        procs.append(subprocess.Popen([sys.executable, SIM, "--out", str(out), *args], env=env,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    return [subprocess.CompletedProcess(p.args, p.wait(timeout=300), *p.communicate()) for p in procs]


RULE_SETS = {"dll": ["--set", "plasticity.rule=dll"], "bp": ["--set", "plasticity.rule=bp"],
             # per-projection rules: kp's learned feedback and dll's θ travel in the same collective
             "dll+bp+kp": ["--set", "projections.2.plasticity={rule: bp}", "--set", "projections.1.plasticity={rule: kp}"]}


@pytest.mark.parametrize("rule", RULE_SETS)
@pytest.mark.slow(reason="starts two processes with a gloo group for each rule mix")
def test_two_ranks_of_batch_b_equal_one_process_of_batch_2b(tmp_path, rule):
    single = subprocess.run([sys.executable, SIM, "--out", str(tmp_path / "one"), *COMMON,
                             "--set", "task.batch_size=32", *RULE_SETS[rule]],
                            capture_output=True, text=True, timeout=300)
    assert single.returncode == 0, single.stderr
    ranks = run_ranks(2, tmp_path / "two", *COMMON, "--set", "task.batch_size=16", *RULE_SETS[rule])
    for r in ranks:
        assert r.returncode == 0, r.stderr
    assert ranks[1].stdout == ""  # only rank 0 logs
    summary = json.loads(ranks[0].stdout.strip().splitlines()[-1])
    assert summary["world_size"] == 2 and summary["global_batch_size"] == 32 and summary["steps"] == 12
    one = torch.load(tmp_path / "one" / "weights.pt")
    two = torch.load(tmp_path / "two" / "weights.pt")
    for part in ("network", "rule"):
        for k in one[part]:
            torch.testing.assert_close(two[part][k], one[part][k], rtol=1e-4, atol=1e-5, msg=f"{part}.{k}")
    a = json.loads(single.stdout.strip().splitlines()[-1])
    for key in ("test_accuracy", "val_accuracy"):  # evaluation shards summed across ranks
        assert summary[key] == pytest.approx(a[key], abs=1e-3)
    assert sorted(p.name for p in (tmp_path / "two").iterdir()) == ["checkpoint.pt", "checkpoint.pt.sha256",
                                                                      "metrics.csv", "model.yaml", "run.json",
                                                                      "run.lock", "summary.json", "weights.pt",
                                                                      "weights.pt.sha256"]


@pytest.mark.slow(reason="launches torchrun twice (a run, then its resume)")
def test_torchrun_launch_and_resume(tmp_path):
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", SIM]
    proc = subprocess.run([*cmd, "--out", str(out), "--dry-run"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    assert len(lines) == 1 and json.loads(lines[0])["world_size"] == 2
    assert (out / "recording.h5").is_file()  # rank 0 records its shard
    again = subprocess.run([*cmd, "--resume", str(out)], capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    assert f"{out} is already complete (1 epochs" in again.stdout  # a finished run: nothing to do, said so


@pytest.mark.parametrize("rule", ["dll", "bp", "fa", "kp"])
def test_check_states_the_size_of_the_collective_the_trainer_sends(rule):
    """--check's all-reduce volume is what one step would put in the buffer: every tensor the
    optimizer updates (learned feedback included, fixed feedback not) plus count and stop flag."""
    import re

    from conftest import model
    from dendrisim.inspect import describe
    from dendrisim.training import RunOptions, Trainer

    exp = model([f"plasticity.rule={rule}"])
    said = int(re.search(r"each step all-reduces ([\d,]+) values", describe(exp)).group(1).replace(",", ""))
    tr = Trainer(exp, RunOptions(progress=False, log=lambda s: None))
    assert said == sum(p.numel() for p in tr.learnable) + 2
