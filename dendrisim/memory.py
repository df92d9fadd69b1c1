"""Will a run fit? Its memory, estimated before anything is allocated, against the memory
this process may actually use.

The estimate (:func:`estimate`) counts what a run holds from its network and rule, as
:func:`dendrisim.builder.memory_estimate` builds them on PyTorch's ``meta`` device (tensors
with shapes but no storage):

- ``weights``: the network's parameters (embedding tables included);
- ``feedback``: the rule's own tensors (feedback weights);
- ``optimizer``: an update per learnable value plus the optimizer's state (Adam: two
  moments; momentum: one);
- ``compartments``: what each neuron model declares a neuron holds
  (``bytes_per_neuron``: a pyramidal neuron's soma, basal, apical, rate and error, an
  interneuron's soma, dendrite, nudging, rate and error, the input's rate) at the batch size
  (over the sequence for recurrent networks);
- ``selection``: with ``training.select_best`` (model selection keeps the best epoch's
  weights, :mod:`dendrisim.observers.selection`), two copies of the network's and the
  rule's state: the best epoch's, and at the end of the run the last epoch's, set aside
  while the best is put back;
- ``recording``: the recorder's host buffers (``flush_every`` records);
- ``dataset``: the task's tensors (a float copy and the raw copy of every sample).

:func:`available` reads the limits the kernel enforces: free memory
(``MemAvailable`` of ``/proc/meminfo``), the cgroup's limit less its usage (v2
``memory.max``, v1 ``memory.limit_in_bytes``) and the address-space limit ``RLIMIT_AS``
(``ulimit -v``) less the address space the process maps already. :func:`check` refuses a
run whose estimate exceeds the smallest of them with a one-paragraph error giving both.
"""
from __future__ import annotations

import math
import os
import resource
from pathlib import Path
from typing import Callable, Optional

import torch

from .errors import ConfigError

GiB = 2**30
#: bytes of one float32 value
FLOAT = 4
#: optimizer state values per learnable value (besides the update itself)
OPTIMIZER_STATE = {"sgd": 0, "momentum": 1, "adam": 2, "adamw": 2}
#: a v1 cgroup without a limit reports a number near 2**63
_UNLIMITED = 1 << 60


# ------------------------------------------------------------------------- the limits
def meminfo_available(path: str = "/proc/meminfo") -> Optional[int]:
    """``MemAvailable`` in bytes (None where the file or the line is missing)."""
    try:
        for line in Path(path).read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _read_int(path: Path) -> Optional[int]:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None  # "max" (v2) has no limit


def cgroup_free(root: str = "/sys/fs/cgroup", self_cgroup: str = "/proc/self/cgroup") -> Optional[int]:
    """The process's cgroup memory limit less its current usage, in bytes (v2 ``memory.max`` and
    ``memory.current``, else v1 ``memory.limit_in_bytes`` and ``memory.usage_in_bytes``); None
    without a limit."""
    try:
        lines = Path(self_cgroup).read_text().splitlines()
    except OSError:
        lines = []
    base = Path(root)
    for line in lines:
        hier, controllers, path = (line.split(":", 2) + ["", ""])[:3]
        rel = path.lstrip("/")
        if hier == "0" and controllers == "":  # v2: the unified hierarchy
            for folder in (base / rel, base):
                limit = _read_int(folder / "memory.max")
                if limit is not None:
                    used = _read_int(folder / "memory.current") or 0
                    return max(0, limit - used)
        elif "memory" in controllers.split(","):  # v1
            for folder in (base / "memory" / rel, base / "memory"):
                limit = _read_int(folder / "memory.limit_in_bytes")
                if limit is not None and limit < _UNLIMITED:
                    used = _read_int(folder / "memory.usage_in_bytes") or 0
                    return max(0, limit - used)
    return None


def address_space_free(status: str = "/proc/self/status") -> Optional[int]:
    """``RLIMIT_AS`` less the address space the process maps now (``VmSize``); None without a limit."""
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    if soft == resource.RLIM_INFINITY:
        return None
    used = 0
    try:
        for line in Path(status).read_text().splitlines():
            if line.startswith("VmSize:"):
                used = int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return max(0, soft - used)


#: name -> reader of one limit in bytes (None: no such limit here); tests replace them
READERS: dict[str, Callable[[], Optional[int]]] = {
    "free memory (MemAvailable in /proc/meminfo)": meminfo_available,
    "the cgroup's memory limit less its usage": cgroup_free,
    "the address-space limit RLIMIT_AS (ulimit -v) less what the process maps": address_space_free,
}


