"""A fuzzer of the ways in and out that issue 30 added, from the outside (docs, ``--help``
and the public API only).

- ``npz``: a classification task reading a lab's own ``.npz`` (``task: {dataset: file,
  file: PATH}``): object arrays carrying a pickle that would touch a canary file, pickles and
  other bytes under the name, wrong or extra keys, a zip member claiming a huge shape,
  NaN/inf/out-of-float32 values, mismatched lengths, 0-d and 1-d arrays, bool, complex,
  string, datetime and structured dtypes, labels negative, fractional, huge or of one class,
  one-hot labels, odd test and validation splits, few samples;
- ``csv``: the same task reading a ``.csv``: ragged rows, empty and header-only files, BOM,
  NUL bytes, bytes that are not UTF-8, UTF-16, quoted fields, giant numbers, text labels,
  padding, tabs, Windows and old-Mac newlines, one column, missing values, a second CSV
  of test samples, ``task.header`` and ``task.encoding`` set right or wrong;
- ``data``: ``dendrisim.Trainer(experiment, data=...)`` with dicts, ``dendrisim.OwnData``,
  lists, tuples, strings, None, wrong keys, nested lists, NumPy arrays and torch tensors of
  every dtype (bfloat16, half, complex, bool, sparse, non-contiguous);
- ``export``: ``dendrisim export RUN --nwb FILE`` from a copy of a finished run, whole or
  damaged (cut off, bytes flipped, attributes dropped or garbled, datasets missing, an
  incomplete recording, a foreign HDF5 file), onto a new file, an existing file of the user,
  a symlink to it, a dangling symlink, a folder, a FIFO, a missing folder, a name with odd
  characters, the recording itself, with and without ``--overwrite`` and ``--partial``;
- ``plot``: ``dendrisim plot RUN --format F --out DIR`` with odd formats, odd
  ``--population``/``--variable`` values, and ``--out`` at a file, a dangling symlink, a
  missing folder or an odd name, from a whole or damaged recording.
- ``seqreg``: the shipped ``dll_rnn_electricity_regression`` model as a user runs it (``dendrisim
  run|check MODEL --set task.file=PATH``) on hostile tables: ragged rows, empty, one-row and
  header-only files, BOM, NUL bytes, latin-1 and UTF-16 bytes, quoted fields, NaN/inf/giant
  numbers, text and date cells, one column, a constant input or target column, Windows and
  old-Mac newlines, tabs or semicolons, 1000 columns, duplicated header names;
  ``task.target_column`` 0, out of range, negative beyond the width, a float, a bool, a name
  absent, duplicated or without a header; ``task.columns`` with and without the target;
  ``sequence_length`` 1, 0, huge; the fractions at and beyond their bounds; exactly one
  window per part; the file a FIFO, a folder, a symlink loop or missing; and the network a
  user makes of the shipped one: its recurrent projection removed (also under forecasting),
  the output or input population given a wrong size, a softmax or sigmoid output, every
  registered rule.
- ``neurons``: neuron models as plug-ins (``dendrisim run|check MODEL --plugin FILE``, ``dendrisim
  neurons --plugin FILE [NAME]``): population types that are lists, numbers, null, empty,
  capitalised, unicode look-alikes or unknown; a plugin model's options given right or wrong
  (types, bounds, Literal values), on a model without options, on the input; unknown keys;
  recording variables a model does not declare; dynamics.mode euler; and plugin files from
  templates: a good model with options and a variable of its own, contract breaches (variables,
  flags, constants, Options), bugs of its own code at run time (integrate raising or leaving a
  rate of the wrong shape, from_config returning None, check raising, sys.exit) and files that
  break the plugin itself (a built-in or repeated name, not a NeuronModel, an import that
  raises, a syntax error, nothing registered, a steady-only model under euler). Besides the
  oracle below, a case that gave a bad type, option, variable or plugin must not end in a result.

The oracle (the project's): each case ends with exit 0 and finite results, or exit 2 and a
one-paragraph ``error: ...`` (``note:`` lines aside; argparse's usage error counts) with no
traceback, in-process through ``dendrisim.commands.main`` (what the installed command
runs) or through the Python API (a result, or one of the package's errors with a
one-paragraph message); it never hangs (a time limit per case), never changes the user's
input files or another run's files (a finished reference run is hashed around every case),
never unpickles (a canary file) and never writes outside its output. ``export`` also: an
existing file is kept without ``--overwrite``, a target that is not a regular file (a FIFO
stands for ``/dev/null``) is never replaced, what it writes reads back with pynwb, no
temporary file is left. ``plot`` also: every figure has the asked format, and a heatmap
asked for data the recording lacks is an error or a note, never silently dropped.

Cases are generated from ``DENDRISIM_FUZZ_SEED`` (default 30), so a failure reruns exactly.
The CI part runs 1,950 cases (npz 600, csv 600, data 300, export 200, plot 60, seqreg 150, neurons 40;
about a minute on one thread); ``--long`` ten times as many. The counts by kind and outcome are printed at the end (``fuzz: ...``).
Below the fuzzer, one small test per bug family it found, each with the real oracle.
"""
from __future__ import annotations

import builtins
import contextlib
import copy
import hashlib
import io
import json
import math
import os
import random
import shutil
import signal
import stat
import time
import traceback
import warnings
import zipfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np
import pytest
import yaml

#: (kind, outcome) -> cases
COUNTS: Counter = Counter()
#: (kind, case, outcome, detail)
FAILURES: list[tuple[str, str, str, str]] = []
SEED = int(os.environ.get("DENDRISIM_FUZZ_SEED", "30"))

BASE = {
    "name": "own",
    "task": {"type": "classification", "dataset": "file", "file": "data.npz", "batch_size": 16},
    "populations": {
        "input": {"type": "input", "size": "auto"},
        "h1": {"type": "pyramidal", "size": 6, "activation": "tanh"},
        "out": {"type": "pyramidal", "size": "auto", "activation": "softmax"},
    },
    "projections": [{"from": "input", "to": "h1"}, {"from": "h1", "to": "out"}],
    "plasticity": {"rule": "dll"},
    "optimizer": {"type": "adam", "lr": 0.003},
    "training": {"epochs": 1, "seed": 0, "max_steps_per_epoch": 2},
    "recording": {"every": 1, "samples": 4, "projections": {"h1->out": ["weight", "feedback"]}},
}


# the oracle's pieces shared with the whole-stack fuzzer (its scale, timeout and outcome)
from test_fuzz_stack import CaseTimeout, Outcome, _alarm, classify, scale  # noqa: E402


@contextlib.contextmanager
def time_limit(limit: float):
    previous = signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, limit)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def run_cli(argv: list, *, limit: float) -> Outcome:
    """The installed command's entry point, ``dendrisim.commands.main(argv)``, in this process."""
    from dendrisim.commands import main

    out, err = io.StringIO(), io.StringIO()
    start = time.perf_counter()
    code: Optional[int] = None
    crash = None
    try:
        with time_limit(limit), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), \
                warnings.catch_warnings():
            warnings.simplefilter("default")  # shown on stderr, as the installed command shows them
            code = main([str(a) for a in argv])
    except CaseTimeout:
        crash = "hang"
    except SystemExit as exc:  # argparse
        code = exc.code if isinstance(exc.code, int) else 2
    except BaseException:  # noqa: BLE001 - the oracle reports it
        crash = "crash"
        err.write(traceback.format_exc())
    return Outcome(code, out.getvalue(), err.getvalue(), crash or classify(code, out.getvalue(), err.getvalue()),
                   time.perf_counter() - start)


def run_api(call: Callable[[], Any], *, limit: float) -> Outcome:
    """A Python call: a dict of finite results, or the package's own error in one paragraph."""
    from dendrisim.errors import DendrisimError

    out, err = io.StringIO(), io.StringIO()
    start = time.perf_counter()
    kind = "ok"
    try:
        with time_limit(limit), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            result = call()
        if isinstance(result, dict) and any(isinstance(v, float) and not math.isfinite(v) for v in result.values()):
            kind = "nonfinite"
    except CaseTimeout:
        kind = "hang"
    except DendrisimError as exc:
        text = str(exc)
        kind = "error" if text and "\n" not in text.strip() and len(text) < 3000 else "paragraph"
        err.write(f"error: {text}\n")
    except BaseException:  # noqa: BLE001 - the oracle reports it
        kind = "crash"
        err.write(traceback.format_exc())
    return Outcome(None, out.getvalue(), err.getvalue(), kind, time.perf_counter() - start)


GOOD = {"ok", "error", "usage"}
#: bugs counted apart while they are open (the lead's call): (label, a text of the case's stderr or
#: outcome), e.g. ("known: empty held-out split", "'NoneType' object has no attribute 'to'")
KNOWN: list[tuple[str, str]] = []


def record(kind: str, case: str, outcome: Outcome, *, extra: str = "") -> None:
    what = extra or outcome.kind
    if what not in GOOD:
        what = next((label for label, text in KNOWN if text in outcome.err or text in what), what)
    COUNTS[(kind, what)] += 1
    if what not in GOOD and not what.startswith("known: "):
        FAILURES.append((kind, case, what, (outcome.err or outcome.out)[-1500:]))


