"""A presentation's state: a value, not something written on the populations.

The forward pass builds it (``Network.free_state``), a settling scheme
fills in the teacher, the apical inputs and the errors, passes it to the rule's hooks and
returns it in its ``Presentation``; the recorder, the alignment probe and the observers read
it there. Populations and projections hold parameters only, as an ``nn.Module`` holds its
weights; the state flows through a step, as an RNN cell's hidden state does.

.. code-block:: python

    state = network.free_state(x)            # the forward pass: every population's free state
    state["h1"].rate                         # [batch, *h1.shape]
    p = scheme.present(network, rule, target, state=state)
    p.state["h1"].apical, p.state.target     # after settling
"""
from __future__ import annotations

import copy
from typing import Iterable, Optional

import torch


class PopulationState:
    """The variables of one population in one presentation (``soma``, ``rate``, ... as its
    neuron model declares them), each a batched tensor or None before it is computed."""

    def __init__(self, variables: Iterable[str]):
        for var in variables:
            setattr(self, var, None)

    def get(self, variable: str) -> Optional[torch.Tensor]:
        """The value of ``variable`` (None when it was never computed)."""
        return getattr(self, variable, None)

    def __repr__(self) -> str:
        shown = ", ".join(f"{k}={tuple(v.shape) if isinstance(v, torch.Tensor) else v}"
                          for k, v in vars(self).items())
        return f"{type(self).__name__}({shown})"


class State(dict):
    """Population name -> :class:`PopulationState`, and the output's ``target`` (of the
    output's shape, ``[batch, *shape]``; ``[readout steps, batch, *shape]`` in a recurrent
    network; None without a teacher) for one presentation."""

    def __init__(self, *, input_name: str, output_name: str):
        super().__init__()
        self.input_name = input_name
        self.output_name = output_name
        #: the output's target (None: no teacher, or not presented yet)
        self.target: Optional[torch.Tensor] = None
        #: the same batch settled without a teacher, for a rule that compares the two
        #: (``contrastive``: burstprop); None otherwise
        self.free: Optional["State"] = None

    def copy(self) -> "State":
        """A new state with every population's variables as they are now (the tensors shared,
        not copied: a settling scheme replaces a variable, it does not write into it)."""
        new = State(input_name=self.input_name, output_name=self.output_name)
        for name, s in self.items():
            new[name] = copy.copy(s)
        new.target = self.target
        return new

    @property
    def input(self) -> torch.Tensor:
        """The clamped batch (the input population's rate)."""
        return self[self.input_name].rate

    @property
    def output(self) -> PopulationState:
        return self[self.output_name]

    def __repr__(self) -> str:
        return f"State({', '.join(self)}; target {'set' if self.target is not None else 'None'})"
