"""The training loop: epochs, steps and evaluation in a run folder; everything else is an observer.

One :meth:`Trainer.train_step` serves the command line's loop (:meth:`Trainer.train_epoch`,
:meth:`Trainer.run`) and the API's ``Trainer.step``; recording, checkpoints, the NaN guard,
alignment, the metrics file and model selection watch it through
:class:`dendrisim.observers.Observer`'s hooks. The whole run in its directory (the lock, the
epochs, the stop, resuming) is :mod:`dendrisim.runner`'s; the phases' learning rates and frozen
projections are :class:`dendrisim.phases.Phases`'s.
"""
from __future__ import annotations

import dataclasses
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import torch

from . import phases as phasing
from . import rundir, runner
from .builder import build
from .config.loader import Experiment
from .errors import DendrisimError
from .observers import (Alignment, Checkpoints, FinalWeights, MetricsFile, NanGuard, Observer, OnEpoch, Recording,
                        Selection, Step)
from .observers.checkpoints import (CHECKPOINT, CHECKPOINT_KEYS, RESUMABLE, config_diff, load_state,  # noqa: F401
                                    nonfinite_tensor, read, state_of)
from .observers.recording import check_recording  # noqa: F401  (dendrisim.inspect uses it)
from .optim import build_scheduler, schedule_factor
from .runner import default_run_dir, run_summary  # noqa: F401  (their home was here)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def resolve_device(name: str) -> torch.device:
    from .host import device_of

    return device_of(name)


@dataclass
class RunOptions:
    device: str = "cpu"
    data_root: Optional[str] = None
    out_dir: Optional[Path] = None
    dry_run: bool = False
    progress: Optional[bool] = None  # None: a bar only when stderr is a terminal
    argv: list[str] = field(default_factory=list)
    log: Callable[[str], None] = print
    dist: Optional[object] = None  # a dendrisim.distributed context; None: one process
    plugins: list[str] = field(default_factory=list)  # rule files loaded for this run (--plugin)
    evaluate_test: bool = True  # False: the test split is never evaluated (tuning scores on validation only)
    on_epoch: Optional[Callable[[dict], None]] = None  # called with each epoch's metrics row (a tuner's pruner)
    overwrite: bool = False  # out_dir may hold another run: its files are removed (--overwrite)
    resumes: list[dict] = field(default_factory=list)  # each --resume: its argv and the keys it changed

    def to_json(self) -> dict:
        """What ``--resume`` needs to rebuild the run (written to ``run.json``)."""
        from .plugins import rules_of

        out = {"device": self.device, "data_root": self.data_root, "dry_run": self.dry_run, "argv": self.argv,
               "plugins": self.plugins, "threads": torch.get_num_threads()}
        if self.plugins:  # the rules each registered: --resume accepts the same rules from a moved file
            out["plugin_rules"] = {path: rules_of(path) for path in self.plugins}
        if self.resumes:
            out["resumes"] = self.resumes
        return out


DRY_RUN_STEPS = 5


