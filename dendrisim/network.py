"""A network: populations and projections built from a checked model file."""
from __future__ import annotations

import contextlib
import warnings
import weakref
from typing import Iterator, Mapping, Optional

import networkx as nx
import torch
from torch import nn

from .errors import DendrisimDeprecationWarning
from .config.graph import build_graph, feedforward_graph
from .config.parse import parse
from .errors import DendrisimError, brief
from .config.schema import ModelConfig
from .init import resolve_init
from .neurons import NEURONS, InputPopulation, InterneuronPopulation, PyramidalPopulation
from .neurons.interneuron import interneuron_activation, interneuron_constants  # noqa: F401 - their old home
from .projections import CONNECTIVITY, Projection, basal_drive
from .state import State

class Network(nn.Module):
    """Populations and projections (ModuleDicts), the graph, and the feedforward order.

    ``forward`` clamps the input and lets every pyramidal population integrate its basal
    input in topological order; it never touches apical compartments (that is the rule's
    job), so a network with no rule is exactly a stack of ``nn.Linear`` + activation.

    A microcircuit (:attr:`circuit`) adds interneuron populations, which integrate their
    dendrite in the same order, and projections onto apical compartments and interneurons'
    somata. Basal projections alone form the feedforward graph: :attr:`incoming` and
    ``outgoing`` hold them only (so the forward pass, the steady sweep and every rule's
    feedback see the feedforward network), :attr:`apical_in` and :attr:`somatic_in` the others,
    which the settling scheme sums (``dendrisim.projections.explicit_drive``).
    """

    #: the state of the last forward pass or presentation (``forward``, a settling scheme's
    #: ``present``), for reading after the fact; schemes and rules are given the state they work on
    last_state: Optional[State] = None

    @property
    def target(self) -> Optional[torch.Tensor]:
        """Deprecated: the output's target in the last state (a rule hook reads ``state.target``)."""
        warnings.warn("network.target is deprecated: a presentation's state is a value; read state.target (the state "
                      "a rule hook is given)", DendrisimDeprecationWarning, stacklevel=2)
        return None if self.last_state is None else self.last_state.target

    def __init__(self, config: ModelConfig, shapes: Mapping[str, tuple[int, ...]], *,
                 vocabulary: Optional[tuple[int, int]] = None, readout: slice = slice(None),
                 time_steps: Optional[int] = None, simulated: bool = False):
        """A checked model's populations of the given ``shapes`` (name -> shape, see
        :func:`dendrisim.shapes.population_shapes`) and its projections between them.
        ``vocabulary`` is ``(words, dim)`` of the task's word vectors, for embedding projections;
        ``readout`` and ``time_steps`` are the task's (see the attributes); ``simulated``: the
        pyramidal somata are simulated compartments with the file's conductances (a settling
        scheme that simulates them, e.g. euler)."""
        super().__init__()
        cfg = config
        self.name = cfg.name
        self.graph: nx.DiGraph = build_graph(cfg)
        self.populations = nn.ModuleDict()
        self.projections = nn.ModuleDict()
        # every population is built by its neuron model; what it offers is asked of the model
        models = {name: NEURONS.get(pop.type) for name, pop in cfg.populations.items()}
        self.input_name = next(n for n, model in models.items() if model.clamped)
        ff = feedforward_graph(self.graph)
        # interneurons are sinks of the feedforward graph too: the output is the one that can be
        self.output_name = next(n for n in ff if ff.out_degree(n) == 0 and models[n].offers_output)
        topo = list(nx.lexicographical_topological_sort(ff))
        for name, model in models.items():
            options = parse(model.Options, dict(cfg.populations[name].options), path=f"populations.{name}")
            self.populations[name] = model.from_config(name, shapes[name], cfg, options=options, simulated=simulated)
            # the deprecated population.soma & co read the network's last state through this
            object.__setattr__(self.populations[name], "_owner", weakref.ref(self))
        for i, proj in enumerate(cfg.projections):
            init, options = resolve_init(proj.init, file=None, path=f"projections[{i}].init")  # checked on loading
            cls = CONNECTIVITY.get(proj.connectivity)
            extra = vocabulary if proj.connectivity == "embedding" else (init, options)
            self.projections[proj.name] = cls(proj, shapes[proj.source], shapes[proj.target], *extra)
        #: every population but the input, in feedforward order (interneurons included)
        self.order: list[str] = [n for n in topo if n != self.input_name]
        # populations nudged one to one by the population they predict (interneurons): their
        # error is never carried back, and the rule's feedback never reaches them
        self._interneurons: frozenset[str] = frozenset(n for n, model in models.items() if model.takes_nudging)
        #: basal projections into and out of each population (the feedforward network's)
        self.incoming: dict[str, list[Projection]] = {n: [] for n in self.populations}
        self.outgoing: dict[str, list[Projection]] = {n: [] for n in self.populations}
        #: a microcircuit's explicit apical projections into each population (top-down, lateral)
        self.apical_in: dict[str, list[Projection]] = {n: [] for n in self.populations}
        #: a microcircuit's somatic projections into each population (an interneuron's nudging)
        self.somatic_in: dict[str, list[Projection]] = {n: [] for n in self.populations}
        lists = {"basal": self.incoming, "apical": self.apical_in, "soma": self.somatic_in}
        for proj in self.projections.values():
            lists[proj.compartment][proj.target].append(proj)
            if proj.compartment == "basal":
                self.outgoing[proj.source].append(proj)
        #: whether the network is a microcircuit: it has apical or somatic projections
        self.circuit: bool = any(p.compartment != "basal" for p in self.projections.values())
        #: whether those all end on populations the steady scheme settles in its sweep (burst neurons)
        self.settles_in_sweep: bool = all(models[p.target].settles_in_sweep for p in self.projections.values()
                                          if p.compartment != "basal")
        self.needs_error: set[str] = self._needs_error()
        # recurrent networks unroll over time: strongly connected groups of populations
        # (joined by recurrent projections) step through time together; every other
        # population is computed for all time steps at once
        self.sequential = any(p.kind == "recurrent" for p in self.projections.values())
        #: whether presentations change the weights (see :meth:`plasticity_off`)
        self.plastic = True
        #: third factors set between steps (a reward, say): name -> value, read by rules
        self.modulators: dict[str, float] = {}
        #: time steps whose output the task teaches and scores (all by default)
        self.readout: slice = readout
        #: length of the sequences the task trains on (recurrent networks; None for feedforward ones)
        self.time_steps: Optional[int] = time_steps if self.sequential else None
        #: recurrent networks: strongly connected groups in feedforward order, each with whether it loops
        self.plan: list[tuple[list[str], bool]] = self._time_plan(topo) if self.sequential else []

    def _needs_error(self) -> set[str]:
        """The populations whose error something uses: an update of an incoming projection, or
        a population further down that needs it carried back (a frozen embedding's target does
        not); an interneuron's error only by its own learnable dendrite (it is never carried
        back), and the target of a learnable apical projection (its synapses learn from it)."""
        needs: set[str] = {self.output_name}
        needs |= {p.target for n in self.order for p in self.apical_in[n] if p.learnable}
        changed = True
        while changed:  # a fixed point: recurrent projections may point backwards in the order
            changed = False
            for name in self.order:
                carried = name not in self._interneurons
                if name not in needs and any(p.learnable or (carried and p.source in needs)
                                             for p in self.incoming[name]):
                    needs.add(name)
                    changed = True
        return needs

    def _time_plan(self, topo: list[str]) -> list[tuple[list[str], bool]]:
        """Strongly connected groups of populations (joined by recurrent projections) in
        feedforward order, each with whether it loops: they step through time together."""
        plan = []
        cond = nx.condensation(self.graph)
        position = {n: i for i, n in enumerate(topo)}
        for c in nx.topological_sort(cond):
            members = sorted(cond.nodes[c]["members"], key=position.__getitem__)
            if members != [self.input_name]:
                plan.append((members, len(members) > 1 or self.graph.has_edge(members[0], members[0])))
        return plan

    @property
    def input(self) -> InputPopulation:
        return self.populations[self.input_name]

    @property
    def output(self) -> PyramidalPopulation:
        return self.populations[self.output_name]

    def pyramidal(self) -> Iterator[PyramidalPopulation]:
        """Pyramidal populations in feedforward order (not interneurons: :meth:`simulated`)."""
        return (self.populations[n] for n in self.order if n not in self._interneurons)

    def hidden(self) -> Iterator[PyramidalPopulation]:
        """Pyramidal populations other than the output whose error is used and whose apical
        compartment the rule's feedback reaches (the model's ``offers_apical``), in feedforward order."""
        return (self.populations[n] for n in self.order if n != self.output_name and n in self.needs_error
                and self.populations[n].offers_apical)

    def interneurons(self) -> Iterator[InterneuronPopulation]:
        """A microcircuit's interneuron populations in feedforward order (none in other networks)."""
        return (self.populations[n] for n in self.order if n in self._interneurons)

    def simulated(self) -> Iterator[PyramidalPopulation]:
        """Every population but the input, pyramidal and interneuron, in feedforward order: those
        whose compartments a settling scheme steps and records."""
        return (self.populations[n] for n in self.order)

    def new_state(self) -> State:
        """An empty state of every population (each variable None), for one presentation."""
        state = State(input_name=self.input_name, output_name=self.output_name)
        for name, pop in self.populations.items():
            state[name] = pop.new_state()
        return state

    def free_state(self, x: torch.Tensor, *, initial: Optional[dict[str, torch.Tensor]] = None,
                   perturb: Optional[Mapping[str, torch.Tensor]] = None) -> State:
        """The forward pass as a value: clamp ``x`` and let every population settle into its
        free state (no teacher, no apical input); returns the :class:`~dendrisim.state.State`.

        A recurrent network takes ``x [batch, time, *input shape]`` and gives every
        variable as ``[time, batch, *shape]``; recurrent projections read the source's
        rate one step earlier, zeros before the first step (or ``initial[source]``, the
        rates to continue from, e.g. when sampling one step at a time).

        ``perturb``: population -> a tensor of its shape (``[batch, *shape]``) added to its
        basal drive before it integrates, so that everything above sees the perturbed rates:
        how a rule presents the same batch a second time, perturbed (node perturbation:
        docs/howto/writing-a-rule.md). Feedforward networks only.
        """
        state = self.new_state()
        _check_perturb_names(self, perturb)
        if self.sequential:
            self._forward_sequence(state, x, initial or {})
            return state
        self.input.clamp(state[self.input_name], x)
        for name in self.order:
            basal = self.basal_input(name, state)
            if perturb and name in perturb:
                basal = basal + _perturbation(name, perturb[name], basal)
            self.populations[name].integrate(state[name], basal)
        return state

    def forward(self, x: torch.Tensor, initial: Optional[dict[str, torch.Tensor]] = None) -> torch.Tensor:
        """The output rate of :meth:`free_state` (``nn.Module``'s call); the state is kept as
        :attr:`last_state`, for reading after the fact."""
        self.last_state = self.free_state(x, initial=initial)
        return self.last_state.output.rate

    def basal_input(self, name: str, state: Optional[State] = None) -> torch.Tensor:
        """``Σ_p W_p · rate_p (+ b_p)`` over the projections into ``name``, from the rates in
        ``state`` (the last state when none is given: for schemes written before states were
        values) (:func:`dendrisim.projections.basal_drive`)."""
        state = self.last_state if state is None else state
        drives = self.incoming[name]
        return basal_drive(drives, {p.source: state[p.source].rate for p in drives})

    def _delayed(self, proj: Projection, rate: torch.Tensor, initial: dict) -> torch.Tensor:
        """The source's rates shifted one step later in time (``[time, batch, ...]``)."""
        first = initial.get(proj.source)
        first = torch.zeros_like(rate[:1]) if first is None else first.unsqueeze(0).to(rate.dtype)
        return torch.cat([first, rate[:-1]])

    def _drive_over_time(self, state: State, name: str, T: int, B: int, skip: set, initial: dict
                         ) -> Optional[torch.Tensor]:
        """Summed drive of ``name`` from sources outside ``skip``, all time steps in one call each."""
        total = None
        for proj in self.incoming[name]:
            if proj.source in skip:
                continue
            rate = state[proj.source].rate
            if proj.kind == "recurrent":
                rate = self._delayed(proj, rate, initial)
            d = proj.drive(rate.flatten(0, 1)).view(T, B, *proj.post_shape)
            total = d if total is None else total.add_(d)
        return total

    def _forward_sequence(self, state: State, x: torch.Tensor, initial: dict) -> None:
        xt = x.transpose(0, 1)
        T, B = xt.shape[:2]
        self.input.clamp(state[self.input_name], xt)
        for members, looped in self.plan:
            if not looped:
                name = members[0]
                self.populations[name].integrate(state[name], self._drive_over_time(state, name, T, B, set(), initial))
            else:
                self._step_through_time(state, members, T, B, initial)

    def _step_through_time(self, state: State, members: list[str], T: int, B: int, initial: dict) -> None:
        """A recurrent group: drives from outside (and the inner dense projections' biases)
        for all steps at once, then one step at a time the inner projections
        (``basal[t] += W · rate_src[t]`` feedforward, ``W · rate_src[t-1]`` recurrent)."""
        inside = set(members)
        basal, rates = {}, {n: [] for n in members}
        for name in members:
            pop = self.populations[name]
            outer = self._drive_over_time(state, name, T, B, inside, initial)
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
            s = state[name]
            s.basal = s.soma = basal[name]
            s.rate = torch.stack(rates[name])

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


