"""``dendrisim export`` and ``dendrisim plot`` on targets and recordings that are not what they
should be (the fuzzer's families 8-11, tests/test_fuzz_inputs.py): the export writes a whole
NWB file into its temporary file and never replaces what is not the user's regular file; a
damaged model file in a recording is exported as written, with a note; plot names --out, not
the recording, and refuses a --variable the run did not record."""
from __future__ import annotations

import contextlib
import io
import os
import shutil
import stat
from pathlib import Path

import pytest

from dendrisim.commands import main

MODEL = """
name: tiny
task: {type: classification, dataset: digits, batch_size: 16}
populations:
  input: {type: input, size: auto}
  h1: {type: pyramidal, size: 6, activation: tanh}
  out: {type: pyramidal, size: auto, activation: softmax}
projections: [{from: input, to: h1}, {from: h1, to: out}]
plasticity: {rule: dll}
optimizer: {type: adam, lr: 0.003}
training: {epochs: 1, seed: 0, max_steps_per_epoch: 2}
recording: {every: 1, samples: 2}
"""


def cli(*argv) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main([str(a) for a in argv])
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 2
    return code, out.getvalue(), err.getvalue()


def one_paragraph(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip() and not line.startswith("note: ")]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    return lines[0]


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("export_plot")
    (root / "model.yaml").write_text(MODEL)
    code, _, err = cli("run", root / "model.yaml", "--out", root / "run")
    assert code == 0, err[-2000:]
    return root / "run"


@pytest.fixture
def run(reference, tmp_path) -> Path:
    copy = tmp_path / "run"
    shutil.copytree(reference, copy)
    return copy


def test_the_export_is_a_readable_nwb_file_and_nothing_else_is_written(run, tmp_path, monkeypatch):
    """write_atomic hands a file object: the NWB file was written to a file named after it
    ('<_io.BufferedRandom name=N>') in the working folder, and the target was left empty."""
    pynwb = pytest.importorskip("pynwb")
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)
    code, out, err = cli("export", run, "--nwb", tmp_path / "x.nwb")
    assert code == 0, err
    assert os.listdir(work) == []
    with pynwb.NWBHDF5IO(str(tmp_path / "x.nwb"), "r") as nwb_io:
        assert "h1.rate" in nwb_io.read().acquisition


@pytest.mark.parametrize("kind", ["fifo", "symlink", "dangling", "folder"])
def test_overwrite_never_replaces_what_is_not_a_regular_file(run, tmp_path, kind):
    pytest.importorskip("pynwb")
    mine = tmp_path / "mine.nwb"
    mine.write_text("the user's own file")
    target = tmp_path / f"{kind}.nwb"
    if kind == "fifo":  # stands for /dev/null (never the real one)
        os.mkfifo(target)
    elif kind == "symlink":
        target.symlink_to(mine)
    elif kind == "dangling":
        target.symlink_to(tmp_path / "nowhere" / "x.nwb")
    else:
        target.mkdir()
    before = os.lstat(target)
    code, _, err = cli("export", run, "--nwb", target, "--overwrite")
    line = one_paragraph(err)
    assert code == 2
    assert {"fifo": "FIFO", "symlink": "symbolic link", "dangling": "symbolic link", "folder": "folder"}[kind] in line
    after = os.lstat(target)
    assert stat.S_IFMT(after.st_mode) == stat.S_IFMT(before.st_mode) and after.st_ino == before.st_ino
    assert mine.read_text() == "the user's own file"


@pytest.mark.parametrize("name", ["run.json", "model.yaml", "weights.pt", "checkpoint.pt", "metrics.csv",
                                  "summary.json", "recording.h5", "checkpoint.pt.sha256", "run.lock"])
def test_overwrite_never_replaces_a_file_of_the_run(run, name):
    pytest.importorskip("pynwb")
    before = (run / name).read_bytes()
    code, _, err = cli("export", run, "--nwb", run / name, "--overwrite")
    assert code == 2 and name in one_paragraph(err)
    assert (run / name).read_bytes() == before


def test_a_hard_link_to_a_file_of_the_run_is_refused(run, tmp_path):
    pytest.importorskip("pynwb")
    os.link(run / "summary.json", tmp_path / "summary.nwb")
    code, _, err = cli("export", run, "--nwb", tmp_path / "summary.nwb", "--overwrite")
    assert code == 2 and "summary.json" in one_paragraph(err)


def test_an_earlier_export_in_the_run_directory_is_replaced_with_overwrite(run):
    pytest.importorskip("pynwb")
    assert cli("export", run, "--nwb", run / "run.nwb")[0] == 0
    code, _, err = cli("export", run, "--nwb", run / "run.nwb")
    assert code == 2 and "--overwrite" in one_paragraph(err)
    assert cli("export", run, "--nwb", run / "run.nwb", "--overwrite")[0] == 0


