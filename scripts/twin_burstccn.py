#!/usr/bin/env python3
"""dendrisim's ``burstccn`` against the public BurstCCN code (``neuralml/BurstCCN``), step by step.

The public code is never a dependency of dendrisim: give its checkout with ``--reference``
(the folder holding ``modules/`` and ``helpers.py``); it is imported from there, with a stub
``wandb`` (it imports wandb at import time and uses it only for logging).

Both sides build the same MLP of burst neurons (sigmoid everywhere, p_b 0.5, SGD): the
reference's ``BurstCCN`` and a dendrisim model written as a model file (a dict). The
reference's initial W, b, Y and Q are copied into dendrisim, with dendrisim's layout
(every projection ``[n_post, n_pre]``; the reference's ``apic = b_above @ Y - e_above @ Q``):

    W_dendrisim = W_ref,  Y_dendrisim = Y_ref^T,  Q_dendrisim = -Q_ref^T

Then both see the same batches (Fashion-MNIST through dendrisim's loader, or random data with
``--data random``) and train for ``--steps`` SGD steps; after every step the script prints
the largest absolute difference of W, b, Y and Q between the two (in dendrisim's layout) and
fails (exit 1) above ``--tol``. Cases (``--case``, default all): Q learning with fixed random
Y on 784-100-100-10 and on a 5-hidden-layer MLP, Y and Q learning, symmetric Y, and tied Y
and Q; and dendrisim's ``burstprop`` against the public code's ``BurstProp`` (no recurrent
input), random and tied Y. The reference's Q (and Y) learning rate is ``lr × lr_scale`` of
dendrisim's Q (Y) projection. The public BurstProp's hidden burst probability is
``σ(v_A (1 − e))``, without BurstCCN's factor 4: its twin sets ``burst_gain: 1``.

``--bench``: the time of one training step (forward, settle/backward, updates) per
presentation of both on one CPU thread, on the same network and batch size, in interleaved
rounds; dendrisim's step is the training loop's (``Trainer.train_step``, as
``dendrisim.runner.train_epoch`` runs it; the API's ``dendrisim.Trainer.step``, which first
checks the batch's shape, dtype and values for NaN/Inf, is a row of its own), the reference's
``forward``, ``backward``, ``loss`` and ``update_weights`` as its trainer runs them (its
backward also computes the backprop and feedback-alignment gradients it logs angles with).
A third row, ``plain``, is the same step in a few lines of plain torch (written here, checked
against dendrisim's): the arithmetic without any framework around it.

    python scripts/twin_burstccn.py --reference /path/to/BurstCCN
    python scripts/twin_burstccn.py --reference /path/to/BurstCCN --data random --steps 20
    python scripts/twin_burstccn.py --reference /path/to/BurstCCN --bench --rounds 7
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


@dataclass(frozen=True)
class Case:
    """One twin run: the architecture and the reference's modes."""

    name: str
    hidden: tuple[int, ...]
    y_mode: str = "random_init"  # the reference's Y_mode: random_init, symmetric_init, tied
    q_mode: str = "symmetric_init"  # the reference's Q_mode: symmetric_init, tied
    y_learning: bool = False
    q_learning: bool = True
    rule: str = "burstccn"  # or burstprop: the public code's BurstProp network (no Q, p = σ(v_A (1 − e)))


CASES = {c.name: c for c in (
    Case("q_learning", (100, 100)),
    Case("q_learning_deep", (100, 100, 100, 100, 100)),
    Case("y_and_q_learning", (100, 100), y_learning=True),
    Case("symmetric", (100, 100), y_mode="symmetric_init"),
    Case("tied", (100, 100), y_mode="tied", q_mode="tied", q_learning=False),
    Case("burstprop", (100, 100), q_learning=False, rule="burstprop"),
    Case("burstprop_tied", (100, 100), y_mode="tied", q_learning=False, rule="burstprop"),
    Case("burstprop_y_learning", (100, 100), y_learning=True, q_learning=False, rule="burstprop"),
)}

FEEDBACK = {"random_init": "random", "symmetric_init": "symmetric", "tied": "tied"}
CANCEL = {"symmetric_init": "symmetric", "tied": "tied"}


