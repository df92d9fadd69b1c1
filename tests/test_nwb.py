"""NWB export (``dendrisim export RUN --nwb FILE``, ``dendrisim.export_nwb``): every recorded
value found bit for bit in the NWB file read back with pynwb, with its times, units and the
run's metadata; nwbinspector finds no critical issue; bad input gets one paragraph."""
import datetime
import json
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import yaml

pynwb = pytest.importorskip("pynwb", reason="the NWB export needs pynwb (pip install 'dendrisim[nwb]')")

from conftest import MLP  # noqa: E402
from dendrisim import cli, commands, export_nwb  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
RECORD = {"every": 1, "samples": 4, "projections": {"h1->h2": ["weight", "update", "feedback"], "h2->out": ["weight"]}}


def make_run(tmp: Path, name: str, model: dict | str, *sets: str) -> Path:
    """A run through ``dendrisim run`` (cli.main) in ``tmp/name``."""
    if isinstance(model, dict):
        path = tmp / f"{name}.yaml"
        path.write_text(yaml.safe_dump(model))
        model = str(path)
    out = tmp / name
    sets = [x for s in sets for x in ("--set", s)]
    assert cli.main([model, "--out", str(out), "--threads", "1", *sets]) == 0
    return out


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("runs")
    steady = make_run(tmp, "steady", MLP, "training.epochs=2", "training.max_steps_per_epoch=7",
                      f"recording={json.dumps({**RECORD, 'rule': ['clip_counts']})}", "plasticity.clip_update=1e-6",
                      "training.alignment={every: 3, probe_size: 32}")
    euler = make_run(tmp, "euler", MLP, "training.max_steps_per_epoch=5", "dynamics={mode: euler, steps: 6, "
                     "dt: 0.2, record_every: 4}", f"recording={json.dumps({**RECORD, 'dtype': 'float16'})}")
    circuit = make_run(tmp, "circuit", "microcircuit_digits", "training.max_steps_per_epoch=3",
                       "training.phases.0.epochs=1", "training.phases.1.epochs=1", "recording.every=2")
    return {"steady": steady, "euler": euler, "circuit": circuit}


@pytest.fixture(scope="module")
def exported(runs, tmp_path_factory):
    out = tmp_path_factory.mktemp("nwb")
    return {name: export_nwb(run, out / f"{name}.nwb") for name, run in runs.items()}


def same_bits(a, b) -> bool:
    a, b = np.asarray(a), np.asarray(b)
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


def nwb_value(nwb, name: str, records: int, k: int):
    """The NWB array holding recording dataset ``name``, in the recording's layout."""
    parts = name.split("/")
    trials = nwb.trials
    if parts[0] == "populations":
        return nwb.acquisition[f"{parts[1]}.{parts[2]}"].data[:]
    if name == "index/sample_ids":
        return trials["sample_id"].data[:].reshape(records, k)
    if parts[0] == "index" and not parts[1].startswith("weight_"):
        per = trials[parts[1]].data[:].reshape(records, k)
        assert (per == per[:, :1]).all(), name  # one value a record, repeated for its samples
        return per[:, 0]
    if parts[0] == "index":
        return nwb.intervals["weight_records"][parts[1].removeprefix("weight_")].data[:]
    if parts[0] == "projections":
        return nwb.intervals["weight_records"][f"{parts[1]}.{parts[2]}"].data[:]
    if parts[0] == "rule":
        return nwb.acquisition["clip_counts." + parts[2].replace(":", ".")].data[:]
    if parts[0] == "metrics":
        return nwb.processing["training"]["metrics"]["_".join(parts[1:])].data[:]
    if parts[0] == "alignment":
        table = nwb.intervals["alignment_records"]
        return table[parts[1]].data[:] if len(parts) == 2 else table[f"{parts[1]}.{parts[2]}"].data[:]
    raise AssertionError(f"{name}: no place in the NWB file")


