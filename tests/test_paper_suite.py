"""The ``paper`` suite of ``dendrisim results`` (#31): Lv et al. 2025's rows at the paper's
settings, with the paper's numbers quoted beside ours (each naming its table), the
difference, what differs, Table 6's time and memory ratios, and the rows not run."""
import json
import statistics
import subprocess
import sys
from argparse import Namespace
from pathlib import Path

import pytest

from dendrisim import paper, results

REPO = Path(__file__).resolve().parent.parent
SUITE = {c.name: c for c in results.SUITES["paper"]}


def settings(comparison) -> dict:
    return dict(item.split("=", 1) for item in comparison.overrides)


def test_the_suite_runs_the_papers_rows_at_its_settings_without_tuning():
    assert {"fmnist_mlp", "fmnist_cnn", "fmnist_cnn_pc", "depth_1", "depth_2", "mnist_mlp", "mnist_depth_1",
            "mnist_depth_2", "svhn_mlp", "cifar10_mlp", "charlm", "seqreg", "textcnn_mr"} == set(SUITE)
    for c in SUITE.values():
        assert c.tune == 0 and (REPO / c.model).is_file()
        assert settings(c)["training.early_stopping.patience"] == str(paper.PATIENCE)
        assert c.seeds == ((0, 1, 2) if c.name in ("charlm", "seqreg") else (0, 1, 2, 3))  # Table 2: 3 seeds, else 4
    mlp = settings(SUITE["fmnist_mlp"])  # Appendix D.2: Fashion-MNIST MLP lr 5e-4, batch 64, Adam, linear decay
    assert (mlp["task.batch_size"], mlp["optimizer.lr"], mlp["optimizer.type"], mlp["training.schedule"]) == (
        "64", "5e-4", "adam", "linear")
    assert [k.label for k in SUITE["fmnist_mlp"].contenders] == ["dll", "dll-fa", "bp", "fa", "pc"]
    assert SUITE["fmnist_mlp"].contenders[1].overrides == ("plasticity.learn_feedback=false",)  # DLL-FA: θ fixed
    for name in ("depth_1", "depth_2"):  # Table 7's depths at the Fashion-MNIST MLP's settings
        assert settings(SUITE[name]) == mlp
    for name in ("mnist_mlp", "mnist_depth_1", "mnist_depth_2"):  # MNIST: lr 1e-3, batch 128
        mnist = settings(SUITE[name])
        assert (mnist["task.batch_size"], mnist["optimizer.lr"], mnist["training.schedule"]) == ("128", "1e-3", "linear")
        assert SUITE[name].needs == "mnist"
    for name, lr in (("svhn_mlp", "5e-5"), ("cifar10_mlp", "8e-5")):
        other = settings(SUITE[name])
        assert (other["task.batch_size"], other["optimizer.lr"], other["training.schedule"]) == ("64", lr, "linear")
    cnn = SUITE["fmnist_cnn"]  # its lr, batch and schedule are the shipped file's (tested below)
    assert cnn.model == "models/dll_cnn_fmnist_paper.yaml" and set(settings(cnn)) == {
        "training.early_stopping.patience", "training.early_stopping.metric"}
    assert settings(SUITE["charlm"])["populations.h.size"] == "324"  # Table 2's hidden size
    assert settings(SUITE["charlm"])["optimizer.lr"] == "1e-3" and "optimizer.lr" not in settings(SUITE["textcnn_mr"])
    assert "our model file's" in SUITE["charlm"].contenders[0].differs and "of our model file" in SUITE["textcnn_mr"].contenders[0].differs
    assert SUITE["fmnist_cnn_pc"].optional and not any(c.optional for c in SUITE.values() if c.name != "fmnist_cnn_pc")