def check_failures(kind: str) -> None:
    bad = [f for f in FAILURES if f[0] == kind]
    by = Counter(f[2] for f in bad)
    assert not bad, f"{len(bad)} bad {kind} cases ({dict(by)}); first ones:\n" + "\n".join(
        f"[{c}] {o}: {d}" for _, c, o, d in bad[:4])


def summary() -> str:
    outcomes: Counter = Counter()
    for (_, outcome), n in COUNTS.items():
        outcomes[outcome] += n
    lines = [f"fuzz: {sum(COUNTS.values())} input cases (seed {SEED}): "
             + ", ".join(f"{o} {n}" for o, n in sorted(outcomes.items()))]
    for kind in sorted({k for k, _ in COUNTS}):
        lines.append(f"fuzz:   {kind:<10} " + ", ".join(f"{o} {n}" for (k, o), n in sorted(COUNTS.items()) if k == kind))
    return "\n".join(lines)


class _Summary:
    """Registered as a plugin while this module runs: prints the counts at the end of the session."""

    def pytest_terminal_summary(self, terminalreporter):
        if COUNTS:
            for line in summary().splitlines():
                terminalreporter.write_line(line)


def tree_hash(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha1(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and not p.is_symlink()}


def file_hash(path: Path) -> Optional[str]:
    return hashlib.sha1(path.read_bytes()).hexdigest() if path.is_file() else None


class Canary:
    """Unpickled, it creates the canary file: an object array holding it must never be loaded."""

    path = "/nonexistent"

    def __reduce__(self):
        return (builtins.open, (self.path, "w"))


# ------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def workspace(tmp_path_factory, request):
    """A finished reference run on an .npz (never to change), its model file and a canary path."""
    if not getattr(request.config, "_fuzz_inputs_summary", None):
        request.config._fuzz_inputs_summary = _Summary()
        request.config.pluginmanager.register(request.config._fuzz_inputs_summary, "fuzz_inputs_summary")
    root = tmp_path_factory.mktemp("fuzz_inputs")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(48, 5)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64) + (x[:, 1] > 0.5)
    np.savez(root / "data.npz", x_train=x[:40], y_train=y[:40], x_test=x[40:], y_test=y[40:])
    model = root / "model.yaml"
    model.write_text(yaml.safe_dump(BASE, sort_keys=False))
    reference = root / "reference"
    outcome = run_cli(["run", model, "--out", reference, "--set", f"task.file={root / 'data.npz'}"], limit=120)
    assert outcome.kind == "ok", outcome.err[-3000:]
    canary = root / "canary"
    Canary.path = str(canary)
    return {"root": root, "model": model, "reference": reference, "hash": tree_hash(reference), "canary": canary}


@pytest.fixture(autouse=True)
def _reference_untouched(workspace):
    yield
    assert tree_hash(workspace["reference"]) == workspace["hash"], "the reference run's files changed"
    assert not workspace["canary"].exists(), "a data file was unpickled (the canary file exists)"


# --------------------------------------------------------------------- .npz files
X_DTYPES = [np.float32, np.float64, np.float16, np.uint8, np.int32, np.int64, np.bool_]
BAD_X_DTYPES = ["complex64", "complex128", "U8", "S8", "datetime64[s]", "timedelta64[s]", "V4", "struct", "object"]


def arrays_case(rng: random.Random) -> tuple[list[str], dict]:
    """(what was done, arrays) for one set of labelled arrays, most of them hostile."""
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return _arrays_case(rng)


def _arrays_case(rng: random.Random) -> tuple[list[str], dict]:
    done: list[str] = []
    tiny = rng.random() < 0.08
    n = rng.randint(1, 7) if tiny else rng.choice([8, 12, 40, 100])
    done += ["tiny"] if tiny else []
    shape = rng.choice([(rng.randint(1, 6),), (rng.randint(1, 5), rng.randint(1, 5)), (rng.randint(1, 3), 3, 3)])
    k = rng.randint(2, 5)
    gen = np.random.default_rng(rng.randrange(2**32))
    dtype = rng.choice(X_DTYPES)
    x = (gen.normal(size=(n, *shape)) * (50 if np.issubdtype(dtype, np.integer) else 1)).astype(dtype)
    arrays: dict[str, Any] = {"x_train": x, "y_train": gen.integers(0, k, n)}
    if rng.random() < 0.4:
        m = rng.randint(1, 10)
        arrays["x_test"], arrays["y_test"] = gen.normal(size=(m, *shape)).astype(np.float32), gen.integers(0, k, m)
    if rng.random() < 0.2:
        m = rng.randint(1, 10)
        arrays["x_val"], arrays["y_val"] = gen.normal(size=(m, *shape)).astype(np.float32), gen.integers(0, k, m)
    for _ in range(rng.choice([0, 1, 1, 1, 2, 3])):
        op = rng.choice(["value", "value", "xdtype", "ydtype", "label", "label", "yshape", "xshape", "count", "key",
                         "split", "onecls", "object"])
        name = rng.choice([a for a in arrays if a.startswith("x")] or ["x_train"])
        lab = "y" + name[1:]
        done.append(op)
        try:
            if op == "value" and name in arrays and np.asarray(arrays[name]).size:
                a = np.asarray(arrays[name], dtype=rng.choice([np.float32, np.float64, np.float16]))
                flat = a.reshape(-1)
                for _ in range(rng.randint(1, 3)):
                    flat[rng.randrange(flat.size)] = rng.choice([np.nan, np.inf, -np.inf, 1e39, -3.5e38, 3.4e38, 1e-45,
                                                                 1e300, 65504.0, 0.0])
                arrays[name] = a
            elif op == "xdtype" and name in arrays:
                bad = rng.choice(BAD_X_DTYPES)
                a = np.asarray(arrays[name])
                if bad == "struct":
                    arrays[name] = np.zeros(a.shape[:1], dtype=[("a", "f4"), ("b", "f4")])
                elif bad == "object":
                    arrays[name] = a.astype(object)
                else:
                    arrays[name] = np.zeros(a.shape, dtype=bad) if bad.startswith(("V", "datetime", "timedelta")) else a.astype(bad)
            elif op == "ydtype" and lab in arrays:
                y = np.asarray(arrays[lab])
                arrays[lab] = rng.choice([y + 0.5, y.astype(np.float32), y.astype(str), y.astype(bool), y.astype(np.uint64),
                                          y.astype(np.int8), y.astype(object), y.astype(np.complex64), y.astype("S4")])
            elif op == "label" and lab in arrays and np.asarray(arrays[lab]).size:
                y = np.asarray(arrays[lab]).astype(rng.choice([np.int64, np.float64]))
                y[rng.randrange(y.size)] = rng.choice([-1, -(2**40), k + 1, 1000, 2**62, 10**6, 0.5])
                if y.dtype.kind == "f" and rng.random() < 0.3:
                    y[rng.randrange(y.size)] = rng.choice([np.nan, np.inf])
                arrays[lab] = y
            elif op == "yshape" and lab in arrays:
                y = np.asarray(arrays[lab])
                arrays[lab] = rng.choice([y.reshape(-1, 1), np.eye(k)[np.clip(y.astype(np.int64), 0, k - 1)],
                                          np.int64(1), y[:, None, None]])
            elif op == "xshape" and name in arrays:
                a = np.asarray(arrays[name])
                arrays[name] = rng.choice([np.float32(1.0), a.reshape(a.shape[0], -1)[:, 0], np.zeros((a.shape[0], 0), a.dtype),
                                           a[..., None, None], a.reshape(-1)])
            elif op == "count" and lab in arrays and np.ndim(arrays[lab]) and len(arrays[lab]):
                arrays[lab] = arrays[lab][: rng.randrange(len(arrays[lab]))] if rng.random() < 0.7 else \
                    np.concatenate([arrays[lab], arrays[lab][:1]])
            elif op == "key":
                key = rng.choice(list(arrays))
                how = rng.randrange(4)
                if how == 0:
                    del arrays[key]
                elif how == 1:
                    arrays[rng.choice([key.upper(), key + " ", "x-train", "X", "arr_0", "", "x_train/..", "é"])] = arrays.pop(key)
                elif how == 2:
                    arrays[rng.choice(["z", "x_extra", "meta", "y_valid"])] = np.zeros(3)
                else:
                    arrays[key] = np.zeros((0,) + np.shape(arrays[key])[1:], dtype=np.asarray(arrays[key]).dtype)
            elif op == "split":
                which = rng.choice(["test", "val"])
                m = rng.randint(0, 6)
                got = rng.randrange(4)
                if got == 0:
                    arrays[f"x_{which}"] = np.zeros((m, *shape, 2), np.float32)  # another sample shape
                    arrays[f"y_{which}"] = np.zeros(m, np.int64)
                elif got == 1:
                    arrays[f"x_{which}"] = np.zeros((m, *shape), np.float32)  # samples without labels
                    arrays.pop(f"y_{which}", None)
                elif got == 2:
                    arrays[f"y_{which}"] = np.zeros(m, np.int64)  # labels without samples
                    arrays.pop(f"x_{which}", None)
                else:
                    arrays[f"x_{which}"] = np.zeros((m, *shape), np.float32)
                    arrays[f"y_{which}"] = np.full(m, rng.choice([k + 3, 0, -2]))
            elif op == "onecls" and lab in arrays:
                arrays[lab] = np.zeros(np.shape(arrays[lab]), np.int64)
            elif op == "object" and name in arrays:
                a = np.empty(np.shape(arrays[name])[:1] + (1,), dtype=object)
                a[...] = Canary()
                arrays[name] = a
        except (TypeError, ValueError, IndexError):  # an op that does not apply to what earlier ops made
            done[-1] += "(skipped)"
    return done, arrays


