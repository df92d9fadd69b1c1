"""The attacks of issue 29 on the whole stack: generators for its nine classes.

Imported by ``tests/test_fuzz_stack.py`` (its fixtures, oracle and counts); not collected by
itself (its name does not start with ``test_``). Each test below is one kind of case; the
issue's class it attacks is in ``test_fuzz_stack.KIND_CLASS``:

- ``code`` (1): pickles that would create a marker file if unpickled, in every file a run
  reads (a gensim ``.kv`` vectors file and its ``.npy``, ``checkpoint.pt``, ``weights.pt``
  through ``--resume`` and ``sample``, the Tiny ImageNet cache, CIFAR batches), and a
  ``run.json`` naming a plugin that creates a marker when imported, then ``--resume``
  without ``--plugin``; oracle: the marker never appears;
- ``symlink`` (2): symlinks (to a victim run's files, dangling, to a folder, to themselves)
  and hard links planted in a new ``--out`` folder, or in a copied run under ``--resume``,
  under every file name a run writes; oracle: the victim never changes, a dangling target
  is never created;
- ``lock`` (3): a live run's ``run.lock`` deleted, renamed or replaced, then a second run
  with ``--overwrite`` (subprocesses); oracle: the second is refused, or the folder ends as
  one of the two runs' unbroken results, never a mix;
- ``hooks`` and ``observer`` (4): plugin rules whose hooks raise or return odd values (a
  numpy array, a Decimal, an object, NaN, a huge string, ...) and observers (Python API)
  that raise or put odd values into the metrics row; oracle: a one-paragraph error, or a
  run whose checkpoint reads back and resumes (exit 0);
- ``bitflip`` (5): bits flipped at random offsets of ``checkpoint.pt`` and ``weights.pt``
  (anywhere, or inside a stored tensor), then ``--resume``; oracle: a one-paragraph error
  or a run bit-identical (test metrics and ``weights.pt``) to the uninterrupted one;
- ``memory`` (6): a run under an address-space limit (``RLIMIT_AS``, a subprocess); oracle:
  exit 0 or a one-paragraph error, never a traceback or a signal;
- ``early`` (7): a write fails (ENOSPC, EIO) before the first checkpoint; oracle:
  ``--resume`` then finishes the run (exit 0) as the unbroken run ended;
- ``paths`` (8): over-long names and paths (ENAMETOOLONG), symlink loops, read-only
  folders, ``/proc``, ``/dev`` and FIFO paths, for every command and option taking a path;
- ``codec`` (8): ``encoding:`` values that are no text encodings (rot13, base64, zlib, uu,
  punycode, hex, bz2, ...) for every task reading text;
- ``headers`` (8): word-vector headers claiming 10^12 words, IDX dimensions that overflow,
  image folders with decompression bombs, mismatched sizes, binary ``wnids.txt``, damaged
  caches, CIFAR and SVHN files, ``task.columns`` lists;
- ``device`` (8): odd ``--device`` (mps, meta, cuda:99, garbage), ``--threads`` (0, -1,
  100000: subprocesses, a segfault must not take the fuzzer down) and optimizer options
  torch refuses;
- ``results`` (9): ``dendrisim results --update`` with a damaged ``results.json``, a page
  without or with broken markers, ``--out ''``;
- ``wording`` (9): errors that must name the right problem (``patience: 0``,
  ``alignment.every: 0``, ``plot`` into a folder it cannot write, ``--out ''``).
"""
from __future__ import annotations

import contextlib
import copy
import errno
import gzip
import io
import json
import os
import pickle
import random
import shutil
import signal
import stat
import struct
import time
import zipfile
import zlib
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import yaml

import test_fuzz_stack as fz
from test_fuzz_stack import BASE, GOOD, SEED, Outcome, check_failures, readable, record, run_cli, scale


# ------------------------------------------------------------------------ helpers
class _Payload:
    """Unpickled, it creates the file ``marker`` (the code a data file must never run)."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (exec, (f"open({self.marker!r}, 'w').close()",))


def payload(marker, protocol: int = 2) -> bytes:
    return pickle.dumps(_Payload(marker), protocol=protocol)


def torch_zip(marker) -> bytes:
    """A file in torch.save's zip layout whose data.pkl is the payload."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as z:
        z.writestr("archive/data.pkl", payload(marker, 2))
        z.writestr("archive/byteorder", "little")
        z.writestr("archive/version", "3\n")
    return buf.getvalue()


def npy_payload(marker) -> bytes:
    """An .npy file of an object array: np.load(allow_pickle=True) runs the payload."""
    buf = io.BytesIO()
    np.save(buf, np.array([_Payload(marker), 1], dtype=object), allow_pickle=True)
    return buf.getvalue()


def bad(kind: str, case: str, outcome: Outcome, label: str, detail: str = "") -> None:
    """Count a case the oracle refuses under a short ``label`` (the counts' outcome), its details with the case."""
    record(kind, f"{case} [{detail}]" if detail else case, outcome, extra=label)


def rbytes(rng: random.Random, n: int) -> bytes:
    """n random bytes from the case's generator (so that a seed repeats its cases)."""
    return bytes(rng.randrange(256) for _ in range(n))


def last_line(outcome: Outcome) -> str:
    return ((outcome.err or outcome.out).strip().splitlines() or [""])[-1][:300]


