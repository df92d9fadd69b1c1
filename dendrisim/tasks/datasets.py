"""Image datasets read from local files into numpy arrays ``[N, C, H, W]`` and labels.

Nothing downloads unless the model file says ``download: true``. Each loader says where
it looked and how to get the files when they are missing.
"""
from __future__ import annotations

import gzip
import math
import os
import pickle
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from ..errors import DataError, brief
from ..paths import check_path
from ..registry import Registry


@dataclass
class ImageData:
    x_train: np.ndarray  # [N, C, H, W], uint8 or float
    y_train: np.ndarray  # [N] int
    x_test: Optional[np.ndarray]
    y_test: Optional[np.ndarray]
    classes: int
    #: the folder the files were read from (None: bundled with a library, as digits)
    folder: Optional[Path] = None


#: name -> loader ``(root, download, *, explicit=True) -> ImageData``; ``explicit`` is False
#: when no root was given (then a loader may also search the system's data folders)
DATASETS: Registry[Callable[..., ImageData]] = Registry("dataset")

from ..datapaths import DEBIAN_FASHION_MNIST  # noqa: E402  (re-exported: the loaders search it)


#: the most dimensions an IDX file may name (labels have 1, images 3)
MAX_IDX_DIMS = 8
#: the most a deflate stream expands (1032:1), so the most bytes a gzipped IDX file of a given size can hold
_GZIP_RATIO = 1032


def read_idx(path: Path) -> np.ndarray:
    """Read an IDX file (MNIST format), gzipped or not, checking its header against its size
    before reading the body (so a header whose dimensions multiply past the file's size, or a
    gzip bomb, is refused before anything is allocated)."""
    try:
        size = path.stat().st_size
        with open(path, "rb") as fh:
            gz = fh.read(2) == b"\x1f\x8b"  # gzip, whatever the file is called
        with (gzip.open if gz else open)(path, "rb") as fh:
            head = fh.read(4)
            if len(head) < 4 or head[0] != 0 or head[1] != 0 or head[2] != 0x08:
                raise DataError(f"{path}: not an unsigned-byte IDX file (bad magic number {head.hex()})")
            ndim = head[3]
            if not 1 <= ndim <= MAX_IDX_DIMS:
                raise DataError(f"{path}: not a dataset's IDX file: its header names {ndim} dimensions (byte 4); "
                                f"labels have 1, images 3 (at most {MAX_IDX_DIMS} are read)")
            raw_dims = fh.read(4 * ndim)
            if len(raw_dims) < 4 * ndim:
                raise DataError(f"{path}: truncated IDX file: the header names {ndim} dimensions, the file ends "
                                f"after {len(raw_dims) // 4}; fetch it again")
            dims = tuple(int.from_bytes(raw_dims[4 * i: 4 * i + 4], "big") for i in range(ndim))
            header, body = 4 + 4 * ndim, math.prod(dims)
            if body > size * (_GZIP_RATIO if gz else 1):
                raise DataError(f"{path}: cannot read the IDX file (its header's dimensions {dims} multiply to "
                                f"{body:,} bytes, more than a {'gzipped ' if gz else ''}file of {size:,} bytes can "
                                "hold); the header is damaged, fetch the file again")
            raw = fh.read(body + 1)
    except (OSError, EOFError, zlib.error) as err:
        raise DataError(f"{path}: cannot read the IDX file ({err}); the file is damaged, fetch it again") from None
    if len(raw) != body:
        has = f"{header + len(raw):,} bytes" if len(raw) < body else f"more than {header + body:,} bytes"
        raise DataError(f"{path}: truncated or padded IDX file: header says {dims} ({header + body} bytes), "
                        f"file has {has}; fetch it again")
    return np.frombuffer(raw, dtype=np.uint8).reshape(dims)


def _find_idx(folders: list[Path], stem: str) -> Optional[Path]:
    for folder in folders:
        for name in (stem, stem + ".gz"):
            if (folder / name).is_file():
                return folder / name
    return None


