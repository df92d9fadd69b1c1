"""The checkpoint observer and the checkpoint format.

``checkpoint.pt`` holds everything the loop needs to continue exactly (:data:`CHECKPOINT_KEYS`,
``"format": 1``): weights, optimizer, schedule, position, history, the observers' state and
every random generator. It is written atomically (temporary file, fsync, rename) every
``training.checkpoint_every`` steps, at every epoch end and when a run stops mid-epoch;
never once the run has failed, nor with NaN or Inf in it.
"""
from __future__ import annotations

import collections
import random
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from .. import rundir
from ..errors import ConfigError, DendrisimError, FileFormatError, NumericalError, WriteError, brief
from ..phases import resumable_phase_keys
from .base import Observer, Outcome, Step

CHECKPOINT = "checkpoint.pt"
FORMAT = 1
#: keys of the model file that ``--resume`` may change (any other difference is refused); with
#: ``training.phases`` also the last phase's epochs (:func:`resumable`)
RESUMABLE = ("training.epochs", "training.checkpoint_every", "training.guard_every")


def resumable(training) -> tuple[str, ...]:
    """The keys a resumed run of a model with these ``training`` settings may change:
    :data:`RESUMABLE` and, with phases, ``training.phases.<last>.epochs`` (more epochs extend
    the last phase; every other phase key is refused by name)."""
    return RESUMABLE + resumable_phase_keys(training)
#: what a checkpoint must hold
CHECKPOINT_KEYS = ("model_yaml", "network", "rule", "clip_counts", "optimizer", "scheduler", "position",
                   "epoch_order", "epoch_totals", "last_batch_ids", "rows", "clips_seen", "last_alignment",
                   "selection", "rng", "recording")


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


class UnstorableValue(DendrisimError):
    """A checkpoint (or ``weights.pt``) would hold a value its own loader,
    ``torch.load(weights_only=True)``, cannot read back; nothing is written."""


#: what ``torch.load(weights_only=True)`` reads back: these exact types (no subclasses) ...
_SCALARS = (str, bytes, bytearray, int, float, complex, bool, type(None), torch.dtype, torch.device)
#: ... and these containers of them (dict keys are checked as values)
_CONTAINERS = (dict, collections.OrderedDict, list, tuple, set, torch.Size)
#: the trainer's own keys of a metrics row (any other comes from the rule or an observer)
_ROW_KEYS = ("epoch", "step", "seconds", "lr", "phase")
_ROW_PREFIXES = ("train_", "val_", "test_", "clips_", "align_")


def unstorable(value: object, path: str = "") -> Optional[tuple[str, object]]:
    """``(path, value)`` of the first value in ``value`` that a checkpoint cannot hold
    (``torch.load(weights_only=True)`` would refuse it: a numpy array, a ``Decimal``, an
    object), or None: tensors, ``str``, ``bytes``, numbers, ``bool``, ``None``, dtypes and
    devices, and lists, tuples, sets and dicts of them."""
    stack = [(value, path, ())]
    while stack:
        item, where, seen = stack.pop()
        kind = type(item)
        if isinstance(item, torch.Tensor):
            if kind not in (torch.Tensor, torch.nn.Parameter):
                return where or "value", item
            continue
        if kind in _SCALARS:
            continue
        if kind not in _CONTAINERS or id(item) in seen:
            return where or "value", item
        inner = (*seen, id(item))
        if isinstance(item, dict):
            for key, sub in reversed(list(item.items())):
                here = f"{where}.{key}" if where else str(key)
                stack += [(sub, here, inner), (key, f"{here} (the key)", inner)]
        else:
            stack += [(sub, f"{where}.{i}" if where else str(i), inner) for i, sub in reversed(list(enumerate(item)))]
    return None


def _rule_name(loop) -> str:
    from ..plugins import ORIGIN

    name = loop.experiment.rule.rule
    origin = ORIGIN.get(name)
    return f"rule {name!r}" + (f" (in {origin})" if origin and origin != "dendrisim" else "")


def checkpoint_sources(loop) -> dict[str, str]:
    """Which hook put each top-level part of a checkpoint there (for :class:`UnstorableValue`)."""
    rule = f"the state_dict of {_rule_name(loop)} (its buffers, or what its get_extra_state returns)"
    return {"network": "the network's state_dict", "rule": rule, "clip_counts": f"the clip counts of {_rule_name(loop)}",
            "clips_seen": f"the clip counts of {_rule_name(loop)}", "selection": f"model selection's copy of {rule}",
            "last_alignment": "the alignment observer", "rows": "the epoch's metrics row"}


def weights_sources(loop) -> dict[str, str]:
    return {k: v for k, v in checkpoint_sources(loop).items() if k in ("network", "rule")}


