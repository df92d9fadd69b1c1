"""The plasticity equations as small pure functions (rules are modules that call them).

Notation: a projection ``pre -> post`` with forward weights ``W [n_post, n_pre]``; a
batch of ``B`` samples; ``r`` presynaptic rates ``[B, n_pre]``; ``δ`` postsynaptic
somatic errors ``[B, n_post]``; ``c`` the rule's update gain (1 for backprop-like rules,
``2/σ²`` for DLL). Gradients are descent directions written into ``.grad`` and averaged
over the batch, so the learning rate does not depend on the batch size.
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F


def apical_from_feedback(delta_post: torch.Tensor, feedback: torch.Tensor) -> torch.Tensor:
    r"""Top-down input to the presynaptic apical dendrite through feedback weights.

    .. math:: a_{pre} = δ_{post} \, B^T, \qquad B \in \mathbb{R}^{n_{pre} \times n_{post}}

    ``B`` is the feedback projection's weight in torch's ``[n_post, n_pre]`` convention
    (the feedback projection runs ``post -> pre``): ``Wᵀ`` for backprop, θ for DLL.
    """
    return F.linear(delta_post.flatten(1), feedback)


def compartment_step(u: torch.Tensor, v_basal: torch.Tensor, v_apical: Optional[torch.Tensor], *, dt: float,
                     tau: float, g_leak: float, g_basal: float, g_apical: float,
                     out: Optional[torch.Tensor] = None) -> torch.Tensor:
    r"""One forward-Euler step of a population's conductance-coupled soma (Sacramento et al.
    2018, eq. 1; Urbanczik & Senn 2014):

    .. math::

        τ \frac{du}{dt} = -g_L u + g_B (v_B - u) + g_A (v_A - u)

        u_{next} = u + \frac{dt}{τ}\big(-g_L u + g_B (v_B - u) + g_A (v_A - u)\big)
                 = \Big(1 - \frac{dt}{τ} g\Big) u + \frac{dt}{τ} g_B v_B + \frac{dt}{τ} g_A v_A,
                 \qquad g = g_L + g_B + g_A

    computed in that second form (three element-wise passes). ``u``, ``v_basal`` and
    ``v_apical`` (the somatic, basal and apical potentials, of one shape; ``v_apical`` None:
    no apical input, ``v_A = 0``); ``dt`` the time step, ``tau`` the membrane time constant
    and the conductances as given. Stable for ``dt·g/τ < 2``. Returns ``u_next``, a new
    tensor, or written into ``out`` (which may be ``u`` itself, for a step in place). The
    rate is then ``f(u_next)``.

    A microcircuit's interneuron takes the same step with its dendrite in place of the basal
    compartment and its nudging in place of the apical one:
    ``τ du_I/dt = −g_L u_I + g_D (v_D − u_I) + g_som (u_{k+1} − u_I)``, i.e. ``v_basal = v_D``,
    ``g_basal = g_D``, ``v_apical`` the soma of the population it predicts, ``g_apical = g_som``.
    """
    h = dt / tau
    g = g_leak + g_basal + g_apical
    u_next = torch.mul(u, 1.0 - h * g, out=out) if out is not None else u.mul(1.0 - h * g)
    u_next.add_(v_basal, alpha=h * g_basal)
    if v_apical is not None:
        u_next.add_(v_apical, alpha=h * g_apical)
    return u_next


def weight_gradient(delta_post: torch.Tensor, rate_pre: torch.Tensor, *, gain: float,
                    out: Optional[torch.Tensor] = None) -> torch.Tensor:
    r"""Basal synapses: postsynaptic somatic error × presynaptic rate.

    .. math:: \frac{\partial L}{\partial W} \leftarrow -\frac{c}{B} \, δ_{post}^T \, r_{pre}
              \in \mathbb{R}^{n_{post} \times n_{pre}}
    """
    d, r = delta_post.flatten(1), rate_pre.flatten(1)
    if out is None:
        return torch.mm(d.t(), r).mul_(-gain / d.shape[0])
    return torch.addmm(out, d.t(), r, beta=0.0, alpha=-gain / d.shape[0], out=out)


def bias_gradient(delta_post: torch.Tensor, *, gain: float) -> torch.Tensor:
    r"""Bias: the postsynaptic somatic error, :math:`-\frac{c}{B} \sum_b δ_{post}`."""
    return delta_post.flatten(1).sum(0).mul_(-gain / delta_post.shape[0])


def feedback_gradient(apical_pre: torch.Tensor, delta_post: torch.Tensor, *, gain: float,
                      out: Optional[torch.Tensor] = None) -> torch.Tensor:
    r"""DLL apical synapses: postsynaptic apical potential × presynaptic error signal.

    .. math:: \frac{\partial L}{\partial θ} \leftarrow -\frac{c}{B} \, a_{pre}^T \, δ_{post}
              \in \mathbb{R}^{n_{pre} \times n_{post}}

    (the feedback projection's post is the forward projection's pre).
    """
    a, d = apical_pre.flatten(1), delta_post.flatten(1)
    if out is None:
        return torch.mm(a.t(), d).mul_(-gain / d.shape[0])
    return torch.addmm(out, a.t(), d, beta=0.0, alpha=-gain / d.shape[0], out=out)


def clip_(x: torch.Tensor, bound: float, counter: torch.Tensor) -> torch.Tensor:
    """Clamp ``x`` to ``±bound`` in place and add the number of clipped values to ``counter``."""
    counter.add_((x.abs() > bound).sum())
    return x.clamp_(-bound, bound)


def conv_apical_from_feedback(delta_post: torch.Tensor, feedback: torch.Tensor, *, stride, padding,
                              output_padding) -> torch.Tensor:
    r"""Top-down input through a convolutional feedback kernel ``B [c_post, c_pre, kh, kw]``.

    .. math:: a_{pre}[b, i, y, x] = \sum_{o, u, v} δ_{post}[b, o, y', x'] \, B[o, i, u, v],
              \quad y = s_h y' - p_h + u, \; x = s_w x' - p_w + v

    i.e. ``conv_transpose2d(δ, B)``, the adjoint of the forward convolution; with
    ``B = W`` it is the gradient backprop sends to the source.
    """
    return F.conv_transpose2d(delta_post, feedback, None, stride, padding, output_padding)


def conv_weight_gradient(delta_post: torch.Tensor, rate_pre: torch.Tensor, shape, *, stride, padding,
                         gain: float) -> torch.Tensor:
    r"""Convolutional synapses: the correlation of postsynaptic error and presynaptic rate,
    summed over the batch and over every position the kernel visits.

    .. math:: \frac{∂L}{∂W}[o, i, u, v] \leftarrow -\frac{c}{B} \sum_{b, y', x'}
              δ_{post}[b, o, y', x'] \; r_{pre}[b, i, s_h y' - p_h + u, s_w x' - p_w + v]

    (``r`` zero outside the image). Each kernel entry pairs one output channel with one
    input channel at one offset: batch, channel and position axes are never mixed. The
    same function gives DLL's θ update with the apical potential in place of ``r``.
    """
    grad = torch.ops.aten.convolution_backward(
        delta_post, rate_pre, delta_post.new_empty(1).expand(shape), None, list(stride), list(padding),
        [1, 1], False, [0, 0], 1, (False, True, False))[1]
    # laid out like the parameter (channels-last inputs may give a channels-last gradient)
    return grad.contiguous().mul_(-gain / delta_post.shape[0])
