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


class Recording:
    """Opened read-only; nothing is read from disk until asked for.

    Opened in SWMR-read mode, so it also reads the file of a run still going on (call
    :meth:`refresh` to see new records) or of a run that was killed.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.file = h5py.File(self.path, "r", swmr=True)

    def refresh(self) -> None:
        """See the records a running writer has flushed since the file was opened."""
        self.file.close()
        self.file = h5py.File(self.path, "r", swmr=True)

    def __enter__(self) -> "Recording":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self.file.close()

    # ------------------------------------------------------------ what is inside
    @property
    def attrs(self) -> dict:
        return {k: (v.decode() if isinstance(v, bytes) else v) for k, v in self.file.attrs.items()}

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
        return self.file["index/step"][:]

    @property
    def epochs(self) -> np.ndarray:
        return self.file["index/epoch"][:]

    @property
    def weight_steps(self) -> np.ndarray:
        return self.file["index/weight_step"][:]

    @property
    def sample_ids(self) -> np.ndarray:
        return self.file["index/sample_ids"][:]

    @property
    def metrics(self) -> dict[str, np.ndarray]:
        """``{"epoch": [...], "train_loss": [...], "test_accuracy": [...], ...}``."""
        out = {"epoch": self.file["metrics/epoch"][:]}
        for split, group in self.file["metrics"].items():
            if isinstance(group, h5py.Group):
                for name, ds in group.items():
                    out[f"{split}_{name}"] = ds[:]
        return out

    @property
    def alignment(self) -> dict:
        """What ``training.alignment`` measured: ``{"step": [...], "epoch": [...], "A->B": {"update_angle":
        [...], "update_norm_ratio": [...], "feedback_angle": [...]}, ...}``; empty when nothing was."""
        group = self.file.get("alignment")
        if group is None:
            return {}
        out = {"step": group["step"][:], "epoch": group["epoch"][:]}
        for name, item in group.items():
            if isinstance(item, h5py.Group):
                out[name] = {measure: ds[:] for measure, ds in item.items()}
        return out

    @property
    def clip_counts(self) -> dict[str, np.ndarray]:
        group = self.file.get("rule/clip_counts", {})
        return {name: group[name][:] for name in group}

    # ------------------------------------------------------------ selections
    @staticmethod
    def _rows(step_index: np.ndarray, steps: Optional[tuple[int, int]]) -> slice | np.ndarray:
        if steps is None:
            return slice(None)
        lo, hi = steps
        rows = np.flatnonzero((step_index >= lo) & (step_index < hi))
        return slice(rows[0], rows[-1] + 1) if len(rows) else slice(0, 0)

    def activity(self, population: str, variable: str, *, steps: Optional[tuple[int, int]] = None,
                 samples: Optional[Sequence[int]] = None, neurons: Optional[Sequence[int]] = None) -> np.ndarray:
        """``[records, samples, *shape]`` of one compartment variable (shape: the population's, e.g.
        ``[neurons]`` or ``[channels, height, width]``), for steps in ``[lo, hi)``; ``neurons`` picks
        along the first axis of the shape."""
        ds = self._get(f"populations/{population}/{variable}", self.populations, population, variable)
        data = ds[self._rows(self.steps, steps)]
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
        return ds[self._rows(self.weight_steps, steps)]

    def _get(self, key: str, table: dict, name: str, variable: str) -> h5py.Dataset:
        if name not in table:
            raise KeyError(f"{self.path}: nothing recorded for {name!r}; recorded: {', '.join(table) or 'nothing'}")
        if variable not in table[name]:
            raise KeyError(f"{self.path}: {name} has no recorded {variable!r}; recorded: {', '.join(table[name])}")
        return self.file[key]


def open_recording(path: str | Path) -> Recording:
    """Open a recording written by dendrisim (read-only, lazy)."""
    return Recording(path)
