"""Projections: synapses from one population onto one compartment of another."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .config.schema import ProjectionConfig
from .init import Initializer, initialize


class Projection(nn.Module):
    """Dense synapses ``W [n_post, n_pre]`` (torch's convention) and an optional bias.

    The projection knows its two populations by name only. Its drive onto the target
    compartment is ``W · rate_pre + b``, computed for a whole batch at once.
    """

    def __init__(self, config: ProjectionConfig, n_pre: int, n_post: int, init: Initializer, init_options: object):
        super().__init__()
        self.config = config
        self.source = config.source
        self.target = config.target
        self.compartment = config.compartment
        self.kind = config.kind
        self.learnable = config.learnable
        self.lr_scale = config.lr_scale
        self.weight = nn.Parameter(torch.empty(n_post, n_pre), requires_grad=config.learnable)
        self.bias = nn.Parameter(torch.empty(n_post), requires_grad=config.learnable) if config.bias else None
        initialize(self.weight, self.bias, init, init_options)

    @property
    def name(self) -> str:
        return self.config.name

    def drive(self, rate_pre: torch.Tensor) -> torch.Tensor:
        """Input delivered to the target compartment, ``[batch, n_post]``."""
        return F.linear(rate_pre.flatten(1), self.weight, self.bias)

    def parameters_to_learn(self) -> list[nn.Parameter]:
        return [p for p in (self.weight, self.bias) if p is not None] if self.learnable else []

    def extra_repr(self) -> str:
        n_post, n_pre = self.weight.shape
        return f"{self.name!r}, {n_pre} -> {n_post}, {self.compartment}, bias={self.bias is not None}, learnable={self.learnable}"
