"""Sentence classification (Subj, SST-2, ...) over pretrained word vectors.

Each sentence becomes ``max_length`` token ids (cut, or padded with ``<pad>``); the
network's input population holds the ids and an ``embedding`` projection turns them
into a ``[1, length, dim]`` map of word vectors for a text CNN (Kim 2014). The ids of
every split sit on the device; vectors are looked up batch by batch, so memory grows
with the vocabulary, not with the corpus.

Files (``task.train_file``, optional ``task.test_file``), the format detected from the
content of the first non-empty line:

- GLUE SST-2 TSV: a header naming a ``sentence`` and a ``label`` column, tab-separated;
- fastText: ``__label__X sentence``;
- one example per line as ``label sentence`` (the format of Kim's CNN repository).

Vocabulary: ``<pad>`` (id 0, zero vector), ``<unk>`` (id 1, zero vector: a word never
seen in training carries no evidence), then the training words seen at least
``min_count`` times, most frequent first. A training word missing from the vectors
file gets a random vector ``U(-a, a)`` whose variance matches the known vectors
(``unknown: random``, as Kim 2014 did with ``a = 0.25``) or zeros (``unknown: zero``).
The vectors are read with gensim's ``KeyedVectors``: GloVe's header-less text format, the
word2vec text format (with its ``count dim`` header), word2vec binary (``.bin``) or a
saved ``KeyedVectors`` (``.kv``, a pickle: read only with ``task.trust_pickle: true``);
their dimension is read from the file. A word2vec header's count must match the vectors
the file holds (gensim stops at the count): one claiming fewer or more is refused.
"""
from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Optional

import numpy as np
import torch

from ..config.schema import opt
from ..errors import DataError, brief
from .base import (TASKS, LabelTask, Split, Task, TaskOptions, check_encoding, decode_error, locate, read_text,
                   used_root)
from .classification import split_indices

PAD, UNK = "<pad>", "<unk>"
_TOKEN = re.compile(r"n't|'s|'re|'ve|'d|'ll|'m|\w+(?=n't)|\w+|[^\w\s]")


def tokenize(text: str, *, lowercase: bool = True) -> list[str]:
    """Words, numbers, punctuation marks and the clitics n't 's 're 've 'd 'll 'm as tokens."""
    return _TOKEN.findall(text.lower() if lowercase else text)


@dataclass(frozen=True)
class SentenceOptions(TaskOptions):
    train_file: Optional[str] = opt(None, "labelled sentences (GLUE TSV, 'label sentence' lines or fastText "
                                          "__label__X lines; detected from the content)")
    test_file: Optional[str] = opt(None, "labelled test sentences in any of those formats; without it a seeded "
                                         "test_fraction of train_file is held out")
    test_fraction: float = opt(0.1, "held-out test part of train_file when there is no test_file", gt=0, le=0.5)
    vectors: Optional[str] = opt(None, "word vectors: GloVe .txt (no header), word2vec .txt/.bin or gensim .kv")
    max_length: int = opt(50, "tokens per sentence: longer ones are cut, shorter ones padded", ge=1)
    lowercase: bool = opt(True, "lowercase before tokenizing (GloVe 6B vectors are lowercase)")
    min_count: int = opt(1, "training words seen fewer times map to <unk>", ge=1)
    encoding: str = opt("utf-8", "text encoding of the sentence files and of text vector files: utf-8, cp1252, "
                                 "latin-1, ... (any Python codec)")
    unknown: Literal["random", "zero"] = opt(
        "random", "vector of a training word missing from the vectors file: random (variance of the known vectors) or zero")
    trust_pickle: bool = opt(False, "read a gensim .kv vectors file, a Python pickle that can run code: only for "
                                    "a file you trust (text and .bin formats need no such trust)")


_WHAT = {"vectors": "word vectors (GloVe text, word2vec text/binary or gensim .kv)",
         "train_file": "labelled sentences (GLUE TSV, 'label sentence' or fastText lines)",
         "test_file": "labelled sentences (GLUE TSV, 'label sentence' or fastText lines)"}


