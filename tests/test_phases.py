"""Training phases (#23 item 3) on the plain digits MLP: the teacher off, frozen projections,
learning rates per phase, the metrics' and the recording's phase marks, and phases through a
stop and resume (the phase is a function of the checkpointed epoch)."""
from __future__ import annotations

import copy
import csv
import json
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from conftest import model, recording_datasets
import dendrisim
from dendrisim.observers import Observer
from dendrisim.optim import group_of, param_groups, schedule_factor
from dendrisim.phases import phase_index, with_total_epochs
from dendrisim.recording import open_recording

STEPS = ["training.max_steps_per_epoch=5", "task.batch_size=16"]
#: a warm-up phase without teacher in which only h1->h2 learns, then learning at another rate
TWO = ("training.phases=[{name: free, epochs: 2, teacher: false, learn: ['h1->h2']}, "
       "{name: learning, epochs: 2, lr: 0.01, lr_scale: {'h2->out': 0.5}}]")
RECORD = "recording={every: 2, flush_every: 3, projections: {h2->out: [weight]}, projections_every: 3}"


def trainer(overrides, out, **kw):
    return dendrisim.Trainer(model([*STEPS, *overrides]), out=out, **kw)


class Snapshots(Observer):
    """Copies of the weights, the rule's state and the optimizer's state at every epoch end,
    and each step's learning rates (as the step sees them)."""

    def __init__(self):
        self.epochs, self.rates = [], []

    def before_step(self, loop, step):
        self.rates.append((step.number, loop.phase_index, [g["lr"] for g in loop.optimizer.param_groups]))

    def epoch_end(self, loop, row):
        self.epochs.append({"network": copy.deepcopy(loop.network.state_dict()),
                            "rule": copy.deepcopy(loop.rule.state_dict()),
                            "optimizer": copy.deepcopy(loop.optimizer.state_dict()),
                            "grad": {n: None if p.weight.grad is None else p.weight.grad.clone()
                                     for n, p in loop.network.projections.items()}})


def adam_state(tr, tensor):
    return tr.optimizer.state.get(tensor, {})


# ---------------------------------------------------------------------------- phase arithmetic
def test_the_phase_is_a_function_of_the_epoch():
    phases = model([TWO]).config.training.phases
    assert [phase_index(phases, e) for e in range(1, 7)] == [0, 0, 1, 1, 1, 1]  # past the end: the last
    assert phase_index((), 5) == 0
    training = with_total_epochs(model([TWO]).config.training, 7)
    assert [p.epochs for p in training.phases] == [2, 5] and training.epochs == 7
    with pytest.raises(ValueError, match="before the last phase .learning. starts at epoch 3"):
        with_total_epochs(training, 2)


# ---------------------------------------------------------------------------- teacher off
@pytest.mark.parametrize("rule", ["dll", "bp"])
def test_a_phase_without_teacher_writes_no_update_while_the_optimizer_steps(rule, tmp_path):
    snap = Snapshots()
    tr = trainer([f"plasticity.rule={rule}", "recording.enabled=false",
                  "training.phases=[{epochs: 1, teacher: false}, {epochs: 1}]"], tmp_path / "r", observers=[snap])
    before = copy.deepcopy(tr.network.state_dict())
    tr.fit()
    after_free, after_taught = snap.epochs
    for k, v in before.items():
        assert torch.equal(after_free["network"][k], v), k  # every error is zero: nothing moves
    assert any(not torch.equal(after_taught["network"][k], v) for k, v in before.items())
    for name, grad in after_free["grad"].items():
        assert grad is not None and not grad.any(), name  # the rule ran and wrote zeros
    steps = [s["step"] for s in after_free["optimizer"]["state"].values()]
    assert steps and all(float(s) == 5 for s in steps)  # Adam stepped on every batch of the free epoch


# ---------------------------------------------------------------------------- learn
@pytest.mark.parametrize("mode", ["steady", "euler"])
def test_projections_outside_learn_keep_their_weights_and_optimizer_state(mode, tmp_path):
    snap = Snapshots()
    dynamics = ["dynamics={mode: euler, steps: 8, dt: 0.2, g_apical: 0.05}"] if mode == "euler" else []
    tr = trainer(["recording.enabled=false", *dynamics,
                  "training.phases=[{epochs: 1}, {epochs: 2, learn: ['h1->h2']}]"], tmp_path / "r", observers=[snap])
    tr.fit()
    first, _, last = snap.epochs
    for key, value in first["network"].items():  # only h1->h2 moves in the second phase
        assert torch.equal(value, last["network"][key]) == ("h1->h2" not in key), key
    # dll's θ of a frozen projection stays with it; θ of the learning one learns
    assert torch.equal(first["rule"]["theta.h2->out"], last["rule"]["theta.h2->out"])
    assert not torch.equal(first["rule"]["theta.h1->h2"], last["rule"]["theta.h1->h2"])
    # the frozen tensors' Adam moments and step counts are those of the end of the first phase
    names = {id(p): name for name, p in [*tr.network.named_parameters(), *tr.rule.named_parameters()]}
    order = [names[id(p)] for g in tr.optimizer.param_groups for p in g["params"]]
    assert len(order) == 8
    for i, name in enumerate(order):
        a, b = first["optimizer"]["state"][i], last["optimizer"]["state"][i]
        same = all(torch.equal(torch.as_tensor(a[k]), torch.as_tensor(b[k])) for k in a)
        assert same == ("h1->h2" not in name), name


