"""Plasticity per projection: each projection learns by, and carries back through, its own rule."""
import copy

import numpy as np
import pytest
import torch

from conftest import MLP, build, model, recording_datasets
from dendrisim.errors import ConfigError
from dendrisim.plasticity import MixedPlasticity
from dendrisim.training import RunOptions, Trainer
from test_equivalence import autograd_grads, rule_grads


def chain(rules: list, *, default: str = "dll", **default_options) -> dict:
    """MLP input -> h1 -> h2 -> out (float64-friendly init) with a plasticity block per projection."""
    spec = copy.deepcopy(MLP)
    spec["plasticity"] = {"rule": default, **default_options}
    for proj, block in zip(spec["projections"], rules):
        proj["init"] = {"normal": {"std": 0.4}}
        if block is not None:
            proj["plasticity"] = block
    return spec


def test_bp_and_fa_with_transposed_feedback_mixed_equal_autograd():
    """Each projection carries back through its own rule: bp's Wᵀ, and fa's B set to Wᵀ, so
    the mix is exact backprop."""
    exp = model(base=chain([{"rule": "bp"}, {"rule": "fa"}, None], default="bp"))
    assert exp.mixed
    net, rule = build(exp)
    assert isinstance(rule, MixedPlasticity) and rule.rule_of(net.projections["h1->h2"]).options.rule == "fa"
    with torch.no_grad():
        fa = rule.rule_of(net.projections["h1->h2"])
        assert set(fa.feedback) == {"h1->h2"}  # fa's feedback exists for its projection only
        fa.feedback["h1->h2"].copy_(net.projections["h1->h2"].transported())
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(6, 5, generator=gen, dtype=torch.float64)
    t = torch.eye(3, dtype=torch.float64)[torch.randint(0, 3, (6,), generator=gen)]
    ours, exact = rule_grads(net, rule, x, t), autograd_grads(net, x, t)
    for n in exact:
        torch.testing.assert_close(ours[n], exact[n], rtol=1e-10, atol=1e-12)


def test_each_rule_applies_its_own_gains_on_its_own_projections():
    """h2->out under dll with σ = 0.5 and θ = Wᵀ, the rest bp: dll's update of h2->out is
    2/σ² = 8 x backprop's, and the apical input it sends to h2 is 1/σ² = 4 x backprop's, so
    the bp projections below get 4 x their exact gradients."""
    exp = model(base=chain([None, None, {"rule": "dll", "sigma": 0.5}], default="bp"))
    net, rule = build(exp)
    with torch.no_grad():
        rule.rule_of(net.projections["h2->out"]).theta["h2->out"].copy_(net.projections["h2->out"].transported())
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(5, 5, generator=gen, dtype=torch.float64)
    t = torch.eye(3, dtype=torch.float64)[torch.randint(0, 3, (5,), generator=gen)]
    ours, exact = rule_grads(net, rule, x, t), autograd_grads(net, x, t)
    for n in exact:
        scale = 8.0 if "h2->out" in n else 4.0
        torch.testing.assert_close(ours[n], scale * exact[n], rtol=1e-10, atol=1e-12)


def test_a_block_equal_to_the_default_is_not_a_mix():
    exp = model(["projections.1.plasticity={rule: dll}"])
    assert not exp.mixed
    net, rule = build(exp)
    assert not isinstance(rule, MixedPlasticity)


def test_check_prints_each_projections_rule_and_feedback_pathway():
    from dendrisim.inspect import describe

    text = describe(model(["projections.2.plasticity={rule: bp}", "projections.1.plasticity={rule: kp, decay: 0}"]))
    assert "input->h1: dll (the top-level rule)" in text and "h1->h2: kp (its own plasticity block)" in text
    assert "h2->out: bp (its own plasticity block)" in text
    assert "h2.apical <- out.error through W[h2->out]ᵀ (weight transport) [bp]" in text
    assert "h1.apical <- h2.error through B[h1->h2] [12, 8], learned by the transposed W update [kp]" in text


MIXES = {"dll+bp": ["projections.2.plasticity={rule: bp}"],
         "bp+fa+kp": ["plasticity.rule=bp", "projections.0.plasticity={rule: fa}", "projections.1.plasticity={rule: kp}"],
         "dll(σ 2)+dll": ["projections.1.plasticity={rule: dll, sigma: 2.0, learn_feedback: false}"]}


