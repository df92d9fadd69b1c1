"""Convolutional networks: conv2d and pooling projections, branches, shape inference.

Oracles: torch.autograd for bp, brute-force loops for the conv correlations, and the
bp twin for fa and dll with feedback kernels equal to the forward kernels."""
import copy

import numpy as np
import pytest
import torch

from conftest import CNN, build, model
from dendrisim.errors import ConfigError
from dendrisim.plasticity import RULES
from dendrisim import functional as Fn
from test_equivalence import autograd_grads, rule_grads, target_for, transposed_twin


SHAPES = {"input_shape": (1, 8, 8), "output_size": 10}


def cnn(rule="bp", *overrides, pool="maxpool"):
    base = copy.deepcopy(CNN)
    for proj in base["projections"]:
        if proj.get("connectivity") == "maxpool":
            proj["connectivity"] = pool
        if proj.get("connectivity") != pool:
            proj["init"] = {"normal": {"std": 0.4}}
    return model([f"plasticity.rule={rule}", *overrides], base=base)


def data(batch, seed=0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, 1, 8, 8, generator=gen, dtype=torch.float64)
    return x, target_for("softmax", batch, 10, gen)


def test_shapes_follow_from_the_projections():
    net, _ = build(cnn(), input_shape=(1, 8, 8), output_size=10)
    shapes = {n: p.shape for n, p in net.populations.items()}
    assert shapes == {"input": (1, 8, 8), "c1": (3, 8, 8), "b1": (3, 8, 8), "p1": (3, 4, 4), "c2": (4, 2, 2),
                      "out": (10,)}
    assert net.projections["p1->c2"].weight.shape == (4, 3, 3, 3)
    assert net.projections["input->b1"].weight.shape == (3, 1, 5, 3)
    x, _ = data(5)
    with torch.no_grad():
        net(x)
    assert net.last_state["c2"].rate.shape == (5, 4, 2, 2)


@pytest.mark.parametrize("pool", ["maxpool", "avgpool"])
@pytest.mark.parametrize("batch", [1, 6])
def test_bp_equals_autograd_on_a_cnn_with_branches(pool, batch):
    net, rule = build(cnn("bp", pool=pool), input_shape=(1, 8, 8), output_size=10)
    x, t = data(batch, seed=batch)
    expected = autograd_grads(net, x, t)
    got = rule_grads(net, rule, x, t)
    assert expected.keys() == got.keys() and len(got) == 10
    for name in expected:
        torch.testing.assert_close(got[name], expected[name], rtol=1e-10, atol=1e-12, msg=name)


@pytest.mark.parametrize("pool", ["maxpool", "avgpool"])
def test_fa_with_feedback_kernels_equal_to_the_forward_kernels_equals_bp(pool):
    fa_net, fa, bp_net, bp = transposed_twin(cnn("fa", pool=pool), cnn("bp", pool=pool), lambda r: r.feedback, **SHAPES)
    assert fa.feedback["p1->c2"].shape == fa_net.projections["p1->c2"].weight.shape  # θ has the kernel's shape
    x, t = data(4, seed=1)
    f, b = rule_grads(fa_net, fa, x, t), rule_grads(bp_net, bp, x, t)
    for name in b:
        torch.testing.assert_close(f[name], b[name], rtol=1e-12, atol=1e-14, msg=name)


def test_dll_with_theta_equal_to_the_forward_kernels_is_twice_bp():
    dll_net, dll, bp_net, bp = transposed_twin(cnn("dll"), cnn("bp"), lambda r: r.theta, **SHAPES)
    x, t = data(5, seed=2)
    d, b = rule_grads(dll_net, dll, x, t), rule_grads(bp_net, bp, x, t)
    for name in b:
        torch.testing.assert_close(d[name], 2 * b[name], rtol=1e-10, atol=1e-13, msg=name)


def _brute_correlation(delta, r, kernel, stride, padding):
    """Σ_b,y',x' δ[b,o,y',x'] r[b,i,s·y'−p+u, s·x'−p+v], one kernel entry at a time."""
    B, O, Ho, Wo = delta.shape
    _, I, H, W = r.shape
    kh, kw = kernel
    out = np.zeros((O, I, kh, kw))
    for o in range(O):
        for i in range(I):
            for u in range(kh):
                for v in range(kw):
                    total = 0.0
                    for b in range(B):
                        for y in range(Ho):
                            for x in range(Wo):
                                yy, xx = stride[0] * y - padding[0] + u, stride[1] * x - padding[1] + v
                                if 0 <= yy < H and 0 <= xx < W:
                                    total += delta[b, o, y, x] * r[b, i, yy, xx]
                    out[o, i, u, v] = total
    return out


