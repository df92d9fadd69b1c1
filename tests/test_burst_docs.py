"""The burst-dependent learning docs stay true: the how-to page shows the shipped model as it
is, its options table and the key reference carry the burst neuron's options with the code's
defaults and docs, its command line loads, and its h5py block reads a real recording."""
import dataclasses
import re
import shlex
import subprocess
import sys
from pathlib import Path

import yaml

from dendrisim.builder import load_experiment
from dendrisim.neurons import NEURONS
from dendrisim.reference import reference
from test_readme import python_blocks

REPO = Path(__file__).resolve().parent.parent
PAGE = REPO / "docs" / "howto" / "burst.md"
MODEL = REPO / "models" / "burstccn_digits.yaml"


def burst_options() -> list[dataclasses.Field]:
    return list(dataclasses.fields(NEURONS.get("burst").Options))


def test_the_page_is_titled_and_linked_from_the_howto_index():
    assert PAGE.read_text().startswith("# Burst-dependent learning\n")
    assert "\nburst\n" in (REPO / "docs" / "howto" / "index.md").read_text()


def test_the_key_reference_lists_the_burst_neurons_options_with_their_docs():
    text = reference()
    assert "**populations.NAME (type: burst)**" in text
    section = text.split("**populations.NAME (type: burst)**")[1].split("\n\n**")[0]
    for f in burst_options():
        doc = f.metadata["doc"].replace("|", "\\|")
        assert f"| `{f.name}` |" in section and doc in section, f.name
    assert "| `reads` |" in text


def test_the_page_shows_the_shipped_model_as_it_is():
    (block,) = python_blocks(PAGE.read_text(), "yaml")
    assert yaml.safe_load(block) == yaml.safe_load(MODEL.read_text())


def table_rows(text: str) -> dict[str, list[str]]:
    """The cells of every Markdown table row whose first cell is a `key`, by key."""
    return {m.group(1): [c.strip() for c in m.group(2).split("|")]
            for m in re.finditer(r"^\| `(\w+)` \|(.*)\|$", text, flags=re.M)}


def test_the_pages_options_tables_have_the_codes_defaults():
    from dendrisim.plasticity import RULES

    rows = table_rows(PAGE.read_text())
    for f in burst_options():  # | key | default | meaning |
        default = str(f.default).lower() if isinstance(f.default, bool) else str(f.default)
        assert rows[f.name][0] == default, f.name
    for f in dataclasses.fields(RULES.get("burstccn").Options):  # | key | rules | default | meaning |
        if f.name in ("feedback", "feedback_scale", "cancel"):
            assert rows[f.name][1] == str(f.default), f.name


def test_the_pages_learned_cancellation_command_loads(tmp_path):
    """The `dendrisim run ... --set` line of the page names keys and projections that exist."""
    text = PAGE.read_text()
    command = next(b for b in python_blocks(text, "text") if "plasticity.cancel=given" in b)
    args = shlex.split(command.replace("\\\n", " "))
    assert args[:3] == ["dendrisim", "run", "burstccn_digits"]
    overrides = [args[i + 1] for i, a in enumerate(args) if a == "--set"]
    exp = load_experiment(MODEL, overrides)
    q = next(p for p in exp.config.projections if p.name == "out:event->h1")
    assert q.learnable and q.lr_scale == 0.1
    assert [p.teacher for p in exp.config.training.phases] == [False, True]


def test_the_pages_recording_block_reads_a_short_run(tmp_path):
    run = tmp_path / "recordings" / "burstccn_digits"
    made = subprocess.run([sys.executable, str(REPO / "scripts" / "simulate.py"), str(MODEL), "--out", str(run),
                           "--epochs", "2", "--set", "recording.every=20"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert made.returncode == 0, made.stderr[-2000:]
    (code,) = python_blocks(PAGE.read_text(), "python")
    ran = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120,
                         env={**__import__("os").environ, "PYTHONPATH": str(REPO)})
    assert ran.returncode == 0, ran.stderr[-2000:]
    assert ran.stdout.startswith("h1: mean |p - p_b| ") and "nan" not in ran.stdout
