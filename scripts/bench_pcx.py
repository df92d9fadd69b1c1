#!/usr/bin/env python3
"""dendrisim's ``pc`` rule against pcx (JAX predictive coding, compiled), side by side.

Both run exactly the same predictive coding on the Fashion-MNIST MLP
(models/dll_mlp_fmnist.yaml with plasticity.rule=pc and tolerance 0, so both do exactly T
inference steps): the same initial weights (dendrisim's, copied into pcx), the same batches,
T inference steps of the same size, then the same updates and Adam.

How the pcx model is made to match dendrisim's pc:

- a vode holds dendrisim's soma x (pre-activation): u_l = W_l f(h_{l-1}) + b_l, with f only
  on the hidden values (the input enters h1's prediction as it is, like dendrisim's input rate);
- hidden vodes have pcx's squared-error energy 1/2 |h - u|^2, so h - u is dendrisim's eps;
- the output vode has pcx's cross-entropy energy with h frozen to the one-hot target: its
  gradient at u is softmax(u) - t = -eps_out of dendrisim (error_scale 1);
- the energy is the batch mean (pcx's tutorials), so the gradient at a sample's h is 1/B of
  that sample's: pcx's inference SGD gets the step size eta * B, which makes it dendrisim's
  x <- x + eta (-eps + f'(x) . W^T eps_above); the weight gradient of the mean energy is
  -(1/B) eps^T f(x), exactly dendrisim's update.

The script first checks that one training batch gives the same updates in both (prints the
largest absolute difference of every weight and bias gradient), then times alternated chunks of
N training steps of each (dendrisim with torch threads = 1; XLA on CPU pinned to one thread),
and reports the median time per step of each, the ratio pcx/dendrisim of the medians, and the
ratio in the quietest chunk: the one least disturbed by other load, with the smallest sum of each
side's time over that side's median. Needs ``pip install pcx`` (it brings jax for CPU); jax and
pcx are imported only inside main().

    python scripts/bench_pcx.py                      # 7 chunks of 20 steps each, batch 128
    python scripts/bench_pcx.py --chunks 9 --steps 30
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Optional, Sequence

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a clone without installing


def _present(net, rule, target) -> None:
    """One presentation of the batch already in ``net`` (settle, updates into ``.grad``) under
    pc's settling scheme, the steady one that runs its relaxation: the only call here that runs one."""
    from dendrisim.config.schema import DynamicsConfig
    from dendrisim.settling import SteadyState

    SteadyState(DynamicsConfig()).present(net, rule, target)


def parser(prog: str = "bench_pcx.py") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="dll_mlp_fmnist",
                   help="model file or bundled model name, run with plasticity.rule=pc and tolerance 0 "
                        "(default: dll_mlp_fmnist)")
    p.add_argument("--inference-steps", type=int, default=20, metavar="T",
                   help="inference steps T of both (default: 20)")
    p.add_argument("--batch", type=int, default=128, help="batch size (default: 128)")
    p.add_argument("--steps", type=int, default=20, metavar="N", help="training steps per timed chunk (default: 20)")
    p.add_argument("--chunks", type=int, default=7,
                   help="timed chunks of each, alternated dendrisim, pcx, dendrisim, ... (default: 7)")
    p.add_argument("--warmup", type=int, default=5,
                   help="untimed training steps of each before the chunks (pcx compiles in the first) (default: 5)")
    p.add_argument("--tolerance", type=float, default=1e-4,
                   help="largest absolute difference of the updates accepted in the check (default: 1e-4)")
    p.add_argument("--data-root", help="folder with Fashion-MNIST (default: the model's, $DENDRISIM_DATA, ./data or "
                                       "the system's)")
    p.add_argument("--threads", type=int, default=1, metavar="N",
                   help="CPU threads of torch and of XLA (default: 1; XLA gets one intra-op thread "
                        "and no multi-threaded Eigen when 1)")
    return p


def dendrisim_pc(model: str, *, T: int, batch: int, data_root: Optional[str]):
    """dendrisim's pc network, rule and optimizer on ``model``, and the task's training split."""
    import torch

    from dendrisim.builder import build, load_experiment
    from dendrisim.bundled import resolve_model
    from dendrisim.optim import build_optimizer

    exp = load_experiment(resolve_model(model), ["plasticity.rule=pc", "plasticity.tolerance=0.0",
                                                 f"plasticity.inference_steps={T}", f"task.batch_size={batch}",
                                                 "recording.enabled=false"])
    torch.manual_seed(exp.config.training.seed)
    task, net, rule = build(exp, device=torch.device("cpu"), data_root=data_root)
    opt = build_optimizer(net, rule, exp.config.optimizer)
    return exp, task, net, rule, opt


