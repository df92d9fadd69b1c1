"""One command regenerates the results (#16): scripts/results.py runs every contender of a
suite with the same tuning budget, writes markdown and JSON with the machine, torch and the
date, continues an interrupted suite, and the README's Results section is its output."""
import importlib.util
import json
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
spec = importlib.util.spec_from_file_location("results_script", REPO / "scripts" / "results.py")
results = importlib.util.module_from_spec(spec)
sys.modules["results_script"] = results
spec.loader.exec_module(results)


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


def test_a_suite_tunes_every_contender_equally_and_writes_markdown_and_json(tiny_suite, tmp_path, capsys):
    readme = tmp_path / "README.md"
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
    # the README's part between the markers is the markdown, its JSON beside it; the rest is kept
    text = readme.read_text()
    assert "old numbers" not in text and text.startswith("# x\n\n## Results\n\nprose\n") and text.endswith("## Layout\n")
    assert results.readme_block(readme, "tiny") == md
    assert json.loads((tmp_path / "results.json").read_text()) == {"rules": {"kept": True}, "tiny": report}


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


def test_the_shipped_suites_cover_the_readme_comparisons():
    rules = {c.name: c for c in results.SUITES["rules"]}
    assert list(rules) == ["digits", "fmnist_mlp", "fmnist_cnn", "charlm", "forecasting"]
    for c in rules.values():
        assert [k.label for k in c.contenders] == ["dll", "bp", "fa", "dfa", "kp"] and c.tune > 0
        assert (REPO / c.model).is_file()
    variants = {k.label: k for k in results.SUITES["through-time"][0].contenders}
    assert {"dll", "dll-fixed", "dll-anti", "dll-warmup", "dll-decay", "dll-norm", "dll-rate", "dll-kp", "dll-truncate",
            "bp"} == set(variants)


@pytest.mark.parametrize("suite", ["rules", "through-time"])
def test_the_readme_results_are_the_output_of_results_py(suite):
    """Not hand-typed: each generated part of the README is the rendering of its suite's
    entry in results.json."""
    report = json.loads((REPO / "results.json").read_text())[suite]
    assert results.readme_block(REPO / "README.md", suite) == results.render(report)
    assert report["suite"] == suite and report["command"].startswith(f"python scripts/results.py")
    assert all(c.get("skipped") or c["contenders"] for c in report["comparisons"])
