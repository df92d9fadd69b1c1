"""A light, lazy reader over a recording file (plain h5py underneath).

>>> rec = open_recording("recordings/run/recording.h5")
>>> rec.populations                      # {'h1': ['apical', 'basal', ...], ...}
>>> soma = rec.activity("h1", "soma", steps=(0, 1000))   # numpy [records, samples, neurons]
>>> rec.steps_for("h1", steps=(0, 1000)) # the matching global steps
>>> rec.metrics["test_accuracy"]         # one value per epoch
>>> rec.alignment["h1->h2"]["update_angle"]   # with training.alignment: angle to backprop's update
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional, Sequence

import h5py
import numpy as np
import yaml

from ..errors import FileFormatError
from ..rundir import is_live
from .recover import SIGNATURE


def check_file(path: Path) -> bool:
    """Check the HDF5 header of a recording before HDF5 reads it; return whether a writer
    has it open (or was killed with it open).

    An empty, foreign or cut-off file is a FileFormatError naming it: HDF5 itself may
    retry reading a cut-off file's metadata for minutes (in SWMR mode) instead of failing."""
    try:
        size = path.stat().st_size
        with open(path, "rb") as fh:
            head = fh.read(48)
    except OSError as err:
        raise FileFormatError(f"{path}: cannot read the recording ({err.strerror or err})") from None
    if size == 0:
        raise FileFormatError(f"{path}: the recording is empty (0 bytes)")
    if head[:8] != SIGNATURE:
        raise FileFormatError(f"{path}: not an HDF5 file (its first bytes are not HDF5's signature); "
                              "not a dendrisim recording")
    if len(head) < 12 or head[8] < 2:
        return False  # an older superblock (not written by dendrisim): HDF5 checks it
    offsets, is_open = head[9], head[11] != 0
    if offsets not in (2, 4, 8) or len(head) < 12 + 3 * offsets:
        raise FileFormatError(f"{path}: the HDF5 superblock is damaged")
    eof = int.from_bytes(head[12 + 2 * offsets:12 + 3 * offsets], "little")
    # a live writer's file may briefly be shorter than its header says; a killed run's may not
    if size < eof and not (is_open and is_live(path.parent)):
        raise FileFormatError(f"{path}: the recording is cut off: it holds {size} of the {eof} bytes its header "
                              "declares (a copy that did not finish, or a damaged disk)")
    return is_open


