"""The ``dendrisim`` command: one entry point for everything ``scripts/`` does.

    dendrisim run [MODEL] [options]      train a model file or bundled model (scripts/simulate.py)
    dendrisim check [MODEL]              validate it and print what it builds (scripts/validate_model.py)
    dendrisim compare MODEL --out DIR    several rules and seeds, a report (scripts/compare_rules.py)
    dendrisim results                    the README's comparison tables (scripts/results.py)
    dendrisim plot RUN_DIR               figures from a recording (scripts/plot_recording.py)
    dendrisim export RUN_DIR --nwb F     the recording as an NWB file (scripts/export_nwb.py)
    dendrisim sample RUN_DIR             text from a trained char-level model (scripts/sample.py)
    dendrisim bench                      speed against autograd and the arithmetic floor (scripts/bench.py)
    dendrisim rules | models             what is registered and what ships
    dendrisim --version

Each subcommand is the same ``main(argv)`` that its script in ``scripts/`` calls, imported
only when it runs. :func:`cli_reference` writes the Markdown of ``docs/reference/cli.md``
from the parsers themselves (``python -m dendrisim.commands --update docs/reference/cli.md``).
"""
from __future__ import annotations

import argparse
import dataclasses
import importlib
import io
import os
import re
import shutil
import sys
import textwrap
from contextlib import contextmanager, redirect_stdout
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional, Sequence

from .errors import DendrisimError
from .paths import forget, path_arg, user_error


@dataclass(frozen=True)
class Command:
    module: str  #: the module with ``main(argv, *, prog)`` (and ``parser(prog)``, except results)
    summary: str
    script: str  #: its script in the repository's ``scripts/`` (or "" for none)
    extra: tuple[str, ...] = ()  #: arguments appended to the user's (check is run --check)


COMMANDS: dict[str, Command] = {
    "run": Command("dendrisim.cli", "train and evaluate a model file or bundled model", "simulate.py"),
    "check": Command("dendrisim.cli", "validate a model file and print what it builds, without data or training",
                     "validate_model.py", ("--check",)),
    "compare": Command("dendrisim.compare", "train a model under several rules and seeds, and report",
                       "compare_rules.py"),
    "results": Command("dendrisim.results", "run (or collect) the comparisons behind the results tables",
                       "results.py"),
    "plot": Command("dendrisim.plot", "write figures (PNG, PDF, SVG) from a recording", "plot_recording.py"),
    "export": Command("dendrisim.export", "write a run's recording as a Neurodata Without Borders (NWB) file",
                      "export_nwb.py"),
    "sample": Command("dendrisim.sample", "generate text from a trained char-level language model", "sample.py"),
    "bench": Command("dendrisim.bench", "time every rule's step against autograd and the arithmetic floor",
                     "bench.py"),
    "rules": Command("dendrisim.commands", "list every registered plasticity rule with its options and tunables", ""),
    "models": Command("dendrisim.commands", "list the bundled model files and the data each needs", ""),
    "neurons": Command("dendrisim.commands", "list every registered neuron model with its compartments, offers and "
                                             "options", ""),
}


def version() -> str:
    from ._version import __version__

    return __version__


def top_parser() -> argparse.ArgumentParser:
    width = max(map(len, COMMANDS))
    p = argparse.ArgumentParser(
        prog="dendrisim", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Pyramidal-neuron networks trained by Dendritic Localized Learning and rival plasticity rules.",
        epilog="commands:\n" + "\n".join(f"  {name:<{width}}  {c.summary}" for name, c in COMMANDS.items())
               + "\n\n'dendrisim COMMAND --help' describes each one's options.")
    p.add_argument("--version", action="version", version=f"dendrisim {version()}",
                   help="print dendrisim's version and exit")
    p.add_argument("command", choices=list(COMMANDS), metavar="COMMAND", help="what to do (see the list below)")
    p.add_argument("args", nargs=argparse.REMAINDER, metavar="...", help="the command's own arguments")
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0].startswith("-") or argv[0] not in COMMANDS:
        top_parser().parse_args(argv or ["--help"])  # help, version and unknown commands end here
        return 2
    name, rest = argv[0], argv[1:]
    prog = f"dendrisim {name}"
    forget()
    try:
        if name == "rules":
            return rules_main(rest, prog=prog)
        if name == "models":
            return models_main(rest, prog=prog)
        if name == "neurons":
            return neurons_main(rest, prog=prog)
        command = COMMANDS[name]
        try:
            module = importlib.import_module(command.module)
        except ModuleNotFoundError as err:
            if err.name != command.module:
                raise
            print(f"error: dendrisim {name} needs {command.module}, which this installation lacks", file=sys.stderr)
            return 2
        if name == "results":  # its main takes argv only; its parser names itself after sys.argv[0]
            with _program_name(prog):
                return module.main([*rest, *command.extra])
        return module.main([*rest, *command.extra], prog=prog)
    except BrokenPipeError:  # the reader went away (``dendrisim rules | head``): stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # so the exit flush cannot fail again
        return 0
    except (DendrisimError, OSError) as err:  # an OSError only on a path the user gave (user_error)
        print(f"error: {user_error(err)}", file=sys.stderr)
        return 2


