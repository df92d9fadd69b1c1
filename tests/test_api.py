"""The notebook API (#21 §5, #20 item 12): fit(epochs=N) continues, history, input checks."""
from __future__ import annotations

import copy
import csv
import math

import numpy as np
import pytest
import torch

from conftest import MLP, recording_datasets
import dendrisim
from dendrisim.errors import RunDirError
from dendrisim.recording import open_recording
from dendrisim.rundir import load_tensors
from dendrisim.tasks.base import Split

REC = ["recording={every: 4, flush_every: 3, projections: {h2->out: [weight]}, projections_every: 10}",
       "training.max_steps_per_epoch=20"]


def trainer(out, *overrides, **kw):
    return dendrisim.Trainer(dendrisim.load(copy.deepcopy(MLP), [*REC, *overrides]), out=out, **kw)


@pytest.fixture(scope="module")
def tr(tmp_path_factory):
    return trainer(tmp_path_factory.mktemp("api") / "run")


EXPECTED = r"expected x of shape \[batch, 1, 8, 8\] and dtype float32 .*, y of shape \[batch\] and dtype int64 .*, " \
           r"labels in \[0, 9\]"


@pytest.mark.parametrize("x, y, problem", [
    (torch.zeros(4, 64), torch.zeros(4, dtype=torch.long), r"x has shape \[4, 64\]"),
    (torch.zeros(4, 1, 8, 9), torch.zeros(4, dtype=torch.long), r"x has shape \[4, 1, 8, 9\]"),
    (torch.zeros(0, 1, 8, 8), torch.zeros(0, dtype=torch.long), r"x has shape \[0, 1, 8, 8\]"),
    (torch.zeros(4, 1, 8, 8, dtype=torch.long), torch.zeros(4, dtype=torch.long), "x has dtype torch.int64"),
    (torch.zeros(4, 1, 8, 8), torch.zeros(4), "y has dtype torch.float32"),
    (torch.zeros(4, 1, 8, 8), torch.zeros(3, dtype=torch.long), r"y has shape \[3\] for 4 samples"),
    (torch.zeros(4, 1, 8, 8), torch.zeros(4, 10), r"y has shape \[4, 10\] for 4 samples"),
    (torch.zeros(4, 1, 8, 8), torch.tensor([0, 1, 10, 2]), "y holds labels from 0 to 10"),
    (torch.zeros(4, 1, 8, 8), torch.tensor([0, -1, 3, 2]), "y holds labels from -1 to 3"),
    (torch.full((4, 1, 8, 8), float("nan")), torch.zeros(4, dtype=torch.long), "x holds NaN or Inf"),
    (torch.full((4, 1, 8, 8), float("inf")), torch.zeros(4, dtype=torch.long), "x holds NaN or Inf"),
    (np.zeros((4, 1, 8, 8), np.float32), torch.zeros(4, dtype=torch.long), "x and y must be torch tensors, got ndarray and Tensor"),
])
def test_step_and_evaluate_name_what_they_expect(tr, x, y, problem):
    weights = {k: v.clone() for k, v in tr.network.state_dict().items()}
    step = tr.global_step
    with pytest.raises(ValueError, match=f"^Trainer.step: {problem}; {EXPECTED}"):
        tr.step(x, y)
    if isinstance(x, torch.Tensor):
        with pytest.raises(ValueError, match=f"^Trainer.evaluate: {problem}; {EXPECTED}"):
            tr.evaluate(Split(x, y))
    assert tr.global_step == step  # nothing happened
    assert all(torch.equal(v, tr.network.state_dict()[k]) for k, v in weights.items())


def test_a_good_batch_trains_and_other_float_dtypes_are_accepted(tr):
    x, y = tr.task.train.x[:8], tr.task.train.y[:8]
    before = tr.network.projections["h1->h2"].weight.clone()
    step = tr.global_step
    loss = tr.step(x.double(), y.int())
    assert np.isfinite(loss) and tr.global_step == step + 1
    assert not torch.equal(before, tr.network.projections["h1->h2"].weight)
    assert set(tr.evaluate(Split(x, y))) == {"loss", "accuracy"}
    with pytest.raises(ValueError, match="'nope' is not a split of this task"):
        tr.evaluate("nope")
    with pytest.raises(ValueError, match="give 'train', 'val', 'test' or a Split"):
        tr.evaluate(3)