#: every number the suite quotes, typed here again from Lv et al. 2025's Tables 1, 2, 3, 5 and 7
#: (comparison, contender) -> [(table, metric, value, std, the paper's data when not ours)]
QUOTED = {
    ("fmnist_mlp", "dll"): [(1, "accuracy", "87.50", "0.43", "")],
    ("fmnist_mlp", "dll-fa"): [(3, "accuracy", "97.37", None, "MNIST")],
    ("fmnist_mlp", "bp"): [(1, "accuracy", "88.54", "0.64", "")],
    ("fmnist_mlp", "fa"): [(1, "accuracy", "82.16", "0.14", "")],
    ("fmnist_mlp", "pc"): [(1, "accuracy", "88.72", "0.65", "")],
    ("fmnist_cnn", "dll"): [(1, "accuracy", "90.88", "0.40", "")],
    ("fmnist_cnn", "bp"): [(1, "accuracy", "92.68", "0.42", "")],
    ("fmnist_cnn", "fa"): [(1, "accuracy", "89.74", "0.17", "")],
    ("fmnist_cnn_pc", "pc"): [(1, "accuracy", "92.03", "0.70", "")],
    ("depth_1", "dll"): [(7, "accuracy", "71.15", None, "MNIST")],
    ("depth_2", "dll"): [(7, "accuracy", "89.61", None, "MNIST")],
    ("mnist_depth_1", "dll"): [(7, "accuracy", "71.15", None, "")],
    ("mnist_depth_2", "dll"): [(7, "accuracy", "89.61", None, "")],
    ("mnist_mlp", "dll"): [(1, "accuracy", "97.57", "0.40", "")],
    ("mnist_mlp", "dll-fa"): [(3, "accuracy", "97.37", None, "")],
    ("mnist_mlp", "bp"): [(1, "accuracy", "98.62", "0.17", "")],
    ("mnist_mlp", "fa"): [(1, "accuracy", "91.87", "0.08", "")],
    ("mnist_mlp", "pc"): [(1, "accuracy", "98.42", "0.13", "")],
    ("svhn_mlp", "dll"): [(1, "accuracy", "56.60", "0.12", "")],
    ("svhn_mlp", "bp"): [(1, "accuracy", "60.91", "0.42", "")],
    ("svhn_mlp", "fa"): [(1, "accuracy", "54.91", "0.23", "")],
    ("svhn_mlp", "pc"): [(1, "accuracy", "59.05", "0.45", "")],
    ("cifar10_mlp", "dll"): [(1, "accuracy", "45.87", "0.10", "")],
    ("cifar10_mlp", "bp"): [(1, "accuracy", "48.74", "0.56", "")],
    ("cifar10_mlp", "fa"): [(1, "accuracy", "48.46", "0.11", "")],
    ("cifar10_mlp", "pc"): [(1, "accuracy", "47.34", "0.24", "")],
    ("charlm", "dll"): [(2, "accuracy", "33.7", "0.6", "Harry Potter")],
    ("charlm", "dll-fa"): [(3, "accuracy", "0.71", None, "Harry Potter")],
    ("charlm", "bp"): [(2, "accuracy", "51.9", "1.0", "Harry Potter")],
    ("seqreg", "dll"): [(2, "mse", "0.172", "0.018", "Electricity"), (2, "mae", "0.321", "0.013", "Electricity")],
    ("seqreg", "dll-fa"): [(3, "mse", "0.193", None, "Electricity"), (3, "mae", "0.345", None, "Electricity")],
    ("seqreg", "bp"): [(2, "mse", "0.175", "0.007", "Electricity"), (2, "mae", "0.324", "0.007", "Electricity")],
    ("textcnn_mr", "dll"): [(5, "accuracy", "70.79", None, "MR")],
    ("textcnn_mr", "bp"): [(5, "accuracy", "74.68", None, "MR")],
}


def test_every_quote_is_the_papers_number_under_its_table_and_every_row_says_what_differs():
    found = {}
    for c in SUITE.values():
        for k in c.contenders:
            assert k.differs, (c.name, k.label)
            if k.paper:
                found[(c.name, k.label)] = [(q.table, q.metric, q.value, q.std, q.data) for q in k.paper]
    assert found == QUOTED
    assert [q.note for q in SUITE["charlm"].contenders[1].paper] == ["did not converge"]  # Table 3's remark
    assert {kind: {rule: tuple(map(float, v)) for rule, v in rows.items()} for kind, rows in paper.TABLE6.items()} == {
        "mlp": {"bp": (31.6, 1286.4), "dll": (44.7, 1595.3)}, "cnn": {"bp": (99.0, 1272.9), "dll": (169.8, 1306.9)}}


