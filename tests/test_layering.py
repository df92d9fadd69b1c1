"""The package's layering, read from its source with ``ast`` (imports inside functions and
under ``TYPE_CHECKING`` included, the package root's ``__init__`` too):

- no import cycles;
- config knows no rule, task or settling scheme;
- the model (the network, its populations and projections) knows no rule, no settling scheme
  and nothing of files, recordings or the trainer;
- rules know no loop: no module of ``dendrisim.plasticity`` reaches a settling scheme, the
  trainer, the recorder, the CLI or the API."""
import ast
from pathlib import Path
from typing import Optional

import networkx as nx
import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "dendrisim"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path, modules: set[str], *, name: Optional[str] = None) -> set[str]:
    """The package's modules that ``path`` imports anywhere in its body. ``name``: the module
    ``path`` stands for (by default its place in the package; give it for a file elsewhere,
    e.g. ``dendrisim.plasticity._probe_`` for a probe in a temporary folder).

    Importing ``a.b.c`` also runs the ``__init__`` of ``a.b``, unless ``a.b`` is a package of
    the importer itself (its packages are initialised before it runs); but importing a *name*
    that a package's ``__init__`` defines (``from .. import __version__``) depends on that
    ``__init__``'s body, the importer's own packages included: the package root gathers
    every public name, so such an import closes a loop through it."""
    name = name or module_name(path)
    is_package = path.name == "__init__.py"
    package = name if is_package else name.rpartition(".")[0]
    ancestors = {".".join(name.split(".")[:i]) for i in range(1, len(name.split(".")))}
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        targets, names_of = [], None
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            targets = [base] + [f"{base}.{a.name}" for a in node.names]
            names_of = base
        for target in targets:
            parts = target.split(".")
            for i in range(2, len(parts) + 1):  # every package on the way, then the module
                candidate = ".".join(parts[:i])
                # a module's own packages are initialised before it runs: no edge to them
                if candidate in modules and candidate != name and candidate not in ancestors:
                    found.add(candidate)
        if names_of in modules and names_of != name and any(f"{names_of}.{a.name}" not in modules for a in node.names):
            found.add(names_of)  # a name from the package's own __init__ body
    return found


def graph() -> nx.DiGraph:
    files = sorted(PACKAGE.rglob("*.py"))
    modules = {module_name(f) for f in files}
    g = nx.DiGraph()
    for f in files:
        g.add_node(module_name(f))
        g.add_edges_from((module_name(f), m) for m in imports(f, modules))
    return g


def reached(g: nx.DiGraph, roots: list[str], forbidden: tuple[str, ...]) -> dict[str, list[str]]:
    """For each module in ``roots``: the forbidden modules it reaches, each with the path
    of imports that reaches it (so a failure names the import to cut)."""
    found = {}
    for root in roots:
        paths = nx.single_source_shortest_path(g, root)
        bad = sorted(m for m in paths if m != root and (m in forbidden or m.startswith(tuple(f + "." for f in forbidden))))
        if bad:
            found[root] = [" -> ".join(paths[m]) for m in bad]
    return found


def shortest(found: dict[str, list[str]], n: int = 5) -> str:
    return "; ".join(sorted({p for paths in found.values() for p in paths}, key=lambda p: (p.count("->"), p))[:n])


def test_the_package_root_is_in_the_graph():
    g = graph()
    assert "dendrisim" in g and "dendrisim.api" in g.successors("dendrisim")


def test_the_package_has_no_import_cycles():
    cycles = [c for c in nx.simple_cycles(graph()) if len(c) > 1]
    shortest = sorted(cycles, key=len)[:5]
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(c + [c[0]]) for c in shortest)


def test_config_is_a_pure_layer():
    """Config knows no rule, task or settling scheme (``dynamics.mode`` is checked against the
    registered schemes by the builder)."""
    g = graph()
    config = [m for m in g if m == "dendrisim.config" or m.startswith("dendrisim.config.")]
    bad = reached(g, config, ("dendrisim.plasticity", "dendrisim.tasks", "dendrisim.settling"))
    assert not bad, "config reaches (shortest first): " + shortest(bad)


