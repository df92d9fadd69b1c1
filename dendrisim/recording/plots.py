"""Figures from a recording: learning curves, compartment activity, a heatmap, alignment to
backprop and one presentation (euler runs), each titled with the run's model, rule and seed.

Each ``*_figure`` function builds one matplotlib figure from an open :class:`Recording`, or
returns None when the recording holds nothing for it; :func:`plot_all` writes them all as
PNG, PDF or SVG files through :func:`save`. A population draws the compartments its type
has (a pyramidal neuron soma, basal, apical; an interneuron soma, dendrite, nudging; both
rate and error) as far as the recording holds them. Panels without data (not recorded, or
NaN throughout) are left out, and ``log`` gets one line per figure saying which and why.
"""
from __future__ import annotations

import functools
import os
import warnings
from pathlib import Path
from typing import Callable, Iterator, Optional

import numpy as np

from ..errors import ConfigError, PathError
from ..paths import shown
from .reader import Recording

Log = Callable[[str], None]
#: the file formats :func:`plot_all` writes
FORMATS = ("png", "pdf", "svg")
def has(kind: str) -> tuple[str, ...]:
    """What a population of neuron model ``kind`` has, in the order its panels are drawn (the
    model's declared ``variables``: an interneuron's dendrite and nudging stand where a
    pyramidal neuron's basal and apical stand), from the shipped catalogue of built-in models
    (no PyTorch) or, for a model registered in this process, the live registry; empty for a
    model not known here."""
    from ..commands import neuron_variables

    return neuron_variables(kind)


#: drawn in :func:`presentation_figure`: the potentials and the error, not the rate f(soma)
PRESENTED = ("soma", "basal", "apical", "dendrite", "nudging", "error")


def _quiet(line: str) -> None:
    """The default log: says nothing."""


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _integer_ticks(axis) -> None:
    """Ticks at whole numbers only (epochs and steps are counted)."""
    from matplotlib.ticker import MaxNLocator

    axis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))


def _model(rec: Recording) -> dict:
    """The run's resolved model file from the root attribute ``model_yaml`` ({} when unreadable)."""
    return _parse_model(str(rec.attrs.get("model_yaml", "") or "{}"), str(rec.path))


@functools.lru_cache(maxsize=4)
def _parse_model(text: str, file: str) -> dict:
    """Parsed within the model files' limits (a recording is a file dendrisim reads)."""
    from ..config.loader import load_yaml_text

    try:
        model = load_yaml_text(text, file=file, path="model_yaml")
    except ConfigError:
        return {}
    return model if isinstance(model, dict) else {}


def run_title(rec: Recording) -> str:
    """``model · rule R (per-projection rules) · seed S`` from the recording's root attributes
    (``model_yaml``, ``seed``; ``model_name`` and ``rule`` where the model file says nothing)."""
    model = _model(rec)
    rule = (model.get("plasticity") or {}).get("rule") or rec.attrs.get("rule", "?")
    own = [f"{p.get('from')}->{p.get('to')}: {p['plasticity']['rule']}" for p in model.get("projections") or []
           if isinstance(p, dict) and isinstance(p.get("plasticity"), dict)
           and p["plasticity"].get("rule") not in (None, rule)]
    seed = rec.attrs.get("seed", (model.get("training") or {}).get("seed", "?"))
    name = model.get("name") or rec.attrs.get("model_name", "?")
    rules = f"{rule} ({', '.join(own)})" if own else rule
    return f"{name} · rule {rules} · seed {seed}"


def _kind(rec: Recording, population: str) -> str:
    """The population's neuron model in the model file the recording carries."""
    spec = ((_model(rec).get("populations") or {}).get(population)) or {}
    if isinstance(spec, dict) and isinstance(spec.get("type"), str):
        return spec["type"]
    return "pyramidal"  # the model file's default type


def _recorded(rec: Recording) -> dict[str, list[str]]:
    """``{population: recorded variables}`` in the model file's order of populations (the
    file's own order, alphabetical, for those the model file does not list)."""
    recorded, order = rec.populations, list(_model(rec).get("populations") or {})
    return {p: recorded[p] for p in sorted(recorded, key=lambda p: (order.index(p) if p in order else len(order), p))}


