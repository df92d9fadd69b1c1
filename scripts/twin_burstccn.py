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
and Q. The reference's Q (and Y) learning rate is ``lr × lr_scale`` of dendrisim's Q (Y)
projection.

``--bench``: the time of one training step (forward, settle/backward, updates) per
presentation of both on one CPU thread, on the same network and batch size, in interleaved
rounds; dendrisim's step is the training loop's (``dendrisim.Trainer.step``), the reference's
``forward``, ``backward``, ``loss`` and ``update_weights`` as its trainer runs them.

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


CASES = {c.name: c for c in (
    Case("q_learning", (100, 100)),
    Case("q_learning_deep", (100, 100, 100, 100, 100)),
    Case("y_and_q_learning", (100, 100), y_learning=True),
    Case("symmetric", (100, 100), y_mode="symmetric_init"),
    Case("tied", (100, 100), y_mode="tied", q_mode="tied", q_learning=False),
)}

FEEDBACK = {"random_init": "random", "symmetric_init": "symmetric", "tied": "tied"}
CANCEL = {"symmetric_init": "symmetric", "tied": "tied"}


# ---------------------------------------------------------------------- the reference
def import_reference(folder: Path):
    """``(BurstCCN, SGDOptimiser)`` of the public code in ``folder``, with a stub wandb."""
    if not (folder / "modules" / "networks_burstccn.py").is_file():
        raise SystemExit(f"error: --reference {folder}: no modules/networks_burstccn.py there; give the folder of "
                         "a neuralml/BurstCCN checkout")
    sys.modules.setdefault("wandb", types.ModuleType("wandb"))
    sys.path.insert(0, str(folder))
    try:
        from modules.networks_burstccn import BurstCCN
        from modules.optimisers import SGDOptimiser
    finally:
        sys.path.remove(str(folder))
    return BurstCCN, SGDOptimiser


