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

from .config.loader import Experiment
from .network import Network
from .optim import build_optimizer, build_scheduler
from .plasticity import build_rule
from .tasks import TASKS


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


DRY_RUN_STEPS = 5


def default_run_dir(name: str, seed: int) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    base = Path("recordings") / f"{name}-{stamp}-s{seed}"
    path, k = base, 1
    while path.exists():
        path, k = Path(f"{base}-{k}"), k + 1
    return path


class Trainer:
    """Builds task, network, rule and optimizer from an experiment, then trains.

    One step: ``network(x)`` (forward), ``rule.step(network, t)`` (settle and write
    ``.grad``), ``optimizer.step()``, then the per-step hooks (recording).
    """

    def __init__(self, experiment: Experiment, options: RunOptions):
        self.experiment = experiment
        self.options = options
        cfg = experiment.config
        self.device = resolve_device(options.device)
        seed_everything(cfg.training.seed)
        self.task = TASKS.get(experiment.task.type)(experiment.task, device=self.device, data_root=options.data_root)
        self.network = Network(experiment, input_shape=self.task.input_shape, output_size=self.task.output_size)
        self.rule = build_rule(self.network, experiment)
        self.network.to(self.device)
        self.rule.to(self.device)
        self.optimizer = build_optimizer(self.network, self.rule, cfg.optimizer)
        self.steps_per_epoch = self._steps_per_epoch()
        self.scheduler = build_scheduler(self.optimizer, self.steps_per_epoch * self.epochs, cfg.training)
        self.recorder = None
        self.last_batch_ids: Optional[torch.Tensor] = None
        self.stop_requested: Optional[str] = None  # the reason, set by request_stop
        self.global_step = 0
        if cfg.recording.enabled:  # check the selection now, before any run folder exists
            from .recording.recorder import selection

            selection(cfg.recording, self.network, self.rule, file=experiment.file)
        self.order_generator = torch.Generator().manual_seed(cfg.training.seed)

    def request_stop(self, reason: str) -> None:
        """Finish the current step, then end the run cleanly (used by signal handlers)."""
        self.stop_requested = reason

    def _open_recorder(self, run_dir: Path) -> None:
        from .recording.recorder import FILENAME, Recorder

        cfg = self.experiment.config
        splits = {"train": list(self.task.metrics), "test": list(self.task.metrics)}
        if self.task.val is not None:
            splits["val"] = list(self.task.metrics)
        self.recorder = Recorder(cfg.recording, run_dir / FILENAME, network=self.network, rule=self.rule,
                                 experiment=self.experiment, metric_names=splits,
                                 batch_size=self.experiment.task.batch_size, seed=cfg.training.seed,
                                 device=self.device, argv=self.options.argv)

    @property
    def epochs(self) -> int:
        return 1 if self.options.dry_run else self.experiment.config.training.epochs

    def _steps_per_epoch(self) -> int:
        n = self.task.train.n_batches(self.experiment.task.batch_size)
        limit = DRY_RUN_STEPS if self.options.dry_run else self.experiment.config.training.max_steps_per_epoch
        return min(n, limit) if limit else n

    # ------------------------------------------------------------------ one epoch
    def train_epoch(self, epoch: int) -> dict[str, float]:
        """One pass over the training split; stops early (between steps) on request."""
        task, net, rule, opt = self.task, self.network, self.rule, self.optimizer
        order = torch.randperm(len(task.train), generator=self.order_generator).to(self.device)
        batches = task.train.indexed_batches(self.experiment.task.batch_size, order, limit=self.steps_per_epoch)
        total, n = None, 0
        with torch.no_grad():
            for ids, x, y in self._bar(batches, epoch):
                net(x)
                rule.step(net, task.target(y, net))
                opt.step()
                self.scheduler.step()
                stats = task.batch_stats(y, net)
                total = stats if total is None else total.add_(stats)
                n += y.shape[0]
                self.global_step += 1
                self.last_batch_ids = ids
                if self.recorder is not None:
                    self.recorder.after_step(self.global_step, epoch, ids)
                if self.stop_requested:
                    break
        return task.finish_stats(total, n)

    def _bar(self, batches, epoch: int):
        show = self.options.progress if self.options.progress is not None else sys.stderr.isatty()
        if not show:
            return batches
        from tqdm import tqdm

        return tqdm(batches, total=self.steps_per_epoch, desc=f"epoch {epoch}", leave=False, unit="batch")

    def evaluate(self, split) -> dict[str, float]:
        limit = DRY_RUN_STEPS if self.options.dry_run else None
        return self.task.evaluate(self.network, split, limit=limit)

    # ------------------------------------------------------------------ the run
    def run(self) -> dict:
        cfg = self.experiment.config
        run_dir = self.options.out_dir or default_run_dir(cfg.name, cfg.training.seed)
        run_dir = Path(run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "model.yaml").write_text(self.experiment.to_yaml())
        if cfg.recording.enabled:
            self._open_recorder(run_dir)
        try:
            summary = self._loop(run_dir)
        finally:
            if self.recorder is not None:
                self.recorder.close(complete=self.stop_requested is None and self._finished)
        return summary

    _finished = False

    def _loop(self, run_dir: Path) -> dict:
        cfg = self.experiment.config
        log = self.options.log
        metric_names = list(self.task.metrics)
        stop = cfg.training.early_stopping
        watch = stop.metric if stop else "loss"
        higher = self.task.metrics[watch]
        best, best_epoch, best_state, stale = None, 0, None, 0
        rows = []
        start = time.perf_counter()
        for epoch in range(1, self.epochs + 1):
            t0 = time.perf_counter()
            train = self.train_epoch(epoch)
            seconds = time.perf_counter() - t0
            val = self.evaluate(self.task.val) if self.task.val is not None else {}
            test = self.evaluate(self.task.test)
            row = {"epoch": epoch, "step": self.global_step, "seconds": round(seconds, 3),
                   "lr": self.optimizer.param_groups[0]["lr"]}
            for prefix, values in (("train", train), ("val", val), ("test", test)):
                row.update({f"{prefix}_{k}": v for k, v in values.items()})
            rows.append(row)
            self._write_metrics(run_dir / "metrics.csv", rows)
            if self.recorder is not None:
                self.recorder.end_epoch(self.global_step, epoch, self.last_batch_ids, row)
            log(self._epoch_line(row, metric_names))
            if self.stop_requested:
                log(f"stopped by {self.stop_requested} during epoch {epoch} after step {self.global_step}")
                break
            score = (val or test)[watch] if val else None
            if score is not None and (best is None or self._better(score, best, higher, stop)):
                best, best_epoch, stale = score, epoch, 0
                if cfg.training.select_best:
                    best_state = self._snapshot()
            elif score is not None:
                stale += 1
                if stop and stale >= stop.patience:
                    log(f"early stopping after epoch {epoch}: val_{watch} has not improved for {stale} epochs")
                    break
        final_test = rows[-1]
        selected = rows[-1]
        if best_state is not None and best_epoch != rows[-1]["epoch"]:
            self._restore(best_state)
            selected = rows[best_epoch - 1]
        summary = {
            "model": cfg.name,
            "rule": self.experiment.rule.rule,
            "epochs": rows[-1]["epoch"],
            "steps": self.global_step,
            "seconds": round(time.perf_counter() - start, 3),
            "device": str(self.device),
            "seed": cfg.training.seed,
            "selected_epoch": selected["epoch"],
            "run_dir": str(run_dir),
        }
        for k in metric_names:
            summary[f"test_{k}"] = selected[f"test_{k}"]
            summary[f"final_test_{k}"] = final_test[f"test_{k}"]
            if f"val_{k}" in selected:
                summary[f"val_{k}"] = selected[f"val_{k}"]
        if self.stop_requested:
            summary["stopped"] = self.stop_requested
        if self.recorder is not None:
            summary["recording"] = str(self.recorder.path)
        (run_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
        torch.save({"network": self.network.state_dict(), "rule": self.rule.state_dict()}, run_dir / "weights.pt")
        self._finished = True
        return summary

    @staticmethod
    def _better(score: float, best: float, higher: bool, stop) -> bool:
        delta = stop.min_delta if stop else 0.0
        return score > best + delta if higher else score < best - delta

    def _snapshot(self) -> dict:
        return {"network": copy.deepcopy(self.network.state_dict()), "rule": copy.deepcopy(self.rule.state_dict())}

    def _restore(self, state: dict) -> None:
        self.network.load_state_dict(state["network"])
        self.rule.load_state_dict(state["rule"])

    @staticmethod
    def _write_metrics(path: Path, rows: list[dict]) -> None:
        with open(path, "w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)

    @staticmethod
    def _epoch_line(row: dict, metrics: list[str]) -> str:
        parts = [f"epoch {row['epoch']:>3}"]
        for prefix in ("train", "val", "test"):
            for m in metrics:
                key = f"{prefix}_{m}"
                if key in row:
                    parts.append(f"{key} {row[key]:.4f}")
        parts.append(f"time {row['seconds']:.1f}s")
        return "  ".join(parts)
