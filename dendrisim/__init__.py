"""dendrisim: pyramidal-neuron networks trained by Dendritic Localized Learning and its rivals.

From Python: ``dendrisim.load(path, overrides)`` gives an :class:`Experiment`,
``dendrisim.Trainer(experiment, device=..., out=...)`` trains it (``fit``, ``step``,
``evaluate``, ``network``). Rules of your own subclass :class:`PlasticityRule` and register
with ``@dendrisim.register_rule("name")``.

The public names are imported when first used (PEP 562), not when the package is: ``import
dendrisim`` costs no PyTorch, so ``dendrisim --version`` and the listing commands start in a
fraction of a second, and ``from dendrisim import Trainer`` imports what Trainer needs then.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import warnings

from ._lazy import lazy_names
from ._version import __version__
from .errors import DendrisimDeprecationWarning

# dendrisim's own deprecations are shown wherever they come from (a plugin file, the trainer)
warnings.filterwarnings("default", category=DendrisimDeprecationWarning)

#: public name -> (module, attribute in it)
_PUBLIC = {
    "Trainer": ("dendrisim.api", "Trainer"),
    "load": ("dendrisim.api", "load"),
    "load_experiment": ("dendrisim.builder", "load_experiment"),
    "Experiment": ("dendrisim.config", "Experiment"),
    "option": ("dendrisim.config.schema", "opt"),
    "ConfigError": ("dendrisim.errors", "ConfigError"),
    "DataError": ("dendrisim.errors", "DataError"),
    "DendrisimError": ("dendrisim.errors", "DendrisimError"),
    "Network": ("dendrisim.network", "Network"),
    "RULES": ("dendrisim.plasticity", "RULES"),
    "PlasticityRule": ("dendrisim.plasticity", "PlasticityRule"),
    "RuleOptions": ("dendrisim.plasticity", "RuleOptions"),
    "build_rule": ("dendrisim.plasticity", "build_rule"),
    "PluginError": ("dendrisim.plugins", "PluginError"),
    "load_plugin": ("dendrisim.plugins", "load_plugin"),
    "register_rule": ("dendrisim.plugins", "register_rule"),
    "register_neuron": ("dendrisim.plugins", "register_neuron"),
    "register_scheme": ("dendrisim.plugins", "register_scheme"),
    "NeuronModel": ("dendrisim.neurons", "NeuronModel"),
    "NeuronOptions": ("dendrisim.neurons", "NeuronOptions"),
    "TASKS": ("dendrisim.tasks", "TASKS"),
    "export_nwb": ("dendrisim.export", "export_nwb"),
    "OwnData": ("dendrisim.tasks.files", "OwnData"),
}

__all__ = sorted([*_PUBLIC, "__version__"])


__getattr__, __dir__ = lazy_names('dendrisim', _PUBLIC, globals())


if TYPE_CHECKING:  # for type checkers and IDEs: the names as if imported eagerly
    from .api import Trainer, load
    from .builder import load_experiment
    from .config import Experiment
    from .config.schema import opt as option
    from .errors import ConfigError, DataError, DendrisimError
    from .network import Network
    from .plasticity import RULES, PlasticityRule, RuleOptions, build_rule
    from .neurons import NeuronModel, NeuronOptions
    from .plugins import PluginError, load_plugin, register_neuron, register_rule, register_scheme
    from .tasks import TASKS
    from .export import export_nwb
    from .tasks.files import OwnData
