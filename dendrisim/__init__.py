"""dendrisim: pyramidal-neuron networks trained by Dendritic Localized Learning and its rivals."""
__version__ = "0.1.0"

from .builder import load_experiment  # noqa: E402
from .config import Experiment  # noqa: E402
from .errors import ConfigError, DataError, DendrisimError  # noqa: E402
from .network import Network  # noqa: E402
from .plasticity import RULES, build_rule  # noqa: E402
from .tasks import TASKS  # noqa: E402

__all__ = ["ConfigError", "DataError", "DendrisimError", "Experiment", "Network", "RULES", "TASKS",
           "__version__", "build_rule", "load_experiment"]
