"""HDF5 recordings: exact round trip, flush equivalence, crash safety, clean stops, names."""
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

from conftest import model, recording_datasets
from dendrisim.errors import ConfigError
from dendrisim.observers import Observer
from dendrisim.recording import open_recording
from dendrisim.training import RunOptions, Trainer

REPO = Path(__file__).resolve().parent.parent


def trainer(tmp_path, *overrides, rule="dll"):
    exp = model([f"plasticity.rule={rule}", "training.max_steps_per_epoch=7", *overrides])
    return Trainer(exp, RunOptions(out_dir=tmp_path, progress=False, log=lambda s: None))


def test_round_trip_is_bit_exact(tmp_path):
    tr = trainer(tmp_path, "recording={every: 1, flush_every: 3, samples: 5, "
                           "projections: {h1->h2: [weight, update, feedback, feedback_update]}}")
    held = []
    record = None

    def capture(step, epoch, ids, **kw):
        record(step, epoch, ids, **kw)
        held.append({
            "soma": tr.network.last_state["h1"].soma[:5].clone(),
            "apical": tr.network.last_state["h2"].apical[:5].clone(),
            "error": tr.network.last_state["h2"].error[:5].clone(),
            "weight": tr.network.projections["h1->h2"].weight.detach().clone(),
            "update": tr.network.projections["h1->h2"].weight.grad.clone(),
            "feedback": tr.rule.theta["h1->h2"].detach().clone(),
            "ids": ids[:5].clone(),
        })

    tr._open_recorder(tmp_path)
    record, tr.recorder.after_step = tr.recorder.after_step, capture
    tr.train_epoch(1)
    tr.recorder.close(complete=True)
    with open_recording(tmp_path / "recording.h5") as rec:
        assert list(rec.steps) == list(range(1, 8)) and list(rec.epochs) == [1] * 7
        assert rec.complete
        for i, h in enumerate(held):
            assert np.array_equal(rec.activity("h1", "soma")[i], h["soma"].numpy())
            assert np.array_equal(rec.activity("h2", "apical")[i], h["apical"].numpy())
            assert np.array_equal(rec.activity("h2", "error")[i], h["error"].numpy())
            assert np.array_equal(rec.projection("h1->h2", "weight")[i], h["weight"].numpy())
            assert np.array_equal(rec.projection("h1->h2", "update")[i], h["update"].numpy())
            assert np.array_equal(rec.projection("h1->h2", "feedback")[i], h["feedback"].numpy())
            assert np.array_equal(rec.sample_ids[i], h["ids"].numpy())
        ds = rec.file["populations/h1/soma"]
        assert list(ds.attrs["axes"]) == ["record", "sample", "neuron"] and ds.attrs["meaning"]
        assert ds.compression == "lzf" and ds.maxshape[0] is None and ds.chunks is not None


@pytest.mark.parametrize("compression", ["lzf", "gzip", "none"])
def test_flush_every_n_equals_one_write(tmp_path, compression):
    files = []
    for flush in (1, 1000):
        out = tmp_path / f"f{flush}"
        trainer(out, f"recording={{every: 2, flush_every: {flush}, projections: {{h2->out: [weight]}}, "
                     f"compression: {compression}}}", "training.epochs=2").run()
        files.append(recording_datasets(out / "recording.h5", layout=True))
    assert "populations/h2/rate" in files[0] and "projections/h2->out/weight" in files[0]
    assert files[0].keys() == files[1].keys()
    for name in files[0]:
        if name.startswith("metrics"):
            continue
        assert np.array_equal(files[0][name][0], files[1][name][0], equal_nan=True), name
    assert files[0]["populations/h1/soma"][3] == (None if compression == "none" else compression)


def test_root_attributes_explain_the_run(tmp_path):
    tr = trainer(tmp_path, "training.seed=5")
    tr.run()
    with open_recording(tmp_path / "recording.h5") as rec:
        a = rec.attrs
        assert a["schema_version"] == 1 and a["model_name"] == "tiny" and a["rule"] == "dll" and a["seed"] == 5
        assert a["device"] == "cpu" and a["torch_version"] == str(torch.__version__) and a["created"]
        assert rec.model["training"]["seed"] == 5
        m = rec.metrics
        assert list(m["epoch"]) == [1] and {"train_loss", "val_accuracy", "test_accuracy"} <= set(m)