def _panels(rec: Recording, population: str, among: Optional[tuple[str, ...]] = None
            ) -> tuple[list[str], list[str]]:
    """(the variables recorded for the population, of ``among`` if given, in its type's order;
    ``population.variable`` of those its type has but the recording lacks)."""
    recorded, declared = rec.populations.get(population, []), has(_kind(rec, population))
    order = [v for v in [*declared, *sorted(set(recorded) - set(declared))] if among is None or v in among]
    return [v for v in order if v in recorded], [f"{population}.{v}" for v in order if v not in recorded]


def _note_left_out(log: Log, figure: str, *, not_recorded=(), empty=()) -> None:
    """One log line for the panels a figure leaves out, and why."""
    why = [f"{', '.join(not_recorded)} (not recorded; see the model file's recording.populations)"] if not_recorded else []
    why += [f"{', '.join(empty)} (NaN throughout)"] if empty else []
    if why:
        log(f"{figure}: left out {'; '.join(why)}")


def _nanstats(flat: np.ndarray) -> dict[str, np.ndarray]:
    """Per row of ``[records, values]``: the signed mean, its standard deviation and the mean |x|."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # an all-NaN record gives NaN, which is drawn as a gap
        return {"mean": np.nanmean(flat, axis=1), "std": np.nanstd(flat, axis=1),
                "abs": np.nanmean(np.abs(flat), axis=1)}


def _values(rec: Recording, population: str, variable: str) -> tuple[np.ndarray, str]:
    """``[records, samples, ...]`` of one variable as float64 (a simulated presentation cut to
    its settled end), and what one record's values pool: e.g. ``16 sampled inputs × neurons``."""
    ds = rec.file[f"populations/{population}/{variable}"]
    data = rec.activity(population, variable).astype(np.float64)
    axes = [a.decode() if isinstance(a, bytes) else str(a) for a in ds.attrs.get("axes", [])][2:]
    pooled, settled = [f"{data.shape[1]} sampled inputs"], False
    if "time" in axes:
        if "euler_steps" in ds.attrs:
            data, settled = np.take(data, -1, axis=2 + axes.index("time")), True
        else:
            pooled.append("time steps")
    pooled.append("neurons")
    return data, " × ".join(pooled) + (", at the end of each presentation" if settled else "")


def _label_lowest(axes, drawn: list[int], label: str) -> None:
    """Label the x axis of the lowest panel of each column (row r of ``axes`` holds ``drawn[r]`` panels)."""
    for c in range(max(drawn)):
        axes[max(r for r, n in enumerate(drawn) if n > c), c].set_xlabel(label)


def _step_axis(ax, label: Optional[str] = "training step") -> None:
    _integer_ticks(ax.xaxis)
    if label:
        ax.set_xlabel(label)


def _phase_starts(rec: Recording, *, epochs: bool = False) -> list[tuple[float, str]]:
    """``(position, name)`` of every phase after the first (``training.phases``): on the step
    axis just after the previous phase's last record (its last epoch's end), on the epoch
    axis half an epoch before the phase's first."""
    phases = rec.phases
    if len(phases) < 2:
        return []
    if epochs:
        return [(p["first_epoch"] - 0.5, p["name"]) for p in phases[1:]]
    index, steps, starts = rec.phase, rec.steps, []
    for i, p in enumerate(phases[1:], start=1):
        if (index == i - 1).any():
            starts.append((float(steps[np.flatnonzero(index == i - 1)[-1]]) + 0.5, p["name"]))
        elif (index == i).any():
            starts.append((float(steps[np.argmax(index == i)]), p["name"]))
    return starts


def _mark_phases(axes, starts: list[tuple[float, str]]) -> list:
    """A dotted line at each phase start in every panel; the legend handles naming them."""
    from matplotlib.lines import Line2D

    for ax in axes:
        for x, _ in starts:
            ax.axvline(x, color="0.4", linestyle=":", linewidth=1.2, zorder=1)
    return [Line2D([], [], color="0.4", linestyle=":", label=f"phase {name!r} starts") for _, name in starts]


