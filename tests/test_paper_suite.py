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
    assert {"fmnist_mlp", "fmnist_cnn", "fmnist_cnn_pc", "depth_1", "depth_2", "mnist_mlp", "svhn_mlp", "cifar10_mlp",
            "charlm", "seqreg", "textcnn_mr"} == set(SUITE)
    for c in SUITE.values():
        assert c.tune == 0 and (REPO / c.model).is_file()
        assert settings(c)["training.early_stopping.patience"] == str(paper.PATIENCE)
        assert c.seeds == ((0, 1, 2) if c.name in ("charlm", "seqreg") else (0, 1, 2, 3))  # Table 2: 3 seeds, else 4
    mlp = settings(SUITE["fmnist_mlp"])  # Appendix D.2: Fashion-MNIST MLP lr 5e-4, batch 64, Adam, linear decay
    assert (mlp["task.batch_size"], mlp["optimizer.lr"], mlp["optimizer.type"], mlp["training.schedule"]) == (
        "64", "5e-4", "adam", "linear")
    assert [k.label for k in SUITE["fmnist_mlp"].contenders] == ["dll", "dll-fa", "bp", "fa", "pc"]
    assert SUITE["fmnist_mlp"].contenders[1].overrides == ("plasticity.learn_feedback=false",)  # DLL-FA: θ fixed
    mnist = settings(SUITE["mnist_mlp"])
    assert (mnist["task.batch_size"], mnist["optimizer.lr"]) == ("128", "1e-3")
    assert (settings(SUITE["svhn_mlp"])["optimizer.lr"], settings(SUITE["cifar10_mlp"])["optimizer.lr"]) == ("5e-5", "8e-5")
    assert settings(SUITE["charlm"])["populations.h.size"] == "324"  # Table 2's hidden size
    assert SUITE["fmnist_cnn_pc"].optional and not any(c.optional for c in SUITE.values() if c.name != "fmnist_cnn_pc")


def test_every_quote_names_a_table_of_the_paper_and_every_row_says_what_differs():
    quoted = 0
    for c in SUITE.values():
        for k in c.contenders:
            assert k.differs, (c.name, k.label)
            for q in k.paper:
                assert q.table in (1, 2, 3, 5, 7) and q.metric in ("accuracy", "mse", "mae")
                assert q.std is None or 0 < q.std < q.value
                quoted += 1
    assert quoted >= 30
    # a few hand-copied from the paper's tables
    mlp = {k.label: k.paper[0] for k in SUITE["fmnist_mlp"].contenders}
    assert (mlp["dll"].value, mlp["dll"].std, mlp["bp"].value, mlp["bp"].std) == (87.50, 0.43, 88.54, 0.64)
    seq = {k.label: {q.metric: q.value for q in k.paper} for k in SUITE["seqreg"].contenders}
    assert seq == {"dll": {"mse": 0.172, "mae": 0.321}, "dll-fa": {"mse": 0.193, "mae": 0.345},
                   "bp": {"mse": 0.175, "mae": 0.324}}
    assert [k.paper[0].value for k in SUITE["depth_1"].contenders if k.paper] == [71.15]


