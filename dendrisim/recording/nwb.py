"""Write a dendrisim recording as a Neurodata Without Borders (NWB) file, with pynwb.

Imported only by :func:`dendrisim.export_nwb` (pynwb is the optional extra ``nwb``). What
goes where (``docs/howto/nwb.md`` has the table):

- ``/populations/POP/VAR`` -> ``acquisition["POP.VAR"]``, a TimeSeries with one row per
  recorded presentation (record, sample) and, for a record with a time axis (an Euler
  trajectory, a recurrent network's sequence), per state: rows ``[records * samples * states,
  *per-sample shape]``, the values bit for bit, in the order record, sample, state.
- The clock: a recorded presentation lasts ``L`` (an Euler trajectory: ``(last kept Euler
  step + 1) * dt``; a sequence: its length, one unit a position; one state: ``1 / samples``);
  the samples of a record at training step ``s`` are laid one after another from ``s * samples
  * L``, so state ``e`` of sample ``j`` is at ``t = (s * samples + j) * L + tau_e`` (``tau_e``:
  ``euler_steps[e] * dt``, the position, or 0). One state a record: one training step is one
  second. NWB's times are seconds: dendrisim's are training steps and model time units.
- ``/index/*`` -> ``intervals["trials"]``, one row per recorded presentation (start and stop
  time, record, sample, step, epoch, phase, sample_id).
- ``/projections/A->B/VAR`` and ``/index/weight_*`` -> ``intervals["weight_records"]``: a row
  per projection record (the step's time span, step, epoch, phase, a column ``A->B.VAR`` of
  matrices). ``/alignment/*`` -> ``intervals["alignment_records"]`` the same way.
- ``/rule/clip_counts/NAME`` -> ``acquisition["clip_counts.NAME"]`` (``:`` written ``.``),
  at ``s * samples * L`` of each record's step.
- ``/metrics/*`` -> ``processing["training"]["metrics"]``, a table with a row per epoch;
  the root attribute ``phases`` -> ``processing["training"]["phases"]``.
- The root attributes: ``session_start_time`` from ``created``, ``protocol`` the resolved
  model file, ``notes`` the run settings (JSON: seed, versions, argv, device, ...).
"""
from __future__ import annotations

import datetime
import json
import os
import uuid
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Callable, Optional, Union

import h5py
import numpy as np
from hdmf.backends.hdf5 import H5DataIO
from hdmf.common import DynamicTable, VectorData
from hdmf.data_utils import AbstractDataChunkIterator, DataChunk
from pynwb import NWBHDF5IO, NWBFile, TimeSeries
from pynwb.epoch import TimeIntervals
from pynwb.file import Subject

from .reader import Recording

#: the unit of each alignment measure (compartments and weights are in model units, "a.u.")
ALIGNMENT_UNITS = {"update_angle": "degrees", "update_norm_ratio": "ratio", "feedback_angle": "degrees"}
#: a time series is read and written about this many bytes at a time, whole records (memory stays bounded)
BLOCK_BYTES = 2**20


@dataclass(frozen=True)
class Clock:
    """Where a recording's values fall on the NWB file's time axis (see the module's docstring)."""

    samples: int  #: recorded samples per record (k)
    slot: float  #: L: the length of one recorded presentation
    taus: np.ndarray  #: the time of each kept state within a presentation (one 0 without a time axis)
    what: str  #: how the clock was set, in words (for the descriptions)

    def step_time(self, steps: np.ndarray) -> np.ndarray:
        """The time at which training step ``s`` begins: ``s * samples * L``."""
        return np.asarray(steps, dtype=np.float64) * (self.samples * self.slot)

    def presentation_starts(self, steps: np.ndarray) -> np.ndarray:
        """``[records * samples]``: the start of each recorded presentation, record-major."""
        first = np.asarray(steps, dtype=np.float64)[:, None] * self.samples + np.arange(self.samples)
        return (first * self.slot).reshape(-1)

    def row_times(self, steps: np.ndarray) -> np.ndarray:
        """``[records * samples * states]``: the time of every row of an activity series."""
        return (self.presentation_starts(steps)[:, None] + self.taus[None, :]).reshape(-1)