def test_the_papers_cnn_is_shipped_with_its_architecture_and_settings():
    from dendrisim.builder import load_experiment

    config = load_experiment(REPO / "models" / "dll_cnn_fmnist_paper.yaml", []).config
    pops = config.populations
    assert [pops[n].channels for n in ("c1", "c2", "c3")] == [64, 128, 64] and pops["h"].size == 128
    kinds = [(p.source, p.target, p.connectivity, p.kernel) for p in config.projections]
    assert kinds == [("input", "c1", "conv2d", 5), ("c1", "p1", "maxpool", 2), ("p1", "c2", "conv2d", 3),
                     ("c2", "p2", "avgpool", 2), ("p2", "c3", "conv2d", 3), ("c3", "h", "dense", None),
                     ("h", "out", "dense", None)]
    assert (config.optimizer.type, config.optimizer.lr, config.task["batch_size"], config.training.schedule) == (
        "adam", 5e-5, 64, "linear")
    assert {pops[n].activation for n in ("c1", "c2", "c3", "h")} == {"tanh"} and pops["out"].activation == "softmax"


@pytest.mark.parametrize("name, hidden", [("depth_1", [1024]), ("depth_2", [1024, 512])])
def test_table_7s_depths_are_the_papers_mlp_with_fewer_hidden_populations(tmp_path, name, hidden):
    from dendrisim.builder import load_experiment

    path = results.write_derived(SUITE[name], tmp_path)
    config = load_experiment(path, []).config
    sizes = [p.size for p in config.populations.values() if p.type == "pyramidal"]
    assert sizes == hidden + [10]
    assert [(p.source, p.target) for p in config.projections] == list(zip(
        ["input", *(f"h{i + 1}" for i in range(len(hidden)))], [*(f"h{i + 1}" for i in range(len(hidden))), "out"]))
    before = path.stat().st_mtime_ns
    results.write_derived(SUITE[name], tmp_path)  # unchanged: not rewritten, so a finished contender stays done
    assert path.stat().st_mtime_ns == before


def test_the_3072_input_mlps_read_their_own_dataset(tmp_path):
    from dendrisim.builder import load_experiment

    config = load_experiment(results.write_derived(SUITE["svhn_mlp"], tmp_path), []).config
    pops = list(config.populations.values())
    assert config.task["dataset"] == "svhn" and pops[0].shape == (3, 32, 32)
    assert [p.size for p in pops[1:]] == [4096, 2048, 1024, 256, 10]


def _row(metric, test, paper_quotes=(), others=None, seconds=1.0, peak=None, what="x"):
    row = {"rule": "dll", "overrides": [], "what": what, "metric": metric, "higher": metric == "accuracy",
           "test": test, "other_metrics": others or {}, "seeds": list(range(len(test))), "epochs": [3] * len(test),
           "seconds_per_epoch": seconds, "tuned": None, "trials": 0, "command": "c",
           "paper": [q.as_dict() for q in paper_quotes], "differs": "cap 10"}
    if peak:
        row["peak_mb"] = peak
    return row


def _report(comparisons):
    return {"machine": {}, "suite": "paper", "command": "python scripts/results.py --suite paper",
            "comparisons": comparisons, "not_run": [["Table 4", "the data"]]}


