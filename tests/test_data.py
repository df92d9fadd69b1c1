"""Dataset loading on small files the tests write themselves (nothing downloads)."""
import gzip
import struct

import numpy as np
import pytest
import torch

from dendrisim.errors import DataError
from dendrisim.tasks.classification import Classification, ClassificationOptions
from dendrisim.tasks.datasets import fashion_mnist, read_idx


def write_idx(path, array: np.ndarray, *, gz: bool = False, cut: int = 0):
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(struct.pack(">I", d) for d in array.shape)
    raw = header + array.astype(np.uint8).tobytes()
    raw = raw[: len(raw) - cut]
    (gzip.open if gz else open)(path, "wb").write(raw)


def tiny_mnist(folder, n_train=60, n_test=20, *, gz=False, seed=0):
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    ext = ".gz" if gz else ""
    write_idx(folder / f"train-images-idx3-ubyte{ext}", rng.integers(0, 256, (n_train, 28, 28)), gz=gz)
    write_idx(folder / f"train-labels-idx1-ubyte{ext}", np.arange(n_train) % 10, gz=gz)
    write_idx(folder / f"t10k-images-idx3-ubyte{ext}", rng.integers(0, 256, (n_test, 28, 28)), gz=gz)
    write_idx(folder / f"t10k-labels-idx1-ubyte{ext}", np.arange(n_test) % 10, gz=gz)


@pytest.mark.parametrize("gz", [False, True])
def test_idx_round_trip(tmp_path, gz):
    data = np.arange(2 * 3 * 4).reshape(2, 3, 4)
    write_idx(tmp_path / "x.idx", data, gz=gz)
    np.testing.assert_array_equal(read_idx(tmp_path / "x.idx"), data)


def test_truncated_idx_is_a_clear_error(tmp_path):
    write_idx(tmp_path / "x.idx", np.zeros((5, 4, 4)), cut=7)
    with pytest.raises(DataError, match=r"x.idx: truncated or padded IDX file: header says \(5, 4, 4\)"):
        read_idx(tmp_path / "x.idx")


def test_not_an_idx_file(tmp_path):
    (tmp_path / "x.idx").write_bytes(b"hello world")
    with pytest.raises(DataError, match=r"not an unsigned-byte IDX file"):
        read_idx(tmp_path / "x.idx")


def test_fashion_mnist_from_torchvision_layout(tmp_path):
    tiny_mnist(tmp_path / "FashionMNIST" / "raw", gz=True)
    data = fashion_mnist(tmp_path, False)
    assert data.x_train.shape == (60, 1, 28, 28) and data.x_test.shape == (20, 1, 28, 28)
    assert data.y_train.dtype == np.int64 and data.classes == 10


def test_labels_out_of_range(tmp_path):
    tiny_mnist(tmp_path)
    write_idx(tmp_path / "train-labels-idx1-ubyte", np.full(60, 12))
    with pytest.raises(DataError, match=r"train label 12 is out of range 0..9"):
        fashion_mnist(tmp_path, False)


def test_classification_task_normalises_once_on_the_device(tmp_path):
    tiny_mnist(tmp_path / "FashionMNIST" / "raw")
    opts = ClassificationOptions(type="classification", dataset="fashion_mnist", validation_fraction=0.25)
    task = Classification(opts, device=torch.device("cpu"), data_root=str(tmp_path))
    assert len(task.train) == 45 and len(task.val) == 15 and len(task.test) == 20
    assert task.input_shape == (1, 28, 28) and task.output_size == 10
    assert abs(float(task.train.x.mean())) < 1e-5 and abs(float(task.train.x.std()) - 1) < 1e-2
    assert task.train.x.dtype == torch.float32 and task.train.x.is_contiguous()
    # batches by index are views/gathers of the one device copy
    order = torch.randperm(len(task.train))
    batches = list(task.train.indexed_batches(8, order))
    assert all(torch.equal(x, task.train.x[ids]) for ids, x, _ in batches)
    seen = torch.cat([y for _, _, y in batches])
    assert sorted(seen.tolist()) == sorted(task.train.y.tolist())


def test_digits_split_is_fixed_and_disjoint():
    opts = ClassificationOptions(type="classification", dataset="digits")
    a = Classification(opts, device=torch.device("cpu"))
    b = Classification(opts, device=torch.device("cpu"))
    assert torch.equal(a.test.x, b.test.x)
    assert len(a.train) + len(a.val) + len(a.test) == 1797
    train_rows = {tuple(r) for r in a.train.x.flatten(1).tolist()}
    assert not any(tuple(r) in train_rows for r in a.test.x.flatten(1).tolist()[:50])