@pytest.mark.parametrize("name", ["steady", "euler", "circuit"])
def test_every_recorded_value_is_in_the_nwb_file_bit_for_bit(runs, exported, name):
    datasets = {}
    with h5py.File(runs[name] / "recording.h5", "r") as f:
        f.visititems(lambda n, o: datasets.__setitem__(n, (o[()], dict(o.attrs))) if isinstance(o, h5py.Dataset)
                     else None)
    records, k = datasets["index/sample_ids"][0].shape
    assert records > 1 and any(n.startswith("populations/") for n in datasets)
    with pynwb.NWBHDF5IO(str(exported[name]), "r") as io:
        nwb = io.read()
        for dname, (values, attrs) in datasets.items():
            if dname.startswith("populations/"):  # one row per (record, sample[, state])
                values = values.reshape(-1, *values.shape[3 if list(attrs["axes"])[2:3] == ["time"] else 2:])
            if values.size == 0:
                continue
            assert same_bits(nwb_value(nwb, dname, records, k), values), dname


@pytest.mark.parametrize("name", ["steady", "euler", "circuit"])
def test_times_units_and_metadata(runs, exported, name):
    with h5py.File(runs[name] / "recording.h5", "r") as f:
        attrs = {a: (v.decode() if isinstance(v, bytes) else v) for a, v in f.attrs.items()}
        steps, k = f["index/step"][:], f["index/sample_ids"].shape[1]
        soma = f["populations/h1/soma"]
        euler = "euler_steps" in soma.attrs
        taus = soma.attrs["euler_steps"] * soma.attrs["dt"] if euler else np.zeros(1)
        slot = (soma.attrs["euler_steps"][-1] + 1) * soma.attrs["dt"] if euler else 1 / k
        weight_steps = f["index/weight_step"][:]
    starts = [(s * k + j) * slot for s in steps for j in range(k)]
    expected = np.array([t + tau for t in starts for tau in taus])
    with pynwb.NWBHDF5IO(str(exported[name]), "r") as io:
        nwb = io.read()
        series = nwb.acquisition["h1.soma"]
        assert series.unit == "a.u." and "/populations/h1/soma" in series.description
        np.testing.assert_allclose(series.get_timestamps(), expected, rtol=1e-12, atol=1e-9)
        np.testing.assert_allclose(nwb.trials["start_time"].data[:], starts, rtol=1e-12)
        assert np.all(np.diff(series.get_timestamps()) > 0)
        if euler:  # the states of a presentation are dt apart as kept
            np.testing.assert_allclose(np.diff(expected[:len(taus)]), np.diff(taus))
        if len(weight_steps):
            np.testing.assert_allclose(nwb.intervals["weight_records"]["start_time"].data[:],
                                       weight_steps * k * slot, rtol=1e-12)
        assert nwb.session_start_time == datetime.datetime.strptime(attrs["created"], "%Y-%m-%dT%H:%M:%S%z")
        assert nwb.protocol == attrs["model_yaml"] and yaml.safe_load(nwb.protocol)["name"] == attrs["model_name"]
        notes = json.loads(nwb.notes)
        for key in ("seed", "device", "dendrisim_version", "torch_version", "created", "rule", "complete"):
            assert notes[key] == (attrs[key].item() if hasattr(attrs[key], "item") else attrs[key]), key
        assert notes["argv"] == json.loads(attrs["argv"]) and notes["run.json"]["threads"] == 1
        assert attrs["model_name"] in nwb.session_description and nwb.subject.subject_id.startswith(attrs["model_name"])
        if name == "circuit":
            phases = nwb.processing["training"]["phases"]
            assert list(phases["phase_name"].data[:]) == [p["name"] for p in json.loads(attrs["phases"])]
            assert "i1.nudging" in nwb.acquisition and "i1.dendrite" in nwb.acquisition
        if name == "steady":
            assert nwb.acquisition["clip_counts.update.h2->out"].unit == "count"
            assert "update_angle" in nwb.intervals["alignment_records"]["h1->h2.update_angle"].description


