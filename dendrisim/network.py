"""A network: populations and projections built from a checked model file."""
from __future__ import annotations

import contextlib
import math
from typing import Iterator, Optional

import networkx as nx
import torch
from torch import nn

from .activations import ACTIVATIONS
from .config.graph import build_graph, compartment_constants, feedforward_graph
from .config.loader import Experiment
from .errors import ConfigError
from .init import resolve_init
from .populations import Compartments, InputPopulation, PyramidalPopulation
from .projections import CONNECTIVITY, Projection, kernel_extent


class Network(nn.Module):
    """Populations and projections (ModuleDicts), the graph, and the feedforward order.

    ``forward`` clamps the input and lets every pyramidal population integrate its basal
    input in topological order; it never touches apical compartments (that is the rule's
    job), so a network with no rule is exactly a stack of ``nn.Linear`` + activation.
    """

    #: the output's target during a presentation (set and cleared by the settling scheme), None otherwise
    target: Optional[torch.Tensor] = None

    def __init__(self, experiment: Experiment, *, input_shape: tuple[int, ...], output_size: int,
                 vocabulary: Optional[tuple[int, int]] = None):
        """``vocabulary`` is ``(words, dim)`` of the task's word vectors, for embedding projections."""
        super().__init__()
        cfg, file = experiment.config, experiment.file
        self.name = cfg.name
        self.graph: nx.DiGraph = build_graph(cfg)
        self.populations = nn.ModuleDict()
        self.projections = nn.ModuleDict()
        self.input_name = next(n for n, p in cfg.populations.items() if p.type == "input")
        ff = feedforward_graph(self.graph)
        self.output_name = next(n for n in ff if ff.out_degree(n) == 0 and n != self.input_name)
        topo = list(nx.lexicographical_topological_sort(ff))
        index = {proj.name: i for i, proj in enumerate(cfg.projections)}
        incoming_cfg = {n: [p for p in cfg.projections if p.target == n] for n in cfg.populations}
        shapes: dict[str, tuple[int, ...]] = {}
        for name in topo:
            pop = cfg.populations[name]
            if name == self.input_name:
                shapes[name] = _resolve_shape(name, pop, input_shape, None, file)
            else:
                shapes[name] = _infer_shape(name, pop, incoming_cfg[name], shapes, index, vocabulary,
                                            output_size if name == self.output_name else None, file)
        euler = experiment.simulated
        for name, pop in cfg.populations.items():
            if pop.type == "input":
                self.populations[name] = InputPopulation(name, shapes[name])
            else:
                constants = Compartments(**compartment_constants(cfg.dynamics, name)) if euler else None
                self.populations[name] = PyramidalPopulation(name, shapes[name], ACTIVATIONS.get(pop.activation),
                                                             compartments=constants)
        for i, proj in enumerate(cfg.projections):
            init, options = resolve_init(proj.init, file=file, path=f"projections[{i}].init")
            cls = CONNECTIVITY.get(proj.connectivity)
            extra = vocabulary if proj.connectivity == "embedding" else (init, options)
            self.projections[proj.name] = cls(proj, shapes[proj.source], shapes[proj.target], *extra)
        self.order: list[str] = [n for n in topo if n != self.input_name]
        self.incoming: dict[str, list[Projection]] = {n: [] for n in self.populations}
        self.outgoing: dict[str, list[Projection]] = {n: [] for n in self.populations}
        for proj in self.projections.values():
            self.incoming[proj.target].append(proj)
            self.outgoing[proj.source].append(proj)
        # populations whose error something uses: an update of an incoming projection, or a
        # population further down that needs it carried back (a frozen embedding's target does not)
        self.needs_error: set[str] = {self.output_name}
        changed = True
        while changed:  # a fixed point: recurrent projections may point backwards in the order
            changed = False
            for name in self.order:
                if name not in self.needs_error and any(p.learnable or p.source in self.needs_error
                                                        for p in self.incoming[name]):
                    self.needs_error.add(name)
                    changed = True
        # recurrent networks unroll over time: strongly connected groups of populations
        # (joined by recurrent projections) step through time together; every other
        # population is computed for all time steps at once
        self.sequential = any(p.kind == "recurrent" for p in self.projections.values())
        #: whether presentations change the weights (see :meth:`plasticity_off`)
        self.plastic = True
        #: third factors set between steps (a reward, say): name -> value, read by rules
        self.modulators: dict[str, float] = {}
        #: time steps whose output the task teaches and scores (the task sets it; all by default)
        self.readout: slice = slice(None)
        #: length of the sequences the task trains on (recurrent networks; the trainer sets it)
        self.time_steps: Optional[int] = None
        self.plan: list[tuple[list[str], bool]] = []
        if self.sequential:
            cond = nx.condensation(self.graph)
            position = {n: i for i, n in enumerate(topo)}
            for c in nx.topological_sort(cond):
                members = sorted(cond.nodes[c]["members"], key=position.__getitem__)
                if members == [self.input_name]:
                    continue
                looped = len(members) > 1 or self.graph.has_edge(members[0], members[0])
                self.plan.append((members, looped))
                for proj in (p for n in members for p in cfg.projections if p.target == n) if looped else ():
                    if proj.source in members and proj.connectivity != "dense":
                        raise ConfigError(f"{proj.connectivity} inside a recurrent loop ({', '.join(members)}) is not "
                                          "supported; projections within a loop are dense", file=file,
                                          path=f"projections[{index[proj.name]}].connectivity")

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
        """Pyramidal populations other than the output whose error is used, in feedforward order."""
        return (self.populations[n] for n in self.order if n != self.output_name and n in self.needs_error)

    def forward(self, x: torch.Tensor, initial: Optional[dict[str, torch.Tensor]] = None) -> torch.Tensor:
        """Clamp ``x`` and integrate every population; returns the output rate.

        A recurrent network takes ``x [batch, time, *input shape]`` and leaves every
        compartment as ``[time, batch, *shape]``; recurrent projections read the source's
        rate one step earlier, zeros before the first step (or ``initial[source]``, the
        rates to continue from, e.g. when sampling one step at a time).
        """
        if self.sequential:
            return self._forward_sequence(x, initial or {})
        self.input.clamp(x)
        for name in self.order:
            self.populations[name].integrate(self.basal_input(name))
        return self.output.rate

    def basal_input(self, name: str) -> torch.Tensor:
        """``Σ_p W_p · rate_p (+ b_p)`` over the projections into ``name``, from the current rates."""
        drives = self.incoming[name]
        basal = drives[0].drive(self.populations[drives[0].source].rate)
        for proj in drives[1:]:
            basal = basal + proj.drive(self.populations[proj.source].rate)
        return basal

    def _delayed(self, proj: Projection, rate: torch.Tensor, initial: dict) -> torch.Tensor:
        """The source's rates shifted one step later in time (``[time, batch, ...]``)."""
        first = initial.get(proj.source)
        first = torch.zeros_like(rate[:1]) if first is None else first.unsqueeze(0).to(rate.dtype)
        return torch.cat([first, rate[:-1]])

    def _drive_over_time(self, name: str, T: int, B: int, skip: set, initial: dict) -> Optional[torch.Tensor]:
        """Summed drive of ``name`` from sources outside ``skip``, all time steps in one call each."""
        total = None
        for proj in self.incoming[name]:
            if proj.source in skip:
                continue
            rate = self.populations[proj.source].rate
            if proj.kind == "recurrent":
                rate = self._delayed(proj, rate, initial)
            d = proj.drive(rate.flatten(0, 1)).view(T, B, *proj.post_shape)
            total = d if total is None else total.add_(d)
        return total

    def _forward_sequence(self, x: torch.Tensor, initial: dict) -> torch.Tensor:
        xt = x.transpose(0, 1)
        T, B = xt.shape[:2]
        self.input.clamp(xt)
        for members, looped in self.plan:
            if not looped:
                pop = self.populations[members[0]]
                pop.integrate(self._drive_over_time(pop.name, T, B, set(), initial))
            else:
                self._step_through_time(members, T, B, initial)
        return self.output.rate

    def _step_through_time(self, members: list[str], T: int, B: int, initial: dict) -> None:
        """A recurrent group: drives from outside (and the inner dense projections' biases)
        for all steps at once, then one step at a time the inner projections
        (``basal[t] += W · rate_src[t]`` feedforward, ``W · rate_src[t-1]`` recurrent)."""
        inside = set(members)
        basal, rates = {}, {n: [] for n in members}
        for name in members:
            pop = self.populations[name]
            outer = self._drive_over_time(name, T, B, inside, initial)
            if outer is None:  # every input comes from inside the group: dense projections
                w = self.incoming[name][0].weight
                outer = torch.zeros(T, B, *pop.shape, dtype=w.dtype, device=w.device)
            basal[name] = outer
            for proj in self.incoming[name]:
                if proj.source in inside and proj.bias is not None:
                    basal[name].add_(proj.bias.view(proj.post_shape))
        inner = {n: [(p.source, p.kind == "recurrent", p.weight.t()) for p in self.incoming[n] if p.source in inside]
                 for n in members}  # looked up once, not at every step
        for t in range(T):
            for name in members:
                b_t = basal[name][t]
                for source, recurrent, w_t in inner[name]:
                    if recurrent:
                        r = rates[source][t - 1] if t > 0 else initial.get(source)
                        if r is None:
                            continue
                    else:
                        r = rates[source][t]
                    b_t.view(B, -1).addmm_(r.flatten(1), w_t)
                rates[name].append(self.populations[name].activation.f(b_t))
        for name in members:
            pop = self.populations[name]
            pop.basal = pop.soma = basal[name]
            pop.rate = torch.stack(rates[name])

    @contextlib.contextmanager
    def plasticity_off(self):
        """Within the block, presentations settle as usual but write no update: the
        optimizer then leaves every weight as it is (``with network.plasticity_off(): ...``)."""
        previous, self.plastic = self.plastic, False
        try:
            yield self
        finally:
            self.plastic = previous

    def modulator(self, name: str, default: float = 1.0) -> float:
        """The third factor ``name`` (a reward, a neuromodulator level) as last set, or ``default``."""
        return self.modulators.get(name, default)

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
            lines.append(f"  projection {proj.name:<20} {proj.connectivity:<9} {proj.compartment:<6} params={n:,}"
                         + ("" if proj.learnable else " (frozen)" if proj.has_weight else " (fixed)"))
        return "\n".join(lines)


