"""Figures of ``dendrisim plot``: their structure (axes, labels, titles, legends, ticks), not pixels.

Recordings come from tiny runs: the MLP with its alignment measured and feedback recorded, a
one-layer network (every feedback angle NaN), the MLP under euler dynamics and a microcircuit
with interneurons."""
import math
import xml.etree.ElementTree as ET
from pathlib import Path

import h5py
import numpy as np
import pytest

from conftest import MLP, model
from dendrisim.builder import load_experiment
from dendrisim.errors import ConfigError
from dendrisim.plot import main
from dendrisim.populations import InterneuronPopulation, PyramidalPopulation
from dendrisim.recording import open_recording
from dendrisim.recording import plots
from dendrisim.training import RunOptions, Trainer

REPO = Path(__file__).resolve().parent.parent
ONE_LAYER = {**MLP, "name": "one_layer", "populations": {"input": MLP["populations"]["input"],
                                                         "out": MLP["populations"]["out"]},
             "projections": [{"from": "input", "to": "out"}]}


def run(out: Path, experiment) -> Path:
    Trainer(experiment, RunOptions(out_dir=out, progress=False, log=lambda s: None)).run()
    return out / "recording.h5"


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("runs")
    short = ["training.epochs=3", "training.max_steps_per_epoch=6"]
    circuit = load_experiment(REPO / "models" / "microcircuit_digits.yaml", [
        "populations.h1.size=12", "training.max_steps_per_epoch=4", "recording.every=2", "recording.samples=4",
        "training.phases=[{name: self_predicting, epochs: 1, teacher: false, learn: [h1->i1, i1->h1]}, "
        "{name: learning, epochs: 2, teacher: true}]"])
    return {
        "mlp": run(root / "mlp", model([*short, "training.seed=7", "recording={every: 2, samples: 4, projections: "
                                        "{h2->out: [weight, feedback]}}", "training.alignment={every: 3, probe_size: 32}"])),
        "one_layer": run(root / "one_layer", model([*short, "training.alignment={every: 3, probe_size: 32}",
                                                    "recording={every: 2, populations: {out: [soma, rate]}}"],
                                                   base=ONE_LAYER)),
        "euler": run(root / "euler", model([*short, "dynamics={mode: euler, steps: 4}", "recording={every: 3}"])),
        "circuit": run(root / "circuit", circuit),
    }


def build(path: Path, name: str, **options):
    """One figure by name, and the log lines its building wrote."""
    lines: list[str] = []
    with open_recording(path) as rec:
        fig = getattr(plots, f"{name}_figure")(rec, log=lines.append, **options)
    return fig, lines


def panels(fig) -> list:
    """The figure's plotting axes (colour bars left out)."""
    return [ax for ax in fig.axes if ax.get_label() != "<colorbar>"]


def assert_not_empty(fig) -> None:
    for ax in panels(fig):
        assert ax.axison and (ax.lines or ax.collections or ax.images), f"empty panel {ax.get_title()!r}"
        data = [line.get_ydata() for line in ax.lines] + [im.get_array() for im in ax.images]
        assert any(np.isfinite(np.asarray(d, dtype=float)).any() for d in data), ax.get_title()


def assert_integer_ticks(axis) -> None:
    lo, hi = axis.get_view_interval()
    ticks = [t for t in axis.get_ticklocs() if lo - 1e-9 <= t <= hi + 1e-9]
    assert ticks and all(float(t).is_integer() for t in ticks), ticks


def titled(fig, *parts: str) -> None:
    title = fig._suptitle.get_text()
    for part in parts:
        assert part in title, (part, title)


def legend_texts(fig) -> list[str]:
    return [t.get_text() for legend in fig.legends for t in legend.get_texts()]


def test_the_drawn_compartments_are_what_each_population_type_declares():
    assert plots.has("pyramidal") == tuple(PyramidalPopulation.variables)
    assert plots.has("interneuron") == tuple(InterneuronPopulation.variables)
    assert plots.has("no_such_model") == ()


def test_every_figure_names_model_rule_and_seed(runs):
    for run_name, path in runs.items():
        with open_recording(path) as rec:
            made = dict(plots.figures(rec))
        assert made, run_name
        for stem, fig in made.items():
            titled(fig, {"mlp": "tiny · rule dll · seed 7", "one_layer": "one_layer · rule dll · seed 0",
                         "euler": "tiny · rule dll · seed 0", "circuit": "microcircuit_digits · rule mc_basal"}[run_name])
            assert_not_empty(fig)
            plots._pyplot().close(fig)


def test_learning_curves_count_epochs_in_whole_numbers(runs):
    fig, lines = build(runs["mlp"], "learning_curves")
    assert [ax.get_ylabel() for ax in panels(fig)] == ["accuracy", "loss"] and not lines
    for ax in panels(fig):
        assert ax.get_xlabel() == "epoch"
        assert_integer_ticks(ax.xaxis)
        assert [t.get_text() for t in ax.get_legend().get_texts()] == ["train", "validation", "test"]


