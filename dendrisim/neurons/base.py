"""The neuron-model contract: what a population type declares, and the registry of them.

A neuron model is one class in one file, registered by name with
``@dendrisim.register_neuron("name")`` (``input``, ``pyramidal`` and ``interneuron`` are
registered the same way); a population's ``type:`` in a model file names it. The class
declares, in its own body:

- its compartments, each with what it is (``variables``; what a recording
  may keep of it);
- its options, parsed from the population's YAML block the way a rule parses its
  ``plasticity:`` block (``Options``, unknown keys refused by name);
- its steady (free) state under a basal drive (``integrate``);
- its step in time and local error under simulated compartments (``step``, ``prediction``,
  ``local_error``: the euler settling scheme calls them, never the equations of a type it
  knows by name);
- its memory per neuron (``bytes_per_neuron``);
- what it offers to rules and projections (the ``offers_*``/``takes_*`` class attributes):
  an apical compartment the rule's feedback reaches, a somatic nudging input, the output's
  teacher, spatial maps for convolutions.

Everything outside the models (the graph check, shapes, the network, rules, the recorder and
the memory estimate) asks a model what it offers, never its name. Neuron models know no rule,
scheme or file.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any, ClassVar, Optional

import torch
from torch import nn

from ..errors import DendrisimDeprecationWarning
from ..registry import Registry
from ..state import PopulationState

#: population type -> neuron model class (``populations.NAME.type`` in a model file)
NEURONS: Registry[type["NeuronModel"]] = Registry("neuron model")


@dataclass(frozen=True)
class NeuronOptions:
    """The keys of a population's block that belong to its neuron model (none by default);
    a model with options subclasses this with fields made by ``dendrisim.option``."""


@dataclass(frozen=True)
class Compartments:
    r"""Constants of the conductance-coupled soma (Sacramento et al. 2018, eq. 1):

    .. math:: τ \frac{du}{dt} = -g_L u + g_B (v_B - u) + g_A (v_A - u)

    whose fixed point is ``u = a v_B + λ v_A`` with the attenuation ``a = g_B / g`` and the
    nudging ``λ = g_A / g`` (``g = g_L + g_B + g_A``).

    ``target_nudged``: the second input is a teacher that is off in the free state (an
    interneuron's somatic nudging, g_A = g_som): the dendritic prediction leaves its
    conductance out, ``a = g_B / (g_L + g_B)``, while ``λ`` stays ``g_A / g``. Without it
    (pyramidal neurons) the apical compartment is always coupled, so ``g_A`` is in ``a``."""

    tau: float
    g_leak: float
    g_basal: float
    g_apical: float
    target_nudged: bool = False

    @property
    def total(self) -> float:
        return self.g_leak + self.g_basal + self.g_apical

    @property
    def attenuation(self) -> float:
        """``g_B / g``: the dendritic prediction is ``v̂_B = attenuation · v_B`` (``g_B / (g_L +
        g_B)`` when ``target_nudged``: the soma with its nudging off)."""
        if self.target_nudged:
            return self.g_basal / (self.g_leak + self.g_basal)
        return self.g_basal / self.total

    @property
    def nudging(self) -> float:
        """``λ = g_A / g``: how far the apical input moves the soma at the fixed point."""
        return self.g_apical / self.total


class NeuronModel(nn.Module):
    """Base class of neuron models: a named group of neurons with a shape, declared
    compartments and declared offers. Subclasses set the class attributes below and, unless
    clamped, implement ``integrate`` (and, for simulated compartments, ``step``,
    ``prediction`` and ``local_error``, as :class:`~dendrisim.neurons.PyramidalPopulation` does).

    ``dendrisim.register_neuron`` checks a plugin's class when it is defined and refuses it,
    naming its file, when: ``variables`` is not a dict of names (words not starting with _,
    not a method or attribute of the population) to strings with ``rate`` among them (and
    ``soma`` when it offers the output, nudging or simulated constants); a flag is not a bool;
    ``takes_nudging`` does not go with ``second_input = "soma"`` (and without the output or an
    apical compartment); ``constants`` is not ``()`` or ``("tau", "g_leak", G1, G2)`` with
    conductances of the ``dynamics`` block; ``Options`` has a key a population block has
    already, a type a model file cannot give, a bound other than gt, ge, le, lt, or a default its own
    bounds refuse; a hook it is called with cannot take its arguments; an apical model has no
    ``derivative`` or a simulated one no ``step``, ``prediction`` and ``local_error``. Its own
    hooks run guarded: one that raises ends the run with one paragraph naming the model and the
    hook, and after ``integrate`` and ``step`` the rate in the state it was given must be like the drive (shape, dtype,
    device); ``from_config`` must return a population of the model with that name and shape,
    an activation, and its ``Compartments`` when simulated. A model with no constants is refused
    under ``dynamics.mode: euler``, and one with an ``integrate`` or ``derivative`` of its own
    inside a recurrent loop (which the network steps through time as pyramidal neurons)."""

    #: the model's keys in the population's YAML block (beyond type, size, shape, channels, activation)
    Options: ClassVar[type] = NeuronOptions
    #: its compartments and other state variables -> what each is; the names a recording may ask for
    variables: ClassVar[dict[str, str]] = {}
    #: one line on what the model is, for ``dendrisim neurons``
    summary: ClassVar[str] = ""
    #: the population's rate is clamped to the data: the network's one input, with no dynamics
    clamped: ClassVar[bool] = False
    #: it can be the network's output: its apical compartment holds the teacher signal
    offers_output: ClassVar[bool] = False
    #: the rule's feedback (the errors above, carried back) reaches its apical compartment, and
    #: explicit apical projections (top-down, lateral) may end on it when it is hidden
    offers_apical: ClassVar[bool] = False
    #: its soma is nudged one to one by the population it predicts (a ``compartment: soma``
    #: projection; an interneuron): its size and ``activation: auto`` follow that population,
    #: its dendrite takes dense projections only and it sends lateral (apical) projections only
    takes_nudging: ClassVar[bool] = False
    #: it may nudge another population's soma (the source of a ``compartment: soma`` projection)
    offers_nudging: ClassVar[bool] = False
    #: it may be a map of feature channels (``channels``, conv2d and pool projections into it)
    spatial: ClassVar[bool] = False
    #: whether apical projections out of it learn by default (lateral ones from interneurons do,
    #: top-down ones from pyramidal neurons are fixed unless set)
    apical_learns: ClassVar[bool] = False
    #: the ``dynamics`` keys of its constants under simulated compartments, in the order
    #: ``tau``, ``g_leak``, then its two conductances (empty: not simulated)
    constants: ClassVar[tuple[str, ...]] = ()
    #: the projections whose drive fills its second input under simulated compartments:
    #: ``apical`` (``Network.apical_in``) or ``soma`` (``Network.somatic_in``: its nudging)
    second_input: ClassVar[str] = "apical"
    #: whether its dendritic prediction is a function of the basal drive alone (a scheme may
    #: then compute it once for a drive that does not change in a presentation)
    prediction_from_basal: ClassVar[bool] = True

    #: the steady scheme settles it in its one top-down sweep, explicit apical projections
    #: included, because its apical input never moves its rate (burst neurons): the sweep is
    #: then exact. Such a model implements ``settle(s, apical)`` (a hidden population's
    #: variables from its summed apical input, None for none) and ``teach(s, target)`` (the
    #: output's from the target, None for no teacher)
    settles_in_sweep: ClassVar[bool] = False
    #: the variables that sweep fills in (not the forward pass): an apical projection reading
    #: one must come from a population the sweep reaches first, one above its target
    swept_variables: ClassVar[tuple[str, ...]] = ()
    #: the population type that stands in for it in its network's feedforward twin (a network
    #: of pyramidal neurons on which rules of other families run: ``dendrisim.results``); None:
    #: itself
    twin_type: ClassVar[Optional[str]] = None
    #: the family of plasticity rules its basal synapses learn by (``PlasticityRule.family``;
    #: burst neurons: ``burst``, whose sweep a rule that carries errors back would only feed);
    #: None: any rule that serves it
    learns_by: ClassVar[Optional[str]] = None
    #: its variables under another name in the twin type (burst: event -> rate)
    twin_renames: ClassVar[dict[str, str]] = {}

    #: the class of one presentation's values of the model's variables (a subclass may add
    #: aliases, as the interneuron's ``dendrite`` for ``basal``)
    State: ClassVar[type] = PopulationState

    def __init__(self, name: str, shape: tuple[int, ...]):
        super().__init__()
        self.name = name
        self.shape = tuple(int(s) for s in shape)
        self.size = math.prod(self.shape)

    def new_state(self) -> PopulationState:
        """An empty state of this population for one presentation (every variable None)."""
        return self.State(self.variables)

    # ------------------------------------------------------------------ the old attributes
    # Until issue 27 a presentation wrote its compartments onto the population objects; they
    # are read (and written) through the network's last state now, with a DeprecationWarning
    # that names the replacement, for at least one release.
    def _deprecated_state(self, name: str) -> PopulationState:
        owner = self.__dict__.get("_owner")
        network = owner() if owner is not None else None
        warnings.warn(f"population.{name} ({self.name}.{name}) is deprecated: a presentation's state is a value; read "
                      f"state[{self.name!r}].{name} from the state you have (Presentation.state, "
                      "network.free_state(x), trainer.last_state, a rule hook's state argument)",
                      DendrisimDeprecationWarning, stacklevel=3)
        state = None if network is None else network.last_state
        if state is None or self.name not in state:
            raise AttributeError(f"{self.name}.{name}: no presentation has run yet")
        return state[self.name]

    def __getattr__(self, name: str):
        if not name.startswith("_") and (name in type(self).variables
                                         or isinstance(getattr(type(self).State, name, None), property)):
            return getattr(self._deprecated_state(name), name)
        return super().__getattr__(name)

    def __setattr__(self, name: str, value) -> None:
        if not name.startswith("_") and name in type(self).variables and "_owner" in self.__dict__:
            setattr(self._deprecated_state(name), name, value)
            return
        super().__setattr__(name, value)

    @classmethod
    def from_config(cls, name: str, shape: tuple[int, ...], config: Any, *, options: Any,
                    simulated: bool) -> "NeuronModel":
        """The population ``name`` of the checked model ``config`` (a ``ModelConfig``), of
        ``shape``, with its parsed ``Options`` ``options``; ``simulated``: its compartments
        are simulated in time (a settling scheme that simulates them, euler), so it takes its
        constants from ``dynamics``."""
        return cls(name, shape)

    @classmethod
    def check(cls, name: str, config: Any, options: Any, *, file: str) -> None:
        """Raise ConfigError when population ``name`` of ``config`` cannot be this model
        (before any tensor). ``options``: its parsed ``Options``. Nothing by default."""

    @property
    def recordable(self) -> tuple[str, ...]:
        return tuple(self.variables)

    def state(self, variable: str) -> Optional[torch.Tensor]:
        """Deprecated: the value of a declared variable in the network's last state (read
        ``state[name].variable`` from the state you have instead)."""
        if variable not in self.variables:
            raise KeyError(f"{self.name} has no variable {variable!r}; it has {', '.join(self.variables)}")
        return getattr(self._deprecated_state(variable), variable)

    def bytes_per_neuron(self, itemsize: int) -> int:
        """Bytes one neuron's compartments take in one sample of a presentation (the memory
        estimate's activity term): one value of ``itemsize`` bytes per compartment."""
        return len(self.variables) * itemsize

    def describe(self) -> str:
        """One line for ``--check`` and summaries (nothing by default)."""
        return ""

    def extra_repr(self) -> str:
        return f"{self.name!r}, shape={self.shape}"

