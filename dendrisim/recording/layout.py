"""The recording file's layout: its root attributes and every dataset, created up front
(SWMR appends only), each with a fixed host buffer (:class:`Stream`); the file of a resumed run
cut back to its checkpoint and reopened; the reserve that lets the file close after a full
disk. The writer (:class:`~dendrisim.recording.recorder.Recorder`) fills the buffers.

The functions that take ``rec`` read (and :func:`create` sets) the recorder's attributes.
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Optional

import h5py
import numpy as np
import torch

from .. import rundir
from ..config.schema import RecordingConfig
from ..errors import DendrisimError, FileFormatError, WriteError
from .plan import MEANING, time_points
from .recover import clear_open_flags, cut_back

SCHEMA_VERSION = 1
#: datasets added to schema 1 since it was first written (readers treat them as all zeros when missing;
#: a resumed run whose file lacks them writes zeros for the records before)
ADDED = ("index/phase", "index/weight_phase")
PHASE_MEANING = "training phase (0-based index into training.phases; 0 without phases)"
CHUNK_CACHE = 64 * 1024  # bytes per dataset: records are appended, never read back
#: beside the recording while it is written: disk space set aside so that the file can still be
#: closed after a full disk (HDF5 cannot close a file whose last flush fails: the process then crashes)
RESERVE_SUFFIX = ".reserve"
#: every dataset carries HDF5's fletcher32 checksum (off only to measure its cost: scripts/bench_recording.py)
FLETCHER32 = True


def population_layout(pop, neurons: Optional[int], time_steps: Optional[int] = None
                      ) -> tuple[tuple[int, ...], list[str]]:
    """Per-sample shape and axis names of a population's records (the first N neurons, flat,
    with ``neurons``); a recurrent network's records have a time axis first."""
    if time_steps:
        shape, axes = population_layout(pop, neurons)
        return (time_steps, *shape), ["time", *axes]
    if neurons:
        return (min(pop.size, neurons),), ["neuron"]
    if len(pop.shape) == 3:
        return pop.shape, ["channel", "height", "width"]
    if len(pop.shape) == 1:
        return pop.shape, ["neuron"]
    return pop.shape, [f"axis{i}" for i in range(len(pop.shape))]


def weight_axes(proj, var: str) -> list[str]:
    """Axis names of a projection variable's records."""
    if proj.connectivity == "conv2d":
        return ["post_channel", "pre_channel", "kernel_height", "kernel_width"]
    if proj.connectivity == "embedding":
        return ["word", "dim"]
    return ["post", "pre"] if var in ("weight", "update") else ["pre", "post"]


class Stream:
    """One resizable dataset and its fixed host buffer."""

    def __init__(self, dataset: h5py.Dataset, rows: int, dtype: torch.dtype, pin: bool):
        self.dataset = dataset
        self.buffer = torch.empty((rows, *dataset.shape[1:]), dtype=dtype, pin_memory=pin)
        if dtype.is_floating_point:
            self.buffer.fill_(float("nan"))

    def put(self, row: int, value: Optional[torch.Tensor]) -> None:
        if value is None:
            self.buffer[row].fill_(float("nan"))
        else:
            self.buffer[row].copy_(value, non_blocking=True)

    def write(self, n: int) -> None:
        start = self.dataset.shape[0]
        self.dataset.resize(start + n, axis=0)
        self.dataset[start:start + n] = self.buffer[:n].numpy()