class Trainer:
    """Builds task, network, rule, scheme and optimizer from an experiment, then trains.

    One step (:meth:`train_step`): ``network(x)`` (forward), the batch's statistics,
    ``scheme.present(network, rule, t)`` (settle and write ``.grad``), the gradient
    all-reduce across ranks, ``optimizer.step()``, ``rule.after_update``, the schedule, then
    the observers (:mod:`dendrisim.observers`): the NaN guard, the recording, the final
    weights, alignment, the metrics file, model selection and checkpoints, then those added
    with :meth:`observe`.
    Everything the loop needs to go on is in the checkpoint (:meth:`checkpoint_state`), written
    atomically at every epoch end, every ``training.checkpoint_every`` steps and when a stop is
    requested, so :meth:`resume` continues exactly where the run was, mid-epoch included.
    """

    run_dir: Optional[Path] = None
    resume_changes: list[str] = []

    def __init__(self, experiment: Experiment, options: RunOptions):
        self.experiment = experiment
        self.options = options
        cfg = experiment.config
        from .distributed import Single

        self.dist = options.dist or Single()
        self.device = resolve_device(options.device)
        if self.device.type == "cuda" and self.dist.world > 1:
            self.device = torch.device("cuda", self.dist.local_rank)
        if cfg.training.phases and cfg.training.epochs != phasing.total_epochs(cfg.training):
            # with phases, training.epochs is their sum (what model.yaml and checkpoints then say)
            self.experiment = experiment = dataclasses.replace(experiment, config=dataclasses.replace(
                cfg, training=phasing.with_total_epochs(cfg.training, phasing.total_epochs(cfg.training))))
            cfg = experiment.config
        seed_everything(cfg.training.seed)
        model = build(experiment, device=self.device, data_root=options.data_root)
        self.task, self.network, self.rule, self.scheme, self.optimizer = (
            model.task, model.network, model.rule, model.scheme, model.optimizer)
        phasing.check_learnable(self.phases, self.network, file=self.experiment.file)
        self.learnable = [p for group in self.optimizer.param_groups for p in group["params"]]
        self.steps_per_epoch = self._steps_per_epoch()
        self.scheduler = build_scheduler(self.optimizer, self.steps_per_epoch * self.epochs, cfg.training)
        #: the phase the optimizer is set for, and what it freezes (:class:`dendrisim.phases.Phases`)
        self.phase_control = phasing.Phases(self.network, self.rule, self.optimizer, self.scheduler)
        self.recording_estimate = None
        #: what the recording block asks for that this run's rule cannot provide (left out, one line each)
        self.recording_notes: list[str] = []
        if cfg.recording.enabled:  # check the selection and the size now, before any run folder exists
            self.recording_estimate = check_recording(experiment, self.network, self.rule,
                                                      steps_per_epoch=self.steps_per_epoch, epochs=self.epochs,
                                                      trace_steps=self.scheme.trace_steps, notes=self.recording_notes)
            for note in self.recording_notes:
                self.options.log(f"note: {note}")
        self.stop_requested: Optional[str] = None  # the reason, set by request_stop
        #: why the run must end in an error once it has stopped cleanly (a failed write, non-finite values)
        self.failure: Optional[DendrisimError] = None
        self.lock: Optional[rundir.RunLock] = None
        self._started = False  # a run() of this trainer has begun: its run directory is its own
        self.resumed = False  # the loop continues a checkpoint (its run directory holds the run so far)
        self.order_generator = torch.Generator().manual_seed(cfg.training.seed)
        # the loop's position and history (all of it goes into checkpoints)
        self.global_step = 0
        self.epoch = 1  # the epoch in progress
        self.step_in_epoch = 0
        self.epoch_order: Optional[torch.Tensor] = None
        self.epoch_totals: Optional[torch.Tensor] = None
        self.epoch_samples = 0
        self.epoch_seconds = 0.0
        self.last_batch_ids: Optional[torch.Tensor] = None
        self.rows: list[dict] = []
        self.clips_seen: dict[str, int] = {}
        self._build_observers()

    def _build_observers(self) -> None:
        """The trainer's own observers, in the order their hooks run (stops in reverse)."""
        cfg, file = self.experiment.config, self.experiment.file
        self.alignment: Optional[Alignment] = None
        if cfg.training.alignment is not None:
            from .alignment import AlignmentProbe

            n = cfg.training.alignment.probe_size
            probe = AlignmentProbe(self.network, self.rule, self.task.inputs(self.task.train.x[:n]),
                                   self.task.target(self.task.train.y[:n], self.network), scheme=self.scheme)
            self.alignment = Alignment(probe, cfg.training.alignment.every)
        self.recording = Recording(cfg.recording.enabled)
        stop = cfg.training.early_stopping
        watch = stop.metric if stop else "loss"
        self.selection = Selection(watch, self.task.metrics[watch], early_stopping=stop,
                                   keep_best=cfg.training.select_best)
        self.checkpoints = Checkpoints(cfg.training.checkpoint_every, file=file)
        self.observers: list[Observer] = [
            NanGuard(cfg.training.guard_every, file=file), self.recording, FinalWeights(file=file),
            *([self.alignment] if self.alignment is not None else []), MetricsFile(file=file),
            *([OnEpoch(self.options.on_epoch)] if self.options.on_epoch is not None else []),
            self.selection, self.checkpoints]

    def observe(self, observer: Observer) -> Observer:
        """Add an observer (after the trainer's own; see :class:`dendrisim.observers.Observer`);
        returns it."""
        if not isinstance(observer, Observer):
            raise TypeError(f"observe({type(observer).__name__}): an observer subclasses dendrisim.observers.Observer")
        self.observers.append(observer)
        return observer

    def _notify(self, hook: str, *args) -> None:
        with torch.no_grad():
            for observer in self.observers:
                getattr(observer, hook)(self, *args)

    # ------------------------------------------------------------------ what observers read
    @property
    def recorder(self):
        """The open recording's ``Recorder`` (None: none)."""
        return self.recording.recorder

    @recorder.setter
    def recorder(self, value) -> None:
        self.recording.recorder = value

    @property
    def last_alignment(self) -> dict:
        """The latest alignment measures (``{projection: {measure: value}}``; {} without any)."""
        return self.alignment.last if self.alignment is not None else {}

    @property
    def last_checkpoint_step(self) -> Optional[int]:
        """The step of the last good checkpoint (None: none yet)."""
        return self.checkpoints.last_step

    @property
    def epochs(self) -> int:
        return 1 if self.options.dry_run else phasing.total_epochs(self.experiment.config.training)

    @property
    def phases(self) -> tuple:
        """``training.phases`` (empty without phases)."""
        return self.experiment.config.training.phases

    @property
    def phase_index(self) -> int:
        """The 0-based index of the phase of the epoch in progress (0 without phases): a pure
        function of :attr:`epoch`, so a resumed run is in the phase it stopped in."""
        return phasing.phase_index(self.phases, self.epoch)

    @property
    def phase(self):
        """The :class:`~dendrisim.config.schema.PhaseConfig` of the epoch in progress (None without phases)."""
        return self.phases[self.phase_index] if self.phases else None

    @property
    def phase_entered(self) -> Optional[int]:
        """The phase whose learning rates and frozen projections the optimizer holds (None: none yet)."""
        return self.phase_control.entered

    @property
    def _frozen(self) -> list[torch.Tensor]:
        """The tensors whose update is dropped in this phase."""
        return self.phase_control.frozen

    def _enter_phase(self, index: int) -> None:
        """Set the optimizer for phase ``index`` (:meth:`dendrisim.phases.Phases.enter`)."""
        self.phase_control.enter(self.phases, index, lr=self.experiment.config.optimizer.lr, log=self.options.log)

    @property
    def finished(self) -> bool:
        """Whether the loop has nothing left to do (every epoch done, or early stopped)."""
        return self.epoch > self.epochs or self.selection.early_stopped

    def request_stop(self, reason: str) -> None:
        """Finish the current step, then checkpoint and end the run (used by signal handlers)."""
        self.stop_requested = reason

    def fail(self, error: DendrisimError, reason: str) -> None:
        """Stop after this step without further checkpoints; :meth:`run` then raises ``error``."""
        if self.failure is None:
            self.failure = error
            self.options.log(f"stopping: {error}")
        if not self.stop_requested:
            self.request_stop(reason)

    def set_epochs(self, epochs: int) -> None:
        """Train to ``epochs`` in all (``training.epochs`` of the run's model.yaml from now on); the
        learning-rate schedule covers the new total from the step it stands at. With phases the
        last phase takes the change (a ValueError if the total would end before it starts)."""
        cfg = self.experiment.config
        training = phasing.extended(cfg.training, epochs, log=self.options.log)
        self.experiment = dataclasses.replace(self.experiment, config=dataclasses.replace(cfg, training=training))
        total = self.steps_per_epoch * self.epochs
        self.scheduler.lr_lambdas = [lambda s: schedule_factor(s, total, training)
                                     for _ in self.scheduler.lr_lambdas]

    def _steps_per_epoch(self) -> int:
        n = self.task.train.n_batches(self.experiment.task.batch_size * self.dist.world)
        limit = DRY_RUN_STEPS if self.options.dry_run else self.experiment.config.training.max_steps_per_epoch
        return min(n, limit) if limit else n

    def _open_recorder(self, run_dir: Path, *, resume: Optional[dict] = None) -> None:
        """Open the recording in ``run_dir`` outside :meth:`run` (benchmarks, tests)."""
        self.recording.open(self, run_dir, resume=resume)

    # ------------------------------------------------------------------ one step
    def train_step(self, x: torch.Tensor, y: torch.Tensor, *, ids: Optional[torch.Tensor] = None,
                   epoch: Optional[int] = None,
                   on_error: Optional[Callable[[BaseException], Exception]] = None) -> Step:
        """One training step on the batch ``(x, y)`` (on the device, in the task's dtypes).

        The observers' ``before_step``; forward, batch statistics, presentation, the
        gradient all-reduce, ``optimizer.step()``, ``rule.after_update``, the schedule; the
        loop's counters; the observers' ``after_step``. ``ids`` and ``epoch`` place the step
        in an epoch (the batch's sample indices; None: a step outside the epochs, as
        ``Trainer.step``). ``on_error`` maps a RuntimeError or IndexError of the computation
        (not of an observer) to the error raised instead."""
        step = Step(number=self.global_step + 1, size=int(y.shape[0]), epoch=epoch,
                    in_epoch=None if epoch is None else self.step_in_epoch + 1, ids=ids,
                    finish=self.task.finish_stats)
        with torch.no_grad():
            if self.phases and self.phase_entered != self.phase_index:
                self._enter_phase(self.phase_index)
            self._notify("before_step", step)
            try:
                self._present(x, y, step)
            except (RuntimeError, IndexError) as err:
                if on_error is None:
                    raise
                raise on_error(err) from None
            self.global_step += 1
            if epoch is not None:
                self.epoch_totals = step.stats.clone() if self.epoch_totals is None \
                    else self.epoch_totals.add_(step.stats)
                self.epoch_samples += step.size
                self.step_in_epoch += 1
                self.last_batch_ids = ids
            self._notify("after_step", step)
        return step

    def _present(self, x: torch.Tensor, y: torch.Tensor, step: Step) -> None:
        """The arithmetic of a step (under ``no_grad``): it fills ``step.stats``,
        ``step.presentation`` and ``step.stop``."""
        task, net = self.task, self.network
        state = net.free_state(task.inputs(x))
        # the metrics are those of the network's prediction, before the teacher acts
        step.stats = task.batch_stats(y, net, state)
        phase = self.phase
        # a phase without teacher presents no target: the output is not nudged
        target = task.target(y, net) if phase is None or phase.teacher else None
        step.presentation = self.scheme.present(net, self.rule, target, state=state, capture=step.capture)
        for tensor in self._frozen:  # no gradient: the optimizer skips them, their state stays as it is
            tensor.grad = None
        step.stop = self.dist.sync_grads(self.learnable, y.shape[0], self.stop_requested is not None)
        if step.stop and self.stop_requested is None:
            self.stop_requested = "a stop on another rank"
        self.optimizer.step()
        self.rule.after_update(net)
        self.scheduler.step()

    # ------------------------------------------------------------------ one epoch
    def train_epoch(self, epoch: int) -> dict[str, float]:
        """One pass over the training split (from ``step_in_epoch`` when resuming);
        returns early, between steps, when a stop is requested."""
        return runner.train_epoch(self, epoch)

    def evaluate(self, split) -> dict[str, float]:
        """Metrics on a split; with several ranks each evaluates its part and they are summed."""
        limit = DRY_RUN_STEPS if self.options.dry_run else None
        total, n = self.task.evaluate_stats(self.network, split.shard(self.dist.rank, self.dist.world), limit=limit)
        totals = self.dist.sum_(torch.cat([total.to(torch.float64),
                                           torch.tensor([n], dtype=torch.float64, device=total.device)]))
        return self.task.finish_stats(totals[:-1], int(totals[-1].item()))

    # ------------------------------------------------------------------ the run
    def run(self) -> dict:
        """Train to the configured number of epochs; returns the summary.

        Rank 0 takes the run directory's lock for the whole run; a directory holding another
        run is refused unless ``options.overwrite``. A failed write or non-finite values stop
        the run after the current step, keeping the last good checkpoint, and raise a
        :class:`~dendrisim.errors.DendrisimError`."""
        return runner.run(self)

    # ------------------------------------------------------------------ checkpoints
    def checkpoint_state(self) -> dict:
        """Everything needed to continue exactly: weights, optimizer, schedule, position, RNGs."""
        return state_of(self)

    def save_checkpoint(self) -> Optional[Path]:
        """Flush the recording, then write ``checkpoint.pt`` atomically (see
        :meth:`dendrisim.observers.Checkpoints.save`)."""
        return self.checkpoints.save(self)

    def resume(self, path: Path) -> None:
        """Load a checkpoint written by this model; the next :meth:`run` continues from it.

        The checkpoint is read with ``weights_only=True`` (no code in it runs). The model
        may differ from the one that wrote it only in :data:`RESUMABLE` keys."""
        runner.resume(self, path)