def _row_source(loop, key: str) -> str:
    """Who put ``key`` in a metrics row: the trainer, or the rule's ``epoch_summary`` (or an
    observer added to the trainer, whose ``epoch_end`` may change the row)."""
    if key in _ROW_KEYS or key.startswith(_ROW_PREFIXES):
        return "the trainer"
    added = [type(o).__name__ for o in loop.observers[loop.observers.index(loop.checkpoints) + 1:]] \
        if loop.checkpoints in loop.observers else []
    extra = f", or the epoch_end of an observer added to the trainer ({', '.join(added)})" if added else ""
    return f"the epoch_summary of {_rule_name(loop)}{extra}"


def check_storable(state: dict, file: str, *, sources: dict[str, str], loop=None) -> None:
    """An :class:`UnstorableValue` naming the hook, the value's type and its path when
    ``state`` holds something ``torch.load(weights_only=True)`` cannot read back."""
    found = unstorable(state)
    if found is None:
        return
    where, value = found
    top = where.split(".")[0]
    source = sources.get(top, "the trainer")
    if top == "rows" and loop is not None and where.count(".") >= 2:
        source = _row_source(loop, where.split(".")[2].removesuffix(" (the key)"))
    raise UnstorableValue(
        f"{file} cannot hold the value at {where}, a {type(value).__module__}.{type(value).__qualname__} "
        f"({brief(value)}), put there by {source}: torch.load(weights_only=True), which reads it back, accepts only "
        "tensors, numbers, strings, bytes, None, and lists, tuples and dicts of them, so the run stops here rather "
        "than write a file it could never read. Return a float, an int or a tensor instead "
        "(float(x), x.tolist(), torch.as_tensor(x))")


def resume_changes(old: dict, new: dict, training) -> tuple[list[str], str]:
    """The keys ``new`` changes against ``old`` (a run's model), and, when some of them are
    not :func:`resumable` under ``training``, the text naming those ("a, b differ"; "" when none)."""
    changed = config_diff(old, new)
    refused = [k for k in changed if k not in resumable(training)]
    if not refused:
        return changed, ""
    keys = ", ".join(refused[:8]) + (f" and {len(refused) - 8} more" if len(refused) > 8 else "")
    return changed, f"{keys} differ{'s' if len(refused) == 1 else ''}"


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


def state_of(loop) -> dict:
    """Everything needed to continue exactly: weights, optimizer, schedule, position, RNGs."""
    cpu = lambda t: None if t is None else t.cpu()  # noqa: E731
    recorder = loop.recording.recorder
    return {
        "format": FORMAT,
        "model_yaml": loop.experiment.to_yaml(),
        "network": loop.network.state_dict(),
        "rule": loop.rule.state_dict(),
        "clip_counts": {k: v.cpu() for k, v in loop.rule.clip_counts.items()},
        "optimizer": loop.optimizer.state_dict(),
        "scheduler": loop.scheduler.state_dict(),
        "position": {"global_step": loop.global_step, "epoch": loop.epoch, "step_in_epoch": loop.step_in_epoch,
                     "epoch_samples": loop.epoch_samples, "epoch_seconds": loop.epoch_seconds,
                     # which learnable tensors hold a .grad buffer (see load_state)
                     "grads": [p.grad is not None for p in loop.learnable]},
        "epoch_order": cpu(loop.epoch_order),
        "epoch_totals": cpu(loop.epoch_totals),
        "last_batch_ids": cpu(loop.last_batch_ids),
        "rows": _plain(loop.rows),  # a plugin's epoch_summary may give numpy numbers
        "clips_seen": _plain(loop.clips_seen),
        "last_alignment": _plain(loop.last_alignment),
        "selection": loop.selection.state(),
        "rng": {"python": random.getstate(), "numpy": _numpy_state_to_plain(np.random.get_state()),
                "torch": torch.get_rng_state(),
                "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
                "order": loop.order_generator.get_state()},
        "recording": None if recorder is None else recorder.position(),
    }


def read(path: Path, experiment, *, epochs: int) -> tuple[dict, list[str]]:
    """A checkpoint written for ``experiment`` (read with ``weights_only=True``: no code in
    it runs) and the :data:`RESUMABLE` keys in which the experiment differs from it."""
    state = rundir.load_tensors(path, what="checkpoint")
    missing = [k for k in CHECKPOINT_KEYS if k not in state]
    if missing:
        raise FileFormatError(f"{path}: not a dendrisim checkpoint (it lacks {', '.join(missing)})")
    import yaml

    try:
        old = yaml.safe_load(state["model_yaml"])
    except yaml.YAMLError:
        raise FileFormatError(f"{path}: the checkpoint's model_yaml is damaged") from None
    changed, refused = resume_changes(old, experiment.to_dict(), experiment.config.training)
    if refused:
        raise ConfigError(
            f"{path} was written by a different model file (or other options) than {experiment.file}: "
            f"{refused}; a resumed run can change only {', '.join(resumable(experiment.config.training))} "
            "(resume with the run directory's own model.yaml and those keys, or start a new run)", path="--resume")
    done = state["position"]["epoch"] - 1
    if epochs < done:
        raise ConfigError(f"training.epochs {epochs} is below the {done} epochs the run has completed",
                          path="--resume")
    return state, changed


