"""One command regenerates the results (#16, #21): dendrisim.results (scripts/results.py is its
thin wrapper) runs every contender of a suite with the same tuning budget, writes markdown and
JSON with the machine, torch and the date, continues an interrupted suite, and the Results
page (docs/results.md) is its output, with the paper's metrics (next-character accuracy,
MSE, MAE) beside the tuned one."""
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from dendrisim import results

REPO = Path(__file__).resolve().parent.parent
PAGE = REPO / "docs" / "results.md"


@pytest.fixture
def tiny_suite(monkeypatch):
    pytest.importorskip("optuna", reason="the optional extra 'tune' (.ci/run installs it)")
    quick = ("training.max_steps_per_epoch=4", "task.batch_size=32")
    suite = [
        results.Comparison("digits", "Digits, quickly", "models/dll_mlp_digits.yaml",
                           (results.Contender("dll", "dll"), results.Contender("bp", "bp"),
                            results.Contender("dll-fixed", "dll", ("plasticity.learn_feedback=false",), "θ fixed")),
                           epochs=2, tune=2, tune_epochs=1, overrides=quick),
        results.Comparison("charlm", "Char LM on --text", "models/dll_rnn_charlm.yaml", (results.Contender("dll", "dll"),),
                           epochs=1, tune=1, tune_epochs=1, needs="text"),
    ]
    monkeypatch.setitem(results.SUITES, "tiny", suite)
    return suite


@pytest.mark.slow(reason="tunes and trains every contender of a small suite")
def test_a_suite_tunes_every_contender_equally_and_writes_markdown_and_json(tiny_suite, tmp_path, capsys):
    readme = tmp_path / "results.md"
    begin, end = results.markers("tiny")
    readme.write_text(f"# x\n\n## Results\n\nprose\n\n{begin}\nold numbers\n{end}\n\n## Layout\n")
    (tmp_path / "results.json").write_text('{"rules": {"kept": true}}')
    out = tmp_path / "out"
    assert results.main(["--suite", "tiny", "--out", str(out), "--update", str(readme)]) == 0
    report = json.loads((out / "tiny.json").read_text())
    assert set(report["machine"]) >= {"cpu", "cores", "torch", "date", "python"}
    assert report["command"].startswith("python scripts/results.py --suite tiny")
    digits, charlm = report["comparisons"]
    assert charlm["skipped"] == "no --text FILE given" and not charlm["contenders"]
    assert list(digits["contenders"]) == ["dll", "bp", "dll-fixed"]
    for label, row in digits["contenders"].items():
        assert row["trials"] == 2 and row["epochs"] == [2], label  # equal budgets, equal epochs
        assert "optimizer.lr" in row["tuned"]
        assert row["metric"] == "accuracy" and 0 <= row["test"][0] <= 1
        command = (out / "digits" / label / "command.txt").read_text()
        assert "--epochs 2 --tune 2 --tune-epochs 1" in command, command
    assert set(digits["contenders"]["dll"]["tuned"]) == {"optimizer.lr", "plasticity.feedback_lr_scale",
                                                          "plasticity.sigma"}
    assert "plasticity.learn_feedback=false" in (out / "digits" / "dll-fixed" / "command.txt").read_text()
    md = (out / "tiny.md").read_text()
    assert f"torch {report['machine']['torch']}" in md and report["machine"]["date"] in md
    assert "| dll-fixed | θ fixed |" in md and "Skipped here: no --text FILE given." in md
    bp = digits["contenders"]["bp"]["test"][0]
    dll = digits["contenders"]["dll"]["test"][0]
    assert f"{(dll - bp) * 100:+.2f} points" in md
    # the page's part between the markers is the markdown, its JSON beside it; the rest is kept
    text = readme.read_text()
    assert "old numbers" not in text and text.startswith("# x\n\n## Results\n\nprose\n") and text.endswith("## Layout\n")
    assert results.page_block(readme, "tiny") == md
    assert json.loads((tmp_path / "results.json").read_text()) == {"rules": {"kept": True}, "tiny": report}


