"""A lab's own data: labelled arrays from an ``.npz``, a ``.csv`` or memory, checked before
anything trains.

:func:`load_file` reads the file that ``task.file`` names (a CSV through the package's one
reader, :func:`dendrisim.tasks.tables.read_table`); :func:`check_arrays` checks arrays the
way every data file is checked (shapes, dtypes, finite values, labels in ``0..K-1``) and is
what ``Trainer(data=...)`` runs on arrays held in memory. Every problem is one
:class:`~dendrisim.errors.DataError` paragraph naming the file (or ``data=``), the array and
what is wrong. The arrays handed on are read-only views: the task copies what it
normalises, so neither a cached file nor the caller's arrays change.
"""
from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping, Optional, Union

import numpy as np

from ..config.parse import FLOAT32_MAX
from ..errors import ConfigError, DataError, brief
from .base import check_encoding, locate, read_text, used_root
from .datasets import ImageData
from .tables import read_table

# ------------------------------------------------------------------ labelled arrays
#: the arrays an .npz (or ``data=``) may hold; the first two are required
ARRAYS = ("x_train", "y_train", "x_test", "y_test", "x_val", "y_val")

#: more classes than this need ``task.classes`` (a label column of ids, not class indices, says so)
MAX_CLASSES = 100_000


@dataclass(frozen=True)
class OwnData:
    """Labelled arrays held in memory, for ``dendrisim.Trainer(experiment, data=...)``
    (a dict with the same keys works as well).

    ``x_*``: samples, ``[n, features]`` or images ``[n, channels, height, width]`` /
    ``[n, height, width]`` (any sample shape; numbers: bool, integer or float); ``y_*``:
    integer class labels ``[n]`` in ``0..K-1``. Without a test split, ``task.test_fraction``
    of the training samples are held out for testing; without a validation split,
    ``task.validation_fraction``. NumPy arrays, torch tensors or nested lists."""

    x_train: Any
    y_train: Any
    x_test: Any = None
    y_test: Any = None
    x_val: Any = None
    y_val: Any = None


@dataclass
class FileData(ImageData):
    """Checked arrays of a ``dataset: file`` task: :class:`ImageData` plus an optional
    validation split (``x_test`` None: the test split is carved by ``task.test_fraction``)."""

    x_val: Optional[np.ndarray] = None
    y_val: Optional[np.ndarray] = None


def _numbers(x: np.ndarray, *, source: str, name: str) -> None:
    """DataError unless ``x`` holds finite numbers within float32's range."""
    if x.dtype.kind not in "biuf":
        raise DataError(f"{source}: {name} has dtype {x.dtype}, which is no number type; samples must be numbers "
                        "(bool, integer or float): encode text or categories as numbers first")
    if x.dtype.kind == "f":
        bad = ~np.isfinite(x) | (np.abs(x) > FLOAT32_MAX) if x.dtype.itemsize > 4 else ~np.isfinite(x)
        if bad.any():
            where = np.argwhere(bad)[0]
            value = x[tuple(where)]
            what = "NaN" if value != value else "Inf" if not np.isfinite(value) else f"{value:g}, outside float32's range"
            raise DataError(f"{source}: {name} holds {what} at index {list(map(int, where))} "
                            f"({int(bad.sum()):,} such values in all); every value must be a finite number "
                            "within float32's range (±3.4e38): fill or drop missing values first")


def _labels(y: np.ndarray, *, source: str, name: str) -> np.ndarray:
    """``y`` as int64 class labels; DataError for a dtype or value that is no class index."""
    if y.ndim != 1:
        hint = " (one-hot labels: y.argmax(1))" if y.ndim == 2 and y.shape[1] > 1 else " (y.reshape(-1))"
        raise DataError(f"{source}: {name} has shape {list(y.shape)}; labels are one integer per sample, shape "
                        f"[n]{hint}")
    if y.dtype.kind == "f":
        whole = np.isfinite(y) & (y == np.round(y))
        if not whole.all():
            i = int(np.argmin(whole))
            raise DataError(f"{source}: {name}[{i}] is {y[i]:g}, not an integer class label; labels are integers "
                            "0..K-1")
    elif y.dtype.kind not in "biu":
        raise DataError(f"{source}: {name} has dtype {y.dtype}; labels are integers 0..K-1 (map names to numbers, "
                        "e.g. np.unique(y, return_inverse=True))")
    if y.size and y.min() < 0:
        _out_of_range(y, source=source, name=name, classes=None)
    if y.size and y.max() > MAX_CLASSES ** 2:
        raise DataError(f"{source}: {name} holds the label {y.max():g} (index {int(np.argmax(y))}); labels are class "
                        "indices 0..K-1: map them (np.unique(y, return_inverse=True))")
    return y.astype(np.int64)


