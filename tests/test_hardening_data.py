"""Hostile data files and config values (issue 29, classes 1, 8 and 9): each ends in a
one-paragraph error naming the file, the field and the problem (exit 2 through the CLI,
no traceback), and no data file runs code. Every file is made here, in tmp_path."""
import copy
import json
import os
import pickle
import re
import struct
import zlib

import numpy as np
import pytest
import yaml

from conftest import MLP, model
from dendrisim.errors import ConfigError, DataError
from dendrisim.tasks.datasets import read_idx, tinyimagenet

TEXTCNN = {
    "name": "tiny_textcnn",
    "task": {"type": "sentences", "batch_size": 8, "max_length": 6, "validation_fraction": 0},
    "populations": {"input": {"type": "input", "size": "auto"}, "emb": {"activation": "linear"},
                    "c": {"channels": 2, "activation": "relu"}, "p": {"activation": "linear"},
                    "out": {"size": "auto", "activation": "softmax"}},
    "projections": [{"from": "input", "to": "emb", "connectivity": "embedding"},
                    {"from": "emb", "to": "c", "connectivity": "conv2d", "kernel": [2, "full"]},
                    {"from": "c", "to": "p", "connectivity": "maxpool", "kernel": "global"},
                    {"from": "p", "to": "out"}],
    "plasticity": {"rule": "dll"}, "optimizer": {"type": "adam", "lr": 0.01},
    "training": {"epochs": 1, "seed": 0}, "recording": {"enabled": False},
}
WORDS = ["good", "bad", "film", "the", "was"]


def cli(argv, capsys):
    """``dendrisim ARGV``: the exit status and stderr (asserting no traceback was printed)."""
    from dendrisim.commands import main

    code = main(argv)
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return code, " ".join(err.split())


def sentence_model(tmp_path, vectors, **task):
    (tmp_path / "train.txt").write_text("".join(f"{i % 2} the film was {'good' if i % 2 else 'bad'}\n"
                                                for i in range(40)))
    m = copy.deepcopy(TEXTCNN)
    m["task"].update(train_file=str(tmp_path / "train.txt"), vectors=str(vectors), **task)
    path = tmp_path / "model.yaml"
    path.write_text(yaml.safe_dump(m))
    return path


