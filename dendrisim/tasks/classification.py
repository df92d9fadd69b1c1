"""Image classification: the whole dataset as normalised tensors on the device."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Optional

import numpy as np
import torch

from ..config.schema import opt
from ..errors import DataError
from .base import TASKS, LabelTask, Split, Task, TaskOptions
from .datasets import DATASETS, SPECS, default_root


@dataclass(frozen=True)
class ClassificationOptions(TaskOptions):
    dataset: str = opt("digits", "digits, mnist, fashion_mnist, cifar10, cifar100, svhn or tinyimagenet")
    download: bool = opt(False, "let torchvision download missing files (needs network access)")
    normalize: Literal["standard", "unit", "none"] = opt(
        "standard", "standard: per-channel zero mean, unit variance (training-split statistics); unit: scale to [0, 1]")
    test_fraction: float = opt(0.2, "held-out test part for datasets without a test split (digits)", gt=0, le=0.5)


def split_indices(n: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A seeded (keep, hold-out) split of ``range(n)``."""
    order = np.random.default_rng(seed).permutation(n)
    k = int(round(n * fraction))
    return np.sort(order[k:]), np.sort(order[:k])


@TASKS.register("classification")
class Classification(LabelTask, Task):
    """Classify images; the teacher's target is the one-hot label.

    Metrics: ``loss`` (the output population's loss, see ``dendrisim.losses``) and
    ``accuracy``. The validation split is carved from the training set with a fixed
    seed, so it does not change with the training seed.
    """

    Options = ClassificationOptions

    @classmethod
    def check_options(cls, options: ClassificationOptions, *, file: str) -> None:
        DATASETS.get(options.dataset, file=file, path="task.dataset")

    @classmethod
    def data_spec(cls, options: ClassificationOptions, data_root: Optional[str] = None) -> tuple[tuple[int, ...], int, int]:
        shape, classes, n = SPECS[options.dataset]
        return shape, classes, int(n * (1 - options.validation_fraction))

    def __init__(self, options: ClassificationOptions, *, device: torch.device,
                 data_root: Optional[str] = None, dtype: torch.dtype = torch.float32):
        self.options = options
        root = Path(data_root or options.data_root or default_root())
        loader = DATASETS.get(options.dataset, path="task.dataset")
        data = loader(root, options.download)
        x_tr, y_tr, x_te, y_te = data.x_train, data.y_train, data.x_test, data.y_test
        if x_te is None:
            keep, held = split_indices(len(x_tr), options.test_fraction, seed=12345)
            x_tr, y_tr, x_te, y_te = x_tr[keep], y_tr[keep], x_tr[held], y_tr[held]
        self._check(x_tr, y_tr, data.classes, "train")
        self._check(x_te, y_te, data.classes, "test")
        x_val = y_val = None
        if options.validation_fraction > 0:
            keep, held = split_indices(len(x_tr), options.validation_fraction, seed=54321)
            x_tr, y_tr, x_val, y_val = x_tr[keep], y_tr[keep], x_tr[held], y_tr[held]
        mean, std = self._statistics(x_tr)
        to = lambda x: self._to_tensor(x, mean, std, device, dtype)  # noqa: E731
        lab = lambda y: torch.as_tensor(y, dtype=torch.int64, device=device)  # noqa: E731
        self.train = Split(to(x_tr), lab(y_tr))
        self.val = Split(to(x_val), lab(y_val)) if x_val is not None else None
        self.test = Split(to(x_te), lab(y_te))
        self.input_shape = tuple(self.train.x.shape[1:])
        self.output_size = data.classes
        self._eye = torch.eye(data.classes, device=device, dtype=dtype)

    def _check(self, x: np.ndarray, y: np.ndarray, classes: int, which: str) -> None:
        name = self.options.dataset
        if x.ndim != 4:
            raise DataError(f"{name}: {which} images have shape {x.shape}, expected [N, channels, height, width]")
        if len(x) == 0 or len(x) != len(y):
            raise DataError(f"{name}: {which} split has {len(x)} images and {len(y)} labels")
        if y.min() < 0 or y.max() >= classes:
            raise DataError(f"{name}: {which} labels span {int(y.min())}..{int(y.max())}, allowed 0..{classes - 1}")

    def _statistics(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        x = x.astype(np.float64)
        if self.options.normalize == "standard":
            mean = x.mean(axis=(0, 2, 3), keepdims=True)[0]
            std = x.std(axis=(0, 2, 3), keepdims=True)[0]
            return mean, np.where(std > 0, std, 1.0)
        if self.options.normalize == "unit":
            return np.zeros((x.shape[1], 1, 1)), np.full((x.shape[1], 1, 1), max(float(x.max()), 1e-12))
        return np.zeros((x.shape[1], 1, 1)), np.ones((x.shape[1], 1, 1))

    @staticmethod
    def _to_tensor(x: np.ndarray, mean: np.ndarray, std: np.ndarray, device, dtype) -> torch.Tensor:
        """Normalise once, on the host, and move the whole split to the device in one copy."""
        out = (x.astype(np.float32) - mean.astype(np.float32)) / std.astype(np.float32)
        return torch.from_numpy(np.ascontiguousarray(out)).to(device=device, dtype=dtype)