# ---------------------------------------------------------------------------- learning rates
@pytest.mark.parametrize("schedule", [[], ["training.schedule=cosine", "training.warmup_steps=3"]])
def test_each_phase_sets_its_learning_rates_under_the_schedule(schedule, tmp_path):
    snap = Snapshots()
    tr = trainer(["recording.enabled=false", TWO, *schedule], tmp_path / "r", observers=[snap])
    names = [g["name"] for g in tr.optimizer.param_groups]
    assert names == ["input->h1, h1->h2", "h2->out", "dll.theta"]  # h2->out: its own rate in the second phase
    fb = tr.experiment.rule.feedback_lr_scale
    expected = {0: [0.003, 0.003, 0.003 * fb], 1: [0.01, 0.01 * 0.5, 0.01 * fb]}
    tr.fit()
    training = tr.experiment.config.training
    assert [p for _, p, _ in snap.rates] == [0] * 10 + [1] * 10
    for number, phase, rates in snap.rates:
        factor = schedule_factor(number - 1, 20, training)
        assert rates == pytest.approx([r * factor for r in expected[phase]], rel=1e-12), number
    assert tr.scheduler.base_lrs == pytest.approx(expected[1], rel=1e-12)
    assert group_of(tr.optimizer, "h2->out")["lr"] == pytest.approx(0.005 * schedule_factor(20, 20, training))


def test_without_phase_lr_scale_the_groups_are_those_of_a_run_without_phases():
    exp = model(["training.phases=[{epochs: 1, teacher: false, learn: ['h1->h2']}, {epochs: 1, lr: 0.01}]",
                 "projections.1.lr_scale=0.5"])
    tr = dendrisim.Trainer(exp)
    plain = param_groups(tr.network, tr.rule, 0.003)
    phased = param_groups(tr.network, tr.rule, 0.003, exp.config.training.phases)
    assert [(g["name"], g["lr"]) for g in phased] == [(g["name"], g["lr"]) for g in plain]


def test_one_default_phase_is_the_run_without_phases_bit_for_bit(tmp_path):
    a = trainer([RECORD], tmp_path / "a")
    a.fit()
    b = trainer([RECORD, "training.phases=[{epochs: 1}]"], tmp_path / "b")
    b.fit()
    for k, v in a.network.state_dict().items():
        assert torch.equal(b.network.state_dict()[k], v), k
    assert [{k: v for k, v in r.items() if k != "seconds"} for r in a.rows] == \
        [{k: v for k, v in r.items() if k not in ("seconds", "phase")} for r in b.rows]
    assert [r["phase"] for r in b.rows] == ["phase0"] and "phase" not in a.rows[0]


# ---------------------------------------------------------------------------- stop and resume
class StopAt(Observer):
    def __init__(self, step):
        self.step = step

    def after_step(self, loop, step):
        if step.number == self.step:
            loop.request_stop("test")


def read_rows(path: Path) -> list[dict]:
    return [{k: v for k, v in r.items() if k != "seconds"} for r in csv.DictReader(open(path))]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    out = tmp_path_factory.mktemp("phases") / "run"
    lines = []
    summary = trainer([TWO, RECORD], out, log=lines.append).fit()
    assert summary["epochs"] == 4
    return out, lines


def assert_same_run(a: Path, b: Path) -> None:
    wa, wb = torch.load(a / "weights.pt"), torch.load(b / "weights.pt")
    for part in ("network", "rule"):
        assert wa[part].keys() == wb[part].keys()
        for k in wa[part]:
            assert torch.equal(wa[part][k], wb[part][k]), f"{part}.{k}"
    assert read_rows(a / "metrics.csv") == read_rows(b / "metrics.csv")
    ra, rb = recording_datasets(a / "recording.h5"), recording_datasets(b / "recording.h5")
    assert ra.keys() == rb.keys() and "index/phase" in ra and "index/weight_phase" in ra
    for name in ra:
        assert np.array_equal(ra[name], rb[name], equal_nan=True), name