def _out_of_range(y: np.ndarray, *, source: str, name: str, classes: Optional[int]):
    """Raise the DataError listing the labels of ``y`` outside ``0..classes-1``."""
    bad = (y < 0) if classes is None else (y < 0) | (y >= classes)
    values = np.unique(y[bad])
    shown = ", ".join(f"{v:g}" if isinstance(v, float) else str(v) for v in values[:8].tolist())
    more = f" and {len(values) - 8} more" if len(values) > 8 else ""
    allowed = "labels are integers 0..K-1" if classes is None else f"allowed 0..{classes - 1} (task.classes: {classes})"
    raise DataError(f"{source}: {name} holds labels out of range: {shown}{more} ({int(bad.sum()):,} samples, the first "
                    f"at index {int(np.argmax(bad))}); {allowed}")


def _pair(arrays: Mapping[str, np.ndarray], which: str, *, source: str, names: Mapping[str, str]
          ) -> Optional[tuple[np.ndarray, np.ndarray]]:
    """The checked ``(x, y)`` of split ``which`` (None when the arrays lack it)."""
    kx, ky = f"x_{which}", f"y_{which}"
    x, y = arrays.get(kx), arrays.get(ky)
    if x is None and y is None:
        return None
    if x is None or y is None:
        have, lack = (kx, ky) if y is None else (ky, kx)
        raise DataError(f"{source}: {names[have]} is given without {names[lack]}; a split needs both samples and "
                        "labels")
    _numbers(x, source=source, name=names[kx])
    if x.ndim < 2:
        raise DataError(f"{source}: {names[kx]} has shape {list(x.shape)}; samples are [n, features] or images "
                        "[n, channels, height, width] (one feature per sample: x.reshape(-1, 1))")
    if 0 in x.shape[1:]:
        raise DataError(f"{source}: {names[kx]} has shape {list(x.shape)}: its samples hold no values")
    y = _labels(y, source=source, name=names[ky])
    if len(x) != len(y):
        raise DataError(f"{source}: {names[kx]} has {len(x):,} samples and {names[ky]} {len(y):,} labels; they must "
                        "agree")
    if len(x) == 0:
        raise DataError(f"{source}: {names[kx]} has no samples")
    return x, y


def check_arrays(arrays: Mapping[str, Any], *, source: str, classes: Optional[int] = None,
                 names: Optional[Mapping[str, str]] = None) -> FileData:
    """The checked data of ``arrays`` (the keys of :data:`ARRAYS`; images ``[n, h, w]`` get a
    channel axis). ``source`` names where they came from in errors (a file, or ``data=``);
    ``names`` how to call each array there (default: its key). ``classes``: ``task.classes``
    (None: one more than the largest label)."""
    names = {k: k for k in ARRAYS} | dict(names or {})
    unknown = [k for k in arrays if k not in ARRAYS]
    if unknown:
        raise DataError(f"{source}: unknown arrays {', '.join(brief(k) for k in unknown)}; allowed: "
                        f"{', '.join(ARRAYS)} (x_train and y_train required)")
    if arrays.get("x_train") is None or arrays.get("y_train") is None:
        lack = [names[k] for k in ("x_train", "y_train") if arrays.get(k) is None]
        raise DataError(f"{source}: no {' and no '.join(lack)}; the training split is required (and x_test/y_test, "
                        "x_val/y_val optional)")
    splits = {w: _pair(arrays, w, source=source, names=names) for w in ("train", "test", "val")}
    shape = splits["train"][0].shape[1:]
    for w in ("test", "val"):
        if splits[w] is not None and splits[w][0].shape[1:] != shape:
            raise DataError(f"{source}: {names[f'x_{w}']} samples have shape {list(splits[w][0].shape[1:])}, "
                            f"{names['x_train']} samples {list(shape)}; every split needs the same sample shape")
    labels = [(w, s[1]) for w, s in splits.items() if s is not None]
    classes = _classes(labels, classes, source=source, names=names)
    out: dict[str, Optional[np.ndarray]] = {}
    for w, split in splits.items():
        x, y = split if split is not None else (None, None)
        if x is not None and x.dtype.kind == "u" and x.dtype.itemsize > 1:  # torch computes little on uint16..64
            x = x.astype(np.int64 if x.dtype.itemsize < 8 else np.float64)
        out[f"x_{w}"] = _read_only(x[:, None] if x is not None and x.ndim == 3 else x)  # [n, h, w]: one channel
        out[f"y_{w}"] = y  # the labels are a copy already (astype), and nothing writes to them
    return FileData(**out, classes=classes)


