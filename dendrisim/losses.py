"""The loss at the output population and the teacher signal that goes with it.

The output population's activation fixes the loss (see ``Activation.canonical_loss``):

=========  ======================  =====================================
output f   loss (mean over batch)  somatic error δ_out = -B · ∂L/∂soma
=========  ======================  =====================================
softmax    cross-entropy           t − rate
sigmoid    binary cross-entropy    t − rate
linear     ½‖t − rate‖²            t − rate
other      ½‖t − rate‖²            f'(soma) ⊙ (t − rate)
=========  ======================  =====================================

The apical compartment of the output receives the teacher signal ``t − rate``.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .neurons.pyramidal import PyramidalPopulation


def loss_name(output: PyramidalPopulation) -> str:
    return output.activation.canonical_loss or "mse"


def output_loss(output: PyramidalPopulation, s, target=None, readout=None) -> torch.Tensor:
    """Mean over the batch of the per-sample loss of the output population ``output`` in its
    state ``s`` (differentiable through ``s.soma``); for a recurrent network (``soma [time,
    batch, n]``) the mean over batch and the ``readout`` time steps, with ``target [readout
    steps, batch, n]``. (``output_loss(output, target, readout)``, the call before states were
    values, reads the network's last state, with a DeprecationWarning.)"""
    if isinstance(s, torch.Tensor):  # the old call: (output, target, readout)
        s, target, readout = output._deprecated_state("soma"), s, target if readout is None else readout
    soma = s.soma if readout is None else s.soma[readout]
    soma = soma.reshape(-1, output.size)
    target = target.reshape(-1, output.size)
    kind = loss_name(output)
    if kind == "cross_entropy":
        return -(target * torch.log_softmax(soma, dim=1)).sum(1).mean()
    if kind == "binary_cross_entropy":
        return F.binary_cross_entropy_with_logits(soma, target, reduction="sum") / soma.shape[0]
    rate = output.activation.f(soma)
    return 0.5 * (target - rate).pow(2).sum(1).mean()


def sample_loss(output: PyramidalPopulation, rate: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The loss of every sample (``[batch]``) of output rates ``rate`` against ``target``,
    both ``[batch, *output.shape]``: the loss the output's activation is taught by (the
    table above), from the rates alone. What a rule that compares two presentations of the
    same batch needs (node perturbation: docs/howto/writing-a-rule.md)."""
    rate, target = rate.reshape(rate.shape[0], -1), target.reshape(target.shape[0], -1)
    kind = loss_name(output)
    if kind == "cross_entropy":
        return -(target * torch.log(rate.clamp_min(torch.finfo(rate.dtype).tiny))).sum(1)
    if kind == "binary_cross_entropy":
        return F.binary_cross_entropy(rate, target, reduction="none").sum(1)
    return 0.5 * (target - rate).pow(2).sum(1)


def output_error(output: PyramidalPopulation, s=None) -> torch.Tensor:
    """δ_out of the output population ``output`` from the teacher signal already in its state
    ``s`` (``s.apical``). (Without ``s``, the call before states were values: the network's
    last state, with a DeprecationWarning.)"""
    if s is None:
        s = output._deprecated_state("apical")
    if output.activation.canonical_loss is not None:
        return s.apical
    return output.derivative(s) * s.apical
