"""Mismatches a user makes of the sequence tasks (issue 31's attack from the outside, the
``seqreg`` kind of tests/test_fuzz_inputs.py), each refused in one paragraph naming the key,
the value and what is allowed, at check time where the model file alone tells. Every file is
written here; nothing is downloaded."""
from __future__ import annotations

import json
import os
import re
from pathlib import Path

import numpy as np
import pytest

from dendrisim.commands import main as dendrisim

SHIPPED = "dll_rnn_electricity_regression"
SMALL = ["task.data_root=null", "populations.h.size=3", "task.sequence_length=3", "training.epochs=1",
         "training.max_steps_per_epoch=2", "recording={every: 1, samples: 1}"]
FEEDFORWARD = "projections=[{from: input, to: h}, {from: h, to: out}]"


def table(path: Path, rows: int = 60, columns: int = 4, header: list[str] | None = None, seed: int = 0) -> Path:
    values = np.random.default_rng(seed).normal(size=(rows, columns))
    lines = [",".join(header)] if header else []
    path.write_text("\n".join(lines + [",".join(f"{v:.4f}" for v in row) for row in values]) + "\n")
    return path


def cli(capsys, command: str, *sets: str, model: str = SHIPPED, out: Path | None = None) -> tuple[int, str]:
    """Exit status and stderr of ``dendrisim COMMAND MODEL --set ...`` (in this process)."""
    argv = [command, model]
    for s in sets:
        argv += ["--set", s]
    if out is not None:
        argv += ["--out", str(out)]
    code = dendrisim(argv)
    err = capsys.readouterr().err
    return code, err


def one_paragraph(err: str) -> str:
    lines = [ln for ln in err.splitlines() if ln.strip() and not ln.startswith("note: ")]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    return lines[0]


# ------------------------------------------- a sequence task on a feedforward network
@pytest.mark.parametrize("command", ["check", "run"])
@pytest.mark.parametrize("task", ["sequence_regression", "forecasting"])
def test_a_sequence_task_on_a_feedforward_network_is_refused_at_check_time(tmp_path, capsys, command, task):
    """The shipped model without its recurrent projection ended in 'mat1 and mat2 shapes cannot
    be multiplied' once training began; now check and run refuse it, naming the task."""
    sets = [*SMALL, FEEDFORWARD, f"task.file={table(tmp_path / 't.csv')}"]
    if task == "forecasting":
        sets.insert(-1, "task={type: forecasting, window: 4, horizon: 1}")
    code, err = cli(capsys, command, *sets, out=tmp_path / "run" if command == "run" else None)
    line = one_paragraph(err)
    assert code == 2 and "projections: task " + task in line and "recurrent projection" in line, line
    assert "{from: h, to: h, kind: recurrent}" in line


def test_the_shipped_sequence_models_still_check(tmp_path, capsys):
    code, err = cli(capsys, "check", *SMALL, f"task.file={table(tmp_path / 't.csv')}")
    assert code == 0, err


# ------------------------------------------- a classifier's output on a regression task
@pytest.mark.parametrize("activation, loss", [("softmax", "cross-entropy"), ("sigmoid", "binary cross-entropy")])
@pytest.mark.parametrize("task", ["sequence_regression", "forecasting"])
def test_a_cross_entropy_output_on_a_regression_task_is_refused(tmp_path, capsys, activation, loss, task):
    """softmax over the regression's one output unit is always 1 (a loss of 0, nothing learned),
    sigmoid's binary cross-entropy read z-scored targets as probabilities; both ran silently."""
    sets = [*SMALL, f"populations.out.activation={activation}", f"task.file={table(tmp_path / 't.csv')}"]
    if task == "forecasting":
        sets.insert(-1, "task={type: forecasting, window: 4, horizon: 1}")
    code, err = cli(capsys, "check", *sets)
    line = one_paragraph(err)
    assert code == 2 and f"populations.out.activation: {activation} is a classifier's output" in line, line
    assert loss in line and f"task {task}" in line and "activation: linear" in line


@pytest.mark.parametrize("activation", ["linear", "tanh"])
def test_a_squared_error_output_still_runs(tmp_path, capsys, activation):
    code, err = cli(capsys, "run", *SMALL, f"populations.out.activation={activation}",
                    f"task.file={table(tmp_path / 't.csv')}", out=tmp_path / "run")
    assert code == 0, err


# ------------------------------------------- a byte-order mark before the first cell
@pytest.mark.parametrize("header", [True, False])
def test_a_byte_order_mark_is_not_part_of_the_first_cell(tmp_path, capsys, header):
    """Excel's 'CSV UTF-8' starts with a BOM: it made the first name '\\ufeffc0' (so target_column
    c0 was 'not a column') and a file without a header was refused for '\\ufeff0.126'."""
    path = table(tmp_path / "t.csv", header=["c0", "c1", "c2", "c3"] if header else None)
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    before = path.read_bytes()
    target = ["task.target_column=c0", "task.columns=[c0, c1, c3]"] if header else ["task.target_column=1"]
    code, err = cli(capsys, "run", *SMALL, *target, f"task.file={path}", out=tmp_path / "run")
    assert code == 0, err
    task = json.loads((tmp_path / "run" / "task.json").read_text())
    assert task["target"] == ("c0" if header else "column 1") and path.read_bytes() == before