def command_parser(name: str) -> Optional[argparse.ArgumentParser]:
    """The parser of subcommand ``name`` as ``dendrisim NAME`` shows it (None when its module
    has no ``parser`` function or is not in this build)."""
    if name == "rules":
        return rules_parser(prog="dendrisim rules")
    if name == "models":
        return models_parser(prog="dendrisim models")
    if name == "neurons":
        return neurons_parser(prog="dendrisim neurons")
    try:
        module = importlib.import_module(COMMANDS[name].module)
    except ModuleNotFoundError:
        return None
    make = getattr(module, "parser", None)
    return make(prog=f"dendrisim {name}") if make is not None else None


# ------------------------------------------------------------------ dendrisim rules
def listing_parser(prog: str, description: str, metavar: str, what: str, loads: str) -> argparse.ArgumentParser:
    """The parser of a listing command (``dendrisim rules``, ``dendrisim neurons``): names to
    list, and ``--plugin`` files to load first."""
    p = argparse.ArgumentParser(prog=prog, description=description)
    p.add_argument("names", nargs="*", metavar=metavar, help=f"only these {what} (default: all)")
    p.add_argument("--plugin", dest="plugins", action="append", default=[], metavar="PATH.py",
                   type=path_arg("--plugin"), help=f"load {loads} from a Python file first (repeatable)")
    return p


def rules_parser(prog: str = "dendrisim rules") -> argparse.ArgumentParser:
    return listing_parser(prog, "Every registered plasticity rule (built-in, --plugin files and installed entry "
                          "points) with its options, their defaults, and the tunables that 'dendrisim compare "
                          "--tune' searches.", "RULE", "rules", "plasticity rules")


_ROLE = re.compile(r":[a-z]+(?::[a-z]+)?:`([^`]*)`")  # :class:`x`, :py:meth:`x`, :math:`x`
_LITERAL = re.compile(r"``(.+?)``|`([^`]+)`")


def _role_text(match: re.Match) -> str:
    text = match.group(1)
    label = re.fullmatch(r"(.*?)\s*<[^>]*>", text, flags=re.S)  # :doc:`the label <target>`
    if label:
        return label.group(1)
    return text[1:].rsplit(".", 1)[-1] if text.startswith("~") else text  # ~a.b.C shows C


def plain_text(rst: str) -> str:
    """A docstring's reStructuredText as plain text on one line: roles become their text
    (:class:`~a.B` -> B, :math:`x^2` -> x^2), ``code`` and `x` lose their quotes, and
    line breaks and indentation collapse into single spaces."""
    text = _ROLE.sub(_role_text, rst)
    text = _LITERAL.sub(lambda m: m.group(1) or m.group(2), text)
    return " ".join(text.split())


def docstring_summary(doc: Optional[str]) -> str:
    """The first paragraph of a docstring as plain text; one that ends with a colon (it
    introduces an equation or a list that a terminal cannot show) ends with a full stop."""
    first = plain_text((doc or "").strip().split("\n\n")[0])
    return first[:-1] + "." if first.endswith(":") else first


def _width() -> int:
    return max(60, min(100, shutil.get_terminal_size((100, 24)).columns))