def test_activity_shows_signed_mean_magnitude_and_a_labelled_band(runs):
    fig, lines = build(runs["mlp"], "activity")
    titles = [ax.get_title() for ax in panels(fig)]
    assert titles == [f"{p}.{v}" for p in ("h1", "h2") for v in plots.has("pyramidal")]
    assert [ax.get_ylabel() for ax in panels(fig) if ax.get_ylabel()] == ["h1 (pyramidal)", "h2 (pyramidal)"]
    labels = legend_texts(fig)
    assert labels[:2] == ["signed mean", "mean |x|"]
    assert labels[2] == "mean ± 1 std over 4 sampled inputs × neurons"
    with open_recording(runs["mlp"]) as rec:
        apical = rec.activity("h2", "apical").astype(np.float64).reshape(len(rec.steps), -1)
        steps = rec.steps
    ax = panels(fig)[7]
    signed, magnitude = (line.get_ydata() for line in ax.lines[:2])
    assert np.allclose(signed, apical.mean(1)) and np.allclose(magnitude, np.abs(apical).mean(1))
    band = ax.collections[0].get_paths()[0].vertices[:, 1]
    assert np.isclose(band.max(), (apical.mean(1) + apical.std(1)).max())
    for ax in panels(fig):
        assert list(ax.lines[0].get_xdata()) == list(steps)
        assert_integer_ticks(ax.xaxis)
    assert [ax.get_xlabel() for ax in panels(fig)][-5:] == ["training step"] * 5


def test_interneurons_show_dendrite_and_nudging_and_no_panel_is_empty(runs):
    fig, lines = build(runs["circuit"], "activity")
    by_row = {}
    for ax in panels(fig):
        pop, var = ax.get_title().split(".")
        by_row.setdefault(pop, []).append(var)
    assert by_row == {"h1": list(plots.has("pyramidal")), "i1": list(plots.has("interneuron")),
                      "out": list(plots.has("pyramidal"))}
    assert "i1 (interneuron)" in [ax.get_ylabel() for ax in panels(fig)]
    assert_not_empty(fig)
    assert "at the end of each presentation" in legend_texts(fig)[2]
    assert legend_texts(fig)[3] == "phase 'learning' starts"  # the teacher comes on: a dotted line where
    with open_recording(runs["circuit"]) as rec:
        last_self_predicting = rec.steps[rec.phase == 0][-1]
    assert all(ax.lines[-1].get_xdata()[0] == last_self_predicting + 0.5 for ax in panels(fig))
    fig, _ = build(runs["circuit"], "presentation")
    rows = [ax.get_title() for ax in panels(fig)]
    assert rows == ["h1.soma", "h1.basal", "h1.apical", "h1.error", "i1.soma", "i1.dendrite", "i1.nudging", "i1.error",
                    "out.soma", "out.basal", "out.apical", "out.error"]
    assert_not_empty(fig)


def test_the_presentation_has_a_legend_for_its_sampled_neurons(runs):
    fig, _ = build(runs["euler"], "presentation")
    assert [ax.get_title() for ax in panels(fig)][:4] == ["h1.soma", "h1.basal", "h1.apical", "h1.error"]
    assert legend_texts(fig) == [f"neuron {j}" for j in range(5)]
    assert fig.legends[0].get_title().get_text() == "the first 5 neurons of each population"
    titled(fig, "one presentation: training step 18")
    assert all(len(ax.lines[0].get_xdata()) == 5 for ax in panels(fig))  # the start and 4 Euler steps


def test_a_compartment_not_recorded_is_left_out_with_one_line(runs):
    fig, lines = build(runs["one_layer"], "activity")
    assert [ax.get_title() for ax in panels(fig)] == ["out.soma", "out.rate"]
    assert lines == ["activity: left out out.basal, out.apical, out.error (not recorded; see the model file's "
                     "recording.populations)"]


def test_a_compartment_nan_throughout_is_left_out_with_one_line(runs, tmp_path):
    path = tmp_path / "recording.h5"
    path.write_bytes(runs["mlp"].read_bytes())
    with h5py.File(path, "a") as f:
        f["populations/h1/apical"][...] = np.nan
    fig, lines = build(path, "activity")
    assert "h1.apical" not in [ax.get_title() for ax in panels(fig)] and "h2.apical" in [ax.get_title() for ax in panels(fig)]
    assert lines == ["activity: left out h1.apical (NaN throughout)"]
    assert_not_empty(fig)