def clock_of(rec: Recording, samples: int) -> Clock:
    """The clock from the first population dataset with a time axis (all share the network's)."""
    for pop, variables in rec.populations.items():
        ds = rec.file[f"populations/{pop}/{variables[0]}"]
        axes = [str(a) for a in ds.attrs.get("axes", [])]
        if len(axes) > 2 and axes[2] == "time":
            if "euler_steps" in ds.attrs and "dt" in ds.attrs:
                kept, dt = np.asarray(ds.attrs["euler_steps"], dtype=np.float64), float(ds.attrs["dt"])
                return Clock(samples, (kept[-1] + 1) * dt, kept * dt,
                             f"Euler states at euler_step x dt (dt {dt:g}) within a presentation of "
                             f"(last kept step + 1) x dt = {(kept[-1] + 1) * dt:g}")
            n = ds.shape[2]
            return Clock(samples, float(n), np.arange(n, dtype=np.float64),
                         f"sequence positions, one unit apart, within a presentation of {n}")
    return Clock(samples, 1.0 / samples, np.zeros(1), "one state a presentation; one training step is one unit")


class _Rows(AbstractDataChunkIterator):
    """The rows of one ``/populations`` dataset in NWB's layout, read a record at a time:
    ``[records, samples, (states,) *shape]`` -> ``[records * samples * states, *shape]`` (a
    shape of more than three axes is flattened to one: TimeSeries hold at most four)."""

    def __init__(self, rec: Recording, name: str, records: int):
        self.rec, self.name, self.records = rec, name, records
        ds = rec.file[name]
        self.per_record = int(np.prod(ds.shape[1:3] if _has_time(ds) else ds.shape[1:2]))
        rest = tuple(ds.shape[3:] if _has_time(ds) else ds.shape[2:])
        self.rest = rest if len(rest) <= 3 else (int(np.prod(rest)),)
        self._dtype = ds.dtype
        record_bytes = int(np.prod(ds.shape[1:])) * ds.dtype.itemsize
        self.block = max(1, min(records, BLOCK_BYTES // max(1, record_bytes)))  #: records a chunk
        self.next_record = 0

    def __iter__(self):
        return self

    def __next__(self) -> DataChunk:
        if self.next_record >= self.records:
            raise StopIteration
        r = self.next_record
        stop = min(r + self.block, self.records)
        block = self.rec._read(self.name, slice(r, stop)).reshape(-1, *self.rest)
        self.next_record = stop
        rows = slice(r * self.per_record, stop * self.per_record)
        return DataChunk(data=block, selection=(rows, *(slice(None),) * len(self.rest)))

    def recommended_chunk_shape(self) -> tuple:
        return (self.per_record * self.block, *self.rest)

    def recommended_data_shape(self) -> tuple:
        return (self.records * self.per_record, *self.rest)

    @property
    def dtype(self):
        return self._dtype

    @property
    def maxshape(self) -> tuple:
        return self.recommended_data_shape()


def _has_time(ds) -> bool:
    axes = [str(a) for a in ds.attrs.get("axes", [])]
    return len(axes) > 2 and axes[2] == "time"


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _times(timestamps: np.ndarray) -> dict:
    """TimeSeries timing keywords: ``starting_time`` and ``rate`` when the times are evenly spaced
    (NWB's best practice), else the ``timestamps``."""
    diffs = np.diff(timestamps)
    if len(timestamps) > 2 and diffs[0] > 0 and np.all(np.round(diffs - diffs[0], 9) == 0):
        return {"starting_time": float(timestamps[0]),
                "rate": float((len(timestamps) - 1) / (timestamps[-1] - timestamps[0]))}
    return {"timestamps": H5DataIO(timestamps, compression="gzip")}


def _column(name: str, description: str, data) -> VectorData:
    if isinstance(data, list):  # text
        return VectorData(name=name, description=description, data=data)
    return VectorData(name=name, description=description, data=H5DataIO(np.asarray(data), compression="gzip"))


def session_start(created: str, path: Path) -> datetime.datetime:
    from ..errors import FileFormatError

    try:
        return datetime.datetime.strptime(created, "%Y-%m-%dT%H:%M:%S%z")
    except ValueError:
        raise FileFormatError(f"{path}: its attribute created is {created!r}, not a time such as "
                              "2026-01-31T12:00:00+0000; not a dendrisim recording, or a damaged one") from None


def run_settings(rec: Recording, run_dir: Optional[Path]) -> dict:
    """Everything about the run but the model file: the recording's root attributes (seed,
    versions, argv, device, ...) and, beside the recording, run.json."""
    settings = {k: _text(v) if isinstance(v, (str, bytes)) else v.item() if hasattr(v, "item") else v
                for k, v in rec.attrs.items() if k != "model_yaml"}
    for key in ("argv", "phases", "resumed"):
        if isinstance(settings.get(key), str):
            try:
                settings[key] = json.loads(settings[key])
            except ValueError:
                pass
    run_json = run_dir / "run.json" if run_dir is not None else None
    if run_json is not None and run_json.is_file():
        try:
            settings["run.json"] = json.loads(run_json.read_text())
        except (OSError, ValueError):
            pass
    return settings


def model_file(rec: Recording, source: Path, log: Callable[[str], None]) -> tuple[str, dict]:
    """``(the model file as the recording holds it, its mapping)``: the root attribute
    ``model_yaml``, parsed within the model files' limits. One that is missing, not text,
    not YAML or not a mapping is still exported as written (the mapping is then ``{}``), and
    ``log`` gets a note saying so."""
    from ..config.loader import load_yaml_text
    from ..errors import ConfigError, brief

    value = rec.attrs.get("model_yaml")
    as_written = "it goes into the NWB file's protocol as written, unparsed"
    if value is None:
        log(f"note: {source} has no model_yaml attribute (the run's model file): the NWB file's protocol is empty")
        return "", {}
    if not isinstance(value, str):
        plain = value.tolist() if hasattr(value, "tolist") else value
        log(f"note: {source}: its model_yaml attribute (the run's model file) is not text but {brief(plain)} "
            f"({type(value).__name__}); {as_written}")
        return str(plain), {}
    try:
        model = load_yaml_text(value, file=str(source), path="model_yaml")
    except ConfigError as err:
        log(f"note: {' '.join(str(err).split())}: the run's model file in the recording is damaged; {as_written}")
        return value, {}
    if not isinstance(model, dict):
        log(f"note: {source}: its model_yaml attribute (the run's model file) is not a YAML mapping but "
            f"{brief(model)}; {as_written}")
        return value, {}
    return value, model


def new_file(rec: Recording, *, source: Path, run_dir: Optional[Path], records: int, samples: int,
             log: Callable[[str], None] = lambda line: None) -> NWBFile:
    """An NWB file holding the run's metadata: the model file, the settings, a simulated subject."""
    attrs = rec.attrs
    settings = run_settings(rec, run_dir)
    protocol, model = model_file(rec, source, log)
    name, rule = attrs.get("model_name", "?"), attrs.get("rule", "?")
    identifier = uuid.uuid5(uuid.NAMESPACE_URL, "dendrisim:" + json.dumps(
        [attrs.get("created"), name, settings.get("seed"), settings.get("argv"), protocol], default=str))
    nwb = NWBFile(
        session_description=(f"dendrisim simulation: model {name} trained with plasticity rule {rule} "
                             f"({records} activity records of {samples} samples)"),
        identifier=str(identifier),
        session_start_time=session_start(_text(attrs.get("created", "")), source),
        session_id=(run_dir.name if run_dir is not None else source.stem) or None,
        experiment_description=str(model.get("description") or f"dendrisim model {name}, rule {rule}"),
        notes=json.dumps(settings, indent=1, default=str),
        protocol=protocol,
        source_script=f"dendrisim {attrs.get('dendrisim_version', '?')}, exported by dendrisim.export_nwb",
        source_script_file_name="dendrisim/recording/nwb.py",
        keywords=["dendrisim", "simulation", "dendritic learning", str(rule), str(name)],
    )
    nwb.subject = Subject(
        subject_id=f"{name}-seed{settings.get('seed', '?')}", sex="O", date_of_birth=nwb.session_start_time,
        description=(f"a simulated network, not an animal: dendrisim model {name} (its resolved model file is the "
                     "protocol); born when its run started"))
    return nwb


def build(rec: Recording, *, source: Path, run_dir: Optional[Path],
          log: Callable[[str], None] = lambda line: None) -> NWBFile:
    """The NWB file of a recording (its data read lazily while it is written); ``log`` gets a
    note on series that nwbinspector's orientation heuristic will flag."""
    steps, sample_ids = rec.steps, rec.sample_ids
    records, k = len(steps), (sample_ids.shape[1] if sample_ids.ndim == 2 else 0)
    clock = clock_of(rec, max(k, 1))
    nwb = new_file(rec, source=source, run_dir=run_dir, records=records, samples=k, log=log)
    time_note = f"NWB seconds are model time here: {clock.what}"
    if records:
        short = _add_activity(nwb, rec, clock, steps, records, time_note)
        if short:
            log(f"note: {len(short)} series ({', '.join(short[:3])}{', ...' if len(short) > 3 else ''}) have fewer "
                f"rows ({records * k * len(clock.taus)}: records x samples x states) than neurons, so nwbinspector's "
                "check_data_orientation, which expects time to be the longest axis, flags them; their first axis is "
                "time all the same. A run with more records (recording.every) or fewer neurons (recording.neurons) "
                "has none")
        _add_trials(nwb, clock, steps, rec.epochs, rec.phase, sample_ids, time_note)
        for cname, counts in rec.clip_counts.items():
            nwb.add_acquisition(TimeSeries(
                name="clip_counts." + cname.replace(":", "."), data=H5DataIO(counts, compression="gzip"),
                unit="count", description=f"/rule/clip_counts/{cname}: cumulative number of values the rule clipped, "
                                          f"at the start of each activity record's step. {time_note}",
                **_times(clock.step_time(steps))))
    _add_weights(nwb, rec, clock, time_note)
    _add_alignment(nwb, rec, clock, time_note)
    _add_training(nwb, rec)
    return nwb


def _add_activity(nwb: NWBFile, rec: Recording, clock: Clock, steps: np.ndarray, records: int,
                  time_note: str) -> list[str]:
    """Add a TimeSeries per recorded compartment; return the names of those with more neurons than rows."""
    times, short = clock.row_times(steps), []
    for pop, variables in rec.populations.items():
        for var in variables:
            name = f"populations/{pop}/{var}"
            ds = rec.file[name]
            axes = [str(a) for a in ds.attrs.get("axes", [])]
            rows = _Rows(rec, name, records)
            shape = "x".join(map(str, ds.shape[3 if _has_time(ds) else 2:])) or "scalar"
            nwb.add_acquisition(TimeSeries(
                name=f"{pop}.{var}", data=H5DataIO(rows, compression="gzip", shuffle=True), unit="a.u.",
                description=(f"/{name} of the dendrisim recording ({_text(ds.attrs.get('meaning', var))}); its axes "
                             f"{axes}, here one row per (record, sample{', ' + axes[2] if _has_time(ds) else ''}) "
                             f"in that order, then the per-sample shape {shape}"
                             f"{' flattened' if len(rows.rest) < len(ds.shape) - (3 if _has_time(ds) else 2) else ''}"
                             f"; model units (dimensionless). {time_note}"),
                comments=json.dumps({"dataset": name, "axes": axes, "shape": list(ds.shape)}),
                **_times(times)))
            if rows.rest and max(rows.rest) > len(times):
                short.append(f"{pop}.{var}")
    return short


def _add_trials(nwb, clock: Clock, steps, epochs, phase, sample_ids, time_note: str) -> None:
    records, k = sample_ids.shape
    starts = clock.presentation_starts(steps)
    each = lambda values: np.repeat(np.asarray(values), k)  # noqa: E731 - per record -> per presentation
    nwb.trials = TimeIntervals(name="trials", description=(
        "one row per recorded presentation: a sample of the training batch at a recorded step (the "
        f"/index datasets of the recording, record-major). {time_note}"), columns=[
        _column("start_time", "start of the presentation", starts),
        _column("stop_time", "end of the presentation", starts + clock.slot),
        _column("record", "row of the recording's /index datasets (0-based)", each(np.arange(records))),
        _column("sample", "position among the record's samples (0-based)", np.tile(np.arange(k), records)),
        _column("step", "/index/step: global training step", each(steps)),
        _column("epoch", "/index/epoch: epoch (1-based)", each(epochs)),
        _column("phase", "/index/phase: training phase (0-based index into the phases table)", each(phase)),
        _column("sample_id", "/index/sample_ids: index of the sample in the training split", sample_ids.reshape(-1)),
    ])


def _interval_table(name: str, description: str, clock: Clock, steps: np.ndarray, columns: list) -> TimeIntervals:
    start = clock.step_time(steps)
    return TimeIntervals(name=name, description=description, columns=[
        _column("start_time", "start of the training step", start),
        _column("stop_time", "end of the training step", start + clock.samples * clock.slot),
        _column("step", "global training step", steps), *columns])


def _add_weights(nwb: NWBFile, rec: Recording, clock: Clock, time_note: str) -> None:
    steps = rec.weight_steps
    if not rec.projections or not len(steps):
        return
    n = len(steps)
    columns = [_column("epoch", "/index/weight_epoch: epoch (1-based)", rec._read("index/weight_epoch", slice(0, n))),
               _column("phase", "/index/weight_phase: training phase (0-based)", rec.weight_phase)]
    for proj, variables in rec.projections.items():
        for var in variables:
            ds = rec.file[f"projections/{proj}/{var}"]
            axes = [str(a) for a in ds.attrs.get("axes", [])]
            columns.append(_column(f"{_nwb_name(proj)}.{var}", f"/projections/{proj}/{var}: "
                                   f"{_text(ds.attrs.get('meaning', var))}; axes {axes}; model units",
                                   rec._read(ds.name, slice(0, n))))
    nwb.add_time_intervals(_interval_table(
        "weight_records", "projection records: after the update of each recorded step, the recorded weights "
        f"(/projections), one matrix per row. {time_note}", clock, steps, columns))


def _nwb_name(projection: str) -> str:
    """A projection's name as an NWB column name, which cannot hold ':' (one that reads a
    variable, ``SRC:READS->TGT``, becomes ``SRC.READS->TGT``, as the clip counters do); the
    column's description keeps the recording's path."""
    return projection.replace(":", ".")


def _add_alignment(nwb: NWBFile, rec: Recording, clock: Clock, time_note: str) -> None:
    alignment = rec.alignment
    if not alignment or not len(alignment["step"]):
        return
    columns = [_column("epoch", "/alignment/epoch: epoch (1-based)", alignment["epoch"])]
    for proj, measures in alignment.items():
        if isinstance(measures, dict):
            for m, values in measures.items():
                unit = ALIGNMENT_UNITS.get(m, "model units")
                columns.append(_column(f"{_nwb_name(proj)}.{m}", f"/alignment/{proj}/{m} in {unit}", values))
    nwb.add_time_intervals(_interval_table(
        "alignment_records", f"training.alignment: each measured step's alignment to backprop. {time_note}",
        clock, alignment["step"], columns))


def _add_training(nwb: NWBFile, rec: Recording) -> None:
    metrics, phases = rec.metrics, rec.phases
    if not len(metrics["epoch"]) and not phases:
        return
    module = nwb.create_processing_module("training", "per-epoch metrics (/metrics) and the training phases")
    if len(metrics["epoch"]):
        module.add(DynamicTable(name="metrics", description="/metrics: one row per epoch", columns=[
            _column(key, "epoch (1-based)" if key == "epoch" else
                    f"/metrics/{key.split('_', 1)[0]}/{key.split('_', 1)[1]} at the end of the epoch", values)
            for key, values in metrics.items()]))
    if phases:
        module.add(DynamicTable(name="phases", description="training.phases: the run's phases in order", columns=[
            _column("phase_name", "the phase's name", [str(p["name"]) for p in phases]),
            _column("epochs", "its number of epochs", np.array([int(p["epochs"]) for p in phases])),
            _column("teacher", "whether the output teacher was on", np.array([bool(p["teacher"]) for p in phases])),
            _column("first_epoch", "its first epoch (1-based)", np.array([int(p["first_epoch"]) for p in phases]))]))


def write(nwb: NWBFile, target: Union[Path, BinaryIO]) -> None:
    """Write ``nwb`` (from :func:`build`; its recording still open) to ``target``: a path, or a
    binary file object open for reading and writing (the temporary file that
    :func:`dendrisim.rundir.write_atomic` gives)."""
    with warnings.catch_warnings():  # a temporary file's name does not end in .nwb: pynwb would say so
        warnings.filterwarnings("ignore", message="The file path provided: .* does not end in '.nwb'")
        if isinstance(target, (str, os.PathLike)):
            with NWBHDF5IO(str(target), "w") as io:
                io.write(nwb)
            return
        with h5py.File(target, "w") as file, NWBHDF5IO(file=file, mode="w") as io:
            io.write(nwb)