def _mnist_like(root: Path, download: bool, *, torchvision_name: str, extra: list[Path], how: str) -> ImageData:
    """The four IDX files from ``root`` (torchvision's ``NAME/raw``, ``name/`` or the root
    itself), then the ``extra`` folders: only those, never another folder."""
    folders = [root / torchvision_name / "raw", root / torchvision_name.lower(), root, *extra]
    stems = ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]
    if download and _find_idx(folders, stems[0]) is None:
        import torchvision

        getattr(torchvision.datasets, torchvision_name)(str(root), train=True, download=True)
    files = [_find_idx(folders, s) for s in stems]
    if any(f is None for f in files):
        missing = [s for s, f in zip(stems, files) if f is None]
        looked = ", ".join(str(f) for f in folders)
        raise DataError(f"{torchvision_name}: missing {', '.join(missing)} (with or without .gz); looked in {looked}. {how}")
    xtr, ytr, xte, yte = (read_idx(f) for f in files)
    for images, labels, which in ((xtr, ytr, "train"), (xte, yte, "test")):
        if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
            raise DataError(f"{torchvision_name}: {which} images {images.shape} and labels {labels.shape} do not match")
        if labels.size and labels.max() >= 10:
            raise DataError(f"{torchvision_name}: {which} label {int(labels.max())} is out of range 0..9")
    return ImageData(xtr[:, None], ytr.astype(np.int64), xte[:, None], yte.astype(np.int64), classes=10,
                     folder=files[0].parent)


_DOWNLOAD_HINT = "Put the four IDX files there, or set task.download: true on a machine with network access."


@DATASETS.register("mnist")
def mnist(root: Path, download: bool, *, explicit: bool = True) -> ImageData:
    return _mnist_like(root, download, torchvision_name="MNIST", extra=[], how=_DOWNLOAD_HINT)


@DATASETS.register("fashion_mnist")
def fashion_mnist(root: Path, download: bool, *, explicit: bool = True) -> ImageData:
    """Fashion-MNIST from ``root``; Debian's package folder is searched only when no root
    was given (``explicit`` False): a given root that lacks the files is an error."""
    extra = [] if explicit else [DEBIAN_FASHION_MNIST]
    return _mnist_like(root, download, torchvision_name="FashionMNIST", extra=extra,
                       how="On Debian: apt-get install dataset-fashion-mnist (found only when no data root is "
                           "given). " + _DOWNLOAD_HINT)


@DATASETS.register("digits")
def digits(root: Path, download: bool, *, explicit: bool = True) -> ImageData:
    """scikit-learn's bundled 8×8 handwritten digits (1797 images, values 0..16)."""
    from sklearn.datasets import load_digits

    d = load_digits()
    return ImageData(d.images[:, None].astype(np.float32), d.target.astype(np.int64), None, None, classes=10)


def _torchvision(cls_name: str, root: Path, download: bool, *, split_kw: str, how: str, classes: int) -> ImageData:
    import torchvision

    cls = getattr(torchvision.datasets, cls_name)
    parts = []
    for train in (True, False):
        kw = {"train": train} if split_kw == "train" else {"split": "train" if train else "test"}
        try:
            ds = cls(str(root), download=download, **kw)
        except (RuntimeError, OSError, EOFError, ValueError, pickle.UnpicklingError) as err:
            said = str(err).replace("You can use download=True to download it", "task.download: true lets torchvision "
                                    "fetch it where there is network access")  # torchvision's words, in our keys
            raise DataError(f"{cls_name}: not found or damaged under {root} ({said}). {how}") from None
        x = np.asarray(ds.data)
        if x.ndim == 4 and x.shape[-1] == 3:  # CIFAR stores NHWC
            x = x.transpose(0, 3, 1, 2)
        y = np.asarray(getattr(ds, "targets", None) if hasattr(ds, "targets") else ds.labels, dtype=np.int64)
        parts += [np.ascontiguousarray(x), y]
    return ImageData(*parts, classes=classes, folder=root)


