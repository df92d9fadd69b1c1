"""The README stays true: it names every rule, shows the example rule as it is, keeps the two
set-up commands, and every Python block of it runs (the key reference, generated from the
code, now lives in docs/reference/keys.md: tests/test_docs.py keeps that equal)."""
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"


def test_readme_keeps_the_two_set_up_commands():
    text = README.read_text()
    assert "pip install -e . && python scripts/simulate.py\n" in text
    assert "pip install -e '.[test,tune,nwb]' && python -m pytest -q\n" in text


def test_ci_runs_the_readme_test_command_then_the_slow_tests():
    ci = (README.parent / ".ci" / "run").read_text()
    assert "-e '.[test,tune,docs,nwb]'" in ci
    quick, slow = ci.index("python -m pytest -q\n"), ci.index("python -m pytest -q -m slow\n")
    assert quick < slow


def test_readme_says_which_torch_and_where_the_cpu_wheel_comes_from():
    text = README.read_text()
    assert "torch 2.14.1" in text and "https://download.pytorch.org/whl/cpu" in text


def test_readme_names_every_registered_rule():
    from dendrisim.plasticity import RULES

    text = README.read_text()
    for name in RULES.names():
        assert f"`{name}`" in text


def python_blocks(text: str, language: str = "python") -> list[str]:
    """The fenced code blocks of ``language`` in a Markdown text (tests/test_docs.py reads pages with it)."""
    blocks, inside, lines = [], False, []
    for line in text.splitlines():
        if line.strip() == f"```{language}":
            inside, lines = True, []
        elif inside and line.strip() == "```":
            inside = False
            blocks.append("\n".join(lines))
        elif inside:
            lines.append(line)
    return blocks


def test_the_readme_shows_the_example_rule_as_it_is():
    example = (README.parent / "examples" / "rules" / "sign_symmetry.py").read_text().rstrip("\n")
    assert example in python_blocks(README.read_text())


def test_every_python_block_of_the_readme_runs(tmp_path):
    """All blocks in order, in one fresh process from the repository root, against a run of
    the default digits model made here: ``recordings/RUN`` is that run, and whatever else
    the examples write under ``recordings/`` goes to a temporary folder instead."""
    import subprocess
    import sys

    run = tmp_path / "RUN"
    made = subprocess.run([sys.executable, "scripts/simulate.py", "--epochs", "3", "--out", str(run)],
                          cwd=README.parent, capture_output=True, text=True, timeout=300)
    assert made.returncode == 0, made.stderr
    blocks = python_blocks(README.read_text())
    assert len(blocks) >= 4
    code = "\n\n".join(b.replace("recordings/RUN", str(run)).replace('"recordings/', f'"{tmp_path}/')
                       for b in blocks)
    script = tmp_path / "readme_blocks.py"
    script.write_text(code)
    proc = subprocess.run([sys.executable, str(script)], cwd=README.parent, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "nan" not in proc.stdout.lower(), proc.stdout
    import h5py

    with h5py.File(run / "recording.h5", "r") as f:  # the h5py example prints the last recorded step
        assert f"{int(f['index/step'][-1])} " in proc.stdout
