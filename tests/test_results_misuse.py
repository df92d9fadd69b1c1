"""``dendrisim results --suite paper`` misused (issue 31's attack from the outside): every case
ends with exit 2 and one paragraph (argparse's usage error counts), or exit 0 with the
comparison listed as skipped; none starts a contender. ``--data-root`` points at an empty
folder, so nothing heavy can run."""
from __future__ import annotations

import contextlib
import io
import json
import os

import pytest

from dendrisim.commands import main as dendrisim
from test_fuzz_stack import classify


def results(tmp_path, *args: str) -> tuple[int, str, str, str]:
    """Exit status, stdout, stderr and the oracle's verdict of ``dendrisim results --suite paper ARGS``."""
    out, err = io.StringIO(), io.StringIO()
    (tmp_path / "empty").mkdir(exist_ok=True)
    argv = ["results", "--suite", "paper", "--data-root", str(tmp_path / "empty"), "--out", str(tmp_path / "out"),
            *args]
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = dendrisim(argv)
        except SystemExit as exc:  # argparse
            code = exc.code if isinstance(exc.code, int) else 1
    return code, out.getvalue(), err.getvalue(), classify(code, out.getvalue(), err.getvalue())


def files(tmp_path) -> dict[str, str]:
    """What the command may read: each a file made here."""
    made = {"folder": tmp_path / "folder", "missing": tmp_path / "missing.csv", "empty": tmp_path / "empty.txt",
            "binary": tmp_path / "binary.txt", "header": tmp_path / "header.csv", "short": tmp_path / "short.csv",
            "tabs": tmp_path / "tabs.tsv", "fifo": tmp_path / "fifo"}
    made["folder"].mkdir()
    made["empty"].write_text("")
    made["binary"].write_bytes(b"\xff\xfe\x00\x01")
    made["header"].write_text("a,b\n")
    made["short"].write_text("1,2\n3,4\n5,6\n")
    made["tabs"].write_text("".join(f"{i}\t{i * 2}\n" for i in range(200)))
    os.mkfifo(made["fifo"])
    return {k: str(v) for k, v in made.items()}


MISUSE = [
    ["--tune", "-1"], ["--epochs", "0"], ["--epochs", "-3"], ["--tune-epochs", "0"], ["--seeds", "x"],
    ["--seeds", ","], ["--only", "nope"], ["--only", ","], ["--only", ""], ["--only", "seqreg,nope"],
    *(["--only", "seqreg", "--series", f] for f in ("folder", "missing", "empty", "binary", "header", "short", "tabs",
                                                    "fifo")),
    *(["--only", "charlm", "--text", f] for f in ("folder", "missing", "empty", "binary", "fifo")),
]


@pytest.mark.parametrize("args", MISUSE, ids=lambda a: " ".join(a) or "none")
def test_misuse_is_one_paragraph_and_runs_nothing(tmp_path, args):
    paths = files(tmp_path)
    given = [paths.get(a, a) for a in args]
    code, out, err, verdict = results(tmp_path, *given)
    assert code == 2 and verdict in ("error", "usage"), (code, verdict, err[-2000:])
    assert not (tmp_path / "out" / "seqreg").exists() and not (tmp_path / "out" / "charlm").exists()


@pytest.mark.parametrize("only, reason", [
    ("fmnist_cnn_pc", "FashionMNIST: missing"),  # the optional comparison, asked for, without its data
    ("seqreg", "no --series FILE given"), ("charlm", "no --text FILE given"),
])
def test_a_comparison_without_its_data_is_a_clean_skip(tmp_path, only, reason):
    code, out, err, verdict = results(tmp_path, "--only", only)
    assert code == 0 and verdict == "ok", err[-2000:]
    report = json.loads((tmp_path / "out" / "paper.json").read_text())
    (entry,) = report["comparisons"]
    assert entry["name"] == only and entry["skipped"].startswith(reason) and not entry["contenders"]
    assert f"== {only}: skipped" in out and "Traceback" not in err