@DATASETS.register("cifar10")
def cifar10(root: Path, download: bool, *, explicit: bool = True) -> ImageData:
    return _torchvision("CIFAR10", root, download, split_kw="train", classes=10,
                        how="Expected cifar-10-batches-py/ there (torchvision layout); or set task.download: true.")


@DATASETS.register("cifar100")
def cifar100(root: Path, download: bool, *, explicit: bool = True) -> ImageData:
    return _torchvision("CIFAR100", root, download, split_kw="train", classes=100,
                        how="Expected cifar-100-python/ there (torchvision layout); or set task.download: true.")


@DATASETS.register("svhn")
def svhn(root: Path, download: bool, *, explicit: bool = True) -> ImageData:
    return _torchvision("SVHN", root, download, split_kw="split", classes=10,
                        how="Expected train_32x32.mat and test_32x32.mat there; or set task.download: true.")


TINY_IMAGENET_HOW = ("Expected the tiny-imagenet-200 folder as unzipped from "
                     "http://cs231n.stanford.edu/tiny-imagenet-200.zip (wnids.txt, train/WNID/images/*.JPEG, "
                     "val/images/*.JPEG, val/val_annotations.txt); nothing downloads it automatically.")


@DATASETS.register("tinyimagenet")
def tinyimagenet(root: Path, download: bool, *, explicit: bool = True) -> ImageData:
    """TinyImageNet (64×64 RGB, 200 classes, 500 training images per class) from the
    standard ``tiny-imagenet-200`` folder; its labelled validation set serves as the
    test set (the official test images have no labels). Class indices follow
    ``wnids.txt``. The decoded arrays are cached next to the images
    (``dendrisim-cache.npz``) so later runs skip the JPEG decoding."""
    folder = root / "tiny-imagenet-200" if (root / "tiny-imagenet-200").is_dir() else root
    wnids_file = folder / "wnids.txt"
    if not wnids_file.is_file():
        raise DataError(f"tinyimagenet: {wnids_file} not found (looked in {root}). {TINY_IMAGENET_HOW}")
    wnids = _read_wnids(wnids_file)
    cache = folder / "dendrisim-cache.npz"
    if cache.is_file() and cache.stat().st_mtime >= wnids_file.stat().st_mtime:
        cached = _read_cache(cache, len(wnids))
        if cached is not None:  # a damaged cache is decoded again and rewritten below
            return ImageData(*cached, classes=len(wnids), folder=folder)
    index = {w: i for i, w in enumerate(wnids)}
    train = []
    for w in wnids:
        images = sorted((folder / "train" / w / "images").glob("*.JPEG"))
        if not images:
            raise DataError(f"tinyimagenet: no training images in {folder / 'train' / w / 'images'}. {TINY_IMAGENET_HOW}")
        train += [(p, index[w]) for p in images]
    annotations = folder / "val" / "val_annotations.txt"
    if not annotations.is_file():
        raise DataError(f"tinyimagenet: {annotations} not found. {TINY_IMAGENET_HOW}")
    val = []
    for n, line in enumerate(_text(annotations).splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split("\t")
        if len(parts) < 2 or parts[1] not in index or not _plain_name(parts[0]):
            raise DataError(f"tinyimagenet: {annotations}:{n}: expected 'FILE<TAB>WNID...' with a WNID of wnids.txt "
                            f"and FILE a name in val/images, got {line[:80]!r}")
        val.append((folder / "val" / "images" / parts[0], index[parts[1]]))
    if not val:
        raise DataError(f"tinyimagenet: {annotations} lists no validation image (every line is blank); expected "
                        f"'FILE<TAB>WNID...' lines. {TINY_IMAGENET_HOW}")
    x_tr, y_tr = _read_images(train)
    x_te, y_te = _read_images(val)
    if x_te.shape[1:] != x_tr.shape[1:]:
        raise DataError(f"tinyimagenet: the validation image {val[0][0]} is {x_te.shape[3]}x{x_te.shape[2]}, the "
                        f"training images (e.g. {train[0][0]}) {x_tr.shape[3]}x{x_tr.shape[2]}; every image of the "
                        "dataset must have one size (TinyImageNet's are 64x64)")
    try:
        np.savez(cache, x_train=x_tr, y_train=y_tr, x_test=x_te, y_test=y_te)
    except OSError:
        pass  # a read-only data folder: decode again next time
    return ImageData(x_tr, y_tr, x_te, y_te, classes=len(wnids), folder=folder)


def _text(path: Path) -> str:
    """A small text file of the dataset (ASCII names), as text; a DataError naming the file
    and the first byte that is not UTF-8 otherwise."""
    try:
        return path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as err:
        raise DataError(f"tinyimagenet: {path} is not text: byte {err.object[err.start]:#04x} at offset "
                        f"{err.start:,} is not UTF-8; the file is damaged or not the dataset's. "
                        f"{TINY_IMAGENET_HOW}") from None
    except OSError as err:
        raise DataError(f"tinyimagenet: cannot read {path} ({err.strerror or err})") from None


def _plain_name(name: str) -> bool:
    """Whether ``name`` names an entry of a folder (never another folder: no separators, no
    ``..``, nothing absolute)."""
    return (name not in ("", ".", "..") and "/" not in name and "\\" not in name and name.isprintable()
            and len(name) <= 255)


def _read_wnids(path: Path) -> list[str]:
    """The class names of ``wnids.txt``, one a line: each a plain folder name (WordNet ids such
    as n01443537), no two alike."""
    wnids = [w.strip() for w in _text(path).split() if w.strip()]
    if not wnids:
        raise DataError(f"tinyimagenet: {path} names no class. {TINY_IMAGENET_HOW}")
    seen: set[str] = set()
    for n, w in enumerate(wnids, 1):
        if not _plain_name(w):
            raise DataError(f"tinyimagenet: {path}: class {n} is {brief(w)}, not a folder name (WordNet ids such "
                            "as n01443537 name the folders under train/)")
        if w in seen:
            raise DataError(f"tinyimagenet: {path}: class {brief(w)} is listed twice")
        seen.add(w)
    return wnids


def _read_cache(cache: Path, classes: int) -> Optional[tuple[np.ndarray, ...]]:
    """The decoded arrays of ``dendrisim-cache.npz`` when the file holds what
    :func:`tinyimagenet` writes (uint8 ``[N, 3, H, W]`` images of one size, labels in range);
    None for a damaged or foreign cache, which is then decoded again. Never unpickles."""
    import zipfile

    names = ("x_train", "y_train", "x_test", "y_test")
    try:
        with np.load(cache, allow_pickle=False) as z:
            arrays = tuple(z[n] for n in names)
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, zlib.error):
        return None
    x_tr, y_tr, x_te, y_te = arrays
    for x, y in ((x_tr, y_tr), (x_te, y_te)):
        if (x.dtype != np.uint8 or x.ndim != 4 or x.shape[1] != 3 or x.shape[1:] != x_tr.shape[1:] or y.ndim != 1
                or y.dtype.kind not in "iu" or len(x) != len(y) or not len(y) or y.min() < 0 or y.max() >= classes):
            return None
    return x_tr, y_tr.astype(np.int64), x_te, y_te.astype(np.int64)


