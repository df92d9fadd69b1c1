"""The contract every settling scheme shares: what it reads of a rule (:class:`Rule`), what
it returns (:class:`Presentation`), its base class and registry, and the helpers every scheme
uses (``updates``, ``free_target``)."""
from __future__ import annotations

import functools
import inspect
import warnings
from dataclasses import dataclass
from itertools import chain
from typing import Optional, Protocol

import torch

from ..errors import DendrisimDeprecationWarning
from ..config.schema import DynamicsConfig
from ..errors import DendrisimError, brief
from ..projections import basal_drive
from ..registry import Registry
from ..state import State


class Rule(Protocol):
    """Everything a settling scheme (``dynamics.mode``) reads from or tells a plasticity rule,
    declared once, as nengo's operators declare what they read and update
    (``dendrisim.PlasticityRule`` has all of it). The scheme owns the loop; the rule declares
    its feedback pathway (and pc its relaxation) and computes the updates. A scheme calls
    nothing else on a rule."""

    #: True when the apical input comes through the network's own pathway, so the steady
    #: scheme carries it back through time in a recurrent network; False when it skips that
    #: pathway (dfa: the output error straight to every population), and the scheme asks
    #: :meth:`apical_input` once for every time step. Read by the steady scheme (recurrent networks).
    temporal_feedback: bool
    #: recurrent networks: errors go back through recurrent projections within blocks of this
    #: many time steps only (truncated BPTT; the ``truncate`` option), None: the whole
    #: sequence. Read by the steady scheme's sweep through time.
    truncate: Optional[int]
    #: the rule's iterative inference, whose parameters (``steps``, ``rate``, ``tolerance``,
    #: ``error_scale``: ``dendrisim.plasticity.base.Relaxation``) the steady scheme runs in
    #: place of its sweep (:func:`relax`, pc); None for the others. Read by the steady scheme.
    relaxation: Optional[object]
    #: a plugin rule's own settling ``(network, state)`` that the steady scheme calls in
    #: place of its sweep (docs/howto/writing-a-rule.md); None for every built-in rule
    relax: Optional[object]
    #: True when the rule's updates compare the taught state with the same batch settled
    #: without a teacher (burstprop's burst rates): a scheme that ``settles_free`` (steady)
    #: settles both and leaves the free one in ``state.free``. Read by the steady scheme.
    contrastive: bool

    def feedback_weight(self, network, proj) -> Optional[torch.Tensor]:
        """The weights that carry ``proj``'s target error back to its source (None: a fixed
        pathway). Called by the sweep through time and by pc's relaxation for each outgoing
        projection, once per presentation."""

    def feedback_gain(self, proj) -> float:
        """The gain on ``proj``'s share of the apical input (1 unless rules are mixed). Called
        with :meth:`feedback_weight`."""

    def apical_input(self, network, pop, state: State) -> torch.Tensor:
        """The summed feedback of the errors above ``pop`` in ``state``, before gain and clip
        (``dendrisim.projections.apical_sum`` of the errors in the state, by default).
        Called through :meth:`top_down` by both schemes, and by the sweep through time for
        rules without ``temporal_feedback``."""

    def gain_and_clip(self, pop, apical: torch.Tensor) -> torch.Tensor:
        """The rule's apical gain and clip, in place. Called by the sweep on every hidden
        population's apical input (each time step, inside a recurrent loop)."""

    def top_down(self, network, pop, state: State) -> Optional[torch.Tensor]:
        """``gain_and_clip(apical_input(...))``: ``pop``'s apical input from the errors above
        it; None when no feedback reaches it (a microcircuit's synapse models carry none).
        Called by the sweep of a feedforward network and by the euler scheme at every step
        (which adds the explicit apical projections' drive to it)."""

    def compute_updates(self, network, state: State) -> None:
        """Every learnable projection's update from its two ends in ``state``, into ``.grad``. Called once
        at the end of a presentation, or at every step by the euler scheme's online plasticity."""

    def relaxed(self, iterations: int, converged: Optional[bool]) -> None:
        """Told after a :attr:`relaxation` how it went: the inference steps it ran and whether
        it met the tolerance (None: none asked). Called by the steady scheme (pc counts them)."""

    def parameters(self):
        """The rule's own tensors (feedback weights): ``nn.Module.parameters``. Read when
        plasticity is off (to clear their ``.grad``) and by online plasticity (to sum it)."""