def _brute_transpose(delta, kernel_w, in_shape, stride, padding):
    """a[b,i,y,x] = Σ δ[b,o,y',x'] B[o,i,u,v] over every (y',x',u,v) that lands on (y,x)."""
    B, O, Ho, Wo = delta.shape
    _, I, kh, kw = kernel_w.shape
    a = np.zeros((B, I, *in_shape))
    for b in range(B):
        for o in range(O):
            for y in range(Ho):
                for x in range(Wo):
                    for u in range(kh):
                        for v in range(kw):
                            yy, xx = stride[0] * y - padding[0] + u, stride[1] * x - padding[1] + v
                            if 0 <= yy < in_shape[0] and 0 <= xx < in_shape[1]:
                                a[b, :, yy, xx] += delta[b, o, y, x] * kernel_w[o, :, u, v]
    return a


@pytest.mark.parametrize("stride,padding,kernel", [((1, 1), (0, 0), (3, 3)), ((2, 1), (1, 2), (2, 3))])
def test_conv_correlations_match_brute_force_loops(stride, padding, kernel):
    gen = torch.Generator().manual_seed(4)
    r = torch.randn(2, 2, 5, 6, generator=gen, dtype=torch.float64)
    w = torch.randn(3, 2, *kernel, generator=gen, dtype=torch.float64)
    out = torch.nn.functional.conv2d(r, w, stride=stride, padding=padding)
    delta = torch.randn(out.shape, generator=gen, dtype=torch.float64)
    grad = Fn.conv_weight_gradient(delta, r, w.shape, stride=stride, padding=padding, gain=2.0)
    np.testing.assert_allclose(grad.numpy(), -2.0 / 2 * _brute_correlation(delta.numpy(), r.numpy(), kernel, stride,
                                                                            padding), rtol=1e-12, atol=1e-12)
    op = tuple(r.shape[2 + i] + 2 * padding[i] - ((out.shape[2 + i] - 1) * stride[i] + kernel[i]) for i in range(2))
    a = Fn.conv_apical_from_feedback(delta, w, stride=stride, padding=padding, output_padding=op)
    np.testing.assert_allclose(a.numpy(), _brute_transpose(delta.numpy(), w.numpy(), r.shape[2:], stride, padding),
                               rtol=1e-12, atol=1e-12)


def test_dll_conv_theta_update_is_the_apical_error_correlation():
    """Δθ for p1->c2 = (2/σ²)/B · Σ δ_c2 ⊗ a_p1 over batch and kernel positions, by the loop."""
    net, rule = build(cnn("dll", "plasticity.sigma=0.8"), input_shape=(1, 8, 8), output_size=10)
    x, t = data(3, seed=5)
    rule_grads(net, rule, x, t)
    apical = net.last_state["p1"].apical.numpy()
    delta = net.last_state["c2"].error.numpy()
    expected = -(2 / 0.64) / 3 * _brute_correlation(delta, apical, (3, 3), (2, 2), (1, 1))
    np.testing.assert_allclose(rule.theta["p1->c2"].grad.numpy(), expected, rtol=1e-10, atol=1e-13)
    # and the apical input of p1 goes through θ (not W), scaled by 1/σ²
    d_out = net.last_state["out"].error
    top = (d_out @ rule.theta["c2->out"].T / 0.64).view(3, 4, 2, 2)
    torch.testing.assert_close(net.last_state["c2"].apical, top)


@pytest.mark.parametrize("pool", ["maxpool", "avgpool"])
def test_unpooling_is_the_adjoint_of_pooling(pool):
    """<pool(r), δ> = <r, unpool(δ)> for a fixed pooling pattern: the error goes where the input came from."""
    net, rule = build(cnn("bp", pool=pool), input_shape=(1, 8, 8), output_size=10)
    x, _ = data(2, seed=6)
    with torch.no_grad():
        net(x)
    proj = net.projections["c1->p1"]
    r = net.last_state["c1"].rate
    delta = torch.randn(2, *proj.post_shape, dtype=torch.float64)
    back = proj.carry_back(delta, None)
    assert back.shape == r.shape
    torch.testing.assert_close((proj.drive(r) * delta).sum(), (r * back).sum())
    if pool == "maxpool":  # each window sends its error to one position only
        assert int((back != 0).sum()) == delta.numel()


@pytest.mark.parametrize("rule", [r for r in RULES.names() if RULES.get(r).family not in ("microcircuit", "burst")])
def test_every_rule_trains_a_cnn(rule):
    """Every rule that trains a network of pyramidal populations (the microcircuit's synapse
    models train circuits: tests/test_microcircuit.py; the burst rules dense networks of burst
    neurons, which are not spatial: tests/test_burst.py)."""
    from dendrisim.training import RunOptions, Trainer

    exp = cnn(rule, "training.max_steps_per_epoch=30", "task.validation_fraction=0", "optimizer.lr=0.01",
              "recording.enabled=false")
    tr = Trainer(exp, RunOptions(progress=False, log=lambda s: None))
    before = tr.evaluate(tr.task.train)["loss"]
    for epoch in range(1, 4):
        tr.train_epoch(epoch)
    after = tr.evaluate(tr.task.train)["loss"]
    assert after < 0.8 * before, f"{rule}: loss {before:.3f} -> {after:.3f}"
    for group in tr.optimizer.param_groups:  # fused optimizers need each .grad laid out like its parameter
        for p in group["params"]:
            assert p.grad is not None and p.grad.stride() == p.stride(), (rule, p.shape)


