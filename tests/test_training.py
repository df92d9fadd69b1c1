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