def _fill(text: str, *, indent: int, hang: Optional[int] = None, keep: Sequence[str] = ()) -> str:
    """``text`` wrapped to the terminal (at most 100 columns), the first line indented by
    ``indent`` spaces, the others by ``hang``; no line break inside any string of ``keep``."""
    for item in keep:
        text = text.replace(item, item.replace(" ", "\u00a0"))
    lines = textwrap.wrap(text, width=_width(), initial_indent=" " * indent,
                          subsequent_indent=" " * (indent if hang is None else hang), break_long_words=False,
                          break_on_hyphens=False)
    return "\n".join(lines).replace("\u00a0", " ")


def rule_facts(name: str) -> dict:
    """What ``dendrisim rules`` says of rule ``name``, as plain data (JSON-ready): origin,
    summary, settling schemes, options with their defaults and docs, tunables. Asks the live
    registry (imports PyTorch); :func:`format_rule` lays it out."""
    from .settling import schemes_of
    from .plasticity import RULES
    from .plugins import ORIGIN
    from .reference import default_text

    cls = RULES.get(name)
    fields = [f for f in dataclasses.fields(cls.Options) if f.name != "rule"]
    tunables = [f"plasticity.{key} {spec[0]:g}..{spec[1]:g}" + (f" ({spec[2]})" if len(spec) > 2 else "")
                for key, spec in dict(cls.tunables).items()]
    return {"name": name, "origin": ORIGIN.get(name, cls.__module__), "summary": docstring_summary(cls.__doc__),
            "schemes": schemes_of(cls), "per_projection": bool(cls.per_projection),
            "options": [[f.name, default_text(f), plain_text(f.metadata.get("doc", ""))] for f in fields],
            "tunables": ["optimizer.lr (file's lr /10..x10, log)", *tunables]}


def format_rule(facts: dict) -> str:
    """A rule's entry in ``dendrisim rules``, in plain text wrapped to the terminal (no PyTorch)."""
    lines = [f"{facts['name']}  ({facts['origin']})", _fill(facts["summary"] or "(no docstring)", indent=2),
             _fill(f"settling schemes: {', '.join(facts['schemes'])}; "
                   f"{'per projection or network-wide' if facts['per_projection'] else 'network-wide only'}", indent=2),
             "  options (plasticity.KEY):"]
    width = max((len(option[0]) for option in facts["options"]), default=0)
    for key, default, doc in facts["options"]:
        entry = f"{key:<{width}}  default {default}: {doc}"
        lines.append(_fill(entry.rstrip(": "), indent=4, hang=6 + width, keep=[f"default {default}"]))
    items = facts["tunables"]
    lines.append(_fill("tunables (dendrisim compare --tune): " + ", ".join(items), indent=2, hang=4,
                       keep=["(dendrisim compare --tune)", *items]))
    return "\n".join(lines)


def describe_rule(name: str) -> str:
    """A rule's entry in ``dendrisim rules``, in plain text wrapped to the terminal: origin,
    summary, settling schemes, options, tunables."""
    return format_rule(rule_facts(name))


#: the built-in rules' :func:`rule_facts` and neuron models' :func:`neuron_facts`, written by
#: ``python -m dendrisim.commands --update-rules`` (tests/test_startup.py holds it to the live
#: registry), so that listing them needs no PyTorch
CATALOGUE = Path(__file__).resolve().parent / "rules_catalogue.json"


def rules_catalogue() -> dict[str, dict]:
    """Every built-in rule's facts, from the registry itself (imports PyTorch)."""
    from .plugins import BUILTIN

    return {name: rule_facts(name) for name in sorted(BUILTIN)}


def _catalogued(names: Sequence[str]) -> Optional[list[str]]:
    """The entries of ``names`` (all built-in rules when empty) from the shipped catalogue, or
    None where it cannot answer: an installed package adds rules through an entry point, a
    name is not in it (the registry then names the error), or the file is missing or damaged."""
    import json
    from importlib.metadata import entry_points

    from .registry import ENTRY_POINT_GROUP

    if entry_points(group=ENTRY_POINT_GROUP):
        return None
    try:
        catalogue = json.loads(CATALOGUE.read_text())
        if catalogue.get("version") != version() or not isinstance(catalogue.get("rules"), dict):
            return None
        rules = catalogue["rules"]
        return [format_rule(rules[name]) for name in (names or sorted(rules))]
    except (OSError, ValueError, KeyError, AttributeError, TypeError):
        return None