# ------------------------------------------------------------------------- learning curves
def learning_curves_figure(rec: Recording, *, log: Log = _quiet):
    """One panel per metric (loss, accuracy, ...): train, validation and test against epoch."""
    m = rec.metrics
    if not len(m["epoch"]):
        return None
    names = sorted({k.split("_", 1)[1] for k in m if k != "epoch"})
    empty = [n for n in names if not any(np.isfinite(v).any() for k, v in m.items() if k.split("_", 1)[-1] == n
                                         and k != "epoch")]
    names = [n for n in names if n not in empty]
    _note_left_out(log, "learning_curves", empty=empty)
    if not names:
        return None
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(names), figsize=(4.5 * len(names), 3.6), squeeze=False, layout="constrained")
    for ax, name in zip(axes[0], names):
        for split, label in (("train", "train"), ("val", "validation"), ("test", "test")):
            if np.isfinite(m.get(f"{split}_{name}", [np.nan])).any():
                ax.plot(m["epoch"], m[f"{split}_{name}"], marker="o", markersize=4, label=label)
        ax.set_ylabel(name)
        _step_axis(ax, "epoch")
    phases = _mark_phases(axes[0], _phase_starts(rec, epochs=True))
    for ax in axes[0]:
        ax.legend(handles=ax.get_legend_handles_labels()[0] + phases, title="split", fontsize="small")
    fig.suptitle(f"{run_title(rec)}\nlearning curves")
    return fig


# ------------------------------------------------------------------------- activity
def _activity_rows(rec: Recording, log: Log) -> tuple[dict, set[str]]:
    """``{population: {variable: stats}}`` of every recorded compartment with data, and what
    the shaded bands pool."""
    rows, missing, empty, pooled = {}, [], [], set()
    for pop in _recorded(rec):
        drawn, lacking = _panels(rec, pop)
        missing += lacking
        for var in drawn:
            data, what = _values(rec, pop, var)
            if not np.isfinite(data).any():
                empty.append(f"{pop}.{var}")
                continue
            rows.setdefault(pop, {})[var] = _nanstats(data.reshape(len(data), -1))
            pooled.add(what)
    _note_left_out(log, "activity", not_recorded=missing, empty=empty)
    return rows, pooled


def _legend_below(fig, handles: list, *, title: Optional[str] = None, ncol: Optional[int] = None) -> None:
    fig.legend(handles=handles, loc="outside lower center", ncol=ncol or len(handles), fontsize="small",
               title=title, title_fontsize="small", frameon=False)


def activity_figure(rec: Recording, *, log: Log = _quiet):
    """Per population (rows) and compartment (columns): the signed mean over training with a
    band of ± one standard deviation, and the mean |x| beside it (a signed mean near zero can
    hide a shrinking magnitude, the apical potential's in particular)."""
    if not len(rec.steps):
        return None
    rows, pooled = _activity_rows(rec, log)
    if not rows:
        return None
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    plt, steps = _pyplot(), rec.steps
    ncols = max(len(p) for p in rows.values())
    fig, axes = plt.subplots(len(rows), ncols, figsize=(3.2 * ncols, 2.3 * len(rows) + 1.3), squeeze=False,
                             layout="constrained")
    marker = "o" if len(steps) < 25 else None
    for r, (pop, panels) in enumerate(rows.items()):
        for ax, (var, s) in zip(axes[r], panels.items()):
            ax.fill_between(steps, s["mean"] - s["std"], s["mean"] + s["std"], color="C0", alpha=0.25, linewidth=0)
            ax.plot(steps, s["mean"], color="C0", marker=marker, markersize=3)
            ax.plot(steps, s["abs"], color="C3", linestyle="--", marker=marker, markersize=3)
            ax.axhline(0.0, color="0.8", linewidth=0.8, zorder=0)
            ax.set_title(f"{pop}.{var}", fontsize="medium")
            _step_axis(ax, None)
        for ax in axes[r, len(panels):]:
            ax.remove()
        axes[r, 0].set_ylabel(f"{pop} ({_kind(rec, pop)})")
    _label_lowest(axes, [len(p) for p in rows.values()], "training step")
    phases = _mark_phases([ax for ax in axes.flat if ax.figure is not None], _phase_starts(rec))
    _legend_below(fig, [Line2D([], [], color="C0", label="signed mean"),
                        Line2D([], [], color="C3", linestyle="--", label="mean |x|"),
                        Patch(color="C0", alpha=0.25, label="mean ± 1 std over " + "; ".join(sorted(pooled))),
                        *phases])
    fig.suptitle(f"{run_title(rec)}\ncompartments over training")
    return fig


# ------------------------------------------------------------------------- heatmap
def _per_neuron(rec: Recording, population: str, variable: str) -> np.ndarray:
    """``[records, neurons]``: the mean over the recorded samples; of a presentation's
    trajectory (simulated compartments) its settled end, of a sequence the mean over time."""
    data = rec.activity(population, variable).astype(np.float64)
    axes = list(rec.file[f"populations/{population}/{variable}"].attrs.get("axes", []))
    if "time" in axes:
        t = axes.index("time")
        settled = "euler_steps" in rec.file[f"populations/{population}/{variable}"].attrs
        data = np.take(data, -1, axis=t) if settled else np.nanmean(data, axis=t)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(data, axis=1).reshape(len(data), -1)