def test_corrupted_gzip_is_a_clear_error(tmp_path):
    good = tmp_path / "x.gz"
    write_idx(good, np.zeros((5, 4, 4)), gz=True)
    raw = bytearray(good.read_bytes())
    raw[20:40] = b"\xff" * 20
    good.write_bytes(bytes(raw))
    with pytest.raises(DataError, match=r"x.gz: cannot read the IDX file .*damaged"):
        read_idx(good)


def test_damaged_cifar_folder_is_a_clear_error(tmp_path):
    from dendrisim.tasks.datasets import cifar10

    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    for name in ["data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5", "test_batch",
                 "batches.meta"]:
        (folder / name).write_bytes(b"not a pickle")
    with pytest.raises(DataError, match=r"CIFAR10: not found or damaged under .*cifar-10-batches-py/ there"):
        cifar10(tmp_path, False)


def test_wrong_image_shape_fails_before_a_run_folder_exists(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parent.parent
    folder = tmp_path / "FashionMNIST" / "raw"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    write_idx(folder / "train-images-idx3-ubyte", rng.integers(0, 255, (40, 27, 28)))
    write_idx(folder / "train-labels-idx1-ubyte", np.arange(40) % 10)
    write_idx(folder / "t10k-images-idx3-ubyte", rng.integers(0, 255, (10, 27, 28)))
    write_idx(folder / "t10k-labels-idx1-ubyte", np.arange(10) % 10)
    out = tmp_path / "run"
    proc = subprocess.run([sys.executable, str(repo / "scripts" / "simulate.py"), str(repo / "models" / "dll_mlp_fmnist.yaml"),
                           "--data-root", str(tmp_path), "--out", str(out)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2
    assert "populations.input.shape: [1, 28, 28] does not match the data, whose samples have shape [1, 27, 28]" in proc.stderr
    assert not out.exists()


def _tiny_imagenet(root, wnids=("n01", "n02", "n03"), per_class=2, grey=None):
    from PIL import Image

    folder = root / "tiny-imagenet-200"
    rng = np.random.default_rng(0)
    (folder / "val" / "images").mkdir(parents=True)
    (folder / "wnids.txt").write_text("\n".join(wnids) + "\n")
    pixels = {}
    for k, w in enumerate(wnids):
        d = folder / "train" / w / "images"
        d.mkdir(parents=True)
        for i in range(per_class):
            arr = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
            Image.fromarray(arr).save(d / f"{w}_{i}.JPEG", quality=100)
    lines = []
    for i, w in enumerate(["n03", "n01", "n03", "n02"]):
        arr = np.full((64, 64), 40 * i, dtype=np.uint8) if grey == i else np.full((64, 64, 3), 40 * i, dtype=np.uint8)
        Image.fromarray(arr).save(folder / "val" / "images" / f"val_{i}.JPEG", quality=100)
        pixels[i] = 40 * i
        lines.append(f"val_{i}.JPEG\t{w}\t0\t0\t63\t63")
    (folder / "val" / "val_annotations.txt").write_text("\n".join(lines) + "\n")
    return folder


def test_tinyimagenet_reads_the_standard_folder_and_uses_val_as_test(tmp_path):
    from dendrisim.tasks.datasets import tinyimagenet

    folder = _tiny_imagenet(tmp_path, grey=2)
    data = tinyimagenet(tmp_path, False)
    assert data.classes == 3 and data.x_train.shape == (6, 3, 64, 64) and data.x_train.dtype == np.uint8
    assert data.y_train.tolist() == [0, 0, 1, 1, 2, 2]  # wnids.txt order
    assert data.y_test.tolist() == [2, 0, 2, 1] and data.x_test.shape == (4, 3, 64, 64)
    assert abs(int(data.x_test[2].mean()) - 80) <= 2  # a greyscale JPEG becomes RGB
    assert (folder / "dendrisim-cache.npz").is_file()
    again = tinyimagenet(tmp_path, False)  # from the cache, identical
    np.testing.assert_array_equal(again.x_train, data.x_train)
    np.testing.assert_array_equal(again.y_test, data.y_test)
    task = Classification(ClassificationOptions(type="classification", dataset="tinyimagenet", validation_fraction=0),
                          device=torch.device("cpu"), data_root=str(tmp_path))
    assert task.input_shape == (3, 64, 64) and task.output_size == 3


def test_tinyimagenet_missing_or_bad_files_say_what_is_expected(tmp_path):
    from dendrisim.tasks.datasets import tinyimagenet

    with pytest.raises(DataError, match=r"wnids.txt not found .*tiny-imagenet-200.zip"):
        tinyimagenet(tmp_path, False)
    folder = _tiny_imagenet(tmp_path)
    (folder / "val" / "val_annotations.txt").write_text("val_0.JPEG\tn99\t0\t0\t1\t1\n")
    with pytest.raises(DataError, match=r"val_annotations.txt:1: expected 'FILE<TAB>WNID...' with a WNID of wnids.txt"):
        tinyimagenet(tmp_path, False)


# ------------------------------------------------ a given data root is the only place (issue 20, item 11)
def test_a_data_root_without_the_dataset_is_an_error_naming_the_folders_never_a_fallback(tmp_path, monkeypatch):
    """Even where Debian's Fashion-MNIST folder exists, a given root that lacks the files is
    an error listing exactly the folders under that root, none elsewhere."""
    from dendrisim.tasks import datasets

    elsewhere = tmp_path / "debian"
    tiny_mnist(elsewhere)
    monkeypatch.setattr(datasets, "DEBIAN_FASHION_MNIST", elsewhere)
    monkeypatch.delenv("DENDRISIM_DATA", raising=False)
    empty = tmp_path / "nonexistent"
    opts = ClassificationOptions(type="classification", dataset="fashion_mnist")
    for given in ({"data_root": str(empty)}, {}):
        kwargs = {} if given else {"data_root": str(empty)}
        options = ClassificationOptions(type="classification", dataset="fashion_mnist", **given)
        with pytest.raises(DataError) as info:
            Classification(options, device=torch.device("cpu"), **kwargs)
        msg = str(info.value)
        assert f"looked in {empty}/FashionMNIST/raw, {empty}/fashionmnist, {empty}." in msg
        assert str(elsewhere) not in msg
    monkeypatch.setenv("DENDRISIM_DATA", str(empty))
    with pytest.raises(DataError, match="looked in " + str(empty)):
        Classification(opts, device=torch.device("cpu"))
    # no root at all: ./data, then the system folder, which is the folder recorded as used
    monkeypatch.delenv("DENDRISIM_DATA")
    monkeypatch.chdir(tmp_path)
    task = Classification(opts, device=torch.device("cpu"))
    assert task.data_root == str(elsewhere.resolve()) and len(task.test) == 20


def test_the_folder_read_from_is_what_the_task_reports(tmp_path, monkeypatch):
    monkeypatch.delenv("DENDRISIM_DATA", raising=False)
    tiny_mnist(tmp_path / "FashionMNIST" / "raw")
    opts = ClassificationOptions(type="classification", dataset="fashion_mnist")
    task = Classification(opts, device=torch.device("cpu"), data_root=str(tmp_path))
    assert task.data_root == str((tmp_path / "FashionMNIST" / "raw").resolve())
    digits = Classification(ClassificationOptions(type="classification", dataset="digits"), device=torch.device("cpu"),
                            data_root=str(tmp_path))
    assert digits.data_root is None  # bundled with scikit-learn


def test_task_files_are_looked_for_under_a_given_root_only(tmp_path, monkeypatch):
    from dendrisim.tasks.sequences import CharLanguageModel, CharLMOptions

    (tmp_path / "book.txt").write_text("abcdefgh " * 400)
    monkeypatch.chdir(tmp_path)
    opts = CharLMOptions(type="charlm", text="book.txt", sequence_length=10)
    assert CharLanguageModel(opts, device=torch.device("cpu")).data_root is None  # from the working directory
    root = tmp_path / "nowhere"
    with pytest.raises(DataError, match=f"task.text: {root}/book.txt not found \\(the data root {root} is not a "
                                        "folder\\)"):
        CharLanguageModel(opts, device=torch.device("cpu"), data_root=str(root))
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "book.txt").write_text("xyz " * 400)
    task = CharLanguageModel(opts, device=torch.device("cpu"), data_root=str(tmp_path / "r"))
    assert task.chars == " xyz" and task.data_root == str((tmp_path / "r").resolve())


def test_run_json_records_the_folder_actually_read(tmp_path, monkeypatch, capsys):
    """run.json keeps the root as given (what --resume reuses) and the folder the data came from."""
    import json

    from dendrisim.cli import main

    monkeypatch.delenv("DENDRISIM_DATA", raising=False)
    tiny_mnist(tmp_path / "data" / "FashionMNIST" / "raw")
    out = tmp_path / "run"
    code = main(["dll_mlp_fmnist", "--dry-run", "--out", str(out),
                 "--data-root", str(tmp_path / "data"), "--set", "recording.enabled=false"])
    assert code == 0, capsys.readouterr().err
    saved = json.loads((out / "run.json").read_text())
    assert saved["data_root"] == str(tmp_path / "data")
    assert saved["data_folder"] == str((tmp_path / "data" / "FashionMNIST" / "raw").resolve())
