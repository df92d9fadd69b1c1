"""Concurrent sequence regression: the DLL paper's "time-series" task as its reference code
runs it (Lv et al. 2025, Table 2, Electricity).

At every time step the network reads every column of a table but one and is asked for
that one column *at the same step*: a regression carried along a sequence, not a
forecast of the future (that is :class:`~dendrisim.tasks.sequences.Forecasting`).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Union

import numpy as np
import torch

from ..config.parse import FLOAT32_MAX
from ..config.schema import opt
from ..errors import DataError, brief
from ..losses import output_loss
from .base import TASKS, Split, Task, TaskOptions, locate, used_root
from .tables import check_table_options, read_table

_WHAT = "a comma-separated table (rows = time steps, columns = variables)"


@dataclass(frozen=True)
class SequenceRegressionOptions(TaskOptions):
    file: Optional[str] = opt(None, "the table: comma-separated text, rows = time steps, columns = variables, "
                                    "with or without a header row (a leading date column is left out), as for "
                                    "forecasting")
    target_column: Union[int, str] = opt(
        -1, "the column to predict at every step: its number among the columns read (1 is the first; negative "
            "numbers count from the end: -1, the default, is the last, as in the paper's code) or, for a file with "
            "a header row, its name; every other column is the input")
    sequence_length: int = opt(24, "time steps (rows) per window; windows slide by one row", ge=2)
    batch_size: int = opt(64, "training batch size (windows)", ge=1)
    validation_fraction: float = opt(
        0.1, "the last part in time of the training rows (those before the test part), held out for model "
             "selection and early stopping", ge=0, le=0.5)
    test_fraction: float = opt(0.2, "the last part of the rows, for testing (0.2: the paper's 80/20 split)",
                               gt=0, le=0.5)
    encoding: str = opt("utf-8", "text encoding of the file: utf-8, cp1252, latin-1, ... (any Python codec)")
    header: Optional[bool] = opt(
        None, "whether the first row holds the column names (default: when none of its cells is a number)")
    columns: Optional[tuple[Union[int, str], ...]] = opt(
        None, "the columns to read, by header name or number (1 is the first); default: all but a leading "
              "time-stamp column")


def split_rows(n: int, options: SequenceRegressionOptions) -> tuple[int, int, int]:
    """``(training, validation, test)`` row counts, in time order: the test part is the
    last ``test_fraction`` of the rows, the validation part the last ``validation_fraction``
    of the rows before it."""
    n_test = int(n * options.test_fraction)
    n_val = int((n - n_test) * options.validation_fraction)
    return n - n_test - n_val, n_val, n_test


def target_index(path: Path, target, names: list[str], header: bool) -> int:
    """The index (from 0) among the columns read of ``task.target_column``: a number (1 is the
    first column read, -1 the last) or a header name."""
    C = len(names)
    listed = ", ".join(brief(n) for n in names[:20]) + (f", ... ({C} in all)" if C > 20 else "")
    numbers = f"a number from 1 to {C} or from -{C} to -1 (1 is the first column read, -1 the last)"
    if isinstance(target, int):
        if 1 <= target <= C or -C <= target <= -1:
            return target - 1 if target > 0 else C + target
        raise DataError(f"{path}: task.target_column {target} is not a column: {C} columns are read ({listed}); "
                        f"give {numbers}" + (" or a column's name" if header else ""))
    if not header:
        raise DataError(f"{path}: task.target_column {brief(target)} is a name, and the file has no header row, so "
                        f"its columns have no names; give {numbers}, or add a header row")
    if target not in names:
        raise DataError(f"{path}: task.target_column {brief(target)} is not a column read from the file (its "
                        f"columns: {listed}); give one of these names or {numbers}")
    if names.count(target) > 1:
        where = ", ".join(str(j + 1) for j, n in enumerate(names) if n == target)
        raise DataError(f"{path}: task.target_column {brief(target)} names {names.count(target)} of the columns "
                        f"read ({where}): the header repeats it; give the target's number instead, {numbers}")
    return names.index(target)


def zscore(path: Path, values: np.ndarray, names: list[str], n_train: int) -> tuple[np.ndarray, ...]:
    """``(shift, scale, z)``: the training rows' mean and std per column and the z-scored rows.
    The std is taken of the deviations divided by their largest magnitude, so that tiny
    values (1e-200, whose squares underflow to 0) keep their std; a column whose z-scores are
    not finite float32 numbers (a std that still underflows, later rows far beyond the
    training rows' spread) is a DataError naming it and the row."""
    train = values[:n_train]
    shift = train.mean(0)
    with np.errstate(all="ignore"):
        big = np.abs(train - shift).max(0)
        scale = big * ((train - shift) / big).std(0)
        z = (values - shift) / scale
    bad = ~np.isfinite(z) | (np.abs(z) > FLOAT32_MAX)
    if bad.any():
        i, j = (int(v) for v in np.argwhere(bad)[0])
        if scale[j] > 0 and np.isfinite(scale[j]):
            why = (f"the std of its {n_train} training rows is {scale[j]:g} (mean {shift[j]:g}), which makes row "
                   f"{i + 1}'s value {values[i, j]:g} a z-score of {z[i, j]:g}, beyond float32's ±3.4e38")
        else:
            why = (f"its {n_train} training rows differ by {np.ptp(train[:, j]):g} at most, so little that their "
                   f"std underflows to {scale[j]:g}")
        raise DataError(f"{path}: {names[j]} cannot be z-scored in float32: {why}; rescale the column (multiply it "
                        "by a power of ten) or leave it out with task.columns")
    return shift, scale, z


def shown_names(names: list[str], header: bool, columns: Optional[tuple]) -> list[str]:
    """The columns read as errors name them: header names, else ``column N`` (1 is the file's first)."""
    if header:
        return names
    return [f"column {c}" for c in columns] if columns else [f"column {j + 1}" for j in range(len(names))]


@TASKS.register("sequence_regression")
class SequenceRegression(Task):
    """Concurrent sequence regression (the reference code of Lv et al. 2025, its Electricity
    branch): at every step of a window the input is every column but ``target_column`` and
    the target is ``target_column`` at that same step, taught and scored at every step.

    The rows are cut in time order into training, validation and test parts (the test part
    the last ``test_fraction``, 0.2 as in the paper's 80/20; the validation part the last
    ``validation_fraction`` of the rows before it); windows of ``sequence_length`` rows,
    sliding by one, are made inside each part (none straddles two parts). Every column is
    z-scored, ``(x − mean) / std`` (population std), with the mean and std of the
    **training rows only**; the reference code takes them from the whole file, which lets
    the test rows' statistics into training. A column constant over the training rows has
    no std and is refused, naming it.

    Loss: squared error at every step (``½ (t − y)²``, the linear output's loss). Metrics,
    on the z-scored target, averaged over every step of every window (the paper's Table 2
    scale): ``loss``, ``mse`` (what comparisons tune for and report) and ``mae``.
    """

    Options = SequenceRegressionOptions
    metrics = {"loss": False, "mse": False, "mae": False}
    headline = "mse"
    regression = True

    @classmethod
    def check_options(cls, options: SequenceRegressionOptions, *, file: str) -> None:
        check_table_options(options, file=file, unit="column")

    @classmethod
    def data_spec(cls, options: SequenceRegressionOptions, data_root: Optional[str] = None):
        path, values, names, layout = cls._read(options, data_root)
        cls._check(path, values, names, layout, options)
        n_train = split_rows(len(values), options)[0]
        return (values.shape[1] - 1,), 1, n_train - options.sequence_length + 1

    @classmethod
    def sequence_spec(cls, options: SequenceRegressionOptions) -> int:
        return options.sequence_length

    @staticmethod
    def _read(options: SequenceRegressionOptions, data_root: Optional[str]):
        path = locate(options.file, "file", data_root or options.data_root, _WHAT)
        layout: dict = {}
        values, names = read_table(path, options.encoding, header=options.header, columns=options.columns,
                                   layout=layout)
        return path, values, names, layout

    @classmethod
    def _check(cls, path: Path, values: np.ndarray, names: list[str], layout: dict,
               options: SequenceRegressionOptions) -> int:
        """The target's index, once the file is known to fit the task; a DataError otherwise."""
        header = bool(layout.get("header"))
        names = shown_names(names, header, options.columns)
        if len(names) < 2:
            raise DataError(f"{path}: one column is read ({names[0]}): a sequence regression predicts "
                            "task.target_column from every other column, and no column is left for the input; use "
                            "a file of two or more numeric columns (task.columns, if given, must list them), or the "
                            "forecasting task for a single series")
        k = target_index(path, options.target_column, names, header)
        n = len(values)
        parts = split_rows(n, options)
        L = options.sequence_length
        needed = [p for p, frac in zip(parts, (1, options.validation_fraction, 1)) if frac]
        if min(needed) < L:
            fit = min(needed)
            what = "use a longer file" + (f" or task.sequence_length {fit} or less" if fit >= 2 else "")
            if options.validation_fraction and parts[1] < L:
                what += " (task.validation_fraction 0 holds out no validation part)"
            raise DataError(f"{path}: {n} rows are too few for a window of task.sequence_length {L} in each part: "
                            f"test_fraction {options.test_fraction} and validation_fraction "
                            f"{options.validation_fraction} (of the rows before the test part) leave {parts[0]} "
                            f"training, {parts[1]} validation and {parts[2]} test rows, and each part needs "
                            f"{L} rows for one window; {what}")
        train = values[:parts[0]]
        flat = np.ptp(train, axis=0) == 0
        if flat.any():
            j = int(np.argmax(flat))
            role = ("the target (task.target_column): a constant target leaves nothing to learn; choose another "
                    "column" if j == k else "an input: leave it out with task.columns (the columns to read)")
            raise DataError(f"{path}: {names[j]} is constant ({train[0, j]:g}) over the {parts[0]} training "
                            f"rows, so its z-score (x − mean) / std would divide by a std of 0; it is {role}")
        zscore(path, values, names, parts[0])
        return k

    def __init__(self, options: SequenceRegressionOptions, *, device: torch.device, data_root: Optional[str] = None,
                 dtype: torch.dtype = torch.float32):
        self.options = options
        self.data_root = used_root(data_root or options.data_root)
        path, values, names, self.layout = self._read(options, data_root)
        k = self._check(path, values, names, self.layout, options)
        self.names = shown_names(names, bool(self.layout.get("header")), options.columns)
        self.target_name = self.names[k]
        n_train, n_val, _ = split_rows(len(values), options)
        self.shift, self.scale, z = zscore(path, values, self.names, n_train)  # the training rows' statistics only
        keep = [j for j in range(values.shape[1]) if j != k]
        self.x_all = torch.as_tensor(z[:, keep], dtype=dtype, device=device)  # [rows, columns - 1]
        self.y_all = torch.as_tensor(z[:, k:k + 1], dtype=dtype, device=device)  # [rows, 1]
        L = options.sequence_length
        self._offsets = torch.arange(L, device=device)
        bounds = {"train": (0, n_train), "val": (n_train, n_train + n_val), "test": (n_train + n_val, len(values))}
        starts = {name: torch.arange(lo, max(lo, hi - L + 1), device=device) for name, (lo, hi) in bounds.items()}
        self.train = Split(starts["train"], starts["train"])  # a window is named by its first row
        self.val = Split(starts["val"], starts["val"]) if len(starts["val"]) else None
        self.test = Split(starts["test"], starts["test"])
        self.input_shape = (len(keep),)
        self.output_size = 1
        self.sequence_length = L

    def inputs(self, x: torch.Tensor) -> torch.Tensor:
        """Every column but the target over the windows starting at rows ``x``: ``[batch, time, columns − 1]``."""
        return self.x_all[x[:, None] + self._offsets]

    def target(self, y: torch.Tensor, network) -> torch.Tensor:
        """The target column at every step of the windows starting at rows ``y``: ``[time, batch, 1]``."""
        return self.y_all[y[:, None] + self._offsets].transpose(0, 1)

    def batch_stats(self, y: torch.Tensor, network, state) -> torch.Tensor:
        out = state.output
        t = self.target(y, network)
        steps = t.shape[0] * t.shape[1]
        loss = output_loss(network.output, out, t, network.readout) * steps
        err = t.to(torch.float64) - out.rate[network.readout].to(torch.float64)
        return torch.stack([loss.to(torch.float64), err.pow(2).sum(), err.abs().sum(),
                            torch.tensor(float(steps), dtype=torch.float64, device=y.device)])

    def finish_stats(self, stats: torch.Tensor, n: int) -> dict[str, float]:
        loss, se, ae, steps = stats.tolist()
        return {"loss": loss / steps, "mse": se / steps, "mae": ae / steps}

    def artifacts(self) -> dict:
        return {"columns": self.names, "target": self.target_name, "shift": self.shift.tolist(),
                "scale": self.scale.tolist(), "header": self.layout.get("header"),
                "skipped_columns": self.layout.get("skipped", [])}