@pytest.mark.slow(reason="runs a small suite twice")
def test_a_finished_contender_is_not_run_again(tiny_suite, tmp_path):
    out = tmp_path / "out"
    results.main(["--suite", "tiny", "--only", "digits", "--out", str(out)])
    logs = {p: p.stat().st_mtime_ns for p in out.glob("digits/*/output.log")}
    assert len(logs) == 3
    (out / "digits" / "bp" / "done").unlink()  # as if stopped while bp ran
    results.main(["--suite", "tiny", "--only", "digits", "--out", str(out)])
    for path, mtime in logs.items():
        assert (path.stat().st_mtime_ns == mtime) == (path.parent.name != "bp"), path


def test_unknown_comparisons_are_named(tiny_suite, tmp_path, capsys):
    with pytest.raises(SystemExit):
        results.main(["--suite", "tiny", "--only", "digits,cifar", "--out", str(tmp_path)])
    assert "--only: cifar not in suite tiny (digits, charlm)" in capsys.readouterr().err


def test_the_shipped_suites_cover_the_documented_comparisons():
    rules = {c.name: c for c in results.SUITES["rules"]}
    assert list(rules) == ["digits", "fmnist_mlp", "fmnist_cnn", "charlm", "forecasting"]
    for c in rules.values():
        assert [k.label for k in c.contenders] == ["dll", "bp", "fa", "dfa", "kp"] and c.tune > 0
        assert (REPO / c.model).is_file()
    variants = {k.label: k for k in results.SUITES["through-time"][0].contenders}
    assert {"dll", "dll-fixed", "dll-anti", "dll-warmup", "dll-decay", "dll-norm", "dll-rate", "dll-kp", "dll-truncate",
            "bp"} == set(variants)


def test_the_dendritic_suite_runs_the_circuit_and_its_rivals_on_its_own_feedforward_network():
    dendritic = {c.name: c for c in results.SUITES["dendritic"]}
    assert list(dendritic) == ["digits", "fmnist"]
    for c in dendritic.values():
        assert [(k.label, k.rule, k.twin) for k in c.contenders] == [
            ("microcircuit", "mc_basal", False), ("dll-euler", "dll", True), ("dll", "dll", True), ("bp", "bp", True)]
        assert (REPO / c.model).is_file() and c.tune > 0


def test_a_circuits_feedforward_twin_is_its_pyramidal_populations_and_basal_projections(tmp_path):
    from dendrisim.builder import load_experiment
    from dendrisim.config.loader import read_yaml

    circuit = read_yaml(REPO / "models" / "microcircuit_digits.yaml")
    twin = results.feedforward_twin(circuit)
    pyramidal = [n for n, p in circuit["populations"].items() if p.get("type") != "interneuron"]
    assert list(twin["populations"]) == pyramidal and "i1" in circuit["populations"]
    assert [(p["from"], p["to"]) for p in twin["projections"]] == [
        (p["from"], p["to"]) for p in circuit["projections"]
        if p.get("compartment", "basal") == "basal" and p["to"] in pyramidal]
    assert len(twin["projections"]) < len(circuit["projections"])
    assert twin["training"]["epochs"] == sum(ph["epochs"] for ph in circuit["training"]["phases"])
    assert "phases" not in twin["training"] and twin["task"] == circuit["task"]
    assert twin["dynamics"] == circuit["dynamics"] and twin["optimizer"] == circuit["optimizer"]
    assert set(twin["recording"]["populations"]) <= set(pyramidal)
    # it is a model file every rival runs (written where the comparison's contenders find it)
    comparison = results.SUITES["dendritic"][0]
    path = results.write_twin(comparison, tmp_path)
    for rule, mode in (("bp", "steady"), ("dll", "steady"), ("dll", "euler")):
        exp = load_experiment(path, [f"plasticity.rule={rule}", f"dynamics.mode={mode}"])
        assert exp.config.training.epochs == twin["training"]["epochs"]
    before = path.stat().st_mtime_ns
    results.write_twin(comparison, tmp_path)  # unchanged: not rewritten
    assert path.stat().st_mtime_ns == before


