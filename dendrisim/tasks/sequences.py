"""Sequence tasks for recurrent networks: char-level language modelling and
multivariate time-series forecasting.

Both keep their data on the device once, as one tensor (the text's character ids, the
normalised series) and build each batch's sequences by indexing it, so overlapping
windows are never stored twice. The network reads ``[batch, time, features]`` and the
output is taught at ``readout`` time steps: every step for language modelling, the last
one for forecasting.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Optional, Union

import numpy as np
import torch
import torch.nn.functional as F

from ..config.parse import FLOAT32_MAX
from ..config.schema import opt
from ..errors import DataError
from ..losses import output_loss
from .base import TASKS, Split, Task, TaskOptions, check_encoding, locate, read_text, used_root
from .tables import check_table_options, read_table


# --------------------------------------------------------------------- language model
@dataclass(frozen=True)
class CharLMOptions(TaskOptions):
    text: Optional[str] = opt(None, "a text file (any: a book, code, ...), in task.encoding")
    encoding: str = opt("utf-8", "text encoding of the file: utf-8, cp1252, latin-1, ... (any Python codec)")
    sequence_length: int = opt(100, "characters per training sequence: the unrolled length", ge=2)
    validation_fraction: float = opt(0.05, "the part of the text after the training part, for model selection",
                                     ge=0, le=0.5)
    test_fraction: float = opt(0.05, "the last part of the text, for testing", gt=0, le=0.5)
    input: Literal["onehot", "ids"] = opt(
        "onehot", "onehot: a [vocabulary] one-hot vector per step; ids: one id per step for an embedding projection")
    embedding_dim: int = opt(32, "size of the character embedding (input: ids)", ge=1)


@TASKS.register("charlm")
class CharLanguageModel(Task):
    """Next-character prediction. The text is cut by position into training, validation
    and test parts (in that order); each part is cut into non-overlapping sequences of
    ``sequence_length + 1`` characters, the input being the first ``L`` and the target the
    last ``L``. The vocabulary is the character set of the whole file (as in char-rnn);
    it says nothing about the order of the held-out parts.

    Metrics: ``loss`` (cross-entropy in nats per character), ``bpc`` (bits per
    character), ``perplexity`` (``e^loss``) and ``accuracy`` of the most likely character.
    """

    Options = CharLMOptions
    metrics = {"loss": False, "bpc": False, "perplexity": False, "accuracy": True}
    headline = "bpc"

    @classmethod
    def check_options(cls, options: CharLMOptions, *, file: str) -> None:
        check_encoding(options.encoding, file=file)

    @classmethod
    def data_spec(cls, options: CharLMOptions, data_root: Optional[str] = None):
        text = cls._read(options, data_root)
        V = len(set(text))
        n_train = int(len(text) * (1 - options.validation_fraction - options.test_fraction)) // options.sequence_length
        return ((V,) if options.input == "onehot" else (1,)), V, n_train

    @classmethod
    def sequence_spec(cls, options: CharLMOptions) -> int:
        return options.sequence_length

    @classmethod
    def vocabulary_spec(cls, options: CharLMOptions, data_root: Optional[str] = None):
        if options.input != "ids":
            return None
        return len(set(cls._read(options, data_root))), options.embedding_dim

    @staticmethod
    def _read(options: CharLMOptions, data_root: Optional[str]) -> str:
        path = locate(options.text, "text", data_root or options.data_root, f"a text file ({options.encoding})")
        text = read_text(path, options.encoding)
        L = options.sequence_length
        n = len(text)
        n_test, n_val = int(n * options.test_fraction), int(n * options.validation_fraction)
        if min(n - n_test - n_val, n_test) < L + 1 or (options.validation_fraction and n_val < L + 1):
            raise DataError(f"{path}: {len(text):,} characters are too few to cut training, validation and test "
                            f"sequences of {options.sequence_length + 1} characters; use a longer text or a "
                            "shorter task.sequence_length")
        return text

    def __init__(self, options: CharLMOptions, *, device: torch.device, data_root: Optional[str] = None,
                 dtype: torch.dtype = torch.float32):
        self.options = options
        self.data_root = used_root(data_root or options.data_root)
        text = self._read(options, data_root)
        self.chars = "".join(sorted(set(text)))
        lookup = np.zeros(max(map(ord, self.chars)) + 1, dtype=np.int64)
        lookup[[ord(c) for c in self.chars]] = np.arange(len(self.chars))
        ids = torch.as_tensor(lookup[np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)], device=device)
        n = len(text)
        n_test, n_val = int(n * options.test_fraction), int(n * options.validation_fraction)
        cut = n - n_test - n_val
        L = options.sequence_length
        parts = {"train": ids[:cut], "val": ids[cut:cut + n_val], "test": ids[cut + n_val:]}
        splits = {}
        for name, part in parts.items():
            m = (len(part) - 1) // L  # sequences of L + 1 characters overlapping by one
            if m == 0:
                splits[name] = None
                continue
            idx = torch.arange(m, device=device)[:, None] * L + torch.arange(L + 1, device=device)
            windows = part[idx]  # [m, L + 1]; input and target are views of it
            splits[name] = Split(windows[:, :-1], windows[:, 1:])
        self.train, self.val, self.test = splits["train"], splits["val"], splits["test"]
        self.V = len(self.chars)
        self.input_shape = (self.V,) if options.input == "onehot" else (1,)
        self.output_size = self.V
        self.vocabulary = (self.V, options.embedding_dim) if options.input == "ids" else None
        self.sequence_length = L
        self.dtype = dtype
        self._eye = torch.eye(self.V, device=device, dtype=dtype)

    def inputs(self, x: torch.Tensor) -> torch.Tensor:
        if self.options.input == "onehot":
            return F.one_hot(x, self.V).to(self.dtype)
        return x.unsqueeze(-1)

    def embedding_for(self, proj) -> torch.Tensor:
        g = torch.Generator().manual_seed(0)
        return torch.randn(self.V, self.options.embedding_dim, generator=g) / math.sqrt(self.options.embedding_dim)

    def target(self, y: torch.Tensor, network) -> torch.Tensor:
        return self._eye[y.t()]  # [time, batch, V]

    def batch_stats(self, y: torch.Tensor, network, state) -> torch.Tensor:
        out = state.output
        t = self.target(y, network)
        n = y.numel()
        loss = output_loss(network.output, out, t, network.readout) * n
        correct = (out.rate.argmax(-1) == y.t()).sum()
        return torch.stack([loss.to(torch.float64), correct.to(torch.float64),
                            torch.tensor(float(n), dtype=torch.float64, device=y.device)])

    def finish_stats(self, stats: torch.Tensor, n: int) -> dict[str, float]:
        loss, correct, chars = stats.tolist()
        nats = loss / chars
        return {"loss": nats, "bpc": nats / math.log(2), "perplexity": math.exp(min(nats, 700.0)),
                "accuracy": correct / chars}

    def artifacts(self) -> dict:
        return {"chars": self.chars, "input": self.options.input}


# ------------------------------------------------------------------------ forecasting
@dataclass(frozen=True)
class ForecastOptions(TaskOptions):
    file: Optional[str] = opt(None, "the series: comma-separated text, rows = time steps, columns = series "
                                    "(LSTNet's .txt); or CSV with a header and a date column (Informer's .csv)")
    window: int = opt(168, "time steps the network reads before predicting", ge=1)
    horizon: int = opt(1, "predict the value this many steps after the window's last step", ge=1)
    validation_fraction: float = opt(0.2, "the part of the series after the training part", ge=0, le=0.5)
    test_fraction: float = opt(0.2, "the last part of the series", gt=0, le=0.5)
    encoding: str = opt("utf-8", "text encoding of the file: utf-8, cp1252, latin-1, ... (any Python codec)")
    normalize: Literal["standard", "max", "none"] = opt(
        "standard", "per series, with statistics of the training part only: standard (zero mean, unit variance), "
                    "max (divide by the largest |value|, LSTNet's choice) or none")
    header: Optional[bool] = opt(
        None, "whether the first row holds the column names (default: when none of its cells is a number)")
    columns: Optional[tuple[Union[int, str], ...]] = opt(
        None, "the columns to read, by header name or number (1 is the first); default: all but a leading "
              "time-stamp column (a header file's first column when its first value is no number)")


def read_series(path: Path, encoding: str = "utf-8", *, header: Optional[bool] = None,
                columns: Optional[tuple] = None, layout: Optional[dict] = None) -> tuple[np.ndarray, list[str]]:
    """``[time, series]`` float64 values and the series' names, read by the package's one CSV
    reader (:func:`dendrisim.tasks.tables.read_table`, which documents the checks)."""
    return read_table(path, encoding, header=header, columns=columns, layout=layout)


@TASKS.register("forecasting")
class Forecasting(Task):
    """Multivariate forecasting: from the last ``window`` steps of every series predict
    all series ``horizon`` steps after the window (LSTNet's setting). The series is cut
    in time into training, validation and test parts; a sample belongs to the part its
    target lies in (its window may reach back into the previous part, as in LSTNet).
    Normalisation statistics come from the training part only.

    The network is trained on the normalised scale (squared error); the metrics are on
    the original scale, over every series and test sample: ``mse``, ``mae``, ``rse``
    (root relative squared error, ``√Σ(y−ŷ)² / √Σ(y−ȳ)²``) and ``corr`` (Pearson
    correlation over time of each series, averaged over the series that vary).
    """

    Options = ForecastOptions
    metrics = {"loss": False, "mse": False, "mae": False, "rse": False, "corr": True}
    headline = "rse"  # relative squared error, the figure forecasting papers compare
    regression = True
    readout = slice(-1, None)  # the step after the window: known without the data

    @classmethod
    def check_options(cls, options: ForecastOptions, *, file: str) -> None:
        check_table_options(options, file=file, unit="series")

    @classmethod
    def data_spec(cls, options: ForecastOptions, data_root: Optional[str] = None):
        values, _ = read_series(locate(options.file, "file", data_root or options.data_root, _SERIES_WHAT),
                                options.encoding, header=options.header, columns=options.columns)
        S = values.shape[1]
        return (S,), S, len(cls._ranges(len(values), options)["train"])

    @classmethod
    def sequence_spec(cls, options: ForecastOptions) -> int:
        return options.window

    @staticmethod
    def _ranges(n: int, options: ForecastOptions) -> dict[str, range]:
        n_test, n_val = int(n * options.test_fraction), int(n * options.validation_fraction)
        cut = n - n_test - n_val
        first = options.window + options.horizon - 1  # the first target with a full window before it
        return {"train": range(first, cut), "val": range(max(first, cut), cut + n_val),
                "test": range(max(first, cut + n_val), n)}

    def __init__(self, options: ForecastOptions, *, device: torch.device, data_root: Optional[str] = None,
                 dtype: torch.dtype = torch.float32):
        self.options = options
        self.data_root = used_root(data_root or options.data_root)
        path = locate(options.file, "file", data_root or options.data_root, _SERIES_WHAT)
        self.layout: dict = {}
        values, self.names = read_series(path, options.encoding, header=options.header, columns=options.columns,
                                         layout=self.layout)
        ranges = self._ranges(len(values), options)
        if len(ranges["train"]) < 1 or len(ranges["test"]) < 1:
            raise DataError(self._too_short(path, len(values), options))
        train_rows = values[: ranges["train"].stop]
        if options.normalize == "standard":
            self.shift, self.scale = train_rows.mean(0), train_rows.std(0)
        elif options.normalize == "max":
            self.shift, self.scale = np.zeros(values.shape[1]), np.abs(train_rows).max(0)
        else:
            self.shift, self.scale = np.zeros(values.shape[1]), np.ones(values.shape[1])
        self.scale = np.where(self.scale > 0, self.scale, 1.0)
        normalized = (values - self.shift) / self.scale
        bad = ~np.isfinite(normalized) | (np.abs(normalized) > FLOAT32_MAX)
        if bad.any():  # later steps far beyond the training part's spread: inf in float32, NaN metrics
            i, j = (int(v) for v in np.argwhere(bad)[0])
            raise DataError(f"{path}: series {self.names[j]} cannot be normalized ({options.normalize}) in float32: "
                            f"the training part's scale is {self.scale[j]:g}, which makes step {i + 1}'s value "
                            f"{values[i, j]:g} {normalized[i, j]:g}, beyond float32's ±3.4e38; rescale the series "
                            "(multiply it by a power of ten) or leave it out with task.columns")
        self.series = torch.as_tensor(normalized, dtype=dtype, device=device)
        self._shift = torch.as_tensor(self.shift, dtype=torch.float64, device=device)
        self._scale = torch.as_tensor(self.scale, dtype=torch.float64, device=device)
        idx = {k: torch.arange(r.start, r.stop, device=device) for k, r in ranges.items()}
        self.train = Split(idx["train"], idx["train"])
        self.val = Split(idx["val"], idx["val"]) if len(idx["val"]) else None
        self.test = Split(idx["test"], idx["test"])
        self.S = values.shape[1]
        self.input_shape = (self.S,)
        self.output_size = self.S
        self.sequence_length = options.window
        self._offsets = torch.arange(options.window, device=device) - (options.window + options.horizon - 1)

    @staticmethod
    def _too_short(path: Path, n: int, options: ForecastOptions) -> str:
        """Why no training sample fits, and the windows and horizons that would."""
        cut = n - int(n * options.test_fraction) - int(n * options.validation_fraction)
        w, h = options.window, options.horizon
        if w + h - 1 < cut:  # the training part fits: the test part is what is empty
            return (f"{path}: {n} time steps leave no test sample: test_fraction {options.test_fraction} of them "
                    f"is {int(n * options.test_fraction)} steps; use a longer series or a larger task.test_fraction")
        head = (f"{path}: {n} time steps leave no training sample with task.window {w} and task.horizon {h}: "
                f"the training part is the first {cut} steps (after validation_fraction "
                f"{options.validation_fraction} and test_fraction {options.test_fraction} are cut off), and a "
                f"sample needs window + horizon = {w + h} steps of it")
        if cut < 2:
            return head + "; the series is too short for any window: use a longer series or smaller fractions"
        fits = [f"window {cut - h} with horizon {h}"] if cut - h >= 1 else []
        if h != 1:
            fits.append(f"window {cut - 1} with horizon 1")
        return head + f". What fits: window + horizon <= {cut}, e.g. " + " or ".join(fits)

    def inputs(self, x: torch.Tensor) -> torch.Tensor:
        """The windows of the targets ``x`` (time indices): ``[batch, window, series]``."""
        return self.series[x[:, None] + self._offsets]

    def target(self, y: torch.Tensor, network) -> torch.Tensor:
        return self.series[y].unsqueeze(0)  # [1 (the readout step), batch, series]

    def batch_stats(self, y: torch.Tensor, network, state) -> torch.Tensor:
        out = state.output
        t = self.target(y, network)
        loss = output_loss(network.output, out, t, network.readout) * y.shape[0]
        pred = out.rate[-1].to(torch.float64) * self._scale + self._shift
        true = t[0].to(torch.float64) * self._scale + self._shift
        err = true - pred
        per_series = torch.stack([err.pow(2).sum(0), err.abs().sum(0), true.sum(0), true.pow(2).sum(0),
                                  pred.sum(0), pred.pow(2).sum(0), (true * pred).sum(0)])
        return torch.cat([loss.to(torch.float64).view(1), per_series.flatten()])

    def finish_stats(self, stats: torch.Tensor, n: int) -> dict[str, float]:
        loss = float(stats[0]) / n
        se, ae, sy, syy, sp, spp, syp = stats[1:].view(7, self.S).double().unbind(0)
        count = n * self.S
        var_all = float(syy.sum() - sy.sum() ** 2 / count)
        var_y, var_p = syy - sy**2 / n, spp - sp**2 / n
        cov = syp - sy * sp / n
        varies = (var_y > 1e-12 * syy.abs().clamp_min(1)) & (var_p > 0)
        corr = float((cov[varies] / (var_y[varies] * var_p[varies]).sqrt()).mean()) if bool(varies.any()) else math.nan
        return {"loss": loss, "mse": float(se.sum()) / count, "mae": float(ae.sum()) / count,
                "rse": math.sqrt(float(se.sum())) / math.sqrt(var_all) if var_all > 0 else math.nan, "corr": corr}

    def artifacts(self) -> dict:
        return {"series": self.names, "shift": self.shift.tolist(), "scale": self.scale.tolist(),
                "header": self.layout.get("header"), "skipped_columns": self.layout.get("skipped", [])}


_SERIES_WHAT = "a comma-separated series file (rows = time steps, columns = series)"
