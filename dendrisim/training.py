"""The training loop: epochs, evaluation, model selection, early stopping, run folders."""
from __future__ import annotations

import copy
import csv
import json
import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import torch

from . import rundir
from .config.loader import Experiment
from .builder import build, build_scheme
from .errors import DendrisimError, FileFormatError, NumericalError, WriteError
from .optim import build_optimizer, build_scheduler, schedule_factor


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def resolve_device(name: str) -> torch.device:
    from .errors import ConfigError

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"--device {name}: no CUDA device is available here; use cpu or auto")
    try:
        return torch.device(name)
    except RuntimeError:
        raise ConfigError(f"--device {name!r} is not a device; use cpu, cuda, cuda:N or auto") from None


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
        out = {"device": self.device, "data_root": self.data_root, "dry_run": self.dry_run, "argv": self.argv,
               "plugins": self.plugins, "threads": torch.get_num_threads()}
        if self.resumes:
            out["resumes"] = self.resumes
        return out


DRY_RUN_STEPS = 5
CHECKPOINT = "checkpoint.pt"
#: keys of the model file that ``--resume`` may change (any other difference is refused)
RESUMABLE = ("training.epochs", "training.checkpoint_every", "training.guard_every")
#: what a checkpoint must hold
CHECKPOINT_KEYS = ("model_yaml", "network", "rule", "clip_counts", "optimizer", "scheduler", "position",
                   "epoch_order", "epoch_totals", "last_batch_ids", "rows", "clips_seen", "last_alignment",
                   "selection", "rng", "recording")


def default_run_dir(name: str, seed: int, *, root: Path = Path("recordings")) -> Path:
    """A new folder for the run under ``root`` (never outside it, whatever ``name`` holds)."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    base = root / f"{name}-{stamp}-s{seed}"
    path, k = base, 1
    while path.exists():
        path, k = Path(f"{base}-{k}"), k + 1
    return rundir.inside(path, root)


def config_diff(old: object, new: object, prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two resolved model files (as plain data)."""
    if isinstance(old, dict) and isinstance(new, dict):
        out = []
        for key in list(old) + [k for k in new if k not in old]:
            out += config_diff(old.get(key), new.get(key), f"{prefix}{key}.")
        return out
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        return [k for i, (a, b) in enumerate(zip(old, new)) for k in config_diff(a, b, f"{prefix}{i}.")]
    return [] if old == new else [prefix[:-1]]


def nonfinite_tensor(state: object, prefix: str = "") -> Optional[str]:
    """The name of the first floating tensor in nested dicts/lists holding NaN or Inf, or None."""
    if isinstance(state, torch.Tensor):
        return prefix or "value" if state.is_floating_point() and not bool(torch.isfinite(state).all()) else None
    items = state.items() if isinstance(state, dict) else enumerate(state) if isinstance(state, (list, tuple)) else ()
    for key, value in items:
        found = nonfinite_tensor(value, f"{prefix}.{key}" if prefix else str(key))
        if found:
            return found
    return None