def npz_bytes(rng: random.Random, arrays: dict, done: list[str]) -> bytes:
    """The archive as np.savez writes it, or (sometimes) other bytes under its name."""
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    raw = buffer.getvalue()
    if rng.random() < 0.15:
        how = rng.choice(["truncate", "flip", "pickle", "npy", "empty", "random", "hugeshape", "member"])
        done.append("raw:" + how)
        if how == "truncate":
            raw = raw[: rng.randrange(len(raw))]
        elif how == "flip":
            raw = bytearray(raw)
            for _ in range(rng.randint(1, 8)):
                raw[rng.randrange(len(raw))] = rng.randrange(256)
            raw = bytes(raw)
        elif how == "pickle":
            import pickle

            raw = pickle.dumps(rng.choice([{"x_train": Canary()}, Canary(), arrays]))
        elif how == "npy":
            b = io.BytesIO()
            np.save(b, np.zeros((4, 3), np.float32))
            raw = b.getvalue()
        elif how == "empty":
            raw = b""
        elif how == "random":
            raw = bytes(rng.randrange(256) for _ in range(rng.randint(1, 2000)))
        else:
            claim = rng.choice(["(1000000000000, 3)", "(4, 1000000000000)", "(2**70,)", "(-1, 3)", "(3, 'a')",
                                "(10000000, 10000000, 10000000)"])
            descr = rng.choice(["'<f4'", "'|O'", "'<U99999999'", "'<f8'"])
            header = f"{{'descr': {descr}, 'fortran_order': False, 'shape': {claim}, }}"
            header += " " * (118 - len(header) % 64) + "\n"
            out = io.BytesIO()
            with zipfile.ZipFile(out, "w") as z:
                z.writestr("x_train.npy", b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header.encode()
                           + b"\0" * 64)
                b = io.BytesIO()
                np.save(b, np.arange(4) % 2)
                z.writestr("y_train.npy", b.getvalue())
                if how == "member":
                    z.writestr("../../escape.npy", b.getvalue())
            raw = out.getvalue()
    return raw


def run_data_file(workspace, kind: str, case: str, folder: Path, path: Path, extra: list[str]) -> None:
    """Check or run the model on ``path``; the file stays as it was and nothing escapes ``folder``."""
    before = file_hash(path)
    command = "check" if kind.endswith("check") else "run"
    argv = [command, workspace["model"], "--set", f"task.file={path}", *extra]
    if command == "run":
        argv += ["--out", folder / "run"]
    outcome = run_cli(argv, limit=30)
    record(kind.split()[0], case, outcome)
    if file_hash(path) != before:
        record(kind.split()[0], case, outcome, extra="changed the input file")
    stray = sorted(p.name for p in folder.iterdir() if p.name not in {path.name, "run", "test.csv"})
    if stray:
        record(kind.split()[0], case, outcome, extra=f"wrote outside its output: {stray}")
    shutil.rmtree(folder / "run", ignore_errors=True)


@pytest.mark.slow(reason="about 600 generated .npz files, each checked or trained for two steps")
def test_hostile_npz_files_end_in_a_result_or_one_paragraph(request, workspace):
    rng = random.Random(SEED * 1000 + 1)
    folder = workspace["root"] / "npz"
    folder.mkdir()
    for i in range(scale(request, 600)):
        done, arrays = arrays_case(rng)
        raw = npz_bytes(rng, arrays, done)
        path = folder / rng.choice(["data.npz", "data.NPZ", "d a t é.npz"])
        path.write_bytes(raw)
        extra = []
        if rng.random() < 0.15:
            extra = ["--set", f"task.classes={rng.choice([1, 2, 3, 50, 0, -1])}"]
        if rng.random() < 0.15:
            extra += ["--set", f"task.normalize={rng.choice(['standard', 'unit', 'none'])}"]
        run_data_file(workspace, "npz" + (" check" if rng.random() < 0.3 else ""), f"{i}:{'+'.join(done)}",
                      folder, path, extra)
        path.unlink()
    check_failures("npz")


# ---------------------------------------------------------------------- .csv files
def csv_case(rng: random.Random) -> tuple[list[str], bytes, list[str], Optional[bytes]]:
    """(what was done, the file's bytes, extra argv, the test file's bytes or None)."""
    done: list[str] = []
    tiny = rng.random() < 0.08
    n = rng.randint(0, 7) if tiny else rng.choice([10, 20, 60])
    done += ["tiny"] if tiny else []
    d = rng.randint(1, 6)
    k = rng.randint(2, 4)
    header = rng.random() < 0.5
    rows = [[f"{rng.gauss(0, 1):.4g}" for _ in range(d)] + [str(rng.randrange(k))] for _ in range(n)]
    names = [f"f{j}" for j in range(d)] + ["label"]
    extra: list[str] = []
    newline, encoding, sep = "\n", "utf-8", ","
    for _ in range(rng.choice([0, 1, 1, 1, 2, 3])):
        op = rng.choice(["ragged", "cell", "cell", "label", "label", "bom", "nul", "latin1", "utf16", "quote",
                         "pad", "sep", "newline", "onecol", "blank", "comment", "trailing", "empty", "headeronly",
                         "header", "encoding", "onecls", "wide", "testfile", "dupheader"])
        done.append(op)
        try:
            r = rng.randrange(len(rows)) if rows else None
            if op == "ragged" and rows:
                rows[r] = rows[r][: rng.randrange(len(rows[r]))] if rng.random() < 0.5 else rows[r] + ["1"] * rng.randint(1, 3)
            elif op == "cell" and rows:
                rows[r][rng.randrange(d)] = rng.choice(["NA", "", "nan", "NaN", "inf", "-inf", "1e400", "9" * 60, "abc",
                                                        "0x10", "1_000", "\u22121", "\uff11", "1,5", "true", " ", "1e-400",
                                                        "−0", "٣", "1.2.3", "--1", "+5", ".", "e5"])
            elif op == "label" and rows:
                rows[r][-1] = rng.choice(["-1", "1.5", "2.0", "cat", "", "NA", "99999999999999999999999", str(2**63),
                                          "1e3", "1e30", "inf", "nan", " 1 ", "0x1", str(10**6), "-0"])
            elif op == "quote":
                rows = [[f'"{c}"' for c in row] for row in rows]
                names = [f'"{c}"' for c in names]
            elif op == "pad":
                rows = [[f" {c}\t" for c in row] for row in rows]
            elif op == "sep":
                sep = rng.choice([";", "\t", " ", "|", ", "])
            elif op == "newline":
                newline = rng.choice(["\r\n", "\r", "\n\n", "\x85", "\u2028"])
            elif op == "onecol":
                rows = [[row[-1]] for row in rows]
                names = ["label"]
            elif op == "blank" and rows:
                rows.insert(r, [])
            elif op == "comment":
                rows.insert(0, ["# a comment"])
            elif op == "trailing":
                rows = [row + [""] for row in rows]
            elif op == "empty":
                rows, header = [], rng.random() < 0.5
            elif op == "headeronly":
                rows, header = [], True
            elif op == "header":
                extra += ["--set", f"task.header={rng.choice(['true', 'false', 'null', 'maybe', '1'])}"]
            elif op == "encoding":
                encoding = rng.choice(["latin-1", "cp1252", "utf-16", "utf-8"])
                extra += ["--set", f"task.encoding={rng.choice([encoding, encoding, 'nope', 'rot13', 'utf-32', 'base64'])}"]
            elif op == "onecls":
                for row in rows:
                    row[-1] = "0"
            elif op == "wide" and rows:
                extra_cols = rng.randint(50, 400)
                rows = [row[:-1] + ["0.5"] * extra_cols + row[-1:] for row in rows]
                names = names[:-1] + [f"w{j}" for j in range(extra_cols)] + names[-1:]
            elif op == "dupheader":
                names = ["a"] * len(names)
            elif op in ("bom", "nul", "latin1", "utf16", "testfile"):
                pass  # applied to the bytes below
        except (IndexError, ValueError):  # an op that does not apply to what earlier ops made
            done[-1] += "(skipped)"
    lines = ([sep.join(names)] if header else []) + [sep.join(row) for row in rows]
    text = newline.join(lines) + (newline if rng.random() < 0.8 else "")
    if "latin1" in done:
        text = text.replace("f0", "fé", 1).replace("0.", "0.", 1) + "1é,2,1" + newline
    raw = text.encode(encoding, errors="replace") if encoding != "utf-8" else text.encode("utf-8", errors="surrogatepass")
    if "latin1" in done:
        raw = text.encode("latin-1", errors="replace")
    if "utf16" in done:
        raw = text.encode("utf-16")
    if "bom" in done:
        raw = b"\xef\xbb\xbf" + raw
    if "nul" in done and raw:
        pos = rng.randrange(len(raw))
        raw = raw[:pos] + b"\0" * rng.randint(1, 3) + raw[pos:]
    test = None
    if "testfile" in done:
        cols = rng.choice([d + 1, d, d + 2])
        test_rows = [[f"{rng.gauss(0, 1):.3g}" for _ in range(cols - 1)] + [str(rng.choice([0, 1, k + 2, -1]))]
                     for _ in range(rng.choice([0, 1, 5]))]
        test = "\n".join(",".join(row) for row in test_rows).encode()
    return done, raw, extra, test


