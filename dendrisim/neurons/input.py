"""The input population: rates clamped to the data, no dynamics."""
from __future__ import annotations

import torch

from .base import NEURONS, NeuronModel


@NEURONS.register("input")
class InputPopulation(NeuronModel):
    """Neurons whose rate is clamped to the data (a model's one input population)."""

    variables = {"rate": "the clamped data"}
    summary = "clamped data: the network's one input population"
    clamped = True
    #: an apical projection from the input (refused by the graph check) would learn by default
    apical_learns = True

    def clamp(self, s, x: torch.Tensor) -> None:
        """``s.rate = x``: the batch, clamped (``s`` the population's state)."""
        s.rate = x
