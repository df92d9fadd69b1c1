"""Tier 3: behaviour every registered rule must show, parametrized over the registry, under
every settling scheme: the built-in ones and one written in a test file (tests/test_schemes.py)."""

from typing import Optional

import pytest
import torch

from conftest import base_for, model
from dendrisim.builder import scheme_refusal
from dendrisim.errors import ConfigError
from dendrisim.optim import group_of
from dendrisim.plasticity import RULES
from dendrisim.settling import SCHEMES
from dendrisim.training import RunOptions, Trainer
from test_schemes import MIDPOINT, registered


def trainer(rule: str, *extra: str) -> Trainer:
    exp = model([f"plasticity.rule={rule}", "training.max_steps_per_epoch=30", "task.validation_fraction=0", *extra],
                base=base_for(rule))
    return Trainer(exp, RunOptions(progress=False, log=lambda s: None))


#: every rule under every settling scheme, a user's (the test file's midpoint) included; where
#: a rule refuses a scheme (pc needs one that runs its relaxation) the test is skipped with its reason
RULE_MODES = [(rule, mode) for rule in RULES.names() for mode in [*SCHEMES.names(), MIDPOINT]]


@pytest.fixture(autouse=True)
def scheme(request):
    """The test's settling scheme (its ``mode`` parameter), registered for the test where it
    is the test file's; the test is skipped, with the rule's own message, where the rule refuses it."""
    if "mode" not in request.fixturenames:
        yield None
        return
    rule, mode = request.getfixturevalue("rule"), request.getfixturevalue("mode")
    with registered(mode):
        refusal = scheme_refusal(rule, mode) or mlp_refusal(rule, mode)
        if refusal is not None:
            pytest.skip(refusal)
        yield mode


def settled(mode: str) -> list[str]:
    """The simulated compartments of the behavioural suite: weak nudging, a few steps past the depth."""
    return [] if mode == "steady" else [f"dynamics={{mode: {mode}, steps: 10, dt: 0.2, g_apical: 0.05}}"]


def mlp_refusal(rule: str, mode: str) -> Optional[str]:
    """Why a synapse model of the cortical microcircuit does not run on this suite's plain MLP
    (no interneurons, no apical projections), None for the other rules: the ``serves`` reason
    of the first projection it cannot govern, or the builder's refusal of the model, which must
    come (tests/test_microcircuit.py runs the suite on a circuit)."""
    cls = RULES.get(rule)
    if cls.family == "burst" and mode != "steady":  # burst neurons have no simulated compartments
        with pytest.raises(ConfigError) as refused:
            model([f"plasticity.rule={rule}", *settled(mode)], base=base_for(rule))
        return str(refused.value)
    if cls.family != "microcircuit":
        return None
    cfg = model().config
    for proj in cfg.projections:
        reason = cls.serves(proj, cfg.populations)
        if reason is not None:
            return f"{rule} cannot govern {proj.name}: {reason}"
    with pytest.raises(ConfigError) as refused:
        model([f"plasticity.rule={rule}", *settled(mode)])
    return str(refused.value)


@pytest.mark.parametrize("rule,mode", RULE_MODES)
def test_rule_lowers_loss_on_digits(rule, mode):
    tr = trainer(rule, "optimizer.lr=0.01", *settled(mode))
    before = tr.evaluate(tr.task.train)["loss"]
    for epoch in range(1, 4):
        tr.train_epoch(epoch)
    after = tr.evaluate(tr.task.train)["loss"]
    assert after < 0.8 * before, f"{rule} ({mode}): loss {before:.3f} -> {after:.3f}"


@pytest.mark.parametrize("rule,mode", RULE_MODES)
def test_rule_moves_learnable_weights_and_leaves_frozen_ones(rule, mode):
    tr = trainer(rule, "projections.1.learnable=false", *settled(mode))
    # frozen: the projection the test freezes and those fixed by the model (a burst network's Y)
    learn = {n: p.detach().clone() for n, p in tr.network.named_parameters() if "h1->h2" not in n and p.requires_grad}
    frozen = {n: p.detach().clone() for n, p in tr.network.named_parameters() if "h1->h2" in n or not p.requires_grad}
    fixed_feedback = {n: p.detach().clone() for n, p in tr.rule.named_parameters() if not p.requires_grad}
    tr.train_epoch(1)
    params = dict(tr.network.named_parameters())
    for n, before in learn.items():
        assert not torch.equal(params[n], before), f"{rule}: {n} did not move"
    for n, before in frozen.items():
        assert torch.equal(params[n], before), f"{rule}: frozen {n} moved"
        assert params[n].grad is None
    rule_params = dict(tr.rule.named_parameters())
    for n, before in fixed_feedback.items():
        assert torch.equal(rule_params[n], before), f"{rule}: fixed feedback {n} moved"


