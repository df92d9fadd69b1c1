"""The task interface: data on the device, the teacher signal, and metrics."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Iterator, Optional

import torch

from ..config.schema import opt, req
from ..errors import DataError, brief
from ..paths import problem, reason, shown
from ..registry import Registry

if TYPE_CHECKING:
    from ..network import Network


@dataclass(frozen=True)
class TaskOptions:
    type: str = req("the task: classification, ...")
    batch_size: int = opt(128, "training batch size", ge=1)
    eval_batch_size: int = opt(1000, "batch size for evaluation", ge=1)
    validation_fraction: float = opt(0.1, "part of the training set held out for early stopping and model selection", ge=0, le=0.5)
    data_root: Optional[str] = opt(None, "folder with the data files (--data-root overrides it)")


@dataclass
class Split:
    """A split held as two tensors on the training device."""

    x: torch.Tensor
    y: torch.Tensor

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def batches(self, batch_size: int, *, limit: Optional[int] = None) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Consecutive batches as views of the split (for evaluation)."""
        n = len(self)
        for k, start in enumerate(range(0, n, batch_size)):
            if limit is not None and k >= limit:
                return
            yield self.x[start:start + batch_size], self.y[start:start + batch_size]

    def indexed_batches(self, batch_size: int, order: torch.Tensor, *, limit: Optional[int] = None,
                        rank: int = 0, world: int = 1) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """``(ids, x, y)`` batches in the order of the permutation ``order``.

        With ``world`` ranks a global batch holds ``world * batch_size`` samples and this
        rank takes its contiguous part of it (see ``dendrisim.distributed``).
        """
        step = batch_size * world
        for k, start in enumerate(range(0, len(order), step)):
            if limit is not None and k >= limit:
                return
            glob = order[start:start + step]
            idx = glob[len(glob) * rank // world: len(glob) * (rank + 1) // world]
            yield idx, self.x.index_select(0, idx), self.y.index_select(0, idx)

    def shard(self, rank: int, world: int) -> "Split":
        """The ``rank``-th of ``world`` contiguous parts (views, no copy)."""
        lo, hi = len(self) * rank // world, len(self) * (rank + 1) // world
        return Split(self.x[lo:hi], self.y[lo:hi])

    def n_batches(self, batch_size: int) -> int:
        return -(-len(self) // batch_size)


def locate(path: Optional[str], key: str, root: Optional[str], what: str) -> Path:
    """The file a task key names: an absolute path as given; a relative one under the data
    root when one is given (only there: never from another folder), else from the working
    directory. A clear error naming the place looked at otherwise."""
    if path is None:
        raise DataError(f"task.{key} is not set; give the file in the model or with --set task.{key}=PATH ({what})")
    p = Path(path).expanduser()
    if root and not p.is_absolute():
        p = Path(root).expanduser() / p
    why = problem(p)  # a name too long, a symlink loop: said as the OS says it
    if why is not None:
        raise DataError(f"task.{key}: {shown(p)}: {why}")
    if p.is_dir():
        raise DataError(f"task.{key}: {shown(p)} is a folder; expected {what}: point the key at the file itself")
    if p.exists() and not p.is_file():
        raise DataError(f"task.{key}: {shown(p)} is not a regular file (a pipe, socket or device, which is not read "
                        f"here); expected {what}: point the key at a file")
    if not p.is_file():
        under_root = root and not Path(path).expanduser().is_absolute()
        missing_root = (f" (the data root {shown(root)} is not a folder)"
                        if under_root and not Path(root).expanduser().is_dir() else "")
        raise DataError(f"task.{key}: {shown(p)} not found{missing_root}; expected {what} there. Nothing is downloaded: "
                        "put the file there or point the key at it")
    return p


def used_root(root: Optional[str]) -> Optional[str]:
    """The absolute data root that relative task files are read from (None when none is given)."""
    return str(Path(root).expanduser().resolve()) if root else None


#: codecs Python counts as text encodings that are meant for domain names, not for files
_DOMAIN_CODECS = frozenset({"punycode", "idna"})


def check_encoding(encoding: str, *, file: str) -> None:
    """A ConfigError for ``task.encoding`` values that Python does not know."""
    import codecs

    from ..errors import ConfigError

    allowed = "e.g. utf-8, cp1252 (Windows Western European), latin-1 or utf-16: any text encoding Python knows"
    try:
        info = codecs.lookup(encoding)
    except (LookupError, ValueError, TypeError):  # ValueError: a name holding a NUL
        raise ConfigError(f"{brief(encoding)} is not a text encoding Python knows; use {allowed}",
                          file=file, path="task.encoding") from None
    if info.name in _DOMAIN_CODECS:
        raise ConfigError(f"{brief(encoding)} is Python's {info.name} codec, which encodes domain names, not files; "
                          f"use {allowed}", file=file, path="task.encoding")
    if not getattr(info, "_is_text_encoding", True):
        raise ConfigError(f"{brief(encoding)} is Python's {info.name} codec, which transforms bytes or text (rot13, "
                          f"base64, zlib, uu, ...) rather than decoding a file to text; use {allowed}",
                          file=file, path="task.encoding")


def undecodable(path: Path, encoding: str) -> Optional[tuple[int, bytes, str]]:
    """``(byte offset, bad bytes, reason)`` of the first place ``path`` does not decode in
    ``encoding``; None when the whole file decodes. Reads the file in blocks."""
    import codecs

    decoder = codecs.getincrementaldecoder(encoding)()
    offset = 0
    with open(path, "rb") as fh:
        while True:
            block = fh.read(1 << 20)
            try:
                decoder.decode(block, final=not block)
            except UnicodeDecodeError as err:
                # the decoder may hold back up to a few bytes of an unfinished character
                held = len(err.object) - len(block)
                return offset + err.start - held, err.object[err.start:err.end], err.reason
            except UnicodeError:  # a codec that says not where (punycode, say)
                return None
            if not block:
                return None
            offset += len(block)


def decode_error(path: Path, encoding: str, *, scan: bool = True) -> DataError:
    """The error for a file that is not text in ``encoding``: where (``scan``: find the first
    bad byte; not for binary files), and what to set instead."""
    where = undecodable(path, encoding) if scan else None
    at = f" at byte offset {where[0]:,} (bytes {where[1].hex(' ')}: {where[2]})" if where else ""
    suggest = "utf-8" if encoding.lower().replace("_", "-") not in ("utf-8", "utf8") else "cp1252"
    return DataError(f"{path}: not {encoding} text{at}, which task.encoding ({encoding}) asks for. Corpora and "
                     "vector files made on Windows are often cp1252, older ones latin-1: set the key to the "
                     f"file's encoding (e.g. --set task.encoding={suggest}; likely encodings: utf-8, cp1252, "
                     "latin-1), or convert the file (iconv -f cp1252 -t utf-8)")


def read_text(path: Path, encoding: str) -> str:
    """The whole file as text in ``encoding`` (``task.encoding``); a clear error otherwise."""
    try:
        return path.read_text(encoding=encoding)
    except UnicodeError:
        raise decode_error(path, encoding) from None
    except OSError as err:  # a special file (/proc/self/mem), a device that fails: said with the file
        raise DataError(f"{shown(path)}: cannot be read as a text file ({reason(err)})") from None


TASKS: Registry[type["Task"]] = Registry("task")


class LabelTask:
    """Targets that are one-hot labels: the loss of the output population and accuracy.
    A task mixes it in and sets ``_eye``, the ``[classes, classes]`` identity on its device."""

    metrics = {"loss": False, "accuracy": True}
    _eye: torch.Tensor

    def target(self, y: torch.Tensor, network) -> torch.Tensor:
        return self._eye.index_select(0, y)

    def batch_stats(self, y: torch.Tensor, network, state) -> torch.Tensor:
        from ..losses import output_loss

        out = state.output
        loss = output_loss(network.output, out, self._eye.index_select(0, y)) * y.shape[0]
        correct = (out.rate.flatten(1).argmax(1) == y).sum()
        return torch.stack([loss.to(torch.float64), correct.to(torch.float64)])

    def finish_stats(self, stats: torch.Tensor, n: int) -> dict[str, float]:
        loss, correct = stats.tolist()
        return {"loss": loss / n, "accuracy": correct / n}


class Task:
    """Base class of tasks. Subclasses load ``train``/``val``/``test`` splits."""

    Options: type = TaskOptions
    #: metric name -> True when higher is better
    metrics: dict[str, bool] = {"loss": False}
    #: the metric comparisons tune for and report (None: the first higher-is-better one, else the loss)
    headline: Optional[str] = None
    #: whether the targets are real values of any sign taught by squared error (forecasting,
    #: sequence regression): an output whose loss is a cross-entropy (softmax, sigmoid) is refused
    regression: bool = False
    train: Split
    val: Optional[Split]
    test: Split
    input_shape: tuple[int, ...]
    output_size: int
    #: (words, dim) of the task's word vectors, for embedding projections (None: no vocabulary)
    vocabulary: Optional[tuple[int, int]] = None
    #: the data folder the task actually read from, absolute (None: bundled data, or files named by
    #: absolute paths); what run.json should record as the run's data root
    data_root: Optional[str] = None

    @classmethod
    def check_options(cls, options, *, file: str) -> None:
        """Raise ConfigError for options that are well-typed but unusable (before loading data)."""

    @classmethod
    def data_spec(cls, options, data_root: Optional[str] = None) -> tuple[tuple[int, ...], int, int]:
        """(sample shape, output size, training-split size) of the data, known without loading it."""
        raise NotImplementedError

    @classmethod
    def vocabulary_spec(cls, options, data_root: Optional[str] = None) -> Optional[tuple[int, int]]:
        """(words, dim) of the word vectors without loading them; None for tasks without."""
        return None

    #: time steps whose output is taught and scored (sequence tasks; all of them by default)
    readout: slice = slice(None)
    #: length of the training sequences (sequence tasks), None for static samples
    sequence_length: Optional[int] = None

    @classmethod
    def sequence_spec(cls, options) -> Optional[int]:
        """Length of the training sequences, known without the data (None: static samples)."""
        return None

    def inputs(self, x: torch.Tensor) -> torch.Tensor:
        """What the input population receives for the stored batch ``x`` (identity by default;
        sequence tasks build one-hot vectors or windows here, on the device)."""
        return x

    def artifacts(self) -> dict:
        """What a trained network needs besides its weights (a vocabulary, ...): ``task.json``."""
        return {}

    def embedding_for(self, proj) -> torch.Tensor:
        """Initial table of an embedding projection (tasks with a vocabulary)."""
        raise NotImplementedError

    def target(self, y: torch.Tensor, network: "Network") -> torch.Tensor:
        """The teacher's target ``t`` for the output population."""
        raise NotImplementedError

    def batch_stats(self, y: torch.Tensor, network: "Network", state) -> torch.Tensor:
        """Summed per-batch statistics of the network's prediction in ``state`` (the free state
        of the batch) as a device tensor (no host sync)."""
        raise NotImplementedError

    def finish_stats(self, stats: torch.Tensor, n: int) -> dict[str, float]:
        raise NotImplementedError

    def evaluate_stats(self, network: "Network", split: Split, *, limit: Optional[int] = None
                       ) -> tuple[Optional[torch.Tensor], int]:
        """Summed statistics and sample count (to be combined across shards)."""
        total, n = None, 0
        with torch.no_grad():
            for x, y in split.batches(self.options.eval_batch_size, limit=limit):
                stats = self.batch_stats(y, network, network.free_state(self.inputs(x)))
                total = stats if total is None else total + stats
                n += y.shape[0]
        return total, n