# ---------------------------------------------------------------------- the reference
def import_reference(folder: Path):
    """``(BurstCCN, SGDOptimiser, BurstProp)`` of the public code in ``folder``, with a stub wandb."""
    if not (folder / "modules" / "networks_burstccn.py").is_file():
        raise SystemExit(f"error: --reference {folder}: no modules/networks_burstccn.py there; give the folder of "
                         "a neuralml/BurstCCN checkout")
    sys.modules.setdefault("wandb", types.ModuleType("wandb"))
    sys.path.insert(0, str(folder))
    try:
        from modules.networks_burstccn import BurstCCN
        from modules.networks_burstprop import BurstProp
        from modules.optimisers import SGDOptimiser
    finally:
        sys.path.remove(str(folder))
    return BurstCCN, SGDOptimiser, BurstProp


class Reference:
    """The public BurstCCN (or BurstProp) MLP and its trainer's step (forward, backward,
    loss, update)."""

    def __init__(self, classes, case: Case, *, n_in: int, n_out: int, lr: float, lr_y: float, lr_q: float):
        BurstCCN, SGDOptimiser, BurstProp = classes
        n = len(case.hidden)
        self.rule = case.rule
        if case.rule == "burstprop":  # its sizes are fixed at 784 in, 10 out
            self.model = BurstProp(p_baseline=0.5, n_hidden_layers=n, n_hidden_units=case.hidden[0],
                                   recurrent_input=False, Y_learning=case.y_learning, Y_mode=case.y_mode, Y_scale=1.0,
                                   recurrent_learning=False, recurrent_scale=1.0, device="cpu")
            self.lrs = [lr] * (n + 1)
            return
        self.model = BurstCCN(n_inputs=n_in, n_outputs=n_out, p_baseline=0.5, n_hidden_layers=n,
                              n_hidden_units=case.hidden[0], Y_mode=case.y_mode, Q_mode=case.q_mode, Y_scale=1.0,
                              Q_scale=1.0, Y_learning=case.y_learning, Q_learning=case.q_learning, device="cpu")
        self.optimiser = SGDOptimiser()
        self.lrs, self.lrs_y, self.lrs_q = [lr] * (n + 1), [lr_y] * n + [None], [lr_q] * n + [None]

    @property
    def layers(self):
        return self.model.classification_layers

    def y_of(self, i: int) -> torch.Tensor:
        """Hidden layer ``i``'s Y in dendrisim's layout ``[n_i, n_above]``: BurstCCN keeps it
        on the layer (``apic = b_above @ Y``), BurstProp on the layer above (``b @ weight_Y``)."""
        return (self.layers[i + 1] if self.rule == "burstprop" else self.layers[i]).weight_Y.t()

    def step(self, x: torch.Tensor, t: torch.Tensor) -> float:
        out = self.model(x)
        self.model.backward(t)
        loss = self.model.loss(out, t)
        if self.rule == "burstprop":  # its updates are sums, divided by batch_size here
            self.model.update_weights(lr=self.lrs, batch_size=x.shape[0])
            return float(loss)
        self.model.update_weights(lrs=self.lrs, lrs_Y=self.lrs_y, lrs_Q=self.lrs_q, optimiser=self.optimiser)
        return float(loss)


# ---------------------------------------------------------------------- dendrisim's side
def population_names(case: Case) -> list[str]:
    return ["input", *(f"h{i + 1}" for i in range(len(case.hidden))), "out"]