@dataclass
class Presentation:
    """What one presentation leaves for observers (the weights' updates are in ``.grad``)."""

    #: the kept states of a simulated presentation, ``{population: {variable: [samples, states, *shape]}}``
    #: for the batch positions asked for (``capture``); None when nothing was asked for or kept
    trajectory: Optional[dict[str, dict[str, torch.Tensor]]] = None
    #: the inference steps a relaxation ran (None: no relaxation)
    iterations: Optional[int] = None
    #: whether the relaxation met its tolerance (None: no relaxation, or tolerance 0)
    converged: Optional[bool] = None
    #: the presentation's state at its end: every population's variables and the target
    #: (:class:`dendrisim.state.State`); what the recorder, the probe and observers read
    state: Optional[State] = None


SCHEMES: Registry[type["SettlingScheme"]] = Registry("settling scheme (dynamics.mode)")


@dataclass(frozen=True)
class SchemeOptions:
    """A scheme's own keys in the ``dynamics:`` block, beside the shared ones (``mode``, ``dt``,
    ``steps``, the constants, ...): none by default. A scheme with options of its own
    subclasses this with fields made by ``dendrisim.option``; a key no scheme declares is refused
    by name."""


class SettlingScheme:
    """Base of the settling schemes: :meth:`present` one batch; ``describe`` it for ``--check``."""

    #: states of a presentation kept in recordings (None: a record holds one state)
    trace_steps: Optional[list[int]] = None
    #: whether the scheme simulates the compartments in time: the network's pyramidal neurons then
    #: get their constants (``dynamics``: tau, conductances) and the forward pass leaves their free state
    simulates_compartments: bool = False
    #: whether it runs a rule's own relaxation (pc's declared ``Rule.relaxation``, a plugin's ``Rule.relax``): a rule
    #: that has one (``relaxes``) runs only under schemes that do; every other rule under every scheme
    runs_relaxation: bool = False
    #: whether it runs microcircuits (``Network.circuit``: explicit apical and somatic projections,
    #: interneurons); :meth:`present` refuses a circuit under a scheme that does not
    runs_circuits: bool = False
    #: whether it settles, in one top-down sweep, circuits whose explicit projections all end on
    #: populations whose neuron model ``settles_in_sweep`` (burst neurons: BurstCCN's Y and Q)
    sweeps_circuits: bool = False
    #: whether it also settles a batch without its teacher for a rule that compares the two
    #: (``contrastive``: burstprop), leaving it in ``state.free``
    settles_free: bool = False

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        fn = cls.__dict__.get("_present")
        params = list(inspect.signature(fn).parameters)[1:] if callable(fn) else []
        if params[2:3] == ["target"]:  # _present(network, rule, target, capture): before states were values
            def adapted(self, network, rule, state, capture, _fn=fn):
                warnings.warn(f"{type(self).__name__}._present(network, rule, target, capture) is the signature before "
                              "a presentation's state became a value: write _present(network, rule, state, capture) "
                              "and read and write state[name] (docs/howto/dynamics.md)", DendrisimDeprecationWarning, stacklevel=2)
                return _fn(self, network, rule, state.target, capture)

            cls._present = functools.update_wrapper(adapted, fn)

    #: the scheme's own keys in the ``dynamics:`` block (:class:`SchemeOptions`)
    Options: type = SchemeOptions

    def __init__(self, config: DynamicsConfig, options: Optional[SchemeOptions] = None):
        self.config = config
        #: the scheme's own options, parsed from the ``dynamics:`` block
        self.options = self.Options() if options is None else options

    @classmethod
    def check(cls, config, graph, *, file: str) -> None:
        """Raise ConfigError when the scheme cannot present the model ``config`` (its
        ``networkx`` graph ``graph``), before any tensor exists: the scheme's own checks (euler:
        stability of ``dt``, enough steps, a static input). By default: a microcircuit (apical
        or somatic projections) needs a scheme that ``runs_circuits``."""
        from ..config.graph import is_circuit, key_text, model_of, settled_in_sweep
        from ..errors import ConfigError
        from ..neurons import NEURONS

        for name, pop in config.populations.items() if cls.simulates_compartments else ():
            model = model_of(pop)
            if not model.clamped and not model.constants:
                raise ConfigError(
                    f"{pop.type!r} has no simulated compartments (its model declares no constants), and dynamics.mode "
                    f"{config.dynamics.mode} steps every population's compartments in time; use a model that has "
                    f"them ({', '.join(n for n in NEURONS.names() if NEURONS.get(n).constants)}) or dynamics.mode "
                    "steady", file=file, path=f"populations.{key_text(name)}.type")
        if not is_circuit(config) or cls.runs_circuits or (cls.sweeps_circuits and settled_in_sweep(config)):
            return
        runs = [n for n in SCHEMES.names() if getattr(SCHEMES.get(n), "runs_circuits", False)]
        mode = config.dynamics.mode
        why = ("steady settles apical inputs by one instant top-down sweep of the rule's errors; a circuit's apical "
               "input is the rates of the populations above and of interneurons, which move with the somata they "
               "feed, so its settled state is a nonlinear fixed point that this scheme does not solve"
               if mode == "steady" else
               f"scheme {mode} does not simulate apical and somatic projections (runs_circuits is false)")
        circuit = next(p for p in config.projections if p.compartment != "basal")
        article = "an" if circuit.compartment == "apical" else "a"
        raise ConfigError(f"mode {mode} cannot run a microcircuit ({circuit.name} is {article} {circuit.compartment} "
                          f"projection): {why}. Use mode: {' or '.join(runs) or 'euler'}", file=file,
                          path="dynamics.mode")

    def present(self, network, rule: Rule, target: Optional[torch.Tensor], *, state: Optional[State] = None,
                capture: Optional[torch.Tensor] = None) -> Presentation:
        """Present a batch from ``state``, the free state of its forward pass
        (``network.free_state(x)``; by default the network's last one): settle every
        compartment for ``target`` and leave ``rule``'s updates in ``.grad`` (none while
        ``network.plastic`` is off); the state, filled in, comes back in the
        :class:`Presentation`. ``target`` None: no teacher (a phase with ``teacher: false``),
        the output is not nudged. ``capture``: batch positions whose trajectory to return
        (schemes with ``trace_steps``). No autograd graph is built."""
        if getattr(network, "circuit", False) and not self.runs_circuits and not (
                self.sweeps_circuits and network.settles_in_sweep):
            raise ValueError(
                f"settling scheme {type(self).__name__} does not run microcircuits, and network {network.name!r} is "
                "one (it has apical or somatic projections): a scheme that settles apical inputs by one instant "
                "sweep of the rule's errors cannot settle a circuit, whose apical input is the rates of the "
                "populations above and of interneurons, which move with the somata they feed. Use dynamics.mode: euler")
        if not self.runs_relaxation and (rule.relaxation is not None or rule.relax is not None):
            raise ValueError(f"settling scheme {type(self).__name__} runs no relaxation, but the rule declares one "
                             "(relaxation or relax); present it under a scheme that does (steady), and give the rule "
                             "relaxes = True so that model files are checked before they run")
        state = network.last_state if state is None else state
        if state is None:
            raise ValueError("present() needs the free state of the batch: network.free_state(x)")
        with torch.no_grad():
            out = state.output
            state.target = target if network.sequential or target is None else target.view_as(out.rate)
            network.last_state = state  # for reading after the fact (and the deprecated population.soma & co)
            presentation = self._present(network, rule, state, capture)
        if capture is not None and self.trace_steps and not isinstance(getattr(presentation, "trajectory", None), dict):
            raise _no_trajectory(self)
        presentation.state = state
        return presentation

    def _present(self, network, rule: Rule, state: State, capture: Optional[torch.Tensor]) -> Presentation:
        raise NotImplementedError

    def describe(self, network) -> list[str]:
        """A few lines for ``--check`` and the start of a run (the first is printed when a run
        starts, so there is always one)."""
        return [f"dynamics {type(self).__name__}: a settling scheme registered from Python"]


