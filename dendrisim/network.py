"""A network: populations and projections built from a checked model file."""
from __future__ import annotations

import math
from typing import Iterator, Optional

import networkx as nx
import torch
from torch import nn

from .activations import ACTIVATIONS
from .config.graph import build_graph
from .config.loader import Experiment
from .errors import ConfigError
from .init import resolve_init
from .populations import InputPopulation, PyramidalPopulation
from .projections import Projection


class Network(nn.Module):
    """Populations and projections (ModuleDicts), the graph, and the feedforward order.

    ``forward`` clamps the input and lets every pyramidal population integrate its basal
    input in topological order; it never touches apical compartments (that is the rule's
    job), so a network with no rule is exactly a stack of ``nn.Linear`` + activation.
    """

    def __init__(self, experiment: Experiment, *, input_shape: tuple[int, ...], output_size: int):
        super().__init__()
        cfg, file = experiment.config, experiment.file
        self.name = cfg.name
        self.graph: nx.DiGraph = build_graph(experiment)
        self.populations = nn.ModuleDict()
        self.projections = nn.ModuleDict()
        self.input_name = next(n for n, p in cfg.populations.items() if p.type == "input")
        self.output_name = next(n for n in self.graph if self.graph.out_degree(n) == 0 and n != self.input_name)
        for name, pop in cfg.populations.items():
            shape = _resolve_shape(name, pop, input_shape if name == self.input_name else None,
                                   output_size if name == self.output_name else None, file)
            if pop.type == "input":
                self.populations[name] = InputPopulation(name, shape)
            else:
                self.populations[name] = PyramidalPopulation(name, shape, ACTIVATIONS.get(pop.activation))
        _check_memory(cfg.projections, self.populations, file)
        for i, proj in enumerate(cfg.projections):
            init, options = resolve_init(proj.init, file=file, path=f"projections[{i}].init")
            n_pre = self.populations[proj.source].size
            n_post = self.populations[proj.target].size
            self.projections[proj.name] = Projection(proj, n_pre, n_post, init, options)
        self.order: list[str] = [n for n in nx.lexicographical_topological_sort(self.graph) if n != self.input_name]
        self.incoming: dict[str, list[Projection]] = {n: [] for n in self.populations}
        self.outgoing: dict[str, list[Projection]] = {n: [] for n in self.populations}
        for proj in self.projections.values():
            self.incoming[proj.target].append(proj)
            self.outgoing[proj.source].append(proj)

    @property
    def input(self) -> InputPopulation:
        return self.populations[self.input_name]

    @property
    def output(self) -> PyramidalPopulation:
        return self.populations[self.output_name]

    def pyramidal(self) -> Iterator[PyramidalPopulation]:
        """Pyramidal populations in feedforward order."""
        return (self.populations[n] for n in self.order)

    def hidden(self) -> Iterator[PyramidalPopulation]:
        """Pyramidal populations other than the output, in feedforward order."""
        return (self.populations[n] for n in self.order if n != self.output_name)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Clamp ``x`` and integrate every population; returns the output rate."""
        self.input.clamp(x)
        for name in self.order:
            drives = self.incoming[name]
            basal = drives[0].drive(self.populations[drives[0].source].rate)
            for proj in drives[1:]:
                basal = basal + proj.drive(self.populations[proj.source].rate)
            pop = self.populations[name]
            pop.integrate(basal.view(-1, *pop.shape))
        return self.output.rate

    def learnable_projections(self) -> list[Projection]:
        return [p for p in self.projections.values() if p.learnable]

    def summary(self) -> str:
        """A few lines: populations, projections and parameter counts."""
        lines = [f"network {self.name}:"]
        for pop in self.populations.values():
            act = getattr(pop, "activation", None)
            lines.append(f"  population {pop.name:<12} {type(pop).__name__:<20} shape={list(pop.shape)}"
                         + (f" f={act.name}" if act else ""))
        for proj in self.projections.values():
            n = sum(p.numel() for p in proj.parameters())
            lines.append(f"  projection {proj.name:<20} {proj.compartment:<6} params={n:,}"
                         + ("" if proj.learnable else " (frozen)"))
        return "\n".join(lines)


def _check_memory(projections, populations, file: str) -> None:
    """Refuse sizes whose weights (with gradients, optimizer state and feedback copies,
    about 8 float32 values per synapse) cannot fit this machine's memory."""
    import os

    try:
        ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return
    sizes = [populations[p.source].size * populations[p.target].size for p in projections]
    need = 8 * 4 * sum(sizes)
    if need > ram:
        i = max(range(len(sizes)), key=sizes.__getitem__)
        raise ConfigError(
            f"{sizes[i]:,} synapses in {projections[i].name} ({sum(sizes):,} in all) need about "
            f"{need / 2**30:,.1f} GiB with their gradients and optimizer state; this machine has "
            f"{ram / 2**30:,.1f} GiB. Check the population sizes", file=file, path=f"projections[{i}]")


def _resolve_shape(name: str, pop, data_shape: Optional[tuple[int, ...]], classes: Optional[int], file: str) -> tuple[int, ...]:
    where = f"populations.{name}"
    if data_shape is not None:  # the input population follows the data
        if pop.shape is not None and tuple(pop.shape) != tuple(data_shape):
            raise ConfigError(f"{list(pop.shape)} does not match the data, whose samples have shape "
                              f"{list(data_shape)}; write that or size: auto", file=file, path=f"{where}.shape")
        if isinstance(pop.size, int) and pop.size != math.prod(data_shape):
            raise ConfigError(f"{pop.size} does not match the data, whose samples have {math.prod(data_shape)} "
                              f"values (shape {list(data_shape)}); write that or size: auto", file=file, path=f"{where}.size")
        return tuple(data_shape)
    if classes is not None:  # the output population follows the task
        if pop.size not in ("auto", classes) and pop.shape is None:
            raise ConfigError(f"{pop.size} does not match the task, which needs {classes} output neurons; "
                              "write that or size: auto", file=file, path=f"{where}.size")
        if pop.shape is not None and math.prod(pop.shape) != classes:
            raise ConfigError(f"{list(pop.shape)} does not match the task, which needs {classes} output neurons",
                              file=file, path=f"{where}.shape")
        return (classes,) if pop.shape is None else tuple(pop.shape)
    if pop.shape is not None:
        return tuple(pop.shape)
    return (int(pop.size),)
