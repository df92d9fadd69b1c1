"""Equal tuning budgets: every rule gets the same number of trials of Optuna's TPE sampler.

The search covers the learning rate (log-uniform over a decade either side of the model
file's) and each rule's own declared ``tunables`` (``PlasticityRule.tunables``: dll's
``feedback_lr_scale`` and ``sigma``, kp's ``decay``, pc's ``inference_lr`` and
``inference_steps``, the feedback init scale of fa and dfa; plugin rules declare theirs
the same way). A trial trains ``tune_epochs`` epochs and is scored on the validation split
only: the test split is never evaluated during tuning. A median pruner stops trials whose
validation score trails the others' at the same epoch. Each rule's study lives in
``OUT/tuning.journal`` (Optuna's journal storage), so an interrupted tuning continues where
it stopped, and the sampler is seeded, so the same seed gives the same trials.

Needs the optional extra ``tune``: ``pip install -e '.[tune]'``.
"""
from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

from .builder import load_experiment
from .errors import ConfigError, DendrisimError
from .plasticity import RULES
from .tasks import TASKS
from .training import RunOptions, Trainer

JOURNAL = "tuning.journal"


def require_optuna():
    """The optuna module, or a clear error naming the extra that installs it."""
    try:
        import optuna
    except ImportError:
        raise DendrisimError("--tune needs Optuna, which the optional extra 'tune' installs: "
                             "pip install -e '.[tune]' (or pip install optuna)") from None
    return optuna


def search_space(rule_cls: type, lr: float, fixed=(), *, rule: str = "") -> dict[str, tuple]:
    """``--set`` key -> ``(low, high[, "log" | "int"])``: the learning rate and the rule's
    tunables, less the ``fixed`` keys (held at the model file's or ``--set`` value)."""
    space = {"optimizer.lr": (lr / 10, lr * 10, "log")}
    space.update({f"plasticity.{key}": tuple(spec) for key, spec in dict(rule_cls.tunables).items()})
    unknown = sorted(set(fixed) - set(space))
    if unknown:
        raise ConfigError(f"--tune-fix: {', '.join(unknown)} is not searched for rule {rule or rule_cls.__name__}; "
                          f"the search covers {', '.join(space)}")
    return {key: spec for key, spec in space.items() if key not in fixed}


def suggest(trial, space: dict[str, tuple]) -> list[str]:
    """The trial's values as ``--set`` overrides."""
    out = []
    for key, (low, high, *kind) in space.items():
        if kind == ["int"]:
            value = trial.suggest_int(key, int(low), int(high))
        else:
            value = trial.suggest_float(key, float(low), float(high), log=kind == ["log"])
        out.append(f"{key}={value!r}")
    return out


@dataclass
class TuningRun:
    """What one rule's tuning needs: the model, the budget, where to train and to store."""

    model: str
    rule: str
    trials: int
    epochs: int
    out: Path
    metric: str
    higher: bool
    seed: int = 0
    overrides: list[str] = field(default_factory=list)
    #: search-space keys held at their configured value (``--tune-fix``)
    fixed: tuple[str, ...] = ()
    device: str = "cpu"
    data_root: Optional[str] = None
    log: Callable[[str], None] = print


def study_for(run: TuningRun, *, warmup: int = 1):
    """The rule's Optuna study (stored in the run's journal): TPE, and a median pruner that
    judges a trial only after ``warmup`` epochs (a phased model's earlier phases, whose
    validation scores say nothing of the learning to come, and one more)."""
    optuna = require_optuna()
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    run.out.mkdir(parents=True, exist_ok=True)
    storage = JournalStorage(JournalFileBackend(str(run.out / JOURNAL)))
    sampler = optuna.samplers.TPESampler(seed=zlib.crc32(f"{run.rule}:{run.seed}".encode()),
                                         n_startup_trials=min(5, max(1, run.trials // 3)))
    pruner = optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=warmup)
    return optuna.create_study(study_name=run.rule, storage=storage, load_if_exists=True, sampler=sampler,
                               pruner=pruner, direction="maximize" if run.higher else "minimize")


def finished(study) -> list:
    import optuna

    done = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    return [t for t in study.trials if t.state in done]


def tune(run: TuningRun):
    """Run the rule's study up to ``run.trials`` finished trials (continuing a stored one);
    returns the study."""
    optuna = require_optuna()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    base = load_experiment(run.model, [*run.overrides, f"plasticity.rule={run.rule}"])
    if base.task.validation_fraction <= 0:
        raise ConfigError("tuning scores trials on the validation split, and task.validation_fraction is 0; "
                          "give it a part of the training set (e.g. --set task.validation_fraction=0.1)",
                          file=base.file, path="task.validation_fraction")
    space = search_space(RULES.get(run.rule), base.config.optimizer.lr, run.fixed, rule=run.rule)
    phases = base.config.training.phases
    study = study_for(run, warmup=sum(p.epochs for p in phases[:-1]) + 1)
    remaining = run.trials - len(finished(study))
    if remaining > 0:
        study.optimize(lambda trial: objective(trial, run, space), n_trials=remaining, catch=(DendrisimError,))
    return study


def objective(trial, run: TuningRun, space: dict[str, tuple]) -> float:
    overrides = [*run.overrides, f"plasticity.rule={run.rule}", f"training.epochs={run.epochs}",
                 f"training.seed={run.seed}", "recording.enabled=false", *suggest(trial, space)]
    exp = load_experiment(run.model, overrides)
    trainer = Trainer(exp, RunOptions(device=run.device, data_root=run.data_root, progress=False,
                                      out_dir=run.out / "trials" / run.rule / f"trial-{trial.number}",
                                      overwrite=True,  # a restarted study numbers its trials from 0 again
                                      log=lambda line: None, evaluate_test=False,
                                      on_epoch=lambda row: report(trial, row, run.metric)))
    summary = trainer.run()
    return summary[f"val_{run.metric}"]


def report(trial, row: dict, metric: str) -> None:
    """Tell the pruner the epoch's validation score; stop the trial if it is hopeless."""
    trial.report(row[f"val_{metric}"], row["epoch"])
    if trial.should_prune():
        import optuna

        raise optuna.TrialPruned(f"epoch {row['epoch']}: val_{metric} {row[f'val_{metric}']:.4f}")


def trial_records(study) -> list[dict]:
    """Every trial's settings, validation score and state (for results.json)."""
    return [{"number": t.number, "state": t.state.name, "params": t.params, "value": t.value,
             "intermediate": dict(t.intermediate_values)} for t in study.trials]


def best_overrides(study) -> list[str]:
    return [f"{key}={value!r}" for key, value in study.best_params.items()]


def main_metric(task_type: str) -> tuple[str, bool]:
    """The metric a comparison tunes for and reports, and whether higher is better: the task's
    ``headline`` (bpc for the char LM, RSE for forecasting), else its first higher-is-better
    metric (accuracy), else the loss."""
    task = TASKS.get(task_type)
    metrics = task.metrics
    if getattr(task, "headline", None):
        return task.headline, metrics[task.headline]
    higher = [m for m, up in metrics.items() if up]
    return (higher[0], True) if higher else ("loss", False)