# ------------------------------------------------------------------ class 1: code from files
class Payload:
    """Unpickling this makes a folder: the proof that a pickle ran code."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return os.mkdir, (self.marker,)


@pytest.mark.parametrize("command", ["check", "run"])
def test_a_pickled_vectors_file_is_refused_unless_trusted_by_name(tmp_path, capsys, command):
    marker = tmp_path / "pwned"
    kv = tmp_path / "vectors.kv"
    kv.write_bytes(pickle.dumps(Payload(marker)))
    path = sentence_model(tmp_path, kv)
    extra = ["--out", str(tmp_path / "run")] if command == "run" else []
    code, err = cli([command, str(path), *extra], capsys)
    assert code == 2 and not marker.exists()
    assert f"{kv}: a gensim .kv file is a Python pickle" in err
    assert "set task.trust_pickle: true" in err and "--set task.trust_pickle=true" in err
    assert "GloVe text, word2vec text (.txt) or binary (.bin)" in err


def test_a_trusted_kv_file_is_read(tmp_path, capsys):
    from gensim.models import KeyedVectors

    kv = KeyedVectors(4)
    kv.add_vectors(WORDS, np.random.default_rng(0).normal(size=(5, 4)).astype(np.float32))
    kv.save(str(tmp_path / "vectors.kv"))
    path = sentence_model(tmp_path, tmp_path / "vectors.kv", trust_pickle=True)
    code, err = cli(["check", str(path)], capsys)
    assert code == 0, err


# ------------------------------------------------------------------ class 8: word-vector headers
@pytest.mark.parametrize("name, content, match", [
    ("words.txt", b"1000000000000 4\nthe 1 2 3 4\n", r"claims 1,000,000,000,000 words of 4 dimensions, which need at "
                                                     r"least 8,000,000,000,000 bytes; the file has 28 bytes"),
    ("dims.txt", b"2 1000000000000\nthe 1 2 3 4\n", r"claims 2 words of 1,000,000,000,000 dimensions"),
    ("words.bin", b"1000000000000 4\nthe " + bytes(16), r"claims 1,000,000,000,000 words of 4 dimensions, which need "
                                                          r"at least 16,000,000,000,000 bytes"),
    ("none.txt", b"0 4\n", r"claims 0 words of 4 dimensions, which is no vector"),
    ("nohead.bin", bytes(64), r"a word2vec binary file starts with a 'count dim' line"),
])
def test_word_vector_headers_are_bounded_by_the_file_size(tmp_path, capsys, name, content, match):
    (tmp_path / name).write_bytes(content)
    path = sentence_model(tmp_path, tmp_path / name)
    for command in ("check", "run"):
        code, err = cli([command, str(path), *(["--out", str(tmp_path / "run")] if command == "run" else [])], capsys)
        assert code == 2 and str(tmp_path / name) in err
        assert re.search(match, err), err


def test_non_finite_word_vectors_name_the_word(tmp_path, capsys):
    (tmp_path / "v.txt").write_text("the 1 2 3\nfilm 1 1e300 2\n")
    path = sentence_model(tmp_path, tmp_path / "v.txt")
    code, err = cli(["run", str(path), "--out", str(tmp_path / "run")], capsys)
    assert code == 2 and "v.txt: the vector of 'film' (word 2 of the file) holds NaN, Inf or a value beyond" in err


# ------------------------------------------------------------------ class 8: IDX headers
def idx(path, dims, body=b"", ndim=None):
    path.write_bytes(bytes([0, 0, 8, len(dims) if ndim is None else ndim])
                     + b"".join(struct.pack(">I", d) for d in dims) + body)
    return path


def test_idx_dimensions_that_overflow_are_refused_before_reading(tmp_path):
    # four 2^32-1 dimensions wrap around in int64; the product is checked exactly, against the size
    path = idx(tmp_path / "x.idx", (2**32 - 1,) * 4, bytes(8))
    with pytest.raises(DataError, match=r"x.idx: cannot read the IDX file \(its header's dimensions \(4294967295, "
                                         r".* bytes, more than a file of 28 bytes can hold\); the header is damaged"):
        read_idx(path)
    import gzip

    gz = tmp_path / "x.gz"
    gz.write_bytes(gzip.compress(bytes([0, 0, 8, 3]) + struct.pack(">III", 10**6, 1000, 1000)))
    with pytest.raises(DataError, match=r"more than a gzipped file of \d+ bytes can hold"):
        read_idx(gz)


def test_idx_files_with_absurd_dimension_counts_are_refused(tmp_path):
    with pytest.raises(DataError, match=r"x.idx: not a dataset's IDX file: its header names 255 dimensions"):
        read_idx(idx(tmp_path / "x.idx", (1,) * 255, b"\x05"))
    with pytest.raises(DataError, match=r"y.idx: truncated IDX file: the header names 3 dimensions, the file ends "
                                         r"after 1"):
        read_idx(idx(tmp_path / "y.idx", (5,), ndim=3))


def mnist_folder(root, test_shape=(28, 28)):
    rng = np.random.default_rng(0)
    root.mkdir(parents=True, exist_ok=True)
    for name, dims in (("train-images-idx3-ubyte", (40, 28, 28)), ("t10k-images-idx3-ubyte", (10, *test_shape))):
        idx(root / name, dims, rng.integers(0, 256, int(np.prod(dims)), dtype=np.uint8).tobytes())
    idx(root / "train-labels-idx1-ubyte", (40,), bytes(np.arange(40, dtype=np.uint8) % 10))
    idx(root / "t10k-labels-idx1-ubyte", (10,), bytes(np.arange(10, dtype=np.uint8)))


def test_train_and_test_images_of_different_sizes(tmp_path, capsys):
    mnist_folder(tmp_path / "data", test_shape=(14, 14))
    code, err = cli(["run", "dll_mlp_fmnist", "--data-root", str(tmp_path / "data"), "--out", str(tmp_path / "run"),
                     "--dry-run"], capsys)
    assert code == 2
    assert (f"fashion_mnist: the test images in {tmp_path / 'data'} have shape [1, 14, 14] ([channels, height, "
            "width]), the training images [1, 28, 28]") in err


# ------------------------------------------------------------------ class 8: TinyImageNet folders
def tiny_imagenet(root, wnids=("n01", "n02"), size=(8, 8), val_size=None):
    from PIL import Image

    folder = root / "tiny-imagenet-200"
    (folder / "val" / "images").mkdir(parents=True)
    (folder / "wnids.txt").write_text("\n".join(wnids) + "\n")
    for w in wnids:
        (folder / "train" / w / "images").mkdir(parents=True)
        for i in range(2):
            Image.new("RGB", size, (40 * i, 0, 0)).save(folder / "train" / w / "images" / f"{w}_{i}.JPEG")
    Image.new("RGB", val_size or size).save(folder / "val" / "images" / "val_0.JPEG")
    (folder / "val" / "val_annotations.txt").write_text(f"val_0.JPEG\t{wnids[0]}\t0\t0\t1\t1\n")
    return folder


def png_header(width, height):
    """The first chunks of a PNG claiming ``width x height`` pixels (PIL reads the size from them)."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


