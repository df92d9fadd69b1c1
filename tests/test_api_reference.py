"""docs/reference/api.md covers the population objects, the losses and the settling schemes
with their Rule protocol; its docstrings are reStructuredText that Sphinx renders as written
(no napoleon, which read "word (x: y)" in attribute docstrings as a type); the site is built
with every cross-reference checked (.ci/docs.sh: -n)."""
import ast
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
API = REPO / "docs" / "reference" / "api.md"


@pytest.mark.parametrize("directive", [
    "automodule:: dendrisim.neurons", "autoclass:: dendrisim.neurons.PyramidalPopulation",
    "autoclass:: dendrisim.neurons.InputPopulation", "autoclass:: dendrisim.neurons.InterneuronPopulation",
    "autoclass:: dendrisim.neurons.Compartments", "autoclass:: dendrisim.neurons.NeuronModel", "automodule:: dendrisim.losses",
    "automodule:: dendrisim.settling", "autoclass:: dendrisim.settling.Rule",
    "autoclass:: dendrisim.settling.SettlingScheme", "autoclass:: dendrisim.projections.Projection",
    "autoclass:: dendrisim.recording.Recording",
])
def test_the_api_page_documents(directive):
    assert re.search(rf"^\.\. {re.escape(directive)}(\(\))?$", API.read_text(), flags=re.M)  # Rule(): no *args


def test_trainer_is_documented_without_its_private_base():
    """``dendrisim.Trainer`` subclasses the training loop's class of the same name: shown as
    "Bases: Trainer", a reader could not tell the two apart."""
    text = API.read_text()
    block = text[text.index(".. autoclass:: dendrisim.Trainer"):].split("\n\n")[0]
    assert ":no-show-inheritance:" in block


def test_the_public_objects_documented_exist():
    import importlib

    targets = re.findall(r"\.\. auto(?:class|function|exception|module|property|method):: ([\w.]+)", API.read_text())
    assert len(targets) >= 20 and "dendrisim.Trainer" in targets and "dendrisim.export_nwb" in targets
    for target in targets:
        parts = target.split(".")
        for cut in range(len(parts), 0, -1):
            try:
                obj = importlib.import_module(".".join(parts[:cut]))
            except ModuleNotFoundError:
                continue
            for name in parts[cut:]:
                obj = getattr(obj, name)  # an AttributeError names what the page documents but the code lacks
            assert obj is not None, target
            break
        else:
            pytest.fail(target)


def google_or_numpy_sections(path: Path) -> list[str]:
    """Docstring lines of ``path`` that only napoleon would understand."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            doc = ast.get_docstring(node) or ""
            found += [line for line in doc.splitlines()
                      if re.fullmatch(r"\s*(Args|Arguments|Parameters|Returns|Raises|Yields|Attributes|Examples?)"
                                      r":?\s*", line)]
    return found


def test_docstrings_are_plain_restructuredtext_for_autodoc_without_napoleon():
    conf = (REPO / "docs" / "conf.py").read_text()
    assert "sphinx.ext.napoleon" not in conf
    assert "nitpicky = True" in conf and "nitpick_ignore" in conf
    offenders = {str(p.relative_to(REPO)): lines for p in sorted((REPO / "dendrisim").rglob("*.py"))
                 if (lines := google_or_numpy_sections(p))}
    assert not offenders, offenders
