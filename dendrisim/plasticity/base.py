"""The plasticity-rule interface shared by every rule.

A rule declares what reaches the apical compartments (its feedback weights and gains,
``apical_input``; pc: the parameters of its relaxation) and computes how every learnable
projection changes (``compute_updates``, which writes ``.grad``); it never runs a
presentation: a settling scheme (``dynamics.mode``, ``dendrisim.settling``) does, reading
only what its ``Rule`` protocol declares. A ``torch.optim`` optimizer applies the updates.
Rules with feedback weights keep them as their own parameters, keyed by the forward
projection's name.
"""
from __future__ import annotations

import functools
import inspect
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Optional

import networkx as nx
import torch
from torch import nn

from ..errors import DendrisimDeprecationWarning
from ..config.graph import model_of
from ..config.schema import opt, req
from ..registry import Registry
from .. import functional as Fn
from ..projections import apical_sum
from ..state import State

if TYPE_CHECKING:
    from ..config.loader import Experiment
    from ..config.schema import PopulationConfig, ProjectionConfig
    from ..network import Network
    from ..populations import PyramidalPopulation
    from ..projections import Projection


@dataclass(frozen=True)
class RuleOptions:
    rule: str = req("name of the rule: " + "dll, bp, fa, dfa, ...")
    clip_apical: Optional[float] = opt(None, "clamp apical inputs to ±value and count how often (off by default)", gt=0)
    clip_update: Optional[float] = opt(None, "clamp weight updates to ±value and count how often (off by default)", gt=0)
    truncate: Optional[int] = opt(None, "recurrent networks: carry errors back through recurrent projections "
                                        "within blocks of N time steps only (truncated BPTT); off: the whole sequence",
                                  ge=1)


@dataclass(frozen=True)
class Relaxation:
    r"""The iterative inference a rule declares (pc, Whittington & Bogacz 2017): the steady
    settling scheme (``dynamics.mode: steady``) runs it in place of its top-down sweep. Each
    hidden soma ``x`` moves for up to ``steps`` steps of size ``rate`` against its prediction
    error ``ε = x − μ`` and the top-down input of the errors above,
    ``x ← x + rate · (−ε + f'(x) ⊙ a)``, the output error being ``error_scale · (t − f(μ_out))``;
    it stops early once ``max |Δx| < tolerance`` (never with tolerance 0)."""

    #: the most inference steps T of one presentation
    steps: int
    #: the step size η of the somatic relaxation
    rate: float
    #: stop once no soma moves by this much in a step (0: always ``steps`` steps)
    tolerance: float
    #: γ: the output's error is γ (t − rate) during the relaxation
    error_scale: float


RULES: Registry[type["PlasticityRule"]] = Registry("plasticity rule")


def _state_of(network: "Network", state: Optional[State]) -> State:
    """``state``, or, for a hook written before a presentation's state was a value (which
    calls the base class's hooks without one), the network's last state."""
    if state is not None:
        return state
    if network.last_state is None:
        raise ValueError("no presentation's state to read: pass the state the hook was given")
    return network.last_state


#: hooks whose signature changed when a presentation's state became a value (issue 27):
#: hook -> (its old parameters after self, its new ones, how to tell an old override)
_MIGRATED = {
    "apical_input": ("network, pop", "network, pop, state", lambda params: len(params) == 2),
    "compute_updates": ("network", "network, state", lambda params: len(params) == 1),
    "relax": ("network, target", "network, state", lambda params: len(params) == 2 and params[1] == "target"),
}


def _positional(fn) -> list[str]:
    params = list(inspect.signature(fn).parameters.values())[1:]  # after self
    if any(p.kind is p.VAR_POSITIONAL for p in params):
        return []  # (network, *args): whatever it takes, not the old fixed signature
    return [p.name for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]