# ------------------------------------------------------------------ dendrisim neurons
def neurons_parser(prog: str = "dendrisim neurons") -> argparse.ArgumentParser:
    return listing_parser(prog, "Every registered neuron model (built-in and --plugin files): what a population of "
                          "it has, what it offers to rules and projections, and its options (keys of the "
                          "population's block in a model file).", "MODEL", "neuron models", "neuron models (and rules)")


#: what a neuron model's class attributes say, as ``dendrisim neurons`` words it
_OFFERS = (("clamped", "clamped to the data (the input)"), ("offers_output", "can be the output"),
           ("offers_apical", "an apical compartment for the rule's feedback and apical projections"),
           ("takes_nudging", "a soma nudged one to one by the population it predicts"),
           ("offers_nudging", "can nudge an interneuron's soma"), ("spatial", "feature maps (channels, conv2d)"))


def neuron_facts(name: str) -> dict:
    """What ``dendrisim neurons`` says of neuron model ``name``, as plain data (JSON-ready).
    Asks the live registry (imports PyTorch); :func:`format_neuron` lays it out."""
    from .neurons import NEURONS
    from .plugins import NEURON_ORIGIN
    from .reference import default_text

    cls = NEURONS.get(name)
    return {"name": name, "origin": NEURON_ORIGIN.get(name, cls.__module__),
            "summary": cls.summary or docstring_summary(cls.__doc__),
            "variables": [[var, plain_text(doc)] for var, doc in cls.variables.items()],
            "offers": [text for attribute, text in _OFFERS if getattr(cls, attribute)],
            "constants": list(cls.constants),
            "options": [[f.metadata.get("key", f.name), default_text(f), plain_text(f.metadata.get("doc", ""))]
                        for f in dataclasses.fields(cls.Options)]}  # the key a file writes (config.parse.yaml_key)


def format_neuron(facts: dict) -> str:
    """A neuron model's entry in ``dendrisim neurons``, in plain text (no PyTorch)."""
    lines = [f"{facts['name']}  ({facts['origin']})", _fill(facts["summary"] or "(no docstring)", indent=2),
             "  variables (recording.populations):"]
    width = max((len(v[0]) for v in facts["variables"]), default=0)
    lines += [_fill(f"{var:<{width}}  {doc}", indent=4, hang=6 + width) for var, doc in facts["variables"]]
    lines.append(_fill("offers: " + ("; ".join(facts["offers"]) or "nothing to rules or projections"), indent=2, hang=4))
    if facts["constants"]:
        lines.append(_fill("simulated constants (dynamics): " + ", ".join(facts["constants"]), indent=2, hang=4))
    if facts["options"]:
        lines.append("  options (populations.NAME.KEY):")
        width = max(len(o[0]) for o in facts["options"])
        lines += [_fill(f"{key:<{width}}  default {default}: {doc}".rstrip(": "), indent=4, hang=6 + width,
                        keep=[f"default {default}"]) for key, default, doc in facts["options"]]
    else:
        lines.append("  options: none beyond type, size, shape, channels, activation")
    return "\n".join(lines)


def neurons_catalogue() -> dict[str, dict]:
    """Every built-in neuron model's facts, from the registry itself (imports PyTorch)."""
    from .neurons import BUILTIN_NEURONS

    return {name: neuron_facts(name) for name in sorted(BUILTIN_NEURONS)}


def _catalogue_part(part: str) -> Optional[dict]:
    """One part (``rules``, ``neurons``) of the shipped catalogue, or None where it is missing,
    damaged or of another version."""
    import json

    try:
        catalogue = json.loads(CATALOGUE.read_text())
    except (OSError, ValueError):
        return None
    entries = catalogue.get(part) if isinstance(catalogue, dict) else None
    return entries if catalogue.get("version") == version() and isinstance(entries, dict) else None


def neuron_variables(kind: str) -> tuple[str, ...]:
    """The variables neuron model ``kind`` declares: from the shipped catalogue for a built-in
    model (no PyTorch), from the live registry for one registered in this process, and empty
    for a model not known here (a recording made with a plugin that is not loaded)."""
    built_in = _catalogue_part("neurons") or {}
    if kind in built_in:
        return tuple(var for var, _ in built_in[kind]["variables"])
    neurons = sys.modules.get("dendrisim.neurons.base")
    if neurons is not None and kind in neurons.NEURONS:
        return tuple(neurons.NEURONS.get(kind).variables)
    return ()