def _read_only(a: Optional[np.ndarray]) -> Optional[np.ndarray]:
    """A read-only view of ``a`` (the task's in-place normalisation then works on a copy)."""
    if a is None:
        return None
    view = a.view()
    view.flags.writeable = False
    return view


def _classes(labels: list[tuple[str, np.ndarray]], classes: Optional[int], *, source: str,
             names: Mapping[str, str]) -> int:
    """The number of classes: ``classes`` (every label below it) or the largest label + 1."""
    if classes is not None:
        for w, y in labels:
            if y.max() >= classes:
                _out_of_range(y, source=source, name=names[f"y_{w}"], classes=classes)
        return classes
    top = max(int(y.max()) for _, y in labels)
    if top < 1:
        raise DataError(f"{source}: every label is {top}: a classification needs at least two classes (labels "
                        "0..K-1 with K >= 2)")
    distinct = len(np.unique(np.concatenate([y for _, y in labels])))
    if top + 1 > MAX_CLASSES or top + 1 > 2 * distinct + 10:
        raise DataError(f"{source}: labels run up to {top:,} but only {distinct:,} distinct values occur: labels are "
                        "class indices 0..K-1; map them to 0..K-1 (np.unique(y, return_inverse=True)), or set "
                        "task.classes if the classes are really that many")
    return top + 1


# ------------------------------------------------------------------------ the files
def _load_npz(path: Path) -> dict[str, np.ndarray]:
    """Every array of an .npz, loaded without pickle (an object array is refused). Each
    member's header is read first: a shape whose values the member cannot hold is refused
    before anything is allocated, and the file is closed on every path."""
    try:
        with open(path, "rb") as f:
            if f.read(6) == b"\x93NUMPY":
                raise ValueError("a single .npy array, not an .npz archive of named arrays")
            f.seek(0)
            with zipfile.ZipFile(f) as z:
                return {name.removesuffix(".npy"): _member(path, z, name) for name in z.namelist()}
    except DataError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError, NotImplementedError) as err:
        raise DataError(f"{path}: cannot read it as an .npz archive of arrays ({err}); write it with "
                        "np.savez(path, x_train=..., y_train=..., x_test=..., y_test=...)") from None


def _member(path: Path, z: zipfile.ZipFile, name: str) -> np.ndarray:
    """The array of member ``name``, its header checked against the member's size first."""
    fmt = np.lib.format
    key = name.removesuffix(".npy")
    with z.open(name) as member:
        try:
            version = fmt.read_magic(member)
        except ValueError:
            raise DataError(f"{path}: {brief(key)} is no NumPy array (a member that np.savez did not write)") from None
        if version not in ((1, 0), (2, 0)):
            raise DataError(f"{path}: {brief(key)} is a .npy of format version {version[0]}.{version[1]}; "
                            "versions 1.0 and 2.0 are read (np.savez writes them)")
        read = fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0
        shape, fortran, dtype = read(member)
        if dtype.hasobject:
            raise DataError(f"{path}: {key} holds Python objects (dtype object), which are never loaded (pickled "
                            "data can run code); save numeric arrays (x.astype(np.float32))")
        if any(n < 0 for n in shape):
            raise DataError(f"{path}: {key} claims shape {list(shape)}, with a negative length: the file is damaged; "
                            "write it again with np.savez")
        need = dtype.itemsize * int(np.prod(shape, dtype=object))
        have = z.getinfo(name).file_size - member.tell()
        if need > have:
            raise DataError(f"{path}: {key} claims shape {list(shape)} of {dtype} ({need:,} bytes) but its member "
                            f"holds {max(have, 0):,} bytes: the file is damaged or cut off; write it again with "
                            "np.savez")
        count = int(np.prod(shape, dtype=object))
        data = member.read(need)
        if len(data) < need:
            raise EOFError(f"{key} ends after {len(data):,} of {need:,} bytes")
        array = np.frombuffer(data, dtype=dtype, count=count) if count else np.empty(0, dtype)
        return array.reshape(shape[::-1]).transpose() if fortran else array.reshape(shape)