def test_float16_neuron_subset_and_random_samples(tmp_path):
    tr = trainer(tmp_path, "recording={every: 1, dtype: float16, neurons: 3, samples: 4, sample_selection: random, "
                           "populations: {h1: [rate]}}")
    tr.run()
    with open_recording(tmp_path / "recording.h5") as rec:
        data = rec.activity("h1", "rate")
        assert data.dtype == np.float16 and data.shape == (7, 4, 3)
        ids = rec.sample_ids
        assert (ids >= 0).all() and ids.shape == (7, 4)


@pytest.mark.parametrize("block,match", [
    ("{populations: {h1: [soma, dendrite]}}", r"recording.populations.h1: 'dendrite' is not recordable; h1 records soma, basal, apical, rate, error"),
    ("{populations: {h9: [soma]}}", r"recording.populations: 'h9' is not a population; populations are input, h1, h2, out|recording.populations.h9: 'h9' is not a population"),
    ("{projections: {h1->h2: [theta]}}", r"recording.projections.h1->h2: 'theta' is not recordable of h1->h2 under its rule dll; choose from weight, update, feedback, feedback_update"),
    ("{projections: {h1->h3: [weight]}}", r"recording.projections.h1->h3: 'h1->h3' is not a projection; projections are input->h1, h1->h2, h2->out"),
    ("{rule: [theta]}", r"recording.rule: 'theta' is not recordable; rule dll records clip_counts"),
])
def test_unknown_names_fail_before_the_run_with_the_valid_names(tmp_path, block, match):
    with pytest.raises(ConfigError, match=match):
        trainer(tmp_path / "run", f"recording={block}")
    assert not (tmp_path / "run").exists()


def test_clip_counts_are_recorded(tmp_path):
    tr = trainer(tmp_path, "plasticity.clip_update=1e-6", "recording={every: 1, rule: [clip_counts]}")
    tr.run()
    with open_recording(tmp_path / "recording.h5") as rec:
        counts = rec.clip_counts
        assert set(counts) == {"update:input->h1", "update:h1->h2", "update:h2->out"}
        c = counts["update:h2->out"]
        assert c[-1] == int(tr.rule.clip_counts["update:h2->out"]) and (np.diff(c) >= 0).all() and c[-1] > 0


