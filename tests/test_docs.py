"""The documentation site (#21) stays whole: every page is in a toctree, the key reference is
the one the code generates, the gallery has its examples, the README stays short, and the
build runs with warnings as errors (.ci/docs.sh; the build itself runs there, not here)."""
import re
from pathlib import Path

import pytest

from dendrisim.reference import reference
from test_readme import python_blocks

REPO = Path(__file__).resolve().parent.parent
DOCS = REPO / "docs"
GALLERY = REPO / "examples" / "gallery"


def toctree_entries(page: Path) -> list[str]:
    """The documents a page's ```{toctree} blocks list, relative to the docs root."""
    entries, inside = [], False
    for line in page.read_text().splitlines():
        if line.strip().startswith("```{toctree}"):
            inside = True
        elif inside and line.strip() == "```":
            inside = False
        elif inside and line.strip() and not line.strip().startswith(":"):
            entries.append(str((page.parent / line.strip()).relative_to(DOCS)).replace("\\", "/"))
    return entries


def pages() -> set[str]:
    generated = DOCS / "auto_examples"
    return {str(p.relative_to(DOCS).with_suffix("")) for p in DOCS.rglob("*.md")
            if generated not in p.parents and "_build" not in p.parts}


def test_every_page_is_in_a_toctree():
    listed = {entry for page in DOCS.rglob("*.md") for entry in toctree_entries(page)}
    assert "auto_examples/index" in listed  # the gallery
    orphans = pages() - listed - {"index"}
    assert not orphans, f"pages in no toctree: {sorted(orphans)}"
    missing = {e for e in listed if e != "auto_examples/index"} - pages()
    assert not missing, f"toctree entries without a page: {sorted(missing)}"


def test_the_key_reference_page_is_the_generated_one():
    text = (DOCS / "reference" / "keys.md").read_text()
    start = text.index("<!-- keys -->\n") + len("<!-- keys -->\n")
    end = text.index("<!-- /keys -->")
    assert text[start:end] == reference(), \
        "regenerate with: python -m dendrisim.reference --update docs/reference/keys.md"


def test_the_key_reference_escapes_bars_inside_cells():
    """A '|' in a key's meaning would end its table cell."""
    for line in reference().splitlines():
        if line.startswith("| `"):
            assert len(re.findall(r"(?<!\\)\|", line)) == 5, line


@pytest.mark.parametrize("page", ["getting-started", "concepts", "math", "results", "speed", "howto/speed",
                                  "howto/model-files", "howto/per-projection", "howto/writing-a-rule",
                                  "howto/recordings", "howto/dynamics", "howto/microcircuit", "howto/comparing",
                                  "howto/stop-and-resume",
                                  "howto/torchrun", "howto/gpu", "reference/keys", "reference/api", "reference/cli",
                                  "reference/limits"])
def test_the_pages_the_issue_asks_for_exist(page):
    assert (DOCS / f"{page}.md").read_text().startswith("# ")


def test_getting_started_says_which_torch_and_where_the_cpu_wheel_comes_from():
    text = (DOCS / "getting-started.md").read_text()
    assert "torch==2.14.1" in text and "--index-url https://download.pytorch.org/whl/cpu" in text


def test_the_gallery_has_its_six_examples_and_writes_only_to_temporary_folders():
    examples = sorted(GALLERY.glob("plot_*.py"))
    assert len(examples) >= 6
    for path in examples:
        code = path.read_text()
        assert code.startswith('"""\n'), f"{path.name}: sphinx-gallery needs a docstring title"
        assert "tempfile.mkdtemp" in code and "recordings/" not in code, path.name
    text = " ".join(p.read_text() for p in examples)
    for needed in ("training.alignment", "dll_mlp_digits_dynamic",
                   "register_rule", "h5py.File", "soma", "basal"):
        assert needed in text, needed


def test_the_build_is_sphinx_with_myst_autodoc_and_gallery_and_warnings_are_errors():
    conf = (DOCS / "conf.py").read_text()
    for ext in ("myst_parser", "sphinx.ext.autodoc", "sphinx_gallery.gen_gallery"):
        assert f'"{ext}"' in conf
    assert 'html_theme = "furo"' in conf
    script = (REPO / ".ci" / "docs.sh").read_text()
    assert "python -m sphinx -W" in script and "-b html" in script and "docs" in script


def test_the_readme_stays_short_and_points_to_the_docs():
    text = (REPO / "README.md").read_text()
    assert len(text.splitlines()) <= 250
    assert "docs/" in text and "python -m sphinx" in text


def blocks(page: Path, language: str) -> list[str]:
    return python_blocks(page.read_text(), language)


@pytest.mark.slow(reason="trains the pages' runs and runs their blocks in fresh processes")
def test_the_python_blocks_of_the_docs_pages_run(tmp_path):
    """The API page and the recordings how-to, each page's blocks in order in one fresh
    process from the repository root; what they write under recordings/ goes to a temporary
    folder. (Getting started runs from an empty folder: tests/test_getting_started.py.)"""
    import subprocess
    import sys

    made = subprocess.run([sys.executable, "scripts/simulate.py", "--epochs", "3", "--out", str(tmp_path / "RUN")],
                          cwd=REPO, capture_output=True, text=True, timeout=300)  # the how-to's RUN
    assert made.returncode == 0, made.stderr
    for page in ("reference/api", "howto/recordings"):
        code = "\n\n".join(blocks(DOCS / f"{page}.md", "python"))
        assert code, page
        code = code.replace('"recordings/', f'"{tmp_path}/')
        proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, f"{page}: {proc.stderr[-3000:]}"
        assert "nan" not in proc.stdout.lower(), proc.stdout


@pytest.mark.slow(reason="trains the page's circuit and runs its block in a fresh process")
def test_the_microcircuit_page_model_loads_and_its_recording_example_runs(tmp_path):
    """docs/howto/microcircuit.md: its model file is a valid circuit under the euler scheme,
    and its Python block reads the recording of a short run of that file."""
    import subprocess
    import sys

    from dendrisim.builder import load_experiment

    page = DOCS / "howto" / "microcircuit.md"
    (spec,) = blocks(page, "yaml")
    model = tmp_path / "my_circuit.yaml"
    model.write_text(spec + "\n")
    exp = load_experiment(model)
    assert {p.type for p in exp.config.populations.values()} == {"input", "pyramidal", "interneuron"}
    assert [p.teacher for p in exp.config.training.phases] == [False, True]
    run = tmp_path / "recordings" / "microcircuit_digits"
    made = subprocess.run([sys.executable, str(REPO / "scripts" / "simulate.py"), str(model), "--out", str(run),
                           "--set", "training.max_steps_per_epoch=3", "--set", "training.phases.0.epochs=2",
                           "--set", "training.phases.1.epochs=1", "--set", "recording.every=2"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert made.returncode == 0, made.stderr[-2000:]
    (code,) = blocks(page, "python")
    ran = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120,
                         env={**__import__("os").environ, "PYTHONPATH": str(REPO)})
    assert ran.returncode == 0, ran.stderr[-2000:]
    assert ran.stdout.startswith("self_predicting ")
