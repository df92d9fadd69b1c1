r"""Settling schemes: how apical inputs, errors and somata come to be over one presentation.

A settling scheme (chosen by the model file's ``dynamics.mode``) presents a batch: given the
network, the rule and the target, it settles every compartment and leaves the rule's
updates in ``.grad`` (:meth:`SettlingScheme.present`). It returns what observers need (the
trajectory the recorder keeps) in a :class:`Presentation` instead of leaving it in the
populations. The rule only declares (what a scheme reads of it is the :class:`Rule`
protocol: its feedback weights and gains, ``truncate``, pc's ``relaxation``) and computes
how a projection changes from its two ends (``compute_updates``); the scheme decides when
each compartment is computed. So every rule whose apical input comes through feedback
weights runs under every scheme, with no per-rule code. The equations each scheme uses
are written once: the apical input from the errors above (``projections.apical_sum``), the
basal drive (``projections.basal_drive``), both sums over projections, and one population's
Euler step (``functional.compartment_step``, a pure function of tensors).

``steady`` (the default): the sweep. The forward pass leaves ``soma = basal``; the scheme then
fills apical inputs and errors top-down in one pass through the rule's feedback (backward
through time in a recurrent network), and the updates follow. Exact and instant. For a
rule that declares a relaxation (pc's iterative inference, ``rule.relaxation``) the scheme
runs that relaxation (:func:`relax`) in place of the sweep.

``euler``: simulated compartments, one phase. Rate-based, conductance-coupled pyramidal
neurons (Sacramento, Costa, Bengio & Senn 2018, eq. 1; Urbanczik & Senn 2014), every
population stepped at once by forward Euler from the state of the previous step:

.. math::

    τ \frac{du}{dt} &= -g_L u + g_B (v_B - u) + g_A (v_A - u), \qquad r = f(u) \\
    v_B &= Σ_p W_p r_{pre} + b                 &&\text{basal: feedforward drive} \\
    v̂_B &= \tfrac{g_B}{g} v_B, \quad λ = \tfrac{g_A}{g}, \quad g = g_L + g_B + g_A
                                               &&\text{dendritic prediction, nudging} \\
    e &= (f(u) - f(v̂_B)) / λ                  &&\text{local error: soma against dendrite} \\
    v_A &= \text{top\_down}(e \text{ of the populations above})
                                               &&\text{θ (dll), Wᵀ (bp), B (fa, kp), direct B (dfa)}

The output's apical input is the teacher, computed from its dendritic prediction,
``v_A = t − f(v̂_B)``; for an output whose loss is canonical for its activation (softmax,
sigmoid, linear) the error is the potential mismatch ``e = (u − v̂_B)/λ``, which at the
fixed point is exactly ``t − f(v̂_B)``, today's ``δ_out``. A presentation starts from the
free state the forward pass leaves (``u = v̂_B``: no teacher yet, every error zero), and the
teacher's error reaches one population further down per step, as in a circuit: there is
no backward sweep. At the fixed point ``u = v̂_B + λ v_A``; with ``g_L = 0`` and ``g_A → 0``,
``v̂_B → v_B`` and ``e → f'(v̂_B) ⊙ v_A``, the steady δ, so the sweep is the exact limit of
the dynamics (first order in λ; ``tests/test_dynamics.py``). With a leak the forward
drive is attenuated by ``g_B/g`` in every population.

A microcircuit (Sacramento et al. 2018; ``Network.circuit``) adds interneurons and explicit
apical and somatic projections, and only euler runs it (``runs_circuits``; the sweep cannot
settle an apical input that moves with the somata it feeds):

.. math::

    v_A &= \text{top\_down}(e) + Σ_{p \in apical} W_p r_{pre}
                                               &&\text{hidden: the rule's part + top-down and lateral rates} \\
    τ \frac{du_I}{dt} &= -g_L u_I + g_D (v_D - u_I) + g_{som} (u_{k+1} - u_I)
                                               &&\text{interneuron: dendrite } v_D = Σ_p W_p r_{pre} + b \\
    v̂_D &= \tfrac{g_D}{g_L + g_D} v_D, \quad e_I = (f(u_I) - f(v̂_D)) / λ_I
                                               &&\text{its prediction leaves the nudging out}

The explicit apical input is there from step 0 (the free state); the interneuron takes the
pyramidal step with ``g_B = g_D``, ``g_A = g_som`` and the soma of the population it
predicts, one to one, in its apical slot (``nudging``). Without a teacher (``target`` None)
the output's apical input is zero.

Updates are those of the rule evaluated on the dynamic quantities (rate ``r = f(u)``,
error ``e``, apical ``v_A``): basal synapses ``ΔW ∝ e_postᵀ r_pre`` (the Urbanczik–Senn form),
DLL's θ from ``v_A`` and ``e``. ``plasticity: settled`` takes them at the end of the
presentation; ``online`` averages them over its steps. Euler is stable for
``dt·g/τ < 2`` (checked before any tensor exists).

One name for one concept: a *settling scheme* (``dynamics.mode`` in the model file, this
module ``dendrisim.settling``, the registry ``SCHEMES``).
"""
from __future__ import annotations