def heatmap_population(rec: Recording, population: Optional[str], variable: str, *, asked: bool = True
                       ) -> Optional[str]:
    """The population of the heatmap: the one asked for, or the first recorded with ``variable``.
    Asking for a population not recorded with ``variable`` is an error listing what was, and
    so is a ``variable`` no population records when it was ``asked`` for (not the default
    rate: None then, and :func:`heatmap_figure` leaves the heatmap out with a note)."""
    recorded = _recorded(rec)
    if population is not None and variable not in recorded.get(population, []):
        raise ConfigError(f"{rec.path} holds no {variable!r} of population {population!r} for the heatmap "
                          f"(--population, --variable); it records {_held(recorded, variable)}")
    found = population or next((p for p, vs in recorded.items() if variable in vs), None)
    if found is None and asked:
        raise ConfigError(f"{rec.path} holds no {variable!r} of any population for the heatmap (--variable); it "
                          f"records {_held(recorded, variable)}")
    return found


def _held(recorded: dict[str, list[str]], variable: str) -> str:
    """What a recording holds, ``POP: VAR, VAR; POP: ...``, and the name meant when ``variable``
    differs from a recorded one only in case."""
    held = "; ".join(f"{p}: {', '.join(vs)}" for p, vs in recorded.items()) or "nothing"
    same = sorted({v for vs in recorded.values() for v in vs if v.lower() == variable.lower() and v != variable})
    return held + (f" (names are case-sensitive: {', '.join(map(repr, same))})" if same else "")


def heatmap_figure(rec: Recording, population: Optional[str] = None, variable: str = "rate", *, log: Log = _quiet):
    """Records × neurons of one population's variable, averaged over the recorded samples; None,
    with a note, when no population records ``variable``."""
    population = heatmap_population(rec, population, variable, asked=False)
    if population is None:
        log(f"heatmap: left out (no population records {variable!r}; it records {_held(_recorded(rec), variable)}; "
            "choose one with --population and --variable)")
        return None
    if not len(rec.steps):
        return None
    data = _per_neuron(rec, population, variable)
    if not np.isfinite(data).any():
        _note_left_out(log, f"heatmap_{population}_{variable}", empty=[f"{population}.{variable}"])
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 4.2), layout="constrained")
    first, last = rec.steps[0], rec.steps[-1]
    if first == last:  # one record: give it a visible width
        first, last = first - 0.5, last + 0.5
    im = ax.imshow(data.T, aspect="auto", origin="lower", cmap="viridis", extent=(first, last, 0, data.shape[1]),
                   interpolation="nearest")
    fig.colorbar(im, ax=ax, label=f"{variable}, mean over {rec.sample_ids.shape[1]} sampled inputs")
    _step_axis(ax)
    _integer_ticks(ax.yaxis)
    ax.set_ylabel(f"neuron of {population}")
    fig.suptitle(f"{run_title(rec)}\n{population}.{variable} per neuron over training")
    return fig


# ------------------------------------------------------------------------- alignment
def feedback_angle(feedback: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """Angle in degrees between each record's feedback matrix and the transposed forward weights."""
    f = feedback.reshape(len(feedback), -1).astype(np.float64)
    w = np.swapaxes(weight, 1, 2).reshape(len(weight), -1).astype(np.float64)
    cos = (f * w).sum(1) / (np.linalg.norm(f, axis=1) * np.linalg.norm(w, axis=1))
    return np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))


ALIGNMENT_PANELS = {"update_angle": "angle(update, backprop's) [degrees]",
                    "update_norm_ratio": "‖update‖ / ‖backprop's‖",
                    "feedback_angle": "angle(feedback, Wᵀ) [degrees]"}


def _alignment_series(rec: Recording) -> dict[str, list[tuple]]:
    """``{measure: [(label, projection, steps, values, style), ...]}``: what training.alignment
    measured, and the feedback angle computed from recorded feedback and weight matrices."""
    measured = rec.alignment
    series: dict[str, list[tuple]] = {m: [] for m in ALIGNMENT_PANELS}
    for name in (k for k in measured if k not in ("step", "epoch")):
        for measure, values in measured[name].items():
            series.setdefault(measure, []).append((f"{name} (measured)", name, measured["step"], values, "-"))
    if len(rec.weight_steps):
        for name, vs in rec.projections.items():
            if "weight" in vs and "feedback" in vs:
                angle = feedback_angle(rec.projection(name, "feedback"), rec.projection(name, "weight"))
                series["feedback_angle"].append((f"{name} (recorded matrices)", name, rec.weight_steps, angle, "--"))
    return series


