"""Neuron models, one file each, registered by name (``populations.NAME.type``).

``input``, ``pyramidal``, ``interneuron`` and ``burst`` are built in; a plugin file registers its own
with ``@dendrisim.register_neuron("name")`` and is loaded with ``--plugin`` like a rule.
The contract is :class:`~dendrisim.neurons.NeuronModel`.
"""
from .base import NEURONS, Compartments, NeuronModel, NeuronOptions
from .burst import BurstPopulation
from .input import InputPopulation
from .interneuron import InterneuronPopulation
from .pyramidal import PyramidalPopulation

__all__ = ["NEURONS", "Compartments", "NeuronModel", "NeuronOptions", "InputPopulation", "PyramidalPopulation",
           "InterneuronPopulation", "BurstPopulation", "BUILTIN_NEURONS"]

#: the neuron models dendrisim ships
BUILTIN_NEURONS = frozenset(NEURONS.names())