def _resolve(key: str, options: SentenceOptions, data_root: Optional[str]) -> Path:
    return locate(getattr(options, key), key, data_root or options.data_root, _WHAT[key])


def read_labelled(path: Path, encoding: str = "utf-8") -> tuple[list[str], list[str], str]:
    """(sentences, labels, format name) of a labelled file in one of the three formats."""
    lines = read_text(path, encoding).splitlines()
    body = [(n, line) for n, line in enumerate(lines, 1) if line.strip()]
    if not body:
        raise DataError(f"{path}: no sentences in the file")
    first = body[0][1]
    sentences, labels = [], []
    if "\t" in first and {"sentence", "label"} <= {c.strip().lower() for c in first.split("\t")}:
        header = [c.strip().lower() for c in first.split("\t")]
        s_col, l_col = header.index("sentence"), header.index("label")
        for n, line in body[1:]:
            cols = line.split("\t")
            if len(cols) != len(header):
                raise DataError(f"{path}:{n}: {len(cols)} tab-separated columns, the header has {len(header)}")
            sentences.append(cols[s_col])
            labels.append(cols[l_col].strip())
        return sentences, labels, "glue tsv"
    fasttext = first.startswith("__label__")
    for n, line in body:
        parts = line.strip().split(None, 1)
        label = parts[0]
        if fasttext:
            if not label.startswith("__label__"):
                raise DataError(f"{path}:{n}: expected '__label__X sentence' like the first line, got {line[:60]!r}")
            label = label[len("__label__"):]
        if len(parts) < 2:
            raise DataError(f"{path}:{n}: a label without a sentence: {line[:60]!r}")
        sentences.append(parts[1])
        labels.append(label)
    return sentences, labels, "fasttext" if fasttext else "label sentence"


def pickle_refusal(path: Path) -> DataError:
    """The error for a pickled vectors file read without ``task.trust_pickle``."""
    return DataError(f"{path}: a gensim .kv file is a Python pickle, and unpickling it runs whatever code the file "
                     "holds, so dendrisim does not read it unless you trust the file: set task.trust_pickle: true "
                     "in the model's task block, or for this run only with --set task.trust_pickle=true. Formats "
                     "read without pickle need no trust: GloVe text, word2vec text (.txt) or binary (.bin); gensim "
                     "converts a .kv with KeyedVectors.load(PATH).save_word2vec_format('vectors.bin', binary=True)")


def _header(path: Path, encoding: str) -> Optional[tuple[int, int]]:
    """``(count, dim)`` of a word2vec header (text or binary), bounded by the file's size so
    that a header claiming 10^12 words or dimensions is refused before anything is
    allocated; None for a file without one (GloVe). Every vector takes at least
    ``2 * dim`` bytes in text (a digit and a separator per value), ``4 * dim`` in binary."""
    binary = path.suffix == ".bin"
    try:
        with open(path, "rb") if binary else open(path, encoding=encoding, errors="replace") as fh:
            raw = fh.readline(1 << 16)
        size = path.stat().st_size
    except OSError as err:
        raise DataError(f"{path}: cannot read word vectors ({err.strerror or err})") from None
    head = (raw.decode("latin-1") if binary else raw).split()
    if not (len(head) == 2 and all(t.isascii() and t.isdigit() for t in head)):
        if binary:
            raise DataError(f"{path}: a word2vec binary file starts with a 'count dim' line, this one with "
                            f"{brief(raw[:60])}; expected word2vec binary (.bin), or give text vectors another suffix")
        return None
    count, dim = int(head[0]), int(head[1])
    per_value = 4 if binary else 2
    if count < 1 or dim < 1 or count * dim * per_value > size:
        need = "is no vector" if count < 1 or dim < 1 else f"need at least {count * dim * per_value:,} bytes"
        raise DataError(f"{path}: the header claims {count:,} words of {dim:,} dimensions, which {need}"
                        f"; the file has {size:,} bytes. The header ('count dim' on the first line) is wrong or the "
                        "file is cut short: fetch it again")
    return count, dim