def write_attrs(file: h5py.File, experiment, seed, device, argv) -> None:
    """The root attributes of a new recording (the run, its versions, its start)."""
    from .._version import __version__

    a = file.attrs
    a["schema_version"] = SCHEMA_VERSION
    a["dendrisim_version"] = __version__
    a["model_name"] = experiment.config.name
    a["rule"] = experiment.rule.rule
    a["model_yaml"] = experiment.to_yaml()
    a["seed"] = seed
    a["device"] = str(device)
    a["torch_version"] = str(torch.__version__)
    a["h5py_version"] = str(h5py.__version__)
    a["argv"] = json.dumps(argv)
    a["created"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    a["complete"] = False


def dataset(rec, name: str, shape: tuple[int, ...], dtype, axes: list[str], meaning: str, compress=True
            ) -> h5py.Dataset:
    """Dataset ``name`` of ``rec``'s file with records of ``shape``: created empty, or (resuming)
    the existing one at the checkpoint's length."""
    if rec.resume is not None and name in rec.file:  # continue the existing dataset from the checkpoint's length
        ds = rec.file[name]
        ds.resize(rec.resume.get(length_key(name), 0), axis=0)
        return ds
    n = rec.resume.get(length_key(name), 0) if rec.resume is not None else 0
    if n and name not in ADDED:
        raise KeyError(f"dataset {name} is missing")
    ds = rec.file.create_dataset(
        name, shape=(0, *shape), maxshape=(None, *shape), dtype=dtype,
        chunks=(max(1, min(rec.n_rows, 1024)) if not shape or np.prod(shape) < 65536 else 1, *shape),
        fletcher32=FLETCHER32, **(filters(rec.config) if compress else {}),
    )
    ds.attrs["axes"] = np.array(axes, dtype=h5py.string_dtype())
    ds.attrs["meaning"] = meaning
    if n:  # a dataset added since the file was written (phase marks), resumed: zeros before
        ds.resize(n, axis=0)
        ds[:] = 0
    return ds


def create(rec, metric_names: dict[str, list[str]]) -> None:
    """Every dataset of ``rec``'s file, each with its host buffer (:class:`Stream`): the index,
    activity, weights, rule counters, alignment and metrics."""
    np_dtype = np.float16 if rec.dtype == torch.float16 else np.float32
    rows = rec.n_rows
    rec.index = {
        "step": Stream(dataset(rec, "index/step", (), np.int64, ["record"], "global training step", False), rows, torch.int64, False),
        "epoch": Stream(dataset(rec, "index/epoch", (), np.int64, ["record"], "epoch (1-based)", False), rows, torch.int64, False),
        "phase": Stream(dataset(rec, "index/phase", (), np.int64, ["record"], PHASE_MEANING, False),
                        rows, torch.int64, False),
        "sample_ids": Stream(dataset(rec, "index/sample_ids", (rec.k,), np.int64, ["record", "sample"],
                                     "index of the recorded sample in the training split", False),
                             rows, torch.int64, False),
    }
    rec.weight_index = {
        "step": Stream(dataset(rec, "index/weight_step", (), np.int64, ["weight_record"], "global training step", False), rows, torch.int64, False),
        "epoch": Stream(dataset(rec, "index/weight_epoch", (), np.int64, ["weight_record"], "epoch (1-based)", False), rows, torch.int64, False),
        "phase": Stream(dataset(rec, "index/weight_phase", (), np.int64, ["weight_record"], PHASE_MEANING, False),
                        rows, torch.int64, False),
    }
    rec.streams = {}
    for pop, variables in rec.pops.items():
        shape, axes = population_layout(rec.network.populations[pop], rec.config.neurons,
                                         time_points(rec.network, rec.trace_steps))
        model = rec.network.populations[pop]
        for var in variables:
            # a built-in variable's meaning from the table, any other's (a plugin model's) as its model declares it
            meaning = MEANING.get(var) or type(model).variables.get(var, var)
            ds = dataset(rec, f"populations/{pop}/{var}", (rec.k, *shape), np_dtype, ["record", "sample", *axes],
                         meaning)
            if rec.trace_steps and rec.resume is None:
                ds.attrs["time"] = "Euler step of the presentation (see euler_steps; t = step x dt)"
                ds.attrs["euler_steps"] = np.array(rec.trace_steps, dtype=np.int64)
                ds.attrs["dt"] = rec.dt
            rec.streams[(pop, var)] = Stream(ds, rows, rec.dtype, rec.pin)
    rec.weight_streams = {}
    for name, variables in rec.projs.items():
        proj = rec.network.projections[name]
        for var in variables:
            value = rec.rule.projection_state(rec.network, proj, var)
            shape = tuple(value.shape) if value is not None else guess_shape(proj, var)
            axes = ["weight_record", *weight_axes(proj, var)]
            ds = dataset(rec, f"projections/{name}/{var}", shape, np_dtype, axes, MEANING.get(var, var))
            rec.weight_streams[(name, var)] = Stream(ds, rows, rec.dtype, rec.pin)
    rec.clip_streams = {}
    if "clip_counts" in rec.config.rule:
        for name in rec.rule.clip_names(rec.network):
            ds = dataset(rec, f"rule/clip_counts/{name}", (), np.int64, ["record"], "cumulative number of clipped values", False)
            rec.clip_streams[name] = Stream(ds, rows, torch.int64, False)
    rec.alignment_streams = {}
    if rec.alignment_names:
        from ..alignment import MEASURES

        rec.alignment_streams["step"] = Stream(dataset(
            rec, "alignment/step", (), np.int64, ["alignment_record"], "global training step", False), rows, torch.int64, False)
        rec.alignment_streams["epoch"] = Stream(dataset(
            rec, "alignment/epoch", (), np.int64, ["alignment_record"], "epoch (1-based)", False), rows, torch.int64, False)
        for name in rec.alignment_names:
            for m in MEASURES:
                ds = dataset(rec, f"alignment/{name}/{m}", (), np.float64, ["alignment_record"],
                             {"update_angle": "angle (degrees) between the rule's and backprop's update",
                              "update_norm_ratio": "norm of the rule's update over backprop's",
                              "feedback_angle": "angle (degrees) between feedback weights and W transposed"}[m],
                             False)
                rec.alignment_streams[(name, m)] = Stream(ds, rows, torch.float64, False)
    rec.metrics = {"epoch": dataset(rec, "metrics/epoch", (), np.int64, ["epoch"], "epoch (1-based)", False)}
    for split, names in metric_names.items():
        for m in names:
            rec.metrics[f"{split}_{m}"] = dataset(rec, f"metrics/{split}/{m}", (), np.float64, ["epoch"], f"{split} {m}", False)
    rec.file.flush()


def filters(c: RecordingConfig) -> dict:
    """HDF5 compression options of ``recording.compression``."""
    if c.compression == "gzip":
        return {"compression": "gzip", "compression_opts": c.compression_level, "shuffle": True}
    if c.compression == "lzf":
        return {"compression": "lzf", "shuffle": True}
    return {}


def length_key(name: str) -> str:
    """The key of a resume position that gives dataset ``name``'s length."""
    if name.startswith("metrics/"):
        return "epochs"
    if name.startswith("projections/") or name.startswith("index/weight_"):
        return "weight_records"
    if name.startswith("alignment/"):
        return "alignment_records"
    return "records"


def guess_shape(proj, var: str) -> tuple[int, ...]:
    """The shape of a projection variable the rule holds no value of yet."""
    return tuple(proj.weight.shape) if var in ("weight", "update") else tuple(proj.feedback_shape)


def reopen_for_resume(path: Path, resume: dict) -> h5py.File:
    """Clear a killed run's open flags, cut the file at ``path`` back to the checkpoint
    (``resume``: its lengths) and open it for appending; a damaged file is a one-paragraph
    error naming it, never a traceback."""
    try:
        rundir.refuse_link(path)
        clear_open_flags(path)  # the run may have been killed
        cut_back(path, lambda name: resume.get(length_key(name), 0))
        rundir.refuse_link(path)  # h5py opens by name: checked right before
        return h5py.File(path, "a", libver="latest", rdcc_nbytes=CHUNK_CACHE, locking=False)
    except DendrisimError:
        raise
    except (ValueError, OSError, KeyError, RuntimeError) as err:
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise FileFormatError(f"{path} cannot be resumed: it is damaged or not this run's recording "
                              f"({first}); restore it from a copy, or start a new run") from None


def set_aside(rec) -> Path:
    """Allocate the reserve file beside ``rec``'s recording: what closing the file may need to
    write (its chunk caches)."""
    # what a failed flush may leave dirty: the buffered records, the metadata, a chunk per dataset
    buffers = sum(s.buffer.numel() * s.buffer.element_size() for s in rec._all_streams())
    chunks = sum(int(np.prod(ds.chunks)) * ds.dtype.itemsize for ds in rec._all_datasets())
    size = min(64 * 2**20, 2**20 + 2 * buffers + chunks)
    reserve = rec.path.with_name(rec.path.name + RESERVE_SUFFIX)
    try:
        fd = rundir.create_new(reserve, what="the reserve")  # O_EXCL | O_NOFOLLOW: a planted link is removed
        try:
            os.posix_fallocate(fd, 0, size)
        finally:
            os.close(fd)
    except (OSError, WriteError) as err:
        reserve.unlink(missing_ok=True)
        try:
            rec.file.close()
        except Exception:  # noqa: BLE001
            pass
        why = getattr(err, "strerror", None) or err
        raise WriteError(f"{reserve}: cannot set aside {size / 2**20:.1f} MiB to close the recording safely "
                         f"after a fault ({why}); free some space in {rec.path.parent}") from None
    return reserve
