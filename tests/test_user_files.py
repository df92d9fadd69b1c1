"""Files as users have them (#15): text encodings, word vectors of any width, recordings
without padding, settings errors that say what would fit, and a start without waste."""
import copy
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import model, recording_datasets
from dendrisim.errors import ConfigError, DataError
from dendrisim.tasks.sequences import CharLanguageModel, CharLMOptions, ForecastOptions, Forecasting
from dendrisim.training import RunOptions, Trainer
from test_sentences import TEXTCNN, corpus, vectors_file, write

REPO = Path(__file__).resolve().parent.parent
CPU = torch.device("cpu")


# ----------------------------------------------------------------------------- encodings
def test_a_cp1252_text_reads_with_task_encoding_and_the_default_error_says_what_to_set(tmp_path):
    text = "It’s a café – naïve “quotes” and ½ of 12 € here.\n" * 60  # ’ – “ ” € are cp1252-only bytes
    path = tmp_path / "polarity.txt"
    path.write_bytes(text.encode("cp1252"))
    with pytest.raises(DataError) as err:
        CharLanguageModel(CharLMOptions(type="charlm", text=str(path), sequence_length=8), device=CPU)
    message = str(err.value)
    first_bad = text.encode("cp1252").index("’".encode("cp1252"))
    assert f"at byte offset {first_bad}" in message and "bytes 92" in message
    assert "task.encoding" in message and "cp1252" in message and "latin-1" in message
    task = CharLanguageModel(CharLMOptions(type="charlm", text=str(path), sequence_length=8, encoding="cp1252"),
                             device=CPU)
    assert {"’", "€", "é", "½"} <= set(task.chars)


def test_an_unknown_encoding_is_refused_before_any_file_is_read():
    with pytest.raises(ConfigError, match=r"task.encoding: 'utf9' is not a text encoding Python knows; use e.g. "
                                          r"utf-8, cp1252"):
        model(["task={type: charlm, text: none.txt, encoding: utf9}"])


def test_sentences_and_word_vectors_in_cp1252(tmp_path):
    """A polarity corpus and GloVe-style vectors, both cp1252, with words outside ASCII."""
    rows = [(y, s.replace("film", "café").replace("plot", "naïveté")) for y, s in corpus(200, 0)]
    train = tmp_path / "rt-polarity.txt"
    train.write_bytes("".join(f"{y} {s} ’\n" for y, s in rows).encode("cp1252"))
    vectors = vectors_file(tmp_path / "vec.txt", dim=6)
    extra = "café " + " ".join(["0.1"] * 6) + "\nnaïveté " + " ".join(["0.2"] * 6) + "\n’ " + " ".join(["0.3"] * 6)
    vectors.write_bytes((vectors.read_text() + extra + "\n").encode("cp1252"))
    overrides = [f"task.train_file={train}", f"task.vectors={vectors}"]
    with pytest.raises(DataError, match=r"rt-polarity.txt: not utf-8 text at byte offset .*task.encoding=cp1252"):
        Trainer(model(overrides, base=copy.deepcopy(TEXTCNN)), RunOptions(out_dir=tmp_path / "a", log=lambda s: None))
    tr = Trainer(model([*overrides, "task.encoding=cp1252"], base=copy.deepcopy(TEXTCNN)),
                 RunOptions(out_dir=tmp_path / "b", log=lambda s: None))
    assert {"café", "naïveté", "’"} <= set(tr.task.words)
    index = {w: i for i, w in enumerate(tr.task.words)}
    assert torch.allclose(tr.task.vectors[index["café"]], torch.full((6,), 0.1))
    assert torch.allclose(tr.task.vectors[index["’"]], torch.full((6,), 0.3))
    assert tr.run()["test_accuracy"] > 0.5
    # the vectors file alone in the wrong encoding: named, with where it fails
    utf8_train = tmp_path / "utf8.txt"
    utf8_train.write_text(train.read_bytes().decode("cp1252"), encoding="utf-8")
    with pytest.raises(DataError, match=r"vec.txt: not utf-8 text at byte offset [\d,]+ \(bytes e9"):
        Trainer(model([f"task.train_file={utf8_train}", f"task.vectors={vectors}"], base=copy.deepcopy(TEXTCNN)),
                RunOptions(out_dir=tmp_path / "c", log=lambda s: None))


def test_a_cp1252_series_file_with_a_header(tmp_path):
    path = tmp_path / "séries.csv"
    rows = "\n".join(f"2020-01-{i % 28 + 1:02d},{np.sin(i / 5):.4f},{np.cos(i / 7):.4f}" for i in range(300))
    path.write_bytes(("date,température,débit\n" + rows + "\n").encode("cp1252"))
    with pytest.raises(DataError, match="not utf-8 text at byte offset 9 "):
        Forecasting(ForecastOptions(type="forecasting", file=str(path), window=8), device=CPU)
    task = Forecasting(ForecastOptions(type="forecasting", file=str(path), window=8, encoding="cp1252"), device=CPU)
    assert task.names == ["température", "débit"]


