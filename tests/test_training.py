"""The loop: schedules, early stopping on the validation split, model selection."""
import csv
import json

import pytest

from conftest import model
from dendrisim.config.schema import TrainingConfig
from dendrisim.optim import schedule_factor
from dendrisim.training import RunOptions, Trainer


def run(tmp_path, *overrides):
    exp = model(["training.max_steps_per_epoch=5", *overrides])
    lines = []
    summary = Trainer(exp, RunOptions(out_dir=tmp_path, progress=False, log=lines.append)).run()
    return summary, lines, list(csv.DictReader(open(tmp_path / "metrics.csv")))


@pytest.mark.parametrize("schedule,expect", [
    ("none", [1.0, 1.0, 1.0]), ("linear", [1.0, 0.5, 0.0]), ("cosine", [1.0, 0.5, 0.0]),
])
def test_schedules(schedule, expect):
    cfg = TrainingConfig(schedule=schedule)
    got = [schedule_factor(s, 10, cfg) for s in (0, 5, 10)]
    assert got == pytest.approx(expect)
    warm = TrainingConfig(schedule=schedule, warmup_steps=4)
    assert [schedule_factor(s, 10, warm) for s in range(4)] == pytest.approx([0.25, 0.5, 0.75, 1.0])


def test_early_stopping_uses_the_validation_metric(tmp_path):
    # a learning rate of zero never improves: stop after `patience` stale epochs
    summary, lines, rows = run(tmp_path, "training.epochs=20", "optimizer.type=sgd", "optimizer.lr=1e-30",
                               "training.early_stopping={patience: 2, metric: accuracy, min_delta: 0.5}")
    assert summary["epochs"] == 3 and len(rows) == 3
    assert any("early stopping after epoch 3: val_accuracy" in line for line in lines)


def test_selection_reports_the_best_validation_epoch(tmp_path):
    summary, _, rows = run(tmp_path, "training.epochs=4", "optimizer.lr=0.05")
    best = min(rows, key=lambda r: float(r["val_loss"]))
    assert summary["selected_epoch"] == int(best["epoch"])
    assert summary["test_accuracy"] == pytest.approx(float(best["test_accuracy"]))
    assert summary["final_test_accuracy"] == pytest.approx(float(rows[-1]["test_accuracy"]))
    assert json.loads((tmp_path / "summary.json").read_text()) == summary


def test_without_validation_split_the_last_epoch_is_reported(tmp_path):
    summary, _, rows = run(tmp_path, "training.epochs=2", "task.validation_fraction=0")
    assert summary["selected_epoch"] == 2 and "val_loss" not in rows[0]


def test_unknown_early_stopping_metric_fails_before_the_run(tmp_path):
    from dendrisim.errors import ConfigError

    with pytest.raises(ConfigError, match=r"training.early_stopping.metric: 'f1' is not a metric of this task; choose one of loss, accuracy"):
        run(tmp_path / "run", "training.early_stopping={metric: f1}")
    assert not (tmp_path / "run").exists()


def test_nan_guard_names_the_first_bad_variable_and_keeps_the_recording(tmp_path):
    from dendrisim.errors import NumericalError
    from dendrisim.recording import open_recording

    exp = model(["training.max_steps_per_epoch=10", "training.epochs=3", "recording={every: 1, flush_every: 4}",
                 "training.guard_every=1"])
    tr = Trainer(exp, RunOptions(out_dir=tmp_path, progress=False, log=lambda s: None))
    real_step = tr.scheme.present

    def poisoned(net, rule, target, **kw):  # from step 14 on, h2's apical input turns into NaN
        presentation = real_step(net, rule, target, **kw)
        if tr.global_step + 1 >= 14:
            presentation.state["h2"].apical[0, 0] = float("nan")
        return presentation

    tr.scheme.present = poisoned
    with pytest.raises(NumericalError, match=r"test.yaml: non-finite values \(NaN or Inf\) in population 'h2', "
                                             r"variable 'apical', in epoch 2, training step 14"):
        tr.run()
    with open_recording(tmp_path / "recording.h5") as rec:
        assert not rec.complete and list(rec.steps) == list(range(1, 14))  # every step before the bad one
    assert not (tmp_path / "summary.json").exists()


