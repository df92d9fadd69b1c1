"""docs/getting-started.md works literally from an empty folder with the installed command.

The marker convention (also stated in a comment at the top of the page): a MyST comment line
``% test`` right before a fenced block marks it for this test, and ``% test: file NAME`` marks a
block whose text is saved as NAME. The marked blocks run top to bottom in one empty temporary
folder: ``sh`` blocks with ``bash -e`` (every line must succeed), ``python`` blocks with this
Python. ``dendrisim`` there is a shim on PATH that runs ``python -m dendrisim`` with PYTHONPATH
at this checkout's package, as the console script of an installed wheel would (.ci/wheel_check.sh
checks the real wheel). Nothing is shortened: the page's runs take about a second of training each.
"""
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PAGE = REPO / "docs" / "getting-started.md"
MARK = re.compile(r"^% test(?:: file (?P<file>\S+))?\s*$")


def fenced_blocks(text: str) -> list[tuple[str, str, str | None]]:
    """Every fenced block of a Markdown text as (language, code, marker), in order; the
    marker is None for an unmarked block, "" for ``% test`` and the name for ``% test: file``."""
    blocks, lines = [], text.splitlines()
    i, marker = 0, None
    while i < len(lines):
        line = lines[i]
        mark = MARK.match(line)
        if mark:
            marker = mark.group("file") or ""
        elif line.startswith("```"):
            language, body, i = line[3:].strip(), [], i + 1
            while lines[i].strip() != "```":
                body.append(lines[i])
                i += 1
            blocks.append((language, "\n".join(body), marker))
            marker = None
        elif line.strip():
            marker = None  # a marker belongs to the block right below it
        i += 1
    return blocks


def test_the_parser_pairs_markers_with_the_next_block_only():
    text = "% test\n```sh\na\n```\n\n```sh\nb\n```\n% test: file m.yaml\n```yaml\nc: 1\n```\n% test\ntext\n```sh\nd\n```"
    assert fenced_blocks(text) == [("sh", "a", ""), ("sh", "b", None), ("yaml", "c: 1", "m.yaml"), ("sh", "d", None)]


def main_route(text: str) -> str:
    """The page up to its section for contributors."""
    return text.split("## From a checkout")[0]


def test_the_main_route_uses_the_installed_command_and_every_command_block_is_tested():
    text = PAGE.read_text()
    route = main_route(text)
    assert "scripts/" not in route and "pip install -e" not in route and "from the root" not in route
    for command in ("dendrisim run\n", "dendrisim check dll_mlp_digits", "dendrisim models", "ls recordings"):
        assert command in route, command
    assert "## From a checkout" in text and "python scripts/simulate.py" in text  # the second route stays
    for language, code, marker in fenced_blocks(route):
        runs_dendrisim = any(line.startswith("dendrisim ") or line == "dendrisim" for line in code.splitlines())
        if runs_dendrisim or language == "python":
            assert marker == "", f"an unmarked {language} block on the main route:\n{code}"


def shim(folder: Path) -> Path:
    """A ``dendrisim`` executable that runs this checkout's package, as the installed one does."""
    bin_dir = folder / "bin"
    bin_dir.mkdir()
    script = bin_dir / "dendrisim"
    script.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m dendrisim "$@"\n')
    script.chmod(0o755)
    return bin_dir


@pytest.mark.slow(reason="runs every command of the page in a fresh process from an empty folder, trainings included")
def test_the_pages_commands_run_from_an_empty_folder(tmp_path):
    work = tmp_path / "first-steps"
    work.mkdir()
    env = {**os.environ, "PYTHONPATH": str(REPO), "PATH": f"{shim(tmp_path)}{os.pathsep}{os.environ['PATH']}",
           "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"), "MPLBACKEND": "Agg"}
    env.pop("DENDRISIM_DATA", None)
    ran = []
    for language, code, marker in fenced_blocks(PAGE.read_text()):
        if marker is None:
            continue
        if marker:
            (work / marker).write_text(code + "\n")
            continue
        assert language in ("sh", "python"), language
        argv = ["bash", "-e", "-c", code] if language == "sh" else [sys.executable, "-c", code]
        proc = subprocess.run(argv, cwd=work, env=env, capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, f"{code}\n--- stderr:\n{proc.stderr[-3000:]}"
        assert "Traceback" not in proc.stderr and "nan" not in proc.stdout.lower(), code
        ran.append((code, proc.stdout))
    assert len(ran) >= 7
    outputs = "\n".join(out for _, out in ran)
    assert re.search(r"^dendrisim \d", outputs, flags=re.M)                 # --version
    assert re.search(r"^dll_mlp_digits  ", outputs, flags=re.M)            # models
    assert re.search(r"^dll_mlp_digits-\d{8}-\d{6}-s0$", outputs, flags=re.M)  # ls recordings
    default = next((work / "recordings").glob("dll_mlp_digits-*"))
    assert json.loads((default / "summary.json").read_text())["test_accuracy"] > 0.93  # "about 97%"
    for run in ("mine-dll", "mine-bp", "mine-fa", "mine-api", "digits-api"):
        assert (work / "recordings" / run / "summary.json").is_file(), run
    assert json.loads((work / "recordings" / "mine-bp" / "summary.json").read_text())["rule"] == "bp"
    assert list((work / "recordings" / "mine-dll" / "plots").glob("*.png"))
    assert sorted(p.name for p in work.iterdir()) == ["my_model.yaml", "recordings"]  # nothing else written
