"""Model files: schema, parsing, overrides and graph validation."""
from .loader import Experiment, apply_overrides, load_experiment, read_yaml
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
    "ProjectionConfig", "RecordingConfig", "TrainingConfig", "apply_overrides", "load_experiment",
    "parse", "read_yaml", "unparse",
]