@pytest.mark.parametrize("mix", MIXES)
@pytest.mark.parametrize("mode", ["steady", "euler"])
def test_mixed_networks_learn_and_frozen_projections_stay(mix, mode):
    extra = ["dynamics={mode: euler, steps: 10, dt: 0.2, g_apical: 0.05}"] if mode == "euler" else []
    tr = Trainer(model([*MIXES[mix], *extra, "training.max_steps_per_epoch=30", "task.validation_fraction=0",
                        "optimizer.lr=0.01"]), RunOptions(log=lambda s: None))
    before = tr.evaluate(tr.task.train)["loss"]
    for epoch in range(1, 4):
        tr.train_epoch(epoch)
    assert tr.evaluate(tr.task.train)["loss"] < 0.8 * before
    frozen = Trainer(model([*MIXES[mix], *extra, "projections.2.learnable=false", "training.max_steps_per_epoch=5"]),
                     RunOptions(log=lambda s: None))
    w = frozen.network.projections["h2->out"].weight.detach().clone()
    others = {n: p.detach().clone() for n, p in frozen.network.named_parameters() if "h2->out" not in n}
    frozen.train_epoch(1)
    assert torch.equal(frozen.network.projections["h2->out"].weight, w)
    assert all(not torch.equal(p, others[n]) for n, p in frozen.network.named_parameters() if n in others)


def test_a_mixed_run_records_measures_alignment_and_resumes_exactly(tmp_path):
    sets = ["projections.2.plasticity={rule: bp}", "projections.1.plasticity={rule: kp}", "training.epochs=3",
            "training.max_steps_per_epoch=12", "training.alignment={every: 5, probe_size: 64}",
            "recording={every: 4, projections: {h2->out: [weight, feedback], h1->h2: [feedback, update]}}"]

    def trainer(out):
        return Trainer(model(sets), RunOptions(out_dir=out, log=lambda s: None))

    whole = trainer(tmp_path / "whole")
    whole.run()
    stopped = trainer(tmp_path / "stopped")
    present = stopped.scheme.present

    def stop_at_17(*args, **kw):
        presentation = present(*args, **kw)
        if stopped.global_step + 1 == 17:
            stopped.request_stop("test")
        return presentation
    stopped.scheme.present = stop_at_17
    stopped.run()
    resumed = trainer(tmp_path / "stopped")
    resumed.resume(tmp_path / "stopped" / "checkpoint.pt")
    resumed.run()
    a, b = recording_datasets(tmp_path / "whole" / "recording.h5"), recording_datasets(tmp_path / "stopped" / "recording.h5")
    assert a.keys() == b.keys() and "alignment/h1->h2/feedback_angle" in a
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    assert np.isfinite(a["projections/h1->h2/feedback"]).all()
    for (n, p), q in zip(whole.rule.state_dict().items(), resumed.rule.state_dict().values()):
        assert torch.equal(p, q), n
    angle = a["alignment/h2->out/feedback_angle"]
    assert np.allclose(angle, 0.0, atol=1e-3)  # bp carries back through Wᵀ itself


@pytest.mark.parametrize("overrides,match", [
    (["projections.2.plasticity={rule: bq}"],
     r"projections\[2\].plasticity.rule: 'bq' is not a known plasticity rule; choose one of bp, burstccn, burstprop, dfa, dll, fa, kp, mc_basal, "
     r"mc_lateral, mc_topdown, pc"),
    (["projections.2.plasticity={rule: bp, sigma: 2}"],
     r"projections\[2\].plasticity.sigma: 'sigma' is an option of dll, not of bp; bp takes clip_apical, clip_update, "
     r"rule, truncate"),
    (["projections.2.plasticity={rule: bp, sigmaa: 2}"], r"projections\[2\].plasticity.sigmaa: 'sigmaa' is not an "
                                                          r"option of any rule"),
    (["projections.2.plasticity=bp"], r"projections\[2\].plasticity: 'bp' is not a mapping"),
    (["projections.2.plasticity={sigma: 2}"], r"projections\[2\].plasticity: .* is not a plasticity block"),
    (["projections.2.plasticity={rule: dfa}"], r"projections\[2\].plasticity.rule: dfa is a network-wide rule: it "
                                               r"cannot govern h2->out alone"),
    (["plasticity.rule=pc", "projections.0.plasticity={rule: bp}", "projections.1.plasticity={rule: fa}"],
     r"plasticity.rule: pc is a network-wide rule and cannot share the network: projections\[0\] \(input->h1: bp\), "
     r"projections\[1\] \(h1->h2: fa\) ask for their own rules"),
    (["projections.1.plasticity={rule: fa, feedback_init: {nrmal: {std: 1}}}"],
     r"projections\[1\].plasticity.feedback_init"),
])
def test_bad_projection_plasticity_is_refused_naming_the_projection(overrides, match):
    with pytest.raises(ConfigError, match=match):
        model(overrides)


def test_the_resolved_model_file_keeps_the_projection_blocks(tmp_path):
    from dendrisim.builder import load_experiment

    exp = model(["projections.2.plasticity={rule: kp}"])
    data = exp.to_dict()
    assert data["projections"][2]["plasticity"] == {"rule": "kp", "clip_apical": None, "clip_update": None,
                                                    "truncate": None, "feedback_init": {"normal": {"std": 0.05}},
                                                    "decay": 0.001}
    assert "plasticity" not in data["projections"][0]
    again = load_experiment(data, file="again.yaml")
    assert again.projection_rules == exp.projection_rules and again.to_yaml() == exp.to_yaml()