def model_dict(case: Case, *, dataset: str, batch: int, lr: float, y_scale: float, q_scale: float) -> dict:
    """The dendrisim model file of ``case`` (as burst_spec.md writes it)."""
    names = population_names(case)
    pops = {"input": {"type": "input", "size": "auto"}}
    pops.update({h: {"type": "burst", "size": n, "activation": "sigmoid"} for h, n in zip(names[1:-1], case.hidden)})
    pops["out"] = {"type": "burst", "size": "auto", "activation": "sigmoid"}
    projections = [{"from": a, "to": b, "init": {"xavier_normal": {"gain": 3.6}}} for a, b in zip(names, names[1:])]
    for below, above in zip(names[1:-1], names[2:]):
        projections.append({"from": above, "to": below, "compartment": "apical", "reads": "burst",
                            "init": {"normal": {"std": 1.0}}, "learnable": case.y_learning,
                            # the public BurstProp's Y learns at W's learning rate
                            "lr_scale": 1.0 if case.rule == "burstprop" else y_scale})
        if case.rule == "burstprop":
            continue
        projections.append({"from": above, "to": below, "compartment": "apical", "reads": "event",
                            "learnable": case.q_learning, "lr_scale": q_scale})
    plasticity = {"rule": case.rule, "feedback": FEEDBACK[case.y_mode]}
    if case.rule == "burstccn":
        plasticity["cancel"] = CANCEL[case.q_mode]
    else:  # the public BurstProp's hidden burst probability is σ(v_A (1 − e)), without BurstCCN's 4
        for h in names[1:-1]:
            pops[h]["burst_gain"] = 1.0
    return {"name": f"twin_{case.name}",
            "task": {"type": "classification", "dataset": dataset, "batch_size": batch, "validation_fraction": 0.1},
            "populations": pops, "projections": projections,
            "plasticity": plasticity,
            "optimizer": {"type": "sgd", "lr": lr},
            "training": {"epochs": 1, "seed": 0},
            "recording": {"enabled": False}}


