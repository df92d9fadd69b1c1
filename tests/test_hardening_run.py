"""No way in, no way to lose a run (#29): the run directory and its checkpoints.

One test (or one parametrized family) per class of the issue, each failing on the code
before it: 1. a run folder naming a plugin never imports it; 2. no run file is opened
through a symbolic link; 3. the lock holds against a deleted ``run.lock``; 4. a checkpoint
never holds what its own loader refuses; 5. checkpoints and ``weights.pt`` carry a checksum
that loading verifies; 6. the memory estimate counts model selection's copies; 7. a run that
stopped before its first checkpoint is finished by ``--resume``."""
from __future__ import annotations

import csv
import decimal
import errno
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from conftest import MLP, model
from dendrisim import cli, rundir
from dendrisim.errors import FileFormatError, RunDirError
from dendrisim.rundir import load_tensors

REPO = Path(__file__).resolve().parent.parent
NO_REC = ["--set", "recording.enabled=false"]
RUN = ["--epochs", "2", "--set", "training.checkpoint_every=20", "--set", "recording={every: 3, flush_every: 4}"]


from test_faults import main, model_file  # noqa: E402,F401  (the tiny model and the in-process command)


def simulate(*args, timeout=300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO / "scripts" / "simulate.py"), *map(str, args)], cwd=REPO,
                          capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"})


def rows(path: Path) -> list[dict]:
    return [{k: v for k, v in r.items() if k != "seconds"} for r in csv.DictReader(open(path))]


def one_paragraph(stderr: str) -> bool:
    return stderr.startswith("error: ") and stderr.count("\n") == 1 and "Traceback" not in stderr


# ------------------------------------------------------------------ 1. no code from a run folder
PLUGIN = """
from pathlib import Path
import dendrisim
from dendrisim.plasticity.rules import Backprop

Path(__file__).with_suffix(".imported").touch()  # proof that the file was imported


@dendrisim.register_rule("marked")
class Marked(Backprop):
    pass
"""


@pytest.mark.slow(reason="trains and resumes in subprocesses")
def test_resume_never_imports_a_plugin_the_run_folder_names(model_file, tmp_path):
    plugin = tmp_path / "marked.py"
    plugin.write_text(PLUGIN)
    marker = plugin.with_suffix(".imported")
    out = tmp_path / "run"
    first = simulate(model_file, "--plugin", plugin, "--set", "plasticity.rule=marked", "--epochs", "1",
                     "--out", out, *NO_REC)
    assert first.returncode == 0, first.stderr
    marker.unlink()
    before = {f.name: f.read_bytes() for f in out.iterdir() if f.name != "run.lock"}
    refused = simulate("--resume", out, "--epochs", "2")
    assert refused.returncode == 2 and one_paragraph(refused.stderr), refused.stderr
    assert f"{out / 'run.json'} names the plugin file {plugin.resolve()} (rules marked)" in refused.stderr
    assert f"add --plugin {plugin.resolve()}" in refused.stderr
    assert not marker.exists(), "the plugin the run folder names was imported"
    assert json.loads((out / "run.json").read_text())["plugin_rules"] == {str(plugin.resolve()): ["marked"]}
    assert {f.name: f.read_bytes() for f in out.iterdir() if f.name != "run.lock"} == before  # nothing touched
    moved = tmp_path / "elsewhere" / "marked_copy.py"  # the same rules from a moved file are the same plugin
    moved.parent.mkdir()
    shutil.copy(plugin, moved)
    again = simulate("--resume", out, "--epochs", "2", "--plugin", moved)
    assert again.returncode == 0 and "resuming" in again.stdout, again.stderr
    assert json.loads((out / "run.json").read_text())["plugins"] == [str(moved.resolve())]


# ------------------------------------------------------------------ 2. no run file through a link
@pytest.mark.parametrize("name", ["run.lock", "recording.h5.reserve", "recording.h5"])
def test_a_planted_symlink_never_changes_another_file(model_file, tmp_path, capsys, name):
    """A new --out folder holding one run file as a link onto another run's checkpoint:
    the run refuses it in one paragraph naming the file, and the other file is untouched
    (before: the lock's label was written into it, the reserve filled it with zeros, the
    recording was written through the link)."""
    victim = tmp_path / "other" / "checkpoint.pt"
    victim.parent.mkdir()
    torch.save({"network": {"w": torch.ones(1000)}}, victim)
    before = victim.read_bytes()
    out = tmp_path / "run"
    out.mkdir()
    (out / name).symlink_to(victim)
    rc, _, stderr = main(capsys, model_file, "--out", out, *RUN)
    assert rc == 2 and one_paragraph(stderr), stderr
    assert f"{out / name} is a symbolic link (to {victim})" in stderr
    assert victim.read_bytes() == before