CSV_HINT = "samples must be numbers: encode text or categories as numbers first"


def _load_csv(path: Path, options) -> tuple[tuple[np.ndarray, np.ndarray], Optional[list[str]]]:
    """``(features, labels)`` of a CSV (the label is the last column) and its header (None: none)."""
    layout: dict = {}
    values, _ = read_table(path, options.encoding or "utf-8", header=options.header, layout=layout, stamp=False,
                           text_hint=CSV_HINT)
    if values.shape[1] < 2:
        raise DataError(f"{path}: one column; a classification CSV holds the features, then the integer label in "
                        "the last column")
    y = values[:, -1]
    whole = y == np.round(y)
    column = layout["names"][-1] if layout["names"] else f"column {values.shape[1]}"
    if not whole.all() or (y < 0).any():
        i = int(np.argmin(whole)) if not whole.all() else int(np.argmax(y < 0))
        why = "not an integer" if not whole[i] else "negative"
        raise DataError(f"{path}:{layout['lines'][i]}: the label ({column}, the last column) is {y[i]:g}, {why}; "
                        "labels are class indices 0..K-1")
    if y.max() > MAX_CLASSES ** 2:  # beyond any class index (and perhaps int64): named as written
        i = int(np.argmax(y))
        raise DataError(f"{path}:{layout['lines'][i]}: the label ({column}, the last column) is "
                        f"{brief(_cell(path, options.encoding or 'utf-8', layout['lines'][i]))}, no class index; "
                        "labels are class indices 0..K-1: map them to 0..K-1 first")
    if options.classes is not None and y.max() >= options.classes:
        i = int(np.argmax(y >= options.classes))
        raise DataError(f"{path}:{layout['lines'][i]}: the label ({column}, the last column) is {y[i]:g}, out of "
                        f"range: allowed 0..{options.classes - 1} (task.classes: {options.classes})")
    return (np.ascontiguousarray(values[:, :-1]), y.astype(np.int64)), layout["names"]


def _cell(path: Path, encoding: str, line: int) -> str:
    """The last cell of line ``line`` of the CSV ``path``, as written."""
    return read_text(path, encoding).splitlines()[line - 1].rsplit(",", 1)[-1].strip()


def _csv_data(path: Path, test: Optional[Path], options) -> FileData:
    """The training split of ``path`` and the test split of ``test`` (None: carved later)."""
    (x, y), names = _load_csv(path, options)
    arrays = {"x_train": x, "y_train": y}
    if test is not None:
        (xt, yt), test_names = _load_csv(test, options)
        if xt.shape[1] != x.shape[1]:
            raise DataError(f"{test}: {xt.shape[1] + 1} columns, the training file {path} has {x.shape[1] + 1}; the "
                            "test file needs the same columns")
        if names is not None and test_names is not None and names != test_names:
            j = next(j for j, (a, b) in enumerate(zip(names, test_names)) if a != b)
            raise DataError(f"{test}: column {j + 1} is {brief(test_names[j])}, in the training file {path} "
                            f"{brief(names[j])}; the test file needs the same columns in the same order")
        arrays |= {"x_test": xt, "y_test": yt}
    return check_arrays(arrays, source=str(path), classes=options.classes,
                        names={"x_train": "the features", "y_train": "the labels (last column)",
                               "x_test": f"the features of {test}", "y_test": f"the labels of {test}"})


FILE_WHAT = ("an .npz with arrays x_train, y_train (x_test, y_test, x_val, y_val optional) or a .csv with the "
             "features, then the integer label in the last column")

_LAST_FILE: dict = {}  # the last file read (data_spec, then the task, read it once)

#: arrays given to ``Trainer(data=...)``, checked, while that trainer builds its task
_GIVEN: contextvars.ContextVar[Optional[FileData]] = contextvars.ContextVar("dendrisim_given_data", default=None)


