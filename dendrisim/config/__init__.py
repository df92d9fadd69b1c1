"""Model files: schema, parsing, overrides and graph validation (a pure layer: no rule, no task)."""
from .loader import Experiment, apply_overrides, read_model, read_yaml
from .parse import parse, unparse
from .schema import (
    CompartmentConfig,
    DynamicsConfig,
    EarlyStoppingConfig,
    ModelConfig,
    OptimizerConfig,
    PopulationConfig,
    ProjectionConfig,
    RecordingConfig,
    TrainingConfig,
)

__all__ = [
    "CompartmentConfig", "DynamicsConfig", "EarlyStoppingConfig", "Experiment", "ModelConfig", "OptimizerConfig", "PopulationConfig",
    "ProjectionConfig", "RecordingConfig", "TrainingConfig", "apply_overrides", "read_model",
    "parse", "read_yaml", "unparse",
]
