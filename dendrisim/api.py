"""The Python API: what the command line wraps, for notebooks and scripts.

.. code-block:: python

    import dendrisim
    exp = dendrisim.load("models/dll_mlp_digits.yaml", overrides=["training.epochs=5"])
    trainer = dendrisim.Trainer(exp, device="cpu", out="recordings/digits")
    summary = trainer.fit()                      # the dict simulate.py prints last
    loss = trainer.step(x, y)                    # one training step on a batch
    with trainer.network.plasticity_off():       # steps that change no weight
        trainer.step(x, y)
    trainer.evaluate("test")                     # {'loss': ..., 'accuracy': ...}
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterable, Optional, Union

import torch

from .builder import load_experiment
from .config.loader import Experiment
from .tasks.base import Split
from .training import RunOptions
from .training import Trainer as _LoopTrainer


def load(path: Union[str, Path, dict], overrides: Optional[Iterable[str]] = None) -> Experiment:
    """A validated experiment from a model file (or a mapping); ``overrides`` are
    ``"key.path=value"`` strings, as ``--set`` takes them."""
    return load_experiment(path, list(overrides or ()))


class Trainer(_LoopTrainer):
    """Task, network, rule and optimizer of an experiment, ready to train.

    ``out`` is the run directory that :meth:`fit` writes (model.yaml, metrics.csv, the
    recording, checkpoints); by default a new folder under ``recordings/``. ``log``
    receives the per-epoch lines (silent by default).
    """

    def __init__(self, experiment: Experiment, *, device: str = "cpu", out: Optional[Union[str, Path]] = None,
                 data_root: Optional[str] = None, progress: bool = False,
                 log: Optional[Callable[[str], None]] = None, threads: Optional[int] = None):
        if threads is not None:  # torch's intra-op threads, for this process (logged in run.json)
            from .host import set_threads

            set_threads(threads)
        super().__init__(experiment, RunOptions(device=device, data_root=data_root,
                                                out_dir=Path(out) if out is not None else None, progress=progress,
                                                log=log or (lambda line: None)))

    def fit(self) -> dict:
        """Train for ``training.epochs`` (with evaluation, selection, recording and
        checkpoints, as ``simulate.py`` does); returns the summary it prints last."""
        return self.run()

    def step(self, x: torch.Tensor, y: torch.Tensor) -> float:
        """One training step on the batch ``(x, y)`` (as the task stores samples and labels:
        images and class ids, say); returns the batch's loss before the update. The network
        keeps every compartment of the step for inspection (``trainer.network``)."""
        task, net = self.task, self.network
        x, y = x.to(self.device), y.to(self.device)
        with torch.no_grad():
            net(task.inputs(x))
            stats = task.batch_stats(y, net)
            self.rule.step(net, task.target(y, net))
            self.optimizer.step()
            self.rule.after_update(net)
            self.scheduler.step()
        self.global_step += 1
        return task.finish_stats(stats.to(torch.float64), int(y.shape[0]))["loss"]

    def evaluate(self, split: Union[str, Split] = "test") -> dict[str, float]:
        """The metrics of a split: ``"train"``, ``"val"`` or ``"test"`` (or a :class:`Split`)."""
        if isinstance(split, str):
            splits = {"train": self.task.train, "val": self.task.val, "test": self.task.test}
            if splits.get(split) is None:
                raise ValueError(f"{split!r} is not a split of this task; it has "
                                 f"{', '.join(k for k, v in splits.items() if v is not None)}")
            split = splits[split]
        return super().evaluate(split)

    def modulate(self, **signals: float) -> None:
        """Set third factors between steps (``trainer.modulate(reward=0.5)``); rules read
        them as ``network.modulator("reward")``."""
        self.network.modulators.update({k: float(v) for k, v in signals.items()})