def _synapses(proj, shapes, vocabulary) -> int:
    pre, post = shapes[proj.source], shapes[proj.target]
    if proj.connectivity == "dense":
        return math.prod(pre) * math.prod(post)
    if proj.connectivity == "conv2d":
        return pre[0] * post[0] * math.prod(kernel_extent(proj.kernel, pre))
    if proj.connectivity == "embedding" and vocabulary:
        return vocabulary[0] * vocabulary[1]
    return 0


def _infer_shape(name: str, pop, incoming, shapes, index, vocabulary, classes, file: str) -> tuple[int, ...]:
    """A pyramidal population's shape: from its conv2d/pool/embedding inputs when it has
    any (they must agree), else from ``size``/``shape``."""
    where = f"populations.{name}"
    proposals = []
    for proj in incoming:
        at = f"projections[{index[proj.name]}]"
        if proj.connectivity == "dense":
            continue  # any shape of the right size (recurrent sources may come later in the order)
        pre = shapes[proj.source]
        if proj.connectivity in ("conv2d", "maxpool", "avgpool"):
            if len(pre) != 3:
                raise ConfigError(f"{proj.connectivity} needs a source of shape [channels, height, width]; "
                                  f"{proj.source!r} has shape {list(pre)}", file=file, path=at)
            if proj.connectivity == "conv2d":
                channels = pop.channels or (pop.shape[0] if pop.shape else None)
                if channels is None:
                    raise ConfigError(f"{name!r} is fed by the conv2d projection {proj.name}: give its number of "
                                      "feature maps as channels: N", file=file, path=where)
            else:
                channels = pre[0]  # a pool keeps the source's channels
            _check_window_fits(proj, pre, file=file, at=at)
            shape = CONNECTIVITY.get(proj.connectivity).output_shape(proj, pre, channels)
            if min(shape) < 1:
                raise ConfigError(f"{proj.connectivity} with kernel {proj.kernel}, stride {proj.stride} and padding "
                                  f"{proj.padding} leaves nothing of the {list(pre)} map of {proj.source!r}",
                                  file=file, path=at)
            proposals.append((proj.name, shape))
        elif proj.connectivity == "embedding":
            if vocabulary is None:
                raise ConfigError("an embedding projection needs a task with a vocabulary (type: sentences, or "
                                  "charlm with input: ids)",
                                  file=file, path=f"{at}.connectivity")
            if len(pre) != 1:
                raise ConfigError(f"an embedding reads token ids of shape [length]; {proj.source!r} has shape "
                                  f"{list(pre)}", file=file, path=at)
            # a sentence of ids becomes a [1, length, dim] map; one id per time step a [dim] vector
            proposals.append((proj.name, (vocabulary[1],) if pre == (1,) else (1, pre[0], vocabulary[1])))
    if not proposals:
        if pop.channels is not None:
            raise ConfigError("channels applies to populations fed by conv2d projections", file=file,
                              path=f"{where}.channels")
        return _resolve_shape(name, pop, None, classes, file)
    first, shape = proposals[0]
    for other, s in proposals[1:]:
        if s != shape:
            raise ConfigError(f"its inputs disagree: {first} gives {list(shape)}, {other} gives {list(s)}",
                              file=file, path=where)
    if pop.shape is not None and tuple(pop.shape) != shape:
        raise ConfigError(f"{list(pop.shape)} does not match its input {first}, which gives {list(shape)}",
                          file=file, path=f"{where}.shape")
    if pop.channels is not None and pop.channels != shape[0]:
        raise ConfigError(f"{pop.channels} channels, but {first} gives {shape[0]}", file=file, path=f"{where}.channels")
    if isinstance(pop.size, int) and pop.size != math.prod(shape):
        raise ConfigError(f"{pop.size} does not match its input {first}, which gives {list(shape)} = "
                          f"{math.prod(shape)} neurons", file=file, path=f"{where}.size")
    if classes is not None and math.prod(shape) != classes:
        raise ConfigError(f"its input {first} gives {list(shape)}, but the task needs {classes} output neurons",
                          file=file, path=where)
    return shape


def _check_window_fits(proj, pre: tuple[int, ...], *, file: str, at: str) -> None:
    """A kernel extent larger than its (padded) source map: name the map's size and ``full``."""
    kernel, padding = kernel_extent(proj.kernel, pre), CONNECTIVITY.get(proj.connectivity).geometry(proj, pre)[2]
    room = [pre[1 + i] + 2 * padding[i] for i in range(2)]
    too_big = [i for i in range(2) if kernel[i] > room[i]]
    if not too_big:
        return
    axes = ("height", "width")
    sizes = ", ".join(f"{axes[i]} {pre[1 + i]}" + (f" + 2 x padding {padding[i]}" if padding[i] else "") for i in too_big)
    spelled = [("full" if i in too_big else v) for i, v in enumerate(kernel)]
    raise ConfigError(
        f"the {proj.connectivity} kernel {list(kernel)} is larger than the {list(pre)} map of {proj.source!r} "
        f"({sizes}); a kernel extent may be at most the map's. To span the whole {' and '.join(axes[i] for i in too_big)} "
        f"whatever the source's size (word vectors of any width, say), write kernel: [{', '.join(map(str, spelled))}]",
        file=file, path=f"{at}.kernel")


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
