"""DLL's named options for θ through time (#16): the anti-Hebbian recurrent sign, a warm-up
with θ fixed, decay on θ and the spectral-norm bound on the recurrent θ, each against
the rule as specified on the same presentation."""
import pytest
import torch

from conftest import build, model
from dendrisim.errors import ConfigError
from test_equivalence import rule_grads
from test_recurrent import rnn, target
from test_sequences import rnn_model, text_file  # noqa: F401  (a fixture)
from dendrisim.training import RunOptions, Trainer


def twins(*extra):
    """The same small DLL RNN (input -> h1 (recurrent) -> out) as specified and with ``extra``."""
    torch.manual_seed(3)
    plain = build(rnn("dll"), input_shape=(5,), output_size=3)
    torch.manual_seed(3)
    varied = build(rnn("dll", extra=list(extra)), input_shape=(5,), output_size=3)
    return plain, varied


def presentation(seed=4):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(3, 6, 5, generator=gen, dtype=torch.float64), target("softmax", 6, 3, 3, gen)


def test_anti_hebbian_flips_the_recurrent_theta_update_and_nothing_else():
    (net_a, hebb), (net_b, anti) = twins("plasticity.recurrent_feedback_sign=anti_hebbian")
    x, t = presentation()
    ga, gb = rule_grads(net_a, hebb, x, t), rule_grads(net_b, anti, x, t)
    for name in ga:  # the forward weights learn as before: the errors are the same
        torch.testing.assert_close(gb[name], ga[name], rtol=0, atol=0, msg=name)
    assert anti.recurrent == {"h1->h1"}
    torch.testing.assert_close(anti.theta["h1->h1"].grad, -hebb.theta["h1->h1"].grad, rtol=0, atol=0)
    torch.testing.assert_close(anti.theta["h1->out"].grad, hebb.theta["h1->out"].grad, rtol=0, atol=0)
    assert hebb.theta["h1->h1"].grad.abs().max() > 0


def test_decay_adds_a_pull_of_theta_toward_zero():
    (net_a, plain), (net_b, decayed) = twins("plasticity.feedback_decay=0.05")
    x, t = presentation()
    rule_grads(net_a, plain, x, t), rule_grads(net_b, decayed, x, t)
    for name, theta in decayed.theta.items():
        torch.testing.assert_close(theta.grad, plain.theta[name].grad + 0.05 * theta.detach(), rtol=1e-12, atol=1e-15)


def test_theta_is_fixed_through_the_warm_up_epochs_then_learns():
    net, rule = build(rnn("dll", extra=["plasticity.fix_feedback_until=2"]), input_shape=(5,), output_size=3)
    x, t = presentation()
    for epoch, learns in ((1, False), (2, False), (3, True)):
        rule.start_epoch(epoch)
        for theta in rule.theta.values():
            theta.grad = None
        rule_grads(net, rule, x, t)
        assert all((theta.grad is not None) == learns for theta in rule.theta.values()), epoch
        assert any(p.grad.abs().max() > 0 for p in net.parameters())  # W learns throughout


def test_the_loop_keeps_theta_at_its_start_through_the_warm_up(text_file, tmp_path):  # noqa: F811
    path, _ = text_file
    base = rnn_model({"type": "charlm", "text": str(path), "sequence_length": 20, "batch_size": 16}, "softmax",
                     hidden=16, max_steps_per_epoch=3)
    def theta_after(epochs):
        exp = model([f"training.epochs={epochs}", "plasticity.fix_feedback_until=2"], base=base)
        tr = Trainer(exp, RunOptions(progress=False, log=lambda s: None))
        start = {k: v.detach().clone() for k, v in tr.rule.theta.items()}
        tr.run()
        return start, {k: v.detach().clone() for k, v in tr.rule.theta.items()}, tr
    start, after2, tr = theta_after(2)
    for name in start:
        torch.testing.assert_close(after2[name], start[name], rtol=0, atol=0)
    assert tr.network.projections["h->h"].weight.grad is not None
    start, after3, _ = theta_after(3)
    assert all((after3[name] - start[name]).abs().max() > 0 for name in start)