def load_state(loop, state: dict) -> None:
    """Put a checkpoint's state back into the loop, its observers and the random generators."""
    loop.network.load_state_dict(state["network"])
    loop.rule.load_state_dict(state["rule"])
    loop.rule.clip_counts = {k: v.to(loop.device) for k, v in state["clip_counts"].items()}
    loop.optimizer.load_state_dict(state["optimizer"])
    loop.scheduler.load_state_dict(state["scheduler"])
    pos = state["position"]
    loop.global_step, loop.epoch, loop.step_in_epoch = pos["global_step"], pos["epoch"], pos["step_in_epoch"]
    loop.epoch_samples, loop.epoch_seconds = pos["epoch_samples"], pos["epoch_seconds"]
    # The rules write updates into an existing .grad with addmm(alpha=-c/B, out=) and into a
    # fresh one with mm(...).mul_(-c/B): the two round differently when c/B is not a power of two.
    # So the learnable tensors get back the buffers they had (their values are always overwritten),
    # and the step after a resume computes as the uninterrupted run's did (older checkpoints: none).
    for param, had in zip(loop.learnable, pos.get("grads", ())):
        param.grad = torch.zeros_like(param) if had else None
    to_dev = lambda t: None if t is None else t.to(loop.device)  # noqa: E731
    loop.epoch_order, loop.epoch_totals = to_dev(state["epoch_order"]), to_dev(state["epoch_totals"])
    loop.last_batch_ids = to_dev(state["last_batch_ids"])
    loop.rows = state["rows"]
    loop.clips_seen = state["clips_seen"]
    if loop.alignment is not None:
        loop.alignment.last = state["last_alignment"]
    loop.selection.load(state["selection"])
    rng = state["rng"]
    random.setstate(rng["python"])
    np.random.set_state(_numpy_state_from_plain(rng["numpy"]))
    torch.set_rng_state(rng["torch"])
    if rng["cuda"] is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(rng["cuda"])
    loop.order_generator.set_state(rng["order"])
    loop.recording.resume_from = state["recording"] or {}
    loop.checkpoints.last_step = loop.global_step


class Checkpoints(Observer):
    """Writes ``checkpoint.pt`` in the run directory: every ``every`` steps (None: never
    mid-epoch), at each epoch end, and when the run stops mid-epoch. ``last_step``: the step
    of the last good checkpoint (where a failed run can continue from)."""

    def __init__(self, every: Optional[int], *, file: str):
        self.every, self.file = every, file
        self.last_step: Optional[int] = None

    def after_step(self, loop, step: Step) -> None:
        if step.epoch is not None and self.every and step.number % self.every == 0 and loop.run_dir is not None:
            self.save(loop)

    def epoch_end(self, loop, row: dict) -> None:
        self.save(loop)

    def stop(self, loop, outcome: Outcome) -> None:
        if outcome.error is None and outcome.mid_epoch:
            self.save(loop)

    def save(self, loop) -> Optional[Path]:
        """Flush the recording, then write the checkpoint atomically. Nothing is written once
        the run has failed, nor a state with NaN or Inf: then the previous checkpoint is kept
        and the run stops (``loop.failure``)."""
        if not loop.dist.is_main or loop.failure is not None:
            return None
        recorder = loop.recording.recorder
        if recorder is not None:
            recorder.flush()
            if recorder.failure is not None:  # the recording cannot follow a checkpoint taken now
                loop.fail(WriteError(recorder.failure), "recording failure")
                return None
            try:  # the checkpoint never runs ahead of the recording on disk
                rundir.fsync_file(recorder.path)
            except OSError as err:
                loop.fail(WriteError(f"writing {recorder.path} failed ({err})"), "recording failure")
                return None
        state = state_of(loop)
        try:
            check_storable(state, str(Path(loop.run_dir) / CHECKPOINT), sources=checkpoint_sources(loop), loop=loop)
        except UnstorableValue as err:
            loop.fail(err, "a value a checkpoint cannot hold")
            return None
        bad = nonfinite_tensor({k: state[k] for k in ("network", "rule", "optimizer")})
        if bad:
            where = f"step {self.last_step}" if self.last_step is not None else "none yet"
            loop.fail(NumericalError(
                f"{self.file}: non-finite values (NaN or Inf) in {bad} at step {loop.global_step}; "
                f"no checkpoint is written with them (the last good one: {where}). Lower optimizer.lr, or bound "
                "the rule with plasticity.clip_apical / clip_update"), "non-finite values")
            return None
        path = Path(loop.run_dir) / CHECKPOINT
        try:
            rundir.write_atomic(path, "checkpoint", lambda fh: torch.save(state, fh), checksum=True)
        except WriteError as err:
            loop.fail(err, "checkpoint failure")
            return None
        self.last_step = loop.global_step
        return path