def _draw_alignment(ax, measure: str, lines: list[tuple], colour: dict) -> None:
    for label, name, steps, values, style in lines:
        ax.plot(steps, values, linestyle=style, marker="." if style == "-" else "x", color=colour[name], label=label)
    if measure == "update_norm_ratio":
        ax.set_yscale("log")
    else:
        ax.set_ylim(0, 180)
    ax.set_ylabel(ALIGNMENT_PANELS.get(measure, measure))
    _step_axis(ax)


def alignment_figure(rec: Recording, *, log: Log = _quiet):
    """Each rule against backprop over training: the angle between the rule's update and
    backprop's and their norm ratio (when ``training.alignment`` measured them), and the angle
    between feedback weights and Wᵀ (measured, and from recorded feedback/weight matrices).
    A projection whose measure is NaN throughout (no feedback weights: a projection from the
    input, or one dfa carries nothing back through) is left out of that panel, and a panel
    with nothing left is left out, each said in ``log``."""
    series, drawn, empty = _alignment_series(rec), {}, []
    for measure, lines in series.items():
        kept = [s for s in lines if np.isfinite(s[3]).any()]
        empty += [f"{s[1]} {measure}" for s in lines if not np.isfinite(s[3]).any()]
        if kept:
            drawn[measure] = kept
        elif lines:
            empty.append(f"the {measure} panel")
    _note_left_out(log, "alignment", empty=empty)
    if not drawn:
        return None
    names = dict.fromkeys(s[1] for lines in drawn.values() for s in lines)
    colour = {name: f"C{i % 10}" for i, name in enumerate(names)}  # one per projection, in every panel
    fig, axes = _pyplot().subplots(1, len(drawn), figsize=(5.2 * len(drawn), 4.2), squeeze=False, layout="constrained")
    for ax, (measure, lines) in zip(axes[0], drawn.items()):
        _draw_alignment(ax, measure, lines, colour)
    handles = {h.get_label(): h for ax in axes[0] for h in ax.get_legend_handles_labels()[0]}
    _legend_below(fig, list(handles.values()), title="projection (colour) and source (solid: measured by "
                  "training.alignment; dashed: from the recorded feedback and weight matrices)", ncol=4)
    fig.suptitle(f"{run_title(rec)}\nagainst backprop")
    return fig


# ------------------------------------------------------------------------- one presentation
def _traces(rec: Recording, sample: int, neurons: int, log: Log) -> dict[str, dict[str, tuple]]:
    """``{population: {variable: (time, [time, neurons] trace)}}``: the simulated (euler)
    compartments of one sample in the last record, the first ``neurons`` neurons, each
    population's in its type's order; those NaN throughout left out (said in ``log``)."""
    rows, empty = {}, []
    for pop in _recorded(rec):
        drawn, _ = _panels(rec, pop, PRESENTED)
        for var in drawn:
            ds = rec.file[f"populations/{pop}/{var}"]
            if "euler_steps" not in ds.attrs:
                break
            t = ds.attrs["euler_steps"] * float(ds.attrs["dt"])
            trace = rec._read(ds.name, (-1, sample)).reshape(len(t), -1)[:, :neurons].astype(np.float64)
            if np.isfinite(trace).any():
                rows.setdefault(pop, {})[var] = (t, trace)
            else:
                empty.append(f"{pop}.{var}")
    _note_left_out(log, "presentation", empty=empty)
    return rows