import functools
import inspect
import warnings
from dataclasses import dataclass
from itertools import chain
from typing import Optional, Protocol

import torch

from . import functional as Fn
from .config.schema import DynamicsConfig
from .losses import output_error
from .projections import apical_sum, basal_drive, explicit_drive
from .registry import Registry
from .state import State


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

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        fn = cls.__dict__.get("_present")
        params = list(inspect.signature(fn).parameters)[1:] if callable(fn) else []
        if params[2:3] == ["target"]:  # _present(network, rule, target, capture): before states were values
            def adapted(self, network, rule, state, capture, _fn=fn):
                warnings.warn(f"{type(self).__name__}._present(network, rule, target, capture) is the signature before "
                              "a presentation's state became a value: write _present(network, rule, state, capture) "
                              "and read and write state[name] (docs/howto/dynamics.md)", DeprecationWarning, stacklevel=2)
                return _fn(self, network, rule, state.target, capture)

            cls._present = functools.update_wrapper(adapted, fn)

    def __init__(self, config: DynamicsConfig):
        self.config = config

    def present(self, network, rule: Rule, target: Optional[torch.Tensor], *, state: Optional[State] = None,
                capture: Optional[torch.Tensor] = None) -> Presentation:
        """Present a batch from ``state``, the free state of its forward pass
        (``network.free_state(x)``; by default the network's last one): settle every
        compartment for ``target`` and leave ``rule``'s updates in ``.grad`` (none while
        ``network.plastic`` is off); the state, filled in, comes back in the
        :class:`Presentation`. ``target`` None: no teacher (a phase with ``teacher: false``),
        the output is not nudged. ``capture``: batch positions whose trajectory to return
        (schemes with ``trace_steps``). No autograd graph is built."""
        if getattr(network, "circuit", False) and not self.runs_circuits:
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
        presentation.state = state
        return presentation

    def _present(self, network, rule: Rule, state: State, capture: Optional[torch.Tensor]) -> Presentation:
        raise NotImplementedError

    def describe(self, network) -> list[str]:
        """A few lines for ``--check`` and the start of a run."""
        return []