def make_pcx_model(sizes: list[int], activation: str):
    """A pcx MLP whose vodes hold dendrisim's somata (see the module's docstring)."""
    import jax
    import pcx as px
    import pcx.nn as pxnn
    import pcx.predictive_coding as pxc

    f = {"tanh": jax.numpy.tanh, "relu": jax.nn.relu, "sigmoid": jax.nn.sigmoid, "linear": lambda v: v}[activation]

    class PCMLP(pxc.EnergyModule):
        def __init__(self):
            super().__init__()
            self.act_fn = px.static(f)
            self.layers = [pxnn.Linear(a, b) for a, b in zip(sizes, sizes[1:])]
            self.vodes = [pxc.Vode() for _ in sizes[1:-1]] + [pxc.Vode(pxc.ce_energy)]
            self.vodes[-1].h.frozen = True

        def __call__(self, x, y):
            h = self.vodes[0](self.layers[0](x))
            for v, layer in zip(self.vodes[1:], self.layers[1:]):
                h = v(layer(self.act_fn(h)))
            if y is not None:
                self.vodes[-1].set("h", y)
            return self.vodes[-1].get("u")

    return PCMLP()


def pcx_functions():
    """pcx's jitted training step and update (gradients only), as in pcx's tutorials."""
    import jax
    import pcx.functional as pxf
    import pcx.nn as pxnn
    import pcx.predictive_coding as pxc
    import pcx.utils as pxu

    @pxf.vmap(pxu.M(pxc.VodeParam | pxc.VodeParam.Cache).to((None, 0)), in_axes=(0, 0), out_axes=0)
    def forward(x, y, *, model):
        return model(x, y)

    @pxf.vmap(pxu.M(pxc.VodeParam | pxc.VodeParam.Cache).to((None, 0)), in_axes=(0,), out_axes=(None, 0),
              axis_name="batch")
    def energy(x, *, model):
        y_ = model(x, None)
        return jax.lax.pmean(model.energy().sum(), "batch"), y_

    free = pxu.M_hasnot(pxc.VodeParam, frozen=True)  # the hidden values (the output's is the target)

    def relax(T, x, y, *, model, optim_h):
        with pxu.step(model, pxc.STATUS.INIT, clear_params=pxc.VodeParam.Cache):
            forward(x, y, model=model)
        optim_h.init(pxu.M(free)(model))
        for _ in range(T):
            with pxu.step(model, clear_params=pxc.VodeParam.Cache):
                _, g = pxf.value_and_grad(pxu.M(free).to([False, True]),
                                          has_aux=True)(energy)(x, model=model)
            optim_h.step(model, g["model"])
        optim_h.clear()
        with pxu.step(model, clear_params=pxc.VodeParam.Cache):
            _, g = pxf.value_and_grad(pxu.M(pxnn.LayerParam).to([False, True]), has_aux=True)(energy)(x, model=model)
        return g["model"]

    @pxf.jit(static_argnums=0)
    def train_on_batch(T, x, y, *, model, optim_w, optim_h):
        model.train()
        optim_w.step(model, relax(T, x, y, model=model, optim_h=optim_h))

    @pxf.jit(static_argnums=0)
    def updates(T, x, y, *, model, optim_h):
        model.train()
        g = relax(T, x, y, model=model, optim_h=optim_h)
        return [(layer.nn.weight.get(), layer.nn.bias.get()) for layer in g.layers]

    return forward, train_on_batch, updates