def presentation_figure(rec: Recording, *, sample: int = 0, neurons: int = 5, log: Log = _quiet):
    """One sample's potentials and error over the last recorded presentation, for each
    population (rows: soma, basal, apical, error of a pyramidal population; soma, dendrite,
    nudging, error of an interneuron), against time within the presentation (euler runs only)."""
    rows = _traces(rec, sample, neurons, log) if len(rec.steps) else {}
    if not rows:
        return None
    from matplotlib.lines import Line2D

    drawn = [len(p) for p in rows.values()]
    fig, axes = _pyplot().subplots(len(rows), max(drawn), figsize=(3.4 * max(drawn), 2.3 * len(rows) + 1.3),
                                   squeeze=False, layout="constrained")
    for row, (pop, panels) in zip(axes, rows.items()):
        for ax, (var, (t, trace)) in zip(row, panels.items()):
            for j in range(trace.shape[1]):
                ax.plot(t, trace[:, j], marker=".", markersize=3, color=f"C{j % 10}")
            ax.axhline(0.0, color="0.8", linewidth=0.8, zorder=0)
            ax.set_title(f"{pop}.{var}", fontsize="medium")
        for ax in row[len(panels):]:
            ax.remove()
        row[0].set_ylabel(f"{pop} ({_kind(rec, pop)})")
    _label_lowest(axes, drawn, "time in the presentation (τ)")
    shown = max(trace.shape[1] for panels in rows.values() for _, trace in panels.values())
    _legend_below(fig, [Line2D([], [], color=f"C{j % 10}", marker=".", label=f"neuron {j}") for j in range(shown)],
                  title=f"the first {shown} neurons of each population")
    sample_id = int(rec.sample_ids[-1, sample]) if rec.sample_ids.size else sample
    fig.suptitle(f"{run_title(rec)}\none presentation: training step {int(rec.steps[-1])}, "
                 f"training sample {sample_id}")
    return fig


# ------------------------------------------------------------------------- writing
def figures(rec: Recording, *, population: Optional[str] = None, variable: Optional[str] = None,
            log: Log = _quiet) -> Iterator[tuple[str, object]]:
    """``(file stem, figure)`` of every figure the recording has data for, built one at a time.
    The heatmap's ``population`` and ``variable`` (default: rate, left out with a note when
    not recorded) are checked before any figure is built: one not recorded is a ConfigError."""
    asked, variable = variable is not None, variable if variable is not None else "rate"
    chosen = heatmap_population(rec, population, variable, asked=asked)
    builders = [("learning_curves", lambda: learning_curves_figure(rec, log=log)),
                ("activity", lambda: activity_figure(rec, log=log)),
                (f"heatmap_{chosen}_{variable}", lambda: heatmap_figure(rec, chosen, variable, log=log)),
                ("alignment", lambda: alignment_figure(rec, log=log)),
                ("presentation", lambda: presentation_figure(rec, log=log))]
    for stem, build in builders:
        fig = build()
        if fig is not None:
            yield stem, fig


def save(fig, path: Path) -> Path:
    """Write one figure (format from the file's extension) and close it: the one place a figure
    goes to disk. A PDF embeds its fonts as TrueType (Type 42), which journals accept, not
    matplotlib's default Type 3."""
    import matplotlib

    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with matplotlib.rc_context({"pdf.fonttype": 42}):
            fig.savefig(path, dpi=150)
    finally:
        _pyplot().close(fig)
    return path


def check_out(out: Path) -> None:
    """A :class:`PathError` when ``out``, the folder of the figures, or a folder above it
    exists and is not a folder (a file, a FIFO, a link to one): the recording is not at fault."""
    for p in (out, *out.parents):
        if os.path.lexists(p) and not p.is_dir():
            what = ("a symbolic link that points nowhere" if p.is_symlink() and not p.exists() else
                    "a file, not a folder")
            where = "" if p == out else f" (the folder would lie under it)"
            raise PathError(f"--out {_line(out)}: {_line(p)} is {what}{where}; name a folder for the figures (a new "
                            "one is created); the recording is not at fault")


def _line(path: Path) -> str:
    """``path`` shown on one line: quoted with its escapes when it holds a character that does not print."""
    text = shown(path)
    return text if text.isprintable() else repr(text)


def plot_all(path: str | Path, out: Optional[str | Path] = None, *, population: Optional[str] = None,
             variable: Optional[str] = None, fmt: str = "png", log: Log = _quiet) -> list[Path]:
    """Write every figure of the recording at ``path`` into ``out`` (default: ``plots/`` beside
    it) as ``NAME.FMT`` (``fmt``: png, pdf or svg); return the files written. The heatmap
    shows ``variable`` of ``population`` (default: rate of the first population recording it,
    left out with a note when none does); one the recording lacks is a ConfigError listing
    what it holds, and so is an ``out`` that is not a folder (a PathError)."""
    if fmt not in FORMATS:
        raise ValueError(f"format {fmt!r}: choose from {', '.join(FORMATS)}")
    path = Path(path)
    out = Path(out) if out else path.parent / "plots"
    check_out(out)
    with Recording(path) as rec:
        return [save(fig, out / f"{stem}.{fmt}") for stem, fig in figures(rec, population=population,
                                                                          variable=variable, log=log)]
