"""Runs that can be trusted (#20): faults in every writer lose nothing and resume exactly;
no code runs from a checkpoint; one process owns a run directory; damaged files give
one-paragraph errors; readers never break the writer.

Faults are injected through ``dendrisim.rundir.fault_hook`` (the seam every write to a
run directory passes), and, where the machine lets us mount one, on a small tmpfs."""
from __future__ import annotations

import csv
import errno
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
import yaml

from conftest import MLP, recording_datasets
from dendrisim import cli, rundir
from dendrisim.errors import FileFormatError
from dendrisim.recording import open_recording
from dendrisim.rundir import load_tensors
from dendrisim.training import nonfinite_tensor

REPO = Path(__file__).resolve().parent.parent
RUN = ["--epochs", "3", "--set", "training.checkpoint_every=20", "--set",
       "recording={every: 3, flush_every: 4, projections: {h2->out: [weight, feedback]}, projections_every: 10}"]
LEFTOVERS = (".tmp", ".resuming", ".reserve")


@pytest.fixture(scope="module")
def model_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("model") / "tiny.yaml"
    path.write_text(yaml.safe_dump(MLP))
    return path


def main(capsys, *args) -> tuple[int, str, str]:
    capsys.readouterr()
    rc = cli.main([str(a) for a in args])
    out, err = capsys.readouterr()
    return rc, out, err


@pytest.fixture(scope="module")
def reference(tmp_path_factory, model_file) -> Path:
    out = tmp_path_factory.mktemp("ref") / "run"
    assert cli.main([str(model_file), "--out", str(out), *RUN]) == 0
    return out


def rows(path: Path) -> list[dict]:
    return [{k: v for k, v in r.items() if k != "seconds"} for r in csv.DictReader(open(path))]


def assert_same_run(a: Path, b: Path) -> None:
    """Bit for bit: final weights, metrics and every recorded dataset; the recording complete."""
    wa, wb = load_tensors(a / "weights.pt"), load_tensors(b / "weights.pt")
    for part in ("network", "rule"):
        assert wa[part].keys() == wb[part].keys()
        for k in wa[part]:
            assert torch.equal(wa[part][k], wb[part][k]), f"{part}.{k}"
    assert rows(a / "metrics.csv") == rows(b / "metrics.csv")
    ra, rb = recording_datasets(a / "recording.h5"), recording_datasets(b / "recording.h5")
    assert ra.keys() == rb.keys()
    for name in ra:
        assert np.array_equal(ra[name], rb[name], equal_nan=True), name
    with open_recording(b / "recording.h5") as rec:
        assert rec.complete
        assert len(np.unique(rec.steps)) == len(rec.steps)


def assert_nothing_lost(out: Path, *, complete: bool = False) -> None:
    """After a fault: no temporary file, a readable finite checkpoint, a readable recording."""
    assert not [p.name for p in out.iterdir() if p.name.endswith(LEFTOVERS)]
    state = load_tensors(out / "checkpoint.pt")
    assert nonfinite_tensor({k: state[k] for k in ("network", "rule", "optimizer")}) is None
    lengths = state["recording"]
    with open_recording(out / "recording.h5") as rec:  # every record flushed before the fault reads back
        assert len(rec.steps) >= lengths["records"] and rec.complete == complete
        assert np.isfinite(rec.activity("h1", "soma")[:lengths["records"]]).all()
        assert len(rec.metrics["epoch"]) >= lengths["epochs"]


def inject(monkeypatch, kind: str, n: int, error: BaseException) -> dict:
    """Make the ``n``-th write of ``kind`` raise ``error``."""
    calls = {"n": 0}

    def hook(k: str, path: Path) -> None:
        if k == kind:
            calls["n"] += 1
            if calls["n"] == n:
                raise error

    monkeypatch.setattr(rundir, "fault_hook", hook)
    return calls


ENOSPC = OSError(errno.ENOSPC, "No space left on device")
EIO = OSError(errno.EIO, "Input/output error")
TORCH_FULL = RuntimeError("[enforce fail at inline_container.cc:672] . PytorchStreamWriter failed writing file")