def test_switching_the_guard_off_cannot_give_a_nan_result(tmp_path):
    """guard_every: 0 skips the per-step check, but a run whose metrics are not finite still
    ends in an error (it used to exit 0 with test_loss NaN), and no checkpoint, weights or
    summary hold the non-finite state."""
    from dendrisim.errors import NumericalError

    exp = model(["training.max_steps_per_epoch=3", "training.guard_every=0", "optimizer.lr=1e30", "optimizer.type=sgd"])
    tr = Trainer(exp, RunOptions(out_dir=tmp_path, progress=False, log=lambda s: None))
    with pytest.raises(NumericalError, match=r"epoch 1 ended with non-finite metrics \(.*test_loss nan"):
        tr.run()
    assert tr.global_step == 3  # no per-step guard stopped it earlier, as asked
    for name in ("checkpoint.pt", "weights.pt", "summary.json"):
        assert not (tmp_path / name).exists(), name


def test_a_checkpoint_is_never_written_with_non_finite_values(tmp_path):
    """With checkpoint_every and no guard, a diverging run keeps its last finite checkpoint."""
    from dendrisim.errors import NumericalError
    from dendrisim.rundir import load_tensors
    from dendrisim.training import nonfinite_tensor

    exp = model(["training.max_steps_per_epoch=10", "training.guard_every=0", "training.checkpoint_every=2",
                 "recording.enabled=false"])
    tr = Trainer(exp, RunOptions(out_dir=tmp_path, progress=False, log=lambda s: None))
    real_step = tr.scheme.present

    def poisoned(net, rule, target, **kw):  # step 5's update puts an Inf into a weight
        presentation = real_step(net, rule, target, **kw)
        if tr.global_step + 1 == 5:
            net.projections["h1->h2"].weight.grad[0, 0] = float("inf")
        return presentation

    tr.scheme.present = poisoned
    with pytest.raises(NumericalError, match=r"non-finite values \(NaN or Inf\) in network\.projections\..* at step 6; "
                                             r"no checkpoint is written with them \(the last good one: step 4\)"):
        tr.run()
    state = load_tensors(tmp_path / "checkpoint.pt")
    assert state["position"]["global_step"] == 4 and nonfinite_tensor(state) is None
    assert not list(tmp_path.glob("*.tmp"))


def test_a_coarser_guard_says_how_often_it_looked(tmp_path):
    from dendrisim.errors import NumericalError

    exp = model(["training.max_steps_per_epoch=10", "training.guard_every=5", "recording.enabled=false"])
    tr = Trainer(exp, RunOptions(out_dir=tmp_path, progress=False, log=lambda s: None))
    real_step = tr.scheme.present

    def poisoned(net, rule, target, **kw):
        presentation = real_step(net, rule, target, **kw)
        if tr.global_step + 1 == 7:
            net.projections["h1->h2"].weight.grad[0, 0] = float("inf")
        return presentation

    tr.scheme.present = poisoned
    # Inf in an update at step 7 makes the weights non-finite; the check at step 10 finds it,
    # first in feedforward order wherever it spread by then
    with pytest.raises(NumericalError, match=r"training step 10 \(checked every 5 steps\)"):
        tr.run()


def test_clip_counts_are_summarised_per_epoch(tmp_path):
    summary, lines, rows = run(tmp_path, "training.epochs=2", "plasticity.clip_update=1e-6")
    keys = [k for k in rows[0] if k.startswith("clips_")]
    assert keys == ["clips_update:h1->h2", "clips_update:h2->out", "clips_update:input->h1"]
    assert all(int(rows[e][k]) > 0 for e in (0, 1) for k in keys)
    assert "clipped update:h1->h2=" in lines[0]