@SCHEMES.register("steady")
class SteadyState(SettlingScheme):
    """The sweep: every population settled top-down through the rule's feedback, then the
    rule's updates; a rule that declares a relaxation (pc) is relaxed instead (:func:`relax`)."""

    runs_relaxation = True

    def _present(self, network, rule: Rule, state: State, capture: Optional[torch.Tensor]) -> Presentation:
        if state.target is None:
            # no teacher: the output's target is what it already says, so every error is zero
            state.target = free_target(network, state)
        if rule.relaxation is not None:
            iterations, converged = relax(network, rule, state)
            rule.relaxed(iterations, converged)
            updates(network, rule, state)
            return Presentation(iterations=iterations, converged=converged)
        if rule.relax is not None:
            rule.relax(network, state)
        else:
            self.settle(network, rule, state)
        updates(network, rule, state)
        return Presentation()

    # ------------------------------------------------------------------ the sweep
    def settle(self, network, rule: Rule, state: State) -> None:
        """Fill ``apical`` and ``error`` of every pyramidal population in ``state``, top-down:
        ``a_l = g Σ_m δ_m B_{l←m}ᵀ`` (the rule's feedback and gain), ``δ_l = f'(soma_l) ⊙ a_l``."""
        if network.sequential:
            return self._settle_through_time(network, rule, state)
        out = state.output
        out.apical = state.target.view_as(out.rate) - out.rate
        out.error = output_error(network.output, out)
        for pop in reversed(list(network.hidden())):
            self._set_apical(rule, pop, state[pop.name], rule.apical_input(network, pop, state))

    @staticmethod
    def _set_apical(rule: Rule, pop, s, apical: Optional[torch.Tensor]) -> None:
        """Gain and clip the apical input, then ``error = f'(soma) ⊙ apical`` into ``pop``'s
        state ``s``. None (no projection out of ``pop`` feeds back under the rule:
        ``carries_feedback`` false) leaves the apical dendrite silent, so ``pop`` gets no error."""
        if apical is None:
            s.apical = torch.zeros_like(s.rate)
            s.error = torch.zeros_like(s.rate)
            return
        apical = rule.gain_and_clip(pop, apical)
        s.apical = apical
        s.error = pop.derivative(s).mul_(apical)

    # ----- recurrent networks: the same sweep, backward through time ------------------
    def _settle_through_time(self, network, rule: Rule, state: State) -> None:
        r"""The sweep of an unrolled network, compartments ``[time, batch, ...]``.

        The teacher reaches the output at the readout steps (``network.readout``); a
        projection with delay ``d`` (0 feedforward, 1 recurrent) carries its target's
        error at ``t + d`` back to its source at ``t``:

        .. math:: a_l(t) = g \sum_{p: l → m} δ_m(t + d_p) \, B_p^T, \qquad δ_l(t) = f'(soma_l(t)) ⊙ a_l(t)

        (``g`` the rule's apical gain, ``B`` its feedback weights; ``δ(T) = 0``): the sum of
        ``dendrisim.projections.apical_sum``, over every time step at once. Outside
        recurrent loops every time step is done at once; inside a loop the recursion
        steps backward from the last time step. With ``truncate: k`` (``rule.truncate``) the
        recurrent terms from ``t + 1`` to ``t`` are dropped where ``t + 1`` is a multiple of ``k``.
        """
        out = state.output
        apical = torch.zeros_like(out.rate)
        apical[network.readout] = state.target - out.rate[network.readout]
        out.apical = apical
        out.error = output_error(network.output, out)
        T = out.rate.shape[0]
        for members, looped in reversed(network.plan):
            hidden = [n for n in members if n != network.output_name and n in network.needs_error]
            if not hidden:
                continue
            if not rule.temporal_feedback:
                for name in hidden:
                    pop = network.populations[name]
                    self._set_apical(rule, pop, state[name], rule.apical_input(network, pop, state))
                continue
            inside = set(members) if looped else set()
            if not looped:
                pop = network.populations[hidden[0]]
                self._set_apical(rule, pop, state[pop.name],
                                 self._apical_over_time(network, rule, pop, state, skip=inside))
                continue
            self._settle_loop(network, rule, state, hidden, inside, T)

    @staticmethod
    def _apical_over_time(network, rule: Rule, pop, state: State, skip: set) -> torch.Tensor:
        """Feedback onto ``pop`` from targets outside ``skip``, every time step at once: the
        time-batched ``apical_sum``, a recurrent projection's error taken one step later
        (``δ(t + 1)``, zero after the last step and at the truncation's block boundaries)."""
        k = rule.truncate
        terms = []
        for proj in network.outgoing[pop.name]:
            if proj.target in skip:
                continue
            delta = state[proj.target].error
            if proj.kind == "recurrent":
                delta = torch.cat([delta[1:], torch.zeros_like(delta[:1])])
                if k:
                    delta[k - 1::k] = 0  # t + 1 a multiple of k: the block boundary
            terms.append((proj, delta.flatten(0, 1), rule.feedback_weight(network, proj), rule.feedback_gain(proj)))
        rate = state[pop.name].rate
        total = apical_sum(terms)
        return torch.zeros_like(rate) if total is None else total.view_as(rate)

    def _settle_loop(self, network, rule: Rule, state: State, hidden: list[str], inside: set, T: int) -> None:
        """Inside a recurrent loop, one time step at a time backward: ``apical_sum`` of the
        errors inside the loop (at ``t``, or ``t + 1`` through a recurrent projection) added to
        the feedback from outside, then gain, clip and ``δ = f' ⊙ a``."""
        k = rule.truncate
        pops = {n: network.populations[n] for n in hidden}
        apical = {n: self._apical_over_time(network, rule, p, state, skip=inside) for n, p in pops.items()}
        errors = {n: torch.empty_like(a) for n, a in apical.items()}
        if network.output_name in inside:
            errors[network.output_name] = state.output.error
        inner = {n: [(p, p.kind == "recurrent", rule.feedback_weight(network, p), rule.feedback_gain(p))
                     for p in network.outgoing[n] if p.target in inside and p.target in errors]
                 for n in hidden}  # looked up once
        for t in reversed(range(T)):
            cut = t + 1 >= T or (k and (t + 1) % k == 0)  # no recurrent term from t + 1
            for name in reversed(hidden):
                pop = pops[name]
                a_t = apical_sum([(proj, errors[proj.target][t + 1] if recurrent else errors[proj.target][t], fb, gain)
                                  for proj, recurrent, fb, gain in inner[name] if not (recurrent and cut)],
                                 start=apical[name][t])
                rule.gain_and_clip(pop, a_t)
                s = state[name]
                torch.mul(pop.activation.df(s.soma[t], s.rate[t]), a_t, out=errors[name][t])
        for name in pops:
            state[name].apical, state[name].error = apical[name], errors[name]

    def describe(self, network) -> list[str]:
        return ["dynamics steady: soma = basal; the rule settles apical inputs and errors in one top-down sweep"]


