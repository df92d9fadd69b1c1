"""The training loop: epochs, steps and evaluation in a run folder; everything else is an observer.

One :meth:`Trainer.train_step` serves the command line's loop (:meth:`Trainer.train_epoch`,
:meth:`Trainer.run`) and the API's ``Trainer.step``; recording, checkpoints, the NaN guard,
alignment, the metrics file and model selection watch it through
:class:`dendrisim.observers.Observer`'s hooks.
"""
from __future__ import annotations

import dataclasses
import json
import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import torch

from . import phases as phasing
from . import rundir
from .builder import build, build_scheme
from .config.loader import Experiment
from .errors import DendrisimError, MemoryLimitError, WriteError, is_out_of_memory
from .observers import (Alignment, Checkpoints, FinalWeights, MetricsFile, NanGuard, Observer, OnEpoch, Outcome,
                        Recording, Selection, Step)
from .observers.checkpoints import (CHECKPOINT, CHECKPOINT_KEYS, RESUMABLE, config_diff, load_state,  # noqa: F401
                                    nonfinite_tensor, read, state_of)
from .observers.recording import check_recording  # noqa: F401  (dendrisim.inspect uses it)
from .optim import build_optimizer, build_scheduler, phase_rates, schedule_factor
from .paths import make_dir


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