def test_ours_beside_the_papers_numbers_on_hand_checked_values():
    Q = paper.Quote
    mlp = {"name": "fmnist_mlp", "title": "MLP", "epochs": 10, "seeds": [0, 1], "contenders": {
        "dll": _row("accuracy", [0.87, 0.88], [Q(1, "accuracy", "87.50", "0.43")], seconds=12.0, peak=1200.0),
        "bp": _row("accuracy", [0.88, 0.88], [Q(1, "accuracy", "88.54", "0.64")], seconds=10.0, peak=1000.0),
        "fa": _row("accuracy", [0.80, 0.80], [Q(1, "accuracy", "82.16", "0.14")]),
        "pc": _row("accuracy", [0.89, 0.89], [Q(1, "accuracy", "88.72", "0.65")]),
        "dll-fa": _row("accuracy", [0.5, 0.5], [Q(3, "accuracy", "97.37", None, "MNIST")])}}
    seq = {"name": "seqreg", "title": "Seq", "epochs": 20, "seeds": [0], "metrics": ["mse", "mae"], "contenders": {
        "dll": _row("mse", [0.2], [Q(2, "mse", "0.172", "0.018"), Q(2, "mae", "0.321", "0.013")], others={"mae": [0.3]}),
        "bp": _row("mse", [0.19], [Q(2, "mse", "0.175", "0.007"), Q(2, "mae", "0.324", None)], others={"mae": [0.33]})}}
    cnn = {"name": "fmnist_cnn", "title": "CNN", "epochs": 3, "seeds": [0], "contenders": {
        "dll": _row("accuracy", [0.8], [Q(1, "accuracy", "90.88", "0.40")])}}
    report = _report([mlp, seq, cnn, {"name": "svhn_mlp", "title": "SVHN", "skipped": "no SVHN here"}])
    report["timing"] = {"mlp": {"dll": 24.0, "bp": 16.0}}
    report["memory"] = {"mlp": {"dll": 1200.0, "bp": 1000.0}}
    md = paper.render(report, "head")
    lines = md.splitlines()
    dll = next(line for line in lines if line.startswith("| dll (x) | 87.50 ± 0.71 |"))
    assert "| 87.50 ± 0.43 (Lv et al. 2025, Table 1) | +0.00 points | at the paper's mean | 3/3 | 12 | cap 10 |" in dll
    assert "| 88.00 ± 0.00 | 88.54 ± 0.64 (Lv et al. 2025, Table 1) | -0.54 points | within the paper's std |" in md
    assert "| 80.00 ± 0.00 | 82.16 ± 0.14 (Lv et al. 2025, Table 1) | -2.16 points | worse by more than the paper's std |" in md
    assert "| 89.00 ± 0.00 | 88.72 ± 0.65 (Lv et al. 2025, Table 1) | +0.28 points | better than the paper's mean |" in md
    assert "| 97.37 (Lv et al. 2025, Table 3; MNIST) | — (not comparable: MNIST) | — |" in md  # no difference drawn
    assert ("| dll (x) | 0.200 | 0.172 ± 0.018 (Lv et al. 2025, Table 2) | +0.028 | worse by more than the paper's std | "
            "0.300 | 0.321 ± 0.013 (Lv et al. 2025, Table 2) | -0.021 | better than the paper's mean |") in md
    assert ("| 0.190 | 0.175 ± 0.007 (Lv et al. 2025, Table 2) | +0.015 | worse by more than the paper's std | 0.330 | "
            "0.324 (Lv et al. 2025, Table 2) | +0.006 | worse (the paper gives no std) |") in md
    assert ("| MLP | 24 / 16 ms = 1.50× | 12 / 10 s = 1.20× | 1200 / 1000 MB = 1.20× | 44.7 / 31.6 s = 1.41× | "
            "1595.3 / 1286.4 MB = 1.24× |") in md
    assert "| CNN |" not in md  # no bp row and no timing: no ratio to show
    assert "3 epochs, the cap (with a patience of 3 no run stops earlier" in md
    assert "at most 10 epochs, stopped after 3 without a better validation score" in md
    assert "Not run here: no SVHN here." in md and "- Table 4: the data." in md


def test_table_7_is_gathered_by_depth_beside_the_papers_mnist_numbers():
    def rows(dll, bp):
        return {"dll": _row("accuracy", [dll]), "bp": _row("accuracy", [bp])}
    comparisons = [{"name": n, "title": n, "epochs": 10, "seeds": [0], "contenders": rows(d, b)}
                   for n, d, b in (("fmnist_mlp", 0.87, 0.88), ("depth_1", 0.85, 0.86), ("depth_2", 0.86, 0.87))]
    md = paper.render(_report(comparisons), "head")
    assert "| 784-1024-10 | 85.00 | 86.00 | 71.15 |" in md and "| 784-1024-512-256-10 | 87.00 | 88.00 | 97.57 |" in md
    assert "ours, MNIST" not in md  # the MNIST comparisons did not run
    md = paper.render(_report(comparisons + [{"name": "mnist_depth_1", "title": "m", "epochs": 10, "seeds": [0],
                                               "contenders": rows(0.9, 0.95)}]), "head")
    assert "| 784-1024-10 | 85.00 | 86.00 | 90.00 | 95.00 | 71.15 |" in md
    assert "| 784-1024-512-10 | 86.00 | 87.00 | — | — | 89.61 |" in md


def test_lower_is_better_metrics_are_judged_the_other_way():
    q = {"table": 2, "metric": "mse", "value": "0.175", "std": "0.007", "data": ""}
    assert paper.verdict([0.18], q, False) == "within the paper's std"
    assert paper.verdict([0.19], q, False) == "worse by more than the paper's std"
    assert paper.verdict([0.10], q, False) == "better than the paper's mean"
    assert paper.difference([0.10], q) == "-0.075"