@pytest.mark.parametrize("name", ["steady", "euler", "circuit"])
def test_nwbinspector_finds_no_critical_issue(exported, name):
    from nwbinspector import Importance, inspect_nwbfile

    messages = list(inspect_nwbfile(nwbfile_path=str(exported[name])))
    serious = [f"{m.importance.name} {m.check_function_name} {m.location}: {m.message}" for m in messages
               if m.importance.value >= Importance.CRITICAL.value]
    assert not serious, "\n".join(serious)


# ----------------------------------------------------------------------------- the command and its refusals
def export_cmd(*args) -> tuple[int, str, str]:
    """``dendrisim export ARGS``: (status, stdout, stderr)."""
    import contextlib
    import io

    o, e = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(o), contextlib.redirect_stderr(e):
        code = commands.main(["export", *map(str, args)])
    return code, o.getvalue(), e.getvalue()


def test_the_command_writes_refuses_to_overwrite_and_overwrites_on_request(runs, tmp_path):
    target = tmp_path / "run.nwb"
    target.write_text("an older file")
    code, out, err = export_cmd(runs["steady"], "--nwb", target)
    assert code == 2 and f"{target} exists; pass --overwrite" in err and target.read_text() == "an older file"
    code, out, err = export_cmd(runs["steady"], "--nwb", target, "--overwrite")
    assert code == 0 and out.strip() == str(target), err
    with pynwb.NWBHDF5IO(str(target), "r") as io:
        assert "h1.soma" in io.read().acquisition
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.nwb"]  # no temporary file left


def test_an_incomplete_recording_needs_partial(runs, tmp_path):
    run = tmp_path / "stopped"
    shutil.copytree(runs["steady"], run, ignore=shutil.ignore_patterns("run.lock"))
    with h5py.File(run / "recording.h5", "r+") as f:
        f.attrs["complete"] = False
    code, out, err = export_cmd(run, "--nwb", tmp_path / "x.nwb")
    assert code == 2 and "is not complete: its run stopped or was killed" in err and "--partial" in err
    assert not (tmp_path / "x.nwb").exists()
    code, out, err = export_cmd(run, "--nwb", tmp_path / "x.nwb", "--partial")
    assert code == 0 and "note: " in err and "is not complete: exporting the 14 activity records" in err, err
    with pynwb.NWBHDF5IO(str(tmp_path / "x.nwb"), "r") as io:
        assert json.loads(io.read().notes)["complete"] is False


def test_a_live_run_is_named_and_a_failed_write_keeps_the_old_file(runs, tmp_path, monkeypatch):
    import errno

    from dendrisim import rundir

    run = tmp_path / "live"
    shutil.copytree(runs["steady"], run, ignore=shutil.ignore_patterns("run.lock"))
    with h5py.File(run / "recording.h5", "r+") as f:
        f.attrs["complete"] = False
    lock = rundir.RunLock.acquire(run)
    try:
        code, out, err = export_cmd(run, "--nwb", tmp_path / "x.nwb")
    finally:
        lock.release()
    assert code == 2 and "is not complete: its run is still going on" in err, err
    target = tmp_path / "old.nwb"
    target.write_text("the previous export")

    def full_disk(kind, path):
        if kind == "nwb":
            raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(rundir, "fault_hook", full_disk)
    code, out, err = export_cmd(runs["steady"], "--nwb", target, "--overwrite")
    assert code == 2 and f"writing {target} failed (" in err and "No space left" in err, err
    assert target.read_text() == "the previous export" and sorted(p.name for p in tmp_path.iterdir()) == [
        "live", "old.nwb"]