def available() -> Optional[tuple[int, str]]:
    """``(bytes, what limits them)``: the smallest of the limits that apply; None if none is known."""
    known = [(value, name) for name, read in READERS.items() if (value := read()) is not None]
    return min(known) if known else None


# ------------------------------------------------------------------------ the estimate
def estimate(experiment, network, rule, *, train_samples: int, trace_steps: Optional[list[int]] = None
             ) -> dict[str, int]:
    """Bytes each part of a run holds (see the module's docstring), from its ``network`` and
    ``rule`` (built on the ``meta`` device, say), the size of the training split, and the
    states of a presentation the settling scheme keeps in a record (``trace_steps``)."""
    from .recording.plan import estimate_bytes

    options, cfg = experiment.task, experiment.config
    params = list(network.parameters())
    learnable = sum(p.numel() for p in params if p.requires_grad)
    own = [*rule.parameters(), *rule.buffers()] if isinstance(rule, torch.nn.Module) else []
    rule_values = sum(t.numel() for t in own)
    learnable += sum(t.numel() for t in own if t.requires_grad)
    batch = options.batch_size
    steps = network.time_steps or 1
    parts = {
        "weights": sum(p.numel() for p in params) * FLOAT,
        "feedback": rule_values * FLOAT,
        "optimizer": learnable * (1 + OPTIMIZER_STATE.get(cfg.optimizer.type, 2)) * FLOAT,
        # each neuron model says what a neuron of it holds (pyramidal: five values, the input one)
        "compartments": sum(p.bytes_per_neuron(FLOAT) * p.size for p in network.populations.values()) * batch * steps,
        "selection": 2 * (state_values(network) + rule_values) * FLOAT if cfg.training.select_best else 0,
        "recording": 0,
        "dataset": 0,
    }
    if cfg.recording.enabled:
        sizes = estimate_bytes(cfg.recording, network, rule, batch_size=batch, steps=0, epochs=1,
                               trace_steps=trace_steps)
        parts["recording"] = cfg.recording.flush_every * (sizes["bytes_per_record"] + sizes["bytes_per_weight_record"])
    held_out = 1 / max(1e-9, 1 - getattr(options, "validation_fraction", 0.0)) * 1.4  # validation and test parts
    parts["dataset"] = math.ceil(train_samples * held_out) * math.prod(network.input.shape) * (FLOAT + 4)
    return parts


def state_values(network) -> int:
    """Values in the network's ``state_dict``: its parameters and buffers (what a copy of its
    weights holds)."""
    return sum(t.numel() for t in [*network.parameters(), *network.buffers()])


def size(n: int) -> str:
    """``n`` bytes in GiB, or MiB below one GiB."""
    return f"{n / GiB:,.2f} GiB" if n >= GiB else f"{n / 2**20:,.1f} MiB"


def describe(parts: dict[str, int]) -> str:
    return ", ".join(f"{name} {size(value)}" for name, value in parts.items() if value)


def check(experiment, parts: dict[str, int], *, device) -> None:
    """Refuse a run whose estimate ``parts`` exceeds the memory available (host memory; on a
    GPU its free memory too), naming both."""
    device = torch.device(device)
    on_gpu = device.type == "cuda"
    host = parts["dataset"] + parts["recording"] if on_gpu else sum(parts.values())
    limit = available()
    largest = max(parts, key=parts.get)
    where = {"weights": "populations", "feedback": "populations", "optimizer": "populations",
             "compartments": "task.batch_size", "selection": "training.select_best", "recording": "recording",
             "dataset": "task"}[largest]
    if limit is not None and host > limit[0]:
        raise ConfigError(
            f"this run needs about {size(host)} of host memory ({describe(parts)}), more than the "
            f"{size(limit[0])} available ({limit[1]}); the largest part is {largest}: use smaller "
            "populations, a smaller task.batch_size or a lighter recording", file=experiment.file, path=where)
    if on_gpu and torch.cuda.is_available():
        free, _ = torch.cuda.mem_get_info(device)
        need = sum(parts.values()) - parts["recording"]
        if need > free:
            raise ConfigError(
                f"this run needs about {size(need)} on {device} ({describe(parts)}), more than its "
                f"{size(free)} free; the largest part is {largest}", file=experiment.file, path=where)