# ------------------------------------------------------------------- vectors of any width
@pytest.mark.parametrize("dim", [50, 300])
def test_the_shipped_text_cnns_run_on_vectors_of_any_width(tmp_path, dim):
    from dendrisim.builder import load_experiment
    from dendrisim.inspect import describe

    train = write(tmp_path / "train.tsv", corpus(120, 4), "tsv")
    vectors = vectors_file(tmp_path / f"glove.{dim}d.txt", dim=dim)
    for name in ("subj", "sst2"):
        sets = [f"task.train_file={train}", f"task.vectors={vectors}", "task.test_file=null",
                "training.max_steps_per_epoch=2", "training.epochs=1", "recording.enabled=false"]
        exp = load_experiment(f"models/dll_textcnn_{name}.yaml", sets)
        length = 64 if name == "subj" else 56
        text = describe(exp)
        assert f"shape=[1, {length}, {dim}]" in text and f"shape=[100, {length - 2}, 1]" in text
        summary = Trainer(exp, RunOptions(log=lambda s: None, out_dir=tmp_path / f"{name}{dim}")).run()
        assert 0.0 <= summary["test_accuracy"] <= 1.0


def test_full_kernels_span_the_source_and_too_large_kernels_name_the_map_and_full():
    from conftest import build

    spec = copy.deepcopy(TEXTCNN)
    spec["task"] = {"type": "classification", "dataset": "digits"}
    spec["populations"] = {"input": {"type": "input", "size": "auto"}, "c": {"channels": 2, "activation": "tanh"},
                           "out": {"size": "auto", "activation": "softmax"}}
    spec["projections"] = [{"from": "input", "to": "c", "connectivity": "conv2d", "kernel": [3, "full"]},
                           {"from": "c", "to": "out"}]
    net, _ = build(model([], base=spec), input_shape=(1, 8, 8), output_size=10)
    assert net.populations["c"].shape == (2, 6, 1) and net.projections["input->c"].weight.shape == (2, 1, 3, 8)
    spec["projections"][0]["kernel"] = [3, 9]
    with pytest.raises(ConfigError, match=r"projections\[0\].kernel: the conv2d kernel \[3, 9\] is larger than the "
                                          r"\[1, 8, 8\] map of 'input' \(width 8\).*write kernel: \[3, full\]"):
        build(model([], base=spec), input_shape=(1, 8, 8), output_size=10)
    spec["projections"][0].update(kernel=[3, "full"], stride=["full", 1])
    with pytest.raises(ConfigError, match=r"projections\[0\].stride\[0\]: 'full' is not int"):
        model([], base=spec)


# ------------------------------------------------------------- series too short: what fits
def test_a_series_too_short_for_its_window_says_which_window_and_horizon_fit(tmp_path):
    path = tmp_path / "short.csv"
    path.write_text("\n".join(f"{np.sin(i):.3f}" for i in range(100)) + "\n")
    options = ForecastOptions(type="forecasting", file=str(path), window=168, horizon=3)
    with pytest.raises(DataError, match=r"task.window 168 and task.horizon 3: the training part is the first 60 "
                                        r"steps .* What fits: window \+ horizon <= 60, e.g. window 57 with horizon 3 "
                                        r"or window 59 with horizon 1") as err:
        Forecasting(options, device=CPU)
    assert "short.csv" in str(err.value)
    task = Forecasting(ForecastOptions(type="forecasting", file=str(path), window=57, horizon=3), device=CPU)
    assert len(task.train) == 1  # the suggestion is the largest that fits
    with pytest.raises(DataError):
        Forecasting(ForecastOptions(type="forecasting", file=str(path), window=58, horizon=3), device=CPU)


