"""Defects noted in a session's closing note: ``--device ''`` taken as cpu, ``bench`` on an
own-data image model, a char LM fed ids through a dense projection, a word2vec header that
claims fewer words than its file holds, and how-to pages that showed ``python scripts/...``."""
import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from dendrisim.commands import main as dendrisim

REPO_MODEL = "dll_mlp_digits"


# ------------------------------------------------------------------ 1. --device ''
@pytest.mark.parametrize("command", [
    ["run", REPO_MODEL, "--dry-run"],
    ["run", "--resume", "no-such-run"],
    ["compare", REPO_MODEL, "--rules", "bp", "--seeds", "0", "--epochs", "1"],
    ["bench", "--model", REPO_MODEL, "--no-epoch", "--steps", "1", "--repeats", "1", "--warmup", "0"],
])
def test_an_empty_device_is_refused_not_taken_as_cpu(command, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    if command[0] in ("compare",) or "--dry-run" in command:
        command = [*command, "--out", str(tmp_path / "out")]
    assert dendrisim([*command, "--device", ""]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --device '' is not a device; use cpu, cuda, cuda:N or auto"), err
    assert "Traceback" not in err and not (tmp_path / "out" / "recording.h5").exists()


# ------------------------------------------------------------------ 2. bench on dataset: file
def own_image_cnn(tmp_path, *, classes=3) -> "Path":  # noqa: F821
    """A conv-pool-dense chain on a lab's own 6x6 RGB images with ``classes`` labels (an .npz)."""
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "images.npz", x_train=rng.normal(size=(40, 3, 6, 6)).astype(np.float32),
             y_train=np.arange(40) % classes)
    config = {
        "name": "own_cnn",
        "task": {"type": "classification", "dataset": "file", "file": str(tmp_path / "images.npz"), "batch_size": 8},
        "populations": {"input": {"type": "input", "size": "auto"}, "c1": {"channels": 4, "activation": "tanh"},
                        "p1": {"activation": "linear"}, "out": {"size": "auto", "activation": "softmax"}},
        "projections": [{"from": "input", "to": "c1", "connectivity": "conv2d", "kernel": 3, "padding": 1},
                        {"from": "c1", "to": "p1", "connectivity": "maxpool", "kernel": 2},
                        {"from": "p1", "to": "out"}],
        "plasticity": {"rule": "dll"}, "optimizer": {"type": "adam", "lr": 0.003},
        "training": {"epochs": 1, "seed": 0}, "recording": {"enabled": False},
    }
    path = tmp_path / "own_cnn.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_bench_times_a_cnn_on_the_users_own_image_files(tmp_path, capsys):
    """The shapes come from the task's file (3x6x6 images, 3 classes), not the table of
    bundled datasets (which has no entry for ``file``)."""
    from dendrisim.bench import cnn_rows

    rows = cnn_rows(str(own_image_cnn(tmp_path)), torch.device("cpu"), 4, dict(steps=1, repeats=1, warmup=0))
    assert rows["model"] == "own_cnn" and rows["batch"] == 4
    assert {"autograd (nn.Sequential + Adam)", "dll", "bp"} <= {r["step"] for r in rows["steps"]}
    assert all(r["ms"] > 0 for r in rows["steps"])
    assert dendrisim(["bench", "--only-cnn", "--cnn", str(tmp_path / "own_cnn.yaml"), "--steps", "1",
                      "--repeats", "1", "--warmup", "0", "--batch", "4", "--json"]) == 0
    assert json.loads(capsys.readouterr().out.splitlines()[-1])["cnn"]["model"] == "own_cnn"


def test_bench_names_the_file_an_own_data_cnn_cannot_read(tmp_path, capsys):
    path = own_image_cnn(tmp_path)
    (tmp_path / "images.npz").unlink()
    assert dendrisim(["bench", "--only-cnn", "--cnn", str(path), "--steps", "1", "--repeats", "1",
                      "--warmup", "0"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "images.npz" in err and "Traceback" not in err, err


# ------------------------------------------------------------------ 3. char ids through a dense projection
def charlm_ids(tmp_path, connectivity: str = "dense") -> "Path":  # noqa: F821
    """A char LM reading one character id per step (task.input: ids) into ``connectivity``."""
    rng = np.random.default_rng(0)
    (tmp_path / "t.txt").write_text("".join(rng.choice(list("abcdefgh \n"), 2000)))
    config = {
        "name": "ids_lm",
        "task": {"type": "charlm", "text": str(tmp_path / "t.txt"), "sequence_length": 10, "batch_size": 8,
                 "input": "ids", "embedding_dim": 12},
        "populations": {"input": {"type": "input", "size": "auto"}, "h": {"size": 12, "activation": "tanh"},
                        "out": {"size": "auto", "activation": "softmax"}},
        "projections": [{"from": "input", "to": "h", "connectivity": connectivity},
                        {"from": "h", "to": "h", "kind": "recurrent"}, {"from": "h", "to": "out"}],
        "plasticity": {"rule": "dll"}, "training": {"epochs": 1, "seed": 0}, "recording": {"enabled": False},
    }
    path = tmp_path / "ids_lm.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.mark.parametrize("command", [["check"], ["run", "--dry-run"]])
def test_char_ids_into_a_dense_projection_is_one_paragraph_before_training(tmp_path, capsys, command):
    path = charlm_ids(tmp_path)
    extra = ["--out", str(tmp_path / "run")] if command[0] == "run" else []
    assert dendrisim([command[0], str(path), *command[1:], *extra]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {path}: projections[0].connectivity: ") and err.count("\n") == 1, err
    for said in ("input->h", "dense", "task.input: ids", "connectivity: embedding", "task.input: onehot"):
        assert said in err, (said, err)
    assert not (tmp_path / "run" / "metrics.csv").exists()


def test_char_ids_into_an_embedding_train(tmp_path, capsys):
    assert dendrisim(["run", str(charlm_ids(tmp_path, "embedding")), "--dry-run", "--out", str(tmp_path / "r")]) == 0
    assert json.loads(capsys.readouterr().out.splitlines()[-1])["epochs"] == 1


# ------------------------------------------------------------------ 4. a word2vec header that miscounts
def word2vec_text(path, *, claimed: int, words: int = 5, dim: int = 4, trailing: str = "\n"):
    lines = [f"w{i} " + " ".join(f"{(i + j) / 10:.4f}" for j in range(dim)) for i in range(words)]
    path.write_text(f"{claimed} {dim}\n" + "\n".join(lines) + trailing)
    return path


def test_a_header_claiming_fewer_words_than_the_file_holds_is_refused(tmp_path):
    """gensim stops at the header's count: 2 of the 5 vectors would be dropped unsaid."""
    from dendrisim.errors import DataError
    from dendrisim.tasks.sentences import load_vectors

    path = word2vec_text(tmp_path / "w2v.txt", claimed=3)
    with pytest.raises(DataError) as err:
        load_vectors(path)
    said = str(err.value)
    assert said.startswith(f"{path}: the header claims 3 words") and "5 lines of vectors" in said, said
    assert "\n" not in said


def test_a_header_claiming_more_words_than_the_file_holds_is_refused(tmp_path):
    from dendrisim.errors import DataError
    from dendrisim.tasks.sentences import load_vectors

    path = word2vec_text(tmp_path / "w2v.txt", claimed=7)
    said = r"w2v.txt: the header claims 7 words, but the file holds 5 lines of vectors after it\. "
    with pytest.raises(DataError, match=said):
        load_vectors(path)


@pytest.mark.parametrize("trailing", ["", "\n", "\n\n  \n"])
def test_a_header_that_counts_the_lines_reads_every_vector(tmp_path, trailing):
    from dendrisim.tasks.sentences import load_vectors

    kv = load_vectors(word2vec_text(tmp_path / "w2v.txt", claimed=5, trailing=trailing))
    assert len(kv) == 5 and kv.vector_size == 4 and kv["w4"][0] == pytest.approx(0.4)


def word2vec_binary(path, *, claimed: int, words: int = 5, dim: int = 4, newline: bool = True):
    with open(path, "wb") as fh:
        fh.write(f"{claimed} {dim}\n".encode())
        for i in range(words):
            fh.write(f"w{i} ".encode() + np.arange(i, i + dim, dtype=np.float32).tobytes() + (b"\n" if newline else b""))
    return path


@pytest.mark.parametrize("newline", [True, False])
def test_a_binary_header_claiming_fewer_words_is_refused_and_an_exact_one_read(tmp_path, newline):
    from dendrisim.errors import DataError
    from dendrisim.tasks.sentences import load_vectors

    with pytest.raises(DataError, match=r"w2v.bin: the header claims 3 words, but \d+ bytes follow their vectors, "
                                        r"room for about 2 more"):
        load_vectors(word2vec_binary(tmp_path / "w2v.bin", claimed=3, newline=newline))
    kv = load_vectors(word2vec_binary(tmp_path / "exact.bin", claimed=5, newline=newline))
    assert len(kv) == 5 and kv["w4"][0] == 4.0
    with pytest.raises(DataError, match=r"w2v.bin: the header claims 7 words of 4 dimensions"):
        load_vectors(word2vec_binary(tmp_path / "w2v.bin", claimed=7, newline=newline))


# ------------------------------------------------------------------ 5. the pages show the installed command
DOCS = Path(__file__).resolve().parent.parent / "docs"
PAGES = sorted(p for p in DOCS.rglob("*.md") if "_build" not in p.parts and "auto_examples" not in p.parts)
#: (page, script) pairs that may show ``python scripts/SCRIPT`` (or ``torchrun scripts/...``):
#: getting-started's section "From a checkout (contributors)"; the developer benchmark with no
#: dendrisim command (pcx side by side; the twin of the public BurstCCN code, which needs its
#: checkout); and the reference of ``dendrisim results``, generated
#: from dendrisim/results.py's docstring (the results page itself, docs/results.md, shows its
#: tables' commands as stored and is not checked here).
CONTRIBUTOR_SCRIPTS = {("getting-started.md", "simulate.py"), ("getting-started.md", "validate_model.py"),
                       ("howto/speed.md", "bench_pcx.py"), ("speed.md", "twin_burstccn.py")}
FENCE = re.compile(r"^( *)(```|~~~)[^\n]*\n(.*?)^\1\2 *$", re.M | re.S)
INLINE = re.compile(r"`([^`\n]+)`")


def code_of(page: Path) -> list[str]:
    """Every logical line of the page's fenced code blocks (continuations joined) and every
    inline code span outside them."""
    text = page.read_text()
    lines = []
    for block in FENCE.finditer(text):
        lines += block.group(3).replace("\\\n", " ").splitlines()
    lines += INLINE.findall(FENCE.sub("", text))
    return lines


@pytest.mark.parametrize("page", [p for p in PAGES if p != DOCS / "results.md"], ids=lambda p: str(p.relative_to(DOCS)))
def test_no_page_shows_a_script_of_a_checkout_as_the_command(page):
    name = str(page.relative_to(DOCS))
    for line in code_of(page):
        for script in re.findall(r"(?:\bpython3?|\btorchrun\b[^\n]*?)\s+scripts/([\w.]+)", line):
            assert (name, script) in CONTRIBUTOR_SCRIPTS, f"{name}: {line.strip()}"


COMMAND = re.compile(r"^\s*(?:\$\s+)?(?:[A-Z_]+=\S*\s+)*(?:torchrun\b.*?\s-m\s+)?dendrisim\s+(\S+)(.*)$")


def howto_commands() -> list[tuple[str, str, str]]:
    found = []
    for page in sorted((DOCS / "howto").glob("*.md")):
        for line in code_of(page):
            m = COMMAND.match(line.split(" #")[0])
            if m:
                found.append((page.name, m.group(1), m.group(2)))
    return found


def test_the_howto_pages_show_dendrisim_commands():
    shown = {sub for _, sub, _ in howto_commands()}
    assert {"run", "compare", "results", "bench", "sample", "plot", "export", "check"} <= shown, shown


@pytest.mark.parametrize("page,sub,rest", howto_commands(), ids=lambda v: v if isinstance(v, str) and " " not in v else "")
def test_every_dendrisim_command_of_the_howto_pages_exists_with_its_flags(page, sub, rest):
    from dendrisim.commands import COMMANDS, command_parser

    assert sub in COMMANDS, f"{page}: dendrisim {sub}{rest} names no subcommand ({', '.join(COMMANDS)})"
    parser = command_parser(sub)
    flags = {s for a in parser._actions for s in a.option_strings} if parser is not None else set()
    for flag in re.findall(r"(?:^|[\s\[])(--[a-z][\w-]*)", rest):
        assert parser is None or flag in flags, f"{page}: dendrisim {sub} has no {flag} ({sorted(flags)})"


def test_compare_refuses_a_device_before_making_its_output_folder(tmp_path, capsys):
    from dendrisim.compare import main as compare

    out = tmp_path / "cmp"
    assert compare(["dll_mlp_digits", "--rules", "dll", "--epochs", "1", "--out", str(out), "--device", "mps"]) == 2
    assert "--device mps" in capsys.readouterr().err and not out.exists()


def test_a_missing_torchvision_dataset_names_dendrisims_key_not_torchvisions_argument(tmp_path):
    from dendrisim.errors import DataError
    from dendrisim.tasks.datasets import load_dataset

    with pytest.raises(DataError) as err:
        load_dataset("svhn", str(tmp_path), False)
    assert "download=True" not in str(err.value) and "task.download: true" in str(err.value)