def _no_trajectory(scheme: SettlingScheme) -> Exception:
    """The one paragraph for a scheme that declares ``trace_steps`` but kept no states when the
    recorder asked for them (``capture``), instead of the recorder's error a step later."""
    cls = type(scheme)
    try:
        where = inspect.getfile(cls)
    except (TypeError, OSError):
        where = cls.__module__
    steps = brief(cls.trace_steps)
    return DendrisimError(f"settling scheme {cls.__name__} (in {where}) declares trace_steps = {steps}, "
                          "so a record keeps those states of a presentation, but its _present returned no trajectory "
                          "for the samples asked for (capture): fill Presentation.trajectory {population: {variable: "
                          "[samples, states, *shape]}}, or set trace_steps = None (a record keeps the end state)")


def _split_drive(network, name: str, moving: set, state: State) -> tuple[Optional[torch.Tensor], list]:
    """The basal drive of ``name`` split into what stays put in a presentation and what does
    not: ``(fixed, rest)``, ``fixed`` the sum of the leading projections whose sources are
    not in ``moving`` (the forward pass's own basal when that is every projection; None
    when there is none) and ``rest`` the projections after them. Summing ``rest`` onto
    ``fixed`` (``basal_drive``) adds in the order ``Network.basal_input`` does."""
    incoming = network.incoming[name]
    n = next((i for i, proj in enumerate(incoming) if proj.source in moving), len(incoming))
    if n == len(incoming):
        return state[name].basal, []
    if n == 0:
        return None, incoming
    rates = {proj.source: state[proj.source].rate for proj in incoming[:n]}
    return basal_drive(incoming[:n], rates), incoming[n:]