def test_the_recurrent_theta_stays_within_its_spectral_norm_bound():
    net, rule = build(rnn("dll", extra=["plasticity.recurrent_feedback_norm=0.5",
                                                    "plasticity.feedback_init.normal.std=0.5"]),
                      input_shape=(5,), output_size=3)
    assert rule.spectral_norms()["h1->h1"] > 1.0  # std 0.5 on 6 × 6: the start is outside the ball
    opt = torch.optim.SGD([p for g in [list(net.parameters()), list(rule.theta.values())] for p in g], lr=0.5)
    for step in range(40):
        x, t = presentation(step)
        rule_grads(net, rule, x, t)
        opt.step()
        rule.after_update(net)
        assert rule.spectral_norms()["h1->h1"] <= 0.5 * (1 + 1e-9), step
    assert rule.spectral_norms()["h1->h1"] == pytest.approx(0.5, rel=1e-3)  # on the sphere, not shrunk further
    before = rule.theta["h1->out"].detach().clone()
    rule.after_update(net)
    torch.testing.assert_close(rule.theta["h1->out"], before, rtol=0, atol=0)  # the readout's θ is not bounded


def test_a_bound_that_theta_is_within_changes_nothing():
    (net_a, plain), (net_b, bounded) = twins("plasticity.recurrent_feedback_norm=1000")
    x, t = presentation()
    for rule, net in ((plain, net_a), (bounded, net_b)):
        rule_grads(net, rule, x, t)
        rule.after_update(net)
    torch.testing.assert_close(bounded.theta["h1->h1"], plain.theta["h1->h1"], rtol=0, atol=0)


def test_bad_values_name_the_field():
    with pytest.raises(ConfigError, match=r"plasticity\.recurrent_feedback_sign: 'hebian' is not one of "
                                          r"hebbian, anti_hebbian"):
        rnn("dll", extra=["plasticity.recurrent_feedback_sign=hebian"])
    with pytest.raises(ConfigError, match=r"plasticity\.recurrent_feedback_norm"):
        rnn("dll", extra=["plasticity.recurrent_feedback_norm=-1"])


def test_the_rate_update_is_the_transposed_basal_update():
    """feedback_update: rate pairs the error from above with the source's rate: θ.grad is
    W.grad transposed, projection by projection (Kolen-Pollack's feedback update)."""
    _, (net, rule) = twins("plasticity.feedback_update=rate")
    x, t = presentation()
    grads = rule_grads(net, rule, x, t)
    for name, theta in rule.theta.items():
        torch.testing.assert_close(theta.grad, grads[f"projections.{name}.weight"].T, rtol=1e-12, atol=1e-15)
    (net_a, apical), _ = twins()
    rule_grads(net_a, apical, x, t)
    assert not torch.allclose(apical.theta["h1->h1"].grad, rule.theta["h1->h1"].grad)


def test_rate_updates_with_equal_decay_align_theta_with_the_forward_weights():
    """Kolen-Pollack's argument: W and θᵀ get the same update and the same decay, so under SGD
    their difference shrinks by (1 − ηλ) each step, whatever the errors."""
    net, rule = build(rnn("dll", extra=["plasticity.feedback_update=rate", "plasticity.feedback_lr_scale=1"]),
                      input_shape=(5,), output_size=3)
    params = [*net.parameters(), *rule.theta.values()]
    opt = torch.optim.SGD(params, lr=0.1, weight_decay=0.2)
    def gap_now():
        return float((rule.theta["h1->h1"] - net.projections["h1->h1"].weight.T).detach().norm())
    gap = [gap_now()]
    for step in range(30):
        x, t = presentation(step)
        rule_grads(net, rule, x, t)
        opt.step()
        gap.append(gap_now())
    assert gap[-1] == pytest.approx(gap[0] * (1 - 0.1 * 0.2) ** 30, rel=1e-9)
