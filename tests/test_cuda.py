"""The same engine on a CUDA device (skipped where there is none)."""
import pytest
import torch

from conftest import build, model, present
from dendrisim.training import RunOptions, Trainer

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")


@cuda
@pytest.mark.parametrize("rule", ["dll", "bp", "fa", "dfa"])
def test_step_matches_cpu_and_never_syncs_with_the_host(rule):
    exp = model([f"plasticity.rule={rule}"])
    net, r = build(exp, input_shape=(64,), output_size=10, dtype=torch.float32)
    gnet, gr = build(exp, input_shape=(64,), output_size=10, dtype=torch.float32)
    gnet.load_state_dict(net.state_dict())
    gr.load_state_dict(r.state_dict())
    gnet.cuda()
    gr.cuda()
    from dendrisim.optim import build_optimizer

    opt = build_optimizer(gnet, gr, exp.config.optimizer)
    x = torch.randn(32, 64)
    t = torch.eye(10)[torch.randint(0, 10, (32,))]
    xg, tg = x.cuda(), t.cuda()
    torch.backends.cuda.matmul.allow_tf32 = False
    with torch.no_grad():
        net(x)
        present(net, r, t, exp)
        torch.cuda.set_sync_debug_mode("error")  # any hidden device->host sync raises
        try:
            gnet(xg)
            present(gnet, gr, tg, exp)
            grads = [p.grad.clone() for p in gnet.parameters()]
            opt.step()
        finally:
            torch.cuda.set_sync_debug_mode("default")
    for (name, p), g in zip(net.named_parameters(), grads):
        torch.testing.assert_close(g.cpu(), p.grad, rtol=1e-4, atol=1e-6, msg=name)


@cuda
def test_training_and_recording_on_cuda(tmp_path):
    exp = model(["training.max_steps_per_epoch=10", "recording={every: 2, projections: {h2->out: [weight, feedback]}}"])
    tr = Trainer(exp, RunOptions(device="cuda", out_dir=tmp_path, progress=False, log=lambda s: None))
    assert tr.task.train.x.is_cuda and next(tr.network.parameters()).is_cuda
    summary = tr.run()
    assert summary["device"].startswith("cuda") and summary["steps"] == 10
    from dendrisim.recording import open_recording

    with open_recording(tmp_path / "recording.h5") as rec:
        assert rec.complete and rec.activity("h1", "soma").shape[0] == 5  # steps 2, 4, 6, 8, 10
        soma = rec.activity("h1", "soma")
        assert torch.isfinite(torch.from_numpy(soma)).all()


def _cpu_and_cuda_grads(exp, x, t, input_shape, output_size, readout=None):
    """(name, CPU grad, CUDA grad) of one step from the same weights; the CUDA step must not sync."""
    net, r = build(exp, input_shape=input_shape, output_size=output_size, dtype=torch.float32)
    gnet, gr = build(exp, input_shape=input_shape, output_size=output_size, dtype=torch.float32)
    gnet.load_state_dict(net.state_dict())
    gr.load_state_dict(r.state_dict())
    gnet.cuda()
    gr.cuda()
    if readout is not None:
        net.readout = gnet.readout = readout
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    xg, tg = x.cuda(), t.cuda()  # the copies from pageable host memory synchronise; the step must not
    with torch.no_grad():
        net(x)
        present(net, r, t, exp)
        torch.cuda.set_sync_debug_mode("error")
        try:
            gnet(xg)
            present(gnet, gr, tg, exp)
        finally:
            torch.cuda.set_sync_debug_mode("default")
    return [(name, p.grad, q.grad.cpu()) for (name, p), q in zip(net.named_parameters(), gnet.parameters())]


@cuda
@pytest.mark.parametrize("rule", ["dll", "bp", "fa", "dfa"])
def test_cnn_step_matches_cpu_on_cuda(rule):
    from test_conv import cnn

    x = torch.randn(8, 1, 8, 8)
    t = torch.eye(10)[torch.randint(0, 10, (8,))]
    for name, cpu, gpu in _cpu_and_cuda_grads(cnn(rule), x, t, (1, 8, 8), 10):
        torch.testing.assert_close(gpu, cpu, rtol=1e-3, atol=1e-5, msg=name)


@cuda
@pytest.mark.parametrize("rule", ["dll", "bp", "fa", "dfa"])
def test_rnn_step_matches_cpu_on_cuda(rule):
    from test_recurrent import rnn

    x = torch.randn(4, 6, 5)
    t = torch.eye(3)[torch.randint(0, 3, (6, 4))]
    for name, cpu, gpu in _cpu_and_cuda_grads(rnn(rule, loop=True), x, t, (5,), 3):
        torch.testing.assert_close(gpu, cpu, rtol=1e-3, atol=1e-5, msg=name)
