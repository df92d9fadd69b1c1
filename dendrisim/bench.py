#!/usr/bin/env python3
"""Speed of dendrisim's rules against a plain torch autograd step, and against the
arithmetic floor of the machine, all measured in one process on the same shapes.

    dendrisim bench                      # CPU, the Fashion-MNIST MLP at batch 128
    dendrisim bench --device cuda --json
    dendrisim bench --no-epoch           # skip the one-epoch throughput (needs Fashion-MNIST)
    dendrisim bench --dynamics           # the euler-mode step against steps x (forward + feedback)
    dendrisim bench --pc --threads 1     # pc's training step against its own matmul floor
    dendrisim bench --burst --threads 1  # burstccn's and burstprop's steps against their matmul floor

(``python scripts/bench.py`` in a checkout is the same.) Models are bundled model names or
paths; the step timings need no data, the one-epoch throughput needs Fashion-MNIST.

Rows: each registered rule's training step (forward, settle, updates, optimizer) and the
`nn.Sequential` + autograd + `torch.optim.Adam` step it must beat; the floor is the
step's matmul FLOPs divided by the matmul rate measured here on the same GEMM shapes.

--pc: pc's training step (feedforward pass, relaxation of T = inference_steps, updates,
optimizer) against pc's own matmul floor, the dense products any implementation of the
relaxation must do, timed as plain torch matmuls of the same shapes in the same run:

    floor(T) = input->h1 prediction, once (the input never changes during a presentation)
             + T x (every prediction above h1 from the current somata
                    + every hidden population's top-down input W^T eps)
             + the predictions above h1 at the relaxed state (its errors drive the updates)
             + every projection's update eps^T r, once

Biases, activations, error differences and the optimizer are element-wise and left out.
Rows: tolerance 0 (exactly T steps) and the file's tolerance (the floor then counts the
iterations actually run); the ratio step/floor is the median of rounds that alternate a
block of training steps with a block of floors.

--burst: the burstccn and burstprop training steps (forward pass, the steady scheme's top-down
sweep, updates, optimizer) on the MLP made of burst neurons (sigmoid; into every hidden
population a fixed Y from the population above and, under burstccn, a learnable Q), against

    floor = the forward pass's matmuls + the Y and Q passes (one matmul each per hidden
            population; burstprop settles twice, so two Y passes) + the W and Q updates

timed as bare torch.mm on the network's own weights and settled tensors, in alternated rounds
as for --pc.
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
from typing import Optional, Sequence

import torch
from torch import nn

from .builder import DataSpec, assemble, load_experiment
from .config.graph import model_of
from .bundled import resolve_model
from .host import cpu_name
from .network import Network
from .paths import path_arg
from .plasticity import RULES
from .settling import SteadyState


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, device, *, steps: int, repeats: int, warmup: int) -> float:
    """Median seconds per call over ``repeats`` blocks of ``steps`` calls, after warm-up."""
    for _ in range(warmup):
        fn()
    sync(device)
    blocks = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(steps):
            fn()
        sync(device)
        blocks.append((time.perf_counter() - t0) / steps)
    return statistics.median(blocks)


def machine(device: torch.device) -> dict:
    info = {"cpu": cpu_name(), "threads": torch.get_num_threads(), "torch": str(torch.__version__), "device": str(device)}
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def gemm_shapes(net: Network, rule: str, batch: int) -> list[tuple[int, int, int]]:
    """(m, k, n) of every matmul one step of ``rule`` does (biases and element-wise work excluded)."""
    shapes = []
    hidden = {p.name for p in net.hidden()}
    for proj in net.projections.values():
        n_post, n_pre = proj.weight.shape
        shapes.append((batch, n_pre, n_post))  # forward drive
        if proj.learnable:
            shapes.append((n_post, batch, n_pre))  # weight update δᵀ r
        if proj.source in hidden and rule in ("dll", "bp", "fa", "autograd"):
            shapes.append((batch, n_post, n_pre))  # feedback to the source's apical dendrite
            if rule == "dll":
                shapes.append((n_pre, batch, n_post))  # θ update aᵀ δ
    if rule == "dfa":
        n_out = net.output.size
        shapes += [(batch, n_out, p.size) for p in net.hidden()]
    return shapes


def gemm_floor(shapes, device, dtype, *, repeats: int) -> tuple[float, float]:
    """Seconds for the matmuls alone, each run in isolation, and their FLOPs."""
    total, flops = 0.0, 0
    for m, k, n in shapes:
        a = torch.randn(m, k, device=device, dtype=dtype)
        b = torch.randn(k, n, device=device, dtype=dtype)
        out = torch.empty(m, n, device=device, dtype=dtype)
        total += timed(lambda: torch.mm(a, b, out=out), device, steps=10, repeats=repeats, warmup=3)
        flops += 2 * m * k * n
    return total, flops


def autograd_step(net: Network, x, y, lr: float, device, *, fused: bool = False):
    layers = []
    for name in net.order:
        (proj,) = net.incoming[name]
        lin = nn.Linear(*reversed(proj.weight.shape)).to(device)
        layers += [lin, nn.Tanh() if name != net.output_name else nn.Identity()]
    model = nn.Sequential(nn.Flatten(), *layers)
    opt = torch.optim.Adam(model.parameters(), lr=lr, **({"fused": True} if fused else {}))
    loss_fn = nn.CrossEntropyLoss()

    def step():
        opt.zero_grad(set_to_none=True)
        loss_fn(model(x), y).backward()
        opt.step()

    return step


def rule_step(exp, rule: str, x, y, device, *, outputs: int = 10):
    exp = load_experiment(exp.to_dict(), [f"plasticity.rule={rule}"], file=exp.file)
    model = assemble(exp, DataSpec(tuple(x.shape[1:]), outputs), device=device)
    net, r, opt, scheme = model.network, model.rule, model.optimizer, model.scheme
    t = torch.eye(outputs, device=device)[y]

    def step():
        with torch.no_grad():
            scheme.present(net, r, t, state=net.free_state(x))
            opt.step()

    step.rule, step.scheme = r, scheme
    return step, net


def torch_twin(net: Network) -> nn.Module:
    """The same chain of layers as plain torch modules (conv, pool, linear, activations)."""
    acts = {"tanh": nn.Tanh, "relu": nn.ReLU, "sigmoid": nn.Sigmoid, "linear": nn.Identity, "softmax": nn.Identity}
    layers: list[nn.Module] = []
    for name in net.order:
        incoming = net.incoming[name]
        if len(incoming) != 1:
            raise SystemExit(f"the torch twin needs a chain; {name} has {len(incoming)} inputs")
        proj = incoming[0]
        if proj.connectivity == "conv2d":
            c_out, c_in, kh, kw = proj.weight.shape
            layers.append(nn.Conv2d(c_in, c_out, (kh, kw), proj.stride, proj.padding))
        elif proj.connectivity == "maxpool":
            layers.append(nn.MaxPool2d(proj.kernel, proj.stride, proj.padding))
        elif proj.connectivity == "avgpool":
            layers.append(nn.AvgPool2d(proj.kernel, proj.stride, proj.padding))
        else:
            layers += [nn.Flatten(), nn.Linear(*reversed(proj.weight.shape))]
        layers.append(acts[net.populations[name].activation.name]())
    return nn.Sequential(*layers)


def op_floor(net: Network, rule: str, x: torch.Tensor, device, *, repeats: int) -> float:
    """Seconds of the native kernels one step of ``rule`` needs, each timed in isolation:
    every projection's drive, its weight update, the error carried back to a hidden source
    and (dll) the feedback update; element-wise work and the optimizer are left out."""
    with torch.no_grad():
        state = net.free_state(x)
    hidden = {p.name for p in net.hidden()}
    total = 0.0
    for proj in net.projections.values():
        r = state[proj.source].rate
        post = state[proj.target].rate
        delta = torch.randn_like(post)
        fb = proj.transported()
        ops = [lambda: proj.drive(r)]
        if proj.learnable:
            ops.append(lambda: proj.weight_gradient(delta, r, gain=1.0))
        if proj.source in hidden:
            ops.append(lambda: proj.carry_back(delta, fb))
            if rule == "dll" and proj.has_weight:
                ops.append(lambda: proj.feedback_gradient(r, delta, gain=1.0))
        with torch.no_grad():
            for op in ops:
                total += timed(op, device, steps=5, repeats=repeats, warmup=2)
    return total


def steady_rules(exp) -> list[str]:
    """The registered rules that run under the model's settling scheme (the microcircuit's
    synapse models run only under euler, and would refuse a steady model file) and serve every
    learnable basal projection of its populations (the burst rules serve burst neurons only)."""
    from .builder import scheme_refusal

    cfg = exp.config
    basal = [p for p in cfg.projections if p.compartment == "basal" and p.is_learnable]
    return [rule for rule in RULES.names() if scheme_refusal(rule, cfg.dynamics.mode) is None
            and all(RULES.get(rule).serves(p, cfg.populations) is None for p in basal) and _loads(exp, rule)]


def _loads(exp, rule: str) -> bool:
    """Whether the model file loads with ``rule`` at the top level (a network-wide rule cannot
    share a burst network with the synapse models of its Y and Q, nor dll's θ its apical input)."""
    from .errors import ConfigError

    try:
        load_experiment(exp.to_dict(), [f"plasticity.rule={rule}"], file=exp.file)
    except ConfigError:
        return False
    return True


def cnn_rows(model_file: str, device: torch.device, batch: int, kw: dict, *, data_root: Optional[str] = None) -> dict:
    """Each rule's step on a CNN model file against plain torch autograd on the same layers,
    on random inputs of the shapes its task declares (its own image files included)."""
    exp = load_experiment(model_file)
    shape, classes = _data_shape(exp, data_root)
    x = torch.randn(batch, *shape, device=device)
    y = torch.randint(0, classes, (batch,), device=device)
    _, net = rule_step(exp, "bp", x, y, device)
    model = torch_twin(net).to(device)
    rows = {}
    for label, fused in (("autograd (nn.Sequential + Adam)", False), ("autograd + fused Adam", True)):
        opt = torch.optim.Adam(model.parameters(), lr=exp.config.optimizer.lr, **({"fused": True} if fused else {}))
        loss_fn = nn.CrossEntropyLoss()

        def step():
            opt.zero_grad(set_to_none=True)
            loss_fn(model(x), y).backward()
            opt.step()

        rows[label] = {"s": timed(step, device, **kw), "rule": "autograd"}
    for rule in steady_rules(exp):
        step, net = rule_step(exp, rule, x, y, device)
        rows[rule] = {"s": timed(step, device, **kw), "rule": rule, "net": net}
    ref_s = rows["autograd (nn.Sequential + Adam)"]["s"]
    table = []
    for name, row in rows.items():
        floor_net = row.get("net", net)
        floor_s = op_floor(floor_net, "bp" if row["rule"] == "autograd" else row["rule"], x, device,
                           repeats=max(3, kw["repeats"] // 2))
        table.append({"step": name, "ms": round(1e3 * row["s"], 3), "vs_autograd": round(row["s"] / ref_s, 3),
                      "floor_ms": round(1e3 * floor_s, 3), "vs_floor": round(row["s"] / floor_s, 3)})
    return {"model": exp.config.name, "batch": batch, "steps": table}


def rnn_floor(net: Network, rule: str, T: int, B: int, device, *, repeats: int) -> float:
    """Matmul seconds of one step of ``rule`` on an unrolled network: feedforward
    projections as one [T·B]-row matmul each, recurrent ones as T matmuls of B rows
    (forward and error carried back), every update one [T·B]-row matmul."""
    hidden = {p.name for p in net.hidden()}
    shapes: dict[tuple[int, int, int], int] = {}

    def add(m, k, n, times=1):
        shapes[(m, k, n)] = shapes.get((m, k, n), 0) + times

    for proj in net.projections.values():
        n_post, n_pre = proj.weight.shape
        rec = proj.kind == "recurrent"
        add(*((B, n_pre, n_post, T) if rec else (T * B, n_pre, n_post)))
        if proj.learnable:
            add(n_post, T * B, n_pre)
        if proj.source in hidden and rule in ("dll", "bp", "fa", "kp", "autograd"):
            add(*((B, n_post, n_pre, T) if rec else (T * B, n_post, n_pre)))
            if rule == "dll":
                add(n_pre, T * B, n_post)
    if rule == "dfa":
        for p in net.hidden():
            add(T * B, net.output.size, p.size)
    total = 0.0
    for (m, k, n), times in shapes.items():
        a = torch.randn(m, k, device=device)
        b = torch.randn(k, n, device=device)
        out = torch.empty(m, n, device=device)
        total += times * timed(lambda: torch.mm(a, b, out=out), device, steps=10, repeats=repeats, warmup=3)
    return total


def rnn_rows(model_file: str, device: torch.device, batch: int, kw: dict, *, vocabulary: int = 64,
             length: int = 100) -> dict:
    """Each rule's step on a one-layer recurrent model file (a char LM shape: one-hot in,
    softmax out at every step) against torch.nn.RNN + Linear + autograd BPTT + Adam."""
    exp = load_experiment(model_file, [f"task.sequence_length={length}"])
    ids = torch.randint(0, vocabulary, (batch, length + 1), device=device)
    x = torch.nn.functional.one_hot(ids[:, :-1], vocabulary).float()
    y = ids[:, 1:]
    rows = {}
    net = None
    for rule in [r for r in steady_rules(exp) if r != "pc"]:
        e = load_experiment(exp.to_dict(), [f"plasticity.rule={rule}"], file=exp.file)
        model = assemble(e, DataSpec((vocabulary,), vocabulary), device=device)
        net, r, opt, scheme = model.network, model.rule, model.optimizer, model.scheme
        t = torch.eye(vocabulary, device=device)[y.t()]

        def step(net=net, r=r, opt=opt, t=t, scheme=scheme):
            with torch.no_grad():
                scheme.present(net, r, t, state=net.free_state(x))
                opt.step()

        rows[rule] = {"s": timed(step, device, **kw), "rule": rule, "net": net}
    (hidden,) = [p for p in net.hidden()]
    rnn = nn.RNN(vocabulary, hidden.size, nonlinearity=hidden.activation.name, batch_first=True).to(device)
    readout = nn.Linear(hidden.size, vocabulary).to(device)
    params = [*rnn.parameters(), *readout.parameters()]
    loss_fn = nn.CrossEntropyLoss()
    for label, fused in (("autograd (nn.RNN + Adam)", False), ("autograd + fused Adam", True)):
        opt = torch.optim.Adam(params, lr=exp.config.optimizer.lr, **({"fused": True} if fused else {}))

        def step(opt=opt):
            opt.zero_grad(set_to_none=True)
            h, _ = rnn(x)
            loss_fn(readout(h).flatten(0, 1), y.flatten()).backward()
            opt.step()

        rows = {label: {"s": timed(step, device, **kw), "rule": "autograd", "net": net}, **rows}
    ref_s = rows["autograd (nn.RNN + Adam)"]["s"]
    table = []
    for name, row in rows.items():
        floor_s = rnn_floor(row["net"], row["rule"], length, batch, device, repeats=max(3, kw["repeats"] // 2))
        table.append({"step": name, "ms": round(1e3 * row["s"], 3), "vs_autograd": round(row["s"] / ref_s, 3),
                      "floor_ms": round(1e3 * floor_s, 3), "vs_floor": round(row["s"] / floor_s, 3)})
    return {"model": exp.config.name, "batch": batch, "length": length, "vocabulary": vocabulary, "steps": table}


def epoch_throughput(model_file: str, device: str, data_root) -> dict:
    from dendrisim.training import RunOptions, Trainer

    exp = load_experiment(model_file, ["recording.enabled=false"])
    tr = Trainer(exp, RunOptions(device=device, data_root=data_root, progress=False, log=lambda s: None))
    tr.train_epoch(0)  # warm-up epoch (allocator, threads)
    sync(tr.device)
    t0 = time.perf_counter()
    tr.train_epoch(1)
    tr.evaluate(tr.task.val)
    tr.evaluate(tr.task.test)
    sync(tr.device)
    seconds = time.perf_counter() - t0
    n_train, n_eval = len(tr.task.train), len(tr.task.val) + len(tr.task.test)
    return {"seconds": seconds, "n_train": n_train, "n_eval": n_eval, "steps": tr.steps_per_epoch,
            "batch": exp.task.batch_size, "net": tr.network}


def scaled_model(exp, *, hidden: list[int]) -> dict:
    """The model file with its hidden chain replaced by ``hidden`` sizes."""
    data = exp.to_dict()
    pops = {"input": data["populations"]["input"]}
    names = [f"h{i + 1}" for i in range(len(hidden))]
    for name, size in zip(names, hidden):
        pops[name] = {"type": "pyramidal", "size": size, "activation": "tanh"}
    pops["out"] = data["populations"]["out"]
    chain = ["input", *names, "out"]
    data["populations"] = pops
    data["projections"] = [{"from": a, "to": b, "init": {"normal": {"std": 0.05}}} for a, b in zip(chain, chain[1:])]
    return data


def memory_mib(net, rule, batch: int) -> dict:
    """Where a DLL step's memory goes (float32): parameters, their .grad and Adam's two
    moments; θ likewise; and the five compartment tensors of every population."""
    w = sum(p.numel() for p in net.parameters())
    th = sum(p.numel() for p in rule.parameters())
    act = sum(5 * batch * p.size for p in net.pyramidal()) + batch * net.input.size
    mib = lambda n: round(4 * n / 2**20, 2)  # noqa: E731
    return {"weights+grad+adam": mib(4 * w), "theta+grad+adam": mib(4 * th), "compartments": mib(act)}


def scaling(exp, device, kw) -> list[dict]:
    """DLL time per Fashion-MNIST epoch (54k training samples) at three widths, depths and batches."""
    base = [1024, 512, 256]
    points = [("width x0.5", [s // 2 for s in base], 128), ("width x1", base, 128), ("width x2", [s * 2 for s in base], 128),
              ("depth 2", base[:2], 128), ("depth 3", base, 128), ("depth 4", base + [128], 128),
              ("batch 64", base, 64), ("batch 128", base, 128), ("batch 256", base, 256)]
    rows = []
    for label, hidden, batch in points:
        e = load_experiment(scaled_model(exp, hidden=hidden), file=exp.file)
        x = torch.randn(batch, 1, 28, 28, device=device)
        y = torch.randint(0, 10, (batch,), device=device)
        step, net = rule_step(e, "dll", x, y, device)
        r = step.rule
        s = timed(step, device, **kw)
        steps = -(-54000 // batch)
        rows.append({"point": label, "hidden": hidden, "batch": batch, "step_ms": round(1e3 * s, 3),
                     "epoch_s": round(s * steps, 2), **memory_mib(net, r, batch)})
    return rows


def dynamics_rows(model_file: str, device: torch.device, batch: int, kw: dict, *,
                  rules=("dll", "bp", "fa", "dfa", "kp")) -> dict:
    """Each rule's euler-mode training step against ``steps`` x (one forward pass + one
    feedback pass), both timed here on the same network and batch: what the dynamics cost
    beyond the work they must do (the goal is at most 1.2x). The input never changes within a
    presentation, so its drive is needed once: the tighter floor ``input drive + steps x
    (forward pass without it + feedback pass)`` is timed too (``vs_tight_floor``).

    A circuit (interneurons, apical and somatic projections: ``models/microcircuit_*.yaml``)
    is measured under its own rule, and its feedback pass is its explicit top-down, lateral
    and nudging projections (plus whatever its rules carry back): the floor is ``steps x
    (forward + top-down + lateral passes)``."""
    exp = load_experiment(model_file)
    dyn = exp.config.dynamics
    if dyn.mode != "euler":
        exp = load_experiment(model_file, ["dynamics.mode=euler"])
        dyn = exp.config.dynamics
    circuit = any(p.compartment != "basal" for p in exp.config.projections)
    if circuit:
        rules = (exp.rule.rule,)
    shape, outputs = _data_shape(exp)
    torch.manual_seed(0)
    x = torch.randn(batch, *shape, device=device)
    y = torch.randint(0, outputs, (batch,), device=device)
    rows = []
    for rule in rules:
        step, net = rule_step(exp, rule, x, y, device, outputs=outputs)
        r = step.rule
        t = torch.eye(outputs, device=device)[y]
        with torch.no_grad():
            state = net.free_state(x)
            if circuit:
                step.scheme.present(net, r, t, state=state)  # a teacher's errors in every compartment
            else:
                state.target = t  # errors everywhere, so the feedback pass does its real work
                SteadyState(dyn).settle(net, r, state)
        hidden = list(net.hidden())
        explicit = [proj for name in net.populations for proj in (*net.apical_in[name], *net.somatic_in[name])]

        def forward():
            with torch.no_grad():
                net.free_state(x)

        def feedback():
            with torch.no_grad():
                for pop in hidden:
                    r.top_down(net, pop, state)
                for proj in explicit:  # a circuit's top-down, lateral and nudging projections
                    proj.drive(getattr(state[proj.source], proj.reads))

        from_input = [p for p in net.projections.values() if p.source == net.input_name]

        def input_drive():
            with torch.no_grad():
                for proj in from_input:
                    proj.drive(state.input)

        def forward_rest():  # the forward pass's work above the input's drive
            with torch.no_grad():
                for pop in net.simulated():
                    drives = [p.drive(state[p.source].rate) for p in net.incoming[pop.name]
                              if p.source != net.input_name]
                    pop.activation.f(sum(drives[1:], drives[0]) if drives else state[pop.name].basal)

        # interleaved rounds (a block of euler steps, then a block of passes), so that the
        # machine's load drifts under both alike; the ratio is the median of the rounds'
        one = dict(kw, repeats=1, warmup=1)
        rounds = []
        for _ in range(kw["repeats"]):
            euler_s = timed(step, device, **one)
            fb_s = timed(feedback, device, **one)
            pass_s = timed(forward, device, **one) + fb_s
            tight_s = timed(input_drive, device, **one) + dyn.steps * (timed(forward_rest, device, **one) + fb_s)
            rounds.append((euler_s, pass_s, euler_s / (dyn.steps * pass_s), euler_s / tight_s))
        euler_s, pass_s, ratio, tight = (statistics.median(r[i] for r in rounds) for i in range(4))
        rows.append({"rule": rule, "steps": dyn.steps, "step_ms": round(1e3 * euler_s, 3),
                     "forward_plus_feedback_ms": round(1e3 * pass_s, 3), "vs_steps_passes": round(ratio, 3),
                     "vs_tight_floor": round(tight, 3), "ratios": [round(r[2], 3) for r in rounds]})
    return {"model": exp.config.name, "batch": batch, "dt": dyn.dt, "steps": dyn.steps, "rows": rows,
            "circuit": circuit}


def _data_shape(exp, data_root: Optional[str] = None) -> tuple[tuple[int, ...], int]:
    """The sample shape and outputs the model's task declares (a lab's own file, ``dataset:
    file``, is read for them; Fashion-MNIST's when the task cannot say without loading its data)."""
    from .tasks import TASKS

    try:
        spec = DataSpec.declared(TASKS.get(exp.task.type), exp.task, data_root)
        return spec.input_shape, spec.outputs
    except NotImplementedError:
        return (1, 28, 28), 10


def _present(scheme, net: Network, rule, target: torch.Tensor, state) -> None:
    """One presentation of the free ``state`` of a batch (settle, updates into ``.grad``) under
    the experiment's settling scheme: the only call of the ``--pc`` rows that runs one."""
    scheme.present(net, rule, target, state=state)


def pc_floor_shapes(net: Network, batch: int) -> dict[str, dict[tuple[int, int, int], int]]:
    """(m, k, n) -> count of the matmuls in pc's floor, in three groups: ``once`` (the
    predictions from the input, which never changes), ``per_step`` (each inference step: the
    predictions above the first layer from the current somata and the top-down ``W^T eps`` of
    every hidden population) and ``final`` (the predictions above the first layer at the
    relaxed state, and every projection's update ``eps^T r``). Dense chains only."""
    hidden = {p.name for p in net.hidden()}
    groups: dict[str, dict[tuple[int, int, int], int]] = {"once": {}, "per_step": {}, "final": {}}

    def add(group, shape):
        groups[group][shape] = groups[group].get(shape, 0) + 1

    for proj in net.projections.values():
        if proj.connectivity != "dense":
            raise SystemExit(f"--pc times dense networks; projection {proj.name} is {proj.connectivity}")
        n_post, n_pre = proj.weight.shape
        if proj.source == net.input_name:
            add("once", (batch, n_pre, n_post))
        else:
            add("per_step", (batch, n_pre, n_post))
            add("final", (batch, n_pre, n_post))
        if proj.source in hidden:
            add("per_step", (batch, n_post, n_pre))  # top-down input to the source: eps_post W
        if proj.learnable:
            add("final", (n_post, batch, n_pre))  # the update eps_post^T r_pre
    return groups


def matmul_seconds(shapes: dict[tuple[int, int, int], int], device, *, steps: int, repeats: int, warmup: int) -> float:
    """Seconds for the matmuls ``shapes`` (shape -> count), each shape timed as ``torch.mm``."""
    total = 0.0
    for (m, k, n), times in shapes.items():
        a = torch.randn(m, k, device=device)
        b = torch.randn(k, n, device=device)
        out = torch.empty(m, n, device=device)
        total += times * timed(lambda: torch.mm(a, b, out=out), device, steps=steps, repeats=repeats, warmup=warmup)
    return total


def pc_rows(model_file: str, device: torch.device, batch: int, kw: dict, *, inference_steps: Optional[int] = None
            ) -> dict:
    """pc's training step on ``model_file`` (rule pc; T = ``inference_steps`` or the file's)
    against pc's matmul floor (:func:`pc_floor_shapes`), with tolerance 0 and the file's
    tolerance, in rounds alternating a block of steps with a block of floors."""
    overrides = ["plasticity.rule=pc"] + ([f"plasticity.inference_steps={inference_steps}"] if inference_steps else [])
    exp = load_experiment(model_file, overrides)
    T, tolerance = exp.rule.inference_steps, exp.rule.tolerance
    torch.manual_seed(0)
    x = torch.randn(batch, 1, 28, 28, device=device)
    y = torch.randint(0, 10, (batch,), device=device)
    t = torch.eye(10, device=device)[y]
    one = dict(kw, repeats=1, warmup=1)
    rows = []
    for tol in dict.fromkeys([0.0, tolerance]):
        e = load_experiment(exp.to_dict(), [f"plasticity.tolerance={tol!r}"], file=exp.file)
        model = assemble(e, DataSpec(tuple(x.shape[1:]), 10), device=device)
        net, rule, opt, scheme = model.network, model.rule, model.optimizer, model.scheme

        def step(net=net, rule=rule, opt=opt, scheme=scheme):
            with torch.no_grad():
                _present(scheme, net, rule, t, net.free_state(x))
                opt.step()

        groups = pc_floor_shapes(net, batch)
        for _ in range(kw["warmup"]):
            step()
        rule.inference_counts.zero_()
        rounds = []
        for _ in range(kw["repeats"]):
            step_s = timed(step, device, **one)
            parts = {g: matmul_seconds(shapes, device, **one) for g, shapes in groups.items()}
            rounds.append((step_s, parts))
        iterations, settles, _ = rule.inference_counts.tolist()
        mean_T = iterations / settles if settles else float(T)
        floors = [p["once"] + mean_T * p["per_step"] + p["final"] for _, p in rounds]
        ratios = [s / f for (s, _), f in zip(rounds, floors)]
        rows.append({"tolerance": tol, "iterations": round(mean_T, 2),
                     "step_ms": round(1e3 * statistics.median(s for s, _ in rounds), 3),
                     "floor_ms": round(1e3 * statistics.median(floors), 3),
                     "vs_floor": round(statistics.median(ratios), 3), "ratios": [round(r, 3) for r in ratios]})
    flops = sum(2 * m * k * n * c * (T if g == "per_step" else 1)
                for g, shapes in pc_floor_shapes(net, batch).items() for (m, k, n), c in shapes.items())
    return {"model": exp.config.name, "batch": batch, "T": T, "floor_gflop_at_T": round(flops / 1e9, 4), "rows": rows}


BURST_RULES = ("burstccn", "burstprop")


def burst_model(exp, rule: str) -> dict:
    """The model file as a network of burst neurons under ``rule`` (burstccn or burstprop).

    A file whose populations are burst neurons already is kept, its burst rule's options too
    (burstprop drops its Q projections and ``cancel``: it has none). Any other keeps its chain's sizes: every population above the
    input becomes ``type: burst`` with a sigmoid (the forward weights ``xavier_normal`` with
    gain 3.6, as in ``models/burstccn_digits.yaml``), and every hidden population gets, from
    each population its basal projections feed, a fixed random Y (``reads: burst``) and, under
    burstccn, a learnable Q (``reads: event``, ``cancel: symmetric``); the optimizer is plain
    SGD, as in the burst model files. Recording is off."""
    data = exp.to_dict()
    data["recording"] = {"enabled": False}
    cfg = exp.config
    simulated = [n for n, p in cfg.populations.items() if not model_of(p).clamped]
    if all(model_of(cfg.populations[n]).learns_by == "burst" for n in simulated):  # a burst model file, kept
        own = data["plasticity"] if data["plasticity"].get("rule") in BURST_RULES else {}
        data["plasticity"] = {**{k: v for k, v in own.items() if rule == "burstccn" or k != "cancel"}, "rule": rule}
        if rule != "burstccn":
            data["projections"] = [p for p in data["projections"]
                                   if not (p["compartment"] == "apical" and p.get("reads") in ("event", "rate"))]
        return data
    for name in simulated:
        pop = data["populations"][name]
        data["populations"][name] = {"type": "burst", "activation": "sigmoid",
                                     **{k: pop[k] for k in ("size", "shape", "channels") if pop.get(k) is not None}}
    basal = [p for p in data["projections"] if p["compartment"] == "basal"]
    projections = [{"from": p["from"], "to": p["to"], "init": {"xavier_normal": {"gain": 3.6}}} for p in basal]
    for p in basal:
        if p["from"] in simulated:  # a hidden population: Y (and Q) from the population it feeds
            projections.append({"from": p["to"], "to": p["from"], "compartment": "apical", "reads": "burst",
                                "init": {"normal": {"std": 1.0}}})
            if rule == "burstccn":
                projections.append({"from": p["to"], "to": p["from"], "compartment": "apical", "reads": "event",
                                    "learnable": True})
    data["projections"] = projections
    data["plasticity"] = {"rule": rule}
    data["optimizer"] = {"type": "sgd", "lr": 0.01}
    return data


def burst_floor(net: Network, state, rule: str, batch: int):
    """The matmul floor of one presentation of ``rule`` (burstccn or burstprop) on ``net``, as
    bare ``torch.mm`` calls on the network's own weights and the settled ``state``'s tensors,
    each into a buffer made once: every basal projection's drive ``e_pre Wᵀ`` (the forward
    pass), every apical projection's drive (BurstCCN's Y pass ``b_above W_Yᵀ`` and Q pass
    ``e_above W_Qᵀ``, one matmul each per hidden population; burstprop settles twice, so its
    Y passes count twice) and every learnable projection's update ``δᵀ e_pre`` (W and Q).
    Biases, the neurons' element-wise work and the optimizer are left out. Returns a function
    that does them all, and the list of ``(m, k, n)`` shapes it multiplies."""
    ops, shapes = [], []
    sweeps = 2 if getattr(RULES.get(rule), "contrastive", False) else 1
    for proj in net.projections.values():
        n_post, n_pre = proj.weight.shape  # dense: burst populations are not spatial
        src = state[proj.source]
        pre = src.rate.flatten(1)
        read = getattr(src, proj.reads) if proj.compartment == "apical" else pre
        drive = torch.empty(batch, n_post, device=pre.device, dtype=pre.dtype)
        times = sweeps if proj.compartment == "apical" else 1
        ops += [(read.flatten(1), proj.weight.detach().t(), drive)] * times
        shapes += [(batch, n_pre, n_post)] * times
        if proj.learnable:
            delta = state[proj.target].error if proj.compartment == "basal" else state[proj.target].apical
            grad = torch.empty(n_post, n_pre, device=pre.device, dtype=pre.dtype)
            ops.append((delta.flatten(1).t(), pre, grad))
            shapes.append((n_post, batch, n_pre))

    def floor():
        for a, b, out in ops:
            torch.mm(a, b, out=out)

    return floor, shapes


def burst_rows(model_file: str, device: torch.device, batch: int, kw: dict, *, rules=BURST_RULES) -> dict:
    """Each burst rule's training step (the forward pass, the top-down sweep or sweeps, the
    updates, the optimizer) on ``model_file`` made a burst network (:func:`burst_model`)
    against its matmul floor (:func:`burst_floor`), in rounds alternating a block of training
    steps with a block of floors; the ratio is the median of the rounds'."""
    exp = load_experiment(model_file)
    shape, outputs = _data_shape(exp)
    torch.manual_seed(0)
    x = torch.randn(batch, *shape, device=device)
    y = torch.randint(0, outputs, (batch,), device=device)
    t = torch.eye(outputs, device=device)[y]
    one = dict(kw, repeats=1, warmup=1)
    rows, sizes = [], None
    for rule in rules:
        e = load_experiment(burst_model(exp, rule), file=exp.file)
        model = assemble(e, DataSpec(shape, outputs), device=device)
        net, r, opt, scheme = model.network, model.rule, model.optimizer, model.scheme

        def step(net=net, r=r, opt=opt, scheme=scheme):
            with torch.no_grad():
                scheme.present(net, r, t, state=net.free_state(x))
                opt.step()

        with torch.no_grad():
            presentation = scheme.present(net, r, t, state=net.free_state(x))
        floor, shapes = burst_floor(net, presentation.state, rule, batch)
        sizes = [net.input.size, *(p.size for p in net.simulated())]
        for _ in range(kw["warmup"]):
            step()
        rounds = []
        for _ in range(kw["repeats"]):
            step_s = timed(step, device, **one)
            with torch.no_grad():
                floor_s = timed(floor, device, **one)
            rounds.append((step_s, floor_s))
        ratios = [s / f for s, f in rounds]
        finite = all(bool(torch.isfinite(q).all()) for q in net.parameters())  # NaN steps time other work
        rows.append({"rule": rule, "finite": finite, "step_ms": round(1e3 * statistics.median(s for s, _ in rounds), 3),
                     "floor_ms": round(1e3 * statistics.median(f for _, f in rounds), 3),
                     "floor_gflop": round(sum(2 * m * k * n for m, k, n in shapes) / 1e9, 6),
                     "matmuls": len(shapes), "vs_floor": round(statistics.median(ratios), 3),
                     "ratios": [round(q, 3) for q in ratios]})
    return {"model": exp.config.name, "sizes": sizes, "batch": batch, "rows": rows}


def parser(prog: str = "bench.py") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="dll_mlp_fmnist", type=path_arg("--model", text=True),
                   help="model file or bundled model name of the MLP rows (default: dll_mlp_fmnist)")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto (default: cpu)")
    p.add_argument("--batch", type=int, default=128, help="batch size of the timed steps (default: 128)")
    p.add_argument("--steps", type=int, default=20, help="steps per timed block")
    p.add_argument("--repeats", type=int, default=7, help="timed blocks (the median is reported)")
    p.add_argument("--warmup", type=int, default=10, help="untimed steps before the timed blocks (default: 10)")
    p.add_argument("--no-epoch", action="store_true", help="skip the one-epoch throughput")
    p.add_argument("--data-root", type=path_arg("--data-root", text=True), help="folder with Fashion-MNIST for the one-epoch throughput")
    p.add_argument("--json", action="store_true", help="print one JSON line instead of the tables")
    p.add_argument("--scaling", action="store_true", help="also time DLL epochs at three widths, depths and batches")
    p.add_argument("--cnn", nargs="?", const="dll_cnn_fmnist", metavar="MODEL",
                   help="also time every rule on a CNN model (default dll_cnn_fmnist)")
    p.add_argument("--only-cnn", action="store_true", help="time the CNN rows only")
    p.add_argument("--rnn", nargs="?", const="dll_rnn_charlm", metavar="MODEL",
                   help="also time every rule on a recurrent model (default dll_rnn_charlm; "
                        "64 one-hot symbols, 100 steps)")
    p.add_argument("--only-rnn", action="store_true", help="time the RNN rows only")
    p.add_argument("--dynamics", nargs="?", const="dll_mlp_fmnist_dynamic", metavar="MODEL",
                   help="time the euler-mode step of each rule against steps x (forward + feedback pass) only "
                        "(default dll_mlp_fmnist_dynamic)")
    p.add_argument("--pc", nargs="?", const="dll_mlp_fmnist", metavar="MODEL",
                   help="time pc's training step (rule pc, T = inference_steps) against its matmul floor only: "
                        "the input->h1 prediction once, T x (the predictions above h1 + every hidden population's "
                        "top-down W^T eps), the predictions above h1 at the relaxed state, and every projection's "
                        "update eps^T r, timed as plain torch matmuls; with tolerance 0 and the file's tolerance "
                        "(default dll_mlp_fmnist)")
    p.add_argument("--pc-steps", type=int, metavar="T",
                   help="inference steps T of the --pc rows (default: the model file's plasticity.inference_steps)")
    p.add_argument("--burst", nargs="?", const="dll_mlp_fmnist", metavar="MODEL",
                   help="time the burstccn and burstprop training steps against their matmul floor only: the "
                        "forward pass, the Y and Q passes (one matmul each per hidden population; burstprop's two "
                        "sweeps count two Y passes) and the W and Q updates, timed as bare torch.mm on the same "
                        "tensors; MODEL is made a burst network (sigmoid burst populations, a fixed Y and a "
                        "learnable Q into every hidden one) unless it is one (default dll_mlp_fmnist)")
    p.add_argument("--threads", type=int, metavar="N",
                   help="torch's intra-op CPU threads (default: torch's own choice; 1 on a shared machine)")
    return p


def main(argv: Optional[Sequence[str]] = None, *, prog: str = "bench.py") -> int:
    args = parser(prog).parse_args(argv)
    if args.threads is not None:
        from .host import set_threads

        set_threads(args.threads)
    for key in ("model", "cnn", "rnn", "dynamics", "pc", "burst"):  # bundled names or paths
        if isinstance(getattr(args, key), str):
            setattr(args, key, resolve_model(getattr(args, key)))
    from .host import device_of

    device = device_of(args.device)
    torch.manual_seed(0)
    exp = load_experiment(args.model)
    x = torch.randn(args.batch, 1, 28, 28, device=device)
    y = torch.randint(0, 10, (args.batch,), device=device)
    kw = dict(steps=args.steps, repeats=args.repeats, warmup=args.warmup)

    if args.pc:
        rows = pc_rows(args.pc, device, args.batch, kw, inference_steps=args.pc_steps)
        return report({"machine": machine(device), "pc": rows}, args)
    if args.burst:
        return report({"machine": machine(device), "burst": burst_rows(args.burst, device, args.batch, kw)}, args)
    if args.dynamics:
        return report({"machine": machine(device), "dynamics": dynamics_rows(args.dynamics, device, args.batch, kw)}, args)
    if args.only_rnn:
        args.rnn = args.rnn or resolve_model("dll_rnn_charlm")
        result = {"machine": machine(device), "rnn": rnn_rows(args.rnn, device, args.batch, kw)}
        return report(result, args)
    if args.only_cnn:
        args.cnn = args.cnn or resolve_model("dll_cnn_fmnist")
        result = {"machine": machine(device), "cnn": cnn_rows(args.cnn, device, args.batch, kw, data_root=args.data_root)}
        return report(result, args)
    rows = {}
    _, net = rule_step(exp, "bp", x, y, device)
    ref = autograd_step(net, x, y, exp.config.optimizer.lr, device)
    rows["autograd (nn.Sequential + Adam)"] = {"s": timed(ref, device, **kw), "shapes": gemm_shapes(net, "autograd", args.batch)}
    fused = autograd_step(net, x, y, exp.config.optimizer.lr, device, fused=True)
    rows["autograd + fused Adam"] = {"s": timed(fused, device, **kw), "shapes": gemm_shapes(net, "autograd", args.batch)}
    for rule in steady_rules(exp):
        step, net = rule_step(exp, rule, x, y, device)
        rows[rule] = {"s": timed(step, device, **kw), "shapes": gemm_shapes(net, rule, args.batch)}
    ref_s = rows["autograd (nn.Sequential + Adam)"]["s"]
    table = []
    for name, row in rows.items():
        floor_s, flops = gemm_floor(row["shapes"], device, x.dtype, repeats=max(3, args.repeats // 2))
        table.append({"step": name, "ms": round(1e3 * row["s"], 3), "vs_autograd": round(row["s"] / ref_s, 3),
                      "gflop": round(flops / 1e9, 4), "floor_ms": round(1e3 * floor_s, 3),
                      "vs_floor": round(row["s"] / floor_s, 3)})
    result = {"machine": machine(device), "model": exp.config.name, "batch": args.batch, "steps": table}

    if not args.no_epoch:
        ep = epoch_throughput(args.model, args.device, args.data_root)
        train_shapes = gemm_shapes(ep["net"], "dll", ep["batch"])
        step_floor, _ = gemm_floor(train_shapes, device, x.dtype, repeats=3)
        eval_shapes = [(1000, k, n) for (m, k, n) in gemm_shapes(ep["net"], "forward", 1000)[::2]]
        eval_floor, _ = gemm_floor(eval_shapes, device, x.dtype, repeats=3)
        floor = step_floor * ep["steps"] + eval_floor * (ep["n_eval"] / 1000)
        result["epoch"] = {"rule": "dll", "seconds": round(ep["seconds"], 3),
                           "samples_per_s": round((ep["n_train"] + ep["n_eval"]) / ep["seconds"], 1),
                           "floor_s": round(floor, 3), "vs_floor": round(ep["seconds"] / floor, 3)}
    if args.scaling:
        result["scaling"] = scaling(exp, device, kw)
    if args.cnn:
        result["cnn"] = cnn_rows(args.cnn, device, args.batch, kw, data_root=args.data_root)
    if args.rnn:
        result["rnn"] = rnn_rows(args.rnn, device, args.batch, kw)
    return report(result, args)


def print_steps(rows: list[dict]) -> None:
    print(f"{'step':<34}{'ms':>10}{'x autograd':>12}{'floor ms':>10}{'x floor':>9}")
    for r in rows:
        print(f"{r['step']:<34}{r['ms']:>10.3f}{r['vs_autograd']:>12.3f}{r['floor_ms']:>10.3f}{r['vs_floor']:>9.3f}")


def report(result: dict, args) -> int:
    if args.json:
        print(json.dumps(result))
        return 0
    m = result["machine"]
    print(f"machine: {m['cpu']}, {m['threads']} threads, torch {m['torch']}, device {m['device']}"
          + (f" ({m['gpu']})" if "gpu" in m else ""))
    if "steps" in result:
        print(f"model {result['model']}, batch {args.batch}; median of {args.repeats} blocks of {args.steps} steps")
        print(f"{'step':<34}{'ms':>10}{'x autograd':>12}{'GFLOP':>9}{'floor ms':>10}{'x floor':>9}")
        for r in result["steps"]:
            print(f"{r['step']:<34}{r['ms']:>10.3f}{r['vs_autograd']:>12.3f}{r['gflop']:>9.3f}{r['floor_ms']:>10.3f}"
                  f"{r['vs_floor']:>9.3f}")
    if "cnn" in result:
        c = result["cnn"]
        print(f"CNN {c['model']}, batch {c['batch']}; floor: each native kernel of the step timed alone")
        print_steps(c["steps"])
    if "rnn" in result:
        c = result["rnn"]
        print(f"RNN {c['model']}, batch {c['batch']}, {c['length']} steps, {c['vocabulary']} one-hot symbols; "
              "floor: the step's matmuls timed alone (recurrent ones as T small matmuls)")
        print_steps(c["steps"])
    if "dynamics" in result:
        d = result["dynamics"]
        print(f"euler dynamics, {d['model']}, batch {d['batch']}, {d['steps']} steps of dt {d['dt']}; median of "
              f"{args.repeats} interleaved rounds of {args.steps} training steps and {args.steps} passes")
        if d.get("circuit"):
            print("a circuit: its feedback pass is its top-down, lateral and nudging projections")
        print(f"{'rule':<8}{'step ms':>10}{'forward + feedback ms':>24}{'x (steps x passes)':>21}"
              f"{'x (input once)':>16}   rounds (steps x passes)")
        for r in d["rows"]:
            print(f"{r['rule']:<8}{r['step_ms']:>10.2f}{r['forward_plus_feedback_ms']:>24.3f}{r['vs_steps_passes']:>21.3f}"
                  f"{r['vs_tight_floor']:>16.3f}   {' '.join(f'{x:.2f}' for x in r['ratios'])}")
    if "pc" in result:
        d = result["pc"]
        print(f"pc relaxation, {d['model']} (rule pc), batch {d['batch']}, T {d['T']}; median of {args.repeats} "
              f"alternated rounds of {args.steps} training steps and {args.steps} floors")
        print("floor: input->h1 once + iterations x (predictions above h1 + top-down W^T eps) + predictions above "
              f"h1 at the relaxed state + updates eps^T r, as torch.mm ({d['floor_gflop_at_T']:.3f} GFLOP at T)")
        print(f"{'tolerance':<11}{'iterations':>11}{'step ms':>10}{'floor ms':>10}{'x floor':>9}   rounds")
        for r in d["rows"]:
            print(f"{r['tolerance']:<11g}{r['iterations']:>11.2f}{r['step_ms']:>10.2f}{r['floor_ms']:>10.3f}"
                  f"{r['vs_floor']:>9.3f}   {' '.join(f'{x:.2f}' for x in r['ratios'])}")
    if "burst" in result:
        d = result["burst"]
        print(f"burst rules, {d['model']} as burst neurons {'-'.join(map(str, d['sizes']))}, batch {d['batch']}; "
              f"median of {args.repeats} alternated rounds of {args.steps} training steps and {args.steps} floors")
        print("floor: the forward pass + the Y and Q passes (burstprop: two Y passes) + the W and Q updates, as "
              "torch.mm on the same tensors")
        print(f"{'rule':<11}{'step ms':>10}{'floor ms':>10}{'GFLOP':>8}{'x floor':>9}   rounds")
        for r in d["rows"]:
            print(f"{r['rule']:<11}{r['step_ms']:>10.3f}{r['floor_ms']:>10.3f}{r['floor_gflop']:>8.3f}"
                  f"{r['vs_floor']:>9.3f}   {' '.join(f'{x:.2f}' for x in r['ratios'])}")
            if not r["finite"]:
                print(f"  warning: {r['rule']}'s weights went non-finite during the timed steps, so its times are "
                      "not those of a training step; lower the model's optimizer.lr")
    if "scaling" in result:
        print("DLL time per Fashion-MNIST epoch (54k samples, training steps only) and memory in MiB:")
        print(f"{'point':<12}{'hidden':<24}{'batch':>6}{'step ms':>9}{'epoch s':>9}{'W+grad+adam':>13}{'θ+grad+adam':>13}{'compartments':>14}")
        for r in result["scaling"]:
            print(f"{r['point']:<12}{str(r['hidden']):<24}{r['batch']:>6}{r['step_ms']:>9.2f}{r['epoch_s']:>9.2f}"
                  f"{r['weights+grad+adam']:>13.1f}{r['theta+grad+adam']:>13.1f}{r['compartments']:>14.1f}")
    if "epoch" in result:
        e = result["epoch"]
        print(f"one Fashion-MNIST epoch (dll, train + val + test, data handling included): {e['seconds']:.2f} s, "
              f"{e['samples_per_s']:.0f} samples/s, floor {e['floor_s']:.2f} s, {e['vs_floor']:.2f}x floor")
    return 0

