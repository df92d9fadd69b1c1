"""Stream compartment activity, projection weights and metrics to one HDF5 file per run.

Layout (``SCHEMA_VERSION`` 1; time always comes first)::

    /                                   attrs: schema_version, dendrisim_version, model_name, rule,
                                               model_yaml, seed, device, torch_version, argv, created,
                                               finished, complete, phases (JSON: [{name, epochs,
                                               teacher, first_epoch}], [] without training.phases)
    /index/step          int64 [n_records]                   global training step of each record
    /index/epoch         int64 [n_records]                   epoch of each record
    /index/phase         int64 [n_records]                   phase of each record (0-based; 0 without phases)
    /index/sample_ids    int64 [n_records, n_samples]        training-split index of each recorded sample
    /index/weight_step   int64 [n_weight_records]            step of each projection record
    /index/weight_epoch  int64 [n_weight_records]
    /index/weight_phase  int64 [n_weight_records]            phase of each projection record
    /populations/POP/VAR float  [n_records, n_samples, n_neurons]
    /projections/A->B/VAR float [n_weight_records, rows, cols]
    /rule/clip_counts/NAME int64 [n_records]                 cumulative count of clipped values
    /metrics/epoch       int64 [n_epochs];  /metrics/SPLIT/METRIC float64 [n_epochs]

Records are buffered in fixed host buffers of ``flush_every`` records and written, then
flushed to disk, only when a buffer is full, at an epoch end and at close. The file is
written in HDF5's SWMR mode (every dataset is created up front, then only appended to),
in which HDF5 orders its writes so that the file on disk is consistent at every moment:
a killed run leaves a readable file holding every record up to the last flush (read it
with ``swmr=True`` or :func:`open_recording`, or clear the open mark with
``python -m dendrisim.recording.recover FILE``), and the file can be read while the run
goes on. ``complete`` becomes true only in ``close(complete=True)``.

Every dataset carries HDF5's fletcher32 checksum, so damaged bytes are an error when read,
never values. The writer opens the file without HDF5's file locking (``locking=False``):
the run directory's own lock (:mod:`dendrisim.rundir`) guarantees one writer, and a
reader holding the file open (SWMR or plain) can then never make the writer fail. A
resumed run first cuts every dataset back to the lengths its checkpoint recorded
(:func:`~dendrisim.recording.recover.cut_back`): records written after that checkpoint
are dropped and written again.
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
from ..errors import ConfigError
from ..phases import phase_table
from .recover import clear_open_flags, compact, cut_back

SCHEMA_VERSION = 1
#: datasets added to schema 1 since it was first written (readers treat them as all zeros when missing;
#: a resumed run whose file lacks them writes zeros for the records before)
ADDED = ("index/phase", "index/weight_phase")
PHASE_MEANING = "training phase (0-based index into training.phases; 0 without phases)"
FILENAME = "recording.h5"
CHUNK_CACHE = 64 * 1024  # bytes per dataset: records are appended, never read back
#: beside the recording while it is written: disk space set aside so that the file can still be
#: closed after a full disk (HDF5 cannot close a file whose last flush fails: the process then crashes)
RESERVE_SUFFIX = ".reserve"
#: every dataset carries HDF5's fletcher32 checksum (off only to measure its cost: scripts/bench_recording.py)
FLETCHER32 = True

MEANING = {
    "soma": "somatic potential (soma = basal at steady state; simulated under dynamics.mode euler)",
    "basal": "summed basal input, sum of W * rate_pre + b",
    "apical": "apical input: the rule's feedback pathway plus explicit apical projections (top-down rates, "
              "interneurons); the teacher signal t - rate at the output",
    "dendrite": "an interneuron's dendritic input, sum of W * rate_pre + b (its basal-like input)",
    "nudging": "an interneuron's somatic nudging: the soma of the population it predicts, one to one",
    "rate": "output rate, f(soma)",
    "error": "somatic error, f'(soma) * apical (t - rate at a canonical output); under euler the soma-dendrite "
             "mismatch (f(soma) - f(g_B/g * basal)) / λ",
    "weight": "forward weights W: [n_post, n_pre] (dense), [c_post, c_pre, kh, kw] (conv2d)",
    "update": "descent direction written to W.grad by the rule",
    "feedback": "feedback weights carrying the target's error to the source: [n_pre, n_post] (dense), the kernel's shape (conv2d)",
    "feedback_update": "descent direction written to the feedback weights' .grad",
}


def _population_layout(pop, neurons: Optional[int], time_steps: Optional[int] = None
                       ) -> tuple[tuple[int, ...], list[str]]:
    """Per-sample shape and axis names of a population's records (the first N neurons, flat,
    with ``neurons``); a recurrent network's records have a time axis first."""
    if time_steps:
        shape, axes = _population_layout(pop, neurons)
        return (time_steps, *shape), ["time", *axes]
    if neurons:
        return (min(pop.size, neurons),), ["neuron"]
    if len(pop.shape) == 3:
        return pop.shape, ["channel", "height", "width"]
    if len(pop.shape) == 1:
        return pop.shape, ["neuron"]
    return pop.shape, [f"axis{i}" for i in range(len(pop.shape))]