@pytest.mark.slow(reason="about 600 generated .csv files, each checked or trained for two steps")
def test_hostile_csv_files_end_in_a_result_or_one_paragraph(request, workspace):
    rng = random.Random(SEED * 1000 + 2)
    folder = workspace["root"] / "csv"
    folder.mkdir()
    for i in range(scale(request, 600)):
        done, raw, extra, test = csv_case(rng)
        path = folder / "data.csv"
        path.write_bytes(raw)
        if test is not None:
            (folder / "test.csv").write_bytes(test)
            extra = extra + ["--set", f"task.test_file={folder / 'test.csv'}"]
        test_before = file_hash(folder / "test.csv")
        run_data_file(workspace, "csv" + (" check" if rng.random() < 0.3 else ""), f"{i}:{'+'.join(done)}",
                      folder, path, extra)
        if file_hash(folder / "test.csv") != test_before:
            COUNTS[("csv", "changed the test file")] += 1
            FAILURES.append(("csv", f"{i}", "changed the test file", ""))
        (folder / "test.csv").unlink(missing_ok=True)
    check_failures("csv")


# ---------------------------------------------------- sequence_regression tables
SEQREG_MODEL = "dll_rnn_electricity_regression"
#: keep every case tiny: 3 hidden units, windows of 3, one epoch of two steps, one record
SEQREG_SMALL = ["task.data_root=null", "populations.h.size=3", "task.sequence_length=3", "training.epochs=1",
                "training.max_steps_per_epoch=2", "recording={every: 1, samples: 1}"]
SEQREG_RULES = ["dll", "bp", "fa", "dfa", "kp", "pc", "mc_basal", "mc_lateral", "mc_topdown"]
#: the shipped model's network without its recurrent projection h->h (a feedforward network)
SEQREG_FEEDFORWARD = "projections=[{from: input, to: h}, {from: h, to: out}]"


def seqreg_case(rng: random.Random) -> tuple[list[str], Any, list[str], str]:
    """(what was done, the file's bytes or a special kind ('fifo', 'folder', 'loop', 'missing'),
    the --set overrides, the command): a table for the shipped sequence-regression model,
    hostile in its bytes, its keys or the network a user made of the shipped one."""
    done: list[str] = []
    n = rng.choice([48, 60, 80, 120])
    d = rng.randint(2, 5)
    header = rng.random() < 0.4
    rows = [[f"{rng.gauss(0, 1):.4g}" for _ in range(d)] for _ in range(n)]
    names = [f"c{j}" for j in range(d)]
    sets: list[str] = []
    newline, encoding, sep, special = "\n", "utf-8", ",", None
    for _ in range(rng.choice([0, 1, 1, 1, 2, 3])):
        op = rng.choice(["ragged", "cell", "cell", "empty", "onerow", "headeronly", "bom", "nul", "latin1", "utf16",
                         "quote", "date", "onecol", "constin", "consttarget", "newline", "sep", "wide", "dupheader",
                         "blank", "trailing", "header", "encoding", "target", "target", "target", "columns",
                         "columns", "seqlen", "seqlen", "fractions", "fractions", "exact", "batch", "network",
                         "network", "network", "network", "network", "rule", "rule", "special"])
        done.append(op)
        try:
            r = rng.randrange(len(rows)) if rows else None
            if op == "ragged" and rows:
                rows[r] = rows[r][: rng.randrange(len(rows[r]))] if rng.random() < 0.5 else rows[r] + ["1"] * rng.randint(1, 3)
            elif op == "cell" and rows:
                rows[r][rng.randrange(len(rows[r]))] = rng.choice(
                    ["NA", "", "nan", "inf", "-inf", "1e400", "3e38", "-3e38", "1e-45", "9" * 60, "abc", "true",
                     "2021-01-01", "\u22121", "1,5", " ", "0x10", "1e30", "5e-324", "1e-200", '"1.5"'])
            elif op == "empty":
                rows = []
            elif op == "onerow":
                rows = rows[:1]
            elif op == "headeronly":
                rows, header = [], True
            elif op == "date":
                rows = [[f"2021-01-{i % 28 + 1:02d} {i % 24:02d}:00"] + row for i, row in enumerate(rows)]
                names = ["date"] + names
            elif op == "onecol":
                rows, names = [row[:1] for row in rows], names[:1]
            elif op == "constin" and rows:
                for row in rows:
                    row[0] = "1.5"
            elif op == "consttarget" and rows:
                for row in rows:
                    row[-1] = "7"
            elif op == "newline":
                newline = rng.choice(["\r\n", "\r", "\n\n"])
            elif op == "sep":
                sep = rng.choice([";", "\t", " ", ", "])
            elif op == "quote":
                rows = [[f'"{c}"' for c in row] for row in rows]
                names = [f'"{c}"' for c in names]
            elif op == "wide" and rows:
                rows = [row + [f"{rng.random():.3f}" for _ in range(1000)] for row in rows[:40]]
                names = names + [f"w{j}" for j in range(1000)]
            elif op == "dupheader":
                names = [names[0]] * len(names)
                header = True
            elif op == "blank" and rows:
                rows.insert(r, [])
            elif op == "trailing":
                rows = [row + [""] for row in rows]
            elif op == "header":
                sets.append(f"task.header={rng.choice(['true', 'false', 'null', 'maybe'])}")
            elif op == "encoding":
                encoding = rng.choice(["latin-1", "cp1252", "utf-16", "utf-8"])
                sets.append(f"task.encoding={rng.choice([encoding, encoding, 'nope', 'rot13', 'base64'])}")
            elif op == "target":
                sets.append("task.target_column=" + rng.choice(
                    ["0", "1", "2", "-1", f"{d}", f"{d + 1}", f"-{d}", f"-{d + 1}", "-100", "1.5", "true", "null",
                     "c0", "c1", f"c{d - 1}", "zz", "''", "[1]", "99999999999999999999999"]))
            elif op == "columns":
                sets.append("task.columns=" + rng.choice(
                    ["[1, 2]", "[1]", f"[{d}]", "[1, 1, 2]", "[1, 2, 2]", "[c0, c1]", f"[c{d - 1}]", "[c0, c0]",
                     "[]", "[0, 1]", "[-1, 1]", "[1.5]", "[date, c0]", "[zz]"]))
                if rng.random() < 0.5:
                    sets.append(f"task.target_column={rng.choice(['1', '-1', '2', 'c0', f'c{d - 1}', str(d)])}")
            elif op == "seqlen":
                sets.append(f"task.sequence_length={rng.choice(['1', '0', '-1', '2', '3', '1000', '100000', '2.5', 'true', 'null'])}")
            elif op == "fractions":
                sets += [f"task.validation_fraction={rng.choice(['0', '0.0', '1e-9', '0.5', '0.51', '1', '-0.1', 'nan'])}",
                         f"task.test_fraction={rng.choice(['0', '1e-9', '0.01', '0.5', '0.51', '1', '-0.2'])}"]
            elif op == "exact":  # exactly one window of 2 rows in each part: 6 rows, 2 training, 2 validation, 2 test
                rows = rows[:6]
                sets += ["task.sequence_length=2", "task.validation_fraction=0.5", "task.test_fraction=0.34"]
            elif op == "batch":
                sets.append(f"task.batch_size={rng.choice(['1', '100000', '0'])}")
            elif op == "network":
                sets += rng.choice([
                    [SEQREG_FEEDFORWARD], [SEQREG_FEEDFORWARD, "plasticity.rule=bp"],
                    ["populations.out.size=1"], [f"populations.out.size={rng.choice([2, 3])}"],
                    [f"populations.input.size={rng.choice([1, d - 1, d, d + 3])}"],
                    [f"populations.out.activation={rng.choice(['softmax', 'sigmoid', 'tanh', 'relu', 'linear'])}"],
                    ["task={type: forecasting, window: 4, horizon: 1}", SEQREG_FEEDFORWARD],
                    ["task={type: forecasting, window: 4, horizon: 1}"]])
                if sets[-1].startswith("task={"):  # a whole task block replaces the file key: give it again below
                    done[-1] += "(forecasting)"
            elif op == "rule":
                sets.append(f"plasticity.rule={rng.choice(SEQREG_RULES)}")
            elif op == "special":
                special = rng.choice(["fifo", "folder", "loop", "missing"])
                done[-1] += f"({special})"
        except (IndexError, ValueError):  # an op that does not apply to what earlier ops made
            done[-1] += "(skipped)"
    lines = ([sep.join(names)] if header else []) + [sep.join(row) for row in rows]
    text = newline.join(lines) + (newline if lines and rng.random() < 0.8 else "")
    raw = text.encode(encoding, errors="replace") if encoding != "utf-8" else text.encode("utf-8", errors="surrogatepass")
    if "latin1" in done:
        raw = (text.replace("c0", "cé", 1) + "1é,2" + newline).encode("latin-1", errors="replace")
    if "utf16" in done:
        raw = text.encode("utf-16")
    if "bom" in done:
        raw = b"\xef\xbb\xbf" + raw
    if "nul" in done and raw:
        pos = rng.randrange(len(raw))
        raw = raw[:pos] + b"\0" + raw[pos:]
    return done, special or raw, sets, "check" if rng.random() < 0.3 else "run"