# ------------------------------------------- a column named or listed twice
@pytest.mark.parametrize("columns, match", [
    ("[1, 2, 2]", r"task.columns lists column 2 \('c1'\) twice \(as 2 and 2\); list each column once"),
    ("[c0, c1, 2]", r"task.columns lists column 2 \('c1'\) twice \(as 'c1' and 2\)"),
])
def test_a_column_listed_twice_is_refused(tmp_path, capsys, columns, match):
    """task.columns [1, 2, 2] with target_column -1 read column 2 twice: the target was also an
    input, so the network was handed the answer, silently."""
    path = table(tmp_path / "t.csv", header=["c0", "c1", "c2", "c3"])
    code, err = cli(capsys, "check", *SMALL, f"task.columns={columns}", f"task.file={path}")
    assert code == 2 and re.search(match, one_paragraph(err)), err


@pytest.mark.parametrize("sets, match", [
    (["task.target_column=a"], r"task.target_column 'a' names 2 of the columns read \(1, 2\): the header repeats "
                               r"it; give the target's number instead"),
    (["task.columns=[a, b]"], r"task.columns names 'a', which the header gives to columns 1, 2; name those columns "
                              r"by number"),
])
def test_a_name_the_header_repeats_is_refused(tmp_path, capsys, sets, match):
    """target_column 'a' on a header 'a,a,b,c' silently took the first of the two."""
    path = table(tmp_path / "t.csv", header=["a", "a", "b", "c"])
    code, err = cli(capsys, "check", *SMALL, *sets, f"task.file={path}")
    assert code == 2 and re.search(match, one_paragraph(err)), err


# ------------------------------------------- task.file at a folder or a FIFO
@pytest.mark.parametrize("kind, match", [("folder", r"is a folder; expected a comma-separated table"),
                                         ("fifo", r"is not a regular file \(a pipe, socket or device")])
def test_a_file_key_at_a_folder_or_a_fifo_says_what_it_is(tmp_path, capsys, kind, match):
    """Both were 'not found', which sent the user looking for a file that is there."""
    path = tmp_path / "t.csv"
    path.mkdir() if kind == "folder" else os.mkfifo(path)
    code, err = cli(capsys, "check", *SMALL, f"task.file={path}")
    line = one_paragraph(err)
    assert code == 2 and re.search(match, line) and "not found" not in line, line


# ------------------------------------------- tabs, semicolons or spaces instead of commas
@pytest.mark.parametrize("sep, name", [("\t", "tabs"), (";", "semicolons"), (" ", "spaces")])
@pytest.mark.parametrize("header", [True, False])
def test_a_table_of_another_separator_says_so(tmp_path, capsys, sep, name, header):
    """A tab-separated file was read as one text column: '-2.3\\t0.007 is '-0.4\\t0.2', not a
    number; a text column can be left out with task.columns', which hid the cause."""
    path = table(tmp_path / "t.csv", header=["c0", "c1", "c2", "c3"] if header else None)
    path.write_text(path.read_text().replace(",", sep))
    code, err = cli(capsys, "check", *SMALL, f"task.file={path}")
    line = one_paragraph(err)
    assert code == 2 and f"no comma in the row, but {name} between its values" in line, line


# ------------------------------------------- quoted names and numbers
def test_quoted_names_and_numbers_are_read_without_their_quotes(tmp_path, capsys):
    """Spreadsheets and R's write.csv quote names (and sometimes numbers): '"c0","c1"' made the
    names '"c0"', so target_column c0 was 'not a column', and '"1.5"' was 'not a number'."""
    path = table(tmp_path / "t.csv", header=["c0", "c1", "c2", "c3"])
    lines = path.read_text().splitlines()
    quoted = [",".join(f'"{c}"' for c in lines[0].split(","))]
    quoted += [",".join(f'"{c}"' if j % 2 else c for j, c in enumerate(line.split(","))) for line in lines[1:]]
    path.write_text("\n".join(quoted) + "\n")
    code, err = cli(capsys, "run", *SMALL, "task.target_column=c1", f"task.file={path}", out=tmp_path / "run")
    assert code == 0, err
    task = json.loads((tmp_path / "run" / "task.json").read_text())
    assert task["target"] == "c1" and task["columns"] == ["c0", "c1", "c2", "c3"]