def test_spatial_populations_and_kernels_are_recorded_with_their_shapes(tmp_path):
    from dendrisim.recording import open_recording
    from dendrisim.training import RunOptions, Trainer

    exp = cnn("dll", "training.max_steps_per_epoch=5", "recording={every: 2, samples: 3, "
              "populations: {c2: [rate, apical], p1: [error]}, projections: {p1->c2: [weight, feedback]}}")
    tr = Trainer(exp, RunOptions(progress=False, log=lambda s: None, out_dir=tmp_path / "run"))
    tr.run()
    with open_recording(tmp_path / "run" / "recording.h5") as rec:
        rate = rec.activity("c2", "rate")
        assert rate.shape == (3, 3, 4, 2, 2) and np.isfinite(rate).all()
        assert rec.activity("p1", "error").shape == (3, 3, 3, 4, 4)
        w = rec.projection("p1->c2", "weight")
        assert w.shape[1:] == (4, 3, 3, 3)
        np.testing.assert_array_equal(w[-1], tr.network.projections["p1->c2"].weight.detach().numpy())
        np.testing.assert_array_equal(rec.projection("p1->c2", "feedback")[-1],
                                      tr.rule.theta["p1->c2"].detach().numpy())


@pytest.mark.parametrize("change,match", [
    (lambda m: m["populations"]["c1"].pop("channels"), r"populations.c1: a pyramidal population needs a size "
                                                      r".*or channels when conv2d projections feed it"),
    (lambda m: m["populations"]["c1"].update(channels=None, size=192), r"populations.c1: 'c1' is fed by the conv2d "
                                                      r"projection input->c1: give its number of feature maps as channels: N"),
    (lambda m: m["projections"][1].update(padding=[0, 0]), r"populations.p1: its inputs disagree: c1->p1 gives "
                                                           r"\[3, 4, 4\], b1->p1 gives \[3, 2, 3\]"),
    (lambda m: m["projections"][0].update(kernel=11), r"projections\[0\].kernel: the conv2d kernel \[11, 11\] is "
                                                      r"larger than the \[1, 8, 8\] map of 'input' \(height 8 \+ 2 x "
                                                      r"padding 1, .*write kernel: \[full, full\]"),
    (lambda m: m["projections"][5].update(connectivity="conv2d", kernel=1),
     r"projections\[5\]|populations.out"),
    (lambda m: m["projections"][2].update(bias=True), r"projections\[2\]: a maxpool projection has no bias"),
    (lambda m: m["projections"][5].update(kernel=3), r"projections\[5\]: kernel applies to conv2d and pooling "
                                                     r"projections, not dense"),
    (lambda m: m["projections"][0].update(kernel="global"), r"projections\[0\]: kernel: global pools over the whole map"),
    (lambda m: m["projections"][0].update(stride=[1, 0]), r"projections\[0\]: stride \[1, 0\] must be an integer >= 1"),
    (lambda m: m["populations"]["c2"].update(size=16), r"populations.c2.channels: channels is for (burst or )?"
                                                       r"pyramidal populations fed by conv2d projections, without size"),
])
def test_bad_cnn_files_name_the_field(change, match):
    base = copy.deepcopy(CNN)
    change(base)
    with pytest.raises(ConfigError, match=match):
        build(model(base=base), input_shape=(1, 8, 8), output_size=10)


def test_a_conv_on_a_flat_population_is_refused():
    base = copy.deepcopy(CNN)
    base["populations"]["h"] = {"size": 12}
    base["projections"][0] = {"from": "input", "to": "h"}
    base["projections"].insert(1, {"from": "h", "to": "c1", "connectivity": "conv2d", "kernel": 3})
    with pytest.raises(ConfigError, match=r"projections\[1\]: conv2d needs a source of shape \[channels, height, "
                                          r"width\]; 'h' has shape \[12\]"):
        build(model(base=base), input_shape=(1, 8, 8), output_size=10)


def test_global_pooling_covers_the_whole_map():
    base = copy.deepcopy(CNN)
    base["projections"][2].update(kernel="global")
    base["projections"][3].update(kernel="global")
    base["projections"][4].update(kernel=1, stride=1, padding=0)
    net, _ = build(model(base=base), input_shape=(1, 8, 8), output_size=10)
    assert net.populations["p1"].shape == (3, 1, 1) and net.populations["c2"].shape == (4, 1, 1)
    x, _ = data(2)
    with torch.no_grad():
        net(x)
    c1, b1 = net.last_state["c1"].rate, net.last_state["b1"].rate
    torch.testing.assert_close(net.last_state["p1"].rate, c1.amax((2, 3), keepdim=True) + b1.amax((2, 3), keepdim=True))
