"""The limits of ``dataset: file`` and ``Trainer(data=...)`` that the input fuzzer found
(tests/test_fuzz_inputs.py holds its own checks): too few samples for the carved splits, .npz
members checked by their headers before loading, tensors NumPy cannot take, OwnData taken
without a copy."""
import gc
import warnings
import zipfile

import numpy as np
import pytest
import torch

from dendrisim.errors import DataError
from dendrisim.tasks.classification import Classification, ClassificationOptions
from dendrisim.tasks.files import OwnData, _load_npz, as_arrays, check_arrays, check_sizes
from dendrisim.tasks.tables import read_table


def options(file, **kw) -> ClassificationOptions:
    return ClassificationOptions(type="classification", dataset="file", file=str(file), **kw)


def few(tmp_path, n):
    path = tmp_path / "few.npz"
    np.savez(path, x_train=np.random.default_rng(0).random((n, 3), np.float32), y_train=np.arange(n) % 2)
    return path


def test_too_few_samples_for_the_carved_splits_name_the_file_the_split_and_the_minimum(tmp_path):
    path = few(tmp_path, 5)
    with pytest.raises(DataError) as err:
        Classification.data_spec(options(path))
    text = str(err.value)
    assert str(path) in text and "validation split empty" in text and "at least 7 training samples" in text
    assert "validation_fraction: 0" in text and "\n" not in text
    with pytest.raises(DataError, match="test and validation splits empty"):
        Classification.data_spec(options(few(tmp_path, 2)))


def test_the_smallest_count_named_trains_and_validation_fraction_0_trains_without_a_validation_split(tmp_path):
    task = Classification(options(few(tmp_path, 7)), device=torch.device("cpu"))
    assert (len(task.train.x), len(task.test.x), len(task.val.x)) == (5, 1, 1)
    task = Classification(options(few(tmp_path, 5), validation_fraction=0.0), device=torch.device("cpu"))
    assert task.val is None and (len(task.train.x), len(task.test.x)) == (4, 1)
    assert Classification.data_spec(options(few(tmp_path, 5), validation_fraction=0.0))[2] == 4


def test_given_splits_are_not_carved_so_few_samples_do_not_count_against_them():
    x = np.zeros((2, 3), np.float32)
    data = check_arrays({"x_train": x, "y_train": np.array([0, 1]), "x_test": x, "y_test": np.array([0, 1]),
                         "x_val": x, "y_val": np.array([1, 0])}, source="data=")
    check_sizes(data, options("x.npz"), source="data=")  # nothing carved: nothing to refuse


def test_npz_members_round_trip_in_any_order_and_compression(tmp_path):
    arrays = {"x_train": np.asfortranarray(np.random.default_rng(1).random((5, 3, 2))), "y_train": np.arange(5),
              "empty": np.zeros((0, 3), np.float32), "scalar": np.float32(3), "flags": np.array([True, False])}
    for save in (np.savez, np.savez_compressed):
        save(tmp_path / "a.npz", **arrays)
        back = _load_npz(tmp_path / "a.npz")
        assert sorted(back) == sorted(arrays)
        for k, a in arrays.items():
            assert back[k].dtype == a.dtype and back[k].shape == np.shape(a) and np.array_equal(back[k], a)


def test_an_npz_member_claiming_more_than_it_holds_is_refused_before_loading_and_the_file_closed(tmp_path):
    header = "{'descr': '<f8', 'fortran_order': False, 'shape': (1000000000000, 3), }"
    header += " " * (118 - len(header)) + "\n"
    path = tmp_path / "huge.npz"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as z:
        z.writestr("x_train.npy", b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header.encode())
        z.writestr("y_train.npy", b"not an array")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(DataError, match=r"x_train claims shape \[1000000000000, 3\] of float64"):
            _load_npz(path)
        gc.collect()
    assert not [w for w in caught if issubclass(w.category, ResourceWarning)]
    header = header.replace("1000000000000, 3", "-4, 3     ")
    with zipfile.ZipFile(path, "w") as z:  # a negative length read as reshape's "whatever is left"
        z.writestr("x_train.npy", b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header.encode()
                   + b"\0" * 96)
    with pytest.raises(DataError, match=r"x_train claims shape \[-4, 3\], with a negative length"):
        _load_npz(path)
    path = tmp_path / "text.npz"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("y_train.npy", b"not an array")
    with pytest.raises(DataError, match="'y_train' is no NumPy array"):
        _load_npz(path)


def test_tensors_numpy_lacks_are_converted_and_a_meta_tensor_is_refused_naming_it():
    x = torch.randn(6, 3)
    for t in (x.to(torch.bfloat16), x.to_sparse(), x.to(torch.float8_e4m3fn)):
        out = as_arrays({"x_train": t})["x_train"]
        assert out.dtype == np.float32 and out.shape == (6, 3)
    with pytest.raises(DataError, match="data=: x_train is a tensor on the meta device"):
        as_arrays({"x_train": torch.empty(6, 3, device="meta")})


def test_own_data_fields_are_taken_without_a_copy():
    x = np.random.default_rng(0).random((40, 3)).astype(np.float32)
    arrays = as_arrays(OwnData(x_train=x, y_train=np.arange(40) % 2))
    assert np.shares_memory(arrays["x_train"], x) and set(arrays) == {"x_train", "y_train"}
    assert np.array_equal(as_arrays(OwnData(x_train=memoryview(x), y_train=np.arange(40) % 2))["x_train"], x)


def test_a_wide_table_lists_the_columns_it_left_out(tmp_path):
    path = tmp_path / "wide.csv"
    path.write_text("a,b,c,d\n" + "1,2,3,4\n" * 3)
    layout: dict = {}
    values, names = read_table(path, columns=("b", 4), layout=layout)
    assert names == ["b", "d"] and values.tolist() == [[2, 4]] * 3 and layout["skipped"] == ["a", "c"]


def test_a_csv_label_beyond_int64_is_named_as_written(tmp_path):
    path = tmp_path / "big.csv"
    path.write_text("".join(f"{i / 10},{i % 2}\n" for i in range(20)) + "1,99999999999999999999999\n")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(DataError, match=r"big.csv:21: the label .* is '99999999999999999999999', no class index"):
            Classification.data_spec(options(path))
