"""The package's layering, read from its source with ``ast``: no import cycles (imports
inside functions and under ``TYPE_CHECKING`` included), and config knows no rule or task."""
import ast
from pathlib import Path

import networkx as nx

PACKAGE = Path(__file__).resolve().parent.parent / "dendrisim"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path, modules: set[str]) -> set[str]:
    """The package's modules that ``path`` imports anywhere in its body; importing ``a.b.c``
    also runs the ``__init__`` of ``a.b``, unless ``a.b`` is a package of ``path`` itself
    (the root package's ``__init__`` is left out of the graph: it gathers the public names)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        targets = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            targets = [base] + [f"{base}.{a.name}" for a in node.names]
        ancestors = {".".join(name.split(".")[:i]) for i in range(1, len(name.split(".")))}
        for target in targets:
            parts = target.split(".")
            for i in range(2, len(parts) + 1):  # every package on the way, then the module
                candidate = ".".join(parts[:i])
                # a module's own packages are initialised before it runs: no edge to them
                if candidate in modules and candidate != name and candidate not in ancestors:
                    found.add(candidate)
    return found


def graph() -> nx.DiGraph:
    files = sorted(PACKAGE.rglob("*.py"))
    modules = {module_name(f) for f in files}
    g = nx.DiGraph()
    for f in files:
        if f == PACKAGE / "__init__.py":
            continue
        g.add_node(module_name(f))
        g.add_edges_from((module_name(f), m) for m in imports(f, modules) if m != "dendrisim")
    return g


def test_the_package_has_no_import_cycles():
    cycles = [c for c in nx.simple_cycles(graph()) if len(c) > 1]
    shortest = sorted(cycles, key=len)[:5]
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(c + [c[0]]) for c in shortest)


def test_config_is_a_pure_layer():
    g = graph()
    for module in [m for m in g if m.startswith("dendrisim.config")]:
        reached = nx.descendants(g, module)
        assert not {m for m in reached if m.startswith(("dendrisim.plasticity", "dendrisim.tasks"))}, module


def test_the_checker_sees_imports_inside_functions_and_type_checking(tmp_path):
    """A guard against a vacuous test: the three ways the package imported in a loop before."""
    source = ("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from ..network import Network\n"
              "def f():\n    from ..tasks import TASKS\n    from .. import functional as Fn\n    from .base import RULES\n")
    path = PACKAGE / "plasticity" / "_probe_.py"
    try:
        path.write_text(source)
        found = imports(path, {"dendrisim.network", "dendrisim.tasks", "dendrisim.plasticity", "dendrisim.functional",
                               "dendrisim.plasticity.base"})
    finally:
        path.unlink()
    # its own package (dendrisim.plasticity) is initialised before it runs: no edge to it
    assert found == {"dendrisim.network", "dendrisim.tasks", "dendrisim.functional", "dendrisim.plasticity.base"}