def test_fit_epochs_continues_the_same_run(tmp_path):
    out = tmp_path / "run"
    t = trainer(out)
    first = t.fit(epochs=2)
    w1 = load_tensors(out / "checkpoint.pt")["network"]["projections.h1->h2.weight"]
    assert first["epochs"] == 2 and first["steps"] == 40 and len(t.history) == 2
    second = t.fit(epochs=1)  # one more, in the same directory (not refused as another run)
    assert second["steps"] == 60 and second["epochs"] == 3 and second["run_dir"] == str(out)
    assert [r["epoch"] for r in t.history] == [1, 2, 3] and [r["step"] for r in t.history] == [20, 40, 60]
    assert not torch.equal(w1, load_tensors(out / "checkpoint.pt")["network"]["projections.h1->h2.weight"])
    assert len(list(csv.DictReader(open(out / "metrics.csv")))) == 3
    with open_recording(out / "recording.h5") as rec:
        assert rec.complete and list(rec.steps) == sorted(set(rec.steps)) and rec.steps[-1] == 60
        assert list(rec.metrics["epoch"]) == [1, 2, 3]
    # the same as one run of three epochs, bit for bit
    once = trainer(tmp_path / "once", "training.epochs=3")
    once.fit()
    for k, v in once.network.state_dict().items():
        assert torch.equal(v, t.network.state_dict()[k]), k
    strip = lambda rows: [{k: v for k, v in r.items() if k != "seconds"} for r in rows]  # noqa: E731
    assert strip(once.history) == strip(t.history)
    ra, rb = recording_datasets(tmp_path / "once" / "recording.h5"), recording_datasets(out / "recording.h5")
    assert ra.keys() == rb.keys() and all(np.array_equal(ra[n], rb[n], equal_nan=True) for n in ra)
    # fit() without epochs keeps its meaning: up to training.epochs in all (here: done already)
    again = t.fit()
    assert again["steps"] == 60 and len(t.history) == 3
    with pytest.raises(ValueError, match="epochs must be an integer >= 1"):
        t.fit(epochs=0)


def test_history_is_a_copy_of_every_epochs_row(tmp_path):
    t = trainer(tmp_path / "run", "recording.enabled=false")
    t.fit(epochs=1)
    h = t.history
    h[0]["train_loss"] = -1.0
    assert t.history[0]["train_loss"] != -1.0 and {"epoch", "step", "train_loss", "test_accuracy"} <= set(h[0])


def test_a_trainer_never_replaces_another_run_unless_asked(tmp_path):
    out = tmp_path / "run"
    trainer(out, "recording.enabled=false").fit()
    with pytest.raises(RunDirError, match="already holds a run"):
        trainer(out, "recording.enabled=false").fit()
    assert trainer(out, "recording.enabled=false", overwrite=True).fit()["epochs"] == 1


def test_load_takes_a_bundled_models_name_as_dendrisim_run_does(tmp_path, monkeypatch):
    """From any folder, ``dendrisim.load("dll_mlp_digits")`` is the bundled file; a bare name
    that is neither a file nor a bundled model lists the bundled ones."""
    from dendrisim.errors import ConfigError

    monkeypatch.chdir(tmp_path)
    exp = dendrisim.load("dll_mlp_digits", ["training.epochs=1"])
    assert exp.config.name == "dll_mlp_digits" and exp.config.training.epochs == 1
    assert dendrisim.load("dll_mlp_digits.yaml").config.name == "dll_mlp_digits"
    with pytest.raises(ConfigError, match="neither a model file nor a bundled model; bundled models: .*dll_mlp_digits"):
        dendrisim.load("no_such_model")


def test_fit_runs_a_task_whose_targets_are_not_class_labels(tmp_path):
    """Trainer.fit on a forecasting model: the run's own splits (targets are time indices, not
    labels) are evaluated as they are; only a split the caller hands in is checked as a batch.
    (fit used to stop with 'Trainer.evaluate: y holds labels from ...'.)"""
    series = tmp_path / "series.txt"
    series.write_text("".join(f"{math.sin(i / 5):.4f},{math.cos(i / 7):.4f}\n" for i in range(300)))
    exp = dendrisim.load("dll_rnn_electricity", [f"task.file={series}", "task.window=12", "task.horizon=2",
                                                 "training.epochs=1", "training.max_steps_per_epoch=2",
                                                 "recording.enabled=false"])
    summary = dendrisim.Trainer(exp, out=tmp_path / "run").fit()
    assert math.isfinite(summary["test_loss"])
