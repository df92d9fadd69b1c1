"""The model-file key reference, generated from the config dataclasses.

``python -m dendrisim.reference`` prints the Markdown tables that the documentation's key
reference, ``docs/reference/keys.md``, carries between its ``<!-- keys -->`` markers
(``python -m dendrisim.reference --update docs/reference/keys.md`` rewrites them); a test
keeps the two equal.
"""
from __future__ import annotations

import dataclasses
import typing

from .config.parse import _type_name, yaml_key
from .config.schema import (AlignmentConfig, CompartmentConfig, DynamicsConfig, EarlyStoppingConfig, ModelConfig, OptimizerConfig, PhaseConfig,
                            PopulationConfig, ProjectionConfig, RecordingConfig, TrainingConfig)


def default_text(f: dataclasses.Field) -> str:
    """A field's default as a model file spells it (``required``, ``null``, ``true``, ...)."""
    if f.default is not dataclasses.MISSING:
        value = f.default
    elif f.default_factory is not dataclasses.MISSING:
        value = f.default_factory()
    else:
        return "required"
    if dataclasses.is_dataclass(value):
        return "see below"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, tuple):
        value = list(value)
    return "null" if value is None else str(value).replace("'", "")


def table(cls: type, title: str) -> str:
    hints = typing.get_type_hints(cls)
    rows = [f"**{title}**", "", "| key | type | default | meaning |", "|---|---|---|---|"]
    for f in dataclasses.fields(cls):
        if f.metadata.get("internal"):
            continue
        kind = f.metadata.get("type_text", _type_name(hints[f.name])).replace("|", "\\|")
        doc = f.metadata.get("doc", "").replace("|", "\\|")  # a | in a cell would end it
        if f.metadata.get("rest"):  # not a key of its own: the keys beside the known ones
            rows.append(f"| *other keys* | per model | | {doc} |")
            continue
        rows.append(f"| `{yaml_key(f)}` | {kind} | {default_text(f)} | {doc} |")
    return "\n".join(rows)


def neuron_tables() -> list[str]:
    """The options of the shipped neuron models that have any, each a table of the keys it adds
    to a population's block (plugins document their own: ``dendrisim neurons NAME``)."""
    from .neurons import BUILTIN_NEURONS, NEURONS

    return [table(NEURONS.get(name).Options, f"populations.NAME (type: {name})") for name in NEURONS.names()
            if name in BUILTIN_NEURONS and dataclasses.fields(NEURONS.get(name).Options)]


def reference() -> str:
    from .plasticity import RULES
    from .plugins import BUILTIN
    from .tasks import TASKS

    parts = [
        table(ModelConfig, "top level"),
        table(PopulationConfig, "populations.NAME"),
        *neuron_tables(),
        table(ProjectionConfig, "projections[i]"),
    ]
    for name in TASKS.names():
        parts.append(table(TASKS.get(name).Options, f"task (type: {name})"))
    for name in (n for n in RULES.names() if n in BUILTIN):  # the shipped rules; plugins document their own
        parts.append(table(RULES.get(name).Options, f"plasticity (rule: {name})"))
    parts += [
        table(OptimizerConfig, "optimizer"),
        table(TrainingConfig, "training"),
        table(PhaseConfig, "training.phases[i]"),
        table(EarlyStoppingConfig, "training.early_stopping"),
        table(AlignmentConfig, "training.alignment"),
        table(RecordingConfig, "recording"),
        table(DynamicsConfig, "dynamics"),
        table(CompartmentConfig, "dynamics.populations.NAME"),
    ]
    return "\n\n".join(parts) + "\n"


def update_page(path: str) -> None:
    """Rewrite the reference between the markers of a Markdown page in place."""
    from pathlib import Path

    text = Path(path).read_text()
    start = text.index(START) + len(START)
    end = text.index(END)
    Path(path).write_text(text[:start] + reference() + text[end:])


START, END = "<!-- keys -->\n", "<!-- /keys -->"

if __name__ == "__main__":
    import sys

    if sys.argv[1:2] == ["--update"]:
        update_page(sys.argv[2] if len(sys.argv) > 2 else "docs/reference/keys.md")
    else:
        print(reference(), end="")