@pytest.mark.slow(reason="about 150 generated tables, each checked or trained for two steps on the shipped model")
def test_hostile_seqreg_tables_end_in_a_result_or_one_paragraph(request, workspace):
    rng = random.Random(SEED * 1000 + 6)
    folder = workspace["root"] / "seqreg"
    folder.mkdir()
    for i in range(scale(request, 150)):
        done, raw, sets, command = seqreg_case(rng)
        path = folder / "table.csv"
        if raw == "fifo":
            os.mkfifo(path)
        elif raw == "folder":
            path.mkdir()
        elif raw == "loop":
            path.symlink_to(path.name)
        elif isinstance(raw, bytes):
            path.write_bytes(raw)
        before = file_hash(path)
        argv = [command, SEQREG_MODEL]
        for s in [*SEQREG_SMALL, *sets, f"task.file={path}"]:
            argv += ["--set", s]
        if command == "run":
            argv += ["--out", folder / "run"]
        outcome = run_cli(argv, limit=30)
        case = f"{i}:{command}:{'+'.join(done)}"
        record("seqreg", case, outcome)
        if file_hash(path) != before:
            record("seqreg", case, outcome, extra="changed the input file")
        stray = sorted(p.name for p in folder.iterdir() if p.name not in {path.name, "run"})
        if stray:
            record("seqreg", case, outcome, extra=f"wrote outside its output: {stray}")
        if path.is_dir() and not path.is_symlink():
            path.rmdir()
        else:
            path.unlink(missing_ok=True)
        shutil.rmtree(folder / "run", ignore_errors=True)
    check_failures("seqreg")


# ------------------------------------------------------------ neuron models and plugins
#: the plugin templates: NAME is the model's registered name (unique per case), the rest is chosen
#: per case; each is (label, source, whether loading it must fail)
NEURON_HEADER = ("import dataclasses\nfrom typing import Literal\nimport torch\nimport dendrisim\n"
                 "from dendrisim.neurons import NeuronModel, PyramidalPopulation\n")
NEURON_OPTIONS = '''
@dataclasses.dataclass(frozen=True)
class Opts(dendrisim.NeuronOptions):
    gain: float = dendrisim.option(1.0, "a gain", gt=0, le=10)
    count: int = dendrisim.option(2, "a count", ge=1)
    flag: bool = dendrisim.option(False, "a flag")
    style: Literal["a", "b"] = dendrisim.option("a", "a style")
'''
NEURON_GOOD = NEURON_OPTIONS + '''
@dendrisim.register_neuron("NAME")
class Model(PyramidalPopulation):
    Options = Opts
    variables = {**PyramidalPopulation.variables, "gained": "the gained drive"}

    @classmethod
    def from_config(cls, name, shape, config, *, options, simulated):
        pop = super().from_config(name, shape, config, options=options, simulated=simulated)
        pop.gain = options.gain
        return pop

    def integrate(self, s, basal):
        self.gained = basal * self.gain
        return super().integrate(basal * self.gain)
'''
#: contract breaches (each must fail where the file is loaded) and run-time bugs of the model's own code
NEURON_BREACHES = {
    "variables-list": 'variables = ["soma", "rate"]',
    "no-rate": 'variables = {"soma": "u"}',
    "variable-name": 'variables = {**PyramidalPopulation.variables, "a b": "x"}',
    "variable-shadow": 'variables = {**PyramidalPopulation.variables, "forward": "x"}',
    "variable-meaning": 'variables = {**PyramidalPopulation.variables, "x": 3}',
    "flag": 'offers_output = "yes"',
    "constants-str": 'constants = "tau"',
    "constants-key": 'constants = ("tau", "g_leak", "g_nope", "g_apical")',
    "second-input": 'second_input = "dendrite"',
    "nudged-apical": "takes_nudging = True",
    "signature": "def integrate(self):\n        return None",
    "summary": "summary = 3",
    "options-plain": "Options = dict",
    "options-clash": "Options = dataclasses.make_dataclass('O', [('size', int, 3)], bases=(dendrisim.NeuronOptions,), frozen=True)",
    "options-type": "Options = dataclasses.make_dataclass('O', [('table', dict, dataclasses.field(default_factory=dict))], bases=(dendrisim.NeuronOptions,), frozen=True)",
    "options-default": "Options = dataclasses.make_dataclass('O', [('tau', float, dendrisim.option(-1.0, 'x', gt=0))], bases=(dendrisim.NeuronOptions,), frozen=True)",
}
NEURON_BUGS = {
    "integrate-raises": "def integrate(self, s, basal):\n        raise RuntimeError('boom')",
    "integrate-shape": "def integrate(self, s, basal):\n        super().integrate(s, basal)\n        s.rate = s.rate[:, :1]\n        return s.rate",
    "integrate-dtype": "def integrate(self, s, basal):\n        super().integrate(s, basal)\n        s.rate = s.rate.double()\n        return s.rate",
    "integrate-none": "def integrate(self, s, basal):\n        super().integrate(s, basal)\n        s.rate = None",
    "step-raises": "def step(self, s, u, basal, *, dt):\n        raise ValueError('step')",
    "from-config-none": "@classmethod\n    def from_config(cls, name, shape, config, *, options, simulated):\n        return None",
    "check-raises": "@classmethod\n    def check(cls, name, config, options, *, file):\n        return {}['x']",
    "check-refuses": "@classmethod\n    def check(cls, name, config, options, *, file):\n        raise dendrisim.ConfigError('no', file=file, path=f'populations.{name}')",
    "describe": "def describe(self):\n        return 5",
    "exit": "def integrate(self, s, basal):\n        raise SystemExit(3)",
}
NEURON_FILES = {  # whole files that break the plugin itself
    "builtin-name": '@dendrisim.register_neuron("pyramidal")\nclass M(PyramidalPopulation):\n    pass\n',
    "twice": '@dendrisim.register_neuron("NAME")\nclass M(PyramidalPopulation):\n    pass\n\n'
             '@dendrisim.register_neuron("NAME")\nclass N(PyramidalPopulation):\n    pass\n',
    "bad-name": '@dendrisim.register_neuron("NAME x")\nclass M(PyramidalPopulation):\n    pass\n',
    "number-name": '@dendrisim.register_neuron(3)\nclass M(PyramidalPopulation):\n    pass\n',
    "not-a-model": '@dendrisim.register_neuron("NAME")\nclass M:\n    pass\n',
    "function": '@dendrisim.register_neuron("NAME")\ndef m():\n    pass\n',
    "nothing": "x = 1\n",
    "import-raises": "raise KeyError('at import')\n",
    "syntax": "def (:\n",
    "exit": "import sys\nsys.exit(4)\n",
    "steady-only": ('from dendrisim.activations import ACTIVATIONS\n\n@dendrisim.register_neuron("NAME")\n'
                    'class M(NeuronModel):\n    variables = {"soma": "u", "basal": "b", "apical": "a", "rate": "r", '
                    '"error": "e"}\n    offers_apical = True\n\n    @classmethod\n    def from_config(cls, name, shape, '
                    'config, *, options, simulated):\n        pop = cls(name, shape)\n        pop.activation = '
                    'ACTIVATIONS.get(config.populations[name].activation)\n        return pop\n\n    def integrate(self, '
                    's, basal):\n        s.basal = s.soma = basal\n        s.rate = self.activation.f(basal)\n'
                    '        return s.rate\n\n    def derivative(self, s):\n        return self.activation.df(s.soma, '
                    's.rate)\n'),
}
#: an option of the good template -> (values a model file may give, values it must refuse)
NEURON_OPTION_VALUES = {
    "gain": (["0.5", "10", "1e-3", "3"], ["0", "-1", "11", "nan", "inf", "abc", "true", "null", "[1]", "{a: 1}", "1e400"]),
    "count": (["1", "7"], ["0", "-3", "1.5", "true", "x", "null", "99999999999999999999999"]),
    "flag": (["true", "false"], ["1", "yes_please", "null", "[true]"]),
    "style": (["a", "b"], ["c", "A", "1", "null", "[a]"]),
}
NEURON_BAD_TYPES = ["[pyramidal]", "3", "null", "''", "Pyramidal", "pyramídal", "{a: 1}", "true", "input", "lowpass",
                    "x" * 200, "'py ramidal'", "'\\0'", "1e3", "[]", "'pyramidal '"]


