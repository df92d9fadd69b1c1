"""Optimizers and learning-rate schedules: rules compute updates, torch.optim applies them."""
from __future__ import annotations

import math

import torch

from .config.schema import OptimizerConfig, TrainingConfig


def param_groups(network, rule, lr: float) -> list[dict]:
    """One group per learnable projection (its ``lr_scale``), plus the rule's own groups."""
    groups = []
    for proj in network.learnable_projections():
        groups.append({"params": proj.parameters_to_learn(), "lr": lr * proj.lr_scale, "name": proj.name})
    return groups + rule.param_groups(lr)


def build_optimizer(network, rule, config: OptimizerConfig) -> torch.optim.Optimizer:
    groups = param_groups(network, rule, config.lr)
    if config.type == "sgd":
        return torch.optim.SGD(groups, lr=config.lr, weight_decay=config.weight_decay)
    if config.type == "momentum":
        return torch.optim.SGD(groups, lr=config.lr, momentum=config.momentum, nesterov=config.nesterov,
                               weight_decay=config.weight_decay)
    cls = torch.optim.Adam if config.type == "adam" else torch.optim.AdamW
    return cls(groups, lr=config.lr, betas=tuple(config.betas), eps=config.eps, weight_decay=config.weight_decay)


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