@pytest.mark.parametrize("kind, n, error, file", [
    ("recording", 60, ENOSPC, "recording.h5"),      # mid-flush: some datasets written, others not
    ("recording", 150, EIO, "recording.h5"),
    ("metrics", 2, ENOSPC, "metrics.csv"),
    ("checkpoint", 3, TORCH_FULL, "checkpoint.pt"),  # torch.save raises RuntimeError on a full disk
    ("checkpoint", 9, EIO, "checkpoint.pt"),
    ("weights", 1, ENOSPC, "weights.pt"),
    ("summary", 1, EIO, "summary.json"),
], ids=lambda v: v if isinstance(v, (str, int)) else type(v).__name__)
def test_a_fault_in_any_writer_loses_nothing_and_resume_finishes_exactly(
        reference, model_file, tmp_path, monkeypatch, capsys, kind, n, error, file):
    out = tmp_path / "run"
    calls = inject(monkeypatch, kind, n, error)
    rc, stdout, stderr = main(capsys, model_file, "--out", out, *RUN)
    assert calls["n"] >= n, "the fault was never reached"
    assert rc == 2, stderr
    assert stderr.startswith(f"error: writing {out / file} failed") and stderr.count("\n") == 1, stderr
    assert "Traceback" not in stderr and str(error.args[-1]) in stderr
    assert not (out / "summary.json").exists()  # never a finished-looking run
    assert_nothing_lost(out, complete=kind == "summary")
    monkeypatch.setattr(rundir, "fault_hook", None)  # the disk has space again
    rc, stdout, stderr = main(capsys, "--resume", out)
    assert rc == 0, stderr
    assert_same_run(reference, out)


def test_a_fault_before_the_first_checkpoint_leaves_a_run_to_overwrite(model_file, tmp_path, monkeypatch, capsys):
    """--resume starts such a run over (tests/test_hardening_run.py); a new run on its folder
    is refused unless --overwrite."""
    out = tmp_path / "run"
    inject(monkeypatch, "recording", 2, ENOSPC)
    rc, _, stderr = main(capsys, model_file, "--out", out, *RUN)
    assert rc == 2 and "recording.h5 failed" in stderr
    assert not (out / "checkpoint.pt").exists()
    monkeypatch.setattr(rundir, "fault_hook", None)
    rc, _, stderr = main(capsys, model_file, "--out", out, *RUN)  # the broken run is not replaced silently
    assert rc == 2 and "already holds a run" in stderr
    rc, _, stderr = main(capsys, model_file, "--out", out, "--overwrite", *RUN)
    assert rc == 0, stderr


def test_a_missing_recording_is_not_started_afresh_on_resume(reference, tmp_path, capsys):
    run = tmp_path / "run"
    subprocess.run(["cp", "-r", str(reference), str(run)], check=True)
    (run / "recording.h5").unlink()
    (run / "summary.json").unlink()  # not finished: the resume would write the recording
    rc, _, stderr = main(capsys, "--resume", run)
    assert rc == 2 and f"{run / 'recording.h5'} is missing, but the checkpoint" in stderr, stderr
    assert not (run / "recording.h5").exists()


def test_resume_cuts_the_recording_back_to_the_checkpoint(reference, model_file, tmp_path, capsys):
    """Records written after the last checkpoint (a kill between the two) are dropped, then
    written again, never duplicated; a recording shorter than its checkpoint is an error."""
    out = tmp_path / "run"
    inject_stop = {"n": 0}

    def hook(kind, path):  # the 4th checkpoint fails: the recording then runs ahead of checkpoint 3
        if kind == "checkpoint":
            inject_stop["n"] += 1
            if inject_stop["n"] == 4:
                raise ENOSPC

    rundir.fault_hook = hook
    try:
        assert main(capsys, model_file, "--out", out, *RUN)[0] == 2
    finally:
        rundir.fault_hook = None
    state = load_tensors(out / "checkpoint.pt")
    with h5py.File(out / "recording.h5", "r") as f:
        assert f["index/step"].shape[0] > state["recording"]["records"]  # ahead of the checkpoint
    assert main(capsys, "--resume", out)[0] == 0
    assert_same_run(reference, out)
    # a recording cut shorter than the checkpoint expects cannot be resumed exactly: a clear error
    broken = tmp_path / "broken"
    inject_stop["n"] = 0
    rundir.fault_hook = hook
    try:
        main(capsys, model_file, "--out", broken, *RUN)
    finally:
        rundir.fault_hook = None
    with h5py.File(broken / "recording.h5", "r+", locking=False) as f:
        f["index/step"].resize(1, axis=0)
    rc, _, stderr = main(capsys, "--resume", broken)
    assert rc == 2 and "dataset index/step holds 1 records, but the checkpoint it resumes from expects" in stderr
    assert not [p.name for p in broken.iterdir() if p.name.endswith(LEFTOVERS)]


