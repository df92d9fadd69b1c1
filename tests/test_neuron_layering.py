"""Neuron models are asked what they offer, never their names (issue 27): outside the neuron
models' own files no module of dendrisim/ compares a population's type to a name, and the
neuron models import no rule, scheme or file-handling module."""
import ast
import re
from pathlib import Path

import dendrisim

PACKAGE = Path(dendrisim.__file__).resolve().parent
#: a comparison of something with a built-in neuron model's name, or of a ``.type``/``["type"]`` with anything
NAME_COMPARED = re.compile(r"""(==|!=|\bin)\s*\(?\s*["'](pyramidal|interneuron|input)["']"""
                           r"""|["'](pyramidal|interneuron|input)["']\s*(==|!=|\bin\b)""")


def _type_comparisons(tree: ast.AST) -> list[int]:
    """Lines comparing ``X.type`` or ``X.get("type")``/``X["type"]`` of a population with a name."""
    lines = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Compare):
            continue
        sides = [node.left, *node.comparators]
        named = any(isinstance(s, ast.Constant) and s.value in ("input", "pyramidal", "interneuron") for s in sides)
        named |= any(isinstance(s, (ast.Tuple, ast.Set, ast.List)) and any(
            isinstance(e, ast.Constant) and e.value in ("input", "pyramidal", "interneuron") for e in s.elts)
            for s in sides)
        if named:
            lines.append(node.lineno)
    return lines


def test_no_module_outside_the_neuron_models_compares_a_population_to_a_type_name():
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE)
        if rel.parts[0] == "neurons":
            continue
        text = path.read_text()
        for line in _type_comparisons(ast.parse(text)):
            offenders.append(f"{rel}:{line}: {text.splitlines()[line - 1].strip()}")
        offenders += [f"{rel}: {m.group(0)}" for m in NAME_COMPARED.finditer(text)
                      if f"{rel}:" not in " ".join(offenders)]
    assert not offenders, "ask the neuron model what it offers instead:\n" + "\n".join(offenders)


def test_the_check_finds_a_comparison_it_is_meant_to_refuse():
    tree = ast.parse('if pops[n].type == "interneuron":\n    pass\nok = kind in ("pyramidal", "x")\n')
    assert _type_comparisons(tree) == [1, 3]
    assert NAME_COMPARED.search('x = p.type != "pyramidal"')


def test_neuron_models_know_no_rule_scheme_or_file():
    forbidden = ("plasticity", "settling", "training", "recording", "tasks", "builder", "plugins", "rundir",
                 "cli", "h5py", "yaml")
    for path in sorted((PACKAGE / "neurons").glob("*.py")):
        tree = ast.parse(path.read_text())
        imported = [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
        imported += [("." * n.level) + (n.module or "") for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
        bad = [m for m in imported if any(part in forbidden for part in m.lstrip(".").split("."))]
        assert not bad, f"{path.name} imports {bad}"