def test_a_feedback_angle_nan_throughout_leaves_its_panel_out(runs):
    fig, lines = build(runs["one_layer"], "alignment")
    assert [ax.get_ylabel() for ax in panels(fig)] == [plots.ALIGNMENT_PANELS["update_angle"],
                                                       plots.ALIGNMENT_PANELS["update_norm_ratio"]]
    assert lines == ["alignment: left out input->out feedback_angle, the feedback_angle panel (NaN throughout)"]
    assert_not_empty(fig)
    fig, lines = build(runs["mlp"], "alignment")  # input->h1 has no feedback: its line is left out, the panel stays
    assert len(panels(fig)) == 3 and lines == ["alignment: left out input->h1 feedback_angle (NaN throughout)"]
    angles = panels(fig)[2]
    assert [line.get_label() for line in angles.lines] == ["h1->h2 (measured)", "h2->out (measured)",
                                                           "h2->out (recorded matrices)"]
    assert legend_texts(fig) == ["h1->h2 (measured)", "h2->out (measured)", "input->h1 (measured)",
                                 "h2->out (recorded matrices)"]
    for ax in panels(fig):
        assert ax.get_xlabel() == "training step"
        assert_integer_ticks(ax.xaxis)
    assert all(not math.isnan(v) for line in angles.lines for v in line.get_ydata())


def test_heatmap_names_its_axes_and_refuses_what_was_not_recorded(runs):
    fig, _ = build(runs["circuit"], "heatmap", population="i1", variable="nudging")
    ax = panels(fig)[0]
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("training step", "neuron of i1")
    assert fig.axes[1].get_ylabel() == "nudging, mean over 4 sampled inputs"
    assert_integer_ticks(ax.xaxis)
    with pytest.raises(ConfigError, match=r"holds no 'basal' of population 'i1' .* i1: dendrite, error, nudging"):
        build(runs["circuit"], "heatmap", population="i1", variable="basal")


@pytest.mark.parametrize("fmt", ["png", "pdf", "svg"])
def test_the_command_writes_each_format(runs, tmp_path, fmt, capsys):
    assert main([str(runs["one_layer"]), "--out", str(tmp_path), "--format", fmt]) == 0
    out, err = capsys.readouterr()
    made = [Path(p) for p in out.split()]
    assert {p.name for p in made} == {f"{n}.{fmt}" for n in ("learning_curves", "activity", "heatmap_out_rate",
                                                              "alignment")}
    for p in made:
        data = p.read_bytes()
        if fmt == "png":
            assert data[:8] == b"\x89PNG\r\n\x1a\n"
        elif fmt == "pdf":
            assert data[:5] == b"%PDF-" and b"%%EOF" in data[-32:]
            assert b"/FontFile2" in data and b"/Type3" not in data  # TrueType fonts, as journals ask
        else:
            assert ET.fromstring(data).tag == "{http://www.w3.org/2000/svg}svg"
    notes = err.splitlines()
    assert notes == ["note: activity: left out out.basal, out.apical, out.error (not recorded; see the model file's "
                     "recording.populations)",
                     "note: alignment: left out input->out feedback_angle, the feedback_angle panel (NaN throughout)"]


def test_an_unknown_format_or_population_is_refused(runs, tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:
        main([str(runs["one_layer"]), "--out", str(tmp_path), "--format", "jpg"])
    assert stop.value.code == 2 and "invalid choice: 'jpg'" in capsys.readouterr().err
    assert main([str(runs["one_layer"]), "--out", str(tmp_path), "--population", "h1"]) == 2
    assert capsys.readouterr().err == (f"error: {runs['one_layer']} holds no 'rate' of population 'h1' for the "
                                       "heatmap (--population, --variable); it records out: rate, soma\n")
    assert not any(tmp_path.iterdir())


def test_a_title_falls_back_to_the_root_attributes_when_model_yaml_is_unreadable(runs, tmp_path):
    path = tmp_path / "recording.h5"
    path.write_bytes(runs["one_layer"].read_bytes())
    with h5py.File(path, "a") as f:
        f.attrs["model_yaml"] = "a: &x [*x"
        f.attrs["seed"] = 11
    fig, _ = build(path, "learning_curves")
    titled(fig, "one_layer · rule dll · seed 11")


def test_one_epoch_still_gets_whole_epoch_ticks(runs, tmp_path):
    path = tmp_path / "recording.h5"
    path.write_bytes(runs["one_layer"].read_bytes())
    with h5py.File(path, "a") as f:
        f["metrics/epoch"].resize(1, axis=0)  # the reader keeps the rows every metric holds: one epoch
    fig, _ = build(path, "learning_curves")
    for ax in panels(fig):
        assert len(ax.lines[0].get_xdata()) == 1
        assert_integer_ticks(ax.xaxis)


def test_rows_follow_the_model_files_order_of_populations(runs, tmp_path):
    import yaml

    path = tmp_path / "recording.h5"
    path.write_bytes(runs["mlp"].read_bytes())
    with h5py.File(path, "a") as f:  # h2 listed before h1: HDF5 itself lists groups alphabetically
        spec = yaml.safe_load(f.attrs["model_yaml"])
        spec["populations"] = {k: spec["populations"][k] for k in ("input", "h2", "h1", "out")}
        f.attrs["model_yaml"] = yaml.safe_dump(spec, sort_keys=False)
    fig, _ = build(path, "activity")
    assert [ax.get_ylabel() for ax in panels(fig) if ax.get_ylabel()] == ["h2 (pyramidal)", "h1 (pyramidal)"]
    with open_recording(path) as rec:
        assert plots.heatmap_population(rec, None, "rate") == "h2"