def _vector_lines(path: Path) -> int:
    """Lines holding anything after a word2vec text file's header line, counted in blocks
    of the raw bytes (one pass, whatever the file's size)."""
    count, rest = 0, b""
    with open(path, "rb") as fh:
        fh.readline(1 << 16)  # the 'count dim' header
        while block := fh.read(1 << 24):
            lines = (rest + block).split(b"\n")
            rest = lines.pop()
            count += sum(1 for line in lines if line.strip())
    return count + bool(rest.strip())


def _check_count(path: Path, header: tuple[int, int]) -> None:
    """A word2vec text header must count the file's lines: gensim stops at the count, so one
    claiming fewer words would drop the rest of the vectors unsaid (a file joined from two, or
    a header left from an earlier version); which of the two is right only its maker knows."""
    lines = _vector_lines(path)
    if lines != header[0]:
        dropped = (f"; reading it would drop the last {lines - header[0]:,} vectors unsaid"
                   if lines > header[0] else "")
        raise DataError(f"{path}: the header claims {header[0]:,} words, but the file holds {lines:,} lines of "
                        f"vectors after it{dropped}. Write the number of vector lines as the first number of the "
                        "header ('count dim' on the first line), or fetch the file again if it was cut short")


def _check_binary_rest(path: Path, kv, encoding: str) -> None:
    """A word2vec binary file must end after the header's count of vectors (gensim stops
    there, dropping whatever follows unsaid): each vector is its word, a space and ``4 *
    dim`` bytes, with at most a newline before the next; more than that left over is at
    least one more vector."""
    with open(path, "rb") as fh:
        start = len(fh.readline(1 << 16))
    entry = 4 * kv.vector_size
    used = start + sum(len(word.encode(encoding)) + 1 + entry for word in kv.index_to_key)
    size = path.stat().st_size
    if size - used - len(kv) >= entry + 2:  # past a newline after each: room for a vector of a one-letter word
        more = max(1, round((size - used) / ((used - start) / len(kv))))  # at the mean size of those read
        raise DataError(f"{path}: the header claims {len(kv):,} words, but {size - used:,} bytes follow their "
                        f"vectors, room for about {more:,} more of their mean size; reading it would drop them "
                        "unsaid. Write the number of vectors as the first number of the "
                        "header ('count dim' on the first line)")


def _finite(kv, path: Path):
    """``kv`` when every vector is finite within float32's range; a DataError naming the first
    word whose vector is not (NaN, Inf or a value that overflowed float32) otherwise."""
    vectors = kv.vectors
    for start in range(0, len(vectors), 1 << 16):  # in blocks: a large file's flags never sit in memory at once
        with np.errstate(over="ignore"):
            bad = ~np.isfinite(np.asarray(vectors[start:start + (1 << 16)], dtype=np.float32)).all(axis=1)
        if not bad.any():
            continue
        i = start + int(np.argmax(bad))
        raise DataError(f"{path}: the vector of {brief(kv.index_to_key[i])} (word {i + 1} of the file) holds NaN, "
                        "Inf or a value beyond float32's range (±3.4e38); every value of a vectors file must be a "
                        "finite number: fix or drop that line")
    return kv