def time_points(network, trace_steps: Optional[list[int]] = None) -> Optional[int]:
    """Length of a record's time axis: a recurrent network's sequence, or the states of a
    presentation that the settling scheme keeps (``trace_steps``); None for one state per record."""
    return network.time_steps or (len(trace_steps) if trace_steps else None)


def _weight_axes(proj, var: str) -> list[str]:
    if proj.connectivity == "conv2d":
        return ["post_channel", "pre_channel", "kernel_height", "kernel_width"]
    if proj.connectivity == "embedding":
        return ["word", "dim"]
    return ["post", "pre"] if var in ("weight", "update") else ["pre", "post"]


def selection(config: RecordingConfig, network, rule, *, file: Optional[str],
              notes: Optional[list[str]] = None) -> tuple[dict, dict]:
    """Check the recording block against the network and rule; return (populations, projections).

    A name that is wrong whatever the rule (an unknown population, projection or variable, an
    update of a frozen projection) is a ConfigError. What this run's rule cannot provide but
    another rule can (the feedback weights of a rule that carries none, a rule's own counters)
    is left out, with one line appended to ``notes`` saying what and why: a shipped model's
    recording block runs under every rule unedited."""
    notes = [] if notes is None else notes
    pops = config.populations
    if pops == "hidden":  # hidden pyramidal populations and interneurons, each with what it records
        interneurons = network.interneurons()
        pops = {p.name: p.recordable for p in network.hidden()}
        pops.update({p.name: tuple(v for v in p.recordable if v not in ("apical", "error") or p.name in network.needs_error)
                     for p in interneurons})
    for name, variables in pops.items():
        where = f"recording.populations.{name}"
        if name not in network.populations:
            raise ConfigError(f"{name!r} is not a population; populations are {', '.join(network.populations)}",
                              file=file, path=where)
        allowed = network.populations[name].recordable
        for var in variables:
            if var not in allowed:
                raise ConfigError(f"{var!r} is not recordable; {name} records {', '.join(allowed)}", file=file, path=where)
            if var in ("apical", "error") and name not in network.needs_error:
                raise ConfigError(f"{name} gets no {var}: nothing uses its error (no learnable projection ends there "
                                  "and no error is carried through it), so it would record nothing; record "
                                  f"{', '.join(v for v in allowed if v not in ('apical', 'error'))}", file=file, path=where)
    projs: dict[str, tuple[str, ...]] = {}
    for name, variables in config.projections.items():
        where = f"recording.projections.{name}"
        if name not in network.projections:
            raise ConfigError(f"{name!r} is not a projection; projections are {', '.join(network.projections)}",
                              file=file, path=where)
        if not network.projections[name].has_weight:
            raise ConfigError(f"{name!r} is a {network.projections[name].connectivity} projection and has no weights "
                              "to record", file=file, path=where)
        kept = []
        for var in variables:
            problem = _projection_variable_problem(network, rule, network.projections[name], var)
            if problem is None:
                kept.append(var)
            elif problem[1]:  # the rule's doing: left out, and said
                notes.append(f"{where}: {var!r} is left out: {problem[0]}")
            else:
                raise ConfigError(problem[0], file=file, path=where)
        if kept:
            projs[name] = tuple(kept)
    for var in config.rule:
        if var not in rule.recordables:
            message = (f"{var!r} is not recordable; rule {rule.options.rule} records "
                       f"{', '.join(rule.recordables) or 'nothing'}")
            if var not in _known_rule_variables():
                raise ConfigError(message, file=file, path="recording.rule")
            notes.append(f"recording.rule: {message}, so it is left out")
    return {k: tuple(v) for k, v in pops.items()}, projs


