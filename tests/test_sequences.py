"""Sequence tasks: char-level language modelling and forecasting, on files made here."""
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import model
from dendrisim.activations import ACTIVATIONS
from dendrisim.errors import DataError
from dendrisim.tasks.sequences import CharLanguageModel, CharLMOptions, ForecastOptions, Forecasting, read_series
from dendrisim.training import RunOptions, Trainer

REPO = Path(__file__).resolve().parent.parent


def rnn_model(task: dict, out_act: str, hidden: int = 32, rule: str = "dll", **training):
    return {
        "name": "tiny_rnn", "task": task,
        "populations": {"input": {"type": "input", "size": "auto"}, "h": {"size": hidden, "activation": "tanh"},
                        "out": {"size": "auto", "activation": out_act}},
        "projections": [{"from": "input", "to": "h"}, {"from": "h", "to": "h", "kind": "recurrent"},
                        {"from": "h", "to": "out"}],
        "plasticity": {"rule": rule}, "optimizer": {"type": "adam", "lr": 0.01},
        "training": {"epochs": 4, "seed": 0, **training}, "recording": {"enabled": False},
    }


@pytest.fixture
def text_file(tmp_path):
    rng = np.random.default_rng(0)
    words = ["abc", "abd", "bca", "cab", "dab"]
    text = " ".join(rng.choice(words, 1500)) + "\né"
    path = tmp_path / "text.txt"
    path.write_text(text, encoding="utf-8")
    return path, text


def test_charlm_cuts_the_text_by_position_into_sequences(text_file):
    path, text = text_file
    task = CharLanguageModel(CharLMOptions(type="charlm", text=str(path), sequence_length=20,
                                           validation_fraction=0.1, test_fraction=0.1), device=torch.device("cpu"))
    assert task.chars == "".join(sorted(set(text))) and "é" in task.chars
    decode = lambda ids: "".join(task.chars[i] for i in ids.tolist())  # noqa: E731
    n = len(text)
    cut, n_val = n - int(0.1 * n) - int(0.1 * n), int(0.1 * n)
    assert decode(task.train.x[0]) == text[:20] and decode(task.train.y[0]) == text[1:21]
    assert decode(task.train.x[1]) == text[20:40]  # consecutive, non-overlapping inputs
    assert decode(task.val.x[0]) == text[cut:cut + 20] and decode(task.test.x[0]) == text[cut + n_val:cut + n_val + 20]
    assert len(task.train) == (cut - 1) // 20
    assert task.train.x.data_ptr() == task.train.y.data_ptr() - 8  # input and target are views of one tensor
    x = task.inputs(task.train.x[:3])
    assert x.shape == (3, 20, len(task.chars)) and torch.equal(x.argmax(-1), task.train.x[:3])


def test_charlm_metrics_are_bits_perplexity_and_accuracy(text_file):
    path, _ = text_file
    task = CharLanguageModel(CharLMOptions(type="charlm", text=str(path), sequence_length=10),
                             device=torch.device("cpu"))
    V = len(task.chars)

    class Out:  # a uniform prediction: cross-entropy ln V, bpc log2 V, perplexity V
        soma = torch.zeros(10, 4, V)
        rate = torch.full((10, 4, V), 1.0 / V)
        size = V
        activation = type("A", (), {"canonical_loss": "cross_entropy"})()

    net = type("N", (), {"output": Out(), "readout": slice(None)})()
    y = task.train.y[:4]
    stats = task.finish_stats(task.batch_stats(y, net, net), 4)  # the fake is its own state
    assert stats["loss"] == pytest.approx(math.log(V)) and stats["bpc"] == pytest.approx(math.log2(V))
    assert stats["perplexity"] == pytest.approx(V) and stats["accuracy"] == pytest.approx(float((y == 0).float().mean()))