@pytest.mark.parametrize("width, match", [
    (100_000, r"is refused as a decompression bomb \(Image size \(10000000000 pixels\) exceeds limit"),
    (5000, r"claims 5000x5000 pixels, more than the 16,777,216 an image of the dataset may have"),
])
def test_a_decompression_bomb_in_an_image_folder_is_not_decoded(tmp_path, width, match):
    folder = tiny_imagenet(tmp_path)
    bomb = folder / "train" / "n02" / "images" / "n02_0.JPEG"
    bomb.write_bytes(png_header(width, width))
    with pytest.raises(DataError, match=rf"tinyimagenet: {bomb} {match}"):
        tinyimagenet(tmp_path, False)


def test_binary_bytes_in_wnids_txt(tmp_path):
    folder = tiny_imagenet(tmp_path)
    (folder / "wnids.txt").write_bytes(b"n01\n\xff\xfe\x00n02\n")
    with pytest.raises(DataError, match=r"wnids.txt is not text: byte 0xff at offset 4 is not UTF-8"):
        tinyimagenet(tmp_path, False)


@pytest.mark.parametrize("wnids, match", [("n01\n../../etc\n", r"class 2 is '../../etc', not a folder name"),
                                          ("n01\nn01\n", r"class 'n01' is listed twice")])
def test_wnids_are_plain_folder_names(tmp_path, wnids, match):
    folder = tiny_imagenet(tmp_path)
    (folder / "wnids.txt").write_text(wnids)
    with pytest.raises(DataError, match=match):
        tinyimagenet(tmp_path, False)


@pytest.mark.parametrize("damage", ["bytes", "shapes", "object"])
def test_a_damaged_dataset_cache_is_decoded_again(tmp_path, damage):
    folder = tiny_imagenet(tmp_path)
    first = tinyimagenet(tmp_path, False)
    cache = folder / "dendrisim-cache.npz"
    if damage == "bytes":
        cache.write_bytes(cache.read_bytes()[:100])
    elif damage == "shapes":
        np.savez(cache, x_train=np.zeros((3, 2)), y_train=first.y_train, x_test=first.x_test, y_test=first.y_test)
    else:  # an object array would need pickle to load
        np.savez(cache, x_train=np.array([{"a": 1}], dtype=object), y_train=first.y_train, x_test=first.x_test,
                 y_test=first.y_test)
    again = tinyimagenet(tmp_path, False)
    np.testing.assert_array_equal(again.x_train, first.x_train)
    np.testing.assert_array_equal(again.y_test, first.y_test)
    with np.load(cache) as z:  # and the cache is whole again
        np.testing.assert_array_equal(z["x_train"], first.x_train)


def test_tinyimagenet_train_and_test_images_of_different_sizes(tmp_path):
    tiny_imagenet(tmp_path, val_size=(4, 4))
    with pytest.raises(DataError, match=r"tinyimagenet: the validation image .*val_0.JPEG is 4x4, the training "
                                        r"images \(e.g. .*n01_0.JPEG\) 8x8"):
        tinyimagenet(tmp_path, False)