def _projection_variable_problem(network, rule, proj, var: str) -> Optional[tuple[str, bool]]:
    """Why ``var`` of ``proj`` cannot be recorded under ``rule``, and whether that is the
    rule's doing (another rule could provide it) rather than the network's; None: it can."""
    allowed = rule.recordables_for(network, proj)
    if var not in allowed:
        return (f"{var!r} is not recordable of {proj.name} under its rule {rule.options.rule}; choose from "
                f"{', '.join(allowed)}"), var in _known_projection_variables()
    if var == "update" and not proj.learnable:
        return f"{proj.name} is frozen (learnable: false): it has no update, so 'update' would record nothing", False
    feedback = rule.feedback_weight(network, proj) if var in ("feedback", "feedback_update") else None
    if var in ("feedback", "feedback_update") and feedback is None:
        from_input = proj.source == network.input_name
        return (f"{proj.name} carries no error back under rule {rule.options.rule} (its source "
                f"{'is the input' if from_input else 'gets its error another way'}), so {var!r} would record "
                "nothing"), not from_input
    if var == "feedback_update" and not feedback.requires_grad:
        return (f"{proj.name} has fixed feedback weights under these options: they get no update, so "
                "'feedback_update' would record nothing"), True
    return None


def _known_projection_variables() -> set[str]:
    """What some registered rule can record of a projection: a name outside it is a typo (an
    error), one inside it that this run's rule cannot provide is the rule's doing (left out)."""
    from ..plasticity import RULES

    return {v for name in RULES.names() for v in (*RULES.get(name).projection_recordables, "feedback_update")}


def _known_rule_variables() -> set[str]:
    from ..plasticity import RULES

    return {v for name in RULES.names() for v in RULES.get(name).recordables}