def random_data(n: int, n_in: int, classes: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    return {"x_train": rng.standard_normal((n, n_in)).astype(np.float32),
            "y_train": rng.integers(0, classes, n).astype(np.int64),
            "x_test": rng.standard_normal((64, n_in)).astype(np.float32),
            "y_test": rng.integers(0, classes, 64).astype(np.int64)}


def dendrisim_trainer(case: Case, args, out: Path):
    import dendrisim

    dataset = "digits" if args.data == "random" else "fashion_mnist"
    exp = dendrisim.load(model_dict(case, dataset=dataset, batch=args.batch, lr=args.lr, y_scale=args.y_scale,
                                    q_scale=args.q_scale))
    data = random_data(max(args.batch * (args.steps + 1), 256), 784, 10, args.seed) if args.data == "random" else None
    return dendrisim.Trainer(exp, out=out, data=data, overwrite=True)


def pairs(case: Case, trainer, ref: Reference) -> list[tuple[str, str, torch.Tensor, torch.Tensor]]:
    """``(label, kind, dendrisim tensor, reference tensor in dendrisim's layout)`` of every
    weight: kind W, b, Y or Q."""
    names, projs, out = population_names(case), trainer.network.projections, []
    for i, (a, b) in enumerate(zip(names, names[1:])):
        layer = ref.layers[i]
        out.append((f"{a}->{b}", "W", projs[f"{a}->{b}"].weight, layer.weight))
        out.append((f"{a}->{b}", "b", projs[f"{a}->{b}"].bias, layer.bias))
        if b != "out":
            above = names[i + 2]
            out.append((f"{above}:burst->{b}", "Y", projs[f"{above}:burst->{b}"].weight, ref.y_of(i)))
            if case.rule == "burstprop":
                continue
            out.append((f"{above}:event->{b}", "Q", projs[f"{above}:event->{b}"].weight, -layer.weight_Q.t()))
    return out


def copy_reference(case: Case, trainer, ref: Reference) -> None:
    """The reference's initial weights into dendrisim (shapes checked)."""
    with torch.no_grad():
        for label, kind, mine, theirs in pairs(case, trainer, ref):
            if mine.shape != theirs.shape:
                raise SystemExit(f"error: {label} ({kind}) is {list(mine.shape)} in dendrisim and "
                                 f"{list(theirs.shape)} in the reference")
            mine.copy_(theirs)


def differences(case: Case, trainer, ref: Reference) -> dict[str, float]:
    """The largest absolute difference of each kind of weight (W, b, Y, Q)."""
    worst = {"W": 0.0, "b": 0.0, "Y": 0.0, "Q": 0.0}
    for _, kind, mine, theirs in pairs(case, trainer, ref):
        worst[kind] = max(worst[kind], float((mine.detach() - theirs.detach()).abs().max()))
    return worst


def moved(case: Case, trainer, start: dict[str, torch.Tensor]) -> dict[str, float]:
    """The largest change of each kind of weight since the start (that the twin compares updates)."""
    worst = {"W": 0.0, "b": 0.0, "Y": 0.0, "Q": 0.0}
    for label, kind, mine in pairs_dendrisim(case, trainer):
        worst[kind] = max(worst[kind], float((mine.detach() - start[label]).abs().max()))
    return worst


def pairs_dendrisim(case: Case, trainer) -> list[tuple[str, str, torch.Tensor]]:
    names, projs, out = population_names(case), trainer.network.projections, []
    for i, (a, b) in enumerate(zip(names, names[1:])):
        out += [(f"{a}->{b}", "W", projs[f"{a}->{b}"].weight), (f"{a}->{b}.bias", "b", projs[f"{a}->{b}"].bias)]
        if b != "out":
            above = names[i + 2]
            out.append((f"{above}:burst->{b}", "Y", projs[f"{above}:burst->{b}"].weight))
            if case.rule != "burstprop":
                out.append((f"{above}:event->{b}", "Q", projs[f"{above}:event->{b}"].weight))
    return out


def batches(trainer, batch: int, steps: int, seed: int):
    """``steps`` batches ``(x, y)`` of the training split, in a seeded order."""
    x, y = trainer.task.train.x, trainer.task.train.y
    generator = torch.Generator().manual_seed(seed)
    per_pass = len(y) // batch  # a new order for every pass over the split
    for s in range(steps):
        if s % per_pass == 0:
            order = torch.randperm(len(y), generator=generator)
        ids = order[(s % per_pass) * batch:(s % per_pass + 1) * batch]
        yield x[ids], y[ids]


def setup(case: Case, args, classes, out: Path):
    torch.manual_seed(args.seed)
    trainer = dendrisim_trainer(case, args, out)
    n_in, n_out = int(np.prod(trainer.task.input_shape)), trainer.network.output.size
    torch.manual_seed(args.seed)
    ref = Reference(classes, case, n_in=n_in, n_out=n_out, lr=args.lr, lr_y=args.lr * args.y_scale,
                    lr_q=args.lr * args.q_scale)
    copy_reference(case, trainer, ref)
    return trainer, ref


def twin(case: Case, args, classes, out: Path) -> float:
    """Run ``case``; print a row per step; return the largest difference seen."""
    trainer, ref = setup(case, args, classes, out)
    start = {label: w.detach().clone() for label, _, w in pairs_dendrisim(case, trainer)}
    arch = "-".join(map(str, [784, *case.hidden, trainer.network.output.size]))
    q = "none" if case.rule == "burstprop" else case.q_mode + (" learning" if case.q_learning else "")
    print(f"\n{case.name}: {case.rule} {arch}, Y {case.y_mode}{' learning' if case.y_learning else ''}, Q {q}, "
          f"lr {args.lr:g}, lr_Y {args.lr * args.y_scale:g}, lr_Q {args.lr * args.q_scale:g}, batch {args.batch}, "
          f"{args.data} data")
    print(f"{'step':>4} {'loss':>9} {'|dW|':>9} {'|db|':>9} {'|dY|':>9} {'|dQ|':>9}   (max abs difference)")
    diff = differences(case, trainer, ref)
    worst = max(diff.values())
    print(f"{0:>4} {'':>9} " + " ".join(f"{diff[k]:9.2e}" for k in "WbYQ"))
    for s, (x, y) in enumerate(batches(trainer, args.batch, args.steps, args.seed), 1):
        t = torch.nn.functional.one_hot(y, ref.layers[-1].out_features).float()
        trainer.step(x, y)
        loss = ref.step(trainer.task.inputs(x).flatten(1), t)
        diff = differences(case, trainer, ref)
        worst = max(worst, *diff.values())
        print(f"{s:>4} {loss:9.5f} " + " ".join(f"{diff[k]:9.2e}" for k in "WbYQ"))
    change = moved(case, trainer, start)
    print(f"{'moved':>4} {'':>9} " + " ".join(f"{change[k]:9.2e}" for k in "WbYQ") +
          "   (largest change of each kind over the run)")
    return worst


# ---------------------------------------------------------------------- the speed
class Plain:
    """The same BurstCCN step in a few lines of plain torch (forward, sweep, updates, in
    place, nothing else): how fast the arithmetic alone runs, beside the two programs.
    Written here from the equations, in dendrisim's layout; checked against dendrisim's step."""

    def __init__(self, case: Case, trainer, *, lr: float, lr_q: float, p_b: float = 0.5):
        names, projs = population_names(case), trainer.network.projections
        self.W = [projs[f"{a}->{b}"].weight.detach().clone() for a, b in zip(names, names[1:])]
        self.b = [projs[f"{a}->{b}"].bias.detach().clone() for a, b in zip(names, names[1:])]
        self.Y = [projs[f"{a}:burst->{b}"].weight.detach().clone() for b, a in zip(names[1:-1], names[2:])]
        self.Q = [projs[f"{a}:event->{b}"].weight.detach().clone() for b, a in zip(names[1:-1], names[2:])]
        self.lr, self.lr_q, self.p_b = lr, lr_q, p_b

    def step(self, x: torch.Tensor, t: torch.Tensor) -> None:
        es = [x]
        for w, b in zip(self.W, self.b):
            es.append(torch.addmm(b, es[-1], w.t()).sigmoid_())
        e, n, p_b = es[-1], x.shape[0], self.p_b
        burst = (t - e).mul_(1 - e).add_(1).mul_(p_b).mul_(e)  # p e at the output
        errors, q_grads = [burst - p_b * e], []
        for i in range(len(self.Y) - 1, -1, -1):  # top-down: v_A = Y b_above + W_Q e_above
            e_above, e = es[i + 2], es[i + 1]
            v = torch.addmm(burst @ self.Y[i].t(), e_above, self.Q[i].t())
            q_grads.append((i, v.t() @ e_above))
            burst = (v * (1 - e)).mul_(4.0).sigmoid_().mul_(e)
            errors.append(burst - p_b * e)
        for i, err in enumerate(reversed(errors)):
            self.W[i].addmm_(err.t(), es[i], alpha=self.lr / n)
            self.b[i].add_(err.sum(0), alpha=self.lr / n)
        for i, g in q_grads:
            self.Q[i].sub_(g, alpha=self.lr_q / n)


def bench(args, classes, out: Path) -> int:
    torch.set_num_threads(1)
    case = CASES[args.bench_case]
    if case.rule != "burstccn" or case.y_learning or case.y_mode != "random_init":
        raise SystemExit(f"error: --bench-case {case.name}: the bench times burstccn with fixed random Y (Q learning "
                         "or not); choose q_learning or q_learning_deep")
    trainer, ref = setup(case, args, classes, out)
    plain = Plain(case, trainer, lr=args.lr, lr_q=args.lr * args.q_scale if case.q_learning else 0.0)
    x_all, y_all = trainer.task.train.x, trainer.task.train.y
    n = args.steps_per_round
    xs = [x_all[i * args.batch:(i + 1) * args.batch] for i in range(n)]
    ys = [y_all[i * args.batch:(i + 1) * args.batch] for i in range(n)]
    flat = [trainer.task.inputs(x).flatten(1).contiguous() for x in xs]
    ts = [torch.nn.functional.one_hot(y, trainer.network.output.size).to(flat[0].dtype) for y in ys]

    # the plain step is the same step: one step of each from the same weights
    trainer.step(xs[0], ys[0])
    plain.step(flat[0], ts[0])
    names = population_names(case)
    mine = [trainer.network.projections[f"{a}->{b}"].weight for a, b in zip(names, names[1:])]
    gap = max(float((a.detach() - b).abs().max()) for a, b in zip(mine, plain.W))
    if gap > args.tol:
        raise SystemExit(f"error: the plain torch step differs from dendrisim's by {gap:.2e} (> {args.tol:g})")

    def run_dendrisim() -> None:  # the training loop's step (dendrisim.runner.train_epoch)
        for x, y in zip(xs, ys):
            trainer.train_step(x, y)

    def run_api() -> None:  # the API's step: the same, after checking the batch (shape, dtype, NaN/Inf)
        for x, y in zip(xs, ys):
            trainer.step(x, y)

    def run_reference() -> None:
        for x, t in zip(flat, ts):
            ref.step(x, t)

    def run_plain() -> None:
        for x, t in zip(flat, ts):
            plain.step(x, t)

    contenders = [("dendrisim", run_dendrisim), ("reference", run_reference), ("plain", run_plain),
                  ("api step", run_api)]
    for _, fn in contenders:  # warm-up
        fn()
    times: dict[str, list[float]] = {label: [] for label, _ in contenders}
    for r in range(args.rounds):  # interleaved, the order rotating round by round
        for label, fn in contenders[r % 4:] + contenders[:r % 4]:
            t0 = time.perf_counter()
            fn()
            times[label].append((time.perf_counter() - t0) / (n * args.batch))
    med = {label: statistics.median(v) for label, v in times.items()}
    arch = "-".join(map(str, [784, *case.hidden, trainer.network.output.size]))
    print(f"{case.name} {arch}, batch {args.batch}, {args.rounds} interleaved rounds of {n} steps, "
          f"{torch.get_num_threads()} thread, torch {torch.__version__} (plain step = dendrisim's to {gap:.1e})")
    print(f"{'':>10} {'us/presentation (median)':>26} {'min':>9} {'max':>9}")
    for label, v in times.items():
        print(f"{label:>10} {med[label] * 1e6:26.2f} {min(v) * 1e6:9.2f} {max(v) * 1e6:9.2f}")
    for mine, other in (("dendrisim", "reference"), ("api step", "reference"), ("dendrisim", "plain")):
        ratios = [a / b for a, b in zip(times[mine], times[other])]
        fastest = min(times[mine]) / min(times[other])
        print(f"ratio {mine}/{other}: {med[mine] / med[other]:.3f} (medians), {fastest:.3f} (fastest rounds); "
              f"per round {statistics.median(ratios):.3f} median, {min(ratios):.3f}-{max(ratios):.3f}")
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--reference", type=Path, required=True, help="the neuralml/BurstCCN checkout (read, never copied)")
    ap.add_argument("--case", action="append", choices=sorted(CASES), help="cases to run (default: all)")
    ap.add_argument("--data", choices=["fmnist", "random"], default="fmnist",
                    help="the batches both networks see: Fashion-MNIST through dendrisim's loader, or random inputs")
    ap.add_argument("--steps", type=int, default=12, help="SGD steps of each twin run (default 12)")
    ap.add_argument("--batch", type=int, default=32, help="batch size (default 32, the public code's)")
    ap.add_argument("--lr", type=float, default=0.1, help="SGD learning rate of the forward weights (default 0.1)")
    ap.add_argument("--q-scale", type=float, default=0.1, help="lr_scale of Q (the reference's lr_Q = lr × this)")
    ap.add_argument("--y-scale", type=float, default=0.1, help="lr_scale of Y when it learns")
    ap.add_argument("--tol", type=float, default=1e-5,
                    help="the largest difference of W, b, Y and Q allowed at any step (default 1e-5)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the shared initial weights and batches")
    ap.add_argument("--bench", action="store_true", help="time a step per presentation of both on one thread")
    ap.add_argument("--bench-case", choices=sorted(CASES), default="q_learning", help="the case --bench times")
    ap.add_argument("--rounds", type=int, default=7, help="--bench: interleaved rounds (default 7)")
    ap.add_argument("--steps-per-round", type=int, default=20, help="--bench: steps timed per round (default 20)")
    args = ap.parse_args(argv)
    if args.steps < 1 or args.batch < 1:
        ap.error("--steps and --batch must be at least 1")
    classes = import_reference(args.reference.resolve())
    with tempfile.TemporaryDirectory(prefix="twin_burstccn_") as tmp:
        if args.bench:
            return bench(args, classes, Path(tmp) / "bench")
        summary = {}
        for name in args.case or list(CASES):
            summary[name] = twin(CASES[name], args, classes, Path(tmp) / name)
    print(f"\n{'case':<21} {'max |difference|':>17}  over {args.steps} steps (tolerance {args.tol:g})")
    for name, worst in summary.items():
        print(f"{name:<21} {worst:17.2e}  {'ok' if worst <= args.tol else 'FAIL'}")
    return 0 if all(w <= args.tol for w in summary.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