def test_bad_input_gets_one_paragraph(runs, tmp_path):
    (tmp_path / "empty").mkdir()
    with h5py.File(tmp_path / "foreign.h5", "w") as f:
        f["x"] = np.arange(3)
    cut = tmp_path / "cut.h5"
    data = (runs["steady"] / "recording.h5").read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    damaged = tmp_path / "damaged"  # a chunk's bytes flipped: its checksum no longer matches
    shutil.copytree(runs["steady"], damaged, ignore=shutil.ignore_patterns("run.lock"))
    with h5py.File(damaged / "recording.h5", "r") as f:
        chunk = f["populations/h2/rate"].id.get_chunk_info(0)
    with open(damaged / "recording.h5", "r+b") as fh:
        fh.seek(chunk.byte_offset + chunk.size // 2)
        flipped = bytes(b ^ 0xFF for b in fh.read(8))
        fh.seek(chunk.byte_offset + chunk.size // 2)
        fh.write(flipped)
    cases = [(tmp_path / "empty", "not a run directory: it holds no recording.h5"),
             (damaged, "dataset populations/h2/rate cannot be read"),
             (tmp_path / "nothing", "no such run directory or recording"),
             (tmp_path / "foreign.h5", "not a dendrisim recording"),
             (cut, "the recording is cut off")]
    for source, message in cases:
        code, out, err = export_cmd(source, "--nwb", tmp_path / "out.nwb")
        assert code == 2 and message in err and len(err.strip().splitlines()) == 1, (source, err)
        assert "Traceback" not in err and not list(tmp_path.glob("*.nwb*")), err  # nor a temporary file
    code, out, err = export_cmd(runs["steady"], "--nwb", tmp_path / "no" / "out.nwb")
    assert code == 2 and "does not exist" in err


def test_without_pynwb_the_command_says_what_to_install(runs, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "pynwb", None)  # import pynwb now fails
    code, out, err = export_cmd(runs["steady"], "--nwb", tmp_path / "x.nwb")
    assert code == 2 and "pip install 'dendrisim[nwb]'" in err and len(err.strip().splitlines()) == 1, err


def test_importing_dendrisim_does_not_import_pynwb():
    code = "import sys, dendrisim; dendrisim.export_nwb; print('pynwb' in sys.modules, 'hdmf' in sys.modules)"
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and proc.stdout.split() == ["False", "False"], proc.stderr


def test_the_export_command_and_script_call_the_package(monkeypatch):
    import dendrisim.export

    seen = []
    monkeypatch.setattr(dendrisim.export, "main", lambda argv, *, prog: seen.append((list(argv), prog)) or 0)
    assert commands.main(["export", "x", "--nwb", "y.nwb"]) == 0
    assert seen == [(["x", "--nwb", "y.nwb"], "dendrisim export")]
    text = (REPO / "scripts" / "export_nwb.py").read_text()
    assert "from dendrisim.export import main" in text and len(text.splitlines()) < 20


def test_the_how_to_page_reads_an_export_back(tmp_path):
    """docs/howto/nwb.md: its commands make and export a (short) run, and its Python block
    reads the file back."""
    from test_readme import python_blocks

    page = (REPO / "docs" / "howto" / "nwb.md").read_text()
    (commands_block,) = python_blocks(page, "bash")
    assert "dendrisim export recordings/RUN --nwb recordings/RUN/run.nwb" in commands_block
    run = make_run(tmp_path, "RUN", "dll_mlp_digits", "training.epochs=2", "training.max_steps_per_epoch=10",
                   "recording.every=2")
    code, out, err = export_cmd(run, "--nwb", run / "run.nwb")
    assert code == 0, err
    (code_block,) = python_blocks(page, "python")
    proc = subprocess.run([sys.executable, "-c", code_block.replace('"recordings/', f'"{tmp_path}/')], cwd=REPO,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.startswith("(") and "a.u." in proc.stdout and "nan" not in proc.stdout.lower(), proc.stdout
    for place in ("acquisition", "trials", "weight_records", "alignment_records", "clip_counts", "metrics", "phases",
                  "protocol", "notes", "session_start_time"):
        assert place in page, place
