"""The Python API: what the command line wraps, for notebooks and scripts.

.. code-block:: python

    import dendrisim
    exp = dendrisim.load("models/dll_mlp_digits.yaml", overrides=["training.epochs=5"])
    trainer = dendrisim.Trainer(exp, device="cpu", out="recordings/digits")
    summary = trainer.fit()                      # the dict simulate.py prints last
    trainer.fit(epochs=2)                        # two more epochs, in the same run directory
    trainer.history                              # every epoch's metrics row
    loss = trainer.step(x, y)                    # one training step on a batch
    with trainer.network.plasticity_off():       # steps that change no weight
        trainer.step(x, y)
    trainer.evaluate("test")                     # {'loss': ..., 'accuracy': ...}
    trainer.observe(my_observer)                 # a dendrisim.observers.Observer: sees steps, epochs
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Optional, Union

import torch

from .builder import load_experiment
from .bundled import resolve_model
from .config.loader import Experiment
from .observers import Observer
from .tasks.base import Split
from .tasks.files import OwnData, with_data
from .tasks.files import given as given_data
from .training import RunOptions
from .training import Trainer as _LoopTrainer


def load(path: Union[str, Path, dict], overrides: Optional[Iterable[str]] = None) -> Experiment:
    """A validated experiment from a model file, a bundled model's name (``"dll_mlp_digits"``,
    as ``dendrisim run`` takes it) or a mapping; ``overrides`` are ``"key.path=value"``
    strings, as ``--set`` takes them."""
    if isinstance(path, (str, Path)):
        path = resolve_model(path)
    return load_experiment(path, list(overrides or ()))


class Trainer(_LoopTrainer):
    """Task, network, rule and optimizer of an experiment, ready to train.

    ``out`` is the run directory that :meth:`fit` writes (model.yaml, metrics.csv, the
    recording, checkpoints); by default a new folder under ``recordings/``. A directory
    that holds another run is refused unless ``overwrite=True``. ``log`` receives the
    per-epoch lines (silent by default). ``observers``: :class:`~dendrisim.observers.Observer` objects
    that watch every step and epoch (as :meth:`observe` adds them), e.g. to log to TensorBoard.
    ``data``: a classification task's data in memory instead of its dataset, a dict with the
    arrays of a ``dataset: file`` .npz (``x_train``, ``y_train``; ``x_test``, ``y_test``,
    ``x_val``, ``y_val`` optional) or an :class:`~dendrisim.OwnData`; checked as
    a file is (a :class:`~dendrisim.errors.DataError` naming the array), and the run's
    model.yaml says ``dataset: file``.
    """

    def __init__(self, experiment: Experiment, *, device: str = "cpu", out: Optional[Union[str, Path]] = None,
                 data_root: Optional[str] = None, progress: bool = False,
                 log: Optional[Callable[[str], None]] = None, overwrite: bool = False,
                 threads: Optional[int] = None, observers: Iterable[Observer] = (),
                 data: Optional[Union[Mapping[str, Any], OwnData]] = None):
        if threads is not None:  # torch's intra-op threads, for this process (logged in run.json)
            from .host import set_threads

            set_threads(threads)
        given = None
        if data is not None:
            experiment, given = with_data(experiment, data)
        with given_data(given):
            super().__init__(experiment, RunOptions(device=device, data_root=data_root,
                                                    out_dir=Path(out) if out is not None else None, progress=progress,
                                                    log=log or (lambda line: None), overwrite=overwrite))
        for observer in observers:
            self.observe(observer)

    def fit(self, epochs: Optional[int] = None) -> dict:
        """Train (with evaluation, selection, recording and checkpoints, as ``simulate.py``
        does); returns the summary it prints last.

        Without ``epochs``: up to ``training.epochs`` in all. With ``epochs=N``: N more
        epochs from where the trainer stands; steps add up, and metrics.csv, the recording
        and the checkpoint continue in the same run directory (``training.epochs`` becomes
        the new total, and a learning-rate schedule covers it from the current step). With
        ``training.phases`` the added epochs extend the last phase (the log says so); the earlier
        phases keep theirs, and a total that would end before the last phase starts is a
        ValueError. Phases run here as under ``simulate.py``: each with its teacher, learning
        projections and learning rates (see :attr:`phase`)."""
        if epochs is not None:
            if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
                raise ValueError(f"fit(epochs={epochs!r}): epochs must be an integer >= 1 (the epochs to add)")
            try:
                self.set_epochs(self.epoch - 1 + epochs)
            except ValueError as err:
                raise ValueError(f"fit(epochs={epochs}): {err}") from None
        return self.run()

    @property
    def history(self) -> list[dict]:
        """Every epoch's metrics row so far (what metrics.csv holds), oldest first."""
        return [dict(row) for row in self.rows]

    def _expected(self) -> str:
        x, y = self.task.train.x, self.task.train.y
        labels = (f", labels in [0, {self.network.output.size - 1}]" if not y.dtype.is_floating_point else "")
        return (f"x of shape [batch, {', '.join(map(str, x.shape[1:]))}] and dtype {_name(x.dtype)}, "
                f"y of shape [batch{''.join(f', {n}' for n in y.shape[1:])}] and dtype {_name(y.dtype)}{labels}")

    def _check_batch(self, x, y, *, what: str) -> tuple[torch.Tensor, torch.Tensor]:
        """``(x, y)`` on the device in the task's dtypes; a ValueError naming what is expected."""
        ref_x, ref_y = self.task.train.x, self.task.train.y

        def bad(problem: str) -> ValueError:
            return ValueError(f"{what}: {problem}; expected {self._expected()}")

        if not isinstance(x, torch.Tensor) or not isinstance(y, torch.Tensor):
            raise bad(f"x and y must be torch tensors, got {type(x).__name__} and {type(y).__name__}")
        if tuple(x.shape[1:]) != tuple(ref_x.shape[1:]) or x.dim() != ref_x.dim() or x.shape[0] == 0:
            raise bad(f"x has shape {list(x.shape)}")
        if tuple(y.shape) != (x.shape[0], *ref_y.shape[1:]):
            raise bad(f"y has shape {list(y.shape)} for {x.shape[0]} samples")
        for name, t, ref in (("x", x, ref_x), ("y", y, ref_y)):
            if _kind(t.dtype) != _kind(ref.dtype):
                raise bad(f"{name} has dtype {t.dtype}")
            if t.dtype.is_floating_point and not bool(torch.isfinite(t).all()):
                raise bad(f"{name} holds NaN or Inf")
        if not ref_y.dtype.is_floating_point:
            lo, hi = int(y.min()), int(y.max())
            if lo < 0 or hi >= self.network.output.size:
                raise bad(f"y holds labels from {lo} to {hi}")
        return x.to(self.device, ref_x.dtype), y.to(self.device, ref_y.dtype)

    def step(self, x: torch.Tensor, y: torch.Tensor) -> float:
        """One training step on the batch ``(x, y)`` (as the task stores samples and labels:
        images and class ids, say); returns the batch's loss before the update. The step's
        state, every population's compartments and the target, is :attr:`last_state`. A batch
        of the wrong shape, dtype or label range, or holding NaN/Inf, is a ValueError
        naming what is expected. Observers added with :meth:`observe` see the step (with
        ``step.epoch`` None); the trainer's own, which keep the run's files, do not."""
        x, y = self._check_batch(x, y, what="Trainer.step")
        step = self.train_step(x, y, on_error=lambda err: ValueError(
            f"Trainer.step: the batch does not fit the network ({_first_line(err)}); expected {self._expected()}"))
        return step.metrics()["loss"]

    @property
    def last_state(self):
        """The state of the last presentation (:class:`dendrisim.state.State`): every
        population's compartments at the end of the last step, ``last_state["h1"].apical``,
        and its ``target``; None before the first step."""
        return self.network.last_state

    def evaluate(self, split: Union[str, Split] = "test") -> dict[str, float]:
        """The metrics of a split: ``"train"``, ``"val"`` or ``"test"`` (or a :class:`~dendrisim.tasks.base.Split`)."""
        if isinstance(split, str):
            splits = {"train": self.task.train, "val": self.task.val, "test": self.task.test}
            if splits.get(split) is None:
                raise ValueError(f"{split!r} is not a split of this task; it has "
                                 f"{', '.join(k for k, v in splits.items() if v is not None)}")
            split = splits[split]
        elif isinstance(split, Split):
            if not any(split is own for own in (self.task.train, self.task.val, self.task.test)):
                # a split of the caller's: checked as a batch is (the run's own splits are the task's)
                x, y = self._check_batch(split.x, split.y, what="Trainer.evaluate")
                split = Split(x, y)
        else:
            raise ValueError(f"Trainer.evaluate({type(split).__name__}): give 'train', 'val', 'test' or a Split "
                             f"holding {self._expected()}")
        try:
            return super().evaluate(split)
        except (RuntimeError, IndexError) as err:
            raise ValueError(f"Trainer.evaluate: the split does not fit the network ({_first_line(err)}); "
                             f"expected {self._expected()}") from None

    def modulate(self, **signals: float) -> None:
        """Set third factors between steps (``trainer.modulate(reward=0.5)``); rules read
        them as ``network.modulator("reward")``."""
        self.network.modulators.update({k: float(v) for k, v in signals.items()})


def _kind(dtype: torch.dtype) -> str:
    """The kind of values a dtype holds: what a batch must match (float32 and float64 alike)."""
    if dtype.is_floating_point:
        return "float"
    return "bool" if dtype == torch.bool else "integer"


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0][:200] if text else type(err).__name__


def _name(dtype: torch.dtype) -> str:
    return str(dtype).replace("torch.", "") + (" (any float dtype)" if dtype.is_floating_point else
                                               " (any integer dtype)" if dtype != torch.bool else "")