@pytest.mark.parametrize("suite", ["rules", "through-time", "dendritic", "paper"])
def test_the_documented_results_are_the_output_of_results_py(suite):
    """Not hand-typed: each generated part of the Results page is the rendering of its suite's
    entry in results.json (the repository's, which --update docs/results.md writes)."""
    report = json.loads((REPO / "results.json").read_text())[suite]
    assert results.results_json(PAGE) == REPO / "results.json"
    assert results.page_block(PAGE, suite) == results.render(report)
    assert report["suite"] == suite and report["command"].startswith(f"python scripts/results.py")
    assert all(c.get("skipped") or c["contenders"] for c in report["comparisons"])


def _row(metric: str, test: list, others: dict) -> dict:
    return {"rule": "dll", "overrides": [], "what": "", "metric": metric, "higher": metric == "accuracy",
            "test": test, "other_metrics": others, "seeds": [0], "epochs": [1], "seconds_per_epoch": 1.0,
            "tuned": {"optimizer.lr": 0.001}, "trials": 1, "command": "x"}


def _report(rows: dict) -> dict:
    machine = {"cpu": "cpu", "cores": 2, "platform": "p", "python": "3", "torch": "2", "date": "2026-01-01"}
    return {"machine": machine, "suite": "s", "command": "python scripts/results.py", "comparisons": [
        {"name": "c", "title": "T", "model": "m", "epochs": 1, "tune": 1, "tune_epochs": 1, "seeds": [0],
         "reference": "bp", "contenders": rows}]}


def test_the_tables_show_the_papers_metrics_and_a_dash_where_a_result_lacks_one():
    charlm = results.render(_report({"dll": _row("bpc", [2.0], {"loss": [1.4], "accuracy": [0.5]}),
                                     "bp": _row("bpc", [1.0], {"loss": [0.7]})}))  # stored before accuracy was
    assert "| contender | test bpc | vs bp | test next-char accuracy | s / epoch | tuned settings |" in charlm
    assert "| dll | 2.0000 | 2.00× | 50.00% | 1 | lr 0.001 |" in charlm
    assert "| bp | 1.0000 | — | — | 1 | lr 0.001 |" in charlm
    forecast = results.render(_report({"bp": _row("rse", [0.5], {"mse": [2.5], "mae": [1.5], "corr": [0.9]})}))
    assert "| contender | test RSE | vs bp | test MSE | test MAE | test CORR | s / epoch | tuned settings |" in forecast
    assert "| bp | 0.5000 | — | 2.5000 | 1.5000 | 0.9000 | 1 | lr 0.001 |" in forecast
    digits = results.render(_report({"bp": _row("accuracy", [0.9], {"loss": [0.3]})}))
    assert "| contender | test accuracy | vs bp | s / epoch | tuned settings |" in digits  # no extra column