def relax(network, rule: Rule, state: State) -> tuple[int, Optional[bool]]:
    r"""The relaxation a rule declares (``rule.relaxation``: pc's iterative inference,
    Whittington & Bogacz 2017), run on the state the forward pass left. Each hidden soma
    ``x_l`` moves, for up to T steps of size η:

    .. math::

        r_l &= f(x_l)                                            &&\text{once per step} \\
        μ_m &= Σ_p W_{p→m} r_p + b                               &&\text{basal prediction (basal\_drive)} \\
        ε_l &= x_l - μ_l, \qquad ε_{out} = γ\,(t - f(μ_{out}))   &&\text{(× f' for a non-canonical loss)} \\
        a_l &= Σ_m ε_m W_{l→m}                                   &&\text{the rule's feedback (apical\_sum)} \\
        x_l &\leftarrow x_l + η\,(f'(x_l) ⊙ a_l - ε_l)

    from the feedforward state (every ε zero below the output), until ``max |Δx| <
    tolerance`` (checked only with a tolerance, one host sync per step). What does not move
    in a presentation is computed once: a population fed only by the input keeps the
    forward pass's basal drive as its prediction, a leading run of projections from
    sources that do not relax is summed once, and the first step takes its rates and
    predictions from the forward pass, whose state it starts from. The errors spread down
    one population per step from there: a population whose ε and whose targets' ε are still
    exactly zero (``soma = basal`` in the forward pass) stays put without computing its
    top-down input, and only moved populations get new rates and predictions. Leaves ``soma = x``, ``basal = μ``, ``rate =
    f(x)``, ``apical = a`` and ``error = ε`` in every hidden population and the output's
    teacher and error, for ``compute_updates``. Returns the steps run and whether the
    tolerance was met (None with tolerance 0). The top-down input is the raw feedback sum
    (no apical gain or clip), as pc defines it.
    """
    return _Relaxation(network, rule, state).run()