def load_vectors(path: Path, encoding: str = "utf-8", *, trust_pickle: bool = False):
    """gensim KeyedVectors from GloVe text, word2vec text/binary (words in ``encoding``) or,
    with ``trust_pickle`` only, a saved .kv file (a pickle: see :func:`pickle_refusal`)."""
    from gensim.models import KeyedVectors

    if path.suffix == ".kv":
        if not trust_pickle:
            raise pickle_refusal(path)
        try:
            kv = KeyedVectors.load(str(path))
            if not isinstance(kv, KeyedVectors):
                raise TypeError(f"it holds a {type(kv).__name__}")
        except Exception as err:  # noqa: BLE001 - a damaged pickle fails in many ways
            raise DataError(f"{path}: cannot read the gensim .kv file ({type(err).__name__}: {brief(str(err))}); "
                            "the file is damaged or not a KeyedVectors file") from None
        return _finite(kv, path)
    header = _header(path, encoding)
    try:
        with np.errstate(over="ignore", invalid="ignore"):  # an overflowing value is reported below, by word
            if path.suffix == ".bin":
                kv = KeyedVectors.load_word2vec_format(str(path), binary=True, encoding=encoding)
                _check_binary_rest(path, kv, encoding)
            else:
                if header is not None:
                    _check_count(path, header)
                kv = KeyedVectors.load_word2vec_format(str(path), binary=False, no_header=header is None,
                                                       encoding=encoding)
        return _finite(kv, path)
    except UnicodeDecodeError:
        raise decode_error(path, encoding, scan=path.suffix != ".bin") from None
    except (ValueError, EOFError, OSError, IndexError) as err:
        raise DataError(f"{path}: cannot read word vectors ({brief(str(err))}); expected GloVe text (word v1 v2 ...), "
                        "word2vec text or binary, or a gensim .kv file") from None


def _label_order(labels: list[str]) -> list[str]:
    unique = set(labels)
    try:
        return sorted(unique, key=lambda s: float(s))
    except ValueError:
        return sorted(unique)