def neurons_main(argv: Optional[Sequence[str]] = None, *, prog: str = "dendrisim neurons") -> int:
    args = neurons_parser(prog).parse_args(argv)
    args.names = list(dict.fromkeys(args.names))  # a model named twice is listed once
    built_in = None if args.plugins else _catalogue_part("neurons")
    if built_in is not None and all(name in built_in for name in args.names):
        entries = [format_neuron(built_in[name]) for name in (args.names or sorted(built_in))]
    else:  # plugins or an unknown name: ask the live registry
        from .errors import ConfigError, brief
        from .neurons import NEURONS
        from .plugins import load_plugins

        load_plugins(args.plugins)
        for name in args.names:
            if name not in NEURONS:  # the error lists the registered ones, and where others come from
                raise ConfigError(f"{brief(name)} is not a known neuron model; choose one of "
                                  f"{', '.join(NEURONS.names())}, or load the plugin file that registers it with "
                                  "--plugin FILE.py")
        entries = [format_neuron(neuron_facts(name)) for name in (args.names or NEURONS.names())]
    print("\n\n".join(entries))
    return 0


def rules_main(argv: Optional[Sequence[str]] = None, *, prog: str = "dendrisim rules") -> int:
    args = rules_parser(prog).parse_args(argv)
    entries = None if args.plugins else _catalogued(args.names)
    if entries is None:  # plugins, entry points or an unknown name: ask the live registry
        from .plasticity import RULES
        from .plugins import load_entry_points, load_plugins

        load_plugins(args.plugins)
        load_entry_points()
        for name in args.names:
            RULES.get(name)  # an unknown name: the error lists the registered ones
        entries = [describe_rule(name) for name in (args.names or RULES.names())]
    print("\n\n".join(entries))
    return 0


# ------------------------------------------------------------------ dendrisim models
def models_parser(prog: str = "dendrisim models") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description="The model files that ship with dendrisim: 'dendrisim run "
                                "NAME' runs one, 'dendrisim check NAME' shows what it builds.")
    p.add_argument("--paths", action="store_true", help="also print where each file lies")
    return p


def model_description(text: str, data: dict) -> str:
    """The file's ``description`` key, else the first sentence of its leading comment."""
    if data.get("description"):
        return str(data["description"]).strip()
    comment = []
    for line in text.splitlines():
        if not line.startswith("#"):
            break
        comment.append(line.lstrip("#").strip())
    prose = " ".join(comment).strip()
    cut = prose.find(". ")
    return prose[: cut + 1] if cut >= 0 else prose


def data_needs(task: dict) -> str:
    """What data a model's task reads and where it is looked for."""
    from .datapaths import DEBIAN_FASHION_MNIST

    root = task.get("data_root")
    kind = task.get("type", "classification")
    if kind == "classification":
        dataset = task.get("dataset", "digits")
        if dataset == "digits":
            return "digits, bundled with scikit-learn (no files)"
        where = f"under {root}" if root else "under $DENDRISIM_DATA or ./data"
        extra = f" or {DEBIAN_FASHION_MNIST}" if dataset == "fashion_mnist" else ""
        download = "" if task.get("download") else "; not downloaded unless task.download is true"
        return f"{dataset}, {where}{extra} (or --data-root){download}"
    keys = [(k, task[k]) for k in ("text", "file", "train_file", "test_file", "vectors") if task.get(k)]
    where = f"from the working folder or under {root}/" if root else "from the working folder"
    return f"{kind}: " + ", ".join(f"{k} {v}" for k, v in keys) + f", {where} (or --data-root)"


def models_main(argv: Optional[Sequence[str]] = None, *, prog: str = "dendrisim models") -> int:
    args = models_parser(prog).parse_args(argv)
    import yaml

    from .bundled import bundled, models_dir

    models = bundled()
    if not models:
        print(f"error: no model files in {models_dir()}", file=sys.stderr)
        return 2
    entries = []
    for name, path in models.items():
        text = path.read_text()
        data = yaml.safe_load(text) or {}
        lines = [f"{name}  {model_description(text, data)}", f"  data: {data_needs(data.get('task') or {})}"]
        if args.paths:
            lines.append(f"  file: {path}")
        entries.append("\n".join(lines))
    print("\n\n".join(entries))
    return 0