#: the largest image a TinyImageNet folder may hold (its images are 64x64); larger ones are refused
#: before they are decoded, so a decompression bomb costs nothing
MAX_IMAGE_PIXELS = 4096 * 4096


def _read_images(items: list[tuple[Path, int]]) -> tuple[np.ndarray, np.ndarray]:
    """Decode JPEGs to ``[N, 3, H, W]`` uint8 (greyscale ones are converted to RGB). An image's
    size is checked from its header, before it is decoded."""
    import warnings

    from PIL import Image

    first = None
    out = None
    for k, (path, _) in enumerate(items):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                with Image.open(path) as im:
                    w, h = im.size
                    if w * h > MAX_IMAGE_PIXELS:
                        raise DataError(f"tinyimagenet: {path} claims {w}x{h} pixels, more than the "
                                        f"{MAX_IMAGE_PIXELS:,} an image of the dataset may have (its images are "
                                        "64x64); it was not decoded. Remove the file or replace it")
                    if first is not None and (h, w) != first[:2]:
                        raise DataError(f"tinyimagenet: {path} is {w}x{h}, the others {first[1]}x{first[0]}")
                    arr = np.asarray(im.convert("RGB"))
        except DataError:
            raise
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
            raise DataError(f"tinyimagenet: {path} is refused as a decompression bomb ({err}); it was not decoded. "
                            "Remove the file or replace it") from None
        except Exception as err:  # noqa: BLE001 - PIL's decoders fail in many ways on a damaged file
            raise DataError(f"tinyimagenet: cannot read {path} ({type(err).__name__}: {brief(str(err))}); the "
                            "image is damaged or not an image: remove or replace it") from None
        if out is None:
            first = arr.shape
            out = np.empty((len(items), 3, *arr.shape[:2]), dtype=np.uint8)
        elif arr.shape != first:
            raise DataError(f"tinyimagenet: {path} is {arr.shape[1]}x{arr.shape[0]}, the others {first[1]}x{first[0]}")
        out[k] = arr.transpose(2, 0, 1)
    return out, np.array([label for _, label in items], dtype=np.int64)