def markers_in(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


def run_cmd(argv: list, *, limit: float) -> Outcome:
    """``dendrisim COMMAND ...`` (``dendrisim.commands.main``) in this process."""
    return run_cli(argv, limit=limit, entry="commands")


def model_file(folder: Path, name: str, data: dict) -> Path:
    path = folder / name
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def fresh_copy(src: Path, dst: Path) -> Path:
    shutil.rmtree(dst, ignore_errors=True)
    shutil.copytree(src, dst, symlinks=True)
    (dst / "run.lock").unlink(missing_ok=True)
    return dst


def weights_equal(a: Path, b: Path) -> bool:
    import torch

    try:
        x, y = (torch.load(p, map_location="cpu", weights_only=True) for p in (a, b))
    except Exception:  # noqa: BLE001
        return False
    return _same(x, y)


def _same(x, y) -> bool:
    import torch

    if isinstance(x, torch.Tensor):
        return isinstance(y, torch.Tensor) and x.shape == y.shape and x.dtype == y.dtype and bool(torch.equal(x, y))
    if isinstance(x, dict):
        return isinstance(y, dict) and x.keys() == y.keys() and all(_same(x[k], y[k]) for k in x)
    if isinstance(x, (list, tuple)):
        return isinstance(y, (list, tuple)) and len(x) == len(y) and all(_same(a, b) for a, b in zip(x, y))
    return x == y


def jpeg(path: Path, rng: random.Random, size: int, *, mode: str = "RGB") -> None:
    from PIL import Image

    channels = 3 if mode == "RGB" else 1
    shape = (size, size, channels) if channels == 3 else (size, size)
    array = np.frombuffer(bytes(rng.randrange(256) for _ in range(int(np.prod(shape)))), dtype=np.uint8).reshape(shape)
    Image.fromarray(array, mode=mode).save(path, "JPEG")


def bomb_png(width: int, height: int) -> bytes:
    """A 1x1 PNG whose header claims width x height (CRC fixed): a decompression bomb's header."""
    from PIL import Image

    buf = io.BytesIO()
    Image.new("L", (1, 1)).save(buf, "PNG")
    raw = bytearray(buf.getvalue())
    raw[16:20], raw[20:24] = struct.pack(">I", width), struct.pack(">I", height)
    raw[29:33] = struct.pack(">I", zlib.crc32(bytes(raw[12:29])))
    return bytes(raw)


WNIDS = ("n01443537", "n01629819")


def tiny_imagenet(root: Path, rng: random.Random, *, size: int = 64, val_size: int = 64) -> Path:
    """A two-class Tiny ImageNet folder under ``root``: its ``tiny-imagenet-200`` folder."""
    base = root / "tiny-imagenet-200"
    (base / "val" / "images").mkdir(parents=True, exist_ok=True)
    (base / "wnids.txt").write_text("\n".join(WNIDS) + "\n")
    for w in WNIDS:
        d = base / "train" / w / "images"
        d.mkdir(parents=True, exist_ok=True)
        for k in range(4):
            jpeg(d / f"{w}_{k}.JPEG", rng, size)
    lines = []
    for k in range(4):
        name = f"val_{k}.JPEG"
        jpeg(base / "val" / "images" / name, rng, val_size)
        lines.append(f"{name}\t{WNIDS[k % 2]}\t0\t0\t{val_size}\t{val_size}")
    (base / "val" / "val_annotations.txt").write_text("\n".join(lines) + "\n")
    return base


TINY_SETS = ["--set", "task.dataset=tinyimagenet", "--set", "populations.h1.size=4", "--set",
             "task.validation_fraction=0.25", "--set", "task.batch_size=2"]


def alarm_call(fn, limit: float):
    """``fn()`` under the case's SIGALRM limit: (its value or None, the exception or None, 'hang' or None)."""
    previous = signal.signal(signal.SIGALRM, fz._alarm)
    signal.setitimer(signal.ITIMER_REAL, limit)
    try:
        return fn(), None, None
    except fz.CaseTimeout:
        return None, None, "hang"
    except Exception as err:  # noqa: BLE001 - judged by the caller
        return None, err, None
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


# ------------------------------------------------------------------- 1: code from files
PLUGIN_MARKER = "open({marker!r}, 'w').close()\n"


def test_code_from_files_never_runs(request, workspace):
    """Pickles in every file a run reads, and a plugin named by a run folder's run.json: the
    marker file the payload would create never appears, and every case ends well."""
    rng = random.Random(SEED + 11)
    folder = workspace["root"] / "code"
    markers = folder / "markers"
    markers.mkdir(parents=True, exist_ok=True)
    sent = model_file(folder, "sent.yaml", fz.SENTENCE_MODEL)
    train = folder / "train.txt"
    train.write_text("".join(f"{i % 2} {' '.join(rng.choice(fz.WORDS) for _ in range(5))}\n" for i in range(40)))
    text = model_file(folder, "text.yaml", fz.CHARLM_MODEL)
    book = folder / "book.txt"
    book.write_text(" ".join(rng.choice(fz.WORDS) for _ in range(400)) + "\n")
    charlm = folder / "charlm"
    outcome = run_cli([text, "--set", f"task.text={book}", "--out", charlm], limit=120)
    assert outcome.kind == "ok", outcome.err[-2000:]
    # a run trained with a plugin rule (the plugin as given then: no marker code)
    rule_name = f"fuzzjson{SEED}"
    rule_code = (f"import dendrisim\nfrom dendrisim.plasticity.rules import FeedbackAlignment\n\n\n"
                 f"@dendrisim.register_rule({rule_name!r})\nclass Rule(FeedbackAlignment):\n    pass\n")
    (folder / "rule.py").write_text(rule_code)
    with_plugin = folder / "with_plugin"
    outcome = run_cli([workspace["model"], "--plugin", folder / "rule.py", "--set", f"plasticity.rule={rule_name}",
                       "--out", with_plugin], limit=120)
    assert outcome.kind == "ok", outcome.err[-2000:]
    where = ["kv check", "kv run", "kv npy", "kv command", "checkpoint", "checkpoint zip", "weights",
             "sample weights", "sample checkpoint", "tiny cache", "cifar", "plugin json", "plugin json rule"]
    for i in range(scale(request, 26)):
        marker = markers / f"m{i}"
        how = where[i % len(where)] if i < len(where) else rng.choice(where)
        case = folder / f"c{i}"
        case.mkdir()
        if how.startswith("kv"):
            kv = case / rng.choice(["vectors.kv", "vectors.model", "glove.kv"])
            kv.write_bytes(payload(marker, rng.choice([0, 2, 4, 5])))
            if how == "kv npy":
                kv.write_bytes(pickle.dumps({"vectors": None}, protocol=2))
                (case / (kv.name + ".vectors.npy")).write_bytes(npy_payload(marker))
            sets = ["--set", f"task.train_file={train}", "--set", f"task.vectors={kv}"]
            if how == "kv command":
                outcome = run_cmd(["check", sent, *sets], limit=30)
            elif how == "kv run":
                outcome = run_cli([sent, *sets, "--out", case / "run"], limit=60)
            else:
                outcome = run_cli([sent, "--check", *sets], limit=30)
        elif how in ("checkpoint", "checkpoint zip", "weights"):
            run = fresh_copy(workspace["reference"], case / "run")
            name = "weights.pt" if how == "weights" else "checkpoint.pt"
            (run / name).write_bytes(torch_zip(marker) if how != "checkpoint" else payload(marker, rng.choice([0, 2, 4])))
            outcome = run_cli(["--resume", run, "--epochs", "2"], limit=60)
        elif how.startswith("sample"):
            run = fresh_copy(charlm, case / "run")
            name = "weights.pt" if how == "sample weights" else "checkpoint.pt"
            if name == "checkpoint.pt":
                (run / "weights.pt").unlink()
            (run / name).write_bytes(rng.choice([torch_zip(marker), payload(marker)]))
            outcome = run_cmd(["sample", run, "--length", "5"], limit=30)
        elif how == "tiny cache":
            base = tiny_imagenet(case, rng)
            np_bytes = npy_payload(marker)
            with zipfile.ZipFile(base / "dendrisim-cache.npz", "w") as z:
                for key in ["x_train", "y_train", "x_test", "y_test", "train_x", "classes", "wnids"]:
                    z.writestr(key + ".npy", np_bytes)
            outcome = run_cli([workspace["model"], "--data-root", case, *TINY_SETS, "--out", case / "run"], limit=60)
        elif how == "cifar":
            cifar = case / "cifar-10-batches-py"
            cifar.mkdir()
            for name in [f"data_batch_{k}" for k in range(1, 6)] + ["test_batch", "batches.meta"]:
                (cifar / name).write_bytes(payload(marker))
            outcome = run_cli([workspace["model"], "--data-root", case, "--set", "task.dataset=cifar10",
                               "--out", case / "run"], limit=60)
        else:  # run.json names a plugin; --resume without --plugin must not import it
            rule = how == "plugin json rule"  # the run was trained with a plugin rule: its file now creates the marker
            run = fresh_copy(with_plugin if rule else workspace["reference"], case / "run")
            plugin = rng.choice([case / f"evil{i}.py", run / f"evil{i}.py"])
            plugin.write_text(PLUGIN_MARKER.format(marker=str(marker)) + (rule_code if rule else ""))
            info = json.loads((run / "run.json").read_text())
            info["plugins"] = [rng.choice([str(plugin), plugin.name, os.path.relpath(plugin)])]
            (run / "run.json").write_text(json.dumps(info))
            outcome = run_cli(["--resume", run, "--epochs", "2"], limit=60)
        label = f"{i}:{how}"
        ran = markers_in(markers)
        record("code", label, outcome, extra="code from a file ran (marker created)" if ran else "")
        for name in ran:
            (markers / name).unlink()
        shutil.rmtree(case, ignore_errors=True)
    check_failures("code")


# ------------------------------------------------------------------- 2: symlinks planted
RUN_FILES = ["run.lock", "recording.h5", "recording.h5.reserve", "checkpoint.pt", "checkpoint.pt.tmp", "metrics.csv",
             "metrics.csv.tmp", "summary.json", "summary.json.tmp", "weights.pt", "weights.pt.tmp", "model.yaml",
             "model.yaml.tmp", "run.json", "run.json.tmp", "task.json", "recording.h5.tmp"]


#: the first cases: (name, link) that issue 29 names or that a run writes in place
FIRST_LINKS = [("run.lock", "victim"), ("recording.h5.reserve", "victim"), ("recording.h5", "dangling"),
               ("run.lock", "dangling"), ("recording.h5.reserve", "dangling"), ("checkpoint.pt.tmp", "victim"),
               ("metrics.csv.tmp", "victim"), ("weights.pt.tmp", "victim"), ("summary.json.tmp", "victim"),
               ("model.yaml.tmp", "victim"), ("run.json.tmp", "victim"), ("recording.h5.tmp", "dangling"),
               ("run.lock", "hardlink")]


def test_symlinks_planted_in_a_run_folder_never_reach_another_file(request, workspace):
    """A new --out folder (or a copied run under --resume) holding symlinks or hard links
    under the names of a run's files, pointing at a victim run's files or outside: the
    victim never changes, nothing is created outside, and the case ends well."""
    rng = random.Random(SEED + 12)
    folder = workspace["root"] / "symlink"
    folder.mkdir(exist_ok=True)
    victim = folder / "victim"
    fresh_copy(workspace["reference"], victim)
    (victim / "notes.txt").write_text("the victim's own file\n")
    before = fz.tree_hash(victim)
    outside = folder / "outside"
    outside.mkdir()
    for i in range(scale(request, 40)):
        out = folder / f"s{i}"
        resume = i >= len(FIRST_LINKS) and rng.random() < 0.3
        if resume:
            fresh_copy(workspace["reference"], out)
        else:
            out.mkdir()
        planted = {}
        links = [FIRST_LINKS[i]] if i < len(FIRST_LINKS) else [
            (name, rng.choice(["victim", "victim", "dangling", "dangling", "folder", "loop", "hardlink"]))
            for name in rng.sample(RUN_FILES, rng.choice([1, 1, 1, 2, 3]))]
        for name, target_kind in links:
            path = out / name
            path.unlink(missing_ok=True)
            if target_kind == "victim":
                target = victim / ("checkpoint.pt" if i < len(FIRST_LINKS) else
                                   rng.choice(sorted(p.name for p in victim.iterdir())))
                os.symlink(target, path)
            elif target_kind == "dangling":
                target = outside / f"d{i}_{name}"
                os.symlink(rng.choice([target, os.path.relpath(target, out)]), path)
            elif target_kind == "folder":
                target = victim
                os.symlink(target, path)
            elif target_kind == "loop":
                target = path
                os.symlink(path.name, path)
            else:
                target = victim / "notes.txt"
                os.link(target, path)
            planted[name] = (target_kind, target)
        if resume:
            argv = ["--resume", out, "--epochs", "2"]
        else:
            argv = [workspace["model"], "--out", out] + (["--overwrite"] if i >= len(FIRST_LINKS) and rng.random() < 0.5
                                                          else [])
        outcome = run_cli(argv, limit=60)
        label = f"{i}:{'resume' if resume else 'new'}:" + ",".join(f"{n}->{k}" for n, (k, _) in planted.items())
        what = ""
        changed = [k for k, v in fz.tree_hash(victim).items() if before.get(k) != v] + \
                  [k for k in before if not (victim / k).exists()]
        created = sorted(p.name for p in outside.iterdir())
        if changed:
            what = f"the victim's files changed through a planted link: {changed}"
        elif created:
            what = f"a file was created outside the run folder: {created}"
        case_text = label + " " + " ".join(map(str, argv))
        if what:
            bad("symlink", case_text, outcome, what.split(":")[0], what)
        else:
            record("symlink", case_text, outcome)
        if not what and outcome.kind == "ok":
            for name in planted:  # what the run left of ours is not its own file
                if (out / name).is_symlink() and name.endswith(".tmp"):
                    (out / name).unlink()
            if (why := readable(out)):
                record("symlink", f"{label} [{why}]", outcome, extra="unreadable checkpoint or recording")
        if changed:
            fresh_copy(workspace["reference"], victim)
            (victim / "notes.txt").write_text("the victim's own file\n")
            before = fz.tree_hash(victim)
        for name in created:
            (outside / name).unlink()
        shutil.rmtree(out, ignore_errors=True)
    check_failures("symlink")


# ------------------------------------------------------------------- 3: the lock
def test_a_deleted_lock_never_lets_two_runs_share_a_folder(request, workspace):
    """Run A (a subprocess) is training; its run.lock is deleted, renamed or replaced; run B
    starts with --overwrite on the same folder. Either B is refused and A ends as its
    unbroken twin, or the folder ends as one run's unbroken result: never a mix."""
    rng = random.Random(SEED + 13)
    folder = workspace["root"] / "lock"
    folder.mkdir(exist_ok=True)
    sets = ["--set", "training.epochs=2", "--set", "training.max_steps_per_epoch=40"]
    unbroken = {}
    for seed in (0, 1):
        run = folder / f"unbroken{seed}"
        outcome = run_cli([workspace["model"], "--out", run, "--seed", str(seed), *sets], limit=120)
        assert outcome.kind == "ok", outcome.err[-2000:]
        unbroken[seed] = run
    for i in range(scale(request, 1)):
        run = folder / f"l{i}"
        a = fz._subprocess([workspace["model"], "--out", run, "--seed", "0", *sets])
        deadline = time.monotonic() + 60
        while not (run / "checkpoint.pt").exists() and a.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        how = ["delete", "rename", "replace"][i % 3] if i < 3 else rng.choice(["delete", "rename", "replace"])
        lock = run / "run.lock"
        with contextlib.suppress(OSError):
            if how == "delete":
                lock.unlink()
            elif how == "rename":
                lock.rename(run / "run.lock.old")
            else:
                lock.unlink()
                lock.write_text("")
        b = fz._subprocess([workspace["model"], "--out", run, "--overwrite", "--seed", "1", *sets])
        oa, ob = fz._finish(a, 180), fz._finish(b, 180)
        label = f"{i}:{how}"
        record("lock", label + " A", oa)
        record("lock", label + " B", ob)
        # both ok: B took the folder over (--overwrite) once A had ended, which is allowed if the
        # folder is then B's unbroken run; a lock that did not hold leaves a mix, caught below
        owner = 1 if b.returncode == 0 else 0 if a.returncode == 0 else None
        if owner is None:
            continue
        same = (fz._test_metrics(run) == fz._test_metrics(unbroken[owner])
                and weights_equal(run / "weights.pt", unbroken[owner] / "weights.pt"))
        if not same:
            bad("lock", label, ob, "files of the two runs mixed", f"owner {'AB'[owner]}: the folder is no unbroken run")
    check_failures("lock")


# ------------------------------------------------------------------- 4: hooks
ODD_VALUES = ["np.arange(3)", "decimal.Decimal('1.5')", "Odd()", "float('nan')", "'x' * 10**7", "object()",
              "np.float32(1.5)", "torch.tensor([float('nan')])", "[1, Odd()]", "{'a': np.int64(3)}", "complex(1, 2)",
              "b'bytes'", "10**400", "lambda: 0", "{1, 2}", "None", "float('inf')", "(i for i in range(3))",
              "np.array(['x'], dtype=object)", "fractions.Fraction(1, 3)", "datetime.date(2020, 1, 1)",
              "torch.zeros(3, dtype=torch.complex64)", "Path('/tmp')", "{'nested': {'deep': [Odd()]}}"]
EXCEPTIONS = ["ValueError('fuzz')", "RuntimeError('fuzz\\nsecond line')", "KeyError('fuzz')", "ZeroDivisionError()",
              "TypeError('fuzz')", "AssertionError()", "RecursionError()", "OSError(5, 'fuzz I/O')",
              "NotImplementedError()", "StopIteration()", "IndexError('fuzz')", "MemoryError()", "FuzzError('x' * 5000)"]
#: hook -> (signature, what calls super) for a FeedbackAlignment subclass
HOOKS = {
    "__init__": ("self, network, options, *, projections=None",
                 "super().__init__(network, options, projections=projections)"),
    "start_epoch": ("self, epoch", "super().start_epoch(epoch)"),
    "after_update": ("self, network", "super().after_update(network)"),
    "epoch_summary": ("self", "super().epoch_summary()"),
    "compute_updates": ("self, network", "super().compute_updates(network)"),
    "apical_input": ("self, network, pop", "super().apical_input(network, pop)"),
    "feedback_weight": ("self, network, proj", "super().feedback_weight(network, proj)"),
    "param_groups": ("self, lr", "super().param_groups(lr)"),
    "get_extra_state": ("self", "None"),
    "relaxed": ("self, iterations, converged", "None"),
}
PLUGIN_HEAD = """import datetime, decimal, fractions, math
from pathlib import Path
import numpy as np
import torch
import dendrisim
from dendrisim.plasticity.rules import FeedbackAlignment


class Odd:
    pass


class FuzzError(Exception):
    pass


@dendrisim.register_rule({name!r})
class FuzzRule(FeedbackAlignment):
"""


def hook_plugin(name: str, hook: str, action: str, value: str, rng: random.Random) -> str:
    """The text of a plugin whose rule ``name`` has ``hook`` raise or return ``value``."""
    sig, sup = HOOKS[hook]
    body = PLUGIN_HEAD.format(name=name)
    after = rng.choice(["always", "later"])  # later: from the second call on
    if hook == "get_extra_state":
        body += "    def set_extra_state(self, state):\n        self.fuzz_state = state\n\n"
    body += f"    def {hook}({sig}):\n"
    body += "        self.__dict__['fuzz_calls'] = self.__dict__.get('fuzz_calls', 0) + 1\n" if hook != "__init__" else ""
    guard = "        if self.__dict__.get('fuzz_calls', 0) > 1:\n    " if after == "later" and hook != "__init__" else ""
    if action == "raise":
        if hook == "__init__":
            body += f"        raise {value}\n"
        else:
            body += f"{guard}        raise {value}\n        return {sup}\n"
    elif hook == "epoch_summary":
        body += f"        out = dict({sup} or {{}})\n        out['fuzz'] = {value}\n        return out\n" if rng.random() < 0.7 \
            else f"        {sup}\n        return {value}\n"
    elif hook == "__init__":
        body += f"        {sup}\n        self.fuzz_value = {value}\n"
    elif hook == "get_extra_state":
        body += f"        return {value}\n"
    elif hook in ("start_epoch", "after_update", "compute_updates", "relaxed"):
        body += f"        {sup}\n        return {value}\n"
    else:  # the value instead of what the hook returns
        body += f"        real = {sup}\n{guard}        return {value}\n        return real\n"
    return body


def _resume_ok(run: Path, plugin: Path, label: str, kind: str) -> None:
    again = run_cli(["--resume", run, "--epochs", "3", "--plugin", plugin], limit=60)
    if again.kind == "ok":
        record(kind, label + " resume", again)
    else:
        bad(kind, label + " resume", again, "ended ok, --resume fails", f"{again.kind}: {last_line(again)}")


def test_plugin_hooks_that_raise_or_return_odd_values(request, workspace):
    """A plugin rule whose hook raises, or returns (or keeps in its state) an odd value: a
    one-paragraph error, or a run whose checkpoint reads back and --resume finishes."""
    rng = random.Random(SEED + 14)
    folder = workspace["root"] / "hooks"
    folder.mkdir(exist_ok=True)
    hooks = list(HOOKS)
    for i in range(scale(request, 30)):
        hook = hooks[i % len(hooks)] if i < len(hooks) else rng.choice(hooks)
        action = rng.choice(["raise", "return"])
        value = rng.choice(EXCEPTIONS if action == "raise" else ODD_VALUES)
        name = f"fuzzhook{SEED}_{i}"
        plugin = folder / f"{name}.py"
        plugin.write_text(hook_plugin(name, hook, action, value, rng))
        run = folder / f"h{i}"
        outcome = run_cli([workspace["model"], "--plugin", plugin, "--set", f"plasticity.rule={name}", "--out", run,
                           "--epochs", "2"], limit=60)
        label = f"{i}:{hook}:{action} {value[:40]}"
        record("hooks", label, outcome)
        if outcome.kind == "ok":
            if (why := readable(run)):
                record("hooks", f"{label} [{why}]", outcome, extra="unreadable checkpoint or recording")
            else:
                _resume_ok(run, plugin, label, "hooks")
        shutil.rmtree(run, ignore_errors=True)
    check_failures("hooks")


OBSERVER_HOOKS = ["start", "before_step", "after_step", "epoch_end", "stop"]


def make_observer(hook: str, action: str, value: str):
    from dendrisim.observers import Observer

    namespace = {}
    exec(PLUGIN_HEAD.split("@dendrisim")[0], namespace)  # noqa: S102 - our own text: the odd values' imports
    make = eval(f"lambda: {value}", namespace)  # noqa: S307

    class Fuzz(Observer):
        pass

    def act(self, loop, arg=None):
        if action == "raise":
            raise make()
        if action == "row" and isinstance(arg, dict):
            arg["fuzz"] = make()
        return make()

    setattr(Fuzz, hook, act)
    return Fuzz()


def test_observers_that_raise_or_leave_odd_values(request, workspace):
    """An observer (Python API) whose hook raises, returns an odd value or puts one into the
    epoch's metrics row: fit() ends, or raises a one-paragraph DendrisimError or the
    observer's own exception; the folder then reads back and --resume ends well."""
    import dendrisim

    rng = random.Random(SEED + 15)
    folder = workspace["root"] / "observer"
    folder.mkdir(exist_ok=True)
    for i in range(scale(request, 15)):
        hook = OBSERVER_HOOKS[i % len(OBSERVER_HOOKS)] if i < len(OBSERVER_HOOKS) else rng.choice(OBSERVER_HOOKS)
        action = "row" if hook == "epoch_end" and rng.random() < 0.7 else rng.choice(["raise", "return"])
        value = rng.choice(EXCEPTIONS if action == "raise" else ODD_VALUES)
        run = folder / f"o{i}"
        label = f"{i}:{hook}:{action} {value[:40]}"

        def fit(hook=hook, action=action, value=value, run=run):
            exp = dendrisim.load(str(workspace["model"]), ["training.epochs=2"])
            return dendrisim.Trainer(exp, out=str(run), observers=[make_observer(hook, action, value)]).fit()

        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            _, err, hang = alarm_call(fit, 60)
        if hang:
            record("observer", label, Outcome(None, "", "", "hang", 60))
            continue
        own = action == "raise" and err is not None and (err.__class__.__name__ in value or isinstance(
            err.__cause__ or err.__context__, Exception) and (err.__cause__ or err.__context__).__class__.__name__ in value)
        if err is None:
            kind, text = "ok", ""
        elif isinstance(err, dendrisim.DendrisimError) and len(str(err).splitlines()) == 1:
            kind, text = "error", str(err)
        elif own:
            kind, text = "error", f"{type(err).__name__} (the observer's own)"
        else:
            kind, text = "traceback", "".join(fz.traceback.format_exception(err))[-1500:]
        record("observer", label, Outcome(0 if err is None else 2, "", text, kind, 0))
        if run.is_dir():
            if (why := readable(run)):
                record("observer", f"{label} [{why}]", Outcome(0, "", why, kind, 0),
                       extra="unreadable checkpoint or recording")
            elif (run / "checkpoint.pt").is_file():  # the run (stopped or not) continues without the observer
                again = run_cli(["--resume", run, "--epochs", "3"], limit=60)
                if again.kind == "ok":
                    record("observer", label + " resume", again)
                else:
                    bad("observer", label + " resume", again, "--resume fails", f"{again.kind}: {last_line(again)}")
        shutil.rmtree(run, ignore_errors=True)
    check_failures("observer")


# ------------------------------------------------------------------- 5: bit flips
def flip_bits(rng: random.Random, raw: bytes, *, inside_tensors: bool) -> tuple[bytes, str]:
    """``raw`` with 1 to 8 bits flipped, anywhere or inside one stored tensor's bytes."""
    raw = bytearray(raw)
    lo, hi = 0, len(raw)
    if inside_tensors:
        with contextlib.suppress(zipfile.BadZipFile):
            z = zipfile.ZipFile(io.BytesIO(bytes(raw)))
            data = [info for info in z.infolist() if "/data/" in info.filename and info.file_size > 0]
            if data:
                info = rng.choice(data)
                # the local header: 30 bytes, the name, the extra field
                n, m = struct.unpack("<HH", raw[info.header_offset + 26: info.header_offset + 30])
                lo = info.header_offset + 30 + n + m
                hi = lo + info.file_size
    offsets = [rng.randrange(lo, hi) for _ in range(rng.randint(1, 8))]
    for off in offsets:
        raw[off] ^= 1 << rng.randrange(8)
    return bytes(raw), ",".join(map(str, offsets[:3]))


def test_flipped_bits_in_checkpoints_never_resume_silently(request, workspace):
    """Bits flipped in a stopped run's checkpoint.pt or weights.pt, then --resume: a
    one-paragraph error, or a run bit-identical to the uninterrupted one; flipped in a
    charlm run's weights.pt, then ``sample``: an error or the undamaged run's text."""
    rng = random.Random(SEED + 16)
    folder = workspace["root"] / "bitflip"
    folder.mkdir(exist_ok=True)
    half, whole = folder / "half", folder / "whole"
    for run, epochs in ((half, 1), (whole, 2)):
        outcome = run_cli([workspace["model"], "--out", run, "--set", f"training.epochs={epochs}"], limit=120)
        assert outcome.kind == "ok", outcome.err[-2000:]
    for i in range(scale(request, 30)):
        run = fresh_copy(half, folder / f"b{i}")
        name = "checkpoint.pt" if i == 0 or rng.random() < 0.75 else "weights.pt"
        inside = rng.random() < 0.6
        if i:  # case 0: no flip, the control
            raw, where = flip_bits(rng, (run / name).read_bytes(), inside_tensors=inside)
            (run / name).write_bytes(raw)
        else:
            where = "none"
        outcome = run_cli(["--resume", run, "--epochs", "2"], limit=60)
        label = f"{i}:{name}:{'tensor' if inside else 'anywhere'}@{where}"
        same = outcome.kind != "ok" or (fz._test_metrics(run) == fz._test_metrics(whole)
                                        and weights_equal(run / "weights.pt", whole / "weights.pt"))
        record("bitflip", label, outcome, extra="" if same else "resumed silently to a different run (exit 0)")
        shutil.rmtree(run, ignore_errors=True)
    # weights.pt read by `sample`: the same text as from the undamaged file, or an error
    text = model_file(folder, "text.yaml", fz.CHARLM_MODEL)
    book = folder / "book.txt"
    book.write_text(" ".join(rng.choice(fz.WORDS) for _ in range(400)) + "\n")
    charlm = folder / "charlm"
    assert run_cli([text, "--set", f"task.text={book}", "--out", charlm], limit=120).kind == "ok"
    clean = run_cmd(["sample", charlm, "--length", "40", "--seed", "1"], limit=30)
    assert clean.kind == "ok", clean.err[-2000:]
    for i in range(scale(request, 10)):
        run = fresh_copy(charlm, folder / f"w{i}")
        inside = rng.random() < 0.7
        raw, where = flip_bits(rng, (run / "weights.pt").read_bytes(), inside_tensors=inside)
        (run / "weights.pt").write_bytes(raw)
        outcome = run_cmd(["sample", run, "--length", "40", "--seed", "1"], limit=30)
        label = f"sample {i}:weights.pt:{'tensor' if inside else 'anywhere'}@{where}"
        same = outcome.kind != "ok" or outcome.out == clean.out
        record("bitflip", label, outcome, extra="" if same else "sampled silently from damaged weights (exit 0)")
        shutil.rmtree(run, ignore_errors=True)
    check_failures("bitflip")


# ------------------------------------------------------------------- 6: memory
def _size(text: str) -> float:
    """Bytes of '785.0 MiB', '1.94 GiB', ..."""
    number, unit = text.split()
    return float(number) * {"B": 1, "KiB": 2**10, "MiB": 2**20, "GiB": 2**30, "TiB": 2**40}[unit]


def test_a_run_under_an_address_space_limit_ends_cleanly(request, workspace):
    """A run (a subprocess) under RLIMIT_AS: exit 0, or a one-paragraph error; never a
    traceback or a signal. A probe under a tight limit makes the run state its estimate and
    what the limit leaves; the case then sets the limit just above the estimate (by up to
    one and a half copies of the weights: what an estimate may leave out)."""
    import re as _re
    import resource

    rng = random.Random(SEED + 17)
    folder = workspace["root"] / "memory"
    folder.mkdir(exist_ok=True)

    def run_under(limit_bytes: int, size: int, run: Path) -> Outcome:
        def limit():
            resource.setrlimit(resource.RLIMIT_AS, (limit_bytes, limit_bytes))

        proc = fz._subprocess([workspace["model"], "--out", run, "--set", f"populations.h1.size={size}",
                               "--set", f"populations.h2.size={size}"], preexec_fn=limit)
        outcome = fz._finish(proc, 180)
        if outcome.code is not None and outcome.code < 0:
            outcome.kind = f"signal {-outcome.code}"
        return outcome

    for i in range(scale(request, 1)):
        size = rng.choice([2000, 3000, 4000, 5000, 6000])
        probe_limit = int(3.6 * 2**30)  # torch itself maps about 3.1 GiB
        run = folder / f"m{i}"
        probe = run_under(probe_limit, size, run)
        label = f"{i}: hidden {size}, probe {probe_limit / 2**30:.2f} GiB"
        found = _re.search(r"needs about ([\d.]+ \w+) .*\(weights ([\d.]+ \w+).*more than the ([\d.]+ \w+) available",
                           probe.err)
        if not found or probe.kind != "error":
            record("memory", label + " (probe)", probe)
            shutil.rmtree(run, ignore_errors=True)
            continue
        needed, weights, available = (_size(g) for g in found.groups())
        mapped = probe_limit - available
        limit_bytes = int(mapped + needed + rng.uniform(0.02, 1.5) * weights)
        shutil.rmtree(run, ignore_errors=True)
        outcome = run_under(limit_bytes, size, run)
        label = f"{i}: hidden {size}, limit {limit_bytes / 2**30:.3f} GiB (estimate {needed / 2**30:.3f} GiB)"
        record("memory", label, outcome)
        if outcome.kind == "ok" and (why := readable(run)):
            record("memory", f"{label} [{why}]", outcome, extra="unreadable checkpoint or recording")
        shutil.rmtree(run, ignore_errors=True)
    check_failures("memory")


# ------------------------------------------------------------------- 7: early faults
def test_a_fault_before_the_first_checkpoint_then_resume_finishes(request, workspace):
    """A write fails before the first checkpoint exists; --resume then finishes the run
    (exit 0) as the unbroken run ended."""
    rundir = fz._fault_seam()
    if rundir is None:
        pytest.skip("no fault-injection seam (dendrisim.rundir.fault_hook) in this tree")
    rng = random.Random(SEED + 18)
    folder = workspace["root"] / "early"
    folder.mkdir(exist_ok=True)
    sets = ["--set", "training.epochs=2", "--set", "training.max_steps_per_epoch=3",
            "--set", "training.checkpoint_every=null"]
    unbroken = folder / "unbroken"
    outcome = run_cli([workspace["model"], "--out", unbroken, *sets], limit=60)
    assert outcome.kind == "ok", outcome.err[-2000:]
    expected = fz._test_metrics(unbroken)
    kinds = ["recording", "recording", "metrics", "checkpoint", "model", "run"]
    for i in range(scale(request, 6)):
        kind = kinds[i % len(kinds)] if i < len(kinds) else rng.choice(kinds)
        fault = rng.choice(fz.FAULTS[:2])
        nth = rng.randint(1, 2) if kind == "recording" else 1
        seen: Counter = Counter()
        checkpoints = []

        def hook(k, path, kind=kind, nth=nth, fault=fault):
            seen[k] += 1
            if k == "checkpoint":
                checkpoints.append(path)
            if k == kind and seen[k] == nth and not (k != "checkpoint" and seen["checkpoint"]):
                raise fault()

        run = folder / f"e{i}"
        rundir.fault_hook = hook
        try:
            outcome = run_cli([workspace["model"], "--out", run, *sets], limit=60)
        finally:
            rundir.fault_hook = None
        label = f"{i}:{kind}#{nth}:{type(fault()).__name__}"
        if (run / "checkpoint.pt").exists() or outcome.kind == "ok":
            record("early", f"{label} [no {kind} write #{nth} before a checkpoint]", outcome)
            continue
        record("early", label, outcome)
        again = run_cli(["--resume", run], limit=60)
        must = kind not in ("model",)  # without model.yaml there is nothing to start over from
        if again.kind == "ok" and fz._test_metrics(run) != expected:
            record("early", label + " resume", again, extra="the restarted run differs from the unbroken one")
        elif must and again.kind != "ok":
            bad("early", label + " resume", again, "--resume does not finish", f"{again.kind}: {last_line(again)}")
        else:
            record("early", label + " resume", again)
    check_failures("early")


# ------------------------------------------------------------------- 8: paths
def _long_paths(folder: Path) -> list[Path]:
    return [folder / ("x" * 256), folder / ("é" * 200), folder / "/".join(["d" * 200] * 25), folder / ("y" * 300 + ".py"),
            folder / "a" / ("z" * 4000)]


def test_odd_paths_for_every_option_end_in_a_result_or_one_paragraph(request, workspace):
    """Over-long names and paths, symlink loops, read-only folders, /proc, /dev and a FIFO,
    for every command and option that takes a path."""
    rng = random.Random(SEED + 19)
    folder = workspace["root"] / "paths"
    folder.mkdir(exist_ok=True)
    loop_a, loop_b = folder / "loopA", folder / "loopB"
    os.symlink(loop_b, loop_a)
    os.symlink(loop_a, loop_b)
    fifo = folder / "fifo"
    os.mkfifo(fifo)
    readonly = folder / "readonly"
    readonly.mkdir()
    unreadable = folder / "unreadable.csv"
    unreadable.write_text("1,2\n3,4\n")
    os.chmod(unreadable, 0)
    os.chmod(readonly, stat.S_IRUSR | stat.S_IXUSR)
    series = model_file(folder, "series.yaml", fz.SERIES_MODEL)
    text = model_file(folder, "text.yaml", fz.CHARLM_MODEL)
    sent = model_file(folder, "sent.yaml", fz.SENTENCE_MODEL)
    odd = _long_paths(folder) + [loop_a, loop_a / "x", fifo, readonly / "x", readonly, unreadable, Path("/proc/fuzz"),
                                 Path("/proc/self/status"), Path("/proc/self/mem"), Path("/dev/null"), Path("/dev/full"),
                                 Path("/sys/fuzz"), folder, ""]
    places = [
        lambda p, o: run_cli([p, "--check"], limit=10),
        lambda p, o: run_cmd(["check", p], limit=10),
        lambda p, o: run_cli([workspace["model"], "--out", p], limit=30),
        lambda p, o: run_cli([workspace["model"], "--out", Path(p) / "run"], limit=30),
        lambda p, o: run_cli([workspace["model"], "--data-root", p, "--set", "task.dataset=fashion_mnist", "--out", o],
                             limit=30),
        lambda p, o: run_cli([workspace["model"], "--plugin", p, "--out", o], limit=30),
        lambda p, o: run_cli(["--resume", p], limit=30),
        lambda p, o: run_cli([series, "--check", "--set", f"task.file={p}"], limit=10),
        lambda p, o: run_cli([text, "--check", "--set", f"task.text={p}"], limit=10),
        lambda p, o: run_cli([sent, "--check", "--set", f"task.train_file={p}"], limit=10),
        lambda p, o: run_cli([sent, "--check", "--set", f"task.train_file={folder / 'train.txt'}",
                              "--set", f"task.vectors={p}"], limit=10),
        lambda p, o: run_cmd(["plot", p, "--out", o], limit=30),
        lambda p, o: run_cmd(["plot", workspace["reference"] / "recording.h5", "--out", p], limit=30),
        lambda p, o: run_cmd(["sample", p, "--length", "3"], limit=10),
        lambda p, o: run_cmd(["rules", "--plugin", p], limit=10),
        lambda p, o: run_cmd(["compare", workspace["model"], "--rules", "dll", "--seeds", "0", "--set",
                              "training.max_steps_per_epoch=1", "--out", p], limit=60),
        lambda p, o: run_cmd(["compare", p, "--rules", "dll", "--seeds", "0", "--out", o], limit=30),
    ]
    names = ["run model", "check model", "--out", "--out/run", "--data-root", "--plugin", "--resume", "task.file",
             "task.text", "task.train_file", "task.vectors", "plot file", "plot --out", "sample run_dir",
             "rules --plugin", "compare --out", "compare model"]
    (folder / "train.txt").write_text("".join(f"{i % 2} good film\n" for i in range(20)))
    n = scale(request, 60)
    cases = [(k, j) for k in range(len(places)) for j in range(len(odd))]
    rng.shuffle(cases)
    cwd = folder / "cwd"  # where an empty path leads: never the repository
    cwd.mkdir()
    for i in range(n):
        k, j = cases[i % len(cases)]
        path = odd[j]
        if path == fifo and rng.random() < 0.5:
            k = rng.choice([7, 8, 9, 10, 0])  # readers: a FIFO read may hang
        out = folder / f"o{i}"
        with contextlib.chdir(cwd):
            outcome = places[k](path, out)
        label = f"{i}:{names[k]}={str(path)[:60]}{'...' if len(str(path)) > 60 else ''}"
        left = sorted(p.name for p in cwd.iterdir())
        # '' / "run" is the relative path "run": writing ./run is what it asks for
        if left and str(path) == "" and names[k] != "--out/run":
            bad("paths", label, outcome, "'' wrote into the working folder", f"{outcome.kind}: {left[:4]}")
        else:
            record("paths", label, outcome)
        for p in cwd.iterdir():
            shutil.rmtree(p) if p.is_dir() and not p.is_symlink() else p.unlink()
        shutil.rmtree(out, ignore_errors=True)
    os.chmod(readonly, stat.S_IRWXU)
    check_failures("paths")


# ------------------------------------------------------------------- 8: codecs
CODECS = ["rot13", "rot_13", "base64", "base64_codec", "zlib_codec", "zlib", "uu", "uu_codec", "punycode", "hex",
          "hex_codec", "bz2", "bz2_codec", "quopri", "idna", "unicode_escape", "raw_unicode_escape", "utf-7",
          "utf-16", "utf-32", "undefined", "mbcs", "no-such-codec", "", " ", "utf-8\0", "x" * 300, "ascii", "utf_8_sig"]


def test_codecs_that_are_no_text_encodings(request, workspace):
    """task.encoding set to codecs that are not text encodings, for every task that reads text."""
    rng = random.Random(SEED + 20)
    folder = workspace["root"] / "codec"
    folder.mkdir(exist_ok=True)
    series = model_file(folder, "series.yaml", fz.SERIES_MODEL)
    text = model_file(folder, "text.yaml", fz.CHARLM_MODEL)
    sent = model_file(folder, "sent.yaml", fz.SENTENCE_MODEL)
    csv = folder / "s.csv"
    csv.write_text("\n".join(",".join(row) for row in fz.series_text(rng)) + "\n")
    book = folder / "book.txt"
    book.write_text(" ".join(rng.choice(fz.WORDS) for _ in range(400)) + "\n")
    train = folder / "train.txt"
    train.write_text("".join(f"{i % 2} {' '.join(rng.choice(fz.WORDS) for _ in range(5))}\n" for i in range(40)))
    vectors = folder / "vectors.txt"
    vectors.write_text("".join(w + " " + " ".join(f"{rng.gauss(0, 1):.3f}" for _ in range(4)) + "\n" for w in fz.WORDS))
    for i in range(scale(request, 60)):
        codec = CODECS[i % len(CODECS)] if i < len(CODECS) else rng.choice(CODECS)
        task = rng.choice(["series", "text", "sentences", "vectors"])
        if rng.random() < 0.3:  # a file written in that codec's bytes (where it can write)
            with contextlib.suppress(Exception):
                raw = book.read_bytes()
                import codecs as _codecs

                encoded = _codecs.encode(raw if codec in ("base64", "base64_codec", "zlib_codec", "zlib", "uu",
                                                          "uu_codec", "hex", "hex_codec", "bz2", "bz2_codec",
                                                          "quopri") else raw.decode(), codec)
                (folder / "book_enc.txt").write_bytes(encoded if isinstance(encoded, bytes) else encoded.encode())
        if task == "series":
            argv = [series, "--set", f"task.file={csv}"]
        elif task == "text":
            enc = folder / "book_enc.txt"
            argv = [text, "--set", f"task.text={enc if enc.exists() and rng.random() < 0.5 else book}"]
        else:
            argv = [sent, "--set", f"task.train_file={train}"] + (["--set", f"task.vectors={vectors}"]
                                                                  if task == "vectors" else [])
        argv += ["--set", f"task.encoding={codec}"]
        train_it = rng.random() < 0.15
        out = folder / f"r{i}"
        outcome = run_cli(argv + (["--out", out] if train_it else ["--check"]), limit=60 if train_it else 20)
        record("codec", f"{i}:{task}:{codec!r}", outcome)
        if train_it and outcome.kind == "ok" and (why := readable(out)):
            record("codec", f"{i} [{why}]", outcome, extra="unreadable checkpoint or recording")
        shutil.rmtree(out, ignore_errors=True)
    check_failures("codec")


# ------------------------------------------------------------------- 8: hostile headers
def w2v_case(rng: random.Random) -> tuple[str, str, bytes]:
    """(what, file name, bytes) of a word-vector file with a hostile header."""
    words, dim = fz.WORDS, 4
    claim = rng.choice([f"{10**12} {dim}", f"{len(words)} {10**12}", f"{10**12} {10**12}", f"-5 {dim}", f"{len(words)} -4",
                        f"{len(words)}", f"{len(words)} {dim} {dim}", "nan 4", "1e12 4", "０ ４", f"{2**63} {dim}",
                        f"{len(words)} 0", f"0 {dim}", f"{len(words) * 1000} {dim}", f"{len(words)} {dim}\0"])
    if rng.random() < 0.5:  # word2vec binary
        body = b"".join(w.encode() + b" " + struct.pack(f"<{dim}f", *[rng.gauss(0, 1) for _ in range(dim)]) + b"\n"
                        for w in words)
        return f"bin {claim!r}", "vectors.bin", claim.encode() + b"\n" + body
    body = "".join(w + " " + " ".join(f"{rng.gauss(0, 1):.3f}" for _ in range(dim)) + "\n" for w in words)
    if rng.random() < 0.2:  # GloVe lines of differing or huge widths
        body += "odd " + " ".join(["0.5"] * rng.choice([1, 3, 5, 10000])) + "\n"
    return f"txt {claim!r}", "vectors.txt", (claim + "\n" + body).encode()


def idx_header_case(rng: random.Random) -> tuple[str, bytes]:
    """(what, bytes) of an IDX images file whose header lies or overflows."""
    images = np.zeros((40, 28, 28), dtype=np.uint8).tobytes()
    choice = rng.randrange(8)
    if choice == 0:
        return "dims 2^32-1", bytes([0, 0, 8, 3]) + struct.pack(">III", 2**32 - 1, 28, 28) + images
    if choice == 1:
        return "4 dims of 2^16 (product 2^64)", bytes([0, 0, 8, 4]) + struct.pack(">IIII", *[2**16] * 4) + images
    if choice == 2:
        return "ndim 0", bytes([0, 0, 8, 0]) + images
    if choice == 3:
        return "ndim 255", bytes([0, 0, 8, 255]) + struct.pack(">I", 1) * 10 + images
    if choice == 4:
        return "float type 0x0D", bytes([0, 0, 0x0D, 3]) + struct.pack(">III", 40, 28, 28) + images
    if choice == 5:
        return "unknown type 0x99", bytes([0, 0, 0x99, 3]) + struct.pack(">III", 40, 28, 28) + images
    if choice == 6:
        return "dims 0", bytes([0, 0, 8, 3]) + struct.pack(">III", 0, 28, 28)
    return "dims 40 x 2^31 x 2^31", bytes([0, 0, 8, 3]) + struct.pack(">III", 40, 2**31, 2**31) + images


def tiny_case(rng: random.Random, root: Path) -> str:
    """Damage a fresh Tiny ImageNet folder under ``root``; what was done."""
    what = rng.choice(["bomb", "bomb small", "val size", "train size", "wnids binary", "wnids empty", "wnids dup",
                       "annotations", "cache bytes", "cache shapes", "cache keys", "cache empty", "gray", "no val"])
    base = tiny_imagenet(root, rng, val_size=rng.choice([32, 16]) if what == "val size" else 64)
    train_image = base / "train" / WNIDS[0] / "images" / f"{WNIDS[0]}_0.JPEG"
    if what == "bomb":
        train_image.write_bytes(bomb_png(100000, 100000))
    elif what == "bomb small":
        (base / "val" / "images" / "val_0.JPEG").write_bytes(bomb_png(rng.choice([20000, 65535]), 20000))
    elif what == "train size":
        jpeg(train_image, rng, rng.choice([63, 65, 1]))
    elif what == "wnids binary":
        (base / "wnids.txt").write_bytes(rng.choice([b"\xff\xfe\x00n0144\x80\n", b"\0" * 16, rbytes(rng, 40),
                                                      b"n01443537\nn01629819\n\x80\x81"]))
    elif what == "wnids empty":
        (base / "wnids.txt").write_bytes(b"")
    elif what == "wnids dup":
        (base / "wnids.txt").write_text(f"{WNIDS[0]}\n{WNIDS[0]}\n../../etc\n")
    elif what == "annotations":
        (base / "val" / "val_annotations.txt").write_bytes(rng.choice([b"", b"val_0.JPEG\n", b"val_0.JPEG\tn999\n",
                                                                        b"../../x.JPEG\tn01443537\n", rbytes(rng, 50)]))
    elif what == "gray":
        jpeg(train_image, rng, 64, mode="L")
    elif what == "no val":
        shutil.rmtree(base / "val")
    else:
        cache = base / "dendrisim-cache.npz"
        if what == "cache bytes":
            cache.write_bytes(rng.choice([rbytes(rng, 200), b"PK\x03\x04" + rbytes(rng, 100), b""]))
        elif what == "cache empty":
            np.savez(cache)
        elif what == "cache keys":
            np.savez(cache, nothing=np.zeros(3))
        else:
            np.savez(cache, train_x=np.zeros((3, 5), np.uint8), train_y=np.zeros(7, np.int64),
                     test_x=np.zeros((2, 64, 64, 3), np.float64), test_y=np.full(2, 10**6))
    return what


def svhn_case(rng: random.Random, root: Path) -> str:
    from scipy.io import savemat

    what = rng.choice(["shape", "labels", "strings", "garbage", "empty"])
    for name, n in (("train_32x32.mat", 20), ("test_32x32.mat", 10)):
        x, y = np.zeros((32, 32, 3, n), np.uint8), (np.arange(n) % 10 + 1).reshape(-1, 1)
        if what == "shape":
            x = np.zeros((7, 5, n), np.uint8)
        elif what == "labels":
            y = np.full((n, 1), rng.choice([-1, 0, 11, 2**31 - 1]))
        if what == "garbage":
            (root / name).write_bytes(rbytes(rng, 300))
        elif what == "empty":
            savemat(root / name, {})
        elif what == "strings":
            savemat(root / name, {"X": "not an array", "y": "x"})
        else:
            savemat(root / name, {"X": x, "y": y})
    return what


def test_hostile_headers_in_every_data_format(request, workspace):
    """Word-vector, IDX, Tiny ImageNet, SVHN and CIFAR files whose headers lie, and odd
    ``task.columns`` lists: a result or a one-paragraph error."""
    rng = random.Random(SEED + 21)
    folder = workspace["root"] / "headers"
    folder.mkdir(exist_ok=True)
    sent = model_file(folder, "sent.yaml", fz.SENTENCE_MODEL)
    series = model_file(folder, "series.yaml", fz.SERIES_MODEL)
    train = folder / "train.txt"
    train.write_text("".join(f"{i % 2} {' '.join(rng.choice(fz.WORDS) for _ in range(5))}\n" for i in range(40)))
    csv = folder / "s.csv"
    csv.write_text("\n".join(",".join(row) for row in fz.series_text(rng)) + "\n")
    formats = ["vectors", "vectors", "idx", "idx", "tiny", "tiny", "tiny", "columns", "columns", "svhn", "cifar"]
    for i in range(scale(request, 50)):
        fmt = formats[i % len(formats)] if i < len(formats) else rng.choice(formats)
        case = folder / f"c{i}"
        case.mkdir()
        out = case / "run"
        if fmt == "vectors":
            what, name, raw = w2v_case(rng)
            (case / name).write_bytes(raw)
            outcome = run_cli([sent, "--check", "--set", f"task.train_file={train}", "--set",
                               f"task.vectors={case / name}"], limit=30)
        elif fmt == "idx":
            what, raw = idx_header_case(rng)
            raw_dir = case / "FashionMNIST" / "raw"
            raw_dir.mkdir(parents=True)
            (raw_dir / "train-images-idx3-ubyte").write_bytes(raw)
            (raw_dir / "train-labels-idx1-ubyte").write_bytes(fz.idx_bytes(np.arange(40) % 10))
            (raw_dir / "t10k-images-idx3-ubyte").write_bytes(fz.idx_bytes(fz.rng_images(rng, 10)))
            (raw_dir / "t10k-labels-idx1-ubyte").write_bytes(fz.idx_bytes(np.arange(10) % 10))
            outcome = run_cli([workspace["model"], "--data-root", case, "--set", "task.dataset=fashion_mnist",
                               "--set", "populations.h1.size=4", "--out", out], limit=60)
        elif fmt == "tiny":
            what = tiny_case(rng, case)
            outcome = run_cli([workspace["model"], "--data-root", case, *TINY_SETS, "--out", out], limit=60)
        elif fmt == "svhn":
            what = svhn_case(rng, case)
            outcome = run_cli([workspace["model"], "--data-root", case, "--set", "task.dataset=svhn",
                               "--out", out], limit=60)
        elif fmt == "cifar":
            cifar = case / "cifar-10-batches-py"
            cifar.mkdir()
            what = rng.choice(["garbage", "empty", "wrong dict"])
            for name in [f"data_batch_{k}" for k in range(1, 6)] + ["test_batch", "batches.meta"]:
                (cifar / name).write_bytes(rbytes(rng, 100) if what == "garbage" else b"" if what == "empty"
                                           else pickle.dumps({"data": [1, 2], "labels": "x"}))
            outcome = run_cli([workspace["model"], "--data-root", case, "--set", "task.dataset=cifar10",
                               "--out", out], limit=60)
        else:
            what = rng.choice(["[]", "[0]", "[-1]", "[999]", "[nope]", "[1.5]", "[true]", "[null]", "[s0, s0]",
                               "[1, 1]", "s0", "{}", "[[1]]", f"[{10**20}]", "['']"])
            outcome = run_cli([series, "--set", f"task.file={csv}", "--set", f"task.columns={what}", "--out", out],
                              limit=60)
        record("headers", f"{i}:{fmt}:{what}", outcome)
        if outcome.kind == "ok" and out.is_dir() and (why := readable(out)):
            record("headers", f"{i} [{why}]", outcome, extra="unreadable checkpoint or recording")
        shutil.rmtree(case, ignore_errors=True)
    check_failures("headers")


# ------------------------------------------------------------------- 8: devices, threads, optimizers
DEVICES = ["mps", "meta", "cuda:99", "cuda", "garbage", "cpu:0", "cuda:-1", "", "auto", "xla", "vulkan", "cpu,cuda",
           "cuda:1e9", " cpu", "CPU", "hpu", "ipu", "privateuseone", "lazy", "cuda:99999999999999999999", "cpu:1",
           "mkldnn", "opengl", "fpga", "ve", "mtia", "xpu", "cuda:0:0", "\0"]
THREADS = ["100000", "0", "-1", "2147483648", "99999999999999999999", "1.5", "x", "", "65536", "-2147483648"]
OPTIMIZERS = [["optimizer.lr=-1"], ["optimizer.lr=0"], ["optimizer.lr=1e308"], ["optimizer.lr=.nan"], ["optimizer.lr=.inf"],
              ["optimizer.type=momentum", "optimizer.momentum=-1"], ["optimizer.type=momentum", "optimizer.momentum=1e9"],
              ["optimizer.type=momentum", "optimizer.nesterov=true", "optimizer.momentum=0"],
              ["optimizer.betas=[2, 0.5]"], ["optimizer.betas=[0.9]"], ["optimizer.betas=[]"],
              ["optimizer.betas=[0.9, 0.999, 0.5]"], ["optimizer.betas=[-0.1, 0.999]"], ["optimizer.betas=[0.9, 1.0]"],
              ["optimizer.eps=-1"], ["optimizer.eps=0"], ["optimizer.weight_decay=-1"], ["optimizer.weight_decay=.nan"],
              ["optimizer.type=adamw", "optimizer.weight_decay=-5"], ["optimizer.type=sgd", "optimizer.lr=-0.5"],
              ["optimizer.betas=[.nan, 0.9]"], ["optimizer.eps=.inf"]]


def test_odd_devices_threads_and_optimizer_options(request, workspace):
    """--device values torch has or has not, --threads values out of range (subprocesses:
    one that segfaults must not take the fuzzer down) and optimizer options torch refuses."""
    rng = random.Random(SEED + 22)
    folder = workspace["root"] / "device"
    folder.mkdir(exist_ok=True)
    text = model_file(folder, "text.yaml", fz.CHARLM_MODEL)
    book = folder / "book.txt"
    book.write_text(" ".join(rng.choice(fz.WORDS) for _ in range(400)) + "\n")
    charlm = folder / "charlm"
    assert run_cli([text, "--set", f"task.text={book}", "--out", charlm], limit=120).kind == "ok"
    for i in range(scale(request, 30)):
        device = DEVICES[i % len(DEVICES)] if i < len(DEVICES) else rng.choice(DEVICES)
        where = rng.choice(["run", "run", "check", "sample", "resume"])
        out = folder / f"d{i}"
        if where == "run":
            outcome = run_cli([workspace["model"], "--device", device, "--out", out], limit=60)
        elif where == "check":
            outcome = run_cli([workspace["model"], "--device", device, "--check"], limit=30)
        elif where == "sample":
            outcome = run_cmd(["sample", charlm, "--device", device, "--length", "3"], limit=30)
        else:
            run = fresh_copy(workspace["reference"], out)
            outcome = run_cli(["--resume", run, "--epochs", "2", "--device", device], limit=60)
        record("device", f"{i}:{where} --device {device!r}", outcome)
        if outcome.kind == "ok" and out.is_dir() and (why := readable(out)):
            record("device", f"{i} [{why}]", outcome, extra="unreadable checkpoint or recording")
        shutil.rmtree(out, ignore_errors=True)
    for i in range(scale(request, 8)):
        sets = OPTIMIZERS[i % len(OPTIMIZERS)] if i < len(OPTIMIZERS) else rng.choice(OPTIMIZERS)
        out = folder / f"opt{i}"
        argv = [workspace["model"], "--out", out]
        for s in sets:
            argv += ["--set", s]
        outcome = run_cli(argv, limit=60)
        record("device", f"optimizer {i}:{' '.join(sets)}", outcome)
        shutil.rmtree(out, ignore_errors=True)
    for i in range(scale(request, 1)):
        threads = THREADS[i % len(THREADS)] if i < len(THREADS) else rng.choice(THREADS)
        out = folder / f"t{i}"
        proc = fz._subprocess([workspace["model"], "--threads", threads, "--out", out])
        outcome = fz._finish(proc, 120)
        if outcome.code is not None and outcome.code < 0:
            outcome.kind = f"signal {-outcome.code}"
        record("device", f"threads {i}:--threads {threads!r}", outcome)
        shutil.rmtree(out, ignore_errors=True)
    check_failures("device")


# ------------------------------------------------------------------- 9: results, wording
RESULTS_ARGS = ["--only", "digits", "--seeds", "0", "--epochs", "1", "--tune", "1", "--tune-epochs", "1",
                "--set", "training.max_steps_per_epoch=2"]
MARKERS = ("<!-- results rules: begin (scripts/results.py --suite rules writes this part) -->\n",
           "<!-- results rules: end -->\n")


def page_case(rng: random.Random) -> tuple[str, bytes]:
    begin, end = MARKERS
    what = rng.choice(["good", "none", "begin only", "end only", "reversed", "twice", "empty", "binary", "other suite",
                       "bare begin"])
    text = {"good": "# R\n\n" + begin + "old\n" + end, "none": "# Results\n\nno markers here\n",
            "begin only": "# R\n" + begin + "old\n", "end only": "# R\n" + end, "reversed": "# R\n" + end + begin,
            "twice": begin + end + begin + end, "empty": "",
            "binary": None, "other suite": begin.replace("rules", "dendritic") + end.replace("rules", "dendritic"),
            "bare begin": "<!-- results rules: begin -->\nold\n<!-- results rules: end -->\n"}[what]
    return what, rbytes(rng, 200) if text is None else text.encode()


def results_json_case(rng: random.Random) -> tuple[str, bytes | None]:
    what = rng.choice(["absent", "good", "bad json", "list", "rules int", "rules list", "null", "string", "binary",
                       "empty", "huge", "nested wrong", "nan"])
    raw = {"absent": None, "good": b"{}", "bad json": b'{"rules": 5', "list": b"[1, 2]", "rules int": b'{"rules": 5}',
           "rules list": b'{"rules": []}', "null": b"null", "string": b'"x"', "binary": rbytes(rng, 100), "empty": b"",
           "huge": b"9" * 5000, "nested wrong": b'{"rules": {"comparisons": 7, "suite": 3}}',
           "nan": b'{"rules": NaN}'}[what]
    return what, raw


@pytest.fixture(scope="module")
def results_out(workspace):
    """A finished tiny suite (digits, 1 seed, 1 trial): later ``results`` calls only collect it."""
    out = workspace["root"] / "results-suite"
    page = workspace["root"] / "results-setup" / "docs" / "results.md"
    page.parent.mkdir(parents=True)
    page.write_text("# R\n\n" + "".join(MARKERS))
    outcome = run_cmd(["results", *RESULTS_ARGS, "--out", out, "--update", page], limit=600)
    assert outcome.kind == "ok", outcome.err[-3000:]
    return out


def test_results_with_damaged_pages_and_results_files(request, workspace, results_out):
    """``dendrisim results --update PAGE`` over a finished suite, with a damaged
    results.json or a page without (or with broken) markers: a result or one paragraph,
    and the repository's own results.json and pages untouched."""
    rng = random.Random(SEED + 23)
    folder = workspace["root"] / "results"
    folder.mkdir(exist_ok=True)
    repo_files = {p: p.read_bytes() for p in (fz.REPO / "results.json", fz.REPO / "docs" / "results.md") if p.exists()}
    for i in range(scale(request, 16)):
        case = folder / f"c{i}"
        (case / "docs").mkdir(parents=True)
        what_page, page_raw = page_case(rng)
        what_json, json_raw = results_json_case(rng)
        page = case / "docs" / "results.md"
        page.write_bytes(page_raw)
        if json_raw is not None:
            (case / "results.json").write_bytes(json_raw)
        update = rng.choice([page] * 6 + [case / "docs", case / "missing.md", "", "/proc/fuzz.md"])
        outcome = run_cmd(["results", *RESULTS_ARGS, "--out", results_out, "--update", update], limit=60)
        record("results", f"{i}:page {what_page}, results.json {what_json}, --update {str(update)[-30:]!r}", outcome)
        shutil.rmtree(case, ignore_errors=True)
    # --out '' (the working folder?) from an empty folder: a refusal, never a suite in the cwd
    empty = folder / "cwd"
    empty.mkdir()
    with contextlib.chdir(empty):
        outcome = run_cmd(["results", *RESULTS_ARGS, "--out", ""], limit=10)
    if outcome.kind in ("error", "usage"):
        record("results", "--out ''", outcome)
    else:
        bad("results", "--out ''", outcome, "--out '' not refused",
            f"{outcome.kind}; files: {sorted(p.name for p in empty.iterdir())[:5]}")
    changed = [str(p) for p, raw in repo_files.items() if p.read_bytes() != raw]
    if changed:
        bad("results", "repository", outcome, "the repository's files changed", str(changed))
    check_failures("results")


def test_errors_name_the_right_problem(request, workspace):
    """Errors that must name what is wrong (issue 29, class 9)."""
    folder = workspace["root"] / "wording"
    folder.mkdir(exist_ok=True)
    afile = folder / "a_file"
    afile.write_text("x")
    rec = workspace["reference"] / "recording.h5"
    cases = [
        ("patience 0", [workspace["model"], "--check", "--set", "training.early_stopping.patience=0"], "patience",
         "not a mapping"),
        ("patience -1", [workspace["model"], "--check", "--set", "training.early_stopping.patience=-1"], "patience",
         "not a mapping"),
        ("alignment every 0", [workspace["model"], "--check", "--set", "training.alignment.every=0"], "every",
         "not a mapping"),
        ("alignment probe 0", [workspace["model"], "--check", "--set", "training.alignment.probe_size=0"], "probe_size",
         "not a mapping"),
        ("plot under a file", ["plot", rec, "--out", afile / "plots"], str(afile.name), "damaged"),
        ("plot into /proc", ["plot", rec, "--out", "/proc/fuzz-plots"], "/proc", "damaged"),
        ("plot into a file", ["plot", rec, "--out", afile], str(afile.name), "damaged"),
    ]
    for label, argv, must, must_not in cases:
        outcome = run_cmd(argv, limit=30) if argv[0] == "plot" else run_cli(argv, limit=30)
        text = outcome.err
        wrong = outcome.kind == "error" and (must not in text or must_not in text)
        if wrong:
            bad("wording", label, outcome, "names the wrong problem", text.strip()[:300])
        elif outcome.kind == "error":
            record("wording", label, outcome)
        else:
            bad("wording", label, outcome, f"{outcome.kind} (expected an error)", f"naming {must!r}")
    for label, argv in [("run --out ''", [workspace["model"], "--out", ""]),
                        ("plot --out ''", ["plot", rec, "--out", ""])]:
        empty = folder / f"cwd-{label.split()[0]}"
        empty.mkdir()
        with contextlib.chdir(empty):
            outcome = run_cmd(argv, limit=30) if argv[0] == "plot" else run_cli(argv, limit=30)
        left = sorted(p.name for p in empty.iterdir())
        if outcome.kind in ("error", "usage"):
            record("wording", label, outcome)
        else:
            bad("wording", label, outcome, "--out '' not refused", f"{outcome.kind}: wrote {left[:5]}")
    check_failures("wording")