# ------------------------------------------------------------------ the CLI reference
def _cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def parser_table(parser: argparse.ArgumentParser) -> str:
    """One row per argument: its flags or name, its default and its help."""
    rows = ["| argument | default | meaning |", "|---|---|---|"]
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        flags = ", ".join(f"`{s}`" for s in action.option_strings) or f"`{action.metavar or action.dest}`"
        if action.option_strings and action.nargs != 0:
            flags += f" {action.metavar or action.dest.upper()}"
        default = "" if action.default in (None, argparse.SUPPRESS, False, [], ()) else f"`{action.default}`"
        help_text = (action.help or "") % {"default": action.default, "prog": parser.prog} if action.help else ""
        rows.append(f"| {_cell(flags)} | {_cell(default)} | {_cell(help_text)} |")
    return "\n".join(rows)


def _usage(parser: argparse.ArgumentParser) -> str:
    return " ".join(parser.format_usage().split())


def cli_reference() -> str:
    """The Markdown of ``docs/reference/cli.md``, from the parsers of every subcommand."""
    parts = ["# Command line", "",
             "<!-- generated by dendrisim.commands.cli_reference(); regenerate with "
             "python -m dendrisim.commands --update docs/reference/cli.md -->", "",
             "`dendrisim` (or `python -m dendrisim`) is installed with the package. Each subcommand is the "
             "same entry point as the script of a checkout's `scripts/` folder, with the same options.", "",
             "| command | script | what it does |", "|---|---|---|"]
    parts += [f"| `dendrisim {name}` | {f'`scripts/{c.script}`' if c.script else ''} | {c.summary} |"
              for name, c in COMMANDS.items()]
    parts += ["", "Two benchmarks stay scripts of a checkout, for developers: `scripts/bench_startup.py` times "
              "`scripts/simulate.py` as a whole process, optionally against a checkout of the reference "
              "implementation, and `scripts/bench_recording.py` measures what the recorder costs.",
              "", "## dendrisim", "", "```text", _usage(top_parser()), "```", "", parser_table(top_parser())]
    for name, command in COMMANDS.items():
        parts += ["", f"## dendrisim {name}", "", command.summary[0].upper() + command.summary[1:] + "."]
        if command.extra:
            parts += ["", f"Runs `dendrisim run` with `{' '.join(command.extra)}` appended: its options are run's."]
        p = command_parser(name)
        if p is not None:
            parts += ["", "```text", _usage(p), "```", "", parser_table(p)]
        else:
            parts += ["", "```text", _captured_help(name), "```"]
    return "\n".join(parts) + "\n"


@contextmanager
def _program_name(prog: str) -> Iterator[None]:
    """``sys.argv[0]`` is ``prog`` meanwhile: argparse's default program name."""
    saved = sys.argv[0] if sys.argv else None
    if not sys.argv:
        sys.argv.append(prog)
    sys.argv[0] = prog
    try:
        yield
    finally:
        if saved is None:
            sys.argv.pop()
        else:
            sys.argv[0] = saved


def _captured_help(name: str) -> str:
    """``dendrisim NAME --help`` as printed, for a command whose module has no ``parser``."""
    try:
        module = importlib.import_module(COMMANDS[name].module)
    except ModuleNotFoundError:
        return f"({COMMANDS[name].module} is not part of this build)"
    out = io.StringIO()
    columns = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = "100"  # argparse wraps at the terminal's width: the same page everywhere
    try:
        with redirect_stdout(out), _program_name(f"dendrisim {name}"):
            module.main(["--help"])
    except SystemExit:
        pass
    finally:
        if columns is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = columns
    return out.getvalue().rstrip()


if __name__ == "__main__":
    if sys.argv[1:2] == ["--update-rules"]:
        import json

        CATALOGUE.write_text(json.dumps({"version": version(), "rules": rules_catalogue(),
                                         "neurons": neurons_catalogue()}, indent=1, ensure_ascii=False) + "\n")
    elif sys.argv[1:2] == ["--update"]:
        target = Path(sys.argv[2] if len(sys.argv) > 2 else "docs/reference/cli.md")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(cli_reference())
    else:
        print(cli_reference(), end="")