def test_the_metrics_the_log_and_the_recording_mark_the_phases(uninterrupted):
    out, lines = uninterrupted
    assert [r["phase"] for r in read_rows(out / "metrics.csv")] == ["free", "free", "learning", "learning"]
    assert "phase 1/2 free: epochs 1-2, teacher off, learning h1->h2" in lines
    assert ("phase 2/2 learning: epochs 3-4, teacher on, learning input->h1, h1->h2, h2->out, lr 0.01, "
            "lr_scale h2->out 0.5") in lines
    with open_recording(out / "recording.h5") as rec:
        assert rec.phase.tolist() == [0 if e <= 2 else 1 for e in rec.epochs]
        assert set(rec.phase.tolist()) == {0, 1}
        weight_epochs = rec.file["index/weight_epoch"][()]
        assert rec.weight_phase.tolist() == [0 if e <= 2 else 1 for e in weight_epochs]
        assert rec.phases == [{"name": "free", "epochs": 2, "teacher": False, "first_epoch": 1},
                              {"name": "learning", "epochs": 2, "teacher": True, "first_epoch": 3}]


@pytest.mark.parametrize("stop", [7, 10, 11, 13])  # mid phase 0, around the phase boundary, mid phase 1
def test_a_run_stopped_and_resumed_equals_the_uninterrupted_one(uninterrupted, tmp_path, stop):
    out = tmp_path / "run"
    summary = trainer([TWO, RECORD], out, observers=[StopAt(stop)]).fit()
    assert summary["stopped"] == "test" and summary["steps"] == stop
    resumed = trainer([TWO, RECORD], out)
    resumed.resume(out / "checkpoint.pt")
    # a stop after the last step of epoch 2 ends mid-epoch: the resumed run finishes that epoch first
    assert resumed.phase_index == (0 if stop <= 10 else 1) and resumed.global_step == stop
    resumed.fit()
    assert_same_run(uninterrupted[0], out)


def _cli(capsys, *args):
    from dendrisim import cli

    capsys.readouterr()
    rc = cli.main([str(a) for a in args])
    return (rc, *capsys.readouterr())


def test_a_resume_may_extend_the_last_phase_and_nothing_else_of_the_phases(tmp_path, capsys):
    base = ["--set", "task.batch_size=16", "--set", "training.max_steps_per_epoch=5", "--set", RECORD]
    phases = ("training.phases=[{name: free, epochs: 1, teacher: false, learn: ['h1->h2']}, "
              "{name: learning, epochs: %d, lr: 0.01}]")
    run, longer = tmp_path / "run", tmp_path / "longer"
    assert _cli(capsys, "--out", run, *base, "--set", phases % 2)[0] == 0
    rc, out, err = _cli(capsys, "--resume", run, "--set", "training.phases.0.lr=0.5")
    assert rc == 2 and "training.phases.0.lr differs" in err and "training.phases.1.epochs" in err
    rc, out, err = _cli(capsys, "--resume", run, "--epochs", "5")  # the last phase takes the 2 more epochs
    assert rc == 0, err
    assert "applied on resume: training.epochs=5, training.phases.1.epochs=4" in out
    assert _cli(capsys, "--out", longer, *base, "--set", phases % 4)[0] == 0
    assert_same_run(longer, run)
    rc, out, err = _cli(capsys, "--resume", run, "--set", "training.phases.1.epochs=5", "--set", "training.epochs=6")
    assert rc == 0 and "applied on resume: training.epochs=6, training.phases.1.epochs=5" in out, err
    rc, out, err = _cli(capsys, "--out", tmp_path / "short", *base, "--set", phases % 2, "--epochs", "1")
    assert rc == 2 and "--epochs 1 would end before the last phase starts at epoch 2" in err
    with open_recording(run / "recording.h5") as rec:
        assert rec.phases[-1] == {"name": "learning", "epochs": 5, "teacher": True, "first_epoch": 2}


def test_fit_with_more_epochs_extends_the_last_phase(tmp_path):
    lines = []
    tr = trainer([TWO, RECORD], tmp_path / "a", log=lines.append)
    tr.fit()
    tr.fit(epochs=2)
    assert [p.epochs for p in tr.phases] == [2, 4] and tr.experiment.config.training.epochs == 6
    assert any("the last phase (learning) now runs 4 epochs, to epoch 6" in line for line in lines)
    b = trainer([TWO.replace("epochs: 2, lr", "epochs: 4, lr"), RECORD], tmp_path / "b")
    b.fit()
    assert_same_run(tmp_path / "b", tmp_path / "a")
    fresh = trainer([TWO, "recording.enabled=false"], tmp_path / "c")
    with pytest.raises(ValueError, match="before the last phase"):
        fresh.fit(epochs=1)