def main(argv: Optional[Sequence[str]] = None, *, prog: str = "bench_pcx.py") -> int:
    args = parser(prog).parse_args(argv)
    if args.threads == 1:  # before jax is imported
        os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_cpu_multi_thread_eigen=false "
                                   "intra_op_parallelism_threads=1").strip()
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))  # before torch is imported
    import torch

    from dendrisim.host import cpu_name, set_threads

    set_threads(args.threads)
    try:
        import jax
        import jax.numpy as jnp
        import optax
        import pcx
        import pcx.nn as pxnn
        import pcx.predictive_coding as pxc
        import pcx.utils as pxu
    except ImportError as e:
        print(f"bench_pcx.py needs pcx and jax for CPU ({e}): pip install pcx", file=sys.stderr)
        return 2
    from importlib.metadata import version

    T, B = args.inference_steps, args.batch
    exp, task, net, rule, opt = dendrisim_pc(args.model, T=T, batch=B, data_root=args.data_root)
    chain = [net.input_name, *net.order]
    projs = [net.incoming[n][0] for n in net.order]
    if any(len(net.incoming[n]) != 1 or p.connectivity != "dense" for n, p in zip(net.order, projs)):
        raise SystemExit("bench_pcx.py compares dense chains (one dense projection into each population)")
    hidden_acts = {net.populations[n].activation.name for n in net.order[:-1]}
    if len(hidden_acts) != 1 or net.output.activation.name != "softmax" or exp.rule.error_scale != 1.0:
        raise SystemExit("bench_pcx.py compares one hidden activation, a softmax output and error_scale 1")
    sizes = [net.populations[n].size for n in chain]
    (activation,) = hidden_acts
    n_batches = min(args.warmup + args.steps * args.chunks, len(task.train) // B)  # both sides see this sequence
    xs = [task.train.x[i * B:(i + 1) * B] for i in range(n_batches)]
    ts = [torch.eye(sizes[-1])[task.train.y[i * B:(i + 1) * B]] for i in range(n_batches)]
    jxs = [jnp.asarray(x.reshape(B, -1).numpy()) for x in xs]
    jts = [jnp.asarray(t.numpy()) for t in ts]
    lr_x, lr_w = exp.rule.inference_lr, exp.config.optimizer.lr

    model = make_pcx_model(sizes, activation)
    forward, train_on_batch, updates = pcx_functions()
    with pxu.step(model, pxc.STATUS.INIT, clear_params=pxc.VodeParam.Cache):
        forward(jnp.zeros((B, sizes[0])), None, model=model)
    for layer, proj in zip(model.layers, projs):  # dendrisim's initial weights
        layer.nn.weight.set(jnp.asarray(proj.weight.detach().numpy()))
        layer.nn.bias.set(jnp.asarray(proj.bias.detach().numpy()))
    # the batch-mean energy scales a sample's h gradient by 1/B: step size eta * B is dendrisim's eta
    optim_h = pxu.Optim(lambda: optax.sgd(lr_x * B))
    optim_w = pxu.Optim(lambda: optax.adam(lr_w), pxu.M(pxnn.LayerParam)(model))

    # ---- the check: one batch, the same updates
    with torch.no_grad():
        net(xs[0])
        _present(net, rule, ts[0])
    ours = [(p.weight.grad.numpy(), p.bias.grad.numpy()) for p in projs]
    theirs = updates(T, jxs[0], jts[0], model=model, optim_h=optim_h)
    print(f"pcx {version('pcx')}, jax {jax.__version__} on {jax.devices()[0].platform}; torch {torch.__version__}, "
          f"{torch.get_num_threads()} thread(s); {cpu_name()}")
    print(f"model {exp.config.name} {'-'.join(map(str, sizes))} ({activation}, softmax), rule pc, T {T}, "
          f"inference lr {lr_x}, tolerance 0, Adam lr {lr_w}, batch {B}")
    worst = 0.0
    for name, (w, b), (jw, jb) in zip([p.name for p in projs], ours, theirs):
        dw, db = float(abs(w - jw).max()), float(abs(b - jb).max())
        scale = float(abs(w).max())
        print(f"  update {name:<10} max |dendrisim - pcx|: weight {dw:.2e}, bias {db:.2e} "
              f"(largest |update| {scale:.2e})")
        worst = max(worst, dw, db)
    print(f"updates agree to {worst:.2e}" + ("" if worst <= args.tolerance else f": MORE than {args.tolerance:g}"))
    if worst > args.tolerance:
        return 1

    # ---- timing: alternated chunks of N training steps of each, on the same sequence of batches
    def ours_step(i):
        with torch.no_grad():
            net(xs[i])
            _present(net, rule, ts[i])
            opt.step()

    def pcx_step(i):
        train_on_batch(T, jxs[i], jts[i], model=model, optim_w=optim_w, optim_h=optim_h)

    def pcx_sync():
        jax.block_until_ready(model.layers[-1].nn.weight.get())

    def chunk(step, start, sync=lambda: None):
        t0 = time.perf_counter()
        for i in range(start, start + args.steps):
            step(i % n_batches)
        sync()
        return (time.perf_counter() - t0) / args.steps

    for i in range(args.warmup):
        ours_step(i % n_batches)
        pcx_step(i % n_batches)
    pcx_sync()
    times = []
    for c in range(args.chunks):
        start = args.warmup + c * args.steps
        times.append((chunk(ours_step, start), chunk(pcx_step, start, pcx_sync)))
    med_d = statistics.median(d for d, _ in times)
    med_p = statistics.median(p for _, p in times)
    quiet = min(times, key=lambda dp: dp[0] / med_d + dp[1] / med_p)
    print(f"{args.chunks} alternated chunks of {args.steps} training steps each (ms per step):")
    print(f"  {'chunk':<7}{'dendrisim':>11}{'pcx':>9}{'pcx/dendrisim':>15}")
    for c, (d, p) in enumerate(times, 1):
        print(f"  {c:<7}{1e3 * d:>11.2f}{1e3 * p:>9.2f}{p / d:>15.3f}" + ("   (quietest)" if (d, p) == quiet else ""))
    print(f"median per step: dendrisim {1e3 * med_d:.2f} ms, pcx {1e3 * med_p:.2f} ms; pcx/dendrisim "
          f"{med_p / med_d:.3f} (medians), {statistics.median(p / d for d, p in times):.3f} (median of the chunks' "
          f"ratios), {quiet[1] / quiet[0]:.3f} (quietest chunk)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
