"""The loop's observers (#22 item 3), each driven alone through its hooks with a small fake
loop (or a real trainer where it reads the whole loop state), then the interface as a user
sees it: observe(), the order of the hooks, steps outside the epochs, the how-to's example."""
from __future__ import annotations

import copy
import csv
import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from dendrisim.state import PopulationState

from conftest import MLP, model
import dendrisim
from dendrisim import rundir
from dendrisim.errors import NumericalError, WriteError
from dendrisim.observers import (Alignment, Checkpoints, FinalWeights, MetricsFile, NanGuard, Observer, OnEpoch,
                                 Outcome, Recording, Selection, Step)
from dendrisim.observers.checkpoints import CHECKPOINT_KEYS, nonfinite_tensor
from dendrisim.rundir import load_tensors
from dendrisim.training import RunOptions, Trainer

REPO = Path(__file__).resolve().parent.parent


class FakeLoop(SimpleNamespace):
    """What observers read from a loop: only the attributes a test gives, plus fail()."""

    def __init__(self, **kw):
        kw.setdefault("failure", None)
        kw.setdefault("stop_requested", None)
        kw.setdefault("dist", SimpleNamespace(is_main=True, rank=0, world=1))
        kw.setdefault("log", [])
        kw.setdefault("options", SimpleNamespace(log=kw["log"].append))
        kw.setdefault("phases", ())
        super().__init__(**kw)
        self.failed = []

    def fail(self, error, reason):
        self.failed.append((error, reason))
        self.failure = self.failure or error
        self.stop_requested = self.stop_requested or reason


def tiny_net():
    """A network-like object with two pyramidal populations and one projection."""
    pops = [SimpleNamespace(name=n, recordable=["soma", "apical"]) for n in ("h1", "h2")]
    state = {p.name: PopulationState(["soma", "apical"]) for p in pops}  # the last presentation's
    for s in state.values():
        s.soma, s.apical = torch.zeros(2, 3), torch.zeros(2, 3)
    weight = torch.nn.Parameter(torch.zeros(3, 3))
    weight.grad = torch.zeros(3, 3)
    proj = SimpleNamespace(name="h1->h2", weight=weight)
    net = SimpleNamespace(pyramidal=lambda: pops, simulated=lambda: pops, projections={"h1->h2": proj},
                          populations={p.name: p for p in pops}, last_state=state)
    rule = torch.nn.Module()
    rule.theta = torch.nn.Parameter(torch.zeros(3, 3))
    return net, rule


# ------------------------------------------------------------------ NaN guard
def test_the_guard_raises_naming_the_first_bad_variable_on_its_steps_only():
    net, rule = tiny_net()
    loop = FakeLoop(network=net, rule=rule)
    guard = NanGuard(5, file="m.yaml")
    net.last_state["h2"].apical[1, 2] = float("nan")
    net.projections["h1->h2"].weight.grad[0, 0] = float("inf")  # later in feedforward order
    guard.after_step(loop, Step(number=4, size=2, epoch=1, in_epoch=4))  # not a guarded step
    guard.after_step(loop, Step(number=10, size=2))  # Trainer.step's steps are not the run's
    with pytest.raises(NumericalError, match=r"^m.yaml: non-finite values \(NaN or Inf\) in population 'h2', "
                                             r"variable 'apical', in epoch 2, training step 10 \(checked every 5 steps\)"):
        guard.after_step(loop, Step(number=10, size=2, epoch=2, in_epoch=3))
    net.last_state["h2"].apical.zero_()
    with pytest.raises(NumericalError, match=r"in projection 'h1->h2', variable 'update', in epoch 2, training step 15 "
                                             r"\(the first"):
        NanGuard(1, file="m.yaml").after_step(loop, Step(number=15, size=2, epoch=2, in_epoch=8))
    net.projections["h1->h2"].weight.grad.zero_()
    NanGuard(1, file="m.yaml").after_step(loop, Step(number=15, size=2, epoch=2, in_epoch=8))  # all finite
    rule.theta.data[0, 0] = float("nan")
    with pytest.raises(NumericalError, match=r"in rule parameter 'theta', variable 'value'"):
        NanGuard(1, file="m.yaml").after_step(loop, Step(number=16, size=2, epoch=2, in_epoch=9))
    NanGuard(0, file="m.yaml").after_step(loop, Step(number=16, size=2, epoch=2, in_epoch=9))  # 0: never