# ------------------------------------------- columns whose z-scores leave float32
def column_table(path: Path, third) -> Path:
    rng = np.random.default_rng(1)
    path.write_text("".join(f"{rng.random():.4f},{rng.random():.4f},{third(i)!r}\n" for i in range(60)))
    return path


@pytest.mark.parametrize("command", ["check", "run"])
@pytest.mark.parametrize("third, match", [
    (lambda i: [0.0, 5e-324][i % 2], r"column 3 cannot be z-scored in float32: its 44 training rows differ by "
                                     r"4.94066e-324 at most, so little that their std underflows to 0"),
    (lambda i: 1e-20 * (1 + i % 3) if i < 48 else 1e25,
     r"column 3 cannot be z-scored in float32: the std of its 44 training rows is .*row 49's value 1e\+25 a z-score "
     r"of .*e\+45, beyond float32's"),
])
def test_a_column_whose_z_scores_leave_float32_is_refused_by_name(tmp_path, capsys, command, third, match):
    """Subnormal values (std 0 in float64) or test rows far beyond the training rows' spread
    made NaN or inf z-scores: the run ended with 'non-finite metrics; lower optimizer.lr'."""
    path = column_table(tmp_path / "t.csv", third)
    code, err = cli(capsys, command, *SMALL, f"task.file={path}", out=tmp_path / "run" if command == "run" else None)
    assert code == 2 and re.search(match, one_paragraph(err)), err


def test_tiny_values_keep_their_std(tmp_path, capsys):
    """Values of 1e-200 have squares that underflow to 0: their std was 0 and their z-scores inf."""
    path = column_table(tmp_path / "t.csv", lambda i: [1e-200, 2e-200, 4e-200][i % 3])
    code, err = cli(capsys, "run", *SMALL, f"task.file={path}", out=tmp_path / "run")
    assert code == 0, err
    scale = json.loads((tmp_path / "run" / "task.json").read_text())["scale"][2]
    assert scale == pytest.approx(np.std([1, 2, 4] * 14 + [1, 2]) * 1e-200, rel=1e-9)


# ------------------------------------------- a recurrent projection on static samples
RECURRENT_MLP = ("projections=[{from: input, to: h1}, {from: h1, to: h1, kind: recurrent}, {from: h1, to: h2}, "
                 "{from: h2, to: out}]")


@pytest.mark.parametrize("command", ["check", "run"])
def test_a_recurrent_projection_on_static_samples_is_refused_before_training(tmp_path, capsys, command):
    """dll_mlp_digits with h1 -> h1 passed check and died in its first update with a
    ZeroDivisionError (an IndexError on 2-d arrays given to Trainer(data=...))."""
    code, err = cli(capsys, command, RECURRENT_MLP, "training.epochs=1", "training.max_steps_per_epoch=2",
                    model="dll_mlp_digits", out=tmp_path / "run" if command == "run" else None)
    line = one_paragraph(err)
    assert code == 2 and "projections[1].kind: a recurrent projection steps a network through time" in line, line
    assert "task classification presents static samples" in line and "sequence_regression" in line


def test_the_python_api_refuses_it_too(tmp_path):
    import dendrisim
    from dendrisim.errors import ConfigError

    exp = dendrisim.load("dll_mlp_digits", [RECURRENT_MLP, "recording.enabled=false"])  # the file alone loads
    with pytest.raises(ConfigError, match=r"projections\[1\].kind: a recurrent projection steps"):
        dendrisim.Trainer(exp, out=tmp_path / "run", data={"x_train": np.ones((8, 6, 5), np.float32),
                                                           "y_train": np.arange(8) % 2})


def test_a_forecast_series_normalized_beyond_float32_is_refused_by_name(tmp_path, capsys):
    """Forecasting's standard normalization made inf of later steps far beyond the training part's
    spread: the run ended with 'non-finite metrics; lower optimizer.lr'."""
    path = column_table(tmp_path / "t.csv", lambda i: 1e-20 * (1 + i % 3) if i < 48 else 1e25)
    code, err = cli(capsys, "run", *SMALL, "task={type: forecasting, window: 4, horizon: 1}", f"task.file={path}",
                    out=tmp_path / "run")
    assert code == 2 and re.search(r"series series_2 cannot be normalized \(standard\) in float32: .*step 49's value "
                                   r"1e\+25", one_paragraph(err)), err


@pytest.mark.parametrize("key", ["task.target_column", "task.columns"])
def test_an_integer_past_int64_for_an_int_or_name_key_says_so(tmp_path, capsys, key):
    """target_column 99999999999999999999999 was 'is not int or str', which it is (an int)."""
    value = "9" * 23
    code, err = cli(capsys, "check", *SMALL, f"{key}={value if key.endswith('column') else f'[{value}]'}",
                    f"task.file={table(tmp_path / 't.csv')}")
    line = one_paragraph(err)
    assert code == 2 and f"{value} is larger than the tensors' integers allow" in line, line
