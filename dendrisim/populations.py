"""The built-in neuron models under their old module (``dendrisim.populations``); they live
in :mod:`dendrisim.neurons`, one file each."""
from .neurons.base import Compartments, NeuronModel
from .neurons.input import InputPopulation
from .neurons.interneuron import InterneuronPopulation
from .neurons.pyramidal import PyramidalPopulation

#: the base class of every population, under its old name
Population = NeuronModel

__all__ = ["Compartments", "InputPopulation", "InterneuronPopulation", "Population", "PyramidalPopulation"]
