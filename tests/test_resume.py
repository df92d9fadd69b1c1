"""Checkpoints: a run stopped (SIGTERM) or killed (SIGKILL) and resumed ends exactly
where the uninterrupted run ends: same weights, metrics and recording."""
import csv
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from conftest import recording_datasets

REPO = Path(__file__).resolve().parent.parent
ARGS = ["--epochs", "12", "--set", "task.batch_size=16", "--set",
        "recording={every: 3, flush_every: 4, projections: {h2->out: [weight, feedback]}, projections_every: 10}"]


def cmd(*args):
    return [sys.executable, str(REPO / "scripts" / "simulate.py"), *map(str, args)]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    out = tmp_path_factory.mktemp("ref") / "run"
    proc = subprocess.run(cmd("--out", out, *ARGS), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return out


def interrupt(out: Path, sig) -> None:
    proc = subprocess.Popen(cmd("--out", out, *ARGS), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not (out / "metrics.csv").is_file() or len((out / "metrics.csv").read_text().splitlines()) < 3:
        assert proc.poll() is None and time.time() < deadline, proc.communicate()
        time.sleep(0.01)
    proc.send_signal(sig)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == {signal.SIGTERM: 143, signal.SIGKILL: -9}[sig], stderr
    if sig == signal.SIGTERM:
        assert f"resume with: python scripts/simulate.py --resume {out}" in stdout


def rows(path: Path) -> list[dict]:
    return [{k: v for k, v in r.items() if k != "seconds"} for r in csv.DictReader(open(path))]


def datasets(path: Path) -> dict:
    out = recording_datasets(path)
    with h5py.File(path, "r") as f:
        out["complete"] = bool(f.attrs["complete"])
    return out


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
def test_interrupted_and_resumed_equals_uninterrupted(reference, tmp_path, sig):
    out = tmp_path / "run"
    interrupt(out, sig)
    assert (out / "checkpoint.pt").is_file() and not (out / "summary.json").exists()
    proc = subprocess.run(cmd("--resume", out), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "resuming" in proc.stdout
    a = torch.load(reference / "weights.pt")
    b = torch.load(out / "weights.pt")
    for part in ("network", "rule"):
        assert a[part].keys() == b[part].keys()
        for k in a[part]:
            assert torch.equal(a[part][k], b[part][k]), f"{part}.{k}"
    assert rows(out / "metrics.csv") == rows(reference / "metrics.csv")
    ra, rb = datasets(reference / "recording.h5"), datasets(out / "recording.h5")
    assert ra.keys() == rb.keys() and rb["complete"]
    steps = rb["index/step"]
    assert len(np.unique(steps)) == len(steps)  # no duplicated records
    for name in ra:
        assert np.array_equal(ra[name], rb[name], equal_nan=True), name


def test_a_checkpoint_of_another_model_is_refused(reference, tmp_path):
    proc = subprocess.run(cmd(REPO / "models" / "dll_mlp_fmnist.yaml", "--resume", reference),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2
    assert "was written by a different model file" in proc.stderr and "Traceback" not in proc.stderr


def test_resume_needs_a_run_directory(tmp_path):
    proc = subprocess.run(cmd("--resume", tmp_path), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2
    assert "checkpoint.pt is missing" in proc.stderr


def test_checkpoint_every_steps_is_atomic(tmp_path):
    from conftest import model
    from dendrisim.training import RunOptions, Trainer

    tr = Trainer(model(["training.max_steps_per_epoch=10", "training.checkpoint_every=4"]),
                 RunOptions(out_dir=tmp_path, progress=False, log=lambda s: None))
    tr.run()
    state = torch.load(tmp_path / "checkpoint.pt", weights_only=False)
    assert state["position"]["global_step"] == 10 and state["position"]["epoch"] == 2
    assert not list(tmp_path.glob("*.tmp"))
