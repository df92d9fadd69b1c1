"""The sequence_regression task (issue 31, item 1): the DLL paper's time-series task as its
reference code runs it. Every file is written here; nothing is downloaded."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import model
from dendrisim.errors import DataError
from dendrisim.tasks import TASKS
from dendrisim.tasks.regression import SequenceRegression, SequenceRegressionOptions
from dendrisim.training import RunOptions, Trainer

REPO = Path(__file__).resolve().parent.parent
CPU = torch.device("cpu")

#: 20 rows x 3 columns, written by hand: a, b (inputs) and c (the target)
TABLE = np.array([
    [1.0, 10.0, 5.0], [2.0, 12.0, 4.0], [4.0, 11.0, 6.0], [3.0, 15.0, 7.0], [5.0, 14.0, 9.0],
    [6.0, 13.0, 8.0], [8.0, 17.0, 10.0], [7.0, 16.0, 12.0], [9.0, 20.0, 11.0], [11.0, 18.0, 13.0],
    [10.0, 19.0, 15.0], [12.0, 22.0, 14.0], [14.0, 21.0, 16.0], [13.0, 25.0, 18.0], [15.0, 23.0, 17.0],
    [17.0, 24.0, 19.0], [16.0, 28.0, 21.0], [18.0, 26.0, 20.0], [20.0, 27.0, 22.0], [19.0, 30.0, 24.0],
])


def write(path: Path, values: np.ndarray, header: list[str] | None = None) -> Path:
    lines = [",".join(header)] if header else []
    lines += [",".join(f"{v:g}" for v in row) for row in values]
    path.write_text("\n".join(lines) + "\n")
    return path


def task(path: Path, **options) -> SequenceRegression:
    defaults = {"sequence_length": 3, "validation_fraction": 0.25, "test_fraction": 0.2}
    return SequenceRegression(SequenceRegressionOptions(type="sequence_regression", file=str(path),
                                                        **{**defaults, **options}), device=CPU)


def window(t: SequenceRegression, split, i: int) -> tuple[np.ndarray, np.ndarray]:
    """The input ``[time, columns - 1]`` and target ``[time]`` of the split's ``i``-th window."""
    x = t.inputs(split.x[i:i + 1])[0].double().numpy()
    y = t.target(split.y[i:i + 1], None)[:, 0, 0].double().numpy()
    return x, y


def test_it_is_registered_and_says_what_it_reports():
    assert TASKS.get("sequence_regression") is SequenceRegression
    assert SequenceRegression.metrics == {"loss": False, "mse": False, "mae": False}
    assert SequenceRegression.headline == "mse"