def test_table_6s_memory_is_one_process_per_rule_measured_alike(tmp_path, monkeypatch):
    ran = []

    def measured(cmd, log, stdout=None):
        ran.append(cmd)
        return 0, (3000 if "dll" in cmd[cmd.index("--rules") + 1] else 2000) * 1024

    monkeypatch.setattr(results, "run_measured", measured)
    args = _args(out=tmp_path)
    suite = [SUITE["fmnist_mlp"], SUITE["fmnist_cnn"], SUITE["depth_1"]]
    assert results.run_memory(args, suite) == {"mlp": {"dll": 3000.0, "bp": 2000.0},
                                               "cnn": {"dll": 3000.0, "bp": 2000.0}}
    assert len(ran) == 4
    for cmd in ran:  # the comparison's own command, with one seed and one short epoch
        assert cmd[cmd.index("--seeds") + 1] == "0" and cmd[cmd.index("--epochs") + 1] == "1"
        assert f"training.max_steps_per_epoch={paper.MEMORY_STEPS}" in cmd and cmd[cmd.index("--tune") + 1] == "0"
    assert "task.batch_size=64" in ran[0] and ran[2][2] == "models/dll_cnn_fmnist_paper.yaml"
    assert results.run_memory(args, suite)["cnn"]["bp"] == 2000.0 and len(ran) == 4  # kept: not measured again


def test_the_timing_runs_bench_on_one_thread_for_both_networks():
    assert paper.TIMING["mlp"][:4] == ("--model", "dll_mlp_fmnist", "--batch", "64")
    assert paper.TIMING["cnn"][:5] == ("--cnn", "dll_cnn_fmnist_paper", "--only-cnn", "--batch", "64")
    mlp = {"machine": {}, "steps": [{"step": "bp", "ms": 17.3}, {"step": "dll", "ms": 24.1}]}
    cnn = {"machine": {}, "cnn": {"model": "x", "steps": [{"step": "bp", "ms": 117.2}, {"step": "dll", "ms": 210.7}]}}
    assert paper.bench_step_ms(mlp, "mlp") == {"bp": 17.3, "dll": 24.1}
    assert paper.bench_step_ms(cnn, "cnn") == {"bp": 117.2, "dll": 210.7}


def _args(**kw):
    base = dict(epochs=None, seeds=None, tune=None, tune_epochs=None, device="cpu", data_root=None, overrides=[],
                text=None, series=None)
    return Namespace(**{**base, **kw})


def test_tune_zero_means_no_tuning_and_a_negative_budget_is_refused(tmp_path, capsys):
    digits = results.SUITES["rules"][0]
    assert digits.tune == 8
    cmd = results.command(digits, digits.contenders[0], _args(tune=0), tmp_path / "x")
    assert cmd[cmd.index("--tune") + 1] == "0"  # was silently the comparison's 8
    cmd = results.command(digits, digits.contenders[0], _args(), tmp_path / "x")
    assert cmd[cmd.index("--tune") + 1] == "8"
    for flag, value in (("--tune", "-1"), ("--epochs", "0"), ("--tune-epochs", "0")):
        with pytest.raises(SystemExit):
            results.main(["--suite", "paper", flag, value, "--out", str(tmp_path)])
        assert f"{flag} {value}: give" in capsys.readouterr().err


def test_the_peak_memory_of_a_contender_is_that_of_its_own_process(tmp_path):
    with open(tmp_path / "log", "w") as log:
        code, peak_kb = results.run_measured([sys.executable, "-c", "b = bytearray(300 * 2**20); b[::4096] = b'x' * "
                                              "len(b[::4096]); raise SystemExit(3)"], log)
    assert code == 3 and 300 * 1024 < peak_kb < 2000 * 1024
    with open(tmp_path / "log", "w") as log:
        code, small_kb = results.run_measured([sys.executable, "-c", "pass"], log)
    assert code == 0 and small_kb < 100 * 1024  # its own peak: not this process's (torch loaded), nor the last child's


def test_an_optional_comparison_runs_only_when_named(tmp_path, monkeypatch):
    ran = []
    monkeypatch.setattr(results, "run_contender", lambda c, k, a, progress="": ran.append((c.name, k.label)) or _row("accuracy", [0.5]))
    slow = results.Comparison("slow", "Slow", "models/dll_mlp_digits.yaml", (results.Contender("pc", "pc"),),
                              epochs=1, tune=0, tune_epochs=0, optional="hours")
    quick = results.Comparison("quick", "Quick", "models/dll_mlp_digits.yaml", (results.Contender("dll", "dll"),),
                               epochs=1, tune=0, tune_epochs=0)
    monkeypatch.setitem(results.SUITES, "paper", [quick, slow])
    assert results.main(["--suite", "paper", "--out", str(tmp_path)]) == 0
    report = json.loads((tmp_path / "paper.json").read_text())
    assert ran == [("quick", "dll")] and report["comparisons"][1]["skipped"] == "hours; run it with --only slow"
    assert report["not_run"] == [list(row) for row in paper.NOT_RUN]
    assert results.main(["--suite", "paper", "--only", "slow", "--out", str(tmp_path)]) == 0
    assert ran[-1] == ("slow", "pc")