def free_target(network, state: State) -> torch.Tensor:
    """The target that teaches nothing: the output's own rate in ``state`` (at the readout
    steps of a recurrent network), so ``t − r = 0``. How the steady scheme presents without a
    teacher."""
    rate = state.output.rate
    return (rate[network.readout] if network.sequential else rate).clone()


def updates(network, rule: Rule, state: State) -> None:
    """The rule's updates from ``state`` into ``.grad``; with plasticity off
    (``network.plastic`` false), no gradient at all, so the optimizer changes nothing."""
    if network.plastic:
        rule.compute_updates(network, state)
        return
    for param in chain(network.parameters(), rule.parameters()):
        param.grad = None


def _refuse_sequences(network) -> None:
    if network.sequential:  # refused by the config checks; a guard for networks built by hand
        raise ValueError("euler dynamics simulate static presentations; this network is recurrent")


def runs_under(rule_cls, scheme_cls: type[SettlingScheme]) -> bool:
    """Whether a scheme can present batches to a rule. The rule declares what it needs: one
    that speaks only the ``Rule`` protocol runs under every scheme; one with a relaxation of
    its own (pc's declared ``relaxation``, or a plugin's ``relax``) needs a scheme that runs it
    (``runs_relaxation``: steady); one whose updates are the soma's mismatch with its dendrite
    (``needs_compartments``: the microcircuit's synapse models) needs a scheme that simulates
    the compartments (``simulates_compartments``: euler)."""
    if rule_cls.needs_compartments and not scheme_cls.simulates_compartments:
        return False
    if getattr(rule_cls, "contrastive", False) and not scheme_cls.settles_free:
        return False
    if getattr(rule_cls, "needs_sweep", False) and not scheme_cls.sweeps_circuits:
        return False
    return not (rule_cls.relaxes or rule_cls.relax is not None) or scheme_cls.runs_relaxation


def schemes_of(rule_cls) -> list[str]:
    """The registered settling schemes a rule runs under."""
    return [name for name in SCHEMES.names() if runs_under(rule_cls, SCHEMES.get(name))]
