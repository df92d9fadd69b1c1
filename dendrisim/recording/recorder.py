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

The file's layout (its datasets, created up front, and the reserve) is built by
:mod:`dendrisim.recording.layout`; what the recording block selects, and the size of its
file, by :mod:`dendrisim.recording.plan` (which imports no HDF5).
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Optional

import h5py
import numpy as np
import torch

from .. import rundir
from ..config.schema import RecordingConfig
from ..phases import phase_table
from .layout import CHUNK_CACHE, SCHEMA_VERSION, Stream, create, reopen_for_resume, set_aside, write_attrs  # noqa: F401
from .plan import MEANING, estimate_bytes, selection, time_points  # noqa: F401  (their home was here)
from .recover import compact

_Stream = Stream  # its name before it moved to layout.py
FILENAME = "recording.h5"


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
            self.file = reopen_for_resume(self.path, resume)
            self.file.attrs["complete"] = False
            self.file.attrs["resumed"] = json.dumps(json.loads(self.file.attrs.get("resumed", "[]")) + [
                {"at_step": resume.get("records_step", 0), "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "argv": argv}])
        else:
            self.resume = None
            rundir.refuse_link(self.path)  # h5py opens by name: never through a link out of the folder
            self.path.unlink(missing_ok=True)  # a new file ("x": O_EXCL), never another one truncated through a link
            self.file = h5py.File(self.path, "x", libver="latest", rdcc_nbytes=CHUNK_CACHE, locking=False)
            write_attrs(self.file, experiment, seed, device, argv)
        # the phases as this run has them (a resumed run may have extended the last one)
        self.file.attrs["phases"] = json.dumps(phase_table(experiment.config.training.phases))
        create(self, metric_names)
        self.file.swmr_mode = True  # from here on: append only, crash-consistent
        self.reserve = set_aside(self)
        self.pending = self.pending_weights = self.pending_alignment = 0
        self.last_recorded_step = self.last_weight_step = -1
        #: the position after the clean close (a trainer's next run continues from it)
        self.final_position: Optional[dict] = None

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

    def position(self) -> dict:
        """Lengths of the file's datasets (after a flush): where a resumed run continues."""
        return {"records": int(self.index["step"].dataset.shape[0]) + self.pending,
                "weight_records": int(self.weight_index["step"].dataset.shape[0]) + self.pending_weights,
                "epochs": int(self.metrics["epoch"].shape[0]),
                "alignment_records": (int(self.alignment_streams["step"].dataset.shape[0]) + self.pending_alignment
                                      if self.alignment_streams else 0),
                "records_step": self.last_recorded_step, "owed": self.owed}

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
                   state=None, trajectory: Optional[dict] = None, phase: int = 0) -> None:
        """Record what is due after training step ``step``, from what its presentation returned
        (:class:`dendrisim.settling.Presentation`): its ``state`` (every population's
        variables at its end) or, for a scheme that keeps states in time, its ``trajectory``,
        asked for with ``capture`` when :meth:`due`; ``phase``: the step's phase (0-based
        index into ``training.phases``)."""
        every = self.config.every
        if self.due(step, batch_ids.shape[0], epoch_end=epoch_end):
            if self.last_recorded_step != step:
                self.record(step, epoch, batch_ids, state=state, trajectory=trajectory, phase=phase)
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

    def record(self, step: int, epoch: int, batch_ids: torch.Tensor, *, state=None,
               trajectory: Optional[dict] = None, phase: int = 0) -> None:
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
            if self.trace_steps:  # the presentation's trajectory: [samples, time, ...] already
                value = (trajectory or {}).get(pop, {}).get(var)
                if value is None:
                    raise RuntimeError(f"no trajectory of {pop}.{var} for step {step}: the trainer asks the settling "
                                       "scheme for it (present(capture=...)) before every recorded step (Recorder.due)")
                stream.put(i, value.flatten(2)[:, :, : self.config.neurons] if self.config.neurons else value)
                continue
            value = None if state is None else state[pop].get(var)
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