# ------------------------------------------------------------------- recordings: no padding
def test_every_value_of_a_default_run_recording_is_a_real_sample(tmp_path):
    """The default digits run has 1293 training samples in batches of 32: each epoch ends on a
    batch of 13, fewer than the 16 recorded samples. The epoch-end record comes from the last
    full batch instead, and an every-50-steps record that falls on a short batch moves to the
    next one, so nothing is padded."""
    out = tmp_path / "run"
    proc = subprocess.run([sys.executable, "scripts/simulate.py", "--epochs", "3", "--out", str(out)],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    data = recording_datasets(out / "recording.h5")
    floats = {k: v for k, v in data.items() if v.dtype.kind == "f"}
    assert {"populations/h1/apical", "projections/h2->out/feedback", "metrics/test/accuracy"} <= set(floats)
    for name, values in floats.items():
        assert np.isfinite(values).all(), name
    ids, steps = data["index/sample_ids"], data["index/step"]
    assert (ids >= 0).all() and ids.shape[1] == 16
    # 41 steps an epoch, the 41st of 13 samples: epoch ends at steps 40, 81 and 122 (the last full batches)
    assert steps.tolist() == [40, 50, 81, 100, 122]
    assert float(np.std(data["populations/h1/apical"][-1])) > 0  # what the README example prints


def test_short_batches_are_never_recorded_and_owed_records_survive_a_resume(tmp_path):
    """every: 41 falls on each epoch's short last batch: the record moves to the next step,
    across the epoch boundary and across a stop and resume alike."""
    def run(out, stop_after=None):
        tr = Trainer(model(["recording={every: 41, at_epoch_end: false, samples: 16}", "training.epochs=2",
                            "task.batch_size=32"]), RunOptions(out_dir=out, log=lambda s: None))
        if stop_after:
            present = tr.scheme.present

            def stop(*args, **kw):
                presentation = present(*args, **kw)
                if tr.global_step + 1 == stop_after:
                    tr.request_stop("test")
                return presentation
            tr.scheme.present = stop
        tr.run()
        return out

    whole = recording_datasets(run(tmp_path / "whole") / "recording.h5")
    assert whole["index/step"].tolist() == [42]  # step 41 holds 13 samples; step 42 takes its record
    stopped = run(tmp_path / "stopped", stop_after=41)
    tr = Trainer(model(["recording={every: 41, at_epoch_end: false, samples: 16}", "training.epochs=2",
                        "task.batch_size=32"]), RunOptions(out_dir=stopped, log=lambda s: None))
    tr.resume(stopped / "checkpoint.pt")
    tr.run()
    resumed = recording_datasets(stopped / "recording.h5")
    assert resumed["index/step"].tolist() == [42]
    assert np.array_equal(resumed["populations/h1/soma"], whole["populations/h1/soma"])


def test_recording_variables_that_would_hold_nothing_are_refused_or_left_out(tmp_path):
    def build(recording, *sets):
        return Trainer(model([f"recording={recording}", *sets]), RunOptions(out_dir=tmp_path, log=lambda s: None))

    with pytest.raises(ConfigError, match=r"recording.projections.h1->h2: h1->h2 is frozen .* 'update' would record"):
        build("{projections: {h1->h2: [update]}}", "projections.1.learnable=false")
    with pytest.raises(ConfigError, match=r"input->h1 carries no error back under rule dll \(its source is the input\)"):
        build("{projections: {input->h1: [feedback]}}")
    # what the rule's options cannot provide is left out with a note (another setting could)
    tr = build("{projections: {h1->h2: [weight, feedback_update]}}", "plasticity.learn_feedback=false")
    assert tr.recording_notes == ["recording.projections.h1->h2: 'feedback_update' is left out: h1->h2 has fixed "
                                  "feedback weights under these options: they get no update, so 'feedback_update' "
                                  "would record nothing"]


# ------------------------------------------------------------------------- a faster start
def test_channel_statistics_in_torch_equal_numpy():
    from dendrisim.tasks.classification import channel_moments

    rng = np.random.default_rng(0)
    for x in (rng.integers(0, 256, (300, 3, 5, 7), dtype=np.uint8), rng.normal(3, 2, (300, 2, 4, 4))):
        mean, std = channel_moments(torch.from_numpy(x), chunk=1000)  # several blocks
        ref = x.astype(np.float64)
        np.testing.assert_allclose(mean.flatten().numpy(), ref.mean(axis=(0, 2, 3)), rtol=1e-13)
        np.testing.assert_allclose(std.flatten().numpy(), ref.std(axis=(0, 2, 3)), rtol=1e-12)


@pytest.mark.parametrize("kind", ["adam", "adamw", "sgd", "momentum"])
def test_the_eager_optimizers_step_exactly_like_torch_optim(kind):
    from dendrisim.optim import eager

    torch.manual_seed(0)
    params = [torch.nn.Parameter(torch.randn(5, 4)), torch.nn.Parameter(torch.randn(3))]
    twins = [torch.nn.Parameter(p.detach().clone()) for p in params]
    cls = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW}.get(kind, torch.optim.SGD)
    kwargs = {"momentum": 0.9} if kind == "momentum" else {}
    stock, ours = cls(params, lr=0.01, weight_decay=0.01, **kwargs), eager(cls)(twins, lr=0.01, weight_decay=0.01, **kwargs)
    assert isinstance(ours, cls)
    for _ in range(5):
        grads = [torch.randn_like(p) for p in params]
        for p, q, g in zip(params, twins, grads):
            p.grad, q.grad = g.clone(), g.clone()
        stock.step()
        ours.step()  # outside no_grad, as a user would call it
    for p, q in zip(params, twins):
        assert torch.equal(p, q)
    assert ours.state_dict()["state"].keys() == stock.state_dict()["state"].keys()


def test_a_training_run_never_imports_torch_dynamo(tmp_path):
    code = ("import sys, json; from dendrisim.cli import main; "
            f"main(['--epochs', '1', '--out', {str(tmp_path / 'r')!r}]); "
            "print(json.dumps('torch._dynamo' in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.strip().splitlines()[-1]) is False