def _adapt_old_hooks(cls: type) -> None:
    """Wrap the hooks ``cls`` overrides with their old signature (before issue 27) so that the
    settling schemes can call them with the state, and say once, in a DeprecationWarning, what
    to change. The old hooks read and write the state through the deprecated population
    attributes (``pop.rate``, ``network.target``), which see the presentation's state."""
    for hook, (old, new, is_old) in _MIGRATED.items():
        fn = cls.__dict__.get(hook)
        if fn is None or not callable(fn) or getattr(fn, "_migrated", False):
            continue
        try:
            params = _positional(fn)
        except (TypeError, ValueError):
            continue
        if not is_old(params):
            continue

        def adapted(self, network, *rest, _fn=fn, _hook=hook, _old=old, _new=new):
            state = rest[-1] if rest else None
            warnings.warn(f"{type(self).__name__}.{_hook}({_old}) is the hook's signature before a presentation's state "
                          f"became a value: write {_hook}({_new}) and read the state it is given "
                          "(docs/howto/writing-a-rule.md, 'Rules written before states were values')",
                          DendrisimDeprecationWarning, stacklevel=2)
            if state is not None:
                network.last_state = state  # what the deprecated population attributes read
            if _hook == "relax":
                return _fn(self, network, state.target if state is not None else None)
            return _fn(self, network, *rest[:-1]) if rest else _fn(self, network)

        adapted._migrated = True
        functools.update_wrapper(adapted, fn)
        adapted.__wrapped__ = fn
        setattr(cls, hook, adapted)


