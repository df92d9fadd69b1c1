"""Tasks (data, targets, metrics), registered by name."""
from .base import TASKS, Split, Task, TaskOptions
from . import classification as _classification  # noqa: F401  (registers classification)
from . import sentences as _sentences  # noqa: F401  (registers sentences)
from . import regression as _regression  # noqa: F401  (registers sequence_regression)
from . import sequences as _sequences  # noqa: F401  (registers charlm, forecasting)
from .datasets import DATASETS

__all__ = ["DATASETS", "TASKS", "Split", "Task", "TaskOptions"]
