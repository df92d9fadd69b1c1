"""Optimizers and learning-rate schedules: rules compute updates, torch.optim applies them."""
from __future__ import annotations

import math
from typing import Sequence

import torch

from .config.schema import OptimizerConfig, PhaseConfig, TrainingConfig


def _projection_groups(network, phases: Sequence[PhaseConfig] = ()) -> list[tuple[tuple[float, ...], list]]:
    """The learnable projections grouped by their learning-rate multipliers: ``lr_scale`` and,
    with phases, the multiplier of each phase (a phase's ``lr_scale`` replaces the projection's
    own for the projections it names). Without any phase ``lr_scale`` that is the grouping
    by ``lr_scale`` alone, in the same order."""
    groups: dict[tuple[float, ...], list] = {}
    for proj in network.learnable_projections():
        key = (proj.lr_scale, *(phase.lr_scale.get(proj.name, proj.lr_scale) for phase in phases))
        groups.setdefault(key, []).append(proj)
    return list(groups.items())


def param_groups(network, rule, lr: float, phases: Sequence[PhaseConfig] = ()) -> list[dict]:
    """Projections sharing their learning-rate multipliers (``lr_scale``, and each phase's) share
    a group (fewer optimizer kernel launches); the group's ``name`` lists its projections. The
    rule's own groups come last."""
    groups = []
    for (scale, *_), projs in _projection_groups(network, phases):
        groups.append({"params": [p for proj in projs for p in proj.parameters_to_learn()], "lr": lr * scale,
                       "projections": [proj.name for proj in projs], "name": ", ".join(proj.name for proj in projs)})
    return groups + rule.param_groups(lr)


def phase_rates(network, rule, lr: float, phases: Sequence[PhaseConfig], index: int) -> list[float]:
    """Each param group's learning rate (before any schedule) in phase ``index``, in the order of
    :func:`param_groups` built with the same ``phases``: ``(phase.lr or lr)`` times the group's
    multiplier in that phase; the rule's own groups scale with the phase's base rate too."""
    phase = phases[index]
    base = phase.lr if phase.lr is not None else lr
    rates = [base * scales[1 + index] for scales, _ in _projection_groups(network, phases)]
    return rates + [group["lr"] for group in rule.param_groups(base)]


def group_of(optimizer: torch.optim.Optimizer, name: str) -> dict:
    """The param group holding projection (or rule group) ``name``."""
    for group in optimizer.param_groups:
        if name == group.get("name") or name in group.get("projections", ()):
            return group
    raise KeyError(name)


_DYNAMO_GUARDED = ("add_param_group", "state_dict", "load_state_dict", "zero_grad")


def eager(cls: type) -> type:
    """``cls`` (a ``torch.optim`` optimizer) without the guards that keep TorchDynamo out.

    torch.optim wraps ``step`` (and ``add_param_group``, ``state_dict``, ``load_state_dict``,
    ``zero_grad``) so that ``torch.compile`` never traces them; each wrapper imports
    ``torch._dynamo`` on its first call, which costs 1.3-1.9 s on two cores, more than
    everything else a run does before its first step. dendrisim never compiles an
    optimizer, so the subclass calls the undecorated methods, with the step under
    ``torch.no_grad()`` as the guard would run it (``differentiable`` is never set here).
    The arithmetic is torch's own, unchanged (a test compares the two bit for bit). If
    a torch version lacks the undecorated methods, ``cls`` itself is returned.
    """
    raw_step = getattr(cls.step, "__wrapped__", None)
    methods = {name: getattr(getattr(torch.optim.Optimizer, name), "__wrapped__", None) for name in _DYNAMO_GUARDED}
    if raw_step is None or any(m is None for m in methods.values()):
        return cls

    def step(self, closure=None):
        with torch.no_grad():
            return raw_step(self, closure)

    step.__doc__ = raw_step.__doc__
    return type(cls.__name__, (cls,), {"step": step, **methods, "__module__": __name__,
                                       "__doc__": f"{cls.__name__} without TorchDynamo guards (see eager)."})


_EAGER: dict[type, type] = {}


def build_optimizer(network, rule, config: OptimizerConfig, phases: Sequence[PhaseConfig] = ()
                    ) -> torch.optim.Optimizer:
    """The optimizer over every learnable tensor, built after the model is on its device
    (``phases``: the run's, so that each projection can get its own rate in every phase).

    It uses torch's fused kernels where this torch supports them for the parameters'
    device and dtype (one pass over each tensor instead of one per arithmetic op: the
    plain Adam loop is about 6x slower on CPU), and falls back to the foreach ones.
    """
    groups = param_groups(network, rule, config.lr, phases)
    if config.type in ("sgd", "momentum"):
        cls = torch.optim.SGD
        kwargs = {"lr": config.lr, "weight_decay": config.weight_decay}
        if config.type == "momentum":
            kwargs.update(momentum=config.momentum, nesterov=config.nesterov)
    else:
        cls = torch.optim.Adam if config.type == "adam" else torch.optim.AdamW
        kwargs = {"lr": config.lr, "betas": tuple(config.betas), "eps": config.eps, "weight_decay": config.weight_decay}
    cls = _EAGER.setdefault(cls, eager(cls))
    try:
        return cls(groups, fused=True, **kwargs)
    except (RuntimeError, TypeError, ValueError):
        pass
    try:
        return cls(groups, foreach=True, **kwargs)
    except ValueError as err:  # an option torch refuses that the schema let through
        raise refused(err, config) from None


#: words of torch.optim's messages -> the optimizer key each one is about
_KEYS = (("nesterov", "nesterov"), ("beta", "betas"), ("epsilon", "eps"), ("weight_decay", "weight_decay"),
         ("momentum", "momentum"), ("learning rate", "lr"))


def refused(err: ValueError, config: OptimizerConfig) -> "ConfigError":
    """One paragraph for an optimizer torch refuses: the key, its value and torch's reason."""
    from .errors import ConfigError

    text = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    key = next((k for word, k in _KEYS if word in text.lower()), None)
    if key is None:
        return ConfigError(f"torch.optim refuses optimizer type {config.type} with these options: {text}",
                           path="optimizer")
    value = f"{getattr(config, key)!r}" + (f" with optimizer.momentum {config.momentum!r}" if key == "nesterov" else "")
    scaled = " (times a projection's lr_scale or a phase's lr)" if key == "lr" else ""
    return ConfigError(f"{value}{scaled} is refused by torch.optim for optimizer type {config.type}: {text}",
                       path=f"optimizer.{key}")


def schedule_factor(step: int, total: int, training: TrainingConfig) -> float:
    """Multiplier of every group's base learning rate at ``step`` (0-based) of ``total``."""
    warm = training.warmup_steps
    if warm and step < warm:
        return (step + 1) / warm
    if training.schedule == "none" or total <= warm:
        return 1.0
    progress = min(1.0, (step - warm) / max(1, total - warm))
    if training.schedule == "linear":
        return 1.0 - progress
    return 0.5 * (1.0 + math.cos(math.pi * progress))


def build_scheduler(optimizer, total_steps: int, training: TrainingConfig) -> torch.optim.lr_scheduler.LambdaLR:
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: schedule_factor(s, total_steps, training))
