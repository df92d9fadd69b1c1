"""Generate text from a trained char-level language model (``dendrisim sample``, ``scripts/sample.py``).

The run directory has what it needs: ``model.yaml`` (the network), ``weights.pt`` (the
selected epoch's weights; for a stopped run, the last ``checkpoint.pt``) and ``task.json`` (the character set), so the training text
is not read again. The network steps one character at a time, carrying the rates of
every population that a recurrent projection reads from one step to the next; the
next character is drawn from ``softmax(soma / temperature)`` of the output.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Optional, Sequence

import torch

from .errors import DendrisimError
from .paths import path_arg


def generate(run_dir: Path, *, length: int, temperature: float = 1.0, prime: str = "\n", seed: int = 0,
             device: str = "cpu") -> str:
    from .builder import DataSpec, build_network, load_experiment

    run_dir = Path(run_dir)
    for name in ("model.yaml", "task.json"):
        if not (run_dir / name).is_file():
            raise DendrisimError(f"{run_dir / name} not found; sample from the directory of a charlm run")
    weights = run_dir / "weights.pt"
    if not weights.is_file():  # a stopped run: its last checkpoint
        weights = run_dir / "checkpoint.pt"
        if not weights.is_file():
            raise DendrisimError(f"{run_dir} has neither weights.pt (a finished run) nor checkpoint.pt (a stopped one)")
    experiment = load_experiment(run_dir / "model.yaml")
    if experiment.task.type != "charlm":
        raise DendrisimError(f"{run_dir} is a {experiment.task.type} run; sampling needs a charlm model")
    if temperature <= 0:
        raise DendrisimError(f"--temperature {temperature} must be > 0")
    info = json.loads((run_dir / "task.json").read_text())
    chars, mode = info["chars"], info["input"]
    index = {c: i for i, c in enumerate(chars)}
    unknown = sorted(set(prime) - set(chars))
    if unknown:
        raise DendrisimError(f"--prime has characters the model never saw: {''.join(unknown)!r}")
    V = len(chars)
    from .host import device_of

    dev = device_of(device)
    net = build_network(experiment, DataSpec((V,) if mode == "onehot" else (1,), V,
                                             vocabulary=(V, experiment.task.embedding_dim) if mode == "ids" else None))
    from .rundir import load_tensors

    state = load_tensors(weights, what="weights" if weights.name == "weights.pt" else "checkpoint")
    net.load_state_dict(state["network"])
    net.to(dev).eval()
    carried = {p.source for p in net.projections.values() if p.kind == "recurrent"}
    gen = torch.Generator(device=dev).manual_seed(seed)

    def encode(ids: torch.Tensor) -> torch.Tensor:  # [1, time]
        return torch.nn.functional.one_hot(ids, V).float() if mode == "onehot" else ids.unsqueeze(-1)

    out = list(prime)
    with torch.no_grad():
        state = net.free_state(encode(torch.tensor([[index[c] for c in prime]], device=dev)))
        for _ in range(length):
            logits = state.output.soma[-1, 0] / temperature
            nxt = int(torch.multinomial(torch.softmax(logits.double(), -1), 1, generator=gen))
            out.append(chars[nxt])
            last = {name: state[name].rate[-1] for name in carried}
            state = net.free_state(encode(torch.tensor([[nxt]], device=dev)), initial=last)
    return "".join(out)


def parser(prog: str = "sample.py") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run_dir", type=path_arg("RUN_DIR"), help="the run directory of a trained charlm model")
    p.add_argument("--length", type=int, default=500, help="characters to generate after the prime")
    p.add_argument("--temperature", type=float, default=1.0, help="< 1: more likely characters; > 1: more varied")
    p.add_argument("--prime", default="\n", help="text to start from (default a newline)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random draws (default: 0)")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto (default: cpu)")
    return p


def main(argv: Optional[Sequence[str]] = None, *, prog: str = "sample.py") -> int:
    args = parser(prog).parse_args(argv)
    try:
        print(generate(args.run_dir, length=args.length, temperature=args.temperature, prime=args.prime,
                       seed=args.seed, device=args.device))
    except DendrisimError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0