def neuron_case(rng: random.Random, i: int) -> tuple[list[str], Optional[str], list[str], list[str], bool]:
    """(what was done, the plugin file's source or None, the command and its arguments before the
    model, the --set overrides, whether it must end in an error): a model file whose populations
    name neuron models (built-in, a plugin's, or none) with options right or wrong, and plugin
    files from the templates above, good or breaking the contract."""
    name = f"fz{i}"
    done: list[str] = []
    sets: list[str] = []
    must_fail = False
    recorded: set[str] = set()
    source: Optional[str] = None
    plugin = rng.random() < 0.75
    where = rng.choice(["h1", "h1", "h1", "out", "input"])
    if plugin:
        kind = rng.choice(["good", "good", "good", "breach", "bug", "file"])
        if kind == "good":
            source = NEURON_GOOD
        elif kind == "breach":
            label = rng.choice(sorted(NEURON_BREACHES))
            source = NEURON_OPTIONS + (f'\n@dendrisim.register_neuron("NAME")\nclass Model(PyramidalPopulation):\n'
                                       f"    {NEURON_BREACHES[label]}\n")
            kind += f"({label})"
            must_fail = True
        elif kind == "bug":
            label = rng.choice(sorted(NEURON_BUGS))
            source = (f'@dendrisim.register_neuron("NAME")\nclass Model(PyramidalPopulation):\n'
                      f"    {NEURON_BUGS[label]}\n")
            kind += f"({label})"
        else:
            label = rng.choice(sorted(NEURON_FILES))
            source = NEURON_FILES[label]
            kind += f"({label})"
            must_fail = label != "steady-only"
        done.append("plugin:" + kind)
        source = NEURON_HEADER + source.replace("NAME", name)
        if rng.random() < 0.85:
            sets.append(f"populations.{where}.type={name}")
            done.append(f"{where}.type=plugin")
            if where == "input":
                must_fail = True
    for _ in range(rng.choice([0, 1, 1, 2])):
        op = rng.choice(["type", "option", "option", "option", "unknown", "euler", "record", "record"])
        done.append(op)
        if op == "type":
            pop = rng.choice(["h1", "out", "input"])
            sets.append(f"populations.{pop}.type={rng.choice([t for t in NEURON_BAD_TYPES if (t == 'input') != (pop == 'input')])}")
            done[-1] += f"({pop})"
            must_fail = True
        elif op == "option":
            key = rng.choice(sorted(NEURON_OPTION_VALUES))
            good, bad = NEURON_OPTION_VALUES[key]
            value = rng.choice(good + bad)
            pop = rng.choice([where, where, "h1", "input"])
            sets.append(f"populations.{pop}.{key}={value}")
            has_options = plugin and "plugin:good" in done and f"{pop}.type=plugin" in done
            must_fail = must_fail or not has_options or value in bad
            done[-1] += f"({pop}.{key}={'bad' if value in bad else 'good'})"
        elif op == "unknown":
            sets.append(f"populations.{rng.choice(['h1', 'out', 'input'])}.{rng.choice(['tau_dendrite', 'Gain', 'rate', 'soma'])}=1")
            must_fail = True
        elif op == "euler":
            sets += ["dynamics.mode=euler", "dynamics.steps=4"]
        elif op == "record":
            variables = rng.sample(["soma", "rate", "gained", "dendrite", "nudging", "nope", "forward"], rng.randint(1, 3))
            sets.append(f"recording.populations={{{where}: [{', '.join(variables)}]}}")
            done[-1] += f"({'+'.join(variables)})"
            recorded = set(variables)  # a later record op replaces the block
    if recorded:
        declared = ({"rate"} if where == "input" and f"{where}.type=plugin" not in done else
                    {"soma", "basal", "apical", "rate", "error"} | ({"gained"} if "plugin:good" in done else set()))
        must_fail = must_fail or not recorded <= declared  # a variable its model does not declare
    command = rng.choice(["check", "run", "run", "neurons"] if plugin else ["check", "run", "neurons"])
    return done, source, [command], sets, must_fail


@pytest.mark.slow(reason="about 40 generated model files and plugins, each checked, listed or trained for two steps")
def test_hostile_neuron_types_options_and_plugins_end_in_a_result_or_one_paragraph(request, workspace):
    import dendrisim.plugins as plugins
    from dendrisim.neurons import NEURONS

    rng = random.Random(SEED * 1000 + 7)
    folder = workspace["root"] / "neurons"
    folder.mkdir()
    entries, origins = dict(NEURONS._entries), dict(plugins.NEURON_ORIGIN)
    try:
        for i in range(scale(request, 40)):
            done, source, command, sets, must_fail = neuron_case(rng, i)
            path = folder / f"plugin_{i}.py"  # a new file per case: a loaded plugin stays loaded in this process
            argv = list(command)
            if source is not None:
                path.write_text(source)
                argv += ["--plugin", path]
            before = file_hash(path)
            if command[0] == "neurons":
                argv += [rng.choice([f"fz{i}", f"fz{i}", "pyramidal", "nosuch"])] if rng.random() < 0.6 else []
            else:
                argv.append(workspace["model"])
                for s in [*sets, f"task.file={workspace['root'] / 'data.npz'}"]:
                    argv += ["--set", s]
                if command[0] == "run":
                    argv += ["--out", folder / "run"]
            outcome = run_cli(argv, limit=30)
            case = f"{i}:{command[0]}:{'+'.join(done)}"
            record("neurons", case, outcome)
            if must_fail and command[0] != "neurons" and outcome.kind == "ok":
                record("neurons", case, outcome, extra="accepted a bad type, option or plugin")
            if file_hash(path) != before:
                record("neurons", case, outcome, extra="changed the plugin file")
            stray = sorted(p.name for p in folder.iterdir() if p.name not in {path.name, "run"}
                           and not p.name.startswith("plugin_") and p.name != "__pycache__")
            if stray:
                record("neurons", case, outcome, extra=f"wrote outside its output: {stray}")
            shutil.rmtree(folder / "run", ignore_errors=True)
    finally:  # the models it registered are gone after it (other tests list the registry)
        NEURONS._entries.clear()
        NEURONS._entries.update(entries)
        plugins.NEURON_ORIGIN.clear()
        plugins.NEURON_ORIGIN.update(origins)
    check_failures("neurons")


# ----------------------------------------------------------------- data= in memory
def as_container(rng: random.Random, arrays: dict, done: list[str]):
    """The arrays as a user might hand them to ``data=``: converted, or in a wrong container."""
    import torch

    import dendrisim

    def convert(a):
        how = rng.choice(["numpy", "numpy", "numpy", "numpy", "tensor", "tensor", "list", "list", "tensor-bf16", "tensor-half", "tensor-noncontig",
                          "tensor-sparse", "tensor-grad", "ragged", "memoryview", "masked"])
        done.append(how)
        try:
            if how == "numpy":
                return a
            if how == "list":
                return np.asarray(a).tolist()
            if how == "ragged":
                listed = np.asarray(a).tolist()
                if isinstance(listed, list) and listed and isinstance(listed[0], list) and listed[0]:
                    listed[0] = listed[0][:-1]
                return listed
            if how == "memoryview":
                return memoryview(np.ascontiguousarray(a))
            if how == "masked":
                return np.ma.masked_array(a, mask=np.zeros(np.shape(a), bool))
            t = torch.as_tensor(np.asarray(a))
            if how == "tensor-bf16" and t.is_floating_point():
                return t.to(torch.bfloat16)
            if how == "tensor-half" and t.is_floating_point():
                return t.half()
            if how == "tensor-noncontig" and t.ndim >= 2:
                return t.transpose(0, 1).contiguous().transpose(0, 1)
            if how == "tensor-sparse" and t.ndim >= 1 and t.dtype != torch.bool:
                return t.to_sparse()
            if how == "tensor-grad" and t.is_floating_point():
                return t.clone().requires_grad_(True)
            return t
        except (TypeError, ValueError, RuntimeError):
            return a  # no such tensor (strings, objects): the array as it is

    converted = {key: convert(value) for key, value in arrays.items()}
    shape = rng.random()
    if shape < 0.7:
        return converted
    if shape < 0.8:
        try:
            return dendrisim.OwnData(**converted)
        except TypeError:
            return converted
    done.append("container")
    return rng.choice([list(converted.values()), tuple(converted.values()), None, "data.npz", {}, 42,
                       {key.upper(): v for key, v in converted.items()}, {0: 1}, {"x_train": None, "y_train": None}])


@pytest.mark.slow(reason="about 300 generated data= arguments, each trained for two steps")
def test_hostile_data_in_memory_ends_in_a_result_or_one_paragraph(request, workspace):
    import dendrisim

    rng = random.Random(SEED * 1000 + 3)
    folder = workspace["root"] / "data"
    folder.mkdir()
    experiment = dendrisim.load(str(workspace["model"]), ["task.file=null"])
    for i in range(scale(request, 300)):
        done, arrays = arrays_case(rng)
        for key, value in arrays.items():  # no canary in memory: a deep copy would run its __reduce__ too
            if isinstance(value, np.ndarray) and value.dtype == object and value.size and isinstance(value.flat[0], Canary):
                arrays[key] = np.zeros(value.shape).astype(object)
        data = as_container(rng, arrays, done)
        kept = copy.deepcopy({k: np.asarray(v) for k, v in arrays.items() if isinstance(v, np.ndarray)
                              and v.dtype != object})
        out = folder / f"run{i}"
        outcome = run_api(lambda: dendrisim.Trainer(experiment, out=str(out), data=data).fit(), limit=30)
        record("data", f"{i}:{'+'.join(done)}", outcome)
        changed = [k for k, v in kept.items() if not np.array_equal(v, arrays[k], equal_nan=v.dtype.kind in "fc")]
        if changed:
            record("data", f"{i}:{'+'.join(done)}", outcome, extra=f"changed the caller's arrays: {changed}")
        shutil.rmtree(out, ignore_errors=True)
    check_failures("data")