def test_charlm_trains_and_samples_end_to_end(text_file, tmp_path):
    path, _ = text_file
    exp = model(base=rnn_model({"type": "charlm", "text": str(path), "sequence_length": 30, "batch_size": 16},
                               "softmax", hidden=48))
    tr = Trainer(exp, RunOptions(progress=False, log=lambda s: None, out_dir=tmp_path / "run"))
    summary = tr.run()
    # five three-letter words and spaces: far below the 2.6 bits of a uniform guess over 6 characters
    assert summary["test_bpc"] < 1.6, summary
    assert summary["test_perplexity"] == pytest.approx(2 ** summary["test_bpc"], rel=1e-9)
    assert json.loads((tmp_path / "run" / "task.json").read_text())["chars"] == tr.task.chars
    proc = subprocess.run([sys.executable, str(REPO / "scripts" / "sample.py"), str(tmp_path / "run"), "--length", "60",
                           "--temperature", "0.5", "--prime", "ab"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    sample = proc.stdout.rstrip("\n")
    assert sample.startswith("ab") and len(sample) == 62 and set(sample) <= set(tr.task.chars)
    words = sample.split()[1:-1]
    assert words and sum(w in {"abc", "abd", "bca", "cab", "dab"} for w in words) >= 0.5 * len(words), sample
    from dendrisim.sample import generate

    assert generate(tmp_path / "run", length=60, temperature=0.5, prime="ab") == sample  # seeded
    (tmp_path / "run" / "weights.pt").unlink()  # a stopped run samples from its checkpoint
    assert len(generate(tmp_path / "run", length=10, prime="ab")) == 12


def test_stepping_with_carried_state_equals_the_whole_sequence(text_file):
    from test_recurrent import rnn as loop_rnn
    from conftest import build

    net, _ = build(loop_rnn("dll", loop=True), input_shape=(5,), output_size=3)
    x = torch.randn(2, 6, 5, dtype=torch.float64)
    with torch.no_grad():
        whole = net(x).clone()
        carried, steps = {}, []
        for t in range(6):
            steps.append(net(x[:, t:t + 1], initial=carried)[0])
            carried = {n: net.last_state[n].rate[-1] for n in ("h1", "h2")}
    torch.testing.assert_close(torch.stack(steps), whole)


def _series(tmp_path, header=True, single=False, n=400):
    t = np.arange(n)
    a = 50 + 10 * np.sin(2 * np.pi * t / 12)
    b = 3 * np.cos(2 * np.pi * t / 12) + 0.01 * t
    path = tmp_path / ("series.csv" if header else "series.txt")
    with open(path, "w") as f:
        if header:
            f.write("date,a" + ("" if single else ",b") + "\n")
        for i in range(n):
            row = [f"{a[i]:.5f}"] + ([] if single else [f"{b[i]:.5f}"])
            f.write((f"2021-01-{i:04d}," if header else "") + ",".join(row) + "\n")
    return path, np.stack([a] if single else [a, b], 1)


@pytest.mark.parametrize("header,single", [(True, False), (False, False), (True, True)])
def test_series_files_with_and_without_header_and_date(tmp_path, header, single):
    path, values = _series(tmp_path, header, single)
    got, names = read_series(path)
    np.testing.assert_allclose(got, values, atol=1e-5)
    assert names == (["a"] if single else ["a", "b"]) if header else names == ["series_0", "series_1"]


def test_forecasting_windows_splits_and_train_only_normalisation(tmp_path):
    path, values = _series(tmp_path)
    opts = ForecastOptions(type="forecasting", file=str(path), window=10, horizon=3)
    task = Forecasting(opts, device=torch.device("cpu"))
    n_test = n_val = int(400 * 0.2)
    cut = 400 - 160
    assert task.train.x[0] == 12 and task.train.x[-1] == cut - 1 and task.test.x[0] == cut + n_val
    np.testing.assert_allclose(task.shift, values[:cut].mean(0), rtol=1e-5)  # statistics of the training part only
    np.testing.assert_allclose(task.scale, values[:cut].std(0), rtol=1e-5)
    x = task.inputs(task.test.x[:2])
    t0 = int(task.test.x[0])
    np.testing.assert_allclose(x[0].numpy() * task.scale + task.shift, values[t0 - 12:t0 - 2], rtol=1e-5)
    target = task.target(task.test.y[:2], None)
    np.testing.assert_allclose(target[0, 0].numpy() * task.scale + task.shift, values[t0], rtol=1e-5)
    # changing the test part leaves the normalisation alone
    changed = values.copy()
    changed[cut:] *= 100
    path2 = tmp_path / "changed.txt"
    np.savetxt(path2, changed, delimiter=",")
    assert np.allclose(Forecasting(ForecastOptions(**{**opts.__dict__, "file": str(path2)}),
                                   device=torch.device("cpu")).shift, task.shift)
    assert n_test == 80


def test_forecasting_metrics_match_their_definitions(tmp_path):
    path, _ = _series(tmp_path)
    task = Forecasting(ForecastOptions(type="forecasting", file=str(path), window=5), device=torch.device("cpu"))
    gen = np.random.default_rng(3)
    y = task.test.y[:50]
    true = task.series[y].double().numpy() * task.scale + task.shift
    pred = true + gen.normal(0, 1.0, true.shape)
    rate = torch.tensor((pred - task.shift) / task.scale, dtype=torch.float32)

    class Out:
        soma = rate.unsqueeze(0)
        size = 2
        activation = ACTIVATIONS.get("linear")

    Out.rate = Out.soma
    net = type("N", (), {"output": Out(), "readout": slice(-1, None)})()
    half = [task.batch_stats(y[:20], *[_sub(net, 0, 20)] * 2), task.batch_stats(y[20:], *[_sub(net, 20, 50)] * 2)]
    m = task.finish_stats(half[0] + half[1], 50)  # statistics add up over batches
    err = true - pred
    assert m["mse"] == pytest.approx((err**2).mean(), rel=1e-5) and m["mae"] == pytest.approx(np.abs(err).mean(), rel=1e-5)
    assert m["rse"] == pytest.approx(np.sqrt((err**2).sum()) / np.sqrt(((true - true.mean()) ** 2).sum()), rel=1e-5)
    corr = np.mean([np.corrcoef(true[:, s], pred[:, s])[0, 1] for s in range(2)])
    assert m["corr"] == pytest.approx(corr, rel=1e-4)


def _sub(net, lo, hi):
    class Out:
        soma = net.output.soma[:, lo:hi]
        rate = net.output.rate[:, lo:hi]
        size = net.output.size
        activation = net.output.activation

    return type("N", (), {"output": Out(), "readout": net.readout})()


@pytest.mark.parametrize("rule", ["dll", "bp"])
def test_forecasting_trains_end_to_end_on_a_periodic_series(tmp_path, rule):
    path, _ = _series(tmp_path, n=600)
    exp = model(base=rnn_model({"type": "forecasting", "file": str(path), "window": 24, "horizon": 2,
                                "batch_size": 32}, "linear", rule=rule, epochs=12))
    summary = Trainer(exp, RunOptions(progress=False, log=lambda s: None, out_dir=tmp_path / "run")).run()
    # a constant prediction has RSE 1 and no correlation
    assert summary["test_rse"] < 0.3 and summary["test_corr"] > 0.9, summary
    assert {"test_mse", "test_mae", "test_rse", "test_corr"} <= set(summary)


def test_missing_and_bad_sequence_files_say_what_is_expected(tmp_path):
    with pytest.raises(DataError, match=r"task.text: .*book.txt not found; expected a text file \(utf-8\) there"):
        CharLanguageModel(CharLMOptions(type="charlm", text=str(tmp_path / "book.txt")), device=torch.device("cpu"))
    with pytest.raises(DataError, match=r"task.file is not set; give the file in the model or with --set task.file"):
        Forecasting(ForecastOptions(type="forecasting"), device=torch.device("cpu"))
    def text_task(path):
        return CharLanguageModel(CharLMOptions(type="charlm", text=str(path)), device=torch.device("cpu"))

    cases = [  # (file, content, reader, what the error says)
        ("bad.csv", "date,a,b\n2020,1.0,2.0\n2021,1.5,x\n", read_series, r"bad.csv:3: b is 'x', not a number"),
        ("bad.csv", "1,2\n3\n", read_series, r"bad.csv:2: 1 comma-separated fields, the first row has 2"),
        ("empty.csv", "", read_series, r"empty.csv: empty file"),
        ("empty.csv", "\n  \n\n", read_series, r"empty.csv: empty file"),
        ("empty.txt", "", text_task, r"empty.txt: 0 characters are too few"),
        ("short.txt", "abc" * 20, text_task, r"too few to cut training, validation and test sequences"),
        ("latin1.txt", "caf\xe9 ".encode("latin-1") * 1000, text_task, r"latin1.txt: not utf-8 text at byte offset 3 "),
    ]
    for name, content, reader, match in cases:
        path = tmp_path / name
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
        with pytest.raises(DataError, match=match):
            reader(path)


@pytest.mark.parametrize("name", ["charlm", "charlm_harrypotter", "electricity", "exchange", "pemsbay"])
def test_shipped_rnn_models_run_on_small_files(tmp_path, name, text_file):
    """The model files as shipped, pointed at files made here, for two steps."""
    from dendrisim.builder import load_experiment
    from dendrisim.inspect import describe

    if name.startswith("charlm"):
        data = [f"task.text={text_file[0]}"]
    else:
        path, _ = _series(tmp_path, n=1200)
        data = [f"task.file={path}"]
    exp = load_experiment(REPO / "models" / f"dll_rnn_{name}.yaml",
                          [*data, "training.max_steps_per_epoch=2", "training.epochs=1", "task.eval_batch_size=64"])
    assert "h.apical <- h.error through θ[h->h]" in describe(exp)
    summary = Trainer(exp, RunOptions(progress=False, log=lambda s: None, out_dir=tmp_path / "run")).run()
    assert summary["steps"] in (1, 2)  # the small text holds one batch of 64 sequences
    from dendrisim.recording import open_recording

    with open_recording(tmp_path / "run" / "recording.h5") as rec:
        T = exp.task.sequence_length if name.startswith("charlm") else exp.task.window
        assert rec.activity("h", "rate").shape[2:] == (T, 128 if not name.startswith("charlm") else 256)


def test_sampling_explains_what_is_missing(tmp_path):
    from dendrisim.errors import DendrisimError
    from dendrisim.sample import generate

    with pytest.raises(DendrisimError, match=r"model.yaml not found; sample from the directory of a charlm run"):
        generate(tmp_path, length=5)


# ------------------------------------------------- series files say what is wrong (issue 20, item 11)
@pytest.mark.parametrize("content, options, match", [
    ("1.0,2.0\n3.0,x\n", {}, r"s.csv:2: column 2 is 'x', not a number; a text column can be left out with task.columns"),
    ("a,b\n1,2\n3,\n", {}, r"s.csv:3: b is a missing value \(''\)"),
    ("a,b\n1,2\n3,NA\n", {}, r"s.csv:3: b is a missing value \('NA'\)"),
    ("NA,1.0\n2.0,3.0\n", {}, r"s.csv:1: column 1 of the first row is 'NA', not a number, while other cells of that "
                              r"row are numbers.*task.header: true"),
    ("NA,NA\n2.0,3.0\n", {}, r"s.csv:1: column 1 of the first row is 'NA', a missing value rather than a column name"),
    ("1.0,2.0\n\n3.0,1e300\n", {}, r"s.csv:3: column 2 is '1e300', which is outside float32's range"),
    ("1.0,nan\n", {}, r"s.csv:1: column 2 is a missing value \('nan'\)"),
    ("1.0,inf\n", {}, r"s.csv:1: column 2 is 'inf', which is outside"),
    ("date,a,city\n2020,1.0,Oslo\n", {}, r"s.csv:2: city is 'Oslo', not a number"),
    ("date,a\n2020,1.0\n", {"columns": ("b",)}, r"task.columns names 'b', which is not a column of the file \(its "
                                                 r"header names 'date', 'a'\)"),
    ("1,2\n3,4\n", {"columns": (3,)}, r"task.columns names column 3; the file has columns 1..2"),
])
def test_bad_series_values_name_the_line_and_the_column(tmp_path, content, options, match):
    path = tmp_path / "s.csv"
    path.write_text(content)
    with pytest.raises(DataError, match=match):
        read_series(path, **options)


def test_headers_and_columns_are_read_as_documented(tmp_path):
    path = tmp_path / "s.csv"
    path.write_text("date,a,city,b\n2020,1.0,Oslo,2.0\n2021,1.5,Bergen,2.5\n")
    values, names = read_series(path, columns=("a", 4))
    assert names == ["a", "b"] and values.tolist() == [[1.0, 2.0], [1.5, 2.5]]
    path.write_text("x,y\n1,2\n")  # a header row without numbers is read as names; header: false refuses it
    values, names = read_series(path)
    assert names == ["x", "y"] and values.tolist() == [[1.0, 2.0]]
    with pytest.raises(DataError, match=r"s.csv:1: column 1 is 'x', not a number"):
        read_series(path, header=False)
    path.write_text("NA,1\n2,3\n")
    values, names = read_series(path, header=True)
    assert names == ["NA", "1"] and values.tolist() == [[2.0, 3.0]]  # said explicitly: read as names


def test_what_was_read_as_header_and_left_out_is_recorded(tmp_path):
    path = tmp_path / "s.csv"
    path.write_text("date,a,b\n" + "".join(f"2020-{i},{i % 7}.0,{i % 5}.0\n" for i in range(200)))
    task = Forecasting(ForecastOptions(type="forecasting", file=str(path), window=4), device=torch.device("cpu"))
    art = task.artifacts()
    assert art["series"] == ["a", "b"] and art["header"] is True and art["skipped_columns"] == ["date"]
    path.write_text("".join(f"{i % 7}.0,{i % 5}.0\n" for i in range(200)))
    task = Forecasting(ForecastOptions(type="forecasting", file=str(path), window=4), device=torch.device("cpu"))
    assert task.artifacts()["header"] is False and task.artifacts()["skipped_columns"] == []