def test_a_nul_in_the_path_is_the_package_error(run, tmp_path):
    pytest.importorskip("pynwb")
    from dendrisim import export_nwb
    from dendrisim.errors import DendrisimError

    for source, target in ((run, f"{tmp_path}/x\0y.nwb"), (f"{run}\0", tmp_path / "x.nwb")):
        with pytest.raises(DendrisimError, match="NUL"):
            export_nwb(source, target, overwrite=True)
    code, _, err = cli("export", run, "--nwb", f"{tmp_path}/x\0y.nwb")
    assert code == 2 and "NUL" in err and "Traceback" not in err


@pytest.mark.parametrize("value", ["{{{: not yaml", 5, "!!python/object:os.system", "[1, 2"])
def test_a_damaged_model_file_is_exported_as_written_with_a_note(run, tmp_path, value):
    h5py = pytest.importorskip("h5py")
    pynwb = pytest.importorskip("pynwb")
    with h5py.File(run / "recording.h5", "a") as f:
        f.attrs["model_yaml"] = value
    code, _, err = cli("export", run, "--nwb", tmp_path / "x.nwb")
    assert code == 0, err
    assert any(line.startswith("note: ") and "model_yaml" in line for line in err.splitlines()), err
    with pynwb.NWBHDF5IO(str(tmp_path / "x.nwb"), "r") as nwb_io:
        assert nwb_io.read().protocol == str(value)


def test_a_complete_recording_emptied_of_rows_is_refused(run, tmp_path):
    """A dataset cut to no rows left no whole record: an NWB file without a series was written."""
    h5py = pytest.importorskip("h5py")
    pytest.importorskip("pynwb")
    import numpy as np

    with h5py.File(run / "recording.h5", "a") as f:
        del f["index/step"]
        f["index/step"] = np.zeros((0,), np.int64)
    code, _, err = cli("export", run, "--nwb", tmp_path / "x.nwb")
    assert code == 2 and "index/step" in one_paragraph(err)
    assert not (tmp_path / "x.nwb").exists()


def test_a_complete_attribute_that_is_not_a_boolean_is_refused(run, tmp_path):
    h5py = pytest.importorskip("h5py")
    pytest.importorskip("pynwb")
    import numpy as np

    with h5py.File(run / "recording.h5", "a") as f:
        f.attrs["complete"] = np.arange(3)
    code, _, err = cli("export", run, "--nwb", tmp_path / "x.nwb")
    assert code == 2 and "complete" in one_paragraph(err)


@pytest.mark.parametrize("out", ["afile", "afile/sub"])
def test_plot_out_at_a_file_names_the_file(run, tmp_path, out):
    (tmp_path / "afile").write_text("x")
    code, _, err = cli("plot", run, "--out", tmp_path / out)
    line = one_paragraph(err)
    assert code == 2 and "--out" in line and "is a file" in line and "not a dendrisim recording" not in line
    assert (tmp_path / "afile").read_text() == "x"


def test_plot_api_out_at_a_file_is_a_path_error(run, tmp_path):
    from dendrisim.errors import PathError
    from dendrisim.recording.plots import plot_all

    (tmp_path / "afile").write_text("x")
    with pytest.raises(PathError, match="is a file"):
        plot_all(run / "recording.h5", tmp_path / "afile")


@pytest.mark.parametrize("variable", ["nope", "RATE", ""])
def test_plot_refuses_a_variable_the_run_did_not_record(run, tmp_path, variable):
    code, _, err = cli("plot", run, "--out", tmp_path / "figs", "--variable", variable)
    line = one_paragraph(err)
    assert code == 2 and f"{variable!r}" in line and "h1: apical, basal, error, rate, soma" in line
    assert not (tmp_path / "figs").exists() or not list((tmp_path / "figs").iterdir())
    if variable == "RATE":
        assert "case-sensitive" in line


def test_plot_notes_the_default_heatmap_when_rate_was_not_recorded(run, tmp_path):
    """The default --variable (rate) of a recording without it: the heatmap left out, with a note."""
    h5py = pytest.importorskip("h5py")
    with h5py.File(run / "recording.h5", "a") as f:
        del f["populations/h1/rate"]
    code, out, err = cli("plot", run, "--out", tmp_path / "figs")
    assert code == 0, err
    assert any(line.startswith("note: heatmap: left out") and "'rate'" in line for line in err.splitlines()), err
    assert not any(p.name.startswith("heatmap") for p in (tmp_path / "figs").iterdir())
    assert cli("plot", run, "--out", tmp_path / "figs2", "--variable", "soma")[0] == 0
    assert (tmp_path / "figs2" / "heatmap_h1_soma.png").is_file()