# ------------------------------------------------------------------------- export
def damage_recording(rng: random.Random, run: Path, done: list[str]) -> None:
    """One kind of damage to the copy of a run (or none)."""
    import h5py

    rec = run / "recording.h5"
    how = rng.choice(["none", "none", "none", "truncate", "flip", "empty", "missing", "foreign", "incomplete",
                      "attr-del", "attr-bad", "dataset-del", "dataset-bad", "run.json", "dir", "fifo-rec"])
    done.append("rec:" + how)
    if how == "truncate":
        raw = rec.read_bytes()
        rec.write_bytes(raw[: rng.randrange(len(raw))])
    elif how == "flip":
        raw = bytearray(rec.read_bytes())
        for _ in range(rng.randint(1, 20)):
            raw[rng.randrange(len(raw))] = rng.randrange(256)
        rec.write_bytes(bytes(raw))
    elif how == "empty":
        rec.write_bytes(b"")
    elif how == "missing":
        rec.unlink()
    elif how == "foreign":
        rec.unlink()
        with h5py.File(rec, "w") as f:
            f["data"] = np.arange(10)
            f.attrs["created"] = "2020-01-01T00:00:00+0000"
    elif how == "dir":
        rec.unlink()
        rec.mkdir()
    elif how == "fifo-rec":
        rec.unlink()
        os.mkfifo(rec)
    elif how == "run.json":
        (run / "run.json").write_text(rng.choice(["{not json", "[]", "null", "", '{"argv": 5}']))
    else:
        with h5py.File(rec, "a") as f:
            names: list[str] = []
            f.visititems(lambda name, obj: names.append(name) if isinstance(obj, h5py.Dataset) else None)
            if how == "incomplete":
                f.attrs["complete"] = False
            elif how == "attr-del" and f.attrs:
                del f.attrs[rng.choice(list(f.attrs))]
            elif how == "attr-bad" and f.attrs:
                key = rng.choice(list(f.attrs) + ["model_yaml", "created", "complete"])
                f.attrs[key] = rng.choice(["{{{: not yaml", "not a date", "", "\udcff".encode("utf-8", "surrogatepass"),
                                           np.float64(np.nan), np.arange(3), -1, "x" * 10000, "[1, 2", "!!python/object:os.system"])
                done.append(key)
            elif how == "dataset-del" and names:
                name = rng.choice(names)
                del f[name]
                done.append(name)
            elif how == "dataset-bad" and names:
                name = rng.choice(names)
                old = f[name]
                shape, dtype = old.shape, old.dtype
                del f[name]
                f[name] = rng.choice([np.full(shape, np.nan, np.float32) if shape else np.float32(np.nan),
                                      np.zeros((0,), np.float32), np.array([b"text"]), np.arange(3),
                                      np.zeros(shape[:1] + (1,) * max(len(shape) - 1, 0), dtype) if shape else np.int64(1)])
                done.append(name)


@pytest.mark.slow(reason="about 200 exports of whole or damaged recordings to NWB, a quarter read back with pynwb")
def test_export_of_hostile_runs_and_targets_ends_in_a_result_or_one_paragraph(request, workspace):
    pytest.importorskip("pynwb")
    from pynwb import NWBHDF5IO

    rng = random.Random(SEED * 1000 + 4)
    folder = workspace["root"] / "export"
    folder.mkdir()
    for i in range(scale(request, 200)):
        case = folder / f"case{i}"
        case.mkdir()
        run = case / "run"
        shutil.copytree(workspace["reference"], run)
        done: list[str] = []
        damage_recording(rng, run, done)
        user = case / "mine.nwb"
        user.write_text("the user's own file")
        target_kind = rng.choice(["new", "new", "new", "existing", "symlink", "dangling", "folder", "fifo",
                                  "missing-folder", "odd", "recording", "in-run", "empty", "no-ext"])
        done.append("to:" + target_kind)
        target: Path = {
            "new": case / "out.nwb", "existing": user, "symlink": case / "link.nwb", "dangling": case / "dangling.nwb",
            "folder": case / "adir.nwb", "fifo": case / "fifo.nwb", "missing-folder": case / "no" / "such" / "x.nwb",
            "odd": case / rng.choice(["é ∂ 'q\"\n;x.nwb", " .nwb", "-x.nwb", "a\\b.nwb", "\u202eevil.nwb", "x" * 250 + ".nwb"]),
            "recording": run / "recording.h5", "in-run": run / "run.nwb", "empty": case / "unused", "no-ext": case / "plain",
        }[target_kind]
        if target_kind == "symlink":
            target.symlink_to(user)
        elif target_kind == "dangling":
            target.symlink_to(case / "nowhere" / "x.nwb")
        elif target_kind == "folder":
            target.mkdir()
        elif target_kind == "fifo":
            os.mkfifo(target)
        source = run if rng.random() < 0.7 else run / "recording.h5"
        flags = [f for f in ("--overwrite", "--partial") if rng.random() < 0.35]
        run_files = {p.name: file_hash(p) for p in run.iterdir() if p.is_file() and not stat.S_ISFIFO(p.lstat().st_mode)}
        user_hash = file_hash(user)
        name = f"{i}:{'+'.join(done)} {' '.join(flags)}"
        outcome = run_cli(["export", source, "--nwb", "" if target_kind == "empty" else target, *flags], limit=60)
        record("export", name, outcome)
        if target_kind == "fifo" and not stat.S_ISFIFO(os.lstat(target).st_mode):
            record("export", name, outcome, extra="replaced a FIFO (stands for /dev/null)")
        if file_hash(user) != user_hash and not (target_kind in ("existing", "symlink") and "--overwrite" in flags):
            record("export", name, outcome, extra="changed the user's file")
        if target_kind == "symlink" and "--overwrite" not in flags and not target.is_symlink():
            record("export", name, outcome, extra="replaced a symlink without --overwrite")
        for p in run.iterdir():
            if p.name in run_files and not (target_kind == "in-run" and p == target) and file_hash(p) != run_files[p.name]:
                record("export", name, outcome, extra=f"changed the run's {p.name}")
        leftovers = [p.name for p in (*case.iterdir(), *run.iterdir())
                     if p.name.endswith((".tmp", ".part")) or ".tmp" in p.name]
        if leftovers:
            record("export", name, outcome, extra="left temporary files")
        if outcome.kind == "ok" and target_kind != "empty" and rng.random() < 0.25:
            written = target if target.is_absolute() else Path.cwd() / target
            try:
                with NWBHDF5IO(str(written), "r") as nwb_io:
                    if not nwb_io.read().acquisition:
                        record("export", name, outcome, extra="wrote an NWB file with no series")
            except Exception as err:  # noqa: BLE001 - the oracle reports it
                record("export", name, outcome, extra=f"wrote an unreadable NWB file ({type(err).__name__})")
        shutil.rmtree(case, ignore_errors=True)
    check_failures("export")


# --------------------------------------------------------------------------- plot
FORMATS = ["png", "pdf", "svg", "PNG", "eps", "", ".png", "jpg", "png ", "svgz", "pdf,png"]


@pytest.mark.slow(reason="about 60 figure sets drawn with matplotlib")
def test_plot_of_hostile_runs_formats_and_folders_ends_in_a_result_or_one_paragraph(request, workspace):
    rng = random.Random(SEED * 1000 + 5)
    folder = workspace["root"] / "plot"
    folder.mkdir()
    for i in range(scale(request, 60)):
        case = folder / f"case{i}"
        case.mkdir()
        run = case / "run"
        shutil.copytree(workspace["reference"], run)
        done: list[str] = []
        if rng.random() < 0.4:
            damage_recording(rng, run, done)
        fmt = rng.choice(FORMATS[:3] * 6 + FORMATS[3:])
        out_kind = rng.choice(["new", "new", "new", "nested", "file", "dangling", "odd", "existing"])
        out = {"new": case / "figs", "nested": case / "a" / "b", "file": case / "afile", "dangling": case / "dangling",
               "odd": case / "é ∂ 'q\"\n;x", "existing": case / "full"}[out_kind]
        if out_kind == "file":
            out.write_text("x")
        elif out_kind == "dangling":
            out.symlink_to(case / "nowhere")
        elif out_kind == "existing":
            out.mkdir()
            (out / "keep.txt").write_text("keep")
        argv = ["plot", run, "--out", out, "--format", fmt]
        population = variable = None
        if rng.random() < 0.4:
            population = rng.choice(["h1", "out", "input", "nope", "", "../x", "H1"])
            argv += ["--population", population]
        if rng.random() < 0.4:
            variable = rng.choice(["rate", "soma", "apical", "basal", "error", "nope", "", "weight", "RATE"])
            argv += ["--variable", variable]
        done += [f"fmt:{fmt!r}", f"out:{out_kind}", f"pop:{population!r}", f"var:{variable!r}"]
        run_files = {p.name: file_hash(p) for p in run.iterdir() if p.is_file() and not stat.S_ISFIFO(p.lstat().st_mode)}
        name = f"{i}:{'+'.join(done)}"
        outcome = run_cli(argv, limit=60)
        record("plot", name, outcome)
        if outcome.kind == "ok":
            figures = [p for p in out.iterdir() if p.name != "keep.txt"] if out.is_dir() else []
            wrong = [p.name for p in figures if p.suffix != f".{fmt}"]
            if wrong or not figures:
                record("plot", name, outcome, extra=f"figures not in format {fmt!r}: {wrong or 'none'}")
            recorded = {"h1": {"rate", "soma", "apical", "basal", "error"}}
            asked_pop, asked_var = population or "h1", variable or "rate"
            heatmaps = [p for p in figures if p.name.startswith("heatmap")]
            damaged = any(d.startswith("rec:") and d != "rec:none" for d in done)
            if not damaged and asked_var not in recorded.get(asked_pop, set()) and not heatmaps \
                    and asked_var not in outcome.err:
                record("plot", name, outcome, extra="dropped the asked heatmap silently (no error, no note)")
        if out_kind == "existing" and (out / "keep.txt").read_text() != "keep":
            record("plot", name, outcome, extra="changed a file in --out")
        if out_kind == "file" and outcome.kind == "error" and "not a dendrisim recording" in outcome.err:
            record("plot", name, outcome, extra="blamed the recording for --out")
        for p in run.iterdir():
            if p.name in run_files and file_hash(p) != run_files[p.name]:
                record("plot", name, outcome, extra=f"changed the run's {p.name}")
        shutil.rmtree(case, ignore_errors=True)
    check_failures("plot")


