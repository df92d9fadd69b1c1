"""Weight initialisers, named in the model file as ``init: {normal: {std: 0.05}}``."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

import torch

from .config.parse import parse
from .config.schema import opt
from .errors import ConfigError
from .registry import Registry


@dataclass(frozen=True)
class Initializer:
    Options: type
    fill: Callable[[torch.Tensor, Any], None]  # in place, weight [n_post, n_pre]
    bias_from_fan_in: bool = False  # torch's nn.Linear draws the bias from U(±1/√fan_in)


INITS: Registry[Initializer] = Registry("initializer")


@dataclass(frozen=True)
class NoOptions:
    pass


@dataclass(frozen=True)
class NormalOptions:
    std: float = opt(0.05, "standard deviation", gt=0)
    mean: float = opt(0.0, "mean")


@dataclass(frozen=True)
class UniformOptions:
    low: float = opt(-0.05, "lower bound")
    high: float = opt(0.05, "upper bound")

    def problem(self) -> str | None:
        return None if self.low < self.high else f"low ({self.low}) must be below high ({self.high})"


@dataclass(frozen=True)
class GainOptions:
    gain: float = opt(1.0, "gain", gt=0)


def _fan_in(w: torch.Tensor) -> int:
    return int(w[0].numel())


INITS.register("torch_default")(Initializer(
    NoOptions, lambda w, o: torch.nn.init.kaiming_uniform_(w, a=math.sqrt(5)), bias_from_fan_in=True
))
INITS.register("normal")(Initializer(NormalOptions, lambda w, o: torch.nn.init.normal_(w, o.mean, o.std)))
INITS.register("uniform")(Initializer(UniformOptions, lambda w, o: torch.nn.init.uniform_(w, o.low, o.high)))
INITS.register("xavier_uniform")(Initializer(GainOptions, lambda w, o: torch.nn.init.xavier_uniform_(w, o.gain)))
INITS.register("xavier_normal")(Initializer(GainOptions, lambda w, o: torch.nn.init.xavier_normal_(w, o.gain)))
INITS.register("kaiming_normal")(Initializer(NoOptions, lambda w, o: torch.nn.init.kaiming_normal_(w)))
INITS.register("zeros")(Initializer(NoOptions, lambda w, o: torch.nn.init.zeros_(w)))


def resolve_init(spec: dict, *, file: str | None, path: str) -> tuple[Initializer, Any]:
    """Check an ``init`` mapping (one scheme name -> its options)."""
    if not isinstance(spec, dict) or len(spec) != 1:
        raise ConfigError(
            f"{spec!r} must be a mapping with one scheme, e.g. {{normal: {{std: 0.05}}}}; "
            f"schemes: {', '.join(INITS.names())}", file=file, path=path,
        )
    (name, options), = spec.items()
    init = INITS.get(name, file=file, path=path)
    return init, parse(init.Options, options, file=file, path=f"{path}.{name}")


def initialize(weight: torch.Tensor, bias: torch.Tensor | None, init: Initializer, options: Any) -> None:
    with torch.no_grad():
        init.fill(weight, options)
        if bias is not None:
            if init.bias_from_fan_in:
                bound = 1.0 / math.sqrt(_fan_in(weight)) if weight.numel() else 0.0
                bias.uniform_(-bound, bound)
            else:
                bias.zero_()