class Reference:
    """The public BurstCCN MLP and its trainer's step (forward, backward, loss, update)."""

    def __init__(self, classes, case: Case, *, n_in: int, n_out: int, lr: float, lr_y: float, lr_q: float):
        BurstCCN, SGDOptimiser = classes
        n = len(case.hidden)
        self.model = BurstCCN(n_inputs=n_in, n_outputs=n_out, p_baseline=0.5, n_hidden_layers=n,
                              n_hidden_units=case.hidden[0], Y_mode=case.y_mode, Q_mode=case.q_mode, Y_scale=1.0,
                              Q_scale=1.0, Y_learning=case.y_learning, Q_learning=case.q_learning, device="cpu")
        self.optimiser = SGDOptimiser()
        self.lrs, self.lrs_y, self.lrs_q = [lr] * (n + 1), [lr_y] * n + [None], [lr_q] * n + [None]

    @property
    def layers(self):
        return self.model.classification_layers

    def step(self, x: torch.Tensor, t: torch.Tensor) -> float:
        out = self.model(x)
        self.model.backward(t)
        loss = self.model.loss(out, t)
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
                            "init": {"normal": {"std": 1.0}}, "learnable": case.y_learning, "lr_scale": y_scale})
        projections.append({"from": above, "to": below, "compartment": "apical", "reads": "event",
                            "learnable": case.q_learning, "lr_scale": q_scale})
    return {"name": f"twin_{case.name}",
            "task": {"type": "classification", "dataset": dataset, "batch_size": batch, "validation_fraction": 0.1},
            "populations": pops, "projections": projections,
            "plasticity": {"rule": "burstccn", "feedback": FEEDBACK[case.y_mode], "cancel": CANCEL[case.q_mode]},
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
            out.append((f"{above}:burst->{b}", "Y", projs[f"{above}:burst->{b}"].weight, layer.weight_Y.t()))
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
            out += [(f"{above}:burst->{b}", "Y", projs[f"{above}:burst->{b}"].weight),
                    (f"{above}:event->{b}", "Q", projs[f"{above}:event->{b}"].weight)]
    return out


def batches(trainer, batch: int, steps: int, seed: int):
    """``steps`` batches ``(x, y)`` of the training split, in a seeded order."""
    x, y = trainer.task.train.x, trainer.task.train.y
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))
    for s in range(steps):
        ids = order[s * batch:(s + 1) * batch]
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
    print(f"\n{case.name}: {arch}, Y {case.y_mode}{' learning' if case.y_learning else ''}, "
          f"Q {case.q_mode}{' learning' if case.q_learning else ''}, lr {args.lr:g}, "
          f"lr_Y {args.lr * args.y_scale:g}, lr_Q {args.lr * args.q_scale:g}, batch {args.batch}, {args.data} data")
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
def bench(args, classes, out: Path) -> int:
    torch.set_num_threads(1)
    case = CASES[args.bench_case]
    trainer, ref = setup(case, args, classes, out)
    x_all, y_all = trainer.task.train.x, trainer.task.train.y
    n = args.steps_per_round
    xs = [x_all[i * args.batch:(i + 1) * args.batch] for i in range(n)]
    ys = [y_all[i * args.batch:(i + 1) * args.batch] for i in range(n)]
    flat = [trainer.task.inputs(x).flatten(1).contiguous() for x in xs]
    ts = [torch.nn.functional.one_hot(y, trainer.network.output.size).float() for y in ys]

    def mine() -> None:
        for x, y in zip(xs, ys):
            trainer.step(x, y)

    def theirs() -> None:
        for x, t in zip(flat, ts):
            ref.step(x, t)

    mine(), theirs()  # warm-up
    times = {"dendrisim": [], "reference": []}
    for r in range(args.rounds):
        for label, fn in (("dendrisim", mine), ("reference", theirs)) if r % 2 == 0 else \
                (("reference", theirs), ("dendrisim", mine)):
            t0 = time.perf_counter()
            fn()
            times[label].append((time.perf_counter() - t0) / (n * args.batch))
    d, p = statistics.median(times["dendrisim"]), statistics.median(times["reference"])
    ratios = [a / b for a, b in zip(times["dendrisim"], times["reference"])]
    arch = "-".join(map(str, [784, *case.hidden, trainer.network.output.size]))
    print(f"{case.name} {arch}, batch {args.batch}, {args.rounds} interleaved rounds of {n} steps, "
          f"{torch.get_num_threads()} thread, torch {torch.__version__}")
    print(f"{'':>10} {'us/presentation (median)':>26} {'min':>9} {'max':>9}")
    for label, med in (("dendrisim", d), ("reference", p)):
        print(f"{label:>10} {med * 1e6:26.2f} {min(times[label]) * 1e6:9.2f} {max(times[label]) * 1e6:9.2f}")
    print(f"ratio dendrisim/reference: {d / p:.3f} (medians); per round {statistics.median(ratios):.3f} median, "
          f"{min(ratios):.3f}-{max(ratios):.3f}")
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--reference", type=Path, required=True, help="the neuralml/BurstCCN checkout (read, never copied)")
    ap.add_argument("--case", action="append", choices=sorted(CASES), help="cases to run (default: all)")
    ap.add_argument("--data", choices=["fmnist", "random"], default="fmnist")
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=0.1)
    ap.add_argument("--q-scale", type=float, default=0.1, help="lr_scale of Q (the reference's lr_Q = lr × this)")
    ap.add_argument("--y-scale", type=float, default=0.1, help="lr_scale of Y when it learns")
    ap.add_argument("--tol", type=float, default=1e-5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--bench", action="store_true", help="time a step per presentation of both on one thread")
    ap.add_argument("--bench-case", choices=sorted(CASES), default="q_learning")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--steps-per-round", type=int, default=20)
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
    print(f"\n{'case':<18} {'max |difference|':>17}  over {args.steps} steps (tolerance {args.tol:g})")
    for name, worst in summary.items():
        print(f"{name:<18} {worst:17.2e}  {'ok' if worst <= args.tol else 'FAIL'}")
    return 0 if all(w <= args.tol for w in summary.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
