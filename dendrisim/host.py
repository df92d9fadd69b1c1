"""What machine a measurement ran on, for the reports of benchmarks and comparisons."""
from __future__ import annotations

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


def set_threads(n: int) -> None:
    """torch's intra-op CPU threads (``torch.set_num_threads``): ``--threads`` and the API's
    ``threads=``. On a machine shared with other jobs, 1 avoids oversubscription."""
    from .errors import ConfigError

    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ConfigError(f"{n!r} threads: give a whole number of 1 or more", path="--threads")
    import torch

    torch.set_num_threads(n)