# ------------------------------------------------------------------ metrics.csv
def metrics_loop(tmp_path, rows):
    return FakeLoop(run_dir=tmp_path, rows=rows, task=SimpleNamespace(metrics={"loss": False, "accuracy": True}),
                    last_checkpoint_step=None)


def read_csv(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


ROW = {"epoch": 1, "step": 10, "seconds": 0.5, "lr": 0.1, "train_loss": 1.5, "train_accuracy": 0.25,
       "val_loss": 1.25, "clips_update:h1": 3}


def test_the_metrics_file_holds_exactly_the_rows_and_is_written_atomically(tmp_path, monkeypatch):
    rows = [dict(ROW)]
    loop = metrics_loop(tmp_path, rows)
    obs = MetricsFile(file="m.yaml")
    obs.start(loop)  # rows from a checkpoint: the file is rewritten to them
    assert [r["epoch"] for r in read_csv(tmp_path / "metrics.csv")] == ["1"]
    rows.append({**ROW, "epoch": 2, "step": 20, "train_loss": 0.75})
    obs.epoch_end(loop, rows[-1])
    assert read_csv(tmp_path / "metrics.csv") == [{k: str(v) for k, v in r.items()} for r in rows]
    assert loop.log == ["epoch   2  train_loss 0.7500  train_accuracy 0.2500  val_loss 1.2500  "
                        "clipped update:h1=3  time 0.5s"]
    # a failed write keeps the previous file whole and stops the run with the error
    monkeypatch.setattr(rundir, "fault_hook", lambda kind, path: (_ for _ in ()).throw(OSError(28, "disk full")))
    rows.append({**ROW, "epoch": 3})
    obs.epoch_end(loop, rows[-1])
    assert [r["epoch"] for r in read_csv(tmp_path / "metrics.csv")] == ["1", "2"]
    assert not list(tmp_path.glob("*.tmp"))
    (error, reason), = loop.failed
    assert isinstance(error, WriteError) and reason == "metrics failure" and "metrics.csv" in str(error)
    # once failed, nothing more is written (and ranks other than 0 never write)
    monkeypatch.setattr(rundir, "fault_hook", None)
    rows.append({**ROW, "epoch": 4})
    obs.epoch_end(loop, rows[-1])
    assert len(read_csv(tmp_path / "metrics.csv")) == 2
    other = metrics_loop(tmp_path / "rank1", rows)
    other.dist = SimpleNamespace(is_main=False, rank=1, world=2)
    obs.start(other)
    obs.epoch_end(other, rows[-1])
    assert not (tmp_path / "rank1").exists()


def test_the_metrics_file_ends_the_run_on_a_non_finite_epoch(tmp_path):
    rows = [{**ROW, "val_loss": float("nan")}]
    loop = metrics_loop(tmp_path, rows)
    loop.last_checkpoint_step = 7
    with pytest.raises(NumericalError, match=r"^m.yaml: epoch 1 ended with non-finite metrics \(val_loss nan\); "
                                             r".*the last good checkpoint is .*checkpoint.pt \(step 7\)"):
        MetricsFile(file="m.yaml").epoch_end(loop, rows[-1])
    assert len(read_csv(tmp_path / "metrics.csv")) == 1  # written first, as the log line


# ------------------------------------------------------------------ model selection
def selection_loop():
    net = torch.nn.Linear(2, 2)
    rule = torch.nn.Linear(1, 1)
    return FakeLoop(network=net, rule=rule, rows=[])


def end_epoch(obs, loop, epoch, val_loss, weight):
    loop.network.weight.data.fill_(weight)
    loop.rows.append({"epoch": epoch, "val_loss": val_loss})
    obs.epoch_end(loop, loop.rows[-1])


def test_selection_keeps_the_best_state_signals_early_stopping_and_restores_it():
    loop = selection_loop()
    stop = SimpleNamespace(metric="loss", patience=2, min_delta=0.1)
    sel = Selection("loss", False, early_stopping=stop, keep_best=True)
    end_epoch(sel, loop, 1, 1.0, 1.0)
    end_epoch(sel, loop, 2, 0.5, 2.0)   # best
    end_epoch(sel, loop, 3, 0.45, 3.0)  # better by less than min_delta: stale
    assert (sel.best, sel.best_epoch, sel.stale, sel.early_stopped) == (0.5, 2, 1, False)
    assert torch.equal(sel.best_state["network"]["weight"], torch.full((2, 2), 2.0))
    end_epoch(sel, loop, 4, 0.9, 4.0)
    assert sel.early_stopped and loop.log == ["early stopping after epoch 4: val_loss has not improved for 2 epochs"]
    state = sel.state()
    sel.stop(loop, Outcome(error=RuntimeError("boom")))  # an error: nothing is put back
    assert torch.equal(loop.network.weight, torch.full((2, 2), 4.0)) and sel.restored is None
    sel.stop(loop, Outcome())
    assert torch.equal(loop.network.weight, torch.full((2, 2), 2.0)) and sel.restored == 2
    sel.start(loop)  # a later run continues from the last epoch's weights
    assert torch.equal(loop.network.weight, torch.full((2, 2), 4.0)) and sel.restored is None
    other = Selection("loss", False, early_stopping=stop)
    other.load(state)  # what a checkpoint keeps
    assert other.state() == state


def test_selection_and_early_stopping_ignore_a_phase_without_teacher():
    """A circuit's self-predicting phase leaves the forward weights (and so the validation
    loss) where they are: its epochs are neither selected nor counted toward patience."""
    from dendrisim.config.schema import PhaseConfig

    loop = selection_loop()
    loop.phases = (PhaseConfig(epochs=3, name="free", teacher=False), PhaseConfig(epochs=3, name="learning"))
    stop = SimpleNamespace(metric="loss", patience=2, min_delta=0.0)
    sel = Selection("loss", False, early_stopping=stop, keep_best=True)
    for epoch in (1, 2, 3):
        end_epoch(sel, loop, epoch, 0.1, float(epoch))  # free phase: the best score ever, yet not selected
    assert (sel.best, sel.best_epoch, sel.stale, sel.early_stopped) == (None, 0, 0, False)
    end_epoch(sel, loop, 4, 0.9, 4.0)
    end_epoch(sel, loop, 5, 0.95, 5.0)
    assert (sel.best, sel.best_epoch, sel.stale, sel.early_stopped) == (0.9, 4, 1, False)


def test_selection_without_keep_best_or_validation_keeps_no_weights():
    loop = selection_loop()
    sel = Selection("accuracy", True, keep_best=False)
    end_epoch(sel, loop, 1, None, 1.0)
    loop.rows[-1] = {"epoch": 1, "val_accuracy": 0.5}
    sel.epoch_end(loop, loop.rows[-1])
    loop.rows.append({"epoch": 2, "val_accuracy": 0.4})
    sel.epoch_end(loop, loop.rows[-1])
    assert (sel.best, sel.best_epoch, sel.stale, sel.best_state) == (0.5, 1, 1, None)
    sel.stop(loop, Outcome())
    assert sel.restored is None
    blind = Selection("loss", False)
    blind.epoch_end(loop, {"epoch": 1, "train_loss": 0.1})  # no validation split: nothing to select on
    assert blind.best is None


# ------------------------------------------------------------------ recording
class FakeRecorder:
    def __init__(self, *, due_steps, needs=1):
        self.due_steps, self.needs = set(due_steps), needs
        self.positions = torch.tensor([0, 2])
        self.failure = None
        self.calls = []

    def fits(self, n):
        return n >= self.needs

    def due(self, step, n, *, epoch_end=False):
        return self.fits(n) and (step in self.due_steps or epoch_end)

    def after_step(self, step, epoch, ids, *, epoch_end=False, state=None, trajectory=None, phase=0):
        self.calls.append(("after_step", step, epoch, epoch_end, trajectory))

    def end_epoch(self, step, epoch, ids, row):
        self.calls.append(("end_epoch", step, epoch))

    def close(self, *, complete):
        self.calls.append(("close", complete))
        self.final_position = {"records": 3}


def recording_loop(recorder, *, trace_steps=(0, 1), n_train=100):
    rec = Recording(True)
    rec.recorder = recorder
    loop = FakeLoop(scheme=SimpleNamespace(trace_steps=list(trace_steps)), steps_per_epoch=4, phases=(),
                    experiment=SimpleNamespace(task=SimpleNamespace(batch_size=32)),
                    task=SimpleNamespace(train=list(range(n_train))), global_step=0, last_batch_ids=None)
    return rec, loop


def test_the_recorder_asks_for_a_trajectory_only_when_a_record_is_due_and_passes_it_on():
    recorder = FakeRecorder(due_steps={2})
    rec, loop = recording_loop(recorder)
    steps = [Step(number=k, size=32, epoch=1, in_epoch=k, ids=torch.arange(32)) for k in (1, 2, 3, 4)]
    for step in steps:
        rec.before_step(loop, step)
        step.presentation = SimpleNamespace(trajectory={"k": step.number} if step.capture is not None else None)
        rec.after_step(loop, step)
    # every 2nd step and the epoch's last (4) are due; only they keep a trajectory
    assert [s.capture is not None for s in steps] == [False, True, False, True]
    assert torch.equal(steps[1].capture, recorder.positions)
    assert recorder.calls == [("after_step", 1, 1, False, None), ("after_step", 2, 1, False, {"k": 2}),
                              ("after_step", 3, 1, False, None), ("after_step", 4, 1, True, {"k": 4})]
    # a scheme that keeps no trajectory is never asked; steps outside an epoch are not recorded
    rec2, loop2 = recording_loop(FakeRecorder(due_steps={1}), trace_steps=())
    step = Step(number=1, size=32, epoch=1, in_epoch=1, ids=torch.arange(32))
    rec2.before_step(loop2, step)
    assert step.capture is None
    outside = Step(number=5, size=32)
    rec.before_step(loop, outside)
    rec.after_step(loop, outside)
    assert outside.capture is None and len(recorder.calls) == 4


def test_the_epoch_end_record_falls_on_the_last_batch_that_holds_the_samples():
    recorder = FakeRecorder(due_steps=(), needs=10)
    # 100 samples, batch 32: the 4th (last) batch holds 4 samples, too few for the recorded ones
    rec, loop = recording_loop(recorder, n_train=100)
    assert rec.epoch_end_step(loop) == 3
    step = Step(number=3, size=32, epoch=1, in_epoch=3, ids=torch.arange(32))
    rec.before_step(loop, step)
    assert step.capture is not None


def test_the_recording_observer_stops_the_run_on_a_failed_write_and_closes_complete_only_when_asked():
    recorder = FakeRecorder(due_steps={1})
    rec, loop = recording_loop(recorder)
    recorder.failure = "writing r.h5 failed at step 1 (OSError: full)"
    step = Step(number=1, size=32, epoch=1, in_epoch=1, ids=torch.arange(32), presentation=SimpleNamespace(trajectory=None))
    rec.after_step(loop, step)
    (error, reason), = loop.failed
    assert isinstance(error, WriteError) and reason == "recording failure"
    loop.rows = [{"epoch": 1}]
    rec.epoch_end(loop, {"epoch": 1})
    assert recorder.calls[-1] == ("end_epoch", 0, 1)
    rec.stop(loop, Outcome(reason="recording failure"))
    assert recorder.calls[-1] == ("close", False) and rec.resume_from == {"records": 3}
    done = Outcome()
    done.complete = True
    rec.stop(loop, done)
    assert recorder.calls[-1] == ("close", True)


# ------------------------------------------------------------------ alignment
def test_alignment_measures_every_n_steps_of_an_epoch_and_records_them():
    measured = []

    class Probe:
        names = ["h1->h2"]

        def measure(self):
            measured.append(1)
            return {"h1->h2": {"update_angle": float(len(measured))}}

    recorded = []
    recorder = SimpleNamespace(failure=None, record_alignment=lambda step, epoch, values: recorded.append((step, epoch, values)))
    recording = Recording(True)
    recording.recorder = recorder
    loop = FakeLoop(recording=recording)
    obs = Alignment(Probe(), 3)
    assert obs.names == ["h1->h2"] and obs.last == {}
    for k in range(1, 8):
        obs.after_step(loop, Step(number=k, size=4, epoch=1, in_epoch=k))
    obs.after_step(loop, Step(number=9, size=4))  # Trainer.step: the probe would overwrite the step's state
    assert recorded == [(3, 1, {"h1->h2": {"update_angle": 1.0}}), (6, 1, {"h1->h2": {"update_angle": 2.0}})]
    assert obs.last == {"h1->h2": {"update_angle": 2.0}} and not loop.failed
    recorder.failure = "writing r.h5 failed"
    obs.after_step(loop, Step(number=12, size=4, epoch=2, in_epoch=1))
    assert loop.failed[0][1] == "recording failure"


# ------------------------------------------------------------------ checkpoints and final weights
@pytest.fixture
def real_loop(tmp_path):
    tr = Trainer(model(["training.max_steps_per_epoch=4", "recording.enabled=false"]),
                 RunOptions(out_dir=tmp_path, progress=False, log=lambda s: None))
    tr.run_dir = tmp_path
    return tr


def test_checkpoints_are_written_every_n_steps_at_epoch_end_and_at_a_mid_epoch_stop(real_loop, tmp_path, monkeypatch):
    writes = []
    monkeypatch.setattr(rundir, "fault_hook", lambda kind, path: writes.append((kind, real_loop.global_step)))
    obs = Checkpoints(3, file="m.yaml")
    for k in range(1, 8):
        real_loop.global_step = k
        obs.after_step(real_loop, Step(number=k, size=16, epoch=1, in_epoch=k))
    obs.after_step(real_loop, Step(number=9, size=16))  # a step outside an epoch: no position to resume from
    assert writes == [("checkpoint", 3), ("checkpoint", 6)] and obs.last_step == 6
    real_loop.global_step = 8
    obs.epoch_end(real_loop, {"epoch": 1})
    obs.stop(real_loop, Outcome(reason="SIGTERM", mid_epoch=False))  # the epoch end wrote it already
    obs.stop(real_loop, Outcome(reason="SIGTERM", mid_epoch=True, error=KeyboardInterrupt()))
    assert writes[-1] == ("checkpoint", 8) and len(writes) == 3
    real_loop.global_step = 9
    obs.stop(real_loop, Outcome(reason="SIGTERM", mid_epoch=True))
    assert writes[-1] == ("checkpoint", 9)
    state = load_tensors(tmp_path / "checkpoint.pt")
    assert set(state) == {"format", *CHECKPOINT_KEYS} and state["format"] == 1
    assert state["position"]["global_step"] == 9 and state["selection"]["best_epoch"] == 0
    # non-finite weights: no checkpoint, the run stops naming the last good one
    real_loop.global_step = 10
    with torch.no_grad():
        real_loop.network.projections["h1->h2"].weight[0, 0] = float("inf")
    assert obs.save(real_loop) is None and len(writes) == 4
    assert real_loop.stop_requested == "non-finite values"
    assert re.search(r"in network\.projections\..* at step 10; .*the last good one: step 9", str(real_loop.failure))
    assert obs.save(real_loop) is None and len(writes) == 4  # nothing once the run has failed


def test_final_weights_are_written_only_for_a_finished_run(real_loop, tmp_path, monkeypatch):
    obs = FinalWeights(file="m.yaml")
    stopped = Outcome(reason="SIGINT")
    obs.stop(real_loop, stopped)
    assert not (tmp_path / "weights.pt").exists() and not stopped.complete
    done = Outcome()
    obs.stop(real_loop, done)
    assert done.complete and set(load_tensors(tmp_path / "weights.pt")) == {"network", "rule"}
    monkeypatch.setattr(rundir, "fault_hook", lambda kind, path: (_ for _ in ()).throw(OSError(5, "I/O error")))
    failed = Outcome()
    obs.stop(real_loop, failed)
    assert not failed.complete and isinstance(real_loop.failure, WriteError)
    monkeypatch.setattr(rundir, "fault_hook", None)
    real_loop.failure = None
    with torch.no_grad():
        real_loop.network.projections["h1->h2"].weight[0, 0] = float("nan")
    with pytest.raises(NumericalError, match=r"^m.yaml: the final weights hold non-finite values \(network\.projections"):
        obs.stop(real_loop, Outcome())


def test_on_epoch_calls_its_function_with_the_row():
    rows = []
    OnEpoch(rows.append).epoch_end(FakeLoop(), {"epoch": 3})
    assert rows == [{"epoch": 3}]


def test_the_checkpoint_format_is_the_one_older_runs_wrote(real_loop):
    """format 1 with these keys: checkpoints written before the observers moved resume
    (a layout change must bump the format and refuse older files)."""
    state = real_loop.checkpoint_state()
    assert state["format"] == 1 and list(state) == ["format", *CHECKPOINT_KEYS]
    assert list(state["selection"]) == ["best", "best_epoch", "stale", "early_stopped", "best_state"]
    # "grads" was added to format 1 (which tensors hold a .grad buffer): a checkpoint without it still loads
    assert list(state["position"]) == ["global_step", "epoch", "step_in_epoch", "epoch_samples", "epoch_seconds",
                                       "grads"]
    assert nonfinite_tensor(state) is None
    older = copy.deepcopy(state)
    del older["position"]["grads"]
    from dendrisim.observers.checkpoints import load_state

    load_state(real_loop, older)


# ------------------------------------------------------------------ the interface as a user sees it
class Spy(Observer):
    """Logs every hook call with what a user would look at."""

    def __init__(self, calls, name="spy"):
        self.calls, self.name = calls, name

    def start(self, loop):
        self.calls.append((self.name, "start"))

    def before_step(self, loop, step):
        assert loop.global_step == step.number - 1
        self.calls.append((self.name, "before", step.number, step.epoch, step.in_epoch))

    def after_step(self, loop, step):
        assert loop.global_step == step.number and step.presentation is not None
        self.calls.append((self.name, "after", step.number, round(step.metrics()["loss"], 6)))

    def epoch_end(self, loop, row):
        assert loop.rows[-1] is row and loop.epoch == row["epoch"] + 1
        self.calls.append((self.name, "epoch_end", row["epoch"]))

    def stop(self, loop, outcome):
        # stops run last-added first: the recording is still open, weights.pt not yet written
        assert loop.recorder.file.id.valid and not (loop.run_dir / "weights.pt").exists()
        self.calls.append((self.name, "stop", outcome.finished, outcome.reason))


def test_user_observers_see_every_hook_in_order(tmp_path):
    calls = []
    tr = dendrisim.Trainer(dendrisim.load(copy.deepcopy(MLP), ["training.epochs=2", "training.max_steps_per_epoch=3",
                                                               "recording={every: 2}"]),
                           out=tmp_path / "run", observers=[Spy(calls, "a")])
    assert tr.observe(Spy(calls, "b")) is tr.observers[-1]
    with pytest.raises(TypeError, match="subclasses dendrisim.observers.Observer"):
        tr.observe(lambda loop, step: None)
    summary = tr.fit()
    names = [c for c in calls if c[0] == "a"]
    sequence = [c[1] for c in names]
    assert sequence == ["start"] + ["before", "after"] * 3 + ["epoch_end"] + ["before", "after"] * 3 + \
        ["epoch_end", "stop"]
    assert [c[2:] for c in names if c[1] == "before"] == [(1, 1, 1), (2, 1, 2), (3, 1, 3), (4, 2, 1), (5, 2, 2),
                                                          (6, 2, 3)]
    assert names[-1] == ("a", "stop", True, None)
    # b was added after a: it runs after a in every hook, and stops before it
    assert calls[:2] == [("a", "start"), ("b", "start")] and [c[0] for c in calls[-2:]] == ["b", "a"]
    assert summary["epochs"] == 2 and (tmp_path / "run" / "weights.pt").exists()
    # Trainer.step: the user's observers see it (epoch None); the loss is the one returned
    x, y = tr.task.train.x[:16], tr.task.train.y[:16]
    calls.clear()
    loss = tr.step(x, y)
    assert calls[0] == ("a", "before", 7, None, None) and calls[2][:3] == ("a", "after", 7)
    assert calls[2][3] == round(loss, 6)


def test_an_observer_changes_no_number_of_the_run(tmp_path):
    def train(out, observers):
        tr = dendrisim.Trainer(dendrisim.load(copy.deepcopy(MLP), ["training.epochs=2", "training.max_steps_per_epoch=6",
                                                                   "recording.enabled=false"]),
                               out=out, observers=observers)
        tr.fit()
        return load_tensors(out / "weights.pt"), (out / "metrics.csv").read_text().splitlines()

    class Looker(Observer):
        def after_step(self, loop, step):
            step.metrics()
            loop.network.last_state["h1"].soma.sum()

    wa, ma = train(tmp_path / "a", [])
    wb, mb = train(tmp_path / "b", [Looker()])
    assert all(torch.equal(wa["network"][k], wb["network"][k]) for k in wa["network"])
    strip = lambda lines: [",".join(v for i, v in enumerate(line.split(",")) if i != 2) for line in lines]  # noqa: E731
    assert strip(ma) == strip(mb)  # every column but the seconds


def test_an_observer_can_ask_for_a_trajectory(tmp_path):
    """With the euler scheme, a capture set in before_step comes back in after_step."""
    got = {}

    class Trajectory(Observer):
        def before_step(self, loop, step):
            if step.number == 2:
                step.capture = torch.tensor([0, 1])

        def after_step(self, loop, step):
            got[step.number] = step.presentation.trajectory

    exp = dendrisim.load(copy.deepcopy(MLP), ["training.max_steps_per_epoch=3", "recording.enabled=false",
                                              "dynamics={mode: euler, steps: 4, record_every: 2}"])
    dendrisim.Trainer(exp, out=tmp_path / "run", observers=[Trajectory()]).fit()
    assert got[1] is None and got[3] is None
    soma = got[2]["h1"]["soma"]  # {population: {variable: [samples, states, *shape]}}
    assert soma.shape[0] == 2 and soma.shape[-1] == 12 and torch.isfinite(soma).all()


def test_an_error_in_a_step_of_the_api_is_a_value_error_but_an_observers_is_its_own(tmp_path):
    class Broken(Observer):
        def after_step(self, loop, step):
            raise RuntimeError("the observer's own bug")

    tr = dendrisim.Trainer(dendrisim.load(copy.deepcopy(MLP), ["recording.enabled=false"]), out=tmp_path / "run",
                           observers=[Broken()])
    with pytest.raises(RuntimeError, match="the observer's own bug"):
        tr.step(tr.task.train.x[:8], tr.task.train.y[:8])


def test_the_howto_example_runs(tmp_path):
    """docs/howto/observers.md's python blocks, in a fresh process from the repository root,
    writing under a temporary folder."""
    text = (REPO / "docs" / "howto" / "observers.md").read_text()
    code = "\n\n".join(re.findall(r"```python\n(.*?)```", text, flags=re.S))
    assert "class LossLog(Observer)" in code
    code = code.replace('"recordings/', f'"{tmp_path}/')
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "epoch 2: 40 steps so far" in proc.stdout and "40 steps; first loss" in proc.stdout
    with open(tmp_path / "howto-observers-losses.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [int(r["step"]) for r in rows] == list(range(1, 41)) and all(float(r["loss"]) > 0 for r in rows)


def test_trajectory_requests_of_several_observers_add_up_and_each_gets_its_own_rows():
    """step.keep unions the positions asked for; step.kept gives each observer its rows."""
    step = Step(number=1, size=8)
    mine, theirs = torch.tensor([0, 2]), torch.tensor([1, 2, 5])
    step.keep(mine)
    assert step.capture is mine  # one request: the scheme keeps exactly those rows
    step.keep(theirs)
    assert step.capture.tolist() == [0, 1, 2, 5]
    soma = torch.arange(8.0)[step.capture][:, None, None].expand(4, 3, 2)  # the rows the scheme kept: [k, states, n]
    step.presentation = SimpleNamespace(trajectory={"h1": {"soma": soma}})
    assert step.kept(mine)["h1"]["soma"][:, 0, 0].tolist() == [0.0, 2.0]
    assert step.kept(theirs)["h1"]["soma"][:, 0, 0].tolist() == [1.0, 2.0, 5.0]


def test_a_user_observer_asking_for_other_samples_leaves_the_recording_as_it_was(tmp_path):
    """Under euler with recording on, an observer keeping the trajectory of other samples
    (which used to replace the recorder's request and crash the run, or record the wrong
    samples) leaves the recording equal to a run without it, and gets its own rows."""
    from dendrisim.recording import open_recording

    sets = ["dynamics={mode: euler, steps: 4}", "training.max_steps_per_epoch=4",
            "recording={every: 2, samples: 3, populations: {h1: [soma]}}"]

    class Watcher(Observer):
        def __init__(self):
            self.seen = []

        def before_step(self, loop, step):
            step.keep(torch.tensor([5, 1]))

        def after_step(self, loop, step):
            self.seen.append(step.kept(torch.tensor([5, 1]))["h1"]["soma"].shape)

    watcher = Watcher()
    watched = Trainer(model(sets), RunOptions(out_dir=tmp_path / "with", progress=False, log=lambda s: None))
    watched.observe(watcher)
    watched.run()
    plain = Trainer(model(sets), RunOptions(out_dir=tmp_path / "plain", progress=False, log=lambda s: None))
    plain.run()
    assert watcher.seen and all(s[0] == 2 for s in watcher.seen)
    with open_recording(tmp_path / "with" / "recording.h5") as a, open_recording(tmp_path / "plain" / "recording.h5") as b:
        assert a.activity("h1", "soma").shape == b.activity("h1", "soma").shape
        assert (a.activity("h1", "soma") == b.activity("h1", "soma")).all()