class _Relaxation:
    """One presentation's relaxation (:func:`relax`): what stays put is looked up once, then
    :meth:`run` moves the somata."""

    def __init__(self, network, rule: Rule, state: State):
        self.network, self.state, self.target, self.o = network, state, state.target, rule.relaxation
        self.out = out = network.output
        self.hidden = hidden = list(network.hidden())
        self.x = x = {pop.name: state[pop.name].soma.clone() for pop in hidden}
        self.rates = {name: state[name].rate for name in network.populations if name not in x}  # do not move
        self.predicted = predicted = {name: _split_drive(network, name, set(x), state) for name in [*x, out.name]}
        self.feedback = {name: [(proj, rule.feedback_weight(network, proj), rule.feedback_gain(proj))
                                for proj in network.outgoing[name]] for name in x}  # looked up once
        # the populations each one's prediction moves with, and those its top-down input comes from
        self.sources = {name: {proj.source for proj in rest if proj.source in x}
                        for name, (_, rest) in predicted.items()}
        self.targets = {name: {proj.target for proj, _, _ in terms} for name, terms in self.feedback.items()}
        # quiet: hidden populations whose ε is exactly zero (x still the forward soma, its prediction
        # still the forward basal, and soma = basal there): one whose targets are all quiet too gets
        # a zero top-down input, so it stays put this step, and its rate and the predictions from it
        # are the ones already computed (the errors spread down one population per step)
        self.quiet = {pop.name for pop in hidden if state[pop.name].soma is state[pop.name].basal}
        # x is the forward pass's soma: its rates and predictions are the forward pass's
        self.rates.update((pop.name, state[pop.name].rate) for pop in hidden)
        self.mu = {name: state[name].basal for name in predicted}

    def predict(self, names) -> None:
        predicted, rates = self.predicted, self.rates
        self.mu = dict(self.mu, **{name: basal_drive(predicted[name][1], rates, start=predicted[name][0])
                                   .reshape(-1, *self.network.populations[name].shape) for name in names})

    def errors(self) -> dict:
        out, mu, o = self.out, self.mu, self.o
        s = self.state[out.name]
        s.soma = s.basal = mu[out.name]
        s.rate = out.activation.f(s.soma)
        s.apical = self.target - s.rate
        eps = output_error(out, s)
        eps = {out.name: eps if o.error_scale == 1.0 else eps * o.error_scale}
        for name in self.x:
            eps[name] = self.x[name] - mu[name]
        return eps

    def top_down(self, name: str, eps: dict) -> torch.Tensor:
        return apical_sum([(proj, eps[proj.target], fb, gain) for proj, fb, gain in self.feedback[name]])

    def after(self, moved: set) -> None:
        """Recompute the rates of the populations that ``moved`` and the predictions from them."""
        for pop in self.hidden:
            if pop.name in moved:
                self.rates[pop.name] = pop.activation.f(self.x[pop.name])
        self.predict([name for name in self.predicted if self.sources[name] & moved])

    def step(self, eps: dict) -> tuple[set, list]:
        """Every hidden soma that can move one step; the moved ones and their ``aminmax`` (with a tolerance)."""
        x, quiet, targets, rates, o = self.x, self.quiet, self.targets, self.rates, self.o
        moved, extremes = set(), []
        for pop in self.hidden:
            name = pop.name
            if name in quiet and targets[name] <= quiet:
                continue  # ε and the top-down input are exactly zero: Δx = 0
            dx = pop.activation.df(x[name], rates[name]).mul_(self.top_down(name, eps)).sub_(eps[name])
            x[name].add_(dx, alpha=o.rate)
            moved.add(name)
            if o.tolerance:
                extremes.extend(torch.aminmax(dx))  # max |Δx| is the larger |extreme|: one pass, no abs
        quiet -= moved
        quiet -= {name for name in quiet if self.sources[name] & moved}
        return moved, extremes

    def run(self) -> tuple[int, Optional[bool]]:
        o = self.o
        steps, converged, moved = 0, None, set()
        for steps in range(1, o.steps + 1):
            if moved:
                self.after(moved)
            moved, extremes = self.step(self.errors())
            if o.tolerance:
                # one host sync per step for every population together (a NaN never converges)
                change = float(torch.stack(extremes).abs_().max()) * o.rate if extremes else 0.0
                if change < o.tolerance:
                    converged = True
                    break
        else:
            converged = False if o.tolerance else None
        self.after(moved)
        eps = self.errors()
        self.state[self.out.name].error = eps[self.out.name]
        for pop in self.hidden:
            name, s = pop.name, self.state[pop.name]
            s.soma, s.basal, s.rate = self.x[name], self.mu[name], self.rates[name]
            s.apical = self.top_down(name, eps)
            s.error = eps[name]
        return steps, converged


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