class PerturbationError(DendrisimError, ValueError):
    """``Network.free_state(x, perturb=...)`` was given a perturbation it cannot add (a
    ValueError too, as it was before it had a class of its own). Raised in a plugin's hook, the
    error names the plugin and the hook too (``dendrisim.plugins.call_hook``)."""

    misused_by_caller = True


def _perturbation(name: str, xi, basal: torch.Tensor) -> torch.Tensor:
    """``xi``, checked to be a tensor like ``name``'s basal drive (shape, dtype, device)."""
    if not isinstance(xi, torch.Tensor):
        raise PerturbationError(f"free_state(perturb=...): perturb[{name!r}] is {brief(xi)}, not a tensor; expected "
                                f"a {basal.dtype} tensor of shape {list(basal.shape)} ([batch, *shape] of {name})")
    if xi.shape != basal.shape or xi.dtype != basal.dtype or xi.device != basal.device:
        raise PerturbationError(f"free_state(perturb=...): perturb[{name!r}] is a {xi.dtype} tensor of shape "
                                f"{list(xi.shape)} on {xi.device}; expected {basal.dtype} of shape "
                                f"{list(basal.shape)} ([batch, *shape] of {name}) on {basal.device}, like its "
                                "basal drive")
    return xi


def _check_perturb_names(network: Network, perturb) -> None:
    """``free_state``'s ``perturb``: None, or a mapping from the names of populations that
    integrate a drive (not the input, which is clamped) in a feedforward network."""
    if perturb is None:
        return
    if not isinstance(perturb, Mapping):
        raise PerturbationError(f"free_state(perturb=...): {brief(perturb)} is not a mapping; expected a dict "
                                "population name -> tensor of its [batch, *shape], added to its basal drive")
    if perturb and network.sequential:
        raise PerturbationError(f"free_state(perturb=...) perturbs a feedforward network's presentation; network "
                                f"{network.name!r} is recurrent, and no perturbation of a sequence is implemented")
    for name in perturb:
        if name == network.input_name:
            raise PerturbationError(f"free_state(perturb=...): {name!r} is the input population, clamped to x, "
                                    f"which has no basal drive to perturb; perturb x itself, or one of "
                                    f"{', '.join(network.order)}")
        if name not in network.order:
            raise PerturbationError(f"free_state(perturb=...): {brief(name)} is not a population of network "
                                    f"{network.name!r}; perturb one of {', '.join(network.order)}")