@TASKS.register("sentences")
class SentenceClassification(LabelTask, Task):
    """Classify sentences; targets are one-hot labels. Metrics: ``loss`` and ``accuracy``."""

    Options = SentenceOptions

    @classmethod
    def check_options(cls, options: SentenceOptions, *, file: str) -> None:
        check_encoding(options.encoding, file=file)

    @classmethod
    def data_spec(cls, options: SentenceOptions, data_root: Optional[str] = None):
        corpus = cls._corpus(options, data_root)
        n_train = int(len(corpus["train"][0]) * (1 - options.validation_fraction))
        return (options.max_length,), len(corpus["classes"]), n_train

    @classmethod
    def vocabulary_spec(cls, options: SentenceOptions, data_root: Optional[str] = None) -> tuple[int, int]:
        corpus = cls._corpus(options, data_root)
        vectors_file = _resolve("vectors", options, data_root)
        dim = _vector_dim(vectors_file, options.encoding, trust_pickle=options.trust_pickle)
        return len(cls._vocabulary(corpus["train"][0], options)), dim

    @staticmethod
    def _corpus(options: SentenceOptions, data_root: Optional[str]) -> dict:
        train_path = _resolve("train_file", options, data_root)
        sentences, labels, _ = read_labelled(train_path, options.encoding)
        classes = _label_order(labels)
        if len(classes) < 2:
            raise DataError(f"{train_path}: only one label ({classes[0]!r}); classification needs two or more")
        if options.test_file is not None:
            test_path = _resolve("test_file", options, data_root)
            te_s, te_l, _ = read_labelled(test_path, options.encoding)
            unseen = sorted(set(te_l) - set(classes))
            if unseen:
                raise DataError(f"{test_path}: labels {unseen} do not occur in {train_path} (labels {classes})")
        else:
            keep, held = split_indices(len(sentences), options.test_fraction, seed=12345)
            te_s, te_l = [sentences[i] for i in held], [labels[i] for i in held]
            sentences, labels = [sentences[i] for i in keep], [labels[i] for i in keep]
        return {"train": (sentences, labels), "test": (te_s, te_l), "classes": classes}

    @staticmethod
    def _vocabulary(sentences: list[str], options: SentenceOptions) -> list[str]:
        counts = Counter(t for s in sentences for t in tokenize(s, lowercase=options.lowercase))
        words = sorted((w for w, c in counts.items() if c >= options.min_count), key=lambda w: (-counts[w], w))
        return [PAD, UNK, *words]

    def __init__(self, options: SentenceOptions, *, device: torch.device, data_root: Optional[str] = None,
                 dtype: torch.dtype = torch.float32):
        self.options = options
        self.data_root = used_root(data_root or options.data_root)
        corpus = self._corpus(options, data_root)
        (tr_s, tr_l), (te_s, te_l) = corpus["train"], corpus["test"]
        self.classes = corpus["classes"]
        self.words = self._vocabulary(tr_s, options)
        index = {w: i for i, w in enumerate(self.words)}
        kv = load_vectors(_resolve("vectors", options, data_root), options.encoding, trust_pickle=options.trust_pickle)
        self.vectors, self.coverage = self._embedding_matrix(kv, dtype)
        label_id = {c: i for i, c in enumerate(self.classes)}
        encode = lambda ss: self._encode(ss, index)  # noqa: E731
        x_tr, y_tr = encode(tr_s), np.array([label_id[c] for c in tr_l])
        x_te, y_te = encode(te_s), np.array([label_id[c] for c in te_l])
        x_val = y_val = None
        if options.validation_fraction > 0:
            keep, held = split_indices(len(x_tr), options.validation_fraction, seed=54321)
            x_tr, y_tr, x_val, y_val = x_tr[keep], y_tr[keep], x_tr[held], y_tr[held]
        ids = lambda a: torch.as_tensor(a, dtype=torch.int64, device=device)  # noqa: E731
        self.train = Split(ids(x_tr), ids(y_tr))
        self.val = Split(ids(x_val), ids(y_val)) if x_val is not None else None
        self.test = Split(ids(x_te), ids(y_te))
        self.input_shape = (options.max_length,)
        self.output_size = len(self.classes)
        self.vocabulary = tuple(self.vectors.shape)
        self._eye = torch.eye(self.output_size, device=device, dtype=dtype)

    def _encode(self, sentences: list[str], index: dict[str, int]) -> np.ndarray:
        L = self.options.max_length
        out = np.zeros((len(sentences), L), dtype=np.int64)  # 0 = <pad>
        for i, s in enumerate(sentences):
            toks = [index.get(t, 1) for t in tokenize(s, lowercase=self.options.lowercase)[:L]]
            out[i, : len(toks)] = toks
        return out

    def _embedding_matrix(self, kv, dtype) -> tuple[torch.Tensor, float]:
        """Rows for the vocabulary; returns the matrix and the share of words found."""
        dim = kv.vector_size
        found = [w for w in self.words[2:] if w in kv.key_to_index]
        known = np.stack([kv[w] for w in found]) if found else np.zeros((0, dim), dtype=np.float32)
        matrix = np.zeros((len(self.words), dim), dtype=np.float32)
        rng = np.random.default_rng(0)
        bound = float(np.sqrt(3.0) * known.std()) if len(known) else 0.25  # U(±a) has variance a²/3
        for i, w in enumerate(self.words[2:], start=2):
            if w in kv.key_to_index:
                matrix[i] = kv[w]
            elif self.options.unknown == "random":
                matrix[i] = rng.uniform(-bound, bound, dim)
        coverage = len(found) / max(1, len(self.words) - 2)
        return torch.from_numpy(matrix).to(dtype), coverage

    def embedding_for(self, proj) -> torch.Tensor:
        """Initial table of an embedding projection: the vocabulary's vectors."""
        return self.vectors



def _vector_dim(path: Path, encoding: str = "utf-8", *, trust_pickle: bool = False) -> int:
    """Dimension of the vectors, from the header or the first line (without loading the file
    but for a .kv)."""
    if path.suffix == ".kv":
        return load_vectors(path, encoding, trust_pickle=trust_pickle).vector_size
    header = _header(path, encoding)
    if header is not None:
        return header[1]
    with open(path, encoding=encoding, errors="replace") as fh:
        head = fh.readline(1 << 24).split()
    if len(head) < 2:
        raise DataError(f"{path}: the first line {brief(' '.join(head))} is not 'word v1 v2 ...' nor a 'count dim' "
                        "header")
    return len(head) - 1