@SCHEMES.register("euler")
class EulerDynamics(SettlingScheme):
    """Forward-Euler integration of every pyramidal population (and a microcircuit's
    interneurons) at once (module docstring)."""

    simulates_compartments = True
    runs_relaxation = False
    runs_circuits = True

    def __init__(self, config: DynamicsConfig):
        super().__init__(config)
        K, r = config.steps, config.record_every
        self.trace_steps = sorted(set(range(0, K + 1, r)) | {K})

    def _present(self, network, rule: Rule, state: State, capture: Optional[torch.Tensor]) -> Presentation:
        """One presentation: from the free state, ``steps`` Euler steps. Each step first
        observes the state (basal drives from the current rates, errors from the current
        somata, apical inputs from the errors above and the explicit apical projections),
        then moves every soma (:func:`dendrisim.functional.compartment_step`); the updates
        come from the last observation (``settled``) or the mean over steps 1..K
        (``online``). What does not change within a presentation is computed once: the
        drive of the projections from the input (the forward pass's basal, for a population
        fed by the input alone) and then that population's dendritic prediction and its
        rate ``f(v̂_B)``. ``state.target`` None: no teacher, the output's apical input is zero.

        In a microcircuit (``network.circuit``) a population's apical input is the rule's
        part (``top_down``, hidden pyramidal populations, from step 1) plus the drive of its
        explicit apical projections (top-down and lateral rates, from step 0: it is not zero
        in the free state), and an interneuron's is its nudging, the soma of the population
        it predicts (:func:`dendrisim.projections.explicit_drive` of ``network.apical_in``
        and ``network.somatic_in``); every population then takes the same Euler step."""
        _refuse_sequences(network)
        c = self.config
        K, online = c.steps, c.plasticity == "online"
        pops = list(network.simulated())
        out, target = network.output, state.target
        teach = set(network.needs_error) | {out.name}
        taught = [p for p in pops if p.name in teach]  # the others need no error (a frozen embedding's target)
        for p in pops:
            if p.name not in teach:
                state[p.name].apical = state[p.name].error = None
        # the apical inputs: (population, whether the rule's feedback reaches it, its explicit projections)
        inputs = {"apical": network.apical_in, "soma": network.somatic_in}
        apical = [(p, p is not out and p.name in teach and p.offers_apical, inputs[p.second_input][p.name])
                  for p in pops]
        apical = [(p, fed, explicit) for p, fed, explicit in apical if fed or explicit]
        stray = [proj.name for p in pops for kind, lists in inputs.items() for proj in lists[p.name]
                 if kind != p.second_input or p is out]
        if stray:  # refused by the config checks: a guard for networks built by hand
            raise ValueError(f"{', '.join(stray)}: apical projections end on hidden pyramidal populations (the "
                             "output's apical compartment holds the teacher), somatic ones on interneurons")
        soma = {p.name: state[p.name].soma.clone() for p in pops}  # the free state of the forward pass
        trace = None if capture is None else {p.name: {v: [] for v in p.recordable} for p in pops}
        params = [q for q in chain(network.parameters(), rule.parameters()) if q.requires_grad] if online else []
        sums = None
        moving = {p.name for p in pops}
        drives = {p.name: _split_drive(network, p.name, moving, state) for p in pops}
        fixed = {}  # v̂_B and f(v̂_B) of the populations whose basal drive never changes, once computed
        rates = {name: state[name].rate for name in network.populations if name not in moving}
        basal = {p.name: state[p.name].basal for p in pops}
        reads = {"rate": rates, "soma": soma}  # what explicit projections read (rates kept current below)
        for k in range(K + 1):
            rates.update((p.name, state[p.name].rate) for p in pops)
            if k:  # the basal drive of the current rates (at k = 0 the forward pass's)
                basal = {p.name: start if not rest else basal_drive(rest, rates, start=start)
                         for p in pops for start, rest in (drives[p.name],)}
            for p in pops:
                state[p.name].soma, state[p.name].basal = soma[p.name], basal[p.name]
            local_errors(network, state, taught, fixed=fixed, drives=drives)
            for p, fed, explicit in apical:
                # in the free state every error is exactly zero, and so is its feedback
                total = rule.top_down(network, p, state) if fed and k else None
                if explicit:  # a new tensor (every drive is), summed after the rule's gain and clip
                    drive = explicit_drive(explicit, reads)
                    total = drive if total is None else total.add_(drive)
                state[p.name].apical = torch.zeros_like(soma[p.name]) if total is None else total
            if trace is not None and k in self.trace_steps:
                self._keep(trace, pops, state, capture)
            if online and k and network.plastic:
                sums = self._accumulate(rule, network, state, params, sums)
            if k == K:
                break
            for p in pops:  # the neuron model's own step (the pyramidal one: functional.compartment_step)
                p.step(state[p.name], soma[p.name], basal[p.name], dt=c.dt)
        if online and network.plastic:
            for param, total in zip(params, sums or [None] * len(params)):
                param.grad = None if total is None else total.div_(K)
        else:
            updates(network, rule, state)
        return Presentation(trajectory=None if trace is None else self._finish_trace(trace))

    def describe(self, network) -> list[str]:
        c = self.config
        lines = [f"dynamics euler: {c.steps} Euler steps of dt {c.dt} per presentation, plasticity {c.plasticity}, "
                 f"records keep {len(self.trace_steps)} of its {c.steps + 1} states"]
        for pop in network.simulated():
            k = pop.compartments
            stable = f"dt·g/tau {c.dt * k.total / k.tau:.3g} (stable below 2)"
            lines.append(f"  {pop.name}: {pop.describe()}, {stable}")
        return lines

    # ------------------------------------------------------------------ online plasticity
    @staticmethod
    def _accumulate(rule, network, state: State, params, sums):
        """Add this step's updates to the running sums (a parameter no update reaches keeps None)."""
        rule.compute_updates(network, state)
        sums = sums or [None] * len(params)
        for i, q in enumerate(params):
            if q.grad is not None:
                sums[i] = q.grad.clone() if sums[i] is None else sums[i].add_(q.grad)
        return sums

    # ------------------------------------------------------------------ recorded trajectory
    @staticmethod
    def _keep(trace: dict, pops, state: State, positions: torch.Tensor) -> None:
        for p in pops:
            for var, values in trace[p.name].items():
                value = getattr(state[p.name], var)
                values.append(None if value is None else value.index_select(0, positions))

    @staticmethod
    def _finish_trace(trace: dict) -> dict[str, dict[str, torch.Tensor]]:
        return {pop: {var: torch.stack(values, 1) for var, values in variables.items() if values and values[0] is not None}
                for pop, variables in trace.items()}