def load_file(options, data_root: Optional[str] = None) -> FileData:
    """The checked data of ``dataset: file``: the arrays given to ``Trainer(data=...)`` while
    it builds, else the file ``task.file`` names (a relative path under the data root when one
    is given, else the working folder; ``task.test_file`` with a CSV). ``folder`` is the data
    root that relative paths were read from (None: absolute paths, or data in memory)."""
    given = _GIVEN.get()
    if given is not None:  # checked by with_data
        return given
    root = data_root or options.data_root
    path = locate(options.file, "file", root, FILE_WHAT)
    test = locate(options.test_file, "test_file", root, "a .csv with the same columns") if options.test_file else None
    files = [p for p in (path, test) if p is not None]
    key = tuple((str(p.resolve()), p.stat().st_mtime_ns, p.stat().st_size) for p in files) + (
        options.encoding, options.header, options.classes)
    if key not in _LAST_FILE:
        if path.suffix.lower() == ".npz":
            data = check_arrays(_load_npz(path), source=str(path), classes=options.classes)
        else:
            data = _csv_data(path, test, options)
        _LAST_FILE.clear()
        _LAST_FILE[key] = data
    check_sizes(_LAST_FILE[key], options, source=str(path))
    relative = [options.file] + ([options.test_file] if options.test_file else [])
    folder = used_root(root) if root and any(not Path(p).expanduser().is_absolute() for p in relative) else None
    return dataclasses.replace(_LAST_FILE[key], folder=Path(folder) if folder else None)


def check_options(options, *, file: str) -> None:
    """ConfigErrors for the keys of ``dataset: file`` (and for them under another dataset)."""
    own = {"file": options.file, "test_file": options.test_file, "classes": options.classes,
           "header": options.header, "encoding": options.encoding}
    if options.dataset != "file":
        given = [k for k, v in own.items() if v is not None]
        if given:
            raise ConfigError(f"{brief(own[given[0]])} is read only with dataset: file (the data of your own "
                              f"file), not with dataset: {options.dataset}", file=file, path=f"task.{given[0]}")
        return
    for key in ("file", "test_file"):
        value = own[key]
        if value is not None and Path(value).suffix.lower() not in (".npz", ".csv"):
            raise ConfigError(f"{brief(value)} is neither .npz nor .csv; expected {FILE_WHAT}", file=file,
                              path=f"task.{key}")
    if options.test_file is not None and (Path(options.test_file).suffix.lower() != ".csv"
                                          or Path(options.file or "").suffix.lower() != ".csv"):
        raise ConfigError("a test file goes with a .csv task.file (a .csv with the same columns); an .npz carries "
                          "its test split as x_test and y_test", file=file, path="task.test_file")
    if options.encoding is not None:
        check_encoding(options.encoding, file=file)


def as_arrays(data: Union[Mapping[str, Any], OwnData]) -> dict[str, np.ndarray]:
    """``data=`` as a dict of NumPy arrays (tensors are copied to the CPU)."""
    if isinstance(data, OwnData):
        data = {f.name: getattr(data, f.name) for f in dataclasses.fields(data)}  # as given: asdict deep-copies
    if not isinstance(data, Mapping):
        raise DataError(f"data=: a {type(data).__name__}; give a dict with the keys {', '.join(ARRAYS)} (x_train "
                        "and y_train required) or a dendrisim.OwnData")
    out = {}
    for key, value in data.items():
        if value is None:
            continue
        if hasattr(value, "detach") and hasattr(value, "cpu"):  # a torch tensor
            value = _tensor_array(value, key=str(key))
        try:
            out[str(key)] = np.asarray(value)
        except ValueError as err:  # ragged lists
            raise DataError(f"data=: {key} is no rectangular array ({err})") from None
    return out


