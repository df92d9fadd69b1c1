"""The depth suite (``dendrisim results --suite depth``, dendrisim/depth.py) is declared right:
every contender's derived model file loads and builds, depths 1, 3 and 5 have 1, 3 and 5
hidden populations of one size, and the rules differ only in what each needs."""
from __future__ import annotations

from argparse import Namespace
from pathlib import Path

import pytest

from dendrisim import depth as depth_suite
from dendrisim.builder import DataSpec, assemble, load_experiment
from dendrisim.tasks import TASKS
from dendrisim.results import SUITES, command, comparison_model, write_model

SUITE = SUITES["depth"]
PAIRS = [(c, k) for c in SUITE for k in c.contenders]


def derived(comparison, contender, tmp_path: Path) -> Path:
    return write_model(contender.derive(comparison_model(comparison)),
                       tmp_path / comparison.name / f"{contender.label}.yaml")


def hidden(model: dict) -> list[str]:
    """The hidden populations a rule's network computes with (not input, output or interneurons)."""
    return [n for n, p in model["populations"].items()
            if n not in ("input", "out") and p["type"] in ("pyramidal", "burst")]


def test_suite_has_three_depths_and_five_rules():
    assert [c.name for c in SUITE] == ["depth_1", "depth_3", "depth_5"]
    for c in SUITE:
        assert [k.rule for k in c.contenders] == ["bp", "dll", "mc_basal", "burstccn", "burstprop"]
        assert c.tune == SUITE[0].tune and c.tune_epochs == SUITE[0].tune_epochs and c.epochs == SUITE[0].epochs


@pytest.mark.parametrize("comparison,contender", PAIRS, ids=[f"{c.name}-{k.label}" for c, k in PAIRS])
def test_every_derived_model_builds_with_its_depth(comparison, contender, tmp_path):
    path = derived(comparison, contender, tmp_path)
    exp = load_experiment(path, [])
    assert exp.rule.rule == contender.rule
    # built as `dendrisim run --check` builds it: on the meta device, from the file alone
    net = assemble(exp, DataSpec.declared(TASKS.get(exp.task.type), exp.task, None), meta=True).network
    depth = int(comparison.name.split("_")[1])
    names = hidden(contender.derive(comparison_model(comparison)))
    assert names == [f"h{i + 1}" for i in range(depth)]
    assert {net.populations[n].size for n in names} == {depth_suite.WIDTH}
    assert net.populations["out"].size == 10


@pytest.mark.parametrize("comparison", SUITE, ids=[c.name for c in SUITE])
def test_rules_share_the_forward_network(comparison):
    """The forward projections (pre, post, init) are the same for every rule; only what a rule
    needs is added (interneurons, apical and somatic projections, Y and Q)."""
    forward = set()
    for contender in comparison.contenders:
        model = contender.derive(comparison_model(comparison))
        names = {"input", *hidden(model), "out"}
        basal = [(p["from"], p["to"], repr(p.get("init"))) for p in model["projections"]
                 if p.get("compartment", "basal") == "basal" and p["from"] in names and p["to"] in names]
        forward.add(tuple(basal))
    assert len(forward) == 1


def test_burst_rules_have_y_everywhere_and_q_only_for_burstccn():
    model = comparison_model(SUITE[2])  # depth 5
    ccn = depth_suite.burst("burstccn")(model)
    prop = depth_suite.burst("burstprop")(model)
    reads = lambda m, what: [(p["from"], p["to"]) for p in m["projections"] if p.get("reads") == what]
    pairs = [("h2", "h1"), ("h3", "h2"), ("h4", "h3"), ("h5", "h4"), ("out", "h5")]
    assert reads(ccn, "burst") == reads(prop, "burst") == pairs
    assert reads(ccn, "event") == pairs and reads(prop, "event") == []


def test_microcircuit_has_an_interneuron_per_hidden_population():
    model = depth_suite.microcircuit(comparison_model(SUITE[1]))  # depth 3
    inter = [n for n, p in model["populations"].items() if p["type"] == "interneuron"]
    assert inter == ["i1", "i2", "i3"]
    nudged = {(p["from"], p["to"]) for p in model["projections"] if p.get("compartment") == "soma"}
    assert nudged == {("h2", "i1"), ("h3", "i2"), ("out", "i3")}
    assert model["dynamics"]["mode"] == "euler" and model["training"]["phases"][0]["teacher"] is False


def test_command_names_the_model_written_in_the_contenders_folder(tmp_path):
    comparison, contender = SUITE[0], SUITE[0].contenders[3]
    args = Namespace(epochs=None, seeds=None, tune=None, tune_epochs=None, device="cpu", data_root=None,
                     overrides=[])
    folder = tmp_path / comparison.name / contender.label
    cmd = command(comparison, contender, args, folder)
    written = Path(cmd[cmd.index("scripts/compare_rules.py") + 1])
    assert written.resolve() == (folder / "model.yaml").resolve()
    assert load_experiment(written, []).rule.rule == "burstccn"


def test_the_figure_has_one_line_per_rule_and_errors_in_percent(tmp_path):
    report = {"comparisons": [
        {"name": f"depth_{d}", "contenders": {"bp": {"test": [0.9]}, "microcircuit": {"test": [0.9 - 0.1 * i]}}}
        for i, d in enumerate(depth_suite.DEPTHS)] + [{"name": "depth_7", "skipped": "no data"}]}
    found = depth_suite.errors(report)
    assert found["bp"] == {1: pytest.approx([10.0]), 3: pytest.approx([10.0]), 5: pytest.approx([10.0])}
    assert found["microcircuit"][5] == pytest.approx([30.0])
    path = tmp_path / "depth.png"
    depth_suite.plot(report, path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_results_page_shows_the_depth_suites_output_and_its_figure():
    """The page's depth table is the rendering of results.json's depth entry (not hand-typed),
    and the figure it shows is committed."""
    import json

    from dendrisim import results

    repo = Path(results.__file__).resolve().parent.parent
    page = repo / "docs" / "results.md"
    report = json.loads((repo / "results.json").read_text())["depth"]
    assert results.page_block(page, "depth") == results.render(report)
    assert [c["name"] for c in report["comparisons"]] == ["depth_1", "depth_3", "depth_5"]
    assert "](images/depth.png)" in page.read_text() and (repo / "docs" / "images" / "depth.png").is_file()


def test_the_error_table_is_100_minus_accuracy_per_rule_and_depth():
    report = {"suite": "depth", "comparisons": [
        {"name": "depth_1", "contenders": {"bp": {"test": [0.9, 0.8]}}},
        {"name": "depth_5", "contenders": {"bp": {"test": [0.7, 0.7]}}}]}
    table = depth_suite.error_table(report)
    assert "| rule | 1 hidden | 5 hidden | 5 − 1 |" in table
    assert "| bp | 15.00 ± 7.1% | 30.00 ± 0% | +15.00 points |" in table