def test_windows_equal_an_independent_numpy_oracle(tmp_path):
    """20 rows: test 20% = 4 rows, validation 25% of the other 16 = 4, training 12."""
    t = task(write(tmp_path / "t.csv", TABLE))
    train = TABLE[:12]
    z = (TABLE - train.mean(0)) / train.std(0)  # training rows' statistics only
    cases = [(t.train, 0, 0), (t.train, len(t.train) - 1, 9), (t.test, 0, 16)]  # (split, window, its first row)
    for split, i, row in cases:
        x, y = window(t, split, i)
        np.testing.assert_allclose(x, z[row:row + 3, :2], rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(y, z[row:row + 3, 2], rtol=1e-6, atol=1e-6)
    assert t.inputs(t.train.x[:4]).shape == (4, 3, 2) and t.target(t.train.y[:4], None).shape == (3, 4, 1)
    assert t.input_shape == (2,) and t.output_size == 1 and t.sequence_length == 3


def test_statistics_come_from_the_training_rows_only(tmp_path):
    t = task(write(tmp_path / "t.csv", TABLE))
    changed = TABLE.copy()
    changed[12:, :] *= 50  # validation and test rows only
    u = task(write(tmp_path / "u.csv", changed))
    assert torch.equal(t.inputs(t.train.x), u.inputs(u.train.x))
    assert torch.equal(t.target(t.train.y, None), u.target(u.train.y, None))
    np.testing.assert_allclose(t.shift, TABLE[:12].mean(0))
    np.testing.assert_allclose(t.scale, TABLE[:12].std(0))
    assert not np.allclose(t.shift, TABLE.mean(0))  # the whole file's (the reference's) would differ


def test_parts_are_in_time_order_and_windows_slide_by_one(tmp_path):
    t = task(write(tmp_path / "t.csv", TABLE))
    L = 3
    rows = {name: (split.x[:, None] + torch.arange(L)).flatten() for name, split in
            (("train", t.train), ("val", t.val), ("test", t.test))}
    assert rows["train"].max() < rows["val"].min() and rows["val"].max() < rows["test"].min()
    assert (set(rows["train"].tolist()), set(rows["val"].tolist()), set(rows["test"].tolist())) == \
        (set(range(0, 12)), set(range(12, 16)), set(range(16, 20)))  # no window straddles two parts
    for split, n_rows in ((t.train, 12), (t.val, 4), (t.test, 4)):
        assert len(split) == n_rows - L + 1
        assert torch.equal(split.x.diff(), torch.ones(len(split) - 1, dtype=split.x.dtype))
    none = task(write(tmp_path / "t.csv", TABLE), validation_fraction=0.0)
    assert none.val is None and len(none.train) == 16 - L + 1


@pytest.mark.parametrize("target, header", [(-1, False), (3, False), ("c", True), (1, True), (-3, False), ("a", True)])
def test_target_column_by_negative_or_positive_number_or_name(tmp_path, target, header):
    path = write(tmp_path / "t.csv", TABLE, ["a", "b", "c"] if header else None)
    reference = task(write(tmp_path / "r.csv", TABLE), target_column=-1 if target in (-1, 3, "c") else 1)
    t = task(path, target_column=target)
    assert torch.equal(t.inputs(t.train.x), reference.inputs(reference.train.x))
    assert torch.equal(t.target(t.test.y, None), reference.target(reference.test.y, None))
    assert t.target_name == ("c" if target in (-1, 3, "c") else "a") if header else t.target_name.startswith("column")


def test_the_first_column_as_target_feeds_the_others(tmp_path):
    t = task(write(tmp_path / "t.csv", TABLE), target_column=1)
    train = TABLE[:12]
    z = (TABLE - train.mean(0)) / train.std(0)
    x, y = window(t, t.train, 0)
    np.testing.assert_allclose(x, z[0:3, 1:], rtol=1e-6)
    np.testing.assert_allclose(y, z[0:3, 0], rtol=1e-6)


def test_a_date_column_is_left_out_and_names_count_among_the_columns_read(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("date,a,b,c\n" + "".join(f"2020-01-{i:02d}," + ",".join(f"{v:g}" for v in row) + "\n"
                                             for i, row in enumerate(TABLE)))
    t, ref = task(path, target_column="b"), task(write(tmp_path / "r.csv", TABLE), target_column=2)
    assert torch.equal(t.inputs(t.test.x), ref.inputs(ref.test.x))
    assert t.artifacts()["skipped_columns"] == ["date"] and t.artifacts()["target"] == "b"


def constant(column: int) -> np.ndarray:
    values = TABLE.copy()
    values[:12, column] = 7.5
    return values


@pytest.mark.parametrize("values, header, options, match", [
    (TABLE, None, {"target_column": 4}, r"t.csv: task.target_column 4 is not a column: 3 columns are read "
                                        r"\('column 1', 'column 2', 'column 3'\); give a number from 1 to 3 or from "
                                        r"-3 to -1 \(1 is the first column read, -1 the last\)$"),
    (TABLE, None, {"target_column": 0}, r"task.target_column 0 is not a column.*from 1 to 3"),
    (TABLE, None, {"target_column": -4}, r"task.target_column -4 is not a column.*from -3 to -1"),
    (TABLE, ["a", "b", "c"], {"target_column": "d"},
     r"task.target_column 'd' is not a column read from the file \(its columns: 'a', 'b', 'c'\); give one of these "
     r"names or a number from 1 to 3"),
    (TABLE, None, {"target_column": "c"}, r"task.target_column 'c' is a name, and the file has no header row"),
    (TABLE[:, :1], None, {}, r"t.csv: one column is read \(column 1\): a sequence regression predicts "
                             r"task.target_column from every other column, and no column is left for the input"),
    (TABLE, None, {"sequence_length": 5},
     r"t.csv: 20 rows are too few for a window of task.sequence_length 5 in each part: test_fraction 0.2 and "
     r"validation_fraction 0.25 \(of the rows before the test part\) leave 12 training, 4 validation and 4 test "
     r"rows, and each part needs 5 rows for one window; use a longer file or task.sequence_length 4 or less "
     r"\(task.validation_fraction 0 holds out no validation part\)"),
    (TABLE[:8], None, {"validation_fraction": 0.0, "test_fraction": 0.1},
     r"8 rows are too few.*leave 8 training, 0 validation and 0 test rows.*; use a longer file$"),
    (constant(0), None, {}, r"t.csv: column 1 is constant \(7.5\) over the 12 training rows, so its z-score "
                            r"\(x − mean\) / std would divide by a std of 0; it is an input: leave it out with "
                            r"task.columns"),
    (constant(2), ["a", "b", "c"], {}, r"t.csv: c is constant \(7.5\) over the 12 training rows.*it is the target "
                                       r"\(task.target_column\): a constant target leaves nothing to learn"),
])
def test_each_unusable_file_or_value_is_one_paragraph_naming_key_and_value(tmp_path, values, header, options, match):
    with pytest.raises(DataError, match=match) as err:
        task(write(tmp_path / "t.csv", values, header), **options)
    assert "\n" not in str(err.value)


def test_the_command_line_says_it_in_one_line_with_exit_2(tmp_path, capsys):
    from dendrisim.cli import main

    path = write(tmp_path / "t.csv", TABLE)
    code = main([str(REPO / "models" / "dll_rnn_electricity_regression.yaml"), "--check", "--set", f"task.file={path}",
                 "--set", "task.target_column=9"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: ") and "task.target_column 9 is not a column" in err


def test_metrics_are_the_mean_over_every_step_of_every_window(tmp_path):
    t = task(write(tmp_path / "t.csv", TABLE))
    y = t.test.y
    target = t.target(y, None)
    pred = target + torch.tensor([0.5, -1.0, 2.0]).view(3, 1, 1)  # errors per step, the same in every window

    class Out:
        soma = rate = pred
        size = 1
        activation = type("A", (), {"canonical_loss": None, "f": staticmethod(lambda s: s)})()

    net = type("N", (), {"output": Out(), "readout": slice(None)})()
    m = t.finish_stats(t.batch_stats(y[:1], *[_first(net, 1)] * 2) + t.batch_stats(y[1:], *[_rest(net, 1)] * 2),
                    len(y))  # each fake is its own state
    assert m["mse"] == pytest.approx((0.25 + 1 + 4) / 3) and m["mae"] == pytest.approx((0.5 + 1 + 2) / 3)
    assert m["loss"] == pytest.approx(m["mse"] / 2)  # the loss is ½ (t − y)²


def _first(net, k):
    return _part(net, slice(None, k))


def _rest(net, k):
    return _part(net, slice(k, None))


def _part(net, s):
    out = type("O", (), {"soma": net.output.soma[:, s], "rate": net.output.rate[:, s], "size": 1,
                         "activation": net.output.activation})()
    return type("N", (), {"output": out, "readout": net.readout})()


def mixture(path: Path, n: int = 600, seed: int = 0) -> Path:
    """Five independent inputs per step and a target that is a fixed linear mix of them at the
    same step, plus small noise: misaligned by one step, the target is unpredictable."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 5))
    y = x @ np.array([0.8, -0.6, 0.4, 0.3, -0.5]) + 0.05 * rng.normal(size=n)
    return write(path, np.column_stack([x, y]))


def rnn(path: Path, rule: str, epochs: int, lr: float) -> dict:
    return {
        "name": "tiny_regression",
        "task": {"type": "sequence_regression", "file": str(path), "sequence_length": 10, "batch_size": 16},
        "populations": {"input": {"type": "input", "size": "auto"}, "h": {"size": 32, "activation": "tanh"},
                        "out": {"size": "auto", "activation": "linear"}},
        "projections": [{"from": "input", "to": "h"}, {"from": "h", "to": "h", "kind": "recurrent"},
                        {"from": "h", "to": "out"}],
        "plasticity": {"rule": rule}, "optimizer": {"type": "adam", "lr": lr},
        "training": {"epochs": epochs, "seed": 0}, "recording": {"enabled": False},
    }


@pytest.mark.parametrize("rule, bound", [("bp", 0.1), ("dll", 0.15)])
def test_a_short_run_learns_the_same_step_mix(tmp_path, rule, bound):
    path = mixture(tmp_path / "mix.csv")
    trainer = Trainer(model(base=rnn(path, rule, epochs=4, lr=0.01)),
                      RunOptions(progress=False, log=lambda s: None, out_dir=tmp_path / "run"))
    untrained = trainer.evaluate(trainer.task.val)["mse"]
    mean_guess = float(trainer.task.target(trainer.task.val.y, None).pow(2).mean())  # predicting the target's mean, 0
    summary = trainer.run()
    assert mean_guess > 0.7 and untrained > 0.5, (mean_guess, untrained)
    assert summary["val_mse"] < bound and summary["test_mse"] < bound, summary
    assert {"test_mse", "test_mae", "test_loss"} <= set(summary)


def test_the_shipped_model_loads_and_checks_with_a_small_file(tmp_path):
    import dendrisim
    from dendrisim.inspect import describe

    path = mixture(tmp_path / "mix.csv", n=400)
    exp = dendrisim.load("dll_rnn_electricity_regression", [f"task.file={path}"])
    assert exp.task.type == "sequence_regression" and exp.task.target_column == -1
    text = describe(exp)
    assert "valid" in text.splitlines()[0] and "h.apical <- h.error through θ[h->h]" in text
    assert "data: samples [5], 1 outputs" in text


def test_the_declared_shapes_equal_the_loaded_task(tmp_path):
    """What ``--check`` and the memory check read from the options alone is what the task loads."""
    from dendrisim.builder import DataSpec

    t = task(write(tmp_path / "t.csv", TABLE))
    declared = DataSpec.declared(SequenceRegression, t.options)
    assert declared == DataSpec.of(t) and declared.train_samples == 10 and declared.time_steps == 3


@pytest.mark.parametrize("rule", ["dll", "bp", "fa", "dfa", "kp", "pc"])
def test_the_shipped_model_runs_under_every_rule_that_steps_through_time(tmp_path, capsys, rule):
    """Two steps of the shipped file through the command line; pc, which relaxes feedforward
    networks only, refuses its recurrent projection in one paragraph."""
    import json

    from dendrisim.cli import main

    path = mixture(tmp_path / "mix.csv", n=400)
    code = main(["dll_rnn_electricity_regression", "--out", str(tmp_path / "run"), "--no-progress",
                 "--set", f"task.file={path}", "--set", f"plasticity.rule={rule}", "--set", "training.epochs=1",
                 "--set", "training.max_steps_per_epoch=2", "--set", "recording.enabled=false"])
    out, err = capsys.readouterr()
    if rule == "pc":
        assert code == 2 and err.strip().count("\n") == 0 and "recurrent projections are not supported" in err
        return
    assert code == 0, err[-2000:]
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["rule"] == rule and np.isfinite(summary["test_mse"]) and np.isfinite(summary["test_mae"])