class PlasticityRule(nn.Module):
    """Base class of plasticity rules: a feedback pathway and local updates, no loop.

    Subclasses say which feedback weights a projection has (:meth:`feedback_weight`),
    and may change the gains or add their own updates. The hooks a rule may override
    (``feedback_weight``, ``apical_input``, ``temporal_feedback``, ``compute_updates``,
    ``relax``, ``start_epoch``, ``after_update``, ``param_groups``, ``tunables``,
    ``projection_recordables``) are documented with examples in docs/howto/writing-a-rule.md. When apical inputs and errors are
    computed, over how many steps, is the settling scheme's business (``dynamics.mode``,
    ``dendrisim.settling``); everything a scheme reads from a rule, or tells it, is declared
    in ``dendrisim.settling.Rule``, and no method here starts or runs a presentation.
    """

    Options: type = RuleOptions
    #: update gain ``c`` in ``ΔW ∝ c · δᵀ r``
    update_gain: float = 1.0
    #: gain applied to the apical input (``1/σ²`` for DLL)
    apical_gain: float = 1.0
    #: recordable variables of each projection under this rule
    projection_recordables: tuple[str, ...] = ("weight", "update", "feedback")
    #: recordable variables of the rule itself
    recordables: tuple[str, ...] = ("clip_counts",)
    #: whether the rule declares a relaxation of its own (pc: its parameters in :attr:`relaxation`),
    #: which only settling schemes that run one (``runs_relaxation``: steady) can present
    relaxes: bool = False
    #: whether the rule's updates need simulated compartments (the microcircuit's synapse models:
    #: a soma's mismatch with its dendrite, zero where soma = basal), which only settling schemes
    #: that simulate them (``simulates_compartments``: euler) provide
    needs_compartments: bool = False
    #: whether the rule's networks are circuits that a top-down sweep settles (burst neurons and
    #: their explicit apical projections), which only schemes that ``sweeps_circuits`` (steady) run
    needs_sweep: bool = False
    #: why the schemes that cannot serve the rule are refused (``--check`` and the error say it)
    settling_note: str = ""
    #: whether the rule can govern some projections of a network and leave others to other
    #: rules (dll, bp, fa, kp), or only the whole network (dfa's direct pathway, pc's relaxation)
    per_projection: bool = True
    #: options that a tuner may search, with their ranges (see ``compare_rules.py --tune``)
    tunables: dict[str, tuple] = {}
    #: whether the rule carries the errors of its projections' targets back to their sources'
    #: apical dendrites (False: the microcircuit's synapse models, whose apical input comes
    #: through explicit apical projections instead)
    carries_feedback: bool = True
    #: the family the rule belongs to in listings ("microcircuit": the cortical microcircuit's
    #: synapse models; "" for the others)
    family: str = ""

    @classmethod
    def serves(cls, proj: "ProjectionConfig", populations: Mapping[str, "PopulationConfig"]) -> Optional[str]:
        """None when the rule can govern the projection ``proj`` of a model whose populations
        are ``populations``; otherwise what it does govern, as a phrase for the error the
        builder raises (which names the file, the field and the rules that can). By default:
        basal projections into populations whose apical compartment takes the rule's feedback
        (the neuron model's ``offers_apical``: pyramidal ones), unless the model names the
        family of rules its synapses learn by (``learns_by``: burst neurons)."""
        target = model_of(populations[proj.target])
        if proj.compartment != "basal" or not target.offers_apical:
            return "it governs basal projections into pyramidal populations"
        if target.learns_by is not None and target.learns_by != cls.family:
            return (f"it governs basal projections into pyramidal populations, and {proj.target}'s neurons learn by "
                    f"the {target.learns_by} rules only")
        return None

    @classmethod
    def default_for(cls, proj: "ProjectionConfig", populations: Mapping[str, "PopulationConfig"]) -> bool:
        """Whether the rule governs ``proj`` when its model names no rule for it and the
        top-level rule does not serve it (the microcircuit's synapse models: apical and
        interneuron projections). At most one registered rule says so for any projection."""
        return False

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        _adapt_old_hooks(cls)

    def __init__(self, network: "Network", options: RuleOptions, *, projections: Optional[Iterable[str]] = None):
        """``projections``: the names of the projections this rule governs (how they learn and
        what they carry back); every projection of the network by default."""
        super().__init__()
        self.options = options
        self.projections: frozenset[str] = frozenset(network.projections if projections is None else projections)
        self.clip_counts: dict[str, torch.Tensor] = {}

    def refuse_unserved(self, network: "Network") -> None:
        """A ValueError for a projection this rule governs but does not :meth:`serves` (a network
        built by hand; model files are refused before, by the builder, which gives each
        projection a rule that serves it)."""
        types = {name: data["config"] for name, data in network.graph.nodes(data=True)}
        for name in sorted(self.projections):
            proj = network.projections[name]
            reason = self.serves(proj.config, types) if proj.has_weight else None
            if reason is not None:
                raise ValueError(f"rule {self.options.rule} cannot govern {name}: {reason}. Build the network with "
                                 "dendrisim's builder, which gives each projection a rule that serves it")

    def learnable_projections(self, network: "Network") -> list["Projection"]:
        """The learnable projections this rule updates."""
        return [p for p in network.learnable_projections() if p.name in self.projections]

    def feedback_gain(self, proj: "Projection") -> float:
        """Gain on ``proj``'s share of the apical input before the sum (1: the rule applies its
        ``apical_gain`` to the sum instead; a network of mixed rules applies each one's here)."""
        return 1.0

    @classmethod
    def check(cls, experiment: "Experiment", graph: nx.DiGraph) -> None:
        """Raise ConfigError when the rule cannot train this topology (before any tensor)."""

    # ----- the feedback pathway -----------------------------------------------------
    def feedback_weight(self, network: "Network", proj: "Projection") -> Optional[torch.Tensor]:
        """Weights of ``proj.feedback_shape`` that carry ``proj``'s target error to its source
        (``[n_pre, n_post]`` for a dense projection, the kernel's shape for conv2d); None for
        fixed pathways (pools) and projections from the input."""
        raise NotImplementedError

    def feeds_back(self, proj: "Projection") -> bool:
        """Whether ``proj``'s target error reaches its source's apical dendrite through this
        rule: the rule governs ``proj`` and :attr:`carries_feedback` (a mix of rules asks the
        rule that governs ``proj``)."""
        return self.carries_feedback and proj.name in self.projections

    def apical_input(self, network: "Network", pop: "PyramidalPopulation", state: Optional[State] = None
                     ) -> Optional[torch.Tensor]:
        """Sum of top-down feedback onto ``pop``'s apical dendrite, of ``pop``'s shape, before
        the rule's gain and clip: by default each outgoing projection's target error carried
        back through :meth:`feedback_weight`, for the projections whose rule carries feedback
        (:meth:`feeds_back`); None when none does (a microcircuit's hidden population, whose
        apical input comes through explicit apical projections only: the euler scheme then
        adds no rule part). ``state``: the presentation's (:class:`dendrisim.state.State`; the
        network's last one when a hook written before it calls this without); an override may
        read ``state.target``, the output's target: direct random target projection sends it
        instead of an error (docs/howto/writing-a-rule.md)."""
        state = _state_of(network, state)
        return apical_sum([(proj, state[proj.target].error, self.feedback_weight(network, proj),
                            self.feedback_gain(proj)) for proj in network.outgoing[pop.name] if self.feeds_back(proj)])

    # ----- the apical input ------------------------------------------------------------
    #: the iterative inference the rule declares (pc's :class:`~dendrisim.plasticity.base.Relaxation`), which the steady
    #: scheme runs in place of its top-down sweep; None: the sweep
    relaxation: Optional[Relaxation] = None

    #: a plugin rule's own settling, a method ``(network, target)`` that the steady scheme
    #: calls in place of its sweep and that leaves ``apical`` and ``error`` in every
    #: population (docs/howto/writing-a-rule.md); None for every built-in rule
    relax = None

    #: whether the updates compare the taught state with the same batch settled without a
    #: teacher (burstprop): the steady scheme then leaves that free state in ``state.free``
    contrastive: bool = False

    @property
    def truncate(self) -> Optional[int]:
        """Recurrent networks: errors go back through recurrent projections within blocks of
        this many time steps only (the ``truncate`` option; None: the whole sequence)."""
        return self.options.truncate

    def relaxed(self, iterations: int, converged: Optional[bool]) -> None:
        """A rule with a :attr:`relaxation` is told how each one went: the inference steps it
        ran, and whether it met the tolerance (None: no tolerance was asked). Nothing by default."""

    def top_down(self, network: "Network", pop: "PyramidalPopulation", state: Optional[State] = None
                 ) -> Optional[torch.Tensor]:
        """``pop``'s apical input from the current errors above it: the feedback of
        :meth:`apical_input`, times the rule's apical gain, clipped if asked (None where no
        projection feeds back: the rule has no part in ``pop``'s apical input). The one place
        every settling scheme gets the apical input from."""
        apical = self.apical_input(network, pop, _state_of(network, state))
        return None if apical is None else self.gain_and_clip(pop, apical)

    def gain_and_clip(self, pop: "PyramidalPopulation", apical: torch.Tensor) -> torch.Tensor:
        """The rule's apical gain (``1/σ²`` for DLL) and ``clip_apical``, in place."""
        if self.apical_gain != 1.0:
            apical = apical.mul_(self.apical_gain)
        if self.options.clip_apical is not None:
            apical = Fn.clip_(apical, self.options.clip_apical, self._counter(f"apical:{pop.name}", apical))
        return apical

    #: False for rules whose feedback skips the network's own pathway (DFA): no recursion in time
    temporal_feedback = True

    # ----- the updates -------------------------------------------------------------------
    @staticmethod
    def all_steps(network: "Network", post: torch.Tensor) -> tuple[torch.Tensor, float]:
        """``post`` over every time step as rows, with the normalisation of :meth:`paired`."""
        if not network.sequential:
            return post, 1.0
        T = post.shape[0]
        return post.flatten(0, 1), T / len(range(T)[network.readout])

    @staticmethod
    def paired(network: "Network", proj: "Projection", pre: torch.Tensor, post: torch.Tensor
               ) -> tuple[torch.Tensor, torch.Tensor, float]:
        """The two ends of ``proj`` as rows for an update: unchanged in a feedforward
        network; in a recurrent one paired in time (``pre`` at ``t``, ``post`` at ``t + d``)
        and flattened, with the factor that turns the mean over rows into the mean over
        batch and readout steps (the loss's normalisation), so updates are summed over time."""
        if not network.sequential:
            return pre, post, 1.0
        T = pre.shape[0]
        if proj.kind == "recurrent":
            pre, post = pre[:-1], post[1:]
        steps = len(range(T)[network.readout])
        return pre.flatten(0, 1), post.flatten(0, 1), pre.shape[0] / steps

    def compute_updates(self, network: "Network", state: Optional[State] = None) -> None:
        """Write ``.grad`` of every learnable projection the rule governs, from its two ends
        only: their rate and error in ``state``, the presentation's (the network's last one
        when a hook written before states were values calls this without)."""
        state = _state_of(network, state)
        for proj in self.learnable_projections(network):
            rate, delta, scale = self.paired(network, proj, state[proj.source].rate, state[proj.target].error)
            w = proj.weight
            w.grad = proj.weight_gradient(delta, rate, gain=self.update_gain * scale,
                                          out=w.grad if w.grad is not None and w.grad.shape == w.shape else None)
            if proj.bias is not None:  # every time step, the first included (the start state is zero)
                delta, scale = self.all_steps(network, state[proj.target].error)
                proj.bias.grad = proj.bias_gradient(delta, gain=self.update_gain * scale)
            if self.options.clip_update is not None:
                counter = self._counter(f"update:{proj.name}", w)
                Fn.clip_(w.grad, self.options.clip_update, counter)
                if proj.bias is not None:
                    Fn.clip_(proj.bias.grad, self.options.clip_update, counter)

    # ----- what the loop tells the rule ---------------------------------------------
    def start_epoch(self, epoch: int) -> None:
        """The loop is starting (or resuming) epoch ``epoch`` (1-based); a rule whose
        plasticity changes with the epoch (dll's ``fix_feedback_until``) keeps it."""

    def after_update(self, network: "Network") -> None:
        """Called after the optimizer applied the updates: a rule that keeps its weights in a
        set (dll's ``recurrent_feedback_norm``) projects them back here."""

    # ----- optimizer and recording hooks --------------------------------------------
    def param_groups(self, lr: float) -> list[dict[str, Any]]:
        """Optimizer param groups for the rule's own learnable tensors (none by default)."""
        return []

    def projection_state(self, network: "Network", proj: "Projection", variable: str) -> Optional[torch.Tensor]:
        if variable == "weight":
            return proj.weight
        if variable == "update":
            return proj.weight.grad
        if variable == "feedback":
            return self.feedback_weight(network, proj)
        raise KeyError(variable)

    def recordables_for(self, network: "Network", proj: "Projection") -> tuple[str, ...]:
        """What can be recorded of ``proj`` under this rule."""
        return self.projection_recordables

    def governance(self, network: "Network") -> list[str]:
        """One line per projection: the rule that governs it (for ``--check``)."""
        return [f"{name}: {self.options.rule}" for name in network.projections]

    def feedback_label(self, network: "Network", proj: "Projection") -> str:
        """How ``proj``'s target error reaches its source (for summaries)."""
        return "unknown"

    def feedback_pathway(self, network: "Network") -> list[str]:
        """One line per route of the apical input, for ``--check``."""
        def label(proj):
            return self.feedback_label(network, proj) if proj.has_weight else f"{proj.connectivity} unpooling (fixed)"

        return [f"{pop.name}.apical <- {proj.target}.error through {label(proj)}"
                for pop in network.hidden() for proj in network.outgoing[pop.name] if self.feeds_back(proj)]

    def epoch_summary(self) -> dict[str, float]:
        """Rule-specific numbers for the epoch's metrics row (and reset them); none by default."""
        return {}

    def clip_names(self, network: "Network") -> list[str]:
        """Names of the clip counters the options switch on (``apical:POP``, ``update:A->B``)."""
        names = []
        if self.options.clip_apical is not None:
            names += [f"apical:{pop.name}" for pop in network.hidden()]
        if self.options.clip_update is not None:
            names += [f"update:{proj.name}" for proj in self.learnable_projections(network)]
        return names

    def _counter(self, name: str, like: torch.Tensor) -> torch.Tensor:
        if name not in self.clip_counts:
            self.clip_counts[name] = torch.zeros((), dtype=torch.int64, device=like.device)
        return self.clip_counts[name]