@pytest.mark.parametrize("size_k", [1400, 2000])  # here: the checkpoint's write fails, then the recording's
@pytest.mark.slow(reason="mounts a small tmpfs, fills it, and trains an uninterrupted twin to compare with")
def test_a_full_tmpfs_stops_cleanly_and_resumes_exactly(model_file, tmp_path, size_k):
    """A real full disk (a small tmpfs): exit 2 with the file named, no crash, and after
    the run directory is moved to a disk with space, --resume ends as the unbroken run."""
    args = [*RUN, "--set", "recording.projections_every=1"]
    ref = tmp_path / "ref"
    assert cli.main([str(model_file), "--out", str(ref), *args]) == 0
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_k}k", "tmpfs", str(mnt)],
                      capture_output=True).returncode != 0:
        pytest.skip("mounting a tmpfs is not allowed here")
    try:
        proc = subprocess.run([sys.executable, str(REPO / "scripts" / "simulate.py"), str(model_file),
                               "--out", str(mnt / "run"), *args], capture_output=True, text=True, timeout=300)
        assert proc.returncode == 2, proc.stderr  # not 139 (a crash in HDF5's close)
        assert proc.stderr.startswith(f"error: writing {mnt / 'run'}/") and "Traceback" not in proc.stderr
        assert proc.stderr.count("\n") == 1
        subprocess.run(["cp", "-r", str(mnt / "run"), str(tmp_path / "run")], check=True)
    finally:
        subprocess.run(["umount", str(mnt)])
    out = tmp_path / "run"
    assert not [p.name for p in out.iterdir() if p.name.endswith(LEFTOVERS)]
    assert (out / "checkpoint.pt").exists(), "the disk filled before the first checkpoint; enlarge the tmpfs"
    proc = subprocess.run([sys.executable, str(REPO / "scripts" / "simulate.py"), "--resume", str(out)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert_same_run(ref, out)


# ---------------------------------------------------------------------------- no code from files
class Payload:
    """Unpickling this creates a file: proof that code ran."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


@pytest.mark.parametrize("name", ["checkpoint.pt", "weights.pt"])
def test_a_pickled_payload_never_runs(reference, tmp_path, capsys, name):
    run = tmp_path / "run"
    subprocess.run(["cp", "-r", str(reference), str(run)], check=True)
    (run / "run.lock").unlink()
    marker = tmp_path / "pwned"
    state = torch.load(run / name, weights_only=True)
    state["network"]["evil"] = Payload(marker)
    torch.save(state, run / name)
    if name == "checkpoint.pt":
        rc, _, stderr = main(capsys, "--resume", run)
        assert rc == 2 and stderr.count("\n") == 1, stderr
        assert f"{run / name}: the checkpoint holds something other than tensors and plain containers" in stderr
    with pytest.raises(FileFormatError, match="never runs code from a file"):
        load_tensors(run / name, what="weights")
    os_payload = tmp_path / "os.pt"  # the classic: os.system in __reduce__
    torch.save({"x": OsPayload(str(marker))}, os_payload)
    with pytest.raises(FileFormatError, match="holds something other than tensors"):
        load_tensors(os_payload)
    assert not marker.exists()


class OsPayload:
    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("damage", ["empty", "truncated", "garbage", "not_a_dict", "missing_keys"])
def test_a_damaged_checkpoint_gives_one_paragraph(reference, tmp_path, capsys, damage):
    run = tmp_path / "run"
    subprocess.run(["cp", "-r", str(reference), str(run)], check=True)
    ck = run / "checkpoint.pt"
    data = ck.read_bytes()
    if damage == "empty":
        ck.write_bytes(b"")
    elif damage == "truncated":
        ck.write_bytes(data[:len(data) // 2])
    elif damage == "garbage":
        ck.write_bytes(os.urandom(5000))
    elif damage == "not_a_dict":
        torch.save([torch.zeros(3)], ck)
    else:
        torch.save({"network": {}}, ck)
    rc, _, stderr = main(capsys, "--resume", run)
    assert rc == 2 and stderr.startswith(f"error: {ck}") and stderr.count("\n") == 1, stderr
    assert "Traceback" not in stderr


@pytest.mark.parametrize("damage", ["empty", "truncated", "garbage"])
def test_a_damaged_weights_file_names_the_file(tmp_path, damage):
    path = tmp_path / "weights.pt"
    torch.save({"network": {"w": torch.randn(100, 100)}}, path)
    data = path.read_bytes()
    path.write_bytes({"empty": b"", "truncated": data[:len(data) // 3], "garbage": os.urandom(999)}[damage])
    with pytest.raises(FileFormatError, match=f"^{path}: the weights"):
        load_tensors(path, what="weights")


# ---------------------------------------------------------------------------- one process per run directory
@pytest.mark.slow(reason="starts runs in subprocesses, each importing torch")
def test_a_second_process_on_the_same_run_directory_stops_at_once(model_file, tmp_path):
    out = tmp_path / "run"
    slow = [sys.executable, str(REPO / "scripts" / "simulate.py"), str(model_file), "--out", str(out),
            "--epochs", "100000", "--set", "recording.enabled=false"]  # far longer than the checks take
    first = subprocess.Popen(slow, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 120
        while not (out / "metrics.csv").is_file():
            assert first.poll() is None and time.time() < deadline, first.communicate()
            time.sleep(0.05)
        t0 = time.time()
        for extra in (["--overwrite"], []):
            second = subprocess.run(slow[:-2] + extra, capture_output=True, text=True, timeout=120)
            assert second.returncode == 2, second.stderr
            assert f"{out} is in use by another process (pid {first.pid} on " in second.stderr
            assert "simulate.py" in second.stderr and "Traceback" not in second.stderr
        second = subprocess.run([*slow[:2], "--resume", str(out)], capture_output=True, text=True, timeout=120)
        assert second.returncode == 2 and f"(pid {first.pid} on " in second.stderr, second.stderr
        assert time.time() - t0 < 60
        assert first.poll() is None  # the owner goes on undisturbed
    finally:
        first.terminate()
        first.communicate(timeout=60)
    assert first.returncode == 143


def test_out_never_replaces_a_run_silently(model_file, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(capsys, model_file, "--out", out, "--set", "recording.enabled=false")[0] == 0
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.name != "run.lock"}
    rc, _, stderr = main(capsys, model_file, "--out", out, "--seed", "3", "--set", "recording.enabled=false")
    assert rc == 2 and f"{out} already holds a run" in stderr and f"--resume {out}" in stderr
    assert before == {p.name: p.read_bytes() for p in out.iterdir() if p.name != "run.lock"}
    rc, stdout, _ = main(capsys, model_file, "--out", out, "--overwrite", "--seed", "3")
    assert rc == 0 and json.loads(stdout.splitlines()[-1])["seed"] == 3
    assert (out / "recording.h5").is_file()
    a_file = tmp_path / "file"
    a_file.write_text("x")
    for target in (a_file, a_file / "sub"):
        rc, _, stderr = main(capsys, model_file, "--out", target)
        assert rc == 2 and f"{a_file} is a file, not a directory" in stderr, stderr
    assert a_file.read_text() == "x"


def test_the_default_run_directory_stays_inside_recordings(tmp_path, monkeypatch):
    from dendrisim.errors import RunDirError
    from dendrisim.training import default_run_dir

    monkeypatch.chdir(tmp_path)
    assert default_run_dir("ok", 0).parent == Path("recordings")
    for bad in ("../../x", "/tmp/abs", "a/../../b"):
        with pytest.raises(RunDirError, match="would lie outside recordings"):
            default_run_dir(bad, 0)
    assert not (tmp_path / "x").exists()


# ---------------------------------------------------------------------------- readers
READER = """
import sys, time, h5py
path, mode = sys.argv[1], sys.argv[2]
while True:
    try:
        f = h5py.File(path, "r", swmr=True) if mode == "swmr" else h5py.File(path, "r")
        break
    except OSError:
        time.sleep(0.02)
print("open", flush=True)
time.sleep(600)
"""


@pytest.mark.parametrize("mode", ["swmr", "plain"])
def test_a_reader_holding_the_recording_never_breaks_the_writer(model_file, tmp_path, capsys, mode):
    out = tmp_path / "run"
    out.mkdir()
    readers = []

    def open_reader(row):  # after epoch 1: a reader holds the file while the run goes on and ends
        if row["epoch"] == 1:
            p = subprocess.Popen([sys.executable, "-c", READER, str(out / "recording.h5"), mode],
                                 stdout=subprocess.PIPE, text=True)
            if mode == "swmr":
                assert p.stdout.readline().strip() == "open"
            readers.append(p)

    from dendrisim.builder import load_experiment
    from dendrisim.training import RunOptions, Trainer

    exp = load_experiment(model_file, ["training.epochs=3", "recording={every: 5, flush_every: 2}"])
    tr = Trainer(exp, RunOptions(out_dir=out, progress=False, log=lambda s: None, on_epoch=open_reader))
    try:
        summary = tr.run()
        # a plain reader opens the file once the writer has closed it: the close has happened under it
        if mode == "plain":
            assert readers[0].stdout.readline().strip() == "open"
            held = subprocess.Popen([sys.executable, "-c", READER, str(out / "recording.h5"), mode],
                                    stdout=subprocess.PIPE, text=True)
            readers.append(held)
            assert held.stdout.readline().strip() == "open"
            tr2 = Trainer(exp, RunOptions(out_dir=out, progress=False, log=lambda s: None))
            tr2.resume(out / "checkpoint.pt")
            tr2.set_epochs(4)
            summary = tr2.run()  # cuts back, rewrites and closes the file a reader holds open
    finally:
        for p in readers:
            p.kill()
            p.wait()
    assert summary["epochs"] == (3 if mode == "swmr" else 4) and "stopped" not in summary
    with open_recording(out / "recording.h5") as rec:
        assert rec.complete


# ---------------------------------------------------------------------------- checksums
def test_every_dataset_carries_a_checksum_and_damage_is_an_error_naming_it(reference, tmp_path):
    path = tmp_path / "recording.h5"
    path.write_bytes((reference / "recording.h5").read_bytes())
    names = []
    with h5py.File(path, "r") as f:
        f.visititems(lambda n, o: names.append(n) if isinstance(o, h5py.Dataset) else None)
        assert names and all(f[n].fletcher32 for n in names)
        offset = f["populations/h1/soma"].id.get_chunk_info(0).byte_offset
    data = bytearray(path.read_bytes())
    data[offset + 40] ^= 0xFF
    path.write_bytes(bytes(data))
    with open_recording(path) as rec:
        with pytest.raises(FileFormatError, match=r"dataset /populations/h1/soma cannot be read .*damaged"):
            rec.activity("h1", "soma")
        assert len(rec.steps) > 0  # the undamaged datasets still read
    proc = subprocess.run([sys.executable, str(REPO / "scripts" / "plot_recording.py"), str(path),
                           "--out", str(tmp_path / "plots"), "--population", "h1", "--variable", "soma"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "/populations/h1/soma" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.parametrize("damage", ["empty", "garbage", "cut_at_5", "cut_at_40", "cut_at_95", "cut_open"])
@pytest.mark.slow(reason="runs the command in a subprocess for each kind of damage")
def test_a_damaged_recording_gives_one_paragraph_without_hanging(reference, tmp_path, damage):
    from dendrisim.recording.recover import lookup3

    data = (reference / "recording.h5").read_bytes()
    if damage == "empty":
        data = b""
    elif damage == "garbage":
        data = os.urandom(4000)
    elif damage == "cut_open":  # a killed run's file (open flag set), then cut: HDF5 retried it for minutes
        block = bytearray(data[:len(data) * 2 // 5])
        block[11] = 5
        block[44:48] = lookup3(bytes(block[:44])).to_bytes(4, "little")
        data = bytes(block)
    else:
        data = data[:len(data) * int(damage.rsplit("_", 1)[1]) // 100]
    path = tmp_path / "recording.h5"
    path.write_bytes(data)
    with pytest.raises(FileFormatError, match=f"^{path}: "):
        with open_recording(path) as rec:
            rec.attrs, rec.metrics, rec.activity("h1", "soma")
    proc = subprocess.run([sys.executable, str(REPO / "scripts" / "plot_recording.py"), str(path),
                           "--out", str(tmp_path / "plots")], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and proc.stderr.startswith(f"error: {path}") and proc.stderr.count("\n") == 1