def test_the_forecasting_metrics_on_hand_checked_values(tmp_path):
    """Two test targets, true values t and t+1 of the series 0, 1, 2, ... (no normalisation),
    predicted t+1 and t-1: errors -1 and +2, so MSE (1+4)/2 = 2.5, MAE (1+2)/2 = 1.5,
    RSE √5/√(0.25+0.25) = √10, and the prediction falls where the truth rises: CORR -1."""
    from dendrisim.activations import ACTIVATIONS
    from dendrisim.tasks.sequences import ForecastOptions, Forecasting

    path = tmp_path / "series.txt"
    path.write_text("".join(f"{i}\n" for i in range(40)))
    task = Forecasting(ForecastOptions(type="forecasting", file=str(path), window=3, normalize="none"),
                       device=torch.device("cpu"))
    y = task.test.y[:2]
    true = task.series[y, 0]
    assert true[1] - true[0] == 1
    pred = true + torch.tensor([1.0, -2.0])

    class Out:
        soma = rate = pred.view(1, 2, 1)
        size = 1
        activation = ACTIVATIONS.get("linear")

    net = type("N", (), {"output": Out(), "readout": slice(-1, None)})()
    m = task.finish_stats(task.batch_stats(y, net, net), 2)  # the fake is its own state
    assert m["mse"] == pytest.approx(2.5) and m["mae"] == pytest.approx(1.5)
    assert m["rse"] == pytest.approx(math.sqrt(10)) and m["corr"] == pytest.approx(-1.0)


def test_next_character_accuracy_and_bpc_on_hand_checked_values(tmp_path):
    """4 sequences of 10 characters over 3 symbols: 30 of the 40 predictions put 1/2 on the
    right character (the most likely: correct), 10 put 1/4 on it and 1/2 on another (wrong).
    Accuracy 30/40 = 0.75; bits per character (30·1 + 10·2)/40 = 1.25."""
    from dendrisim.tasks.sequences import CharLanguageModel, CharLMOptions

    path = tmp_path / "text.txt"
    path.write_text("abcacbbca" * 60)
    task = CharLanguageModel(CharLMOptions(type="charlm", text=str(path), sequence_length=10),
                             device=torch.device("cpu"))
    assert len(task.chars) == 3
    y = task.train.y[:4]  # [batch, time]
    target = y.t()  # [time, batch]
    rate = torch.full((10, 4, 3), 0.25)
    wrong = torch.zeros(10, 4, dtype=torch.bool)
    wrong[:, 0] = True  # the first sequence's 10 predictions are wrong
    rate.scatter_(2, target.unsqueeze(-1), torch.where(wrong, 0.25, 0.5).unsqueeze(-1))
    other = (target + 1) % 3
    rate.scatter_(2, other.unsqueeze(-1), torch.where(wrong, 0.5, 0.25).unsqueeze(-1))

    class Out:
        soma = rate.log()  # logits whose softmax is ``rate``
        size = 3
        activation = type("A", (), {"canonical_loss": "cross_entropy"})()

    Out.rate = rate
    net = type("N", (), {"output": Out(), "readout": slice(None)})()
    m = task.finish_stats(task.batch_stats(y, net, net), 4)  # the fake is its own state
    assert m["accuracy"] == pytest.approx(0.75) and m["bpc"] == pytest.approx(1.25)


def test_scripts_results_py_is_a_thin_wrapper_with_the_same_options():
    """The script runs dendrisim.results.main: the same --help, a line for every argument."""
    proc = subprocess.run([sys.executable, str(REPO / "scripts" / "results.py"), "--help"], capture_output=True,
                          text=True, cwd=REPO, timeout=120)
    assert proc.returncode == 0, proc.stderr
    for option in ("--suite", "--out", "--text", "--series", "--only", "--seeds", "--epochs", "--tune",
                   "--tune-epochs", "--set", "--device", "--data-root", "--update"):
        assert option in proc.stdout, option
    help_lines = [a for a in results_parser_actions() if a.help is None]
    assert not help_lines, [a.dest for a in help_lines]
    assert (REPO / "scripts" / "results.py").read_text().count("\n") < 20


def results_parser_actions():
    import argparse

    captured = {}
    real = argparse.ArgumentParser.parse_args

    def capture(self, args=None, namespace=None):
        captured["parser"] = self
        raise SystemExit(0)

    argparse.ArgumentParser.parse_args = capture
    try:
        with pytest.raises(SystemExit):
            results.main([])
    finally:
        argparse.ArgumentParser.parse_args = real
    return [a for a in captured["parser"]._actions if a.dest != "help"]