def _start(tmp_path, *extra, flush_every=7):
    out = tmp_path / "run"
    cmd = [sys.executable, str(REPO / "scripts" / "simulate.py"), "--out", str(out), "--epochs", "400",
           "--set", f"recording={{every: 1, flush_every: {flush_every}}}", "--set", "task.batch_size=8", *extra]
    return out, subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for_epochs(out: Path, n: int, proc, timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        csv = out / "metrics.csv"
        if csv.is_file() and len(csv.read_text().strip().splitlines()) > n:
            return
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    raise AssertionError("the run did not get going")


@pytest.mark.parametrize("flush_every", [7, 1])
@pytest.mark.slow(reason="kills a run in a subprocess at several moments")
def test_sigkill_leaves_a_readable_file_with_valid_records(tmp_path, flush_every):
    """flush_every=1 flushes after every step, so the kill most likely lands mid-write."""
    out, proc = _start(tmp_path, flush_every=flush_every)
    try:
        _wait_for_epochs(out, 2, proc)
        with open_recording(out / "recording.h5") as live:  # readable while the run goes on
            n = len(live.steps)
            assert n >= 2 * 161  # 162 steps an epoch; the last, of 1293 % 8 = 5 samples, is too short to record
            deadline = time.time() + 30  # a loaded CI machine may take a while to flush the next records
            while len(live.steps) == n and time.time() < deadline:
                time.sleep(0.1)
                live.refresh()
            assert len(live.steps) > n, "refresh() shows records flushed after the file was opened"
        proc.kill()
        proc.wait(timeout=30)
    finally:
        proc.kill()
    path = out / "recording.h5"
    with pytest.raises(OSError, match="h5clear"):
        h5py.File(path, "r")  # HDF5 refuses a plain open of a file still marked open...
    with h5py.File(path, "r", swmr=True) as f:  # ...but reads it as it is in SWMR mode
        assert f["index/step"].shape[0] >= 2 * 161
    with open_recording(path) as rec:
        assert not rec.complete
        steps = rec.steps
        assert len(steps) >= 2 * 161  # two full epochs were flushed at their ends
        # every step but each epoch's short last batch (its record goes to the next step, recorded anyway)
        assert set(np.diff(steps)) == {1, 2} and steps[0] == 1 and 162 not in steps and 161 in steps
        assert (rec.sample_ids >= 0).all()
        for var in ("soma", "basal", "apical", "rate", "error"):
            data = rec.activity("h1", var)
            assert data.shape[0] == len(steps) and np.isfinite(data).all()
        assert len(rec.metrics["epoch"]) >= 2
        n_records = len(steps)
    from dendrisim.recording.recover import clear_open_flags

    proc = subprocess.run([sys.executable, "-m", "dendrisim.recording.recover", str(path)], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout.startswith(f"{path}: cleared"), proc
    assert not clear_open_flags(path)
    with h5py.File(path, "r") as f:  # plain h5py, after recovery
        assert f["index/step"].shape[0] == n_records and not f.attrs["complete"]


def test_lookup3_matches_the_reference_vectors():
    from dendrisim.recording.recover import lookup3

    # from lookup3.c's driver: hashlittle("", 0) and "Four score and seven years ago" with 0 and 1
    assert lookup3(b"") == 0xDEADBEEF
    assert lookup3(b"Four score and seven years ago", 0) == 0x17770551
    assert lookup3(b"Four score and seven years ago", 1) == 0xCD628161


@pytest.mark.parametrize("sig,code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_signals_close_the_file_properly_but_not_complete(tmp_path, sig, code):
    out, proc = _start(tmp_path)
    _wait_for_epochs(out, 1, proc)
    proc.send_signal(sig)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == code, stderr
    assert "finishing the current step" in stderr
    summary = json.loads(stdout.strip().splitlines()[-1])
    assert summary["stopped"] == sig.name
    with open_recording(out / "recording.h5") as rec:
        assert not rec.complete and rec.attrs["finished"]
        # the last step before the stop is recorded, unless it was an epoch's short last batch (every 162nd)
        last = summary["steps"] if summary["steps"] % 162 else summary["steps"] - 1
        assert rec.steps[-1] == last
        assert len(rec.metrics["epoch"]) == summary["epochs"]


def test_clean_end_is_complete_and_reader_and_plots_work(tmp_path):
    tr = trainer(tmp_path, "training.epochs=2", "recording={every: 2, projections: {h2->out: [weight, feedback]}}")
    tr.run()
    path = tmp_path / "recording.h5"
    with open_recording(path) as rec:
        assert rec.complete
        assert rec.activity("h1", "soma", steps=(0, 5)).shape[0] == len(rec.steps_for("h1", steps=(0, 5))) == 2
        with pytest.raises(KeyError, match="h1 has no recorded 'theta'"):
            rec.activity("h1", "theta")
    proc = subprocess.run([sys.executable, str(REPO / "scripts" / "plot_recording.py"), str(tmp_path)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    made = proc.stdout.split()
    assert {Path(p).name for p in made} == {"learning_curves.png", "activity.png", "heatmap_h1_rate.png", "alignment.png"}
    for p in made:
        assert Path(p).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_flush_torn_by_a_kill_reads_as_the_whole_records_before_it(tmp_path):
    """A kill between two appends of one flush leaves some datasets a row ahead of others (the
    CI run that found this: index/step 376 rows, populations/h1/soma 375). The reader counts only
    the rows every dataset of a kind holds, so each record it returns is whole."""
    tr = trainer(tmp_path, "recording={every: 1, flush_every: 2, projections: {h1->h2: [weight]}}")
    tr.run()
    path = tmp_path / "recording.h5"
    with open_recording(path) as rec:
        whole = {"steps": rec.steps, "weight_steps": rec.weight_steps, "soma": rec.activity("h1", "soma"),
                 "metrics": rec.metrics}
    assert len(whole["steps"]) == 7 and len(whole["weight_steps"]) == 7
    with h5py.File(path, "a") as f:  # the torn flush: some datasets got the next row, others not
        for name in ("index/step", "index/epoch", "populations/h2/soma", "index/weight_step", "metrics/epoch"):
            f[name].resize(f[name].shape[0] + 1, axis=0)
    with open_recording(path) as rec:
        assert np.array_equal(rec.steps, whole["steps"]) and np.array_equal(rec.epochs, [1] * 7)
        assert np.array_equal(rec.weight_steps, whole["weight_steps"])
        assert rec.activity("h2", "soma").shape[0] == 7 and rec.sample_ids.shape[0] == 7
        assert np.array_equal(rec.activity("h1", "soma"), whole["soma"])
        assert rec.projection("h1->h2", "weight").shape[0] == 7
        assert all(len(v) == len(whole["metrics"]["epoch"]) for v in rec.metrics.values())
        assert rec.activity("h1", "soma", steps=(3, 100)).shape[0] == len(rec.steps_for("h1", steps=(3, 100))) == 5


def test_feedback_angle_oracle():
    from dendrisim.recording.plots import feedback_angle

    w = np.array([[[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]])  # [1, post=3, pre=2]
    assert feedback_angle(np.swapaxes(w, 1, 2), w)[0] == pytest.approx(0.0, abs=1e-6)
    assert feedback_angle(-np.swapaxes(w, 1, 2), w)[0] == pytest.approx(180.0)


def test_a_clean_close_leaves_no_dead_space_and_loses_nothing(tmp_path, monkeypatch):
    """SWMR never reuses the space of a rewritten chunk, and epoch ends flush partly filled
    ones: the closed file is compacted, with every value and attribute kept."""
    import importlib
    import os

    recorder = importlib.import_module("dendrisim.recording.recorder")
    from dendrisim.recording.recover import stored_bytes
    args = ("recording={every: 2, flush_every: 50}", "training.epochs=8", "training.max_steps_per_epoch=9")
    trainer(tmp_path / "compacted", *args).run()
    monkeypatch.setattr(recorder, "compact", lambda path: False)
    trainer(tmp_path / "as_written", *args).run()
    compacted, as_written = tmp_path / "compacted" / "recording.h5", tmp_path / "as_written" / "recording.h5"
    with h5py.File(compacted, "r") as f:
        assert f["index/step"].shape[0] == 8 * 5 and f.attrs["complete"]  # steps 2, 4, 6, 8 and 9 of each epoch
    stored = stored_bytes(compacted)
    assert os.path.getsize(as_written) > 2 * stored, "the write pattern leaves dead space (else this tests nothing)"
    assert os.path.getsize(compacted) < 1.1 * stored + 100_000
    a, b = recording_datasets(compacted, layout=True), recording_datasets(as_written, layout=True)
    assert a.keys() == b.keys()
    with h5py.File(compacted, "r") as fa, h5py.File(as_written, "r") as fb:
        assert fa.attrs.keys() == fb.attrs.keys()
    for name in a:
        (va, attrs_a, *layout_a), (vb, attrs_b, *layout_b) = a[name], b[name]
        assert layout_a == layout_b and attrs_a.keys() == attrs_b.keys(), name
        if name.startswith(("populations", "projections")):  # the same seed: the same activity
            np.testing.assert_array_equal(va, vb, err_msg=name)
    with open_recording(compacted) as rec:  # the reader (SWMR mode) opens the rewritten file
        assert rec.complete and rec.activity("h1", "soma").shape[0] == 40


def test_recorder_memory_is_a_fixed_buffer(tmp_path):
    tr = trainer(tmp_path, "recording={every: 1, flush_every: 4}", "training.epochs=3")
    tr.run()
    streams = list(tr.recorder.streams.values()) + list(tr.recorder.index.values())
    assert all(s.buffer.shape[0] == 4 for s in streams)


def test_a_full_disk_stops_the_run_cleanly_with_the_records_so_far(tmp_path, monkeypatch):
    import errno

    from dendrisim.errors import WriteError

    from dendrisim.recording import recorder as rec_mod

    real_write, calls = rec_mod._Stream.write, {"n": 0}

    def write(self, n):
        if self.dataset.name == "/index/step":
            calls["n"] += 1
            if calls["n"] == 3:
                raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(self, n)

    monkeypatch.setattr(rec_mod._Stream, "write", write)
    lines = []
    exp = model(["training.epochs=3", "training.max_steps_per_epoch=20", "recording={every: 1, flush_every: 5}"])
    tr = Trainer(exp, RunOptions(out_dir=tmp_path, progress=False, log=lines.append))
    # the run stops after the step, then ends in an error naming the file (exit 2 from the CLI)
    with pytest.raises(WriteError, match=r"writing .*recording\.h5 failed at step 15 \(OSError: \[Errno 28\] No space"):
        tr.run()
    assert tr.global_step == 15 and tr.stop_requested == "recording failure"
    assert any("No space left on device" in line for line in lines)
    assert not (tmp_path / "checkpoint.pt").exists()  # none after the failure (and none was due before)
    with open_recording(tmp_path / "recording.h5") as rec:  # the first two flushes are intact
        assert list(rec.steps) == list(range(1, 11))
        assert np.isfinite(rec.activity("h1", "soma")).all() and not rec.complete
    assert not (tmp_path / "summary.json").exists()


def test_the_epoch_end_record_holds_the_last_training_batch_not_an_evaluation_batch(tmp_path):
    """With a vanishing learning rate the weights stay put, so the recorded rates of the
    recorded training samples must equal a fresh forward pass on those samples."""
    tr = trainer(tmp_path, "recording={every: 0, samples: 4}", "optimizer.lr=1.0e-12", "training.epochs=2")
    tr.run()
    with open_recording(tmp_path / "recording.h5") as rec:
        assert rec.steps.tolist() == [7, 14]
        ids = rec.sample_ids[-1]
        recorded = rec.activity("h2", "rate")[-1]
    with torch.no_grad():
        tr.network(tr.task.train.x[torch.as_tensor(ids)])
    np.testing.assert_allclose(recorded, tr.network.last_state["h2"].rate.numpy(), rtol=1e-4, atol=1e-6)


# ---------------------------------------------------------------------------- phase marks (#23)
class _StopAt(Observer):
    def __init__(self, step):
        self.step = step

    def after_step(self, loop, step):
        if step.number == self.step:
            loop.request_stop("test")


def test_phase_marks_are_zeros_without_phases_and_when_an_older_file_lacks_them(tmp_path):
    rec_block = "recording={every: 2, flush_every: 3, projections: {h2->out: [weight]}}"
    trainer(tmp_path / "a", rec_block).run()
    with open_recording(tmp_path / "a" / "recording.h5") as rec:
        assert rec.phases == [] and len(rec.phase) == len(rec.steps) > 0 and not rec.phase.any()
        assert rec.phase.dtype == np.int64 and len(rec.weight_phase) == len(rec.weight_steps) > 0
    # a file written before phases were recorded: the reader answers zeros, and a resumed run
    # writes zeros for the records before it
    out = tmp_path / "b"
    tr = trainer(out, rec_block, "training.epochs=2")
    tr.observe(_StopAt(9))
    assert tr.run()["stopped"] == "test"
    with h5py.File(out / "recording.h5", "r+") as f:
        for name in ("index/phase", "index/weight_phase"):
            del f[name]
        del f.attrs["phases"]
    with open_recording(out / "recording.h5") as rec:
        assert rec.phases == [] and rec.phase.tolist() == [0] * len(rec.steps) and len(rec.steps) == 5
        assert rec.weight_phase.tolist() == [0] * len(rec.weight_steps)
    again = trainer(out, rec_block, "training.epochs=2")
    again.resume(out / "checkpoint.pt")
    again.run()
    whole = tmp_path / "c"
    trainer(whole, rec_block, "training.epochs=2").run()
    ra, rb = recording_datasets(whole / "recording.h5"), recording_datasets(out / "recording.h5")
    assert ra.keys() == rb.keys()
    for name in ra:
        assert np.array_equal(ra[name], rb[name], equal_nan=True), name


def test_hidden_records_interneurons_too():
    from types import SimpleNamespace

    from dendrisim.recording.recorder import MEANING, selection

    def pop(name, recordable):
        return SimpleNamespace(name=name, recordable=recordable, size=4, shape=(4,))

    h1 = pop("h1", ("soma", "basal", "apical", "rate", "error"))
    i1 = pop("i1", ("soma", "dendrite", "nudging", "rate", "error"))
    i2 = pop("i2", ("soma", "dendrite", "nudging", "rate", "error"))
    net = SimpleNamespace(hidden=lambda: iter([h1]), interneurons=lambda: iter([i1, i2]),
                          populations={"h1": h1, "i1": i1, "i2": i2}, needs_error={"h1", "i1"}, projections={})
    pops, _ = selection(model().config.recording, net, SimpleNamespace(recordables=()), file=None)
    assert pops == {"h1": h1.recordable, "i1": i1.recordable, "i2": ("soma", "dendrite", "nudging", "rate")}
    assert {"dendrite", "nudging"} <= set(MEANING) and "interneurons" in MEANING["apical"]
    # a network without interneurons records its hidden populations as before
    plain = SimpleNamespace(hidden=lambda: iter([h1]), interneurons=lambda: iter(()), populations={"h1": h1},
                            needs_error={"h1"}, projections={})
    assert selection(model().config.recording, plain, SimpleNamespace(recordables=()), file=None)[0] == {
        "h1": h1.recordable}