def _plain(value):
    """Nested data with numpy scalars as Python numbers (what ``weights_only`` loading accepts)."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_plain(v) for v in value)
    return value.item() if isinstance(value, np.generic) else value


def _numpy_state_to_plain(state: tuple) -> dict:
    name, keys, pos, has_gauss, cached = state
    return {"name": name, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
            "has_gauss": int(has_gauss), "cached_gaussian": float(cached)}


def _numpy_state_from_plain(state: dict) -> tuple:
    return (state["name"], state["keys"].numpy().astype(np.uint32), state["pos"], state["has_gauss"],
            state["cached_gaussian"])


def check_recording(experiment: Experiment, network, rule, *, steps_per_epoch: int, epochs: int,
                    trace_steps: Optional[list[int]] = None) -> dict:
    """Check the recording block (names, size budget); return the size estimate."""
    from .errors import ConfigError
    from .recording.recorder import estimate_bytes, selection

    rec = experiment.config.recording
    selection(rec, network, rule, file=experiment.file)
    est = estimate_bytes(rec, network, rule, batch_size=experiment.task.batch_size,
                         steps=steps_per_epoch * epochs, epochs=epochs, trace_steps=trace_steps)
    if est["bytes"] > rec.max_gib * 2**30:
        raise ConfigError(
            f"the recording would take about {est['bytes'] / 2**30:.1f} GiB ({est['records']} records of "
            f"{est['bytes_per_record'] / 2**20:.2f} MiB, {est['weight_records']} projection records of "
            f"{est['bytes_per_weight_record'] / 2**20:.2f} MiB), over the budget of {rec.max_gib} GiB; record less "
            "often (recording.every, projections_every), fewer samples or neurons, float16, or raise recording.max_gib",
            file=experiment.file, path="recording.max_gib")
    return est


class Trainer:
    """Builds task, network, rule and optimizer from an experiment, then trains.

    One step: ``network(x)`` (forward), ``scheme.present(network, rule, t)`` (settle and
    write ``.grad``), ``optimizer.step()``, then the recorder. Everything the loop needs to go
    on is in the checkpoint (:meth:`checkpoint_state`), written atomically at every
    epoch end, every ``training.checkpoint_every`` steps and when a stop is requested,
    so :meth:`resume` continues exactly where the run was, mid-epoch included.
    """

    def __init__(self, experiment: Experiment, options: RunOptions):
        self.experiment = experiment
        self.options = options
        cfg = experiment.config
        from .distributed import Single

        self.dist = options.dist or Single()
        self.device = resolve_device(options.device)
        if self.device.type == "cuda" and self.dist.world > 1:
            self.device = torch.device("cuda", self.dist.local_rank)
        seed_everything(cfg.training.seed)
        self.task, self.network, self.rule = build(experiment, device=self.device, data_root=options.data_root)
        self.network.to(self.device)
        self.rule.to(self.device)
        self.scheme = build_scheme(experiment)
        self.optimizer = build_optimizer(self.network, self.rule, cfg.optimizer)
        self.learnable = [p for group in self.optimizer.param_groups for p in group["params"]]
        self.steps_per_epoch = self._steps_per_epoch()
        self.scheduler = build_scheduler(self.optimizer, self.steps_per_epoch * self.epochs, cfg.training)
        self.recording_estimate = None
        if cfg.recording.enabled:  # check the selection and the size now, before any run folder exists
            self.recording_estimate = check_recording(experiment, self.network, self.rule,
                                                      steps_per_epoch=self.steps_per_epoch, epochs=self.epochs,
                                                      trace_steps=self.scheme.trace_steps)
        self.recorder = None
        self.stop_requested: Optional[str] = None  # the reason, set by request_stop
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
        self.best: Optional[float] = None
        self.best_epoch = 0
        self.best_state: Optional[dict] = None
        self.stale = 0
        self.resumed_from: Optional[dict] = None
        #: why the run must end in an error once it has stopped cleanly (a failed write, non-finite values)
        self.failure: Optional[DendrisimError] = None
        self.lock: Optional[rundir.RunLock] = None
        self._started = False  # a run() of this trainer has begun: its run directory is its own
        self.clips_seen: dict[str, int] = {}
        self.alignment = None
        self.last_alignment: dict = {}
        if cfg.training.alignment is not None:
            from .alignment import AlignmentProbe

            n = cfg.training.alignment.probe_size
            probe_y = self.task.train.y[:n]
            self.alignment = AlignmentProbe(self.network, self.rule, self.task.inputs(self.task.train.x[:n]),
                                            self.task.target(probe_y, self.network), scheme=self.scheme)

    def request_stop(self, reason: str) -> None:
        """Finish the current step, then checkpoint and end the run (used by signal handlers)."""
        self.stop_requested = reason

    def _fail(self, error: DendrisimError, reason: str) -> None:
        """Stop after this step without further checkpoints; :meth:`run` then raises ``error``."""
        if self.failure is None:
            self.failure = error
            self.options.log(f"stopping: {error}")
        if not self.stop_requested:
            self.request_stop(reason)

    def set_epochs(self, epochs: int) -> None:
        """Train to ``epochs`` in all (``training.epochs`` of the run's model.yaml from now on); the
        learning-rate schedule covers the new total from the step it stands at."""
        import dataclasses

        cfg = self.experiment.config
        training = dataclasses.replace(cfg.training, epochs=epochs)
        self.experiment = dataclasses.replace(self.experiment, config=dataclasses.replace(cfg, training=training))
        total = self.steps_per_epoch * self.epochs
        self.scheduler.lr_lambdas = [lambda s: schedule_factor(s, total, training)
                                     for _ in self.scheduler.lr_lambdas]

    @property
    def epochs(self) -> int:
        return 1 if self.options.dry_run else self.experiment.config.training.epochs

    def _steps_per_epoch(self) -> int:
        n = self.task.train.n_batches(self.experiment.task.batch_size * self.dist.world)
        limit = DRY_RUN_STEPS if self.options.dry_run else self.experiment.config.training.max_steps_per_epoch
        return min(n, limit) if limit else n

    def _rank_batch(self, k: int) -> int:
        """Samples of this rank's part of the epoch's ``k``-th global batch (0-based; the last
        one may be partial): what ``Split.indexed_batches`` hands out."""
        step = self.experiment.task.batch_size * self.dist.world
        glob = min(step, len(self.task.train) - k * step)
        rank, world = self.dist.rank, self.dist.world
        return glob * (rank + 1) // world - glob * rank // world

    @property
    def epoch_end_step(self) -> int:
        """The step of the epoch (1-based) whose state the epoch-end record holds: the last
        one, unless its batch is too short for the recorded samples, then the one before."""
        last = self.steps_per_epoch
        if self.recorder is not None and last > 1 and not self.recorder.fits(self._rank_batch(last - 1)):
            return last - 1
        return last

    def _open_recorder(self, run_dir: Path, *, resume: Optional[dict] = None) -> None:
        from .recording.recorder import FILENAME, Recorder

        cfg = self.experiment.config
        splits = {"train": list(self.task.metrics), "test": list(self.task.metrics)}
        if self.task.val is not None:
            splits["val"] = list(self.task.metrics)
        self.recorder = Recorder(cfg.recording, run_dir / FILENAME, network=self.network, rule=self.rule,
                                 experiment=self.experiment, metric_names=splits,
                                 batch_size=self._rank_batch(0), seed=cfg.training.seed,
                                 device=self.device, argv=self.options.argv, resume=resume,
                                 alignment=self.alignment.names if self.alignment is not None else None,
                                 scheme=self.scheme)

    # ------------------------------------------------------------------ one epoch
    def train_epoch(self, epoch: int) -> dict[str, float]:
        """One pass over the training split (from ``step_in_epoch`` when resuming);
        returns early, between steps, when a stop is requested."""
        task, net, rule, opt = self.task, self.network, self.rule, self.optimizer
        rule.start_epoch(epoch)
        if self.step_in_epoch == 0:
            self.epoch_order = torch.randperm(len(task.train), generator=self.order_generator).to(self.device)
            self.epoch_totals, self.epoch_samples = None, 0
        bs, world = self.experiment.task.batch_size, self.dist.world
        order = self.epoch_order[self.step_in_epoch * bs * world:]
        batches = task.train.indexed_batches(bs, order, limit=self.steps_per_epoch - self.step_in_epoch,
                                             rank=self.dist.rank, world=world)
        with torch.no_grad():
            for ids, x, y in self._bar(batches, epoch):
                net(task.inputs(x))
                # the metrics are those of the network's prediction, before the teacher acts
                stats = task.batch_stats(y, net)
                capture = None
                if self.recorder is not None and self.scheme.trace_steps:  # keep a recorded step's trajectory
                    due = self.recorder.due(self.global_step + 1, ids.shape[0],
                                            epoch_end=self.step_in_epoch + 1 == self.epoch_end_step)
                    capture = self.recorder.positions if due else None
                presentation = self.scheme.present(net, rule, task.target(y, net), capture=capture)
                stop_now = self.dist.sync_grads(self.learnable, y.shape[0], self.stop_requested is not None)
                if stop_now and self.stop_requested is None:
                    self.stop_requested = "a stop on another rank"
                opt.step()
                rule.after_update(net)
                self.scheduler.step()
                guard = self.experiment.config.training.guard_every
                if guard and (self.global_step + 1) % guard == 0:
                    self._guard(self.global_step + 1, epoch)
                self.epoch_totals = stats if self.epoch_totals is None else self.epoch_totals.add_(stats)
                self.epoch_samples += y.shape[0]
                self.global_step += 1
                self.step_in_epoch += 1
                self.last_batch_ids = ids
                if self.recorder is not None:  # the state is this batch's (the epoch-end one: before evaluation)
                    self.recorder.after_step(self.global_step, epoch, ids,
                                             epoch_end=self.step_in_epoch == self.epoch_end_step,
                                             trajectory=presentation.trajectory)
                self._measure_alignment(epoch)
                if self.recorder is not None and self.recorder.failure is not None:
                    self._fail(WriteError(self.recorder.failure), "recording failure")
                every = self.experiment.config.training.checkpoint_every
                if every and self.global_step % every == 0 and self.run_dir is not None:
                    self.save_checkpoint()
                # ranks stop together, on the step whose all-reduce carried the flag
                if stop_now or (world == 1 and self.stop_requested):
                    return self._epoch_stats()
        self.step_in_epoch = 0  # the epoch is complete; the next call starts a new one
        return self._epoch_stats()

    def _watched(self):
        """(kind, owner, variable, tensor) of everything the NaN guard checks, in order."""
        for pop in self.network.pyramidal():
            for var in pop.recordable:
                yield "population", pop.name, var, getattr(pop, var)
        for proj in self.network.projections.values():
            if proj.weight is None:
                continue
            yield "projection", proj.name, "update", proj.weight.grad
            yield "projection", proj.name, "weight", proj.weight
        for name, param in self.rule.named_parameters():
            yield "rule parameter", name, "value", param
            yield "rule parameter", name, "update", param.grad

    def _guard(self, step: int, epoch: int) -> None:
        """Stop with the first non-finite population/projection variable (one host sync)."""
        watched = [w for w in self._watched() if w[3] is not None]
        # one cheap sentinel: a NaN or Inf anywhere makes the sum of the sums non-finite
        if bool(torch.isfinite(torch.stack([t.detach().sum(dtype=torch.float32) for *_, t in watched]).sum())):
            return
        from .errors import NumericalError

        kind, owner, var, _ = next(w for w in watched if not bool(torch.isfinite(w[3]).all()))
        every = self.experiment.config.training.guard_every
        where = f"in epoch {epoch}, training step {step}" + (f" (checked every {every} steps)" if every > 1 else "")
        raise NumericalError(
            f"{self.experiment.file}: non-finite values (NaN or Inf) in {kind} {owner!r}, variable {var!r}, "
            f"{where} (the first bad one in feedforward order). The recording up to the last flush and the "
            "last checkpoint are kept. Lower optimizer.lr, or bound the rule with plasticity.clip_apical / clip_update")

    def _measure_alignment(self, epoch: int) -> None:
        a = self.experiment.config.training.alignment
        if a is None or self.global_step % a.every:
            return
        self.last_alignment = self.alignment.measure()
        if self.recorder is not None:
            self.recorder.record_alignment(self.global_step, epoch, self.last_alignment)

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

    # ------------------------------------------------------------------ the run
    run_dir: Optional[Path] = None

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
        if self._final_state is not None:  # the last run() left the selected epoch's weights in place
            self._restore(self._final_state)
            self._final_state = None
        try:
            if main:  # only rank 0 writes the run directory, the recording and checkpoints
                self._prepare_run_dir()
            self._started = True
            finished = False  # weights.pt written: the recording is complete, summary.json follows
            try:
                summary = self._loop()
                if self.stop_requested is None and self.failure is None:
                    try:
                        if main:
                            self._write_weights()
                        finished = True
                    except WriteError as err:
                        self.failure = err
            finally:
                self._close_recorder(complete=finished)
            if self.failure is not None:
                raise self._with_hint(self.failure)
            if finished and main:
                rundir.write_text(self.run_dir / "summary.json", "summary", json.dumps(summary, indent=2) + "\n")
            return summary
        finally:
            if self.lock is not None:
                self.lock.release()
                self.lock = None

    def _prepare_run_dir(self) -> None:
        """Lock the run directory, check it, write model.yaml and run.json, open the recording."""
        cfg = self.experiment.config
        rundir.check_out(self.run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        if self.lock is None:
            self.lock = rundir.RunLock.acquire(self.run_dir, argv=self.options.argv)
        if self.resumed_from is None and not self._started:
            rundir.clear_old_run(self.run_dir, overwrite=self.options.overwrite)
        rundir.remove_leftovers(self.run_dir)  # a killed run's temporary files
        rundir.write_text(self.run_dir / "model.yaml", "model", self.experiment.to_yaml())
        rundir.write_text(self.run_dir / "run.json", "run",
                          json.dumps({**self.options.to_json(), "data_folder": self.task.data_root}, indent=2) + "\n")
        if self.task.artifacts():
            rundir.write_text(self.run_dir / "task.json", "run", json.dumps(self.task.artifacts(), indent=1) + "\n")
        if self.rows:  # resumed: metrics.csv holds exactly the checkpoint's epochs
            self._write_metrics(self.run_dir / "metrics.csv", self.rows)
        if cfg.recording.enabled:
            self._open_recorder(self.run_dir, resume=self.resumed_from)

    def _with_hint(self, error: DendrisimError) -> DendrisimError:
        """A failed write says where the run can continue from."""
        if not isinstance(error, WriteError) or self._last_checkpoint_step is None:
            return error
        return WriteError(f"{error}. Once the fault is fixed, continue from the checkpoint of step "
                          f"{self._last_checkpoint_step} with: --resume {self.run_dir}")

    def _close_recorder(self, *, complete: bool) -> None:
        if self.recorder is None:
            return
        self.recorder.close(complete=complete)
        if self.recorder.failure is not None and self.failure is None:
            self.failure = WriteError(self.recorder.failure)
        if self.recorder.final_position is not None:  # a later run() (fit) continues this recording
            self.resumed_from = self.recorder.final_position

    def _loop(self) -> dict:
        cfg = self.experiment.config
        log = self.options.log
        metric_names = list(self.task.metrics)
        stop = cfg.training.early_stopping
        watch = stop.metric if stop else "loss"
        higher = self.task.metrics[watch]
        start = time.perf_counter()
        while self.epoch <= self.epochs and not self._early_stopped and not self.stop_requested:
            epoch = self.epoch
            t0 = time.perf_counter()
            train = self.train_epoch(epoch)
            self.epoch_seconds += time.perf_counter() - t0
            if self.stop_requested:
                self.save_checkpoint()
                break
            val = self.evaluate(self.task.val) if self.task.val is not None else {}
            test = self.evaluate(self.task.test) if self.options.evaluate_test else {}
            row = {"epoch": epoch, "step": self.global_step, "seconds": round(self.epoch_seconds, 3),
                   "lr": self.optimizer.param_groups[0]["lr"]}
            for prefix, values in (("train", train), ("val", val), ("test", test)):
                row.update({f"{prefix}_{k}": v for k, v in values.items()})
            row.update(self._clip_summary())
            row.update(self.rule.epoch_summary())
            row.update({f"align_{name}_{m}": v for name, ms in self.last_alignment.items() for m, v in ms.items()})
            self.rows.append(row)
            # the recording flushes the epoch first, so an epoch in metrics.csv is always on disk in it
            if self.recorder is not None:
                self.recorder.end_epoch(self.global_step, epoch, self.last_batch_ids, row)
                if self.recorder.failure is not None:
                    self._fail(WriteError(self.recorder.failure), "recording failure")
            if self.dist.is_main and self.failure is None:
                try:
                    self._write_metrics(self.run_dir / "metrics.csv", self.rows)
                except WriteError as err:
                    self._fail(err, "metrics failure")
            log(self._epoch_line(row, metric_names))
            self._check_finite_row(row)
            if self.options.on_epoch is not None:
                self.options.on_epoch(row)
            self._select(val.get(watch) if val else None, higher, stop)
            self.epoch += 1
            self.epoch_seconds = 0.0
            self.save_checkpoint()
            self._agree_on_stop()
        if self.stop_requested and self.failure is None:
            log(f"stopped by {self.stop_requested} in epoch {self.epoch} after step {self.global_step}; "
                f"resume with: python scripts/simulate.py --resume {self.run_dir}")
        return self._summary(time.perf_counter() - start, metric_names)

    _early_stopped = False

    def _check_finite_row(self, row: dict) -> None:
        """An epoch whose metrics are not finite ends the run (whatever ``guard_every`` says)."""
        bad = [k for k, v in row.items() if k.split("_")[0] in ("train", "val", "test")
               and isinstance(v, float) and not np.isfinite(v)]
        if bad:
            where = f"{self.run_dir / CHECKPOINT} (step {self._last_checkpoint_step})" \
                if self._last_checkpoint_step is not None else "no checkpoint"
            raise NumericalError(
                f"{self.experiment.file}: epoch {row['epoch']} ended with non-finite metrics "
                f"({', '.join(f'{k} {row[k]}' for k in bad)}); the run stops without checkpointing this state, "
                f"the last good checkpoint is {where}. Lower optimizer.lr, bound the rule "
                "(plasticity.clip_apical / clip_update), or set training.guard_every to find the first bad step")

    _last_checkpoint_step: Optional[int] = None

    def _clip_summary(self) -> dict[str, int]:
        """How often each named clip fired during the epoch (``clips_apical:h1`` ...)."""
        counts = {name: int(c) for name, c in self.rule.clip_counts.items()}
        out = {f"clips_{name}": n - self.clips_seen.get(name, 0) for name, n in sorted(counts.items())}
        self.clips_seen = counts
        return out

    def _agree_on_stop(self) -> None:
        """A stop wanted by one rank between steps (rank 0's recorder failing) stops all."""
        if self.dist.world == 1:
            return
        flag = self.dist.sum_(torch.tensor([float(self.stop_requested is not None)], device=self.device))
        if flag.item() > 0 and self.stop_requested is None:
            self.stop_requested = "a stop on another rank"

    def _select(self, score: Optional[float], higher: bool, stop) -> None:
        """Model selection and early stopping on the validation metric."""
        if score is None:
            return
        epoch = self.rows[-1]["epoch"]
        if self.best is None or self._better(score, self.best, higher, stop):
            self.best, self.best_epoch, self.stale = score, epoch, 0
            if self.experiment.config.training.select_best:
                self.best_state = self._snapshot()
            return
        self.stale += 1
        if stop and self.stale >= stop.patience:
            self.options.log(f"early stopping after epoch {epoch}: val_{stop.metric} has not improved "
                             f"for {self.stale} epochs")
            self._early_stopped = True

    def _summary(self, seconds: float, metric_names: list[str]) -> dict:
        cfg = self.experiment.config
        rows = self.rows
        summary = {"model": cfg.name, "rule": self.experiment.rule.rule, "epochs": len(rows),
                   "steps": self.global_step, "seconds": round(seconds, 3), "device": str(self.device),
                   "seed": cfg.training.seed, "run_dir": str(self.run_dir)}
        if rows:
            final, selected = rows[-1], rows[-1]
            if self.best_state is not None and self.best_epoch != final["epoch"]:
                self._final_state = self._snapshot()  # a later run() (fit) continues from here
                self._restore(self.best_state)
                selected = rows[self.best_epoch - 1]
            summary["selected_epoch"] = selected["epoch"]
            for k in metric_names:
                if f"test_{k}" in selected:
                    summary[f"test_{k}"] = selected[f"test_{k}"]
                    summary[f"final_test_{k}"] = final[f"test_{k}"]
                if f"val_{k}" in selected:
                    summary[f"val_{k}"] = selected[f"val_{k}"]
        if self.stop_requested:
            summary["stopped"] = self.stop_requested
        if self.recorder is not None:
            summary["recording"] = str(self.recorder.path)
        if self.dist.world > 1:
            summary["world_size"] = self.dist.world
            summary["global_batch_size"] = self.dist.world * self.experiment.task.batch_size
        return summary

    def _write_weights(self) -> None:
        """weights.pt of a finished run (then the recording is closed, then summary.json is written,
        whose presence marks a finished run)."""
        state = {"network": self.network.state_dict(), "rule": self.rule.state_dict()}
        bad = nonfinite_tensor(state)
        if bad:
            raise NumericalError(f"{self.experiment.file}: the final weights hold non-finite values ({bad}); "
                                 "weights.pt is not written")
        rundir.write_atomic(self.run_dir / "weights.pt", "weights", lambda tmp: torch.save(state, tmp))

    @staticmethod
    def _better(score: float, best: float, higher: bool, stop) -> bool:
        delta = stop.min_delta if stop else 0.0
        return score > best + delta if higher else score < best - delta

    def _snapshot(self) -> dict:
        return {"network": copy.deepcopy(self.network.state_dict()), "rule": copy.deepcopy(self.rule.state_dict())}

    def _restore(self, state: dict) -> None:
        self.network.load_state_dict(state["network"])
        self.rule.load_state_dict(state["rule"])

    # ------------------------------------------------------------------ checkpoints
    def checkpoint_state(self) -> dict:
        """Everything needed to continue exactly: weights, optimizer, schedule, position, RNGs."""
        return {
            "format": 1,
            "model_yaml": self.experiment.to_yaml(),
            "network": self.network.state_dict(),
            "rule": self.rule.state_dict(),
            "clip_counts": {k: v.cpu() for k, v in self.rule.clip_counts.items()},
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "position": {"global_step": self.global_step, "epoch": self.epoch, "step_in_epoch": self.step_in_epoch,
                         "epoch_samples": self.epoch_samples, "epoch_seconds": self.epoch_seconds},
            "epoch_order": None if self.epoch_order is None else self.epoch_order.cpu(),
            "epoch_totals": None if self.epoch_totals is None else self.epoch_totals.cpu(),
            "last_batch_ids": None if self.last_batch_ids is None else self.last_batch_ids.cpu(),
            "rows": _plain(self.rows),  # a plugin's epoch_summary may give numpy numbers
            "clips_seen": _plain(self.clips_seen),
            "last_alignment": _plain(self.last_alignment),
            "selection": {"best": self.best, "best_epoch": self.best_epoch, "stale": self.stale,
                          "early_stopped": self._early_stopped, "best_state": self.best_state},
            "rng": {"python": random.getstate(), "numpy": _numpy_state_to_plain(np.random.get_state()),
                    "torch": torch.get_rng_state(),
                    "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
                    "order": self.order_generator.get_state()},
            "recording": None if self.recorder is None else self.recorder.position(),
        }

    def save_checkpoint(self) -> Optional[Path]:
        """Flush the recording, then write ``checkpoint.pt`` atomically (temporary file, fsync,
        rename). Nothing is written once the run has failed, nor a state with NaN or Inf: then
        the previous checkpoint is kept and the run stops (:attr:`failure`)."""
        if not self.dist.is_main or self.failure is not None:
            return None
        if self.recorder is not None:
            self.recorder.flush()
            if self.recorder.failure is not None:  # the recording cannot follow a checkpoint taken now
                self._fail(WriteError(self.recorder.failure), "recording failure")
                return None
            try:  # the checkpoint never runs ahead of the recording on disk
                rundir.fsync_file(self.recorder.path)
            except OSError as err:
                self._fail(WriteError(f"writing {self.recorder.path} failed ({err})"), "recording failure")
                return None
        state = self.checkpoint_state()
        bad = nonfinite_tensor({k: state[k] for k in ("network", "rule", "optimizer")})
        if bad:
            where = f"step {self._last_checkpoint_step}" if self._last_checkpoint_step is not None else "none yet"
            self._fail(NumericalError(
                f"{self.experiment.file}: non-finite values (NaN or Inf) in {bad} at step {self.global_step}; "
                f"no checkpoint is written with them (the last good one: {where}). Lower optimizer.lr, or bound "
                "the rule with plasticity.clip_apical / clip_update"), "non-finite values")
            return None
        path = self.run_dir / CHECKPOINT
        try:
            rundir.write_atomic(path, "checkpoint", lambda tmp: torch.save(state, tmp))
        except WriteError as err:
            self._fail(err, "checkpoint failure")
            return None
        self._last_checkpoint_step = self.global_step
        return path

    def resume(self, path: Path) -> None:
        """Load a checkpoint written by this model; the next :meth:`run` continues from it.

        The checkpoint is read with ``weights_only=True`` (no code in it runs). The model
        may differ from the one that wrote it only in :data:`RESUMABLE` keys."""
        from .errors import ConfigError

        path = Path(path)
        state = rundir.load_tensors(path, what="checkpoint")
        missing = [k for k in CHECKPOINT_KEYS if k not in state]
        if missing:
            raise FileFormatError(f"{path}: not a dendrisim checkpoint (it lacks {', '.join(missing)})")
        import yaml

        try:
            old = yaml.safe_load(state["model_yaml"])
        except yaml.YAMLError:
            raise FileFormatError(f"{path}: the checkpoint's model_yaml is damaged") from None
        changed = config_diff(old, self.experiment.to_dict())
        refused = [k for k in changed if k not in RESUMABLE]
        if refused:
            keys = ", ".join(refused[:8]) + (f" and {len(refused) - 8} more" if len(refused) > 8 else "")
            raise ConfigError(
                f"{path} was written by a different model file (or other options) than {self.experiment.file}: "
                f"{keys} differ{'s' if len(refused) == 1 else ''}; a resumed run can change only "
                f"{', '.join(RESUMABLE)} (resume with the run directory's own model.yaml and those keys, "
                "or start a new run)", path="--resume")
        done = state["position"]["epoch"] - 1
        if self.epochs < done:
            raise ConfigError(f"training.epochs {self.epochs} is below the {done} epochs the run has completed",
                              path="--resume")
        self.resume_changes = changed
        try:
            self._load_state(state)
        except (KeyError, TypeError, ValueError, RuntimeError, IndexError, AttributeError) as err:
            raise FileFormatError(f"{path}: the checkpoint does not fit this model or is damaged "
                                  f"({type(err).__name__}: {str(err).splitlines()[0][:200] if str(err) else ''})"
                                  ) from None

    resume_changes: list[str] = []
    _final_state: Optional[dict] = None

    @property
    def finished(self) -> bool:
        """Whether the loop has nothing left to do (every epoch done, or early stopped)."""
        return self.epoch > self.epochs or self._early_stopped

    def _load_state(self, state: dict) -> None:
        self.network.load_state_dict(state["network"])
        self.rule.load_state_dict(state["rule"])
        self.rule.clip_counts = {k: v.to(self.device) for k, v in state["clip_counts"].items()}
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        pos = state["position"]
        self.global_step, self.epoch, self.step_in_epoch = pos["global_step"], pos["epoch"], pos["step_in_epoch"]
        self.epoch_samples, self.epoch_seconds = pos["epoch_samples"], pos["epoch_seconds"]
        to_dev = lambda t: None if t is None else t.to(self.device)  # noqa: E731
        self.epoch_order, self.epoch_totals = to_dev(state["epoch_order"]), to_dev(state["epoch_totals"])
        self.last_batch_ids = to_dev(state["last_batch_ids"])
        self.rows = state["rows"]
        self.clips_seen = state["clips_seen"]
        self.last_alignment = state["last_alignment"]
        sel = state["selection"]
        self.best, self.best_epoch, self.stale = sel["best"], sel["best_epoch"], sel["stale"]
        self._early_stopped, self.best_state = sel["early_stopped"], sel["best_state"]
        rng = state["rng"]
        random.setstate(rng["python"])
        np.random.set_state(_numpy_state_from_plain(rng["numpy"]))
        torch.set_rng_state(rng["torch"])
        if rng["cuda"] is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(rng["cuda"])
        self.order_generator.set_state(rng["order"])
        self.resumed_from = state["recording"] or {}
        self._last_checkpoint_step = self.global_step

    @staticmethod
    def _write_metrics(path: Path, rows: list[dict]) -> None:
        def write(tmp: Path) -> None:
            with open(tmp, "w", newline="") as fh:
                writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
                writer.writeheader()
                writer.writerows(rows)

        rundir.write_atomic(path, "metrics", write)

    @staticmethod
    def _epoch_line(row: dict, metrics: list[str]) -> str:
        parts = [f"epoch {row['epoch']:>3}"]
        for prefix in ("train", "val", "test"):
            for m in metrics:
                key = f"{prefix}_{m}"
                if key in row:
                    parts.append(f"{key} {row[key]:.4f}")
        clips = [f"{k[6:]}={v}" for k, v in row.items() if k.startswith("clips_") and v]
        if clips:
            parts.append("clipped " + " ".join(clips))
        parts.append(f"time {row['seconds']:.1f}s")
        return "  ".join(parts)