@pytest.mark.parametrize("rule,mode", RULE_MODES)
def test_rule_checkpoint_round_trips(rule, mode, tmp_path):
    """A trainer resumed from another's checkpoint takes exactly the same next steps."""
    def make(out):
        exp = model([f"plasticity.rule={rule}", "training.max_steps_per_epoch=6", "training.epochs=2",
                     "recording.enabled=false", *settled(mode)], base=base_for(rule))
        return Trainer(exp, RunOptions(out_dir=out, log=lambda s: None))

    a = make(tmp_path / "a")
    a.train_epoch(1)
    a.epoch = 2
    torch.save(a.checkpoint_state(), tmp_path / "checkpoint.pt")
    b = make(tmp_path / "b")
    b.resume(tmp_path / "checkpoint.pt")
    a.train_epoch(2)
    b.train_epoch(2)
    for part in ("network", "rule"):
        sa, sb = getattr(a, part).state_dict(), getattr(b, part).state_dict()
        assert sa.keys() == sb.keys()
        for k in sa:
            assert torch.equal(sa[k], sb[k]), f"{rule} ({mode}): {part}.{k}"


@pytest.mark.parametrize("learn", [True, False])
def test_dll_theta_learns_only_when_asked(learn):
    tr = trainer("dll", f"plasticity.learn_feedback={str(learn).lower()}")
    before = {n: p.detach().clone() for n, p in tr.rule.theta.items()}
    tr.train_epoch(1)
    moved = [not torch.equal(tr.rule.theta[n], b) for n, b in before.items()]
    assert all(moved) if learn else not any(moved)
    names = [g.get("name") for g in tr.optimizer.param_groups]
    if learn:
        assert group_of(tr.optimizer, "dll.theta")["lr"] == pytest.approx(0.1 * group_of(tr.optimizer, "input->h1")["lr"])
    else:
        assert "dll.theta" not in names


def test_lr_scale_becomes_a_param_group():
    tr = trainer("bp", "projections.2.lr_scale=0.25")
    assert group_of(tr.optimizer, "h2->out")["lr"] == pytest.approx(0.25 * group_of(tr.optimizer, "h1->h2")["lr"])
    assert group_of(tr.optimizer, "h1->h2") is group_of(tr.optimizer, "input->h1")  # equal scales share a group
    assert len(tr.optimizer.param_groups) == 2


def test_rules_build_no_autograd_graph():
    tr = trainer("dll")
    x, y = tr.task.train.x[:8], tr.task.train.y[:8]
    with torch.no_grad():
        tr.network(x)
        tr.scheme.present(tr.network, tr.rule, tr.task.target(y, tr.network))
    for pop in tr.network.pyramidal():
        for var in ("soma", "rate", "apical", "error"):
            assert getattr(pop, var).grad_fn is None
    for p in tr.network.parameters():
        assert p.grad.grad_fn is None


def test_named_clips_count_what_they_clip():
    tr = trainer("dll", "plasticity.clip_apical=1e-3", "plasticity.clip_update=1e-6")
    tr.train_epoch(1)
    counts = {k: int(v) for k, v in tr.rule.clip_counts.items()}
    assert set(counts) == {"apical:h1", "apical:h2", "update:input->h1", "update:h1->h2", "update:h2->out"}
    # the top hidden population's apical input and every update exceed their bounds;
    # below it the clipped errors are too small to reach the bound again
    assert counts["apical:h2"] > 0
    assert all(counts[k] > 0 for k in counts if k.startswith("update:"))
    for pop in ("h1", "h2"):
        assert tr.network.last_state[pop].apical.abs().max() <= 1e-3
    for proj in tr.network.projections.values():
        assert proj.weight.grad.abs().max() <= 1e-6


def test_clips_are_off_by_default():
    tr = trainer("dll")
    tr.train_epoch(1)
    assert tr.rule.clip_counts == {}


def test_seeded_runs_repeat_exactly():
    a, b = trainer("dll"), trainer("dll")
    ma, mb = a.train_epoch(1), b.train_epoch(1)
    assert ma == mb
    for (n, p), (_, q) in zip(a.network.named_parameters(), b.network.named_parameters()):
        assert torch.equal(p, q), n


