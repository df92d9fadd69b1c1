"""Predictive coding's iterative inference (Whittington & Bogacz 2017), the relaxation a rule
declares (``rule.relaxation``), which the steady scheme runs in place of its sweep."""
from __future__ import annotations

from typing import Optional

import torch

from ..losses import output_error
from ..projections import apical_sum, basal_drive
from ..state import State
from .base import Rule, _split_drive


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
