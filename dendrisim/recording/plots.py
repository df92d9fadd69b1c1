"""Figures from a recording: learning curves, compartment activity, a heatmap, alignment."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np

from .reader import Recording

COMPARTMENTS = ("soma", "basal", "apical")


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def learning_curves(rec: Recording, out: Path) -> Optional[Path]:
    plt = _pyplot()
    m = rec.metrics
    names = sorted({k.split("_", 1)[1] for k in m if k != "epoch"})
    if not len(m["epoch"]):
        return None
    fig, axes = plt.subplots(1, len(names), figsize=(4.5 * len(names), 3.5), squeeze=False)
    for ax, name in zip(axes[0], names):
        for split in ("train", "val", "test"):
            if f"{split}_{name}" in m:
                ax.plot(m["epoch"], m[f"{split}_{name}"], marker="o", label=split)
        ax.set_xlabel("epoch")
        ax.set_ylabel(name)
        ax.legend()
    fig.suptitle(f"{rec.attrs.get('model_name')} ({rec.attrs.get('rule')})")
    return _save(fig, out / "learning_curves.png")


def activity(rec: Recording, out: Path) -> Optional[Path]:
    """Mean ± standard deviation (over samples and neurons) of soma, basal, apical per population."""
    plt = _pyplot()
    pops = {p: [v for v in COMPARTMENTS if v in vs] for p, vs in rec.populations.items()}
    pops = {p: vs for p, vs in pops.items() if vs}
    if not pops or not len(rec.steps):
        return None
    ncols = max(len(v) for v in pops.values())
    fig, axes = plt.subplots(len(pops), ncols, figsize=(4 * ncols, 2.6 * len(pops)), squeeze=False)
    steps = rec.steps
    for row, (pop, variables) in zip(axes, pops.items()):
        for ax, var in zip(row, variables):
            data = rec.activity(pop, var).reshape(len(steps), -1).astype(np.float64)
            mean, std = np.nanmean(data, axis=1), np.nanstd(data, axis=1)
            ax.plot(steps, mean)
            ax.fill_between(steps, mean - std, mean + std, alpha=0.3)
            ax.set_title(f"{pop}.{var}")
            ax.set_xlabel("step")
    return _save(fig, out / "activity.png")


def heatmap(rec: Recording, out: Path, population: Optional[str] = None, variable: str = "rate") -> Optional[Path]:
    """Records × neurons of one population's variable, averaged over the recorded samples."""
    plt = _pyplot()
    pops = rec.populations
    candidates = [p for p in pops if variable in pops[p]]
    population = population or (candidates[0] if candidates else None)
    if population is None or not len(rec.steps):
        return None
    data = _per_neuron(rec, population, variable)
    fig, ax = plt.subplots(figsize=(8, 4))
    first, last = rec.steps[0], rec.steps[-1]
    if first == last:  # one record: give it a visible width
        first, last = first - 0.5, last + 0.5
    im = ax.imshow(data.T, aspect="auto", origin="lower", cmap="viridis", extent=(first, last, 0, data.shape[1]))
    fig.colorbar(im, ax=ax, label=variable)
    ax.set_xlabel("step")
    ax.set_ylabel("neuron")
    ax.set_title(f"{population}.{variable} (mean over samples)")
    return _save(fig, out / f"heatmap_{population}_{variable}.png")


def _per_neuron(rec: Recording, population: str, variable: str) -> np.ndarray:
    """``[records, neurons]``: the mean over the recorded samples; of a presentation's
    trajectory (simulated compartments) its settled end, of a sequence the mean over time."""
    data = rec.activity(population, variable).astype(np.float64)
    axes = list(rec.file[f"populations/{population}/{variable}"].attrs.get("axes", []))
    if "time" in axes:
        t = axes.index("time")
        settled = "euler_steps" in rec.file[f"populations/{population}/{variable}"].attrs
        data = np.take(data, -1, axis=t) if settled else np.nanmean(data, axis=t)
    return np.nanmean(data, axis=1).reshape(len(data), -1)


PRESENTED = ("soma", "basal", "apical", "error")


