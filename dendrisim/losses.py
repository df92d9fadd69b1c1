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

from .populations import PyramidalPopulation


def loss_name(output: PyramidalPopulation) -> str:
    return output.activation.canonical_loss or "mse"


def output_loss(output: PyramidalPopulation, target: torch.Tensor, readout=None) -> torch.Tensor:
    """Mean over the batch of the per-sample loss (differentiable through ``soma``); for a
    recurrent network (``soma [time, batch, n]``) the mean over batch and the ``readout``
    time steps, with ``target [readout steps, batch, n]``."""
    soma = output.soma if readout is None else output.soma[readout]
    soma = soma.reshape(-1, output.size)
    target = target.reshape(-1, output.size)
    kind = loss_name(output)
    if kind == "cross_entropy":
        return -(target * torch.log_softmax(soma, dim=1)).sum(1).mean()
    if kind == "binary_cross_entropy":
        return F.binary_cross_entropy_with_logits(soma, target, reduction="sum") / soma.shape[0]
    rate = output.activation.f(soma)
    return 0.5 * (target - rate).pow(2).sum(1).mean()


def output_error(output: PyramidalPopulation) -> torch.Tensor:
    """δ_out from the teacher signal already in ``output.apical``."""
    if output.activation.canonical_loss is not None:
        return output.apical
    return output.derivative() * output.apical
