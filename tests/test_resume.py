"""Checkpoints: a run stopped (SIGTERM) or killed (SIGKILL) and resumed ends exactly
where the uninterrupted run ends: same weights, metrics and recording."""
import csv
import json
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
        assert f"resume with: dendrisim run --resume {out}" in stdout


def rows(path: Path) -> list[dict]:
    return [{k: v for k, v in r.items() if k != "seconds"} for r in csv.DictReader(open(path))]


def datasets(path: Path) -> dict:
    out = recording_datasets(path)
    with h5py.File(path, "r") as f:
        out["complete"] = bool(f.attrs["complete"])
    return out


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
@pytest.mark.slow(reason="trains an interrupted run, its resume and an uninterrupted twin")
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


# ---------------------------------------------------------------------------- resume is honest (#20)
def _main(capsys, *args):
    from dendrisim import cli

    capsys.readouterr()
    rc = cli.main([str(a) for a in args])
    out, err = capsys.readouterr()
    return rc, out, err


SMALL = ["--set", "recording={every: 5, flush_every: 4}", "--set", "task.batch_size=32"]


@pytest.fixture(scope="module")
def three_epochs(tmp_path_factory):
    from dendrisim import cli

    out = tmp_path_factory.mktemp("three") / "run"
    assert cli.main(["--out", str(out), "--epochs", "3", *SMALL]) == 0
    return out


def _copy(run: Path, to: Path) -> Path:
    subprocess.run(["cp", "-r", str(run), str(to)], check=True)
    return to


def test_more_epochs_continue_a_finished_run_as_one_longer_run(three_epochs, tmp_path, capsys):
    import yaml

    run = _copy(three_epochs, tmp_path / "run")
    rc, out, err = _main(capsys, "--resume", run, "--epochs", "5")
    assert rc == 0, err
    assert "applied on resume: training.epochs=5 (written to model.yaml and run.json)" in out
    assert yaml.safe_load((run / "model.yaml").read_text())["training"]["epochs"] == 5
    saved = json.loads((run / "run.json").read_text())
    assert saved["resumes"][-1]["changed"] == {"training.epochs": 5}
    five = tmp_path / "five"
    assert _main(capsys, "--out", five, "--epochs", "5", *SMALL)[0] == 0
    a, b = torch.load(five / "weights.pt"), torch.load(run / "weights.pt")
    for k in a["network"]:
        assert torch.equal(a["network"][k], b["network"][k]), k
    assert rows(run / "metrics.csv") == rows(five / "metrics.csv")
    ra, rb = datasets(five / "recording.h5"), datasets(run / "recording.h5")
    assert ra.keys() == rb.keys() and rb["complete"]
    for name in ra:
        assert np.array_equal(ra[name], rb[name], equal_nan=True), name


def test_options_a_resume_cannot_apply_are_refused_by_name(three_epochs, tmp_path, capsys):
    run = _copy(three_epochs, tmp_path / "run")
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.name != "run.lock"}
    rc, _, err = _main(capsys, "--resume", run, "--set", "optimizer.lr=0.5", "--seed", "3")
    assert rc == 2 and "optimizer.lr, training.seed differ" in err and "Traceback" not in err
    assert "can change only training.epochs, training.checkpoint_every, training.guard_every" in err
    rc, _, err = _main(capsys, "--resume", run, "--epochs", "2")
    assert rc == 2 and "training.epochs 2 is below the 3 epochs the run has completed" in err
    assert before == {p.name: p.read_bytes() for p in run.iterdir() if p.name != "run.lock"}  # nothing touched


def test_a_complete_run_resumed_as_it_is_says_so(three_epochs, tmp_path, capsys):
    run = _copy(three_epochs, tmp_path / "run")
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.name != "run.lock"}
    rc, out, err = _main(capsys, "--resume", run)
    assert rc == 0 and f"{run} is already complete (3 epochs" in out, err
    assert before == {p.name: p.read_bytes() for p in run.iterdir() if p.name != "run.lock"}


def test_checkpoints_load_with_weights_only(three_epochs):
    state = torch.load(three_epochs / "checkpoint.pt", weights_only=True)  # raises on anything but data
    assert state["position"]["epoch"] == 4 and isinstance(state["rng"]["numpy"]["keys"], torch.Tensor)


def test_a_resume_computes_its_first_step_as_the_uninterrupted_run(tmp_path):
    """The rules write into an existing .grad with addmm(alpha=-c/B) and into a fresh one with
    mm().mul_(-c/B), which round differently when c/B is not a power of two (sigma 0.9; the
    epoch's last batch of 14): the checkpoint says which tensors had a buffer, and the resumed
    run gets them back."""
    from conftest import model
    from dendrisim.observers import Observer
    from dendrisim.training import RunOptions, Trainer

    class StopAt(Observer):
        def __init__(self, n):
            self.n = n

        def after_step(self, loop, step):
            if step.number == self.n:
                loop.request_stop("test")

    overrides = ["training.epochs=2", "recording.enabled=false", "plasticity.sigma=0.9"]
    options = lambda out: RunOptions(out_dir=out, progress=False, log=lambda s: None)  # noqa: E731
    reference = Trainer(model(overrides), options(tmp_path / "ref"))
    reference.run()
    for n in (7, 80, 81):  # mid-epoch, before the short last batch, at the epoch's end
        out = tmp_path / f"stop{n}"
        first = Trainer(model(overrides), options(out))
        first.observe(StopAt(n))
        first.run()
        again = Trainer(model(overrides), options(out))
        again.resume(out / "checkpoint.pt")
        again.run()
        for k, v in reference.network.state_dict().items():
            assert torch.equal(again.network.state_dict()[k], v), (n, k)
