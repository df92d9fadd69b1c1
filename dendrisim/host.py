"""The machine: what a measurement ran on (for the reports of benchmarks and comparisons),
the device a command trains on (``--device``) and torch's CPU threads (``--threads``)."""
from __future__ import annotations

import os
import platform


def cpu_name() -> str:
    """The CPU's model name (from /proc/cpuinfo on Linux), else what platform knows."""
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "?"


#: the device types dendrisim trains on (``--device``), besides ``auto``
DEVICE_TYPES = ("cpu", "cuda")


def device_of(name: str) -> "torch.device":
    """The device ``--device name`` means: ``cpu``, ``cuda``, ``cuda:N`` (a GPU this machine
    has) or ``auto`` (cuda when there is one). Anything else (``mps``, ``meta``, a misspelling)
    is a ConfigError listing what is allowed, before anything is built on it."""
    import torch

    from .errors import ConfigError

    allowed = "use cpu, cuda, cuda:N or auto"
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError, ValueError):
        raise ConfigError(f"--device {name!r} is not a device; {allowed}") from None
    if device.type not in DEVICE_TYPES:
        raise ConfigError(f"--device {name}: dendrisim trains on {' or '.join(DEVICE_TYPES)} devices only, not "
                          f"{device.type}; {allowed}")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"--device {name}: no CUDA device is available here; use cpu or auto")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        count = torch.cuda.device_count()
        raise ConfigError(f"--device {name}: this machine has {count} CUDA device{'s' if count != 1 else ''} "
                          f"(cuda:0 to cuda:{count - 1})")
    return device


def max_threads() -> int:
    """The most ``--threads`` accepted: four per CPU core of this machine (more only adds
    contention; far more makes the OpenMP runtime crash)."""
    return 4 * (os.cpu_count() or 1)


def set_threads(n: int) -> None:
    """torch's intra-op CPU threads (``torch.set_num_threads``): ``--threads`` and the API's
    ``threads=``, from 1 to :func:`max_threads`. On a machine shared with other jobs, 1 avoids
    oversubscription."""
    from .errors import ConfigError

    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ConfigError(f"{n!r} threads: give a whole number of 1 or more", path="--threads")
    if n > max_threads():
        raise ConfigError(f"{n} threads: this machine has {os.cpu_count()} CPU cores; give 1 to {max_threads()} "
                          "(four per core at most)", path="--threads")
    import torch

    torch.set_num_threads(n)
