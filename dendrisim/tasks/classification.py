"""Image classification: the whole dataset as normalised tensors on the device."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Optional

import numpy as np
import torch

from ..config.schema import opt
from ..errors import DataError
from . import files
from .base import TASKS, LabelTask, Split, Task, TaskOptions
from .datasets import DATASETS, SPECS, given_root, load_dataset


@dataclass(frozen=True)
class ClassificationOptions(TaskOptions):
    dataset: str = opt("digits", "digits, mnist, fashion_mnist, cifar10, cifar100, svhn, tinyimagenet, or file (your "
                                 "own data: task.file)")
    download: bool = opt(False, "let torchvision download missing files (needs network access)")
    normalize: Literal["standard", "unit", "none"] = opt(
        "standard", "standard: per-channel (flat samples: per-feature) zero mean, unit variance (training-split "
                    "statistics); unit: scale to [0, 1]")
    test_fraction: float = opt(0.2, "held-out test part for datasets without a test split (digits, a .csv without "
                                    "test_file, an .npz without x_test)", gt=0, le=0.5)
    file: Optional[str] = opt(None, "dataset file: an .npz (x_train, y_train; x_test, y_test, x_val, y_val optional) "
                                    "or a .csv (features, then the integer label in the last column)")
    test_file: Optional[str] = opt(None, "dataset file: a .csv of test samples with the columns of task.file (default: "
                                         "test_fraction of task.file)")
    classes: Optional[int] = opt(None, "dataset file: number of classes (default: the largest label + 1)", ge=2,
                                 le=100_000)
    header: Optional[bool] = opt(None, "dataset file: whether a .csv's first row holds column names (default: when "
                                       "none of its cells is a number)")
    encoding: Optional[str] = opt(None, "dataset file: text encoding of a .csv (default utf-8; any Python codec)")


def split_indices(n: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A seeded (keep, hold-out) split of ``range(n)``."""
    order = np.random.default_rng(seed).permutation(n)
    k = int(round(n * fraction))
    return np.sort(order[k:]), np.sort(order[:k])