def test_a_dangling_recording_link_never_writes_outside_the_run(model_file, tmp_path, capsys):
    outside = tmp_path / "outside.h5"
    out = tmp_path / "run"
    out.mkdir()
    (out / "recording.h5").symlink_to(outside)
    rc, _, stderr = main(capsys, model_file, "--out", out, *RUN)
    assert rc == 2 and f"{out / 'recording.h5'} is a symbolic link" in stderr, stderr
    assert not outside.exists()


def test_resume_refuses_a_planted_link_before_touching_anything(model_file, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(capsys, model_file, "--out", out, *RUN)[0] == 0
    (out / "summary.json").unlink()  # not finished: a resume would cut the recording back
    victim = tmp_path / "victim.bin"
    victim.write_bytes(b"another file" * 100)
    (out / "recording.h5.resuming").symlink_to(victim)
    rc, _, stderr = main(capsys, "--resume", out, "--epochs", "3")
    assert rc == 2 and one_paragraph(stderr) and "recording.h5.resuming is a symbolic link" in stderr, stderr
    assert victim.read_bytes() == b"another file" * 100


def test_writes_create_their_temporary_files_anew_and_never_follow_a_link(tmp_path):
    """Below the folder check: write_atomic, the reserve and a file opened in place."""
    victim = tmp_path / "victim"
    victim.write_bytes(b"keep")
    path = tmp_path / "summary.json"
    (tmp_path / "summary.json.tmp").symlink_to(victim)
    rundir.write_text(path, "summary", "{}\n")
    assert path.read_text() == "{}\n" and victim.read_bytes() == b"keep"
    reserve = tmp_path / "recording.h5.reserve"
    reserve.symlink_to(victim)
    os.close(rundir.create_new(reserve, what="the reserve"))
    assert not reserve.is_symlink() and victim.read_bytes() == b"keep"
    link = tmp_path / "lock"
    link.symlink_to(victim)
    with pytest.raises(RunDirError, match=f"^{link} is a symbolic link .*never opens a run's file through a link"):
        rundir.open_nofollow(link, os.O_RDWR, what="the lock")
    os.link(victim, tmp_path / "hard")
    with pytest.raises(RunDirError, match="a file with 2 hard links"):
        rundir.open_nofollow(victim, os.O_RDWR, what="the recording")


# ------------------------------------------------------------------ 3. the lock holds against a deleted lock file
def test_a_deleted_lock_file_does_not_free_the_directory(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    lock = rundir.RunLock.acquire(run, argv=["first"])
    try:
        (run / "run.lock").unlink()
        assert rundir.is_live(run)
        with pytest.raises(RunDirError, match=r"is in use by another process \(its label .*run.lock was removed"):
            rundir.RunLock.acquire(run, argv=["second"])
    finally:
        lock.release()
    assert not rundir.is_live(run)
    rundir.RunLock.acquire(run, argv=["third"]).release()


@pytest.mark.slow(reason="a training run and a second one in subprocesses")
def test_a_second_run_with_overwrite_after_deleting_the_lock_stops_at_once(model_file, tmp_path):
    out = tmp_path / "run"
    slow = [sys.executable, str(REPO / "scripts" / "simulate.py"), str(model_file), "--out", str(out),
            "--epochs", "100000", *NO_REC]
    first = subprocess.Popen(slow, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             env={**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"})
    try:
        deadline = time.time() + 120
        while not (out / "metrics.csv").is_file():
            assert first.poll() is None and time.time() < deadline, first.communicate()
            time.sleep(0.05)
        (out / "run.lock").unlink()
        assert rundir.is_live(out)
        second = simulate(model_file, "--out", out, "--overwrite", "--epochs", "1", *NO_REC, timeout=120)
        assert second.returncode == 2 and one_paragraph(second.stderr), second.stderr
        assert f"{out} is in use by another process" in second.stderr
        assert first.poll() is None  # the owner goes on undisturbed
    finally:
        first.terminate()
        first.communicate(timeout=60)
    assert first.returncode == 143


# ------------------------------------------------------------------ 4. a checkpoint holds only what it can read back
def trainer(out: Path, overrides=()):
    from dendrisim.training import RunOptions, Trainer

    return Trainer(model(["training.epochs=2", "training.max_steps_per_epoch=5", "recording.enabled=false",
                          *overrides]), RunOptions(out_dir=out, progress=False, log=lambda s: None))


@pytest.mark.parametrize("hook, value, where, kind", [
    ("epoch_summary", np.arange(3.0), "rows.0.spread", "numpy.ndarray"),
    ("epoch_summary", decimal.Decimal("0.1"), "rows.0.spread", "decimal.Decimal"),
    ("get_extra_state", decimal.Decimal("0.1"), "rule._extra_state", "decimal.Decimal"),
])
def test_a_rule_hook_holding_what_a_checkpoint_cannot_read_stops_the_run(tmp_path, monkeypatch, hook, value,
                                                                          where, kind):
    from dendrisim.observers.checkpoints import UnstorableValue

    tr = trainer(tmp_path / "run")
    cls = type(tr.rule)
    if hook == "epoch_summary":
        monkeypatch.setattr(cls, "epoch_summary", lambda self: {"spread": value})
        source = "the epoch_summary of rule 'dll'"
    else:
        monkeypatch.setattr(cls, "get_extra_state", lambda self: value, raising=False)
        monkeypatch.setattr(cls, "set_extra_state", lambda self, state: None, raising=False)
        source = "the state_dict of rule 'dll' (its buffers, or what its get_extra_state returns)"
    with pytest.raises(UnstorableValue) as err:
        tr.run()
    text = str(err.value)
    assert f"checkpoint.pt cannot hold the value at {where}, a {kind}" in text and f"put there by {source}" in text
    assert "\n" not in text
    assert not (tmp_path / "run" / "checkpoint.pt").exists()  # never a checkpoint the run cannot read


ARRAYS = """
import numpy as np
import dendrisim
from dendrisim.plasticity.rules import Backprop


@dendrisim.register_rule("arrays")
class Arrays(Backprop):
    def epoch_summary(self):
        return {"spread": np.arange(3.0)}
"""


def test_a_plugin_epoch_summary_holding_an_array_is_exit_2_naming_the_plugin(model_file, tmp_path):
    plugin = tmp_path / "arrays.py"
    plugin.write_text(ARRAYS)
    out = tmp_path / "run"
    proc = simulate(model_file, "--plugin", plugin, "--set", "plasticity.rule=arrays", "--out", out, *RUN)
    assert proc.returncode == 2 and one_paragraph(proc.stderr), proc.stderr
    assert (f"{out / 'checkpoint.pt'} cannot hold the value at rows.0.spread, a numpy.ndarray" in proc.stderr
            and f"the epoch_summary of rule 'arrays' (in {plugin})" in proc.stderr)
    assert load_tensors(out / "checkpoint.pt")["rows"] == []  # the last good one (step 60) reads back
    assert not (out / "summary.json").exists()


def test_an_observer_row_holding_an_object_is_named(tmp_path):
    from dendrisim.observers import Observer
    from dendrisim.observers.checkpoints import UnstorableValue

    class Tagger(Observer):
        def epoch_end(self, loop, row):
            row["tag"] = object()

    tr = trainer(tmp_path / "run")
    tr.observe(Tagger())
    with pytest.raises(UnstorableValue, match=r"value at rows\.0\.tag, a builtins\.object .*an observer added to "
                                              r"the trainer \(Tagger\)"):
        tr.run()
    state = load_tensors(tmp_path / "run" / "checkpoint.pt")  # the last good one, from epoch 1, reads back
    assert state["position"]["epoch"] == 2


# ------------------------------------------------------------------ 5. checksums
def flip_bits_in_weights(path: Path, n: int = 8) -> None:
    """Flip ``n`` bits inside the bytes of the largest weight: the file still loads."""
    state = torch.load(path, weights_only=True)
    weight = max(state["network"].values(), key=lambda t: t.numel())
    data = bytearray(path.read_bytes())
    at = bytes(data).find(weight.numpy().tobytes())
    assert at > 0
    for k in range(n):
        data[at + 8 * k + 3] ^= 0x10
    path.write_bytes(bytes(data))
    torch.load(path, weights_only=True)  # still a file torch reads: only the checksum tells


def test_a_damaged_checkpoint_or_weights_file_is_refused_by_its_checksum(model_file, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(capsys, model_file, "--out", out, *RUN)[0] == 0
    saved = (out / "checkpoint.pt").read_bytes()
    flip_bits_in_weights(out / "checkpoint.pt")
    rc, _, stderr = main(capsys, "--resume", out, "--epochs", "3")
    assert rc == 2 and one_paragraph(stderr), stderr
    assert f"{out / 'checkpoint.pt'}: its bytes do not match the checksum in {out / 'checkpoint.pt.sha256'}" in stderr
    flip_bits_in_weights(out / "weights.pt")
    with pytest.raises(FileFormatError, match=r"weights\.pt: its bytes do not match the checksum"):
        load_tensors(out / "weights.pt", what="weights")
    (out / "checkpoint.pt").write_bytes(saved)
    (out / "checkpoint.pt.sha256").unlink()  # a checkpoint written before checksums loads unchecked
    assert main(capsys, "--resume", out, "--epochs", "3")[0] == 0
    assert (out / "checkpoint.pt.sha256").is_file()


def test_a_stop_between_the_checksum_and_the_rename_keeps_the_checkpoint_loadable(tmp_path, monkeypatch):
    path = tmp_path / "checkpoint.pt"
    rundir.write_atomic(path, "checkpoint", lambda fh: torch.save({"x": torch.zeros(3)}, fh), checksum=True)
    real = os.replace

    def stop_before_the_rename(src, dst):
        if Path(dst) == path:
            raise OSError(errno.EIO, "killed")
        real(src, dst)

    monkeypatch.setattr(os, "replace", stop_before_the_rename)
    with pytest.raises(Exception):
        rundir.write_atomic(path, "checkpoint", lambda fh: torch.save({"x": torch.ones(3)}, fh), checksum=True)
    monkeypatch.setattr(os, "replace", real)
    assert torch.equal(load_tensors(path)["x"], torch.zeros(3))  # the old file matches the sidecar's second line
    rundir.write_atomic(path, "checkpoint", lambda fh: torch.save({"x": torch.ones(3)}, fh), checksum=True)
    assert torch.equal(load_tensors(path)["x"], torch.ones(3))
    rundir.write_atomic(path, "checkpoint", lambda fh: torch.save({"x": torch.full((3,), 2.0)}, fh))
    assert not rundir.checksum_path(path).exists()  # written unchecked: no stale checksum refuses it
    assert torch.equal(load_tensors(path)["x"], torch.full((3,), 2.0))


# ------------------------------------------------------------------ 6. memory
def test_the_memory_estimate_counts_model_selections_copies():
    from dendrisim.builder import build, memory_estimate
    from dendrisim.tasks import TASKS

    classification = TASKS.get("classification")
    parts = memory_estimate(model(["training.select_best=true"]), classification)
    built = build(model(), device="cpu")
    network, rule = built.network, built.rule
    state = sum(t.numel() for t in network.state_dict().values()) + sum(t.numel() for t in rule.state_dict().values())
    assert parts["selection"] == 2 * 4 * state > 0  # the best epoch's copy, and the last epoch's set aside
    assert memory_estimate(model(["training.select_best=false"]), classification)["selection"] == 0


# ------------------------------------------------------------------ 7. a fault before the first checkpoint
def test_resume_starts_over_a_run_that_stopped_before_its_first_checkpoint(model_file, tmp_path, capsys, monkeypatch):
    reference = tmp_path / "ref"
    assert main(capsys, model_file, "--out", reference, *RUN)[0] == 0
    out = tmp_path / "run"
    calls = {"n": 0}

    def full_disk(kind, path):
        if kind == "recording":
            calls["n"] += 1
            if calls["n"] == 2:
                raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(rundir, "fault_hook", full_disk)
    rc, _, stderr = main(capsys, model_file, "--out", out, *RUN)
    assert rc == 2 and not (out / "checkpoint.pt").exists(), stderr
    monkeypatch.setattr(rundir, "fault_hook", None)
    rc, _, stderr = main(capsys, "--resume", out, "--set", "optimizer.lr=0.5")  # options stay the run's
    assert rc == 2 and "optimizer.lr differs" in stderr and one_paragraph(stderr), stderr
    rc, stdout, stderr = main(capsys, "--resume", out)
    assert rc == 0, stderr
    notes = [line for line in stderr.splitlines() if "has no checkpoint" in line]
    assert len(notes) == 1 and notes[0].startswith(f"note: {out} has no checkpoint"), stderr
    assert "starts over from the beginning" in notes[0]
    for part in ("network", "rule"):  # the same run as one never interrupted
        a, b = load_tensors(reference / "weights.pt")[part], load_tensors(out / "weights.pt")[part]
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert rows(out / "metrics.csv") == rows(reference / "metrics.csv") and len(rows(reference / "metrics.csv")) == 2
    assert json.loads((out / "run.json").read_text())["resumes"][0]["started_over"] is True
    # a finished run whose checkpoint is gone is never started over
    (out / "checkpoint.pt").unlink()
    rc, _, stderr = main(capsys, "--resume", out)
    assert rc == 2 and "checkpoint.pt is missing" in stderr