def test_the_papers_cnn_is_shipped_with_its_architecture_and_settings():
    from dendrisim.builder import load_experiment

    config = load_experiment(REPO / "models" / "dll_cnn_fmnist_paper.yaml", []).config
    pops = config.populations
    assert [pops[n].channels for n in ("c1", "c2", "c3")] == [64, 128, 64] and pops["h"].size == 128
    kinds = [(p.source, p.target, p.connectivity, p.kernel) for p in config.projections]
    assert kinds == [("input", "c1", "conv2d", 5), ("c1", "p1", "maxpool", 2), ("p1", "c2", "conv2d", 3),
                     ("c2", "p2", "avgpool", 2), ("p2", "c3", "conv2d", 3), ("c3", "h", "dense", None),
                     ("h", "out", "dense", None)]
    assert (config.optimizer.lr, config.task["batch_size"], config.training.schedule) == (5e-5, 64, "linear")


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
        "dll": _row("accuracy", [0.87, 0.88], [Q(1, "accuracy", 87.50, 0.43)], seconds=12.0, peak=1200.0),
        "bp": _row("accuracy", [0.88, 0.88], [Q(1, "accuracy", 88.54, 0.64)], seconds=10.0, peak=1000.0),
        "fa": _row("accuracy", [0.80, 0.80], [Q(1, "accuracy", 82.16, 0.14)]),
        "dll-fa": _row("accuracy", [0.5, 0.5], [Q(3, "accuracy", 97.37, None, "MNIST")])}}
    seq = {"name": "seqreg", "title": "Seq", "epochs": 20, "seeds": [0], "metrics": ["mse", "mae"], "contenders": {
        "dll": _row("mse", [0.2], [Q(2, "mse", 0.172, 0.018, "Electricity"), Q(2, "mae", 0.321, 0.013, "Electricity")],
                    others={"mae": [0.3]})}}
    md = paper.render(_report([mlp, seq, {"name": "svhn_mlp", "title": "SVHN", "skipped": "no SVHN here"}]), "head")
    lines = md.splitlines()
    dll = next(line for line in lines if line.startswith("| dll (x) | 87.50 ± 0.71 |"))
    assert "87.50 ± 0.43 (Table 1) | +0.00 points (within or better)" in dll and "| 1200 |" in dll
    assert "88.00 ± 0.00 | 88.54 ± 0.64 (Table 1) | -0.54 points (within or better)" in md
    assert "80.00 ± 0.00 | 82.16 ± 0.14 (Table 1) | -2.16 points (outside the paper's std)" in md
    assert "97.37 (Table 3, MNIST) | -47.37 points (other data)" in md
    assert ("| dll (x) | 0.200 | 0.172 ± 0.018 (Table 2, Electricity) | +0.028 (other data) | 0.300 | "
            "0.321 ± 0.013 (Table 2, Electricity) | -0.021 (other data) |") in md
    assert "| MLP | 12 / 10 s = 1.20× | 1200 / 1000 MB = 1.20× | 44.7 / 31.6 s = 1.41× | 1595.3 / 1286.4 MB = 1.24× |" in md
    assert "Not run here: no SVHN here." in md and "- Table 4: the data." in md


def test_lower_is_better_metrics_are_judged_the_other_way():
    q = {"table": 2, "metric": "mse", "value": 0.175, "std": 0.007, "data": ""}
    assert paper.verdict([0.18], q, False) == "+0.005 (within or better)"
    assert paper.verdict([0.19], q, False) == "+0.015 (outside the paper's std)"
    assert paper.verdict([0.10], q, False) == "-0.075 (within or better)"


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
def test_a_paper_style_suite_runs_untuned_and_stops_on_validation(tmp_path, monkeypatch, capsys):
    quick = ("training.max_steps_per_epoch=4", "task.batch_size=32", *paper.stop_early("accuracy"))
    suite = [results.Comparison(
        "digits", "Digits", "models/dll_mlp_digits.yaml",
        (results.Contender("dll", "dll", (), "DLL", paper=(paper.Quote(1, "accuracy", 97.57, 0.40, "MNIST"),),
                           differs="digits"),
         results.Contender("bp", "bp", (), "backprop", paper=(paper.Quote(1, "accuracy", 98.62, 0.17, "MNIST"),),
                           differs="digits")),
        epochs=2, tune=0, tune_epochs=0, seeds=(0, 1), overrides=quick, derive=paper.mlp((32,)))]
    monkeypatch.setitem(results.SUITES, "paper", suite)
    assert results.main(["--suite", "paper", "--out", str(tmp_path)]) == 0
    report = json.loads((tmp_path / "paper.json").read_text())
    rows = report["comparisons"][0]["contenders"]
    for row in rows.values():
        assert row["tuned"] in (None, {}) and row["trials"] == 0 and len(row["test"]) == 2
        assert row["peak_mb"] > 50 and row["paper"][0]["table"] == 1
    assert "--tune 0" in rows["dll"]["command"] and "depth" not in rows["dll"]["command"]
    assert (tmp_path / "digits" / "model.yaml").is_file()
    md = (tmp_path / "paper.md").read_text()
    assert md == results.render(report) and "97.57 ± 0.40 (Table 1, MNIST)" in md
    mtime = (tmp_path / "digits" / "dll" / "results.json").stat().st_mtime_ns
    printed = capsys.readouterr().out
    assert "== [1/2] digits / dll: " in printed and "   [2/2] digits / bp: test accuracy " in printed
    assert results.main(["--suite", "paper", "--out", str(tmp_path)]) == 0  # resumed: nothing rerun
    assert (tmp_path / "digits" / "dll" / "results.json").stat().st_mtime_ns == mtime
    assert "[1/2] digits / dll: test accuracy " in capsys.readouterr().out.split("finished before, not rerun")[0]