def estimate_bytes(config: RecordingConfig, network, rule, *, batch_size: int, steps: int, epochs: int,
                   trace_steps: Optional[list[int]] = None) -> dict:
    """Upper bound (uncompressed) of the file a run of ``steps`` steps over ``epochs`` epochs writes
    (``trace_steps``: the states of a presentation the settling scheme keeps, if any)."""
    pops, projs = selection(config, network, rule, file=None)
    item = 2 if config.dtype == "float16" else 4
    k = min(config.samples, batch_size)
    per_record = 24 + 8 * k + 8 * (len(rule.clip_names(network)) if "clip_counts" in config.rule else 0)
    for name, variables in pops.items():
        n = network.populations[name].size
        per_record += (len(variables) * k * (min(n, config.neurons) if config.neurons else n) * item
                       * (time_points(network, trace_steps) or 1))
    per_weight = 24 + sum(network.projections[n].weight.numel() * item * len(v) for n, v in projs.items())
    extra = epochs if config.at_epoch_end else 0
    records = (steps // config.every if config.every else 0) + extra
    weights_every = config.projections_every or config.every
    weight_records = ((steps // weights_every if weights_every else 0) + extra) if projs else 0
    total = per_record * records + per_weight * weight_records
    return {"bytes": total, "records": records, "weight_records": weight_records,
            "bytes_per_record": per_record, "bytes_per_weight_record": per_weight}


class _Stream:
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


class Recorder:
    """Writes what the recording block asks for into ``path`` while training runs."""

    def __init__(self, config: RecordingConfig, path: Path, *, network, rule, experiment,
                 metric_names: dict[str, list[str]], batch_size: int, seed: int, device: torch.device,
                 argv: list[str], resume: Optional[dict] = None, alignment: Optional[list[str]] = None,
                 scheme=None):
        """``scheme``: the settling scheme; when it keeps trajectories (``trace_steps``), each
        activity record holds the trajectory :meth:`after_step` is given."""
        self.config = config
        self.network, self.rule = network, rule
        self.trace_steps: Optional[list[int]] = scheme.trace_steps if scheme is not None else None
        self.dt: Optional[float] = scheme.config.dt if self.trace_steps else None
        self.pops, self.projs = selection(config, network, rule, file=experiment.file)
        self.path = Path(path)
        self.k = min(config.samples, batch_size)
        rng = np.random.default_rng(seed)
        positions = (np.arange(self.k) if config.sample_selection == "first"
                     else np.sort(rng.choice(batch_size, self.k, replace=False)))
        self.positions = torch.as_tensor(positions, device=device)
        #: the fewest samples a batch must hold to be recorded: every stored value is a real sample
        self.needs = int(positions.max()) + 1
        #: an ``every`` record fell on a batch too short for it: the next batch that fits takes it
        self.owed = bool(resume.get("owed", False)) if resume else False
        self.pin = device.type == "cuda"
        self.dtype = torch.float16 if config.dtype == "float16" else torch.float32
        self.n_rows = config.flush_every
        self.alignment_names = alignment or []
        self.weights_every = config.projections_every or config.every
        self.resume = resume
        if resume is not None and not self.path.is_file() and any(
                resume.get(k) for k in ("records", "weight_records", "epochs", "alignment_records")):
            from ..errors import FileFormatError

            raise FileFormatError(f"{self.path} is missing, but the checkpoint it resumes from expects "
                                  f"{resume.get('records', 0)} records and {resume.get('epochs', 0)} epochs in it; "
                                  "put the recording back, or start a new run")
        if resume is not None and self.path.is_file():
            self._reopen_for_resume(resume)
            self.file.attrs["complete"] = False
            self.file.attrs["resumed"] = json.dumps(json.loads(self.file.attrs.get("resumed", "[]")) + [
                {"at_step": resume.get("records_step", 0), "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "argv": argv}])
        else:
            self.resume = None
            rundir.refuse_link(self.path)  # h5py opens by name: never through a link out of the folder
            self.path.unlink(missing_ok=True)  # a new file ("x": O_EXCL), never another one truncated through a link
            self.file = h5py.File(self.path, "x", libver="latest", rdcc_nbytes=CHUNK_CACHE, locking=False)
            self._write_attrs(experiment, seed, device, argv)
        # the phases as this run has them (a resumed run may have extended the last one)
        self.file.attrs["phases"] = json.dumps(phase_table(experiment.config.training.phases))
        self._create(metric_names)
        self.file.swmr_mode = True  # from here on: append only, crash-consistent
        self.reserve = self._set_aside()
        self.pending = self.pending_weights = self.pending_alignment = 0
        self.last_recorded_step = self.last_weight_step = -1
        #: the position after the clean close (a trainer's next run continues from it)
        self.final_position: Optional[dict] = None

    def _set_aside(self) -> Path:
        """Allocate the reserve file: what closing the file may need to write (its chunk caches)."""
        from ..errors import WriteError

        # what a failed flush may leave dirty: the buffered records, the metadata, a chunk per dataset
        buffers = sum(s.buffer.numel() * s.buffer.element_size() for s in self._all_streams())
        chunks = sum(int(np.prod(ds.chunks)) * ds.dtype.itemsize for ds in self._all_datasets())
        size = min(64 * 2**20, 2**20 + 2 * buffers + chunks)
        reserve = self.path.with_name(self.path.name + RESERVE_SUFFIX)
        try:
            fd = rundir.create_new(reserve, what="the reserve")  # O_EXCL | O_NOFOLLOW: a planted link is removed
            try:
                os.posix_fallocate(fd, 0, size)
            finally:
                os.close(fd)
        except (OSError, WriteError) as err:
            reserve.unlink(missing_ok=True)
            try:
                self.file.close()
            except Exception:  # noqa: BLE001
                pass
            why = getattr(err, "strerror", None) or err
            raise WriteError(f"{reserve}: cannot set aside {size / 2**20:.1f} MiB to close the recording safely "
                             f"after a fault ({why}); free some space in {self.path.parent}") from None
        return reserve

    def _all_streams(self):
        return (*self.index.values(), *self.weight_index.values(), *self.streams.values(),
                *self.weight_streams.values(), *self.clip_streams.values(), *self.alignment_streams.values())

    def _all_datasets(self):
        yield from (s.dataset for s in self._all_streams())
        yield from self.metrics.values()

    def _release_reserve(self) -> None:
        try:
            self.reserve.unlink(missing_ok=True)
        except OSError:
            pass

    # ----------------------------------------------------------------- layout
    def _write_attrs(self, experiment, seed, device, argv) -> None:
        from .._version import __version__

        a = self.file.attrs
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

    def _dataset(self, name: str, shape: tuple[int, ...], dtype, axes: list[str], meaning: str, compress=True) -> h5py.Dataset:
        if self.resume is not None and name in self.file:  # continue the existing dataset from the checkpoint's length
            ds = self.file[name]
            ds.resize(self.resume.get(self._length_key(name), 0), axis=0)
            return ds
        n = self.resume.get(self._length_key(name), 0) if self.resume is not None else 0
        if n and name not in ADDED:
            raise KeyError(f"dataset {name} is missing")
        ds = self.file.create_dataset(
            name, shape=(0, *shape), maxshape=(None, *shape), dtype=dtype,
            chunks=(max(1, min(self.n_rows, 1024)) if not shape or np.prod(shape) < 65536 else 1, *shape),
            fletcher32=FLETCHER32, **(self._filters() if compress else {}),
        )
        ds.attrs["axes"] = np.array(axes, dtype=h5py.string_dtype())
        ds.attrs["meaning"] = meaning
        if n:  # a dataset added since the file was written (phase marks), resumed: zeros before
            ds.resize(n, axis=0)
            ds[:] = 0
        return ds

    def _reopen_for_resume(self, resume: dict) -> None:
        """Clear a killed run's open flags, cut the file back to the checkpoint and open it
        for appending; a damaged file is a one-paragraph error naming it, never a traceback."""
        from ..errors import DendrisimError, FileFormatError

        try:
            rundir.refuse_link(self.path)
            clear_open_flags(self.path)  # the run may have been killed
            cut_back(self.path, lambda name: resume.get(self._length_key(name), 0))
            rundir.refuse_link(self.path)  # h5py opens by name: checked right before
            self.file = h5py.File(self.path, "a", libver="latest", rdcc_nbytes=CHUNK_CACHE, locking=False)
        except DendrisimError:
            raise
        except (ValueError, OSError, KeyError, RuntimeError) as err:
            first = str(err).splitlines()[0] if str(err) else type(err).__name__
            raise FileFormatError(f"{self.path} cannot be resumed: it is damaged or not this run's recording "
                                  f"({first}); restore it from a copy, or start a new run") from None

    def _create(self, metric_names: dict[str, list[str]]) -> None:
        np_dtype = np.float16 if self.dtype == torch.float16 else np.float32
        rows = self.n_rows
        self.index = {
            "step": _Stream(self._dataset("index/step", (), np.int64, ["record"], "global training step", False), rows, torch.int64, False),
            "epoch": _Stream(self._dataset("index/epoch", (), np.int64, ["record"], "epoch (1-based)", False), rows, torch.int64, False),
            "phase": _Stream(self._dataset("index/phase", (), np.int64, ["record"], PHASE_MEANING, False),
                             rows, torch.int64, False),
            "sample_ids": _Stream(self._dataset("index/sample_ids", (self.k,), np.int64, ["record", "sample"],
                                                "index of the recorded sample in the training split", False),
                                  rows, torch.int64, False),
        }
        self.weight_index = {
            "step": _Stream(self._dataset("index/weight_step", (), np.int64, ["weight_record"], "global training step", False), rows, torch.int64, False),
            "epoch": _Stream(self._dataset("index/weight_epoch", (), np.int64, ["weight_record"], "epoch (1-based)", False), rows, torch.int64, False),
            "phase": _Stream(self._dataset("index/weight_phase", (), np.int64, ["weight_record"], PHASE_MEANING, False),
                             rows, torch.int64, False),
        }
        self.streams = {}
        for pop, variables in self.pops.items():
            shape, axes = _population_layout(self.network.populations[pop], self.config.neurons,
                                             time_points(self.network, self.trace_steps))
            for var in variables:
                ds = self._dataset(f"populations/{pop}/{var}", (self.k, *shape), np_dtype, ["record", "sample", *axes],
                                   MEANING[var])
                if self.trace_steps and self.resume is None:
                    ds.attrs["time"] = "Euler step of the presentation (see euler_steps; t = step x dt)"
                    ds.attrs["euler_steps"] = np.array(self.trace_steps, dtype=np.int64)
                    ds.attrs["dt"] = self.dt
                self.streams[(pop, var)] = _Stream(ds, rows, self.dtype, self.pin)
        self.weight_streams = {}
        for name, variables in self.projs.items():
            proj = self.network.projections[name]
            for var in variables:
                value = self.rule.projection_state(self.network, proj, var)
                shape = tuple(value.shape) if value is not None else self._guess_shape(proj, var)
                axes = ["weight_record", *_weight_axes(proj, var)]
                ds = self._dataset(f"projections/{name}/{var}", shape, np_dtype, axes, MEANING.get(var, var))
                self.weight_streams[(name, var)] = _Stream(ds, rows, self.dtype, self.pin)
        self.clip_streams = {}
        if "clip_counts" in self.config.rule:
            for name in self.rule.clip_names(self.network):
                ds = self._dataset(f"rule/clip_counts/{name}", (), np.int64, ["record"], "cumulative number of clipped values", False)
                self.clip_streams[name] = _Stream(ds, rows, torch.int64, False)
        self.alignment_streams = {}
        if self.alignment_names:
            from ..alignment import MEASURES

            self.alignment_streams["step"] = _Stream(self._dataset(
                "alignment/step", (), np.int64, ["alignment_record"], "global training step", False), rows, torch.int64, False)
            self.alignment_streams["epoch"] = _Stream(self._dataset(
                "alignment/epoch", (), np.int64, ["alignment_record"], "epoch (1-based)", False), rows, torch.int64, False)
            for name in self.alignment_names:
                for m in MEASURES:
                    ds = self._dataset(f"alignment/{name}/{m}", (), np.float64, ["alignment_record"],
                                       {"update_angle": "angle (degrees) between the rule's and backprop's update",
                                        "update_norm_ratio": "norm of the rule's update over backprop's",
                                        "feedback_angle": "angle (degrees) between feedback weights and W transposed"}[m],
                                       False)
                    self.alignment_streams[(name, m)] = _Stream(ds, rows, torch.float64, False)
        self.metrics = {"epoch": self._dataset("metrics/epoch", (), np.int64, ["epoch"], "epoch (1-based)", False)}
        for split, names in metric_names.items():
            for m in names:
                self.metrics[f"{split}_{m}"] = self._dataset(f"metrics/{split}/{m}", (), np.float64, ["epoch"], f"{split} {m}", False)
        self.file.flush()

    def _filters(self) -> dict:
        c = self.config
        if c.compression == "gzip":
            return {"compression": "gzip", "compression_opts": c.compression_level, "shuffle": True}
        if c.compression == "lzf":
            return {"compression": "lzf", "shuffle": True}
        return {}

    @staticmethod
    def _length_key(name: str) -> str:
        if name.startswith("metrics/"):
            return "epochs"
        if name.startswith("projections/") or name.startswith("index/weight_"):
            return "weight_records"
        if name.startswith("alignment/"):
            return "alignment_records"
        return "records"

    def position(self) -> dict:
        """Lengths of the file's datasets (after a flush): where a resumed run continues."""
        return {"records": int(self.index["step"].dataset.shape[0]) + self.pending,
                "weight_records": int(self.weight_index["step"].dataset.shape[0]) + self.pending_weights,
                "epochs": int(self.metrics["epoch"].shape[0]),
                "alignment_records": (int(self.alignment_streams["step"].dataset.shape[0]) + self.pending_alignment
                                      if self.alignment_streams else 0),
                "records_step": self.last_recorded_step, "owed": self.owed}

    @staticmethod
    def _guess_shape(proj, var: str) -> tuple[int, ...]:
        return tuple(proj.weight.shape) if var in ("weight", "update") else tuple(proj.feedback_shape)

    # ----------------------------------------------------------------- records
    def fits(self, n: int) -> bool:
        """Whether a batch of ``n`` samples holds every recorded sample position."""
        return n >= self.needs

    def due(self, step: int, n: int, *, epoch_end: bool = False) -> bool:
        """Whether :meth:`after_step` for ``step`` (a batch of ``n`` samples) records activity.

        Records come every ``every`` steps and, with ``at_epoch_end``, after the epoch's
        last batch that fits (the trainer says which: ``epoch_end``). A batch too short for
        the recorded samples (an epoch's last, partial batch) is never recorded: a record
        due then is taken at the next batch that fits, so no stored value is padding."""
        if not self.fits(n):
            return False
        every = self.config.every
        return self.owed or bool(every and step % every == 0) or (epoch_end and self.config.at_epoch_end)

    def after_step(self, step: int, epoch: int, batch_ids: torch.Tensor, *, epoch_end: bool = False,
                   trajectory: Optional[dict] = None, phase: int = 0) -> None:
        """Record what is due after training step ``step``; ``trajectory``: the presentation's
        (:class:`dendrisim.settling.Presentation`), asked for with ``capture`` when :meth:`due`;
        ``phase``: the step's phase (0-based index into ``training.phases``)."""
        every = self.config.every
        if self.due(step, batch_ids.shape[0], epoch_end=epoch_end):
            if self.last_recorded_step != step:
                self.record(step, epoch, batch_ids, trajectory=trajectory, phase=phase)
            self.owed = False
        elif every and step % every == 0:
            self.owed = True
        weights_due = bool(self.weights_every and step % self.weights_every == 0) or (
            epoch_end and self.config.at_epoch_end)
        if self.projs and weights_due and self.last_weight_step != step:
            self.record_weights(step, epoch, phase=phase)

    def end_epoch(self, step: int, epoch: int, batch_ids: Optional[torch.Tensor], row: dict) -> None:
        """Append the epoch's metrics and flush (the network now holds evaluation batches)."""
        for key, ds in self.metrics.items():
            if self.failure is not None or not self.file.id.valid:
                break
            value = row.get(key, np.nan) if key != "epoch" else row["epoch"]
            try:
                ds.resize(ds.shape[0] + 1, axis=0)
                rundir.fault_point("recording", self.path)
                ds[-1] = value
            except Exception as err:  # noqa: BLE001 - h5py raises OSError, RuntimeError, ... on a full disk
                self._failed(f"at epoch {epoch}", err)
        self.flush()

    def record(self, step: int, epoch: int, batch_ids: torch.Tensor, *, trajectory: Optional[dict] = None,
               phase: int = 0) -> None:
        if self.failure is not None:
            return
        i = self.pending
        if not self.fits(batch_ids.shape[0]):
            raise ValueError(f"a batch of {batch_ids.shape[0]} samples cannot be recorded: the recorder's sample "
                             f"positions need {self.needs}")
        pos = self.positions
        self.index["step"].buffer[i] = step
        self.index["epoch"].buffer[i] = epoch
        self.index["phase"].buffer[i] = phase
        self.index["sample_ids"].buffer[i].copy_(batch_ids.index_select(0, pos))
        for (pop, var), stream in self.streams.items():
            population = self.network.populations[pop]
            if self.trace_steps:  # the presentation's trajectory: [samples, time, ...] already
                value = (trajectory or {}).get(pop, {}).get(var)
                if value is None:
                    raise RuntimeError(f"no trajectory of {pop}.{var} for step {step}: the trainer asks the settling "
                                       "scheme for it (present(capture=...)) before every recorded step (Recorder.due)")
                stream.put(i, value.flatten(2)[:, :, : self.config.neurons] if self.config.neurons else value)
                continue
            value = population.state(var)
            if value is None:
                stream.put(i, None)
                continue
            if self.network.time_steps:  # [time, batch, ...] -> [samples, time, ...]
                value = value.detach().index_select(1, pos).transpose(0, 1)
                if self.config.neurons:
                    value = value.flatten(2)[:, :, : self.config.neurons]
            else:
                value = value.detach().index_select(0, pos)
                if self.config.neurons:
                    value = value.flatten(1)[:, : self.config.neurons]
            stream.put(i, value)
        for name, stream in self.clip_streams.items():
            counter = self.rule.clip_counts.get(name)
            stream.buffer[i] = 0 if counter is None else counter
        self.pending += 1
        self.last_recorded_step = step
        if self.pending == self.n_rows:
            self.flush()

    def record_weights(self, step: int, epoch: int, *, phase: int = 0) -> None:
        if self.failure is not None:
            return
        i = self.pending_weights
        self.weight_index["step"].buffer[i] = step
        self.weight_index["epoch"].buffer[i] = epoch
        self.weight_index["phase"].buffer[i] = phase
        for (name, var), stream in self.weight_streams.items():
            value = self.rule.projection_state(self.network, self.network.projections[name], var)
            stream.put(i, None if value is None else value.detach())
        self.pending_weights += 1
        self.last_weight_step = step
        if self.pending_weights == self.n_rows:
            self.flush()

    #: why recording stopped (a write failed, e.g. the disk is full); the trainer then stops the run
    failure: Optional[str] = None

    def record_alignment(self, step: int, epoch: int, values: dict[str, dict[str, float]]) -> None:
        if self.failure is not None or not self.alignment_streams:
            return
        i = self.pending_alignment
        self.alignment_streams["step"].buffer[i] = step
        self.alignment_streams["epoch"].buffer[i] = epoch
        for name, measures in values.items():
            for m, v in measures.items():
                self.alignment_streams[(name, m)].buffer[i] = v
        self.pending_alignment += 1
        if self.pending_alignment == self.n_rows:
            self.flush()

    def flush(self) -> None:
        """Write the buffered records and flush the file to disk.

        A failed write (a full disk, say) does not raise: the recorder stops writing,
        notes the reason in ``failure`` and closes the file; in SWMR mode everything
        flushed before stays intact.
        """
        if self.failure is not None or not self.file.id.valid:
            return
        try:
            self._write_pending()
        except Exception as err:  # noqa: BLE001 - h5py raises OSError, RuntimeError, ... on a full disk
            self._failed(f"at step {self.last_recorded_step}", err)

    def _failed(self, where: str, err: BaseException) -> None:
        """Stop writing for good: note why, drop the buffers, close the file (what was flushed stays)."""
        if self.failure is None:
            text = str(err).strip().splitlines()
            self.failure = (f"writing {self.path} failed {where} ({type(err).__name__}: "
                            f"{text[0][:200] if text else ''}); the records flushed before are kept")
        self.pending = self.pending_weights = self.pending_alignment = 0
        self._release_reserve()  # the space HDF5 needs to close the file
        try:
            self.file.close()
        except Exception:  # noqa: BLE001 - the file may be unwritable; what was flushed stays
            pass

    def _write_pending(self) -> None:
        if self.pin:
            torch.cuda.synchronize()
        # the index last: a kill between two writes leaves no index row without its data
        # (the reader also counts only the rows every stream of a group holds)
        if self.pending:
            for stream in [*self.streams.values(), *self.clip_streams.values(), *self.index.values()]:
                rundir.fault_point("recording", self.path)
                stream.write(self.pending)
            self.pending = 0
        if self.pending_weights:
            for stream in [*self.weight_streams.values(), *self.weight_index.values()]:
                rundir.fault_point("recording", self.path)
                stream.write(self.pending_weights)
            self.pending_weights = 0
        if self.pending_alignment:
            for stream in self.alignment_streams.values():
                rundir.fault_point("recording", self.path)
                stream.write(self.pending_alignment)
            self.pending_alignment = 0
        self.file.flush()

    def close(self, *, complete: bool) -> None:
        """Write what is buffered, mark the file complete (clean end only) and close it."""
        if not self.file.id.valid:
            return
        if not complete:  # a stop or a fault elsewhere (the checkpoint's disk may be full): room to close
            self._release_reserve()
        self.flush()
        self._release_reserve()
        if self.failure is not None:
            return
        try:
            position = self.position()
            self.file.close()
            rundir.fault_point("recording", self.path)
            rundir.refuse_link(self.path)
            with h5py.File(self.path, "r+", locking=False) as f:  # attributes cannot change in SWMR mode
                f.attrs["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
                f.attrs["complete"] = bool(complete)
        except Exception as err:  # noqa: BLE001 - a full disk, say
            self._failed("at close", err)
            return
        self.final_position = position
        compact(self.path)