class Recording:
    """Opened read-only; nothing is read from disk until asked for.

    Opened in SWMR-read mode, so it also reads the file of a run still going on (call
    :meth:`refresh` to see new records) or of a run that was killed.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.file = self._open()
        self._counts: dict[str, int] = {}

    def _open(self) -> h5py.File:
        is_open = check_file(self.path)
        try:  # a closed file is read plainly: a damaged one then fails at once instead of being retried
            return h5py.File(self.path, "r", swmr=is_open, locking=False)
        except Exception as err:  # noqa: BLE001 - h5py raises OSError, RuntimeError, ...
            raise FileFormatError(f"{self.path}: the recording cannot be opened ({_first_line(err)})") from None

    def refresh(self) -> None:
        """See the records a running writer has flushed since the file was opened."""
        self.file.close()
        self.file = self._open()
        self._counts = {}

    def _complete(self, kind: str) -> int:
        """How many records of one kind (``"activity"``, ``"weights"``, ``"metrics"``, ``"alignment"``)
        every dataset of that kind holds.

        The writer appends to each dataset in turn, so a run killed mid-flush (or a live run
        read between two appends) may have some datasets a row ahead of others; only the
        rows all of them hold are whole records."""
        if kind not in self._counts:
            names = []
            def visit(name, item):
                if isinstance(item, h5py.Dataset):
                    names.append(name)
            for group in {"activity": ("index", "populations", "rule/clip_counts"), "weights": ("index", "projections"),
                          "metrics": ("metrics",), "alignment": ("alignment",)}[kind]:
                if isinstance(self.file.get(group), h5py.Group):
                    self.file[group].visititems(lambda name, item, g=group: visit(f"{g}/{name}", item))
            if kind == "activity":
                names = [n for n in names if not n.startswith("index/weight_")]
            elif kind == "weights":
                names = [n for n in names if n.startswith("projections/") or n.startswith("index/weight_")]
            self._counts[kind] = min((self.file[n].shape[0] for n in names if self.file[n].ndim), default=0)
        return self._counts[kind]

    def _read(self, name: str, rows=slice(None)) -> np.ndarray:
        """Rows of a dataset; damaged bytes (a fletcher32 mismatch) are an error naming it."""
        try:
            return self.file[name][rows]
        except KeyError:
            raise
        except Exception as err:  # noqa: BLE001 - h5py raises OSError on a checksum mismatch
            raise FileFormatError(f"{self.path}: dataset {name} cannot be read ({_first_line(err)}); its bytes "
                                  "are damaged (its checksum does not match) or cut off") from None

    def __enter__(self) -> "Recording":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self.file.close()

    # ------------------------------------------------------------ what is inside
    @property
    def attrs(self) -> dict:
        try:
            return {k: (v.decode() if isinstance(v, bytes) else v) for k, v in self.file.attrs.items()}
        except Exception as err:  # noqa: BLE001
            raise FileFormatError(f"{self.path}: the recording's attributes cannot be read ({_first_line(err)})"
                                  ) from None

    @property
    def complete(self) -> bool:
        return bool(self.file.attrs.get("complete", False))

    @property
    def model(self) -> dict:
        """The resolved model file the run used."""
        return yaml.safe_load(self.file.attrs["model_yaml"])

    @property
    def argv(self) -> list[str]:
        return json.loads(self.file.attrs["argv"])

    @property
    def populations(self) -> dict[str, list[str]]:
        group = self.file.get("populations", {})
        return {name: sorted(group[name]) for name in group}

    @property
    def projections(self) -> dict[str, list[str]]:
        group = self.file.get("projections", {})
        return {name: sorted(group[name]) for name in group}

    @property
    def steps(self) -> np.ndarray:
        """Global training step of every activity record."""
        return self._read("index/step", slice(0, self._complete("activity")))

    @property
    def epochs(self) -> np.ndarray:
        return self._read("index/epoch", slice(0, self._complete("activity")))

    @property
    def weight_steps(self) -> np.ndarray:
        return self._read("index/weight_step", slice(0, self._complete("weights")))

    @property
    def phase(self) -> np.ndarray:
        """The training phase of every activity record (0-based index into :attr:`phases`; all 0
        without phases, and in files written before phases were recorded)."""
        return self._index_or_zeros("index/phase", "activity")

    @property
    def weight_phase(self) -> np.ndarray:
        """The training phase of every projection record (as :attr:`phase`)."""
        return self._index_or_zeros("index/weight_phase", "weights")

    @property
    def phases(self) -> list[dict]:
        """The run's phases: ``[{"name", "epochs", "teacher", "first_epoch"}, ...]`` (empty without
        ``training.phases``, or in files written before phases were recorded)."""
        return json.loads(self.attrs.get("phases", "[]"))

    def _index_or_zeros(self, name: str, kind: str) -> np.ndarray:
        rows = slice(0, self._complete(kind))
        if name not in self.file:
            return np.zeros(self._complete(kind), dtype=np.int64)
        return self._read(name, rows)

    @property
    def sample_ids(self) -> np.ndarray:
        return self._read("index/sample_ids", slice(0, self._complete("activity")))

    @property
    def metrics(self) -> dict[str, np.ndarray]:
        """``{"epoch": [...], "train_loss": [...], "test_accuracy": [...], ...}``."""
        rows = slice(0, self._complete("metrics"))
        out = {"epoch": self._read("metrics/epoch", rows)}
        for split, group in self.file["metrics"].items():
            if isinstance(group, h5py.Group):
                for name, ds in group.items():
                    out[f"{split}_{name}"] = self._read(ds.name, rows)
        return out

    @property
    def alignment(self) -> dict:
        """What ``training.alignment`` measured: ``{"step": [...], "epoch": [...], "A->B": {"update_angle":
        [...], "update_norm_ratio": [...], "feedback_angle": [...]}, ...}``; empty when nothing was."""
        group = self.file.get("alignment")
        if group is None:
            return {}
        rows = slice(0, self._complete("alignment"))
        out = {"step": self._read("alignment/step", rows), "epoch": self._read("alignment/epoch", rows)}
        for name, item in group.items():
            if isinstance(item, h5py.Group):
                out[name] = {measure: self._read(ds.name, rows) for measure, ds in item.items()}
        return out

    @property
    def clip_counts(self) -> dict[str, np.ndarray]:
        group = self.file.get("rule/clip_counts", {})
        rows = slice(0, self._complete("activity"))
        return {name: self._read(group[name].name, rows) for name in group}

    # ------------------------------------------------------------ selections
    @staticmethod
    def _rows(step_index: np.ndarray, steps: Optional[tuple[int, int]]) -> slice | np.ndarray:
        if steps is None:
            return slice(0, len(step_index))
        lo, hi = steps
        rows = np.flatnonzero((step_index >= lo) & (step_index < hi))
        return slice(rows[0], rows[-1] + 1) if len(rows) else slice(0, 0)

    def activity(self, population: str, variable: str, *, steps: Optional[tuple[int, int]] = None,
                 samples: Optional[Sequence[int]] = None, neurons: Optional[Sequence[int]] = None) -> np.ndarray:
        """``[records, samples, *shape]`` of one compartment variable (shape: the population's, e.g.
        ``[neurons]`` or ``[channels, height, width]``), for steps in ``[lo, hi)``; ``neurons`` picks
        along the first axis of the shape."""
        ds = self._get(f"populations/{population}/{variable}", self.populations, population, variable)
        data = self._read(ds.name, self._rows(self.steps, steps))
        if samples is not None:
            data = data[:, list(samples)]
        if neurons is not None:
            data = data[:, :, list(neurons)]
        return data

    def steps_for(self, population: str, *, steps: Optional[tuple[int, int]] = None) -> np.ndarray:
        return self.steps[self._rows(self.steps, steps)]

    def projection(self, name: str, variable: str, *, steps: Optional[tuple[int, int]] = None) -> np.ndarray:
        """``[weight_records, rows, cols]`` of a projection variable."""
        ds = self._get(f"projections/{name}/{variable}", self.projections, name, variable)
        return self._read(ds.name, self._rows(self.weight_steps, steps))

    def _get(self, key: str, table: dict, name: str, variable: str) -> h5py.Dataset:
        if name not in table:
            raise KeyError(f"{self.path}: nothing recorded for {name!r}; recorded: {', '.join(table) or 'nothing'}")
        if variable not in table[name]:
            raise KeyError(f"{self.path}: {name} has no recorded {variable!r}; recorded: {', '.join(table[name])}")
        return self.file[key]


def open_recording(path: str | Path) -> Recording:
    """Open a recording written by dendrisim (read-only, lazy)."""
    return Recording(path)


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0][:200] if text else type(err).__name__