# ------------------------------------------------------ one test per bug family found
def _npz(path: Path, **arrays) -> Path:
    np.savez(path, **arrays)
    return path


def test_a_file_of_few_samples_trains_or_is_refused(workspace, tmp_path):
    """Five samples leave the held-out validation split empty: an error, never a crash in evaluate."""
    data = _npz(tmp_path / "few.npz", x_train=np.random.default_rng(0).random((5, 3), np.float32),
                y_train=np.arange(5) % 2)
    outcome = run_cli(["run", workspace["model"], "--set", f"task.file={data}", "--out", tmp_path / "run"], limit=60)
    assert outcome.kind in GOOD, outcome.err[-2000:]


def test_few_samples_in_memory_train_or_raise_the_package_error(workspace, tmp_path):
    import dendrisim

    experiment = dendrisim.load(str(workspace["model"]), ["task.file=null"])
    outcome = run_api(lambda: dendrisim.Trainer(experiment, out=str(tmp_path / "run"), data={
        "x_train": np.zeros((2, 3), np.float32), "y_train": np.array([0, 1])}).fit(), limit=60)
    assert outcome.kind in GOOD, outcome.err[-2000:]


def test_an_npz_member_claiming_a_huge_shape_is_refused(workspace, tmp_path):
    """A 100-byte archive whose header claims 10^12 x 3 floats: one paragraph, no MemoryError."""
    header = "{'descr': '<f4', 'fortran_order': False, 'shape': (1000000000000, 3), }"
    header += " " * (118 - len(header)) + "\n"
    path = tmp_path / "huge.npz"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("x_train.npy", b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header.encode() + b"\0" * 48)
        b = io.BytesIO()
        np.save(b, np.arange(4) % 2)
        z.writestr("y_train.npy", b.getvalue())
    outcome = run_cli(["check", workspace["model"], "--set", f"task.file={path}"], limit=60)
    assert outcome.kind == "error", outcome.err[-2000:]


def test_a_csv_label_beyond_int64_is_named_as_written(workspace, tmp_path):
    """A label of 10^23 overflowed to -9223372036854775808 with numpy's RuntimeWarning on stderr."""
    path = tmp_path / "big.csv"
    path.write_text("".join(f"{i / 10},{i % 2}\n" for i in range(20)) + "1,99999999999999999999999\n")
    outcome = run_cli(["check", workspace["model"], "--set", f"task.file={path}"], limit=60)
    assert outcome.kind == "error", outcome.err[-2000:]
    assert "-9223372036854775808" not in outcome.err and "RuntimeWarning" not in outcome.err, outcome.err


def test_a_cut_off_npz_leaves_no_file_open(workspace, tmp_path):
    """np.load(path) leaks its file handle on a damaged zip; a refused file must not stay open
    (a notebook that tries many files would run out of descriptors)."""
    import gc

    whole = io.BytesIO()
    np.savez(whole, x_train=np.zeros((20, 3), np.float32), y_train=np.arange(20) % 2)
    path = tmp_path / "cut.npz"
    path.write_bytes(whole.getvalue()[: len(whole.getvalue()) // 2])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        outcome = run_cli(["check", workspace["model"], "--set", f"task.file={path}"], limit=60)
        gc.collect()
    assert outcome.kind == "error", outcome.err[-2000:]
    leaks = [str(w.message) for w in caught if issubclass(w.category, ResourceWarning) and "cut.npz" in str(w.message)]
    assert not leaks, leaks


def test_a_wide_csv_reads_in_linear_time(workspace, tmp_path):
    """8 rows of 100,000 columns (1.6 MB): read in seconds (the reader was quadratic in the width)."""
    path = tmp_path / "wide.csv"
    path.write_text("".join(",".join(["1"] * 100_000) + f",{i % 2}\n" for i in range(8)))
    outcome = run_cli(["check", workspace["model"], "--set", f"task.file={path}"], limit=15)
    assert outcome.kind in GOOD, f"{outcome.kind} after {outcome.seconds:.1f} s: {outcome.err[-1000:]}"


@pytest.mark.parametrize("how", ["bfloat16", "sparse"])
def test_tensors_of_any_layout_train_or_raise_the_package_error(workspace, tmp_path, how):
    import torch

    import dendrisim

    x = torch.randn(40, 3)
    x = x.to(torch.bfloat16) if how == "bfloat16" else x.to_sparse()
    experiment = dendrisim.load(str(workspace["model"]), ["task.file=null"])
    outcome = run_api(lambda: dendrisim.Trainer(experiment, out=str(tmp_path / "run"), data={
        "x_train": x, "y_train": torch.arange(40) % 3}).fit(), limit=60)
    assert outcome.kind in GOOD, outcome.err[-2000:]


def test_own_data_of_any_array_like_trains_or_raises_the_package_error(workspace, tmp_path):
    """``OwnData`` deep-copied its fields (a memoryview cannot be copied; a lab's arrays doubled in
    memory), where the same arrays in a dict train."""
    import dendrisim

    x = np.random.default_rng(0).random((40, 3)).astype(np.float32)
    experiment = dendrisim.load(str(workspace["model"]), ["task.file=null"])
    outcome = run_api(lambda: dendrisim.Trainer(experiment, out=str(tmp_path / "run"), data=dendrisim.OwnData(
        x_train=memoryview(x), y_train=np.arange(40) % 3)).fit(), limit=60)
    assert outcome.kind in GOOD, outcome.err[-2000:]


def test_export_of_a_recording_with_a_garbled_model_file_is_one_paragraph(workspace, tmp_path):
    import h5py

    pytest.importorskip("pynwb")
    run = tmp_path / "run"
    shutil.copytree(workspace["reference"], run)
    with h5py.File(run / "recording.h5", "a") as f:
        f.attrs["model_yaml"] = "{{{: not yaml"
    outcome = run_cli(["export", run, "--nwb", tmp_path / "x.nwb"], limit=60)
    assert outcome.kind in GOOD, outcome.err[-2000:]


def test_export_never_replaces_what_is_not_a_regular_file(workspace, tmp_path):
    """``--nwb /dev/null --overwrite`` run as root replaced the device with a regular file; a FIFO
    stands for it here: refused even with --overwrite, and left as it was."""
    pytest.importorskip("pynwb")
    fifo = tmp_path / "fifo.nwb"
    os.mkfifo(fifo)
    outcome = run_cli(["export", workspace["reference"], "--nwb", fifo, "--overwrite"], limit=60)
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode), "the FIFO was replaced by a file"
    assert outcome.kind == "error", outcome.err[-2000:]


def test_plot_out_at_a_file_names_the_folder_not_the_recording(workspace, tmp_path):
    (tmp_path / "afile").write_text("x")
    outcome = run_cli(["plot", workspace["reference"], "--out", tmp_path / "afile"], limit=60)
    assert outcome.kind == "error", outcome.err[-2000:]
    assert "--out" in outcome.err or "folder" in outcome.err, outcome.err
    assert "not a dendrisim recording" not in outcome.err, outcome.err


def test_plot_of_a_variable_the_run_did_not_record_says_so(workspace, tmp_path):
    """``--population nope`` is an error; ``--variable nope`` dropped the heatmap without a word."""
    outcome = run_cli(["plot", workspace["reference"], "--out", tmp_path / "figs", "--variable", "nope"], limit=60)
    assert outcome.kind == "error" or (outcome.kind == "ok" and "nope" in outcome.err), \
        f"{outcome.kind}; stderr: {outcome.err!r}; figures: {sorted(p.name for p in (tmp_path / 'figs').iterdir())}"


def test_the_oracle_itself_tells_good_from_bad():
    assert classify(0, '{"test_loss": 0.5}\n', "") == "ok"
    assert classify(0, '{"test_loss": NaN}\n', "") == "nonfinite"
    assert classify(2, "", "note: x\nerror: bad\n") == "error"
    assert classify(2, "", "error: bad\nmore\n") == "paragraph"
    assert classify(2, "", "Traceback (most recent call last):\n") == "traceback"
    assert classify(2, "", "usage: dendrisim plot [-h]\ndendrisim plot: error: argument --format\n") == "usage"
    assert classify(1, "", "") == "exit 1"
