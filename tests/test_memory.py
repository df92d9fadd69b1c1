"""The memory check (issue 20, item 10): the estimate counts everything a run holds, on the
meta device, and is refused against the smallest limit the kernel enforces."""
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from conftest import model
from dendrisim import memory
from dendrisim.builder import build, check_memory, memory_estimate
from dendrisim.errors import ConfigError
from dendrisim.tasks import TASKS

REPO = Path(__file__).resolve().parent.parent
CLASSIFICATION = TASKS.get("classification")


def test_the_estimate_counts_each_part_exactly_where_it_can():
    exp = model(["optimizer.type=adam", "task.batch_size=16"])
    parts = memory_estimate(exp, CLASSIFICATION)
    built = build(exp, device="cpu")
    network, rule = built.network, built.rule
    params = sum(p.numel() for p in network.parameters())
    assert parts["weights"] == 4 * params
    assert parts["feedback"] == 4 * sum(t.numel() for t in [*rule.parameters(), *rule.buffers()]) > 0
    neurons = sum(p.size for p in network.pyramidal())
    assert parts["compartments"] == 4 * 16 * (5 * neurons + network.input.size)
    assert parts["recording"] > 0 and parts["dataset"] > 0
    sgd = memory_estimate(model(["optimizer.type=sgd", "task.batch_size=32"]), CLASSIFICATION)
    assert sgd["optimizer"] * 3 == parts["optimizer"]  # Adam keeps two moments besides the update
    assert sgd["compartments"] == 2 * parts["compartments"]
    assert memory_estimate(model(["recording.enabled=false"]), CLASSIFICATION)["recording"] == 0


def test_a_run_over_the_limit_is_refused_with_the_estimate_and_the_limit(monkeypatch):
    monkeypatch.setattr(memory, "READERS", {"a fake limit": lambda: 200_000, "no such limit": lambda: None})
    with pytest.raises(ConfigError) as info:
        build(model(["populations.h1.size=3000", "populations.h2.size=3000"]), device="cpu")
    msg = str(info.value)
    assert msg.startswith("test.yaml: populations: this run needs about") and "than the 0.2 MiB available (a fake limit)" in msg
    assert "weights 35.2 MiB" in msg and "the largest part is optimizer" in msg
    monkeypatch.setattr(memory, "READERS", {"a fake limit": lambda: 10 * 2**30})
    build(model(), device="cpu")  # fits


def test_the_smallest_limit_wins(monkeypatch):
    monkeypatch.setattr(memory, "READERS", {"a": lambda: 5, "b": lambda: 3, "c": lambda: None})
    assert memory.available() == (3, "b")
    monkeypatch.setattr(memory, "READERS", {"c": lambda: None})
    assert memory.available() is None


def test_cgroup_limits_v2_and_v1(tmp_path):
    (tmp_path / "self").write_text("0::/user.slice/run\n")
    v2 = tmp_path / "v2" / "user.slice" / "run"
    v2.mkdir(parents=True)
    (v2 / "memory.max").write_text("1000000\n")
    (v2 / "memory.current").write_text("250000\n")
    assert memory.cgroup_free(str(tmp_path / "v2"), str(tmp_path / "self")) == 750_000
    (v2 / "memory.max").write_text("max\n")
    assert memory.cgroup_free(str(tmp_path / "v2"), str(tmp_path / "self")) is None
    (tmp_path / "self").write_text("12:cpu,cpuacct:/x\n4:memory:/job\n")
    v1 = tmp_path / "v1" / "memory" / "job"
    v1.mkdir(parents=True)
    (v1 / "memory.limit_in_bytes").write_text("4096000\n")
    (v1 / "memory.usage_in_bytes").write_text("96000\n")
    assert memory.cgroup_free(str(tmp_path / "v1"), str(tmp_path / "self")) == 4_000_000
    (v1 / "memory.limit_in_bytes").write_text(str(2**63 - 4096) + "\n")  # v1's "no limit"
    assert memory.cgroup_free(str(tmp_path / "v1"), str(tmp_path / "self")) is None
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal: 100 kB\nMemAvailable:       2048 kB\n")
    assert memory.meminfo_available(str(meminfo)) == 2048 * 1024


def test_a_real_address_space_limit_refuses_a_large_population_in_a_subprocess(tmp_path):
    """Under ulimit -v a population too large for it is refused before any allocation,
    with exit 2 and the limit named (without the check it died in an allocation)."""
    code = f"""
import resource, sys
sys.path.insert(0, {str(REPO)!r})
from dendrisim.cli import main
import torch  # noqa: F401  (importing dendrisim costs no torch now: load it before the limit is measured)
vm = next(int(l.split()[1]) * 1024 for l in open('/proc/self/status') if l.startswith('VmSize:'))
resource.setrlimit(resource.RLIMIT_AS, (vm + 2**30, resource.RLIM_INFINITY))
sys.exit(main([{str(REPO / 'models' / 'dll_mlp_digits.yaml')!r}, '--dry-run', '--out', {str(tmp_path / 'run')!r},
               '--set', 'populations.h1.size=30000', '--set', 'populations.h2.size=30000']))
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                          env={"PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr and "RLIMIT_AS" in proc.stderr and "this run needs about" in proc.stderr
    assert not (tmp_path / "run").exists()


def test_a_task_that_cannot_say_its_shapes_skips_the_check(monkeypatch):
    class Opaque(CLASSIFICATION):
        @classmethod
        def data_spec(cls, options, data_root=None):
            raise NotImplementedError

    monkeypatch.setattr(memory, "READERS", {"a fake limit": lambda: 1})
    assert check_memory(model(), Opaque, device="cpu") is None
    with pytest.raises(ConfigError, match="this run needs about"):
        check_memory(model(), CLASSIFICATION, device="cpu")