def local_errors(network, state: State, pops, *, fixed: Optional[dict] = None, drives: Optional[dict] = None
                 ) -> None:
    r"""The output's teacher and every population's local error under simulated compartments,
    from the somata and basal drives in ``state`` (the equations of the euler scheme, for any
    scheme that simulates compartments): the output's apical input ``v_A = t − f(v̂_B)``
    (zero with no ``state.target``) and the error of each of ``pops`` (neuron models; an
    interneuron with its own prediction ``v̂_D``),

    .. math:: e = (f(u) − f(v̂_B)) / λ, \qquad e_{out} = (u − v̂_B) / λ \text{ for a canonical loss},

    ``v̂_B`` the model's ``prediction`` and ``e`` its ``local_error``. ``fixed`` and ``drives``
    (the euler scheme's): ``v̂_B`` and ``f(v̂_B)`` of a population whose basal drive never
    changes in the presentation (``drives[name][1]`` empty) are computed once and kept in
    ``fixed``."""
    out, target = network.output, state.target
    for p in pops:
        c, st = p.compartments, state[p.name]
        if fixed is not None and p.name in fixed:
            predicted, f_predicted = fixed[p.name]
            shared = True
        else:
            predicted = p.prediction(st, st.basal)
            f_predicted = p.activation.f(predicted)
            # the basal never changes and the model predicts from it alone: keep both for the next steps
            shared = fixed is not None and not drives[p.name][1] and p.prediction_from_basal
            if shared:
                fixed[p.name] = (predicted, f_predicted)
        if p is out:
            st.apical = torch.zeros_like(f_predicted) if target is None else target - f_predicted
            if p.activation.canonical_loss is not None:
                st.error = (st.soma - predicted).div_(c.nudging)
                continue
        # e = (f(u) − f(v̂_B)) / λ, into f(v̂_B)'s storage unless it is kept or is the basal
        # drive itself (attenuation 1, no leak, and a linear f: an interneuron's dendrite)
        own = not shared and f_predicted is not st.basal
        st.error = p.local_error(st.rate, f_predicted, out=f_predicted if own else None)


def runs_under(rule_cls, scheme_cls: type[SettlingScheme]) -> bool:
    """Whether a scheme can present batches to a rule. The rule declares what it needs: one
    that speaks only the ``Rule`` protocol runs under every scheme; one with a relaxation of
    its own (pc's declared ``relaxation``, or a plugin's ``relax``) needs a scheme that runs it
    (``runs_relaxation``: steady); one whose updates are the soma's mismatch with its dendrite
    (``needs_compartments``: the microcircuit's synapse models) needs a scheme that simulates
    the compartments (``simulates_compartments``: euler)."""
    if rule_cls.needs_compartments and not scheme_cls.simulates_compartments:
        return False
    return not (rule_cls.relaxes or rule_cls.relax is not None) or scheme_cls.runs_relaxation


def schemes_of(rule_cls) -> list[str]:
    """The registered settling schemes a rule runs under."""
    return [name for name in SCHEMES.names() if runs_under(rule_cls, SCHEMES.get(name))]