def _tensor_array(tensor, *, key: str) -> np.ndarray:
    """A torch tensor as a NumPy array on the CPU: sparse layouts made dense, float dtypes
    NumPy lacks (bfloat16, float8) widened to float32; a DataError naming ``key`` for a tensor
    that holds no values (device meta) or cannot be converted."""
    import torch

    tensor = tensor.detach()
    if tensor.device.type == "meta":
        raise DataError(f"data=: {key} is a tensor on the meta device, which has a shape but no values; give a "
                        "tensor that holds its data (on the CPU or a GPU)")
    try:
        if tensor.layout != torch.strided:
            tensor = tensor.to_dense()
        if tensor.dtype.is_floating_point and tensor.dtype not in (torch.float16, torch.float32, torch.float64):
            tensor = tensor.to(torch.float32)
        return tensor.cpu().resolve_conj().resolve_neg().numpy()
    except (TypeError, RuntimeError, ValueError) as err:
        raise DataError(f"data=: {key} is a tensor of dtype {str(tensor.dtype).removeprefix('torch.')} and layout "
                        f"{str(tensor.layout).removeprefix('torch.')} that NumPy cannot take ({_first_line(err)}); "
                        "give a dense tensor of numbers (x.to_dense().float())") from None


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0][:200] if text else type(err).__name__


def with_data(experiment, data) -> tuple[Any, FileData]:
    """The experiment to train on ``data`` (its task reads ``dataset: file`` from memory) and
    the checked data; a DataError naming the array for bad arrays."""
    task = experiment.task
    if task.type != "classification":
        raise DataError(f"data=: the model's task is {task.type}; arrays in memory go to a classification task "
                        "(task.type: classification)")
    named = [k for k in ("file", "test_file") if getattr(task, k) is not None]
    if named:
        raise DataError(f"data=: the model names a file (task.{named[0]}: {brief(getattr(task, named[0]))}) and "
                        "data= gives arrays; give one or the other")
    checked = check_arrays(as_arrays(data), source="data=", classes=task.classes)
    check_sizes(checked, task, source="data=")
    task = dataclasses.replace(task, dataset="file")
    return dataclasses.replace(experiment, task=task), checked


@contextlib.contextmanager
def given(data: Optional[FileData]) -> Iterator[None]:
    """While inside, ``dataset: file`` reads ``data`` instead of a file."""
    token = _GIVEN.set(data)
    try:
        yield
    finally:
        _GIVEN.reset(token)


def _carved(n: int, options, *, test: bool, val: bool) -> tuple[int, int, int]:
    """(training, test, validation) samples left of ``n`` training samples once the test
    split (``test``: carved) and the validation split (``val``: carved) are held out, as
    :func:`dendrisim.tasks.classification.split_indices` draws them."""
    n_test = int(round(n * options.test_fraction)) if test else 0
    n_val = int(round((n - n_test) * options.validation_fraction)) if val and options.validation_fraction > 0 else 0
    return n - n_test - n_val, n_test, n_val


def check_sizes(data: FileData, options, *, source: str) -> None:
    """DataError unless the training samples of ``data`` leave every split that is carved from
    them (test: ``task.test_fraction``; validation: ``task.validation_fraction``) at least
    one sample, and training at least one: the paragraph names the smallest count that does."""
    n = len(data.x_train)
    test, val = data.x_test is None, data.x_val is None and options.validation_fraction > 0
    needed = (True, test, val)  # the splits that must not come out empty

    def empty(m: int) -> list[str]:
        return [name for name, k, need in zip(("training", "test", "validation"),
                                              _carved(m, options, test=test, val=val), needed) if need and k == 0]

    if not empty(n):
        return
    least = next((m for m in range(n + 1, 10_000) if not empty(m)), None)
    carved = [f"test_fraction {options.test_fraction}"] if test else []
    carved += [f"validation_fraction {options.validation_fraction}"] if val else []
    fix = [f"give at least {least} training samples"] if least else []
    gone = empty(n)
    fix += ["give the test split yourself (x_test, y_test; a CSV's task.test_file)"] if "test" in gone else []
    fix += ["give a validation split (x_val, y_val) or set task.validation_fraction: 0 to train without "
            "one"] if "validation" in gone else []
    raise DataError(f"{source}: {n} training samples are too few: holding out {' and '.join(carved)} leaves the "
                    f"{' and '.join(gone)} split{'s' if len(gone) > 1 else ''} empty; {', or '.join(fix)}")


def spec(options, data_root: Optional[str] = None) -> tuple[tuple[int, ...], int, int]:
    """(sample shape, classes, training samples after the test and validation splits)."""
    data = load_file(options, data_root)
    return tuple(data.x_train.shape[1:]), data.classes, _carved(
        len(data.x_train), options, test=data.x_test is None, val=data.x_val is None)[0]
