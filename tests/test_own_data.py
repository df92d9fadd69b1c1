"""A lab's own data (#30): ``dataset: file`` reads an .npz or a .csv, ``Trainer(data=...)``
takes the same arrays in memory, and every bad input is one paragraph naming the file (or
``data=``), the array and the problem."""
import copy
import json

import numpy as np
import pytest
import torch
import yaml
from sklearn.datasets import load_digits

import dendrisim
from dendrisim.builder import DataSpec
from dendrisim.cli import main
from dendrisim.errors import ConfigError, DataError
from dendrisim.tasks.classification import Classification, ClassificationOptions
from dendrisim.tasks.files import OwnData, check_arrays
from dendrisim.tasks.tables import read_table
from dendrisim.tasks.sequences import read_series

from conftest import MLP

DIGITS = load_digits()


def model(tmp_path, file=None, **task) -> "Path":  # noqa: F821
    """A tiny MLP model file on ``dataset: file`` (``file`` relative to the test's folder)."""
    config = copy.deepcopy(MLP)
    config["task"] = {"type": "classification", "dataset": "file", "batch_size": 32, **task}
    if file is not None:
        config["task"]["file"] = str(file)
    config["recording"] = {"enabled": False}
    config["optimizer"]["lr"] = 0.03  # one epoch of a 12-8 MLP then ends well above chance
    path = tmp_path / "model.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def write_npz(path, **arrays):
    np.savez(path, **arrays)
    return path


def digits_npz(path, *, images=True):
    x = DIGITS.images.astype(np.float32) if images else DIGITS.data
    return write_npz(path, x_train=x[:1400], y_train=DIGITS.target[:1400], x_test=x[1400:],
                     y_test=DIGITS.target[1400:])


def write_csv(path, x, y, *, header=True):
    lines = [",".join([f"f{i}" for i in range(x.shape[1])] + ["label"])] if header else []
    lines += [",".join([*map(str, row), str(label)]) for row, label in zip(x.tolist(), y.tolist())]
    path.write_text("\n".join(lines) + "\n")
    return path


def options(file, **kw) -> ClassificationOptions:
    return ClassificationOptions(type="classification", dataset="file", file=str(file), **kw)


def task(file, **kw) -> Classification:
    return Classification(options(file, **kw), device=torch.device("cpu"))