#: what the model may not know: rules, settling schemes, and the files, recordings and loop above it
ABOVE_THE_MODEL = ("dendrisim.plasticity", "dendrisim.settling", "dendrisim.recording", "dendrisim.training",
                   "dendrisim.rundir", "dendrisim.api", "dendrisim.cli", "dendrisim.commands", "dendrisim.builder",
                   "dendrisim.results", "dendrisim.tuning", "dendrisim.compare", "dendrisim.alignment",
                   "dendrisim.distributed", "dendrisim.memory")
#: what a rule may not know: the loop (the settling schemes run it, the trainer and the tools above them)
THE_LOOP = ("dendrisim.settling", "dendrisim.training", "dendrisim.recording", "dendrisim.cli", "dendrisim.api",
            "dendrisim.commands", "dendrisim.builder", "dendrisim.rundir", "dendrisim.tuning", "dendrisim.compare")


def test_the_model_knows_no_rule_scheme_file_or_trainer():
    """The network, its projections and its neuron models (``dendrisim.neurons``, one file each)
    know no rule, no settling scheme, no file and no loop."""
    g = graph()
    neurons = [m for m in g if m == "dendrisim.neurons" or m.startswith("dendrisim.neurons.")]
    model = ["dendrisim.network", "dendrisim.populations", "dendrisim.projections", "dendrisim.state", *neurons]
    assert all(m in g for m in model) and len(neurons) >= 4
    bad = reached(g, model, ABOVE_THE_MODEL)
    assert not bad, "the model reaches (shortest first): " + shortest(bad)


def test_rules_know_no_loop():
    g = graph()
    rules = [m for m in g if m == "dendrisim.plasticity" or m.startswith("dendrisim.plasticity.")]
    assert len(rules) > 3
    bad = reached(g, rules, THE_LOOP)
    assert not bad, "rules reach (shortest first): " + shortest(bad)


PROBE = ("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from ..network import Network\n"
         "def f():\n    from ..tasks import TASKS\n    from .. import functional as Fn\n    from .base import RULES\n")


def test_the_checker_sees_imports_inside_functions_and_type_checking(tmp_path):
    """A guard against a vacuous test: the three ways the package imported in a loop before.
    The probe is a file outside the package that stands for ``dendrisim.plasticity._probe_``."""
    path = tmp_path / "_probe_.py"
    path.write_text(PROBE)
    found = imports(path, {"dendrisim.network", "dendrisim.tasks", "dendrisim.plasticity", "dendrisim.functional",
                           "dendrisim.plasticity.base"}, name="dendrisim.plasticity._probe_")
    # its own package (dendrisim.plasticity) is initialised before it runs: no edge to it
    assert found == {"dendrisim.network", "dendrisim.tasks", "dendrisim.functional", "dendrisim.plasticity.base"}
    assert not (PACKAGE / "plasticity" / "_probe_.py").exists()


@pytest.mark.parametrize("source, expected", [
    ("def f():\n    from .. import __version__\n", {"dendrisim"}),  # a name of the root's __init__
    ("from .. import recording\n", set()),                        # its own package: initialised before it
    ("from ..recording import reader\n", {"dendrisim.recording.reader"}),
    ("from . import recorder\n", {"dendrisim.recording.recorder"}),  # a sibling: no edge to the package
    ("from . import SCHEMA\n", {"dendrisim.recording"}),           # a name of its own package's __init__
    ("import dendrisim.recording.reader\n", {"dendrisim.recording.reader"}),
])
def test_the_checker_sees_names_taken_from_a_package_root(tmp_path, source, expected):
    """``from .. import __version__`` reads the root's ``__init__``, which imports everything:
    the edge that hid a cycle through the package root."""
    path = tmp_path / "_probe_.py"
    path.write_text(source)
    modules = {"dendrisim", "dendrisim.recording", "dendrisim.recording.recorder", "dendrisim.recording.reader"}
    assert imports(path, modules, name="dendrisim.recording._probe_") == expected

