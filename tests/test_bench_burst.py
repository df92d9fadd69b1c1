"""``bench.py --burst``: burstccn's and burstprop's training steps against their matmul floor
(the forward pass, the Y and Q passes, the W and Q updates). The burst network the bench
makes from a model file, the floor's products, and one tiny timed run. Times are printed,
never asserted."""
import copy
import json

import torch
import yaml

from conftest import BURST_MLP, MLP
from dendrisim import bench
from dendrisim.builder import DataSpec, assemble, load_experiment
from dendrisim.projections import basal_drive, explicit_drive

B = 4


def model_file(tmp_path, data: dict, name: str = "tiny.yaml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(copy.deepcopy(data)))
    return path


def built(data: dict, rule: str):
    """The bench's burst network of ``data`` under ``rule``, presented one batch of B."""
    exp = load_experiment(bench.burst_model(load_experiment(copy.deepcopy(data)), rule))
    model = assemble(exp, DataSpec((64,), 10))
    torch.manual_seed(0)
    x, t = torch.rand(B, 64), torch.eye(10)[torch.randint(0, 10, (B,))]
    with torch.no_grad():
        state = model.scheme.present(model.network, model.rule, t, state=model.network.free_state(x)).state
    return model, state


def test_a_pyramidal_chain_becomes_burst_neurons_with_y_and_q():
    data = bench.burst_model(load_experiment(copy.deepcopy(MLP)), "burstccn")
    assert {n: (p["type"], p["activation"]) for n, p in data["populations"].items() if n != "input"} == {
        n: ("burst", "sigmoid") for n in ("h1", "h2", "out")}
    apical = {(p["from"], p["to"], p["reads"], p.get("learnable", False))
              for p in data["projections"] if p.get("compartment") == "apical"}
    assert apical == {("h2", "h1", "burst", False), ("h2", "h1", "event", True),
                      ("out", "h2", "burst", False), ("out", "h2", "event", True)}
    assert data["plasticity"] == {"rule": "burstccn"} and data["optimizer"]["type"] == "sgd"
    prop = bench.burst_model(load_experiment(copy.deepcopy(MLP)), "burstprop")
    assert {p["reads"] for p in prop["projections"] if p.get("compartment") == "apical"} == {"burst"}  # no Q


def test_a_burst_file_is_kept_and_burstprop_drops_its_q():
    data = {**copy.deepcopy(BURST_MLP), "plasticity": {"rule": "burstccn", "feedback_scale": 2.0, "cancel": "given"}}
    kept = bench.burst_model(load_experiment(copy.deepcopy(data)), "burstccn")
    assert len(kept["projections"]) == len(BURST_MLP["projections"])
    assert kept["optimizer"]["type"] == BURST_MLP["optimizer"]["type"]  # the file's own
    assert kept["plasticity"]["feedback_scale"] == 2.0 and kept["plasticity"]["cancel"] == "given"
    prop = bench.burst_model(load_experiment(copy.deepcopy(data)), "burstprop")
    assert [p.get("reads") for p in prop["projections"] if p["compartment"] == "apical"] == ["burst", "burst"]
    assert prop["plasticity"]["rule"] == "burstprop" and prop["plasticity"]["feedback_scale"] == 2.0
    assert "cancel" not in prop["plasticity"]
    load_experiment(prop)  # a valid burstprop model


def test_the_floor_counts_forward_y_q_and_the_updates_of_w_and_q():
    model, state = built(MLP, "burstccn")
    floor, shapes = bench.burst_floor(model.network, state, "burstccn", B)
    forward = [(B, 64, 12), (B, 12, 8), (B, 8, 10)]
    y_and_q = [(B, 8, 12)] * 2 + [(B, 10, 8)] * 2  # h2 -> h1, out -> h2: Y and Q each
    updates = [(12, B, 64), (8, B, 12), (10, B, 8), (12, B, 8), (8, B, 10)]  # W, then Q
    assert sorted(shapes) == sorted(forward + y_and_q + updates)
    before = {n: p.detach().clone() for n, p in model.network.named_parameters()}
    grads = {n: p.grad.clone() for n, p in model.network.named_parameters() if p.grad is not None}
    floor()  # outside no_grad: bare torch.mm into its own buffers, nothing of the network written
    assert all(torch.equal(p, before[n]) for n, p in model.network.named_parameters())
    assert all(torch.equal(p.grad, grads[n]) for n, p in model.network.named_parameters() if n in grads)
    assert "projections.h2:event->h1.weight" in grads  # Q learns: its update is in the floor


def test_burstprop_floor_counts_two_y_passes_and_no_q():
    model, state = built(MLP, "burstprop")
    _, shapes = bench.burst_floor(model.network, state, "burstprop", B)
    assert sorted(shapes) == sorted([(B, 64, 12), (B, 12, 8), (B, 8, 10),
                                     (B, 8, 12), (B, 8, 12), (B, 10, 8), (B, 10, 8),  # Y, twice
                                     (12, B, 64), (8, B, 12), (10, B, 8)])


def test_bench_burst_runs_one_tiny_step_and_reports_a_floor_and_a_ratio(tmp_path, capsys):
    args = ["--burst", str(model_file(tmp_path, MLP)), "--batch", str(B), "--steps", "1", "--repeats", "2",
            "--warmup", "0", "--threads", str(torch.get_num_threads())]
    assert bench.main(args) == 0
    out = capsys.readouterr().out
    assert "burst rules, tiny as burst neurons 64-12-8-10, batch 4" in out and "x floor" in out
    assert [line.split()[0] for line in out.splitlines() if line.startswith("burst") and "ms" not in line
            and "rules" not in line] == ["burstccn", "burstprop"]

    assert bench.main([*args, "--json"]) == 0
    result = json.loads(capsys.readouterr().out)["burst"]
    assert result["sizes"] == [64, 12, 8, 10] and [r["rule"] for r in result["rows"]] == ["burstccn", "burstprop"]
    for row in result["rows"]:
        assert row["step_ms"] > 0 and row["floor_ms"] > 0 and row["vs_floor"] > 0 and row["floor_gflop"] > 0
        assert len(row["ratios"]) == 2 and row["finite"]
    assert [r["matmuls"] for r in result["rows"]] == [3 + 4 + 5, 3 + 4 + 3]


def test_a_drive_sum_is_the_same_sum_and_never_writes_its_start():
    """The explicit and basal drives add their terms up in place in the first drive they make
    (one allocation per term fewer): the same sums bit for bit, and ``start`` left alone."""
    model, state = built(MLP, "burstccn")
    net = model.network
    explicit = net.apical_in["h1"]
    reads = {"burst": {"h2": state["h2"].burst}, "event": {"h2": state["h2"].rate}}
    by_hand = explicit[0].drive(state["h2"].burst) + explicit[1].drive(state["h2"].rate)
    assert torch.equal(explicit_drive(explicit, reads), by_hand)
    start = torch.rand(B, 12)
    kept = start.clone()
    total = explicit_drive(explicit, reads, start=start)
    assert torch.equal(start, kept) and torch.equal(total, start + explicit[0].drive(state["h2"].burst)
                                                    + explicit[1].drive(state["h2"].rate))
    (proj,) = net.incoming["h2"]
    start = torch.rand(B, 8)
    kept = start.clone()
    again = basal_drive([proj, proj], {"h1": state["h1"].rate}, start=start)
    assert torch.equal(start, kept) and torch.equal(again, start + proj.drive(state["h1"].rate) + proj.drive(
        state["h1"].rate))