def test_gensims_movie_review_sample_is_found_where_gensim_ships_it():
    pytest.importorskip("gensim")
    corpus, vectors = results.gensim_mr()
    lines = corpus.read_bytes().decode("latin-1").splitlines()
    assert len(lines) == 200 and {line.split()[0] for line in lines} == {"__label__neg", "__label__pos"}
    assert vectors.read_bytes().split(b"\n", 1)[0].split() == [b"1694", b"100"]  # latin-1, like the corpus


@pytest.mark.slow(reason="runs a small paper-style suite end to end through compare_rules")
def test_a_paper_style_suite_runs_untuned_with_early_stopping_and_resumes(tmp_path, monkeypatch, capsys):
    quick = ("training.max_steps_per_epoch=4", "task.batch_size=32", *paper.stop_early("accuracy"))
    suite = [results.Comparison(
        "digits", "Digits", "models/dll_mlp_digits.yaml",
        (results.Contender("dll", "dll", (), "DLL", paper=(paper.Quote(1, "accuracy", "97.57", "0.40", "MNIST"),),
                           differs="digits"),
         results.Contender("bp", "bp", (), "backprop", paper=(paper.Quote(1, "accuracy", "98.62", "0.17", "MNIST"),),
                           differs="digits")),
        epochs=2, tune=0, tune_epochs=0, seeds=(0, 1), overrides=quick, derive=paper.mlp((32,)))]
    monkeypatch.setitem(results.SUITES, "paper", suite)
    assert results.main(["--suite", "paper", "--out", str(tmp_path)]) == 0
    report = json.loads((tmp_path / "paper.json").read_text())
    rows = report["comparisons"][0]["contenders"]
    for row in rows.values():
        assert row["tuned"] in (None, {}) and row["trials"] == 0 and len(row["test"]) == 2
        assert row["peak_mb"] > 50 and row["paper"][0]["table"] == 1
        assert "training.early_stopping.patience=3" in row["command"]
    assert "--tune 0" in rows["dll"]["command"] and "digits/model.yaml" in rows["dll"]["command"]
    assert (tmp_path / "digits" / "model.yaml").is_file()
    md = (tmp_path / "paper.md").read_text()
    assert md == results.render(report) and "97.57 ± 0.40 (Lv et al. 2025, Table 1; MNIST)" in md
    mtime = (tmp_path / "digits" / "dll" / "results.json").stat().st_mtime_ns
    printed = capsys.readouterr().out
    assert "== [1/2] digits / dll: " in printed and "   [2/2] digits / bp: test accuracy " in printed
    assert results.main(["--suite", "paper", "--out", str(tmp_path)]) == 0  # resumed: nothing rerun
    assert (tmp_path / "digits" / "dll" / "results.json").stat().st_mtime_ns == mtime
    assert "[1/2] digits / dll: test accuracy " in capsys.readouterr().out.split("finished before, not rerun")[0]


def test_a_measured_command_runs_once_with_its_output_apart_from_its_log(tmp_path, capsys):
    cmd = [sys.executable, "-c", "import sys; print('{\"ok\": 1}'); print('chatter', file=sys.stderr)"]
    assert results.run_once(cmd, tmp_path / "t", "timing / x", output="bench.json") is True
    assert json.loads((tmp_path / "t" / "bench.json").read_text()) == {"ok": 1}
    assert "chatter" in (tmp_path / "t" / "output.log").read_text()
    assert int((tmp_path / "t" / "peak_memory_kb").read_text()) > 0
    assert results.run_once(cmd, tmp_path / "t", "timing / x", output="bench.json") is False  # done: not again
    assert capsys.readouterr().out.count("== timing / x: ") == 1
    with pytest.raises(SystemExit, match=r"fail / y failed \(exit 3\); see .*output.log"):
        results.run_once([sys.executable, "-c", "raise SystemExit(3)"], tmp_path / "f", "fail / y")
    assert not (tmp_path / "f" / "done").exists()