def test_kolen_pollack_feedback_aligns_with_the_forward_weights():
    from dendrisim.recording.plots import feedback_angle

    tr = trainer("kp", "optimizer={type: sgd, lr: 0.1}", "plasticity.decay=0.3")  # W - Bᵀ shrinks 0.97x a step

    def angles():
        return {n: float(feedback_angle(B.detach().numpy()[None], tr.network.projections[n].weight.detach().numpy()[None])[0])
                for n, B in tr.rule.feedback.items()}

    before = angles()
    for epoch in range(1, 6):
        tr.train_epoch(epoch)
    after = angles()
    for name in before:
        assert before[name] > 70 and after[name] < 0.6 * before[name], (name, before[name], after[name])
    # decay is part of W's update too
    w = tr.network.projections["h1->h2"].weight
    assert tr.rule.feedback["h1->h2"].grad.shape == w.t().shape


@pytest.mark.parametrize("rule", RULES.names())
def test_every_update_has_its_parameters_layout(rule):
    """Fused optimizers (CUDA) need each .grad laid out like its parameter (the microcircuit's
    synapse models: on a circuit, tests/test_microcircuit.py)."""
    mode = "steady" if scheme_refusal(rule, "steady") is None else "euler"
    refusal = mlp_refusal(rule, mode)
    if refusal is not None:
        pytest.skip(refusal)
    tr = trainer(rule, "training.max_steps_per_epoch=2", *settled(mode))
    tr.train_epoch(1)
    for group in tr.optimizer.param_groups:
        for p in group["params"]:
            assert p.grad is not None and p.grad.stride() == p.stride() and p.grad.is_contiguous(), (rule, p.shape)


@pytest.mark.parametrize("tolerance, steps, expect_iterations, expect_unconverged", [
    (1e9, 20, 1.0, 0.0),     # any change is below the tolerance: one iteration, converged
    (1e-30, 3, 3.0, 1.0),    # nothing reaches it: every step runs all T and counts as unconverged
    (0, 3, 3.0, None),       # no tolerance: T iterations by choice, no convergence share
])
def test_pc_reports_its_inference_iterations_and_convergence(tolerance, steps, expect_iterations, expect_unconverged):
    tr = trainer("pc", f"plasticity.tolerance={tolerance}", f"plasticity.inference_steps={steps}")
    tr.train_epoch(1)
    summary = tr.rule.epoch_summary()
    assert summary["pc_iterations"] == expect_iterations
    assert summary.get("pc_unconverged") == expect_unconverged
    assert tr.rule.epoch_summary() == {}, "the counters reset after each summary"


def test_the_microcircuits_synapse_models_are_refused_on_a_plain_network_and_under_steady():
    """Not silently run where they mean nothing: under the steady sweep (no soma–dendrite
    mismatch there), and on a network without the circuit (mc_basal: no hidden population would
    ever have an error; mc_lateral, mc_topdown: no projection they serve)."""
    for rule in ("mc_basal", "mc_lateral", "mc_topdown"):
        refusal = scheme_refusal(rule, "steady")
        assert refusal.startswith(f"rule {rule} cannot run under mode steady (it runs under euler): its update is a "
                                  "soma's mismatch"), refusal
    with pytest.raises(ConfigError, match=r"test.yaml: dynamics.mode: rule mc_basal cannot run under mode steady"):
        model(["plasticity.rule=mc_basal"])
    with pytest.raises(ConfigError, match=r"test.yaml: plasticity.rule: mc_basal learns input->h1 from h1's "
                                          r"soma–dendrite mismatch, but nothing ever reaches h1's apical dendrite"):
        model(["plasticity.rule=mc_basal", *settled("euler")])
    # a projection out of h1 that carries errors back (bp) gives it an error: allowed
    model(["plasticity.rule=mc_basal", "projections.1.plasticity={rule: bp}", "projections.2.plasticity={rule: bp}",
           *settled("euler")])
    assert mlp_refusal("mc_lateral", "euler") == ("mc_lateral cannot govern input->h1: it is the synapse model of "
                                                  "interneuron -> apical projections")
    with pytest.raises((ConfigError, ValueError), match=r"mc_topdown cannot govern .*synapse model of top-down"):
        trainer("mc_topdown", *settled("euler"))
