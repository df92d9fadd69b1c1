"""A trainer's whole run in its run directory (what :meth:`dendrisim.training.Trainer.run` does).

- :func:`run`: rank 0 takes the run directory's lock (:class:`~dendrisim.rundir.RunLock`)
  for the whole run and prepares the directory (:func:`prepare_run_dir`); then epochs until
  every one ran, early stopping or a stop (:func:`epochs`), the observers' ``stop``, the
  summary. The lock is released however the run ends.
- :func:`train_epoch`: one pass over the training split, from where a resumed epoch stood.
- :func:`agree_on_stop`: a stop wanted by one rank between steps stops all.
- :func:`resume`: a checkpoint loaded into the trainer, so that the next run continues it.
- A run that ran out of memory, or whose write failed, ends in one paragraph that says where
  it can continue from (:func:`out_of_memory`, :func:`with_hint`).

Each function takes the trainer (``loop``) as the observers do.
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import torch

from . import phases as phasing
from . import rundir
from .errors import DendrisimError, FileFormatError, MemoryLimitError, WriteError, is_out_of_memory
from .observers import Outcome
from .observers.checkpoints import CHECKPOINT, load_state, read
from .paths import make_dir


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


def run(loop) -> dict:
    """Train ``loop`` to its configured number of epochs; returns the summary (see
    :meth:`dendrisim.training.Trainer.run`)."""
    main = loop.dist.is_main
    if loop.run_dir is None:
        cfg = loop.experiment.config
        run_dir = Path(loop.options.out_dir or default_run_dir(cfg.name, cfg.training.seed)) if main else None
        loop.run_dir = Path(loop.dist.broadcast(str(run_dir) if main else None))
    try:
        if main:  # only rank 0 writes the run directory, the recording and checkpoints
            prepare_run_dir(loop)
        loop._started = True
        start = time.perf_counter()
        try:
            loop._notify("start")
            mid_epoch = epochs(loop)
        except BaseException as err:
            try:
                stop_observers(loop, Outcome(reason=loop.stop_requested, error=err))
            except BaseException:  # noqa: BLE001 - the error that ended the loop is the one to see
                pass
            if is_out_of_memory(err):  # the estimate cannot see every temporary: said, not a traceback
                raise out_of_memory(loop, err) from None
            raise
        outcome = Outcome(reason=loop.stop_requested, mid_epoch=mid_epoch)
        stop_observers(loop, outcome)  # checkpoint, best weights back, weights.pt, recording closed
        if loop.stop_requested and loop.failure is None:
            loop.options.log(f"stopped by {loop.stop_requested} in epoch {loop.epoch} after step "
                             f"{loop.global_step}; resume with: dendrisim run --resume {loop.run_dir}")
        summary = run_summary(loop, time.perf_counter() - start)
        if loop.failure is not None:
            raise with_hint(loop, loop.failure)
        if outcome.complete and main:
            rundir.write_text(loop.run_dir / "summary.json", "summary", json.dumps(summary, indent=2) + "\n")
        return summary
    finally:
        if loop.lock is not None:
            loop.lock.release()
            loop.lock = None


def stop_observers(loop, outcome: Outcome) -> None:
    """Every observer's ``stop``, last added first; the first error is raised after all ran."""
    first = None
    for observer in reversed(loop.observers):
        try:
            with torch.no_grad():
                observer.stop(loop, outcome)
        except BaseException as err:  # noqa: BLE001 - the others must still close their files
            first = first or err
    if first is not None:
        raise first