def default_run_dir(name: str, seed: int, *, root: Path = Path("recordings")) -> Path:
    """A new folder for the run under ``root`` (never outside it, whatever ``name`` holds)."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    base = root / f"{name}-{stamp}-s{seed}"
    path, k = base, 1
    while path.exists():
        path, k = Path(f"{base}-{k}"), k + 1
    return rundir.inside(path, root)


def run_summary(loop, seconds: float) -> dict:
    """What a run prints last (and writes to ``summary.json`` when it finished): the selected
    epoch's metrics (the best one's when model selection put its weights back), the final
    epoch's test metrics beside them, and where everything is."""
    cfg = loop.experiment.config
    rows = loop.rows
    summary = {"model": cfg.name, "rule": loop.experiment.rule.rule, "epochs": len(rows),
               "steps": loop.global_step, "seconds": round(seconds, 3), "device": str(loop.device),
               "seed": cfg.training.seed, "run_dir": str(loop.run_dir)}
    if rows:
        final = rows[-1]
        selected = rows[loop.selection.restored - 1] if loop.selection.restored else final
        summary["selected_epoch"] = selected["epoch"]
        for k in loop.task.metrics:
            if f"test_{k}" in selected:
                summary[f"test_{k}"] = selected[f"test_{k}"]
                summary[f"final_test_{k}"] = final[f"test_{k}"]
            if f"val_{k}" in selected:
                summary[f"val_{k}"] = selected[f"val_{k}"]
    if loop.stop_requested:
        summary["stopped"] = loop.stop_requested
    if loop.recorder is not None:
        summary["recording"] = str(loop.recorder.path)
    if loop.dist.world > 1:
        summary["world_size"] = loop.dist.world
        summary["global_batch_size"] = loop.dist.world * loop.experiment.task.batch_size
    return summary


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
        self.task, self.network, self.rule = build(experiment, device=self.device, data_root=options.data_root)
        self.network.to(self.device)
        self.rule.to(self.device)
        self.scheme = build_scheme(experiment)
        self.optimizer = build_optimizer(self.network, self.rule, cfg.optimizer, cfg.training.phases)
        self._check_phases()
        #: the phase whose learning rates and frozen projections the optimizer holds (None: none yet)
        self.phase_entered: Optional[int] = None
        self._frozen: list[torch.Tensor] = []  # tensors whose update is dropped in this phase
        self.learnable = [p for group in self.optimizer.param_groups for p in group["params"]]
        self.steps_per_epoch = self._steps_per_epoch()
        self.scheduler = build_scheduler(self.optimizer, self.steps_per_epoch * self.epochs, cfg.training)
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

    def _stop_observers(self, outcome: Outcome) -> None:
        """Every observer's ``stop``, last added first; the first error is raised after all ran."""
        first = None
        for observer in reversed(self.observers):
            try:
                with torch.no_grad():
                    observer.stop(self, outcome)
            except BaseException as err:  # noqa: BLE001 - the others must still close their files
                first = first or err
        if first is not None:
            raise first

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

    def _check_phases(self) -> None:
        """Every projection a phase names is a learnable one (the loader says so first, with the
        file; this guards experiments built another way)."""
        from .errors import ConfigError

        learnable = [p.name for p in self.network.learnable_projections()]
        for i, phase in enumerate(self.phases):
            for key, names in (("learn", phase.learn or ()), ("lr_scale", phase.lr_scale)):
                for name in names:
                    if name not in learnable:
                        raise ConfigError(f"{name!r} is not a learnable projection; the learnable projections are "
                                          f"{', '.join(learnable) or 'none'}", file=self.experiment.file,
                                          path=f"training.phases[{i}].{key}")

    def _enter_phase(self, index: int) -> None:
        """Set the optimizer for phase ``index``: each group's base learning rate ((phase.lr or
        optimizer.lr) x the group's multiplier in this phase), under the schedule where it stands,
        and the tensors whose updates this phase drops. Recomputed from the phase alone, so a
        resumed run gets the same values; logs the phase's line."""
        phases, optimizer, scheduler = self.phases, self.optimizer, self.scheduler
        rates = phase_rates(self.network, self.rule, self.experiment.config.optimizer.lr, phases, index)
        if len(rates) != len(optimizer.param_groups):
            raise RuntimeError(f"phase {index}: {len(rates)} learning rates for {len(optimizer.param_groups)} "
                               "param groups (the optimizer was not built with the run's phases)")
        for i, (group, rate) in enumerate(zip(optimizer.param_groups, rates)):
            # what LambdaLR computes at its step: base_lr x factor(step)
            scheduler.base_lrs[i] = group["initial_lr"] = rate
            group["lr"] = rate * scheduler.lr_lambdas[i](scheduler.last_epoch)
        scheduler._last_lr = [group["lr"] for group in optimizer.param_groups]
        self._frozen = self._frozen_tensors(phases[index])
        self.phase_entered = index
        self.options.log(phasing.describe(phases, index, [p.name for p in self.network.learnable_projections()]))

    def _frozen_tensors(self, phase) -> list[torch.Tensor]:
        """What does not learn in ``phase``: the parameters of every projection outside its
        ``learn`` list and the rule's feedback weights of those projections (fa/kp's B, dll's θ)
        when the optimizer updates them."""
        if phase.learn is None:
            return []
        learned = {id(p) for group in self.optimizer.param_groups for p in group["params"]}
        frozen = []
        for proj in self.network.learnable_projections():
            if phasing.learns(phase, proj.name):
                continue
            frozen += proj.parameters_to_learn()
            try:
                feedback = self.rule.feedback_weight(self.network, proj)
            except NotImplementedError:
                feedback = None
            if feedback is not None and id(feedback) in learned:
                frozen.append(feedback)
        return frozen

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
        training = phasing.with_total_epochs(cfg.training, epochs)
        if training.phases and training.phases[-1].epochs != cfg.training.phases[-1].epochs:
            last = len(training.phases) - 1
            self.options.log(f"training.phases: the last phase ({phasing.phase_name(training.phases[-1], last)}) now "
                             f"runs {training.phases[-1].epochs} epochs, to epoch {epochs} (more epochs extend the "
                             "last phase)")
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
        net(task.inputs(x))
        # the metrics are those of the network's prediction, before the teacher acts
        step.stats = task.batch_stats(y, net)
        phase = self.phase
        # a phase without teacher presents no target: the output is not nudged
        target = task.target(y, net) if phase is None or phase.teacher else None
        step.presentation = self.scheme.present(net, self.rule, target, capture=step.capture)
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
        task = self.task
        self.rule.start_epoch(epoch)
        if self.step_in_epoch == 0:
            self.epoch_order = torch.randperm(len(task.train), generator=self.order_generator).to(self.device)
            self.epoch_totals, self.epoch_samples = None, 0
        bs, world = self.experiment.task.batch_size, self.dist.world
        order = self.epoch_order[self.step_in_epoch * bs * world:]
        batches = task.train.indexed_batches(bs, order, limit=self.steps_per_epoch - self.step_in_epoch,
                                             rank=self.dist.rank, world=world)
        with torch.no_grad():
            for ids, x, y in self._bar(batches, epoch):
                step = self.train_step(x, y, ids=ids, epoch=epoch)
                # ranks stop together, on the step whose all-reduce carried the flag
                if step.stop or (world == 1 and self.stop_requested):
                    return self._epoch_stats()
        self.step_in_epoch = 0  # the epoch is complete; the next call starts a new one
        return self._epoch_stats()

    def _epoch_stats(self) -> dict[str, float]:
        totals = self.dist.sum_(torch.cat([self.epoch_totals.to(torch.float64),
                                           torch.tensor([self.epoch_samples], dtype=torch.float64,
                                                        device=self.epoch_totals.device)]))
        return self.task.finish_stats(totals[:-1], int(totals[-1].item()))

    def _bar(self, batches, epoch: int):
        show = self.options.progress if self.options.progress is not None else sys.stderr.isatty()
        if not show:
            return batches
        from tqdm import tqdm

        return tqdm(batches, total=self.steps_per_epoch - self.step_in_epoch, desc=f"epoch {epoch}",
                    leave=False, unit="batch")

    def evaluate(self, split) -> dict[str, float]:
        """Metrics on a split; with several ranks each evaluates its part and they are summed."""
        limit = DRY_RUN_STEPS if self.options.dry_run else None
        total, n = self.task.evaluate_stats(self.network, split.shard(self.dist.rank, self.dist.world), limit=limit)
        totals = self.dist.sum_(torch.cat([total.to(torch.float64),
                                           torch.tensor([n], dtype=torch.float64, device=total.device)]))
        return self.task.finish_stats(totals[:-1], int(totals[-1].item()))

    def _row(self, epoch: int, train: dict, val: dict, test: dict) -> dict:
        """The epoch's metrics row (what metrics.csv gets)."""
        row = {"epoch": epoch, "step": self.global_step, "seconds": round(self.epoch_seconds, 3),
               "lr": self.optimizer.param_groups[0]["lr"]}
        if self.phases:  # the epoch's phase, by name
            index = phasing.phase_index(self.phases, epoch)
            row["phase"] = phasing.phase_name(self.phases[index], index)
        for prefix, values in (("train", train), ("val", val), ("test", test)):
            row.update({f"{prefix}_{k}": v for k, v in values.items()})
        # how often each named clip fired during the epoch (clips_apical:h1 ...)
        counts = {name: int(c) for name, c in self.rule.clip_counts.items()}
        row.update({f"clips_{name}": n - self.clips_seen.get(name, 0) for name, n in sorted(counts.items())})
        self.clips_seen = counts
        row.update(self.rule.epoch_summary())
        row.update({f"align_{name}_{m}": v for name, ms in self.last_alignment.items() for m, v in ms.items()})
        return row

    # ------------------------------------------------------------------ the run
    def run(self) -> dict:
        """Train to the configured number of epochs; returns the summary.

        Rank 0 takes the run directory's lock for the whole run; a directory holding another
        run is refused unless ``options.overwrite``. A failed write or non-finite values stop
        the run after the current step, keeping the last good checkpoint, and raise a
        :class:`~dendrisim.errors.DendrisimError`."""
        main = self.dist.is_main
        if self.run_dir is None:
            cfg = self.experiment.config
            run_dir = Path(self.options.out_dir or default_run_dir(cfg.name, cfg.training.seed)) if main else None
            self.run_dir = Path(self.dist.broadcast(str(run_dir) if main else None))
        try:
            if main:  # only rank 0 writes the run directory, the recording and checkpoints
                self._prepare_run_dir()
            self._started = True
            start = time.perf_counter()
            try:
                self._notify("start")
                mid_epoch = self._loop()
            except BaseException as err:
                try:
                    self._stop_observers(Outcome(reason=self.stop_requested, error=err))
                except BaseException:  # noqa: BLE001 - the error that ended the loop is the one to see
                    pass
                if is_out_of_memory(err):  # the estimate cannot see every temporary: said, not a traceback
                    raise self._out_of_memory(err) from None
                raise
            outcome = Outcome(reason=self.stop_requested, mid_epoch=mid_epoch)
            self._stop_observers(outcome)  # checkpoint, best weights back, weights.pt, recording closed
            if self.stop_requested and self.failure is None:
                self.options.log(f"stopped by {self.stop_requested} in epoch {self.epoch} after step "
                                 f"{self.global_step}; resume with: dendrisim run --resume {self.run_dir}")
            summary = run_summary(self, time.perf_counter() - start)
            if self.failure is not None:
                raise self._with_hint(self.failure)
            if outcome.complete and main:
                rundir.write_text(self.run_dir / "summary.json", "summary", json.dumps(summary, indent=2) + "\n")
            return summary
        finally:
            if self.lock is not None:
                self.lock.release()
                self.lock = None

    def _out_of_memory(self, err: BaseException) -> MemoryLimitError:
        first = (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
        kept = (f"its last checkpoint is kept: finish it with --resume {self.run_dir} where more memory is free"
                if (self.run_dir / CHECKPOINT).is_file() else "no checkpoint was written yet")
        return MemoryLimitError(
            f"the run ran out of memory in epoch {self.epoch} after step {self.global_step} ({type(err).__name__}: "
            f"{first}); {kept}, or make the run smaller (task.batch_size, population sizes, the recording block)")

    def _loop(self) -> bool:
        """Epochs until every one ran, early stopping or a stop; True when it stopped mid-epoch."""
        while not self.finished and not self.stop_requested:
            epoch = self.epoch
            t0 = time.perf_counter()
            train = self.train_epoch(epoch)
            self.epoch_seconds += time.perf_counter() - t0
            if self.stop_requested:
                return True
            val = self.evaluate(self.task.val) if self.task.val is not None else {}
            test = self.evaluate(self.task.test) if self.options.evaluate_test else {}
            row = self._row(epoch, train, val, test)
            self.rows.append(row)
            self.epoch += 1  # the observers see the loop at the next epoch (what a checkpoint holds)
            self.epoch_seconds = 0.0
            self._notify("epoch_end", row)
            self._agree_on_stop()
        return False

    def _agree_on_stop(self) -> None:
        """A stop wanted by one rank between steps (rank 0's recorder failing) stops all."""
        if self.dist.world == 1:
            return
        flag = self.dist.sum_(torch.tensor([float(self.stop_requested is not None)], device=self.device))
        if flag.item() > 0 and self.stop_requested is None:
            self.stop_requested = "a stop on another rank"

    def _prepare_run_dir(self) -> None:
        """Lock the run directory, check it, write model.yaml, run.json and task.json."""
        rundir.check_out(self.run_dir)
        make_dir(self.run_dir, what="the run directory")  # a read-only or full file system, /proc: said as such
        if self.lock is None:
            self.lock = rundir.RunLock.acquire(self.run_dir, argv=self.options.argv)
        if not self.resumed and not self._started:
            rundir.clear_old_run(self.run_dir, overwrite=self.options.overwrite)
        rundir.remove_leftovers(self.run_dir)  # a killed run's temporary files
        rundir.write_text(self.run_dir / "model.yaml", "model", self.experiment.to_yaml())
        rundir.write_text(self.run_dir / "run.json", "run",
                          json.dumps({**self.options.to_json(), "data_folder": self.task.data_root}, indent=2) + "\n")
        if self.task.artifacts():
            rundir.write_text(self.run_dir / "task.json", "run", json.dumps(self.task.artifacts(), indent=1) + "\n")

    def _with_hint(self, error: DendrisimError) -> DendrisimError:
        """A failed write says where the run can continue from."""
        if not isinstance(error, WriteError) or self.last_checkpoint_step is None:
            return error
        return WriteError(f"{error}. Once the fault is fixed, continue from the checkpoint of step "
                          f"{self.last_checkpoint_step} with: --resume {self.run_dir}")

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
        from .errors import FileFormatError

        path = Path(path)
        state, self.resume_changes = read(path, self.experiment, epochs=self.epochs)
        self.phase_entered = None  # the next step sets the optimizer for the checkpoint's phase
        try:
            load_state(self, state)
        except (KeyError, TypeError, ValueError, RuntimeError, IndexError, AttributeError) as err:
            raise FileFormatError(f"{path}: the checkpoint does not fit this model or is damaged "
                                  f"({type(err).__name__}: {str(err).splitlines()[0][:200] if str(err) else ''})"
                                  ) from None
        self.resumed = True