def presentation(rec: Recording, out: Path, *, sample: int = 0, neurons: int = 5) -> Optional[Path]:
    """One sample's soma, basal, apical and error over the last recorded presentation, for
    each population, against time within the presentation (simulated compartments only)."""
    plt = _pyplot()
    pops = {p: [v for v in PRESENTED if v in vs] for p, vs in rec.populations.items()}
    pops = {p: vs for p, vs in pops.items() if vs and "euler_steps" in rec.file[f"populations/{p}/{vs[0]}"].attrs}
    if not pops or not len(rec.steps):
        return None
    fig, axes = plt.subplots(len(pops), len(PRESENTED), figsize=(3.6 * len(PRESENTED), 2.4 * len(pops)),
                             squeeze=False, sharex=True)
    for row, (pop, variables) in zip(axes, pops.items()):
        ds = rec.file[f"populations/{pop}/{variables[0]}"]
        t = ds.attrs["euler_steps"] * float(ds.attrs["dt"])
        for ax, var in zip(row, PRESENTED):
            ax.set_title(f"{pop}.{var}")
            if var not in variables:
                ax.set_axis_off()
                continue
            trace = rec._read(f"populations/{pop}/{var}", (-1, sample)).reshape(len(t), -1)[:, :neurons]
            for j in range(trace.shape[1]):
                ax.plot(t, trace[:, j], marker=".", markersize=3, color=f"C{j}")
            ax.axhline(0.0, color="0.8", linewidth=0.8, zorder=0)
        row[0].set_ylabel(f"first {min(neurons, trace.shape[1])} neurons")
    for ax in axes[-1]:
        ax.set_xlabel("time in the presentation (units of tau)")
    sample_id = int(rec.sample_ids[-1, sample]) if rec.sample_ids.size else sample
    fig.suptitle(f"{rec.attrs.get('model_name')} ({rec.attrs.get('rule')}): one presentation, training step "
                 f"{int(rec.steps[-1])}, sample {sample_id}")
    return _save(fig, out / "presentation.png")


def feedback_angle(feedback: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """Angle in degrees between each record's feedback matrix and the transposed forward weights."""
    f = feedback.reshape(len(feedback), -1).astype(np.float64)
    w = np.swapaxes(weight, 1, 2).reshape(len(weight), -1).astype(np.float64)
    cos = (f * w).sum(1) / (np.linalg.norm(f, axis=1) * np.linalg.norm(w, axis=1))
    return np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))


def alignment(rec: Recording, out: Path) -> Optional[Path]:
    """Each rule against backprop over training: the angle between the rule's update and
    backprop's and their norm ratio (when ``training.alignment`` measured them), and the angle
    between feedback weights and Wᵀ (measured, and from recorded feedback/weight matrices)."""
    plt = _pyplot()
    measured = rec.alignment
    names = [k for k in measured if k not in ("step", "epoch")]
    pairs = [p for p, vs in rec.projections.items() if "weight" in vs and "feedback" in vs]
    pairs = pairs if len(pairs) and len(rec.weight_steps) else []
    if not names and not pairs:
        return None
    panels = ([("update_angle", "angle(update, backprop's) [degrees]"),
               ("update_norm_ratio", "‖update‖ / ‖backprop's‖")] if names else [])
    panels.append(("feedback_angle", "angle(feedback, Wᵀ) [degrees]"))
    colour = {name: f"C{i % 10}" for i, name in enumerate(dict.fromkeys([*names, *pairs]))}  # one per projection
    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4), squeeze=False)
    for ax, (measure, label) in zip(axes[0], panels):
        for name in names:
            values = measured[name][measure]
            if np.isfinite(values).any():
                ax.plot(measured["step"], values, marker=".", color=colour[name], label=name)
        if measure == "feedback_angle":
            for name in pairs:
                ax.plot(rec.weight_steps, feedback_angle(rec.projection(name, "feedback"), rec.projection(name, "weight")),
                        linestyle="--", marker="x", color=colour[name], label=f"{name} (recorded matrices)")
            ax.set_ylim(0, 180)
        elif measure == "update_angle":
            ax.set_ylim(0, 180)
        else:
            ax.set_yscale("log")
        ax.set_xlabel("step")
        ax.set_ylabel(label)
        if ax.has_data():
            ax.legend(fontsize="small")
    fig.suptitle(f"{rec.attrs.get('model_name')} ({rec.attrs.get('rule')}) against backprop")
    return _save(fig, out / "alignment.png")


def _save(fig, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    _pyplot().close(fig)
    return path


def plot_all(path: str | Path, out: Optional[str | Path] = None, *, population: Optional[str] = None,
             variable: str = "rate") -> list[Path]:
    path = Path(path)
    out = Path(out) if out else path.parent / "plots"
    with Recording(path) as rec:
        made = [learning_curves(rec, out), activity(rec, out), heatmap(rec, out, population, variable), alignment(rec, out),
                presentation(rec, out)]
    return [p for p in made if p is not None]