def out_of_memory(loop, err: BaseException) -> MemoryLimitError:
    first = (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
    kept = (f"its last checkpoint is kept: finish it with --resume {loop.run_dir} where more memory is free"
            if (loop.run_dir / CHECKPOINT).is_file() else "no checkpoint was written yet")
    return MemoryLimitError(
        f"the run ran out of memory in epoch {loop.epoch} after step {loop.global_step} ({type(err).__name__}: "
        f"{first}); {kept}, or make the run smaller (task.batch_size, population sizes, the recording block)")


def epochs(loop) -> bool:
    """Epochs until every one ran, early stopping or a stop; True when it stopped mid-epoch."""
    while not loop.finished and not loop.stop_requested:
        epoch = loop.epoch
        t0 = time.perf_counter()
        train = loop.train_epoch(epoch)
        loop.epoch_seconds += time.perf_counter() - t0
        if loop.stop_requested:
            return True
        val = loop.evaluate(loop.task.val) if loop.task.val is not None else {}
        test = loop.evaluate(loop.task.test) if loop.options.evaluate_test else {}
        row = epoch_row(loop, epoch, train, val, test)
        loop.rows.append(row)
        loop.epoch += 1  # the observers see the loop at the next epoch (what a checkpoint holds)
        loop.epoch_seconds = 0.0
        loop._notify("epoch_end", row)
        agree_on_stop(loop)
    return False


def train_epoch(loop, epoch: int) -> dict[str, float]:
    """One pass over the training split (from ``step_in_epoch`` when resuming);
    returns early, between steps, when a stop is requested."""
    task = loop.task
    loop.rule.start_epoch(epoch)
    if loop.step_in_epoch == 0:
        loop.epoch_order = torch.randperm(len(task.train), generator=loop.order_generator).to(loop.device)
        loop.epoch_totals, loop.epoch_samples = None, 0
    bs, world = loop.experiment.task.batch_size, loop.dist.world
    order = loop.epoch_order[loop.step_in_epoch * bs * world:]
    batches = task.train.indexed_batches(bs, order, limit=loop.steps_per_epoch - loop.step_in_epoch,
                                         rank=loop.dist.rank, world=world)
    with torch.no_grad():
        for ids, x, y in progress_bar(loop, batches, epoch):
            step = loop.train_step(x, y, ids=ids, epoch=epoch)
            # ranks stop together, on the step whose all-reduce carried the flag
            if step.stop or (world == 1 and loop.stop_requested):
                return epoch_stats(loop)
    loop.step_in_epoch = 0  # the epoch is complete; the next call starts a new one
    return epoch_stats(loop)


def epoch_stats(loop) -> dict[str, float]:
    """The epoch's training metrics so far, summed over the ranks."""
    totals = loop.dist.sum_(torch.cat([loop.epoch_totals.to(torch.float64),
                                       torch.tensor([loop.epoch_samples], dtype=torch.float64,
                                                    device=loop.epoch_totals.device)]))
    return loop.task.finish_stats(totals[:-1], int(totals[-1].item()))


def progress_bar(loop, batches, epoch: int):
    """``batches`` under a progress bar when ``options.progress`` says so (None: on a terminal)."""
    show = loop.options.progress if loop.options.progress is not None else sys.stderr.isatty()
    if not show:
        return batches
    from tqdm import tqdm

    return tqdm(batches, total=loop.steps_per_epoch - loop.step_in_epoch, desc=f"epoch {epoch}",
                leave=False, unit="batch")


def epoch_row(loop, epoch: int, train: dict, val: dict, test: dict) -> dict:
    """The epoch's metrics row (what metrics.csv gets)."""
    row = {"epoch": epoch, "step": loop.global_step, "seconds": round(loop.epoch_seconds, 3),
           "lr": loop.optimizer.param_groups[0]["lr"]}
    if loop.phases:  # the epoch's phase, by name
        index = phasing.phase_index(loop.phases, epoch)
        row["phase"] = phasing.phase_name(loop.phases[index], index)
    for prefix, values in (("train", train), ("val", val), ("test", test)):
        row.update({f"{prefix}_{k}": v for k, v in values.items()})
    # how often each named clip fired during the epoch (clips_apical:h1 ...)
    counts = {name: int(c) for name, c in loop.rule.clip_counts.items()}
    row.update({f"clips_{name}": n - loop.clips_seen.get(name, 0) for name, n in sorted(counts.items())})
    loop.clips_seen = counts
    row.update(loop.rule.epoch_summary())
    row.update({f"align_{name}_{m}": v for name, ms in loop.last_alignment.items() for m, v in ms.items()})
    return row


def agree_on_stop(loop) -> None:
    """A stop wanted by one rank between steps (rank 0's recorder failing) stops all."""
    if loop.dist.world == 1:
        return
    flag = loop.dist.sum_(torch.tensor([float(loop.stop_requested is not None)], device=loop.device))
    if flag.item() > 0 and loop.stop_requested is None:
        loop.stop_requested = "a stop on another rank"


def prepare_run_dir(loop) -> None:
    """Lock the run directory, check it, write model.yaml, run.json and task.json."""
    rundir.check_out(loop.run_dir)
    make_dir(loop.run_dir, what="the run directory")  # a read-only or full file system, /proc: said as such
    if loop.lock is None:
        loop.lock = rundir.RunLock.acquire(loop.run_dir, argv=loop.options.argv)
    if not loop.resumed and not loop._started:
        rundir.clear_old_run(loop.run_dir, overwrite=loop.options.overwrite)
    rundir.remove_leftovers(loop.run_dir)  # a killed run's temporary files
    rundir.write_text(loop.run_dir / "model.yaml", "model", loop.experiment.to_yaml())
    rundir.write_text(loop.run_dir / "run.json", "run",
                      json.dumps({**loop.options.to_json(), "data_folder": loop.task.data_root}, indent=2) + "\n")
    if loop.task.artifacts():
        rundir.write_text(loop.run_dir / "task.json", "run", json.dumps(loop.task.artifacts(), indent=1) + "\n")


def with_hint(loop, error: DendrisimError) -> DendrisimError:
    """A failed write says where the run can continue from."""
    if not isinstance(error, WriteError) or loop.last_checkpoint_step is None:
        return error
    return WriteError(f"{error}. Once the fault is fixed, continue from the checkpoint of step "
                      f"{loop.last_checkpoint_step} with: --resume {loop.run_dir}")


def resume(loop, path: Path) -> None:
    """Load a checkpoint into ``loop`` (see :meth:`dendrisim.training.Trainer.resume`)."""
    path = Path(path)
    state, loop.resume_changes = read(path, loop.experiment, epochs=loop.epochs)
    loop.phase_control.entered = None  # the next step sets the optimizer for the checkpoint's phase
    try:
        load_state(loop, state)
    except (KeyError, TypeError, ValueError, RuntimeError, IndexError, AttributeError) as err:
        raise FileFormatError(f"{path}: the checkpoint does not fit this model or is damaged "
                              f"({type(err).__name__}: {str(err).splitlines()[0][:200] if str(err) else ''})"
                              ) from None
    loop.resumed = True