def run(tmp_path, capsys, *args) -> dict:
    out = tmp_path / "run"
    code = main([*map(str, args), "--out", str(out), "--epochs", "1"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    return json.loads(captured.out.strip().splitlines()[-1])


# ------------------------------------------------------------------------ round trips
def test_npz_round_trip_through_the_command_line(tmp_path, capsys):
    digits_npz(tmp_path / "digits.npz")
    summary = run(tmp_path, capsys, model(tmp_path, tmp_path / "digits.npz"))
    assert summary["test_accuracy"] > 0.3  # chance: 0.1
    saved = yaml.safe_load((tmp_path / "run" / "model.yaml").read_text())
    assert saved["task"]["dataset"] == "file" and saved["task"]["file"] == str(tmp_path / "digits.npz")


def test_csv_round_trip_through_the_command_line_with_a_test_file(tmp_path, capsys):
    x, y = DIGITS.data.astype(int), DIGITS.target
    write_csv(tmp_path / "train.csv", x[:1500], y[:1500])
    write_csv(tmp_path / "test.csv", x[1500:], y[1500:])
    summary = run(tmp_path, capsys, model(tmp_path, "train.csv", test_file="test.csv"),
                  "--data-root", tmp_path)
    assert summary["test_accuracy"] > 0.3
    t = task(tmp_path / "train.csv", test_file=str(tmp_path / "test.csv"))
    assert len(t.test) == 297 and t.input_shape == (64,) and t.output_size == 10


def test_check_describes_a_file_model_without_training(tmp_path, capsys):
    write_csv(tmp_path / "d.csv", DIGITS.data[:200], DIGITS.target[:200], header=False)
    assert main([str(model(tmp_path, tmp_path / "d.csv")), "--check"]) == 0
    out = capsys.readouterr().out
    assert "valid" in out and "shape=[64]" in out and "shape=[10]" in out


def test_trainer_takes_the_arrays_in_memory(tmp_path):
    exp = dendrisim.load(MLP, ["training.epochs=1", "recording.enabled=false", "optimizer.lr=0.03"])
    arrays = {"x_train": DIGITS.images[:1400], "y_train": DIGITS.target[:1400],
              "x_test": torch.as_tensor(DIGITS.images[1400:]), "y_test": DIGITS.target[1400:]}
    trainer = dendrisim.Trainer(exp, out=tmp_path / "run", data=arrays)
    summary = trainer.fit()
    assert summary["test_accuracy"] > 0.3 and trainer.task.input_shape == (1, 8, 8)
    assert len(trainer.task.test) == 397 and trainer.experiment.task.dataset == "file"
    saved = yaml.safe_load((tmp_path / "run" / "model.yaml").read_text())
    assert saved["task"]["dataset"] == "file" and saved["task"]["file"] is None


def test_memory_arrays_and_the_file_give_the_same_run(tmp_path):
    """The same arrays through a file and through data= give the same data and weights."""
    x, y = DIGITS.data[:600], DIGITS.target[:600]
    write_npz(tmp_path / "d.npz", x_train=x, y_train=y)
    exp = dendrisim.load(model(tmp_path, tmp_path / "d.npz"), ["recording.enabled=false"])
    from_file = dendrisim.Trainer(exp, out=tmp_path / "a")
    from_file.fit()
    exp = dendrisim.load(MLP, ["recording.enabled=false", "optimizer.lr=0.03", "task.batch_size=32"])
    in_memory = dendrisim.Trainer(exp, out=tmp_path / "b", data=OwnData(x_train=x, y_train=y))
    in_memory.fit()
    for split in ("train", "val", "test"):
        assert torch.equal(getattr(from_file.task, split).x, getattr(in_memory.task, split).x)
    assert from_file.history[-1]["test_accuracy"] == in_memory.history[-1]["test_accuracy"]


def test_neither_the_callers_arrays_nor_a_read_file_change(tmp_path):
    """The task normalises in place on its own copy: data= arrays and the cached file stay."""
    x = np.random.default_rng(0).normal(3.0, 2.0, (300, 5)).astype(np.float32)
    y = np.arange(300) % 3
    arrays = {"x_train": x[:200], "y_train": y[:200], "x_test": x[200:], "y_test": y[200:]}
    before = {k: v.copy() for k, v in arrays.items()}
    exp = dendrisim.load(MLP, ["recording.enabled=false"])
    dendrisim.Trainer(exp, out=tmp_path / "run", data=arrays)
    for k, v in arrays.items():
        np.testing.assert_array_equal(v, before[k])
    write_npz(tmp_path / "d.npz", **arrays)
    first, second = task(tmp_path / "d.npz"), task(tmp_path / "d.npz")
    assert torch.equal(first.test.x, second.test.x)


def test_shapes_splits_and_normalisation(tmp_path):
    x = np.random.default_rng(0).normal(3.0, 2.0, (300, 5)).astype(np.float32)
    y = np.arange(300) % 3
    write_npz(tmp_path / "d.npz", x_train=x[:200], y_train=y[:200], x_val=x[200:250], y_val=y[200:250],
              x_test=x[250:], y_test=y[250:])
    t = task(tmp_path / "d.npz")
    assert (len(t.train), len(t.val), len(t.test)) == (200, 50, 50)  # x_val given: nothing carved
    assert t.input_shape == (5,) and t.output_size == 3
    torch.testing.assert_close(t.train.x.mean(0), torch.zeros(5), atol=1e-5, rtol=0)  # per feature
    torch.testing.assert_close(t.train.x.std(0, unbiased=False), torch.ones(5), atol=1e-5, rtol=0)
    # [n, h, w] images get one channel; no test split: test_fraction of the training samples
    write_npz(tmp_path / "i.npz", x_train=DIGITS.images[:500], y_train=DIGITS.target[:500])
    t = task(tmp_path / "i.npz", test_fraction=0.2, validation_fraction=0.1)
    assert t.input_shape == (1, 8, 8) and (len(t.train), len(t.val), len(t.test)) == (360, 40, 100)
    spec = DataSpec.declared(Classification, options(tmp_path / "i.npz", test_fraction=0.2))
    assert spec.train_samples == len(t.train) and spec.input_shape == (1, 8, 8) and spec.outputs == 10


def test_task_classes_sets_the_output_size(tmp_path):
    write_npz(tmp_path / "d.npz", x_train=np.ones((10, 2)), y_train=np.arange(10) % 2)
    assert task(tmp_path / "d.npz", classes=4).output_size == 4


def test_a_relative_file_is_read_under_the_data_root(tmp_path, monkeypatch):
    (tmp_path / "root").mkdir()
    digits_npz(tmp_path / "root" / "d.npz")
    monkeypatch.chdir(tmp_path)
    t = Classification(options("d.npz"), device=torch.device("cpu"), data_root=str(tmp_path / "root"))
    assert t.data_root == str((tmp_path / "root").resolve())
    with pytest.raises(DataError, match=r"task.file: d.npz not found"):
        task("d.npz")  # not in the working folder: never looked for elsewhere


def test_forecasting_and_classification_share_one_csv_reader(tmp_path):
    path = tmp_path / "s.csv"
    path.write_text("a,b\n1,2\n3,\n")
    for read in (read_series, read_table):
        with pytest.raises(DataError, match=r"s.csv:3: b is a missing value"):
            read(path)
    with pytest.raises(DataError, match=r"s.csv:3: b is a missing value"):
        task(path)


# ---------------------------------------------------------------------- bad input
@pytest.mark.parametrize("arrays, message", [
    ({"x_train": np.ones((4, 2)), "y_train": np.array([0, 1, 0, 1]), "X_test": np.ones((2, 2))},
     r"d.npz: unknown arrays 'X_test'; allowed: x_train, y_train, x_test, y_test, x_val, y_val"),
    ({"x_train": np.ones((4, 2))}, r"d.npz: no y_train; the training split is required"),
    ({"x_train": np.ones((4, 2)), "y_train": np.array([0, 1, 0, 1]), "x_test": np.ones((2, 2))},
     r"d.npz: x_test is given without y_test"),
    ({"x_train": np.ones((4, 2)), "y_train": np.array([0, 1, 0])},
     r"d.npz: x_train has 4 samples and y_train 3 labels; they must agree"),
    ({"x_train": np.ones((4, 2)), "y_train": np.array([0, 1, 0, 1]), "x_test": np.ones((2, 3)),
      "y_test": np.array([0, 1])},
     r"d.npz: x_test samples have shape \[3\], x_train samples \[2\]; every split needs the same sample shape"),
    ({"x_train": np.array([["a", "b"], ["c", "d"]]), "y_train": np.array([0, 1])},
     r"d.npz: x_train has dtype <U1, which is no number type"),
    ({"x_train": np.array([[1.0, np.nan], [0.0, 1.0]]), "y_train": np.array([0, 1])},
     r"d.npz: x_train holds NaN at index \[0, 1\]"),
    ({"x_train": np.array([[1.0, np.inf], [0.0, 1.0]]), "y_train": np.array([0, 1])},
     r"d.npz: x_train holds Inf at index \[0, 1\]"),
    ({"x_train": np.ones(4), "y_train": np.array([0, 1, 0, 1])}, r"d.npz: x_train has shape \[4\]; samples are"),
    ({"x_train": np.ones((0, 2)), "y_train": np.zeros(0, dtype=int)}, r"d.npz: x_train has no samples"),
    ({"x_train": np.ones((2, 0)), "y_train": np.array([0, 1])}, r"d.npz: x_train has shape \[2, 0\]: its samples hold "
                                                                 r"no values"),
    ({"x_train": np.ones((3, 2)), "y_train": np.array([0.0, 1.5, 1.0])},
     r"d.npz: y_train\[1\] is 1.5, not an integer class label"),
    ({"x_train": np.ones((3, 2)), "y_train": np.eye(3)}, r"d.npz: y_train has shape \[3, 3\].*y.argmax\(1\)"),
    ({"x_train": np.ones((4, 2)), "y_train": np.array([0, -1, 1, -3])},
     r"d.npz: y_train holds labels out of range: -3, -1 \(2 samples, the first at index 1\)"),
    ({"x_train": np.ones((4, 2)), "y_train": np.array([0, 1, 0, 1]), "x_test": np.ones((2, 2)),
      "y_test": np.array([1, -2])}, r"d.npz: y_test holds labels out of range: -2"),
    ({"x_train": np.ones((4, 2)), "y_train": np.zeros(4, dtype=int)},
     r"d.npz: every label is 0: a classification needs at least two classes"),
    ({"x_train": np.ones((4, 2)), "y_train": np.array([0, 1000, 2000, 1000])},
     r"d.npz: labels run up to 2,000 but only 3 distinct values occur"),
    ({"x_train": np.ones((4, 2)), "y_train": np.array(["a", "b", "a", "b"])},
     r"d.npz: y_train has dtype <U1; labels are integers"),
])
def test_bad_npz_arrays(tmp_path, arrays, message):
    write_npz(tmp_path / "d.npz", **arrays)
    with pytest.raises(DataError, match=message):
        task(tmp_path / "d.npz")


def test_labels_at_or_above_task_classes(tmp_path):
    write_npz(tmp_path / "d.npz", x_train=np.ones((4, 2)), y_train=np.array([0, 1, 5, 3]))
    with pytest.raises(DataError, match=r"d.npz: y_train holds labels out of range: 3, 5 .*allowed 0..2 "
                                        r"\(task.classes: 3\)"):
        task(tmp_path / "d.npz", classes=3)


def test_object_arrays_are_never_unpickled(tmp_path):
    np.savez(tmp_path / "d.npz", x_train=np.array([{"a": 1}, None], dtype=object), y_train=np.array([0, 1]))
    with pytest.raises(DataError, match=r"d.npz: x_train holds Python objects \(dtype object\), which are never "
                                        r"loaded"):
        task(tmp_path / "d.npz")


@pytest.mark.parametrize("content, message", [
    (b"not a zip archive", r"d.npz: cannot read it as an .npz archive of arrays"),
    (None, r"d.npz: cannot read it as an .npz archive.*a single .npy array"),
])
def test_a_file_that_is_no_npz(tmp_path, content, message):
    path = tmp_path / "d.npz"
    if content is None:
        with open(path, "wb") as fh:
            np.save(fh, np.ones(3))
    else:
        path.write_bytes(content)
    with pytest.raises(DataError, match=message):
        task(path)


@pytest.mark.parametrize("text, message", [
    ("a,b,label\n1,2,0\n3,x,1\n", r"d.csv:3: b is 'x', not a number; samples must be numbers"),
    ("a,b,label\n1,2,0\n3,4,1.5\n", r"d.csv:3: the label \(label, the last column\) is 1.5, not an integer"),
    ("1,2,0\n3,4,-1\n", r"d.csv:2: the label \(column 3, the last column\) is -1, negative"),
    ("1,2,0\n3,4\n", r"d.csv:2: 2 comma-separated fields, the first row has 3"),
    ("label\n0\n1\n", r"d.csv: one column; a classification CSV holds the features, then the integer label"),
    ("a,b,label\n", r"d.csv: a header and no data"),
    ("a,b,label\n1,NA,0\n", r"d.csv:2: b is a missing value"),
    ("a,b,label\n1,1e39,0\n", r"d.csv:2: b is '1e39', which is outside float32's range"),
    ("a,b,label\n1,2,0\n1,2,0\n", r"d.csv: every label is 0: a classification needs at least two classes"),
])
def test_bad_csv(tmp_path, text, message):
    (tmp_path / "d.csv").write_text(text)
    with pytest.raises(DataError, match=message):
        task(tmp_path / "d.csv")


def test_a_csv_label_at_or_above_task_classes_names_its_line(tmp_path):
    (tmp_path / "d.csv").write_text("1,2,0\n3,4,1\n5,6,2\n")
    with pytest.raises(DataError, match=r"d.csv:3: the label \(column 3, the last column\) is 2, out of range: "
                                        r"allowed 0..1 \(task.classes: 2\)"):
        task(tmp_path / "d.csv", classes=2)


@pytest.mark.parametrize("test_text, message", [
    ("a,label\n1,0\n", r"t.csv: 2 columns, the training file .*d.csv has 3; the test file needs the same columns"),
    ("a,c,label\n1,2,0\n", r"t.csv: column 2 is 'c', in the training file .*d.csv 'b'; the test file needs the same "
                           r"columns in the same order"),
])
def test_a_test_file_with_other_columns(tmp_path, test_text, message):
    (tmp_path / "d.csv").write_text("a,b,label\n1,2,0\n3,4,1\n")
    (tmp_path / "t.csv").write_text(test_text)
    with pytest.raises(DataError, match=message):
        task(tmp_path / "d.csv", test_file=str(tmp_path / "t.csv"))


@pytest.mark.parametrize("task_keys, message", [
    ({"dataset": "digits", "file": "d.csv"}, r"task.file: 'd.csv' is read only with dataset: file"),
    ({"dataset": "digits", "classes": 3}, r"task.classes: 3 is read only with dataset: file"),
    ({"file": "d.txt"}, r"task.file: 'd.txt' is neither .npz nor .csv"),
    ({"file": "d.npz", "test_file": "t.csv"}, r"task.test_file: a test file goes with a .csv task.file"),
    ({"file": "d.csv", "classes": 1}, r"task.classes"),
    ({"file": "d.csv", "encoding": "klingon"}, r"task.encoding: 'klingon' is not a text encoding"),
    ({"file": "d.csv", "columns": [1]}, r"task: unknown key 'columns'"),
])
def test_bad_keys_are_config_errors(tmp_path, task_keys, message):
    path = model(tmp_path, **task_keys)
    with pytest.raises(ConfigError, match=message):
        dendrisim.load(path)


def test_a_missing_file_key_says_what_to_give(tmp_path, capsys):
    assert main([str(model(tmp_path)), "--check"]) == 2
    err = capsys.readouterr().err
    assert "error: task.file is not set; give the file in the model or with --set task.file=PATH" in err
    assert "Traceback" not in err


@pytest.mark.parametrize("data, message", [
    ({"x_train": np.ones((4, 2)), "y_train": np.array([0, 1, 0])},
     r"data=: x_train has 4 samples and y_train 3 labels"),
    ({"x_train": np.ones((4, 2)), "y_train": np.array([0, 1, -1, 1])}, r"data=: y_train holds labels out of range: -1"),
    ({"x_train": [[1, 2], [3]], "y_train": [0, 1]}, r"data=: x_train"),
    ({"x": np.ones((4, 2)), "y_train": np.array([0, 1, 0, 1])}, r"data=: unknown arrays 'x'"),
    (OwnData(x_train=np.ones((4, 2)), y_train=None), r"data=: no y_train"),
    ([np.ones((4, 2))], r"data=: a list; give a dict with the keys x_train"),
])
def test_bad_arrays_in_memory_name_data(tmp_path, data, message):
    exp = dendrisim.load(MLP, ["recording.enabled=false"])
    with pytest.raises(DataError, match=message):
        dendrisim.Trainer(exp, out=tmp_path / "run", data=data)


def test_data_goes_to_a_classification_task_only(tmp_path):
    config = copy.deepcopy(MLP)
    config["task"] = {"type": "charlm", "text": "t.txt"}
    config["projections"].append({"from": "h1", "to": "h1", "kind": "recurrent"})  # a sequence task needs one
    exp = dendrisim.load(config)
    with pytest.raises(DataError, match=r"data=: the model's task is charlm; arrays in memory go to a classification"):
        dendrisim.Trainer(exp, out=tmp_path / "run", data={"x_train": np.ones((4, 2)), "y_train": [0, 1, 0, 1]})


def test_data_and_a_file_in_the_model_are_refused_together(tmp_path):
    write_npz(tmp_path / "d.npz", x_train=np.ones((4, 2)), y_train=np.array([0, 1, 0, 1]))
    exp = dendrisim.load(model(tmp_path, tmp_path / "d.npz"))
    with pytest.raises(DataError, match=r"data=: the model names a file \(task.file: .*d.npz'\) and data= gives "
                                        r"arrays; give one or the other"):
        dendrisim.Trainer(exp, out=tmp_path / "run", data={"x_train": np.ones((4, 2)), "y_train": [0, 1, 0, 1]})


@pytest.mark.parametrize("dtype", [np.bool_, np.int8, np.uint8, np.uint16, np.uint64, np.float16, np.float64])
@pytest.mark.parametrize("normalize", ["standard", "unit", "none"])
def test_every_number_dtype_trains(tmp_path, dtype, normalize):
    x = (np.arange(40).reshape(20, 2) % 3).astype(dtype)
    write_npz(tmp_path / "d.npz", x_train=x, y_train=np.arange(20) % 2)
    t = task(tmp_path / "d.npz", normalize=normalize)
    assert t.train.x.dtype == torch.float32 and bool(torch.isfinite(t.train.x).all())


def test_check_arrays_keeps_integer_images_and_adds_a_channel():
    data = check_arrays({"x_train": np.zeros((6, 4, 4), np.uint8), "y_train": np.array([0, 1, 2] * 2)},
                        source="data=")
    assert data.x_train.shape == (6, 1, 4, 4) and data.x_train.dtype == np.uint8 and data.classes == 3
    assert not data.x_train.flags.writeable


def test_the_how_to_page_runs(tmp_path):
    """docs/howto/own-data.md: its model file and its Python blocks, in order, in a fresh
    process (writing under a temporary folder); the model file checks and trains there."""
    import subprocess
    import sys
    from pathlib import Path

    from test_readme import python_blocks

    repo = Path(__file__).resolve().parent.parent
    page = (repo / "docs" / "howto" / "own-data.md").read_text()
    (tmp_path / "my_model.yaml").write_text(python_blocks(page, "yaml")[0] + "\n")
    code = "\n\n".join(python_blocks(page, "python"))
    env = {**__import__("os").environ, "PYTHONPATH": str(repo)}
    ran = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=300,
                         env=env)
    assert ran.returncode == 0, ran.stderr[-2000:]
    assert float(ran.stdout.strip().splitlines()[-1]) > 0.5
    assert main([str(tmp_path / "my_model.yaml"), "--check", "--data-root", str(tmp_path)]) == 0