# ------------------------------------------------------------------ class 8: series and codecs
def test_task_columns_empty_is_refused(tmp_path, capsys):
    (tmp_path / "s.csv").write_text("a,b\n" + "".join(f"{i},{i % 5}\n" for i in range(60)))
    m = {"name": "f", "task": {"type": "forecasting", "file": str(tmp_path / "s.csv"), "window": 4, "columns": []},
         "populations": {"input": {"type": "input", "size": "auto"}, "h": {"size": 4},
                         "out": {"size": "auto", "activation": "linear"}},
         "projections": [{"from": "input", "to": "h"}, {"from": "h", "to": "h", "kind": "recurrent"},
                         {"from": "h", "to": "out"}],
         "plasticity": {"rule": "dll"}, "training": {"epochs": 1}, "recording": {"enabled": False}}
    (tmp_path / "m.yaml").write_text(yaml.safe_dump(m))
    code, err = cli(["run", str(tmp_path / "m.yaml"), "--out", str(tmp_path / "run")], capsys)
    assert code == 2 and "m.yaml: task.columns: [] names no column to read; list the columns" in err


@pytest.mark.parametrize("codec, name", [("rot13", "rot-13"), ("base64", "base64"), ("zlib", "zlib"), ("uu", "uu"),
                                         ("hex", "hex"), ("punycode", "punycode"), ("idna", "idna")])
@pytest.mark.parametrize("task", ["charlm", "forecasting", "sentences"])
def test_codecs_that_are_not_text_encodings_are_refused_by_name(codec, name, task):
    with pytest.raises(ConfigError, match=rf"test.yaml: task.encoding: '{codec}' is Python's {name} codec, which "
                                          r".*; use e.g. utf-8, cp1252 \(Windows Western European\), latin-1 or "
                                          r"utf-16: any text encoding Python knows"):
        model([f"task.type={task}", f"task.encoding={codec}"], base={**MLP, "task": {"type": task}})


def test_a_text_encoding_still_passes():
    recurrent = [*MLP["projections"], {"from": "h1", "to": "h1", "kind": "recurrent"}]  # a sequence task needs one
    assert model(["task.type=charlm", "task.encoding=cp1252"],
                 base={**MLP, "task": {"type": "charlm"}, "projections": recurrent})


# ------------------------------------------------------------------ class 9: the error names the value's problem
@pytest.mark.parametrize("override, match", [
    ("training.early_stopping.patience=0", r"training.early_stopping.patience: 0 must be >= 1"),
    ("training.alignment.every=0", r"training.alignment.every: 0 must be >= 1"),
    ("training.alignment.probe_size=-1", r"training.alignment.probe_size: -1 must be >= 1"),
    ("training.early_stopping={patience: 2, colour: red}", r"training.early_stopping: unknown key 'colour'"),
    ("training.phases=[{epochs: 1, learn: [3]}]", r"training.phases\[0\].learn\[0\]: 3 is not str"),
])
def test_a_bad_value_inside_an_optional_block_names_its_problem(override, match):
    with pytest.raises(ConfigError, match=match) as err:
        model([override])
    assert "not a mapping or null" not in str(err.value) and "not a list of" not in str(err.value)


def test_a_block_of_the_wrong_kind_is_still_called_that():
    with pytest.raises(ConfigError, match=r"training.early_stopping: 3 is not a mapping or null"):
        model(["training.early_stopping=3"])


def test_the_cli_reports_the_block_error_without_a_traceback(tmp_path, capsys):
    (tmp_path / "m.yaml").write_text(json.dumps(MLP))
    code, err = cli(["check", str(tmp_path / "m.yaml"), "--set", "training.early_stopping.patience=0"], capsys)
    assert code == 2 and "training.early_stopping.patience: 0 must be >= 1" in err


def test_val_annotations_name_files_in_val_images_only(tmp_path):
    folder = tiny_imagenet(tmp_path)
    (folder / "val" / "val_annotations.txt").write_text("/etc/passwd\tn01\t0\t0\t1\t1\n")
    with pytest.raises(DataError, match=r"val_annotations.txt:1: expected 'FILE<TAB>WNID...' with a WNID of wnids.txt "
                                        r"and FILE a name in val/images, got '/etc/passwd"):
        tinyimagenet(tmp_path, False)


def test_a_bad_item_inside_a_list_option_names_the_item():
    from conftest import CNN

    m = copy.deepcopy(CNN)
    m["projections"][0]["kernel"] = [3, "half"]
    with pytest.raises(ConfigError, match=r"projections\[0\].kernel\[1\]: 'half' is not int or 'full'"):
        model([], base=m)
