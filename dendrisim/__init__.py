"""dendrisim: pyramidal-neuron networks trained by Dendritic Localized Learning and its rivals.

From Python: ``dendrisim.load(path, overrides)`` gives an :class:`Experiment`,
``dendrisim.Trainer(experiment, device=..., out=...)`` trains it (``fit``, ``step``,
``evaluate``, ``network``). Rules of your own subclass :class:`PlasticityRule` and register
with ``@dendrisim.register_rule("name")``.
"""
from ._version import __version__
from .api import Trainer, load  # noqa: E402
from .builder import load_experiment  # noqa: E402
from .config import Experiment  # noqa: E402
from .config.schema import opt as option  # noqa: E402
from .errors import ConfigError, DataError, DendrisimError  # noqa: E402
from .network import Network  # noqa: E402
from .plasticity import RULES, PlasticityRule, RuleOptions, build_rule  # noqa: E402
from .plugins import PluginError, load_plugin, register_rule  # noqa: E402
from .tasks import TASKS  # noqa: E402
from .tasks.files import OwnData  # noqa: E402

__all__ = ["ConfigError", "DataError", "DendrisimError", "Experiment", "Network", "OwnData", "PlasticityRule",
           "PluginError", "RULES", "RuleOptions", "TASKS", "Trainer", "__version__", "build_rule", "load", "load_experiment",
           "load_plugin", "option", "register_rule"]