@TASKS.register("classification")
class Classification(LabelTask, Task):
    """Classify images or feature vectors; the teacher's target is the one-hot label.

    Metrics: ``loss`` (the output population's loss, see ``dendrisim.losses``) and
    ``accuracy``. The validation split is carved from the training set with a fixed
    seed, so it does not change with the training seed. ``dataset: file`` reads your own
    data (:mod:`dendrisim.tasks.files`): its own validation and test splits where it has
    them, else carved the same way; flat samples ``[n, d]`` are normalised per feature.
    """

    Options = ClassificationOptions

    @classmethod
    def check_options(cls, options: ClassificationOptions, *, file: str) -> None:
        files.check_options(options, file=file)
        if options.dataset != "file":
            DATASETS.get(options.dataset, file=file, path="task.dataset")

    @classmethod
    def data_spec(cls, options: ClassificationOptions, data_root: Optional[str] = None) -> tuple[tuple[int, ...], int, int]:
        if options.dataset == "file":
            return files.spec(options, data_root)
        shape, classes, n = SPECS[options.dataset]
        return shape, classes, int(n * (1 - options.validation_fraction))

    def __init__(self, options: ClassificationOptions, *, device: torch.device,
                 data_root: Optional[str] = None, dtype: torch.dtype = torch.float32):
        self.options = options
        if options.dataset == "file":  # checked as read (tasks/files.py)
            data = files.load_file(options, data_root)
        else:
            data = load_dataset(options.dataset, given_root(data_root, options.data_root), options.download)
        #: the folder the data was read from (None: bundled with a library); run.json records it
        self.data_root = str(data.folder.resolve()) if data.folder is not None else None
        x_tr, y_tr, x_te, y_te = data.x_train, data.y_train, data.x_test, data.y_test
        if x_te is None:
            keep, held = split_indices(len(x_tr), options.test_fraction, seed=12345)
            x_tr, y_tr, x_te, y_te = x_tr[keep], y_tr[keep], x_tr[held], y_tr[held]
        if options.dataset != "file":
            self._check(x_tr, y_tr, data.classes, "train")
            self._check(x_te, y_te, data.classes, "test")
        x_val, y_val = getattr(data, "x_val", None), getattr(data, "y_val", None)
        if x_val is None and options.validation_fraction > 0:
            keep, held = split_indices(len(x_tr), options.validation_fraction, seed=54321)
            x_tr, y_tr, x_val, y_val = x_tr[keep], y_tr[keep], x_tr[held], y_tr[held]
        to = lambda x: self._to_tensor(x, device)  # noqa: E731
        lab = lambda y: torch.as_tensor(y, dtype=torch.int64, device=device)  # noqa: E731
        x_tr, x_te = to(x_tr), to(x_te)
        x_val = to(x_val) if x_val is not None else None
        mean, std = self._statistics(x_tr)
        #: what the samples were normalised by (``(x - shift) / scale``, float64, broadcasting over a sample)
        self.shift, self.scale = mean, std
        norm = lambda x: self._normalise(x, mean, std, dtype)  # noqa: E731
        self.train = Split(norm(x_tr), lab(y_tr))
        self.val = Split(norm(x_val), lab(y_val)) if x_val is not None else None
        self.test = Split(norm(x_te), lab(y_te))
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

    def _statistics(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-channel ``[C, 1, 1]`` shift and scale of the training split, in float64 (flat
        samples ``[N, d]``: per feature; other shapes: per index of the first sample axis)."""
        if x.dim() != 4:
            mean, std = self._statistics(x.reshape(x.shape[0], x.shape[1], -1, 1))
            shape = (x.shape[1],) + (1,) * (x.dim() - 2)
            return mean.view(shape), std.view(shape)
        c = x.shape[1]
        if self.options.normalize == "standard":
            mean, std = channel_moments(x)
            return mean, torch.where(std > 0, std, torch.ones_like(std))
        zeros = torch.zeros(c, 1, 1, dtype=torch.float64, device=x.device)
        if self.options.normalize == "unit":
            return zeros, torch.full_like(zeros, max(float(x.max()), 1e-12))
        return zeros, torch.ones_like(zeros)

    @staticmethod
    def _to_tensor(x: np.ndarray, device) -> torch.Tensor:
        """The split as stored (uint8 images stay uint8: a quarter of the bytes to move), on the device."""
        return torch.from_numpy(np.require(x, requirements=["C_CONTIGUOUS", "WRITEABLE"])).to(device)

    @staticmethod
    def _normalise(x: torch.Tensor, mean: torch.Tensor, std: torch.Tensor, dtype) -> torch.Tensor:
        """``(x - mean) / std`` in ``dtype``, on the device, in one pass."""
        out = x.to(dtype)
        return out.sub_(mean.to(dtype)).div_(std.to(dtype))


def channel_moments(x: torch.Tensor, *, chunk: int = 1 << 23) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and (population) standard deviation per channel of ``x [N, C, H, W]``, accumulated
    in float64 over blocks of samples (two passes, as numpy's ``std``), so memory stays at
    one float64 block however large the split."""
    n, c = x.shape[:2]
    if x.dtype == torch.uint8:  # exact and fast: a histogram of the 256 values per channel
        values = torch.arange(256, dtype=torch.float64, device=x.device)
        counts = torch.stack([torch.bincount(x[:, k].reshape(-1), minlength=256) for k in range(c)]).to(torch.float64)
        total = counts.sum(1, keepdim=True)
        mean = (counts * values).sum(1, keepdim=True) / total
        var = (counts * (values - mean).square()).sum(1) / total.squeeze(1)
        return mean.view(c, 1, 1), var.sqrt().view(c, 1, 1)
    per = max(1, chunk // max(1, x[0].numel()))
    blocks = range(0, n, per)
    count = n * x[0, 0].numel()
    total = sum(x[i:i + per].to(torch.float64).sum(dim=(0, 2, 3)) for i in blocks)
    mean = (total / count).view(c, 1, 1)
    squares = sum((x[i:i + per].to(torch.float64) - mean).square_().sum(dim=(0, 2, 3)) for i in blocks)
    return mean, (squares / count).sqrt_().view(c, 1, 1)