#: sample shape, number of classes and training-set size of each dataset, known without reading it
SPECS: dict[str, tuple[tuple[int, ...], int, int]] = {
    "digits": ((1, 8, 8), 10, 1438),
    "mnist": ((1, 28, 28), 10, 60000),
    "fashion_mnist": ((1, 28, 28), 10, 60000),
    "cifar10": ((3, 32, 32), 10, 50000),
    "cifar100": ((3, 32, 32), 100, 50000),
    "svhn": ((3, 32, 32), 10, 73257),
    "tinyimagenet": ((3, 64, 64), 200, 100000),
}


def default_root() -> Path:
    return Path(os.environ.get("DENDRISIM_DATA", "data"))


def given_root(*roots: Optional[str]) -> Optional[str]:
    """The first data root given (``--data-root``, ``task.data_root``, ``$DENDRISIM_DATA``), or None."""
    for root in (*roots, os.environ.get("DENDRISIM_DATA")):
        if root:
            return str(root)
    return None


def load_dataset(name: str, root: Optional[str], download: bool) -> ImageData:
    """Dataset ``name`` from ``root`` exactly (an error naming the folders looked in when it
    lacks the files), or, when ``root`` is None, from ``./data`` and the system's folders."""
    loader = DATASETS.get(name, path="task.dataset")
    if root:  # a root too long, or a symlink loop, is named as such (not "missing files")
        check_path(root, label="the data root (--data-root, task.data_root or $DENDRISIM_DATA)")
    data = loader(Path(root) if root else Path("data"), download, explicit=root is not None)
    check_sizes(name, data)
    return data


def check_sizes(name: str, data: ImageData) -> None:
    """A DataError when the test images differ in shape from the training images (a network
    reads one sample shape): named by dataset, folder and both shapes."""
    if data.x_test is None or data.x_train.shape[1:] == data.x_test.shape[1:]:
        return
    where = f" in {data.folder}" if data.folder is not None else ""
    raise DataError(f"{name}: the test images{where} have shape {list(data.x_test.shape[1:])} ([channels, height, "
                    f"width]), the training images {list(data.x_train.shape[1:])}; a network reads one sample shape, "
                    "so both splits must have it: replace the files of the split that differs")
