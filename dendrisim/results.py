"""Regenerate the documented results: every comparison of a suite, with equal tuning, one command.

    dendrisim results --text stdlib.txt --series temps.csv --out reports/results --update docs/results.md

    dendrisim results --suite through-time --text stdlib.txt --series temps.csv --out reports/through_time

    dendrisim results --suite paper --text stdlib.txt --series temps.csv --out reports/paper

(In a checkout, the script scripts/results.py is the same command.)

A suite is a list of comparisons: a shipped model, the contenders it compares (a rule, or a
rule with named options: a variant), the epochs, and the tuning budget. Every contender of
a comparison runs as one ``compare_rules.py`` command with ``--tune``, so every contender
gets the same number of Optuna trials of the same length, scored on the validation split,
and is then trained on every seed with its best settings (equal epochs, equal tuning).

Suites:

- ``rules`` (the default; the Results page, ``docs/results.md``): dll against bp, fa, dfa and kp on
  digits, the Fashion-MNIST MLP and CNN (when the data are present here), the char-level
  language model on ``--text`` and forecasting on ``--series`` (when given);
- ``through-time``: DLL's variants through time (``dendrisim/plasticity/dll.py``) against
  BPTT on ``--text`` and ``--series``;
- ``dendritic``: the cortical microcircuit (``models/microcircuit_*.yaml``, Sacramento et al.
  2018) against dll (steady and euler) and bp on the circuit's own feedforward network, on
  digits and Fashion-MNIST. The feedforward contenders run the circuit's *feedforward twin*
  (:func:`feedforward_twin`: the same input, pyramidal populations, basal projections, task,
  optimizer, conductances and total epochs, without interneurons, apical and somatic
  projections and phases), written into the comparison's folder, so that every contender
  has the same topology by construction;
- ``burst``: BurstCCN (``models/burstccn_fmnist.yaml``, Greedy et al. 2022) against bp and
  fa on its feedforward twin, whose burst neurons are pyramidal ones (the same event rates,
  ``twin_type``), on Fashion-MNIST;
- ``depth``: which dendritic rules keep learning as the network deepens: bp, dll, the
  microcircuit, burstccn and burstprop on Fashion-MNIST MLPs with 1, 3 and 5 hidden
  populations of 100 sigmoid units; every contender's model file is derived from one
  description per depth (:mod:`dendrisim.depth`) and written into its folder;
- ``paper``: the rows of Lv et al. 2025's Tables 1, 2, 3, 5, 6 and 7 that run from data at
  hand, at the paper's settings and number of seeds, untuned, each beside the number the
  paper reports (:mod:`dendrisim.paper`).

A comparison whose data are missing is listed as skipped, with the reason. Each contender's
folder (``OUT/COMPARISON/CONTENDER/``) holds its ``compare_rules.py`` outputs and the command
that made them; one that finished with the same command is not run again, so an interrupted
suite continues (and the tuning inside a contender continues from its journal). Writes
``OUT/SUITE.md`` and ``OUT/SUITE.json`` (``rules.md``, ...: the tables, with the machine, the
torch version and the date); ``--update docs/results.md`` puts the markdown between the
page's markers for the suite (``<!-- results SUITE: begin ... -->``) and the JSON into
``results.json`` (the first one found from the page's folder upward: the repository's).

Besides the metric each task is tuned for, the tables show next-character accuracy beside
bits per character and MSE and MAE beside RSE (the metrics of Lv et al. 2025's tables); a
stored result that lacks one shows "—".
"""
from __future__ import annotations

import argparse
import datetime
import functools
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Optional, Sequence

from .errors import DendrisimError, FileFormatError
from .depth import SUITE as DEPTH_SUITE
from .paper import MEMORY_STEPS, NOT_RUN, SUITE as PAPER_SUITE, TIMING, bench_step_ms
from .suites import Comparison, Contender
from .paths import path_arg, user_error

ROOT = Path(__file__).resolve().parent.parent  # the checkout: scripts/compare_rules.py and models/ are there

def markers(suite: str) -> tuple[str, str]:
    """The lines between which ``--update`` writes a suite's markdown."""
    return (f"<!-- results {suite}: begin (scripts/results.py --suite {suite} writes this part) -->",
            f"<!-- results {suite}: end -->")


RULES = tuple(Contender(r, r) for r in ("dll", "bp", "fa", "dfa", "kp"))

VARIANTS = (
    Contender("dll", "dll", (), "θ learned as specified (Hebbian)"),
    Contender("dll-fixed", "dll", ("plasticity.learn_feedback=false",), "θ fixed at its random start"),
    Contender("dll-anti", "dll", ("plasticity.recurrent_feedback_sign=anti_hebbian",),
              "anti-Hebbian recurrent θ, the reference implementation's sign"),
    Contender("dll-warmup", "dll", ("plasticity.fix_feedback_until=2",), "θ fixed for the first 2 epochs"),
    Contender("dll-decay", "dll", ("plasticity.feedback_decay=0.01",), "decay 0.01 on θ"),
    Contender("dll-norm", "dll", ("plasticity.recurrent_feedback_norm=1.0",),
              "recurrent θ kept at spectral norm ≤ 1"),
    Contender("dll-rate", "dll", ("plasticity.feedback_update=rate", "plasticity.feedback_lr_scale=1",
                                  "plasticity.sigma=1"),
              "θ learns by rate × error at W's rate (Kolen-Pollack's feedback update, no decay), σ = 1",
              fixed=("plasticity.feedback_lr_scale", "plasticity.sigma")),
    Contender("dll-kp", "dll", ("plasticity.feedback_update=rate", "plasticity.feedback_lr_scale=1",
                                "plasticity.sigma=1", "optimizer.weight_decay=0.001"),
              "θ learns by rate × error at W's rate with decay 0.001 on W and θ alike (Kolen-Pollack in full), σ = 1",
              fixed=("plasticity.feedback_lr_scale", "plasticity.sigma")),
    Contender("dll-truncate", "dll", ("plasticity.truncate=20",),
              "errors carried back through the recurrent θ within blocks of 20 steps only"),
    Contender("bp", "bp", (), "BPTT"),
)


def sequence_comparisons(contenders: tuple[Contender, ...]) -> list[Comparison]:
    return [
        Comparison("charlm", "Char-level language model (`models/dll_rnn_charlm.yaml`, 256 tanh units, "
                   "100-step sequences) on `--text`", "models/dll_rnn_charlm.yaml", contenders, epochs=10, tune=5,
                   tune_epochs=3, needs="text"),
        Comparison("forecasting", "Forecasting (`models/dll_rnn_electricity.yaml` settings: window 168, horizon 24, "
                   "128 tanh units) on `--series`", "models/dll_rnn_electricity.yaml", contenders, epochs=30, tune=5,
                   tune_epochs=6, needs="series"),
    ]


DENDRITIC = (
    Contender("microcircuit", "mc_basal", (), "the circuit: interneurons, top-down and lateral apical projections, "
              "a self-predicting phase, then learning (Urbanczik–Senn synapses)"),
    Contender("dll-euler", "dll", (), "DLL with simulated compartments (the circuit's conductances and steps)", twin=True),
    Contender("dll", "dll", ("dynamics.mode=steady",), "DLL, steady state", twin=True),
    Contender("bp", "bp", ("dynamics.mode=steady",), "backprop", twin=True),
)

BURST = (
    Contender("burstccn", "burstccn", (), "BurstCCN: burst neurons, fixed random Y, Q = p_b Y"),
    Contender("bp", "bp", (), "backprop on the same network of pyramidal neurons", twin=True),
    Contender("fa", "fa", (), "feedback alignment on it (fixed random feedback, as Y)", twin=True),
)

SUITES = {
    "rules": [
        Comparison("digits", "Digits (`models/dll_mlp_digits.yaml`, the embedded default)", "models/dll_mlp_digits.yaml",
                   RULES, epochs=30, tune=8, tune_epochs=10, seeds=(0, 1, 2)),
        Comparison("fmnist_mlp", "Fashion-MNIST MLP (`models/dll_mlp_fmnist.yaml`)", "models/dll_mlp_fmnist.yaml",
                   RULES, epochs=10, tune=5, tune_epochs=2, needs="fashion_mnist"),
        Comparison("fmnist_cnn", "Fashion-MNIST CNN (`models/dll_cnn_fmnist.yaml`)", "models/dll_cnn_fmnist.yaml",
                   RULES, epochs=2, tune=4, tune_epochs=1, needs="fashion_mnist"),
        *sequence_comparisons(RULES),
    ],
    "through-time": [
        *sequence_comparisons(VARIANTS),
        # the θ update that closes the char LM's gap, on convolutions (dll and bp as in "rules")
        Comparison("fmnist_cnn", "Fashion-MNIST CNN (`models/dll_cnn_fmnist.yaml`): the Kolen-Pollack θ update on "
                   "convolutions", "models/dll_cnn_fmnist.yaml",
                   tuple(c if c.label != "bp" else replace(c, what="backprop") for c in VARIANTS
                         if c.label in ("dll", "dll-kp", "bp")),
                   epochs=2, tune=4, tune_epochs=1, needs="fashion_mnist"),
    ],
    "burst": [
        Comparison("fmnist", "Fashion-MNIST (`models/burstccn_fmnist.yaml`, 784-500-500-10 sigmoid; the others on "
                   "its feedforward network of pyramidal neurons)", "models/burstccn_fmnist.yaml", BURST,
                   epochs=10, tune=8, tune_epochs=2, seeds=(0, 1), needs="fashion_mnist", reference="bp"),
    ],
    "dendritic": [
        Comparison("digits", "Digits (`models/microcircuit_digits.yaml`; the others on its feedforward network)",
                   "models/microcircuit_digits.yaml", DENDRITIC, epochs=0, tune=6, tune_epochs=0, seeds=(0, 1, 2)),
        Comparison("fmnist", "Fashion-MNIST (`models/microcircuit_fmnist.yaml`; the others on its feedforward network)",
                   "models/microcircuit_fmnist.yaml", DENDRITIC, epochs=0, tune=3, tune_epochs=0,
                   needs="fashion_mnist"),
    ],
    "depth": DEPTH_SUITE,  # dendrisim/depth.py: 1, 3 and 5 hidden populations, five rules
    "paper": PAPER_SUITE,  # dendrisim/paper.py: Lv et al. 2025's rows at its settings, its numbers beside ours
}


# ----------------------------------------------------------------------------- feedforward twins
def feedforward_twin(model: dict) -> dict:
    """The feedforward network of a circuit's model file (a mapping as read from YAML): its
    input and pyramidal populations and the basal projections between them, with the same
    task, optimizer, conductances, recording of the populations that remain, and training
    (``training.epochs`` the sum of the phases, which are dropped: the twin has no
    interneurons to bring into a self-predicting state, and every epoch teaches). What
    the circuit adds (interneurons, apical and somatic projections, phases) is left out."""
    twin = {k: v for k, v in model.items() if k not in ("populations", "projections")}
    from .neurons import NEURONS

    keep = {name for name, pop in model["populations"].items()
            if not NEURONS.get(pop.get("type", "pyramidal")).takes_nudging}
    twin["name"] = f"{model['name']}_feedforward"
    twin["populations"] = {name: _twin_population(pop) for name, pop in model["populations"].items() if name in keep}
    twin["projections"] = [dict(p) for p in model["projections"] if p.get("compartment", "basal") == "basal"
                           and p["from"] in keep and p["to"] in keep]
    for p in twin["projections"]:
        p.pop("plasticity", None)  # the contender's rule governs every projection
    twin["plasticity"] = {"rule": "bp"}  # each contender names its own (compare_rules.py --rules)
    training = dict(model.get("training") or {})
    phases = training.pop("phases", None)
    if phases:
        training["epochs"] = sum(int(ph["epochs"]) for ph in phases)
    twin["training"] = training
    dynamics = dict(model.get("dynamics") or {})
    if "populations" in dynamics:
        dynamics["populations"] = {n: c for n, c in dynamics["populations"].items() if n in keep}
    twin["dynamics"] = dynamics
    recording = dict(model.get("recording") or {})
    if isinstance(recording.get("populations"), dict):
        recording["populations"] = {n: _twin_variables(model["populations"][n], v)
                                    for n, v in recording["populations"].items() if n in keep}
    if isinstance(recording.get("projections"), dict):
        names = {f"{p['from']}->{p['to']}" for p in twin["projections"]}
        recording["projections"] = {n: v for n, v in recording["projections"].items() if n in names}
    if recording:
        twin["recording"] = recording
    twin["description"] = f"The feedforward network of {model['name']} (dendrisim.results.feedforward_twin)."
    return twin


def _twin_population(pop: dict) -> dict:
    """A population of the twin: itself, or, for a neuron model with a ``twin_type`` (burst
    neurons), that type without the model's own options (size, shape and activation kept)."""
    from dataclasses import fields

    from .neurons import NEURONS

    model = NEURONS.get(pop.get("type", "pyramidal"))
    if model.twin_type is None:
        return pop
    own = {f.name for f in fields(model.Options)}
    return {**{k: v for k, v in pop.items() if k not in own}, "type": model.twin_type}


def _twin_variables(pop: dict, variables):
    """The recorded variables of a population in the twin: those its twin type has too."""
    from .neurons import NEURONS

    model = NEURONS.get(pop.get("type", "pyramidal"))
    if model.twin_type is None or not isinstance(variables, list):
        return variables
    renamed = [model.twin_renames.get(v, v) for v in variables]
    return list(dict.fromkeys(v for v in renamed if v in NEURONS.get(model.twin_type).variables))


def write_twin(comparison: "Comparison", folder: Path) -> Path:
    """The comparison's feedforward twin as ``folder/feedforward.yaml``."""
    from dendrisim.config.loader import read_yaml

    return write_model(feedforward_twin(read_yaml(ROOT / comparison.model)), folder / "feedforward.yaml")


def write_derived(comparison: "Comparison", folder: Path) -> Path:
    """The comparison's model as ``comparison.derive`` makes it from its model file, as
    ``folder/model.yaml``."""
    from dendrisim.config.loader import read_yaml

    return write_model(comparison.derive(read_yaml(ROOT / comparison.model)), folder / "model.yaml")


def comparison_model(comparison: "Comparison") -> dict:
    """The comparison's model mapping: its model file, as ``comparison.derive`` makes it when given."""
    from dendrisim.config.loader import read_yaml

    model = read_yaml(ROOT / comparison.model)
    return comparison.derive(model) if comparison.derive is not None else model


def write_model(model: dict, path: Path) -> Path:
    """``model`` as YAML at ``path``, rewritten only when it changes (so a finished
    contender's command, which names the file, stays the same and is not run again)."""
    import yaml

    text = yaml.safe_dump(model, sort_keys=False)
    if not (path.is_file() and path.read_text() == text):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return path


def default_epochs(comparison: "Comparison") -> int:
    """The comparison's epochs, or the model file's when it gives none (0): a circuit's
    total over its phases."""
    if comparison.epochs:
        return comparison.epochs
    from dendrisim.config.loader import read_yaml

    training = read_yaml(ROOT / comparison.model).get("training") or {}
    phases = training.get("phases")
    return sum(int(ph["epochs"]) for ph in phases) if phases else int(training.get("epochs", 10))


# ----------------------------------------------------------------------------- running
def missing(comparison: Comparison, args) -> Optional[str]:
    """Why the comparison cannot run here (None: it can)."""
    if comparison.needs == "text":
        return None if args.text else "no --text FILE given"
    if comparison.needs == "series":
        return None if args.series else "no --series FILE given"
    if comparison.needs == "gensim_mr":
        return None if gensim_mr() else "gensim's test corpus pang_lee_polarity.cor was not found (pip install gensim)"
    if comparison.needs:
        return dataset_missing(comparison.needs, args.data_root)
    return None


@functools.lru_cache(maxsize=None)
def dataset_missing(name: str, root: Optional[str]) -> Optional[str]:
    """Why the dataset does not load here (None: it does); read once however many
    comparisons need it."""
    from dendrisim.errors import DendrisimError
    from dendrisim.tasks.datasets import given_root, load_dataset

    try:
        load_dataset(name, given_root(root), False)  # where a run looks: the root given, else ./data and the system's
    except DendrisimError as err:
        return str(err).split(";")[0]
    return None


def gensim_mr() -> Optional[tuple[Path, Path]]:
    """gensim's sample of the movie-review polarity corpus (Pang & Lee; 200 sentences in
    fastText's ``__label__`` format) and the fastText vectors trained on it, which gensim
    ships with its tests; None without them. Found without importing gensim."""
    import importlib.util

    spec = importlib.util.find_spec("gensim")
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(next(iter(spec.submodule_search_locations))) / "test" / "test_data"
    corpus, vectors = folder / "pang_lee_polarity.cor", folder / "pang_lee_polarity_fasttext.vec"
    return (corpus, vectors) if corpus.is_file() and vectors.is_file() else None


def data_overrides(comparison: Comparison, args) -> list[str]:
    if comparison.needs == "gensim_mr":
        corpus, vectors = gensim_mr()
        return [f"task.train_file={corpus}", f"task.vectors={vectors}"]
    if comparison.needs == "text":
        return [f"task.text={here(args.text)}"]
    if comparison.needs == "series":
        return [f"task.file={here(args.series)}"]
    return []


def here(path) -> str:
    """``path`` as the command shows it: relative to the repository when inside it."""
    path = Path(path).resolve()
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def command(comparison: Comparison, contender: Contender, args, folder: Path) -> list[str]:
    """The compare_rules.py command of one contender, run from the repository root."""
    if contender.derive is not None:
        model = here(write_model(contender.derive(comparison_model(comparison)), folder / "model.yaml"))
    elif contender.twin:
        model = here(write_twin(comparison, folder.parent))
    elif comparison.derive is not None:
        model = here(write_derived(comparison, folder.parent))
    else:
        model = comparison.model
    epochs = args.epochs or default_epochs(comparison)
    cmd = [sys.executable, "scripts/compare_rules.py", model,
           "--rules", contender.rule, "--seeds", ",".join(map(str, args.seeds or comparison.seeds)),
           "--epochs", str(epochs), "--tune", str(tune_trials(comparison, args)),
           "--tune-epochs", str(args.tune_epochs or comparison.tune_epochs or epochs), "--device", args.device,
           "--out", here(folder)]
    if args.data_root:
        cmd += ["--data-root", here(args.data_root)]
    if contender.fixed:
        cmd += ["--tune-fix", ",".join(contender.fixed)]
    for item in (*comparison.overrides, *data_overrides(comparison, args), *contender.overrides, *args.overrides):
        cmd += ["--set", item]
    return cmd


def tune_trials(comparison: Comparison, args) -> int:
    """``--tune N`` when given (0: no tuning), else the comparison's budget."""
    return comparison.tune if args.tune is None else args.tune


def run_contender(comparison: Comparison, contender: Contender, args, progress: str = "") -> dict:
    """One contender's row: run (unless it finished with the same command before), then read
    its results; ``progress`` ("[3/27] ") starts the lines it prints."""
    import time

    folder = args.out / comparison.name / contender.label
    cmd = command(comparison, contender, args, folder)
    text = shlex.join(cmd[1:])  # without the interpreter: the same command on another machine
    start = time.monotonic()
    ran = run_once(cmd, folder, f"{progress}{comparison.name} / {contender.label}")
    found = folder / "results.json"
    try:
        row = summarise(read_json(found, what="compare_rules results"), contender, text)
        peak = folder / "peak_memory_kb"
        if peak.is_file():
            row["peak_mb"] = int(peak.read_text()) / 1024
        values, percent, label = headline_values(row)
        when = f"finished in {(time.monotonic() - start) / 60:.1f} min" if ran else "finished before, not rerun"
        print(f"   {progress}{comparison.name} / {contender.label}: test {label} {fmt(values, percent)} ({when})",
              flush=True)
        return row
    except (KeyError, TypeError, ValueError, AttributeError, statistics.StatisticsError) as err:
        raise FileFormatError(f"{found}: not the results compare_rules writes ({type(err).__name__}: "
                              f"{str(err)[:200]}); remove {folder / 'done'} to run {comparison.name} / "
                              f"{contender.label} again") from None


#: the comparison whose Table 6 row each of paper.TIMING's bench runs belongs to
TIMED = {"mlp": "fmnist_mlp", "cnn": "fmnist_cnn"}


def run_once(cmd: list[str], folder: Path, what: str, *, output: Optional[str] = None) -> bool:
    """Run ``cmd`` from the repository root unless ``folder/done`` holds the same command
    (then False: it finished before). Its command goes to ``command.txt``, its output to
    ``output.log`` (its standard output to ``folder/output`` when named), the peak memory of
    its process to ``peak_memory_kb``, and ``done`` last; a failure stops the suite, naming
    ``what`` and the log."""
    text = shlex.join(cmd[1:])  # without the interpreter: the same command on another machine
    done = folder / "done"
    if done.is_file() and done.read_text() == text:
        return False
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "command.txt").write_text(text + "\n")
    print(f"== {what}: {text}", flush=True)
    with open(folder / "output.log", "w") as log:
        if output is None:
            code, peak_kb = run_measured(cmd, log)
        else:
            with open(folder / output, "w") as out:
                code, peak_kb = run_measured(cmd, log, stdout=out)
    if code != 0:
        raise SystemExit(f"{what} failed (exit {code}); see {folder / 'output.log'}")
    (folder / "peak_memory_kb").write_text(f"{peak_kb}\n")
    done.write_text(text)
    return True


def run_timings(args, names: list[str]) -> dict:
    """The paper suite's step timings (:data:`dendrisim.paper.TIMING`) of the selected
    comparisons: ``dendrisim bench`` on one thread, its JSON kept in ``OUT/timing/`` and not
    measured again for the same command; rule -> ms per step, per network."""
    found = {}
    for kind, flags in TIMING.items():
        if TIMED[kind] not in names:
            continue
        cmd = [sys.executable, "scripts/bench.py", *flags, "--no-epoch", "--threads", "1", "--json",
               "--device", args.device]
        folder = args.out / "timing" / kind
        run_once(cmd, folder, f"timing / {kind}", output="bench.json")
        output, done = folder / "bench.json", folder / "done"
        try:
            found[kind] = bench_step_ms(read_json(output, what="bench"), kind)
        except (KeyError, TypeError, ValueError) as err:
            raise FileFormatError(f"{output}: not the JSON dendrisim bench writes ({type(err).__name__}: "
                                  f"{str(err)[:200]}); remove {done} to measure it again") from None
    return found


def run_memory(args, suite: list) -> dict:
    """Table 6's memory: the peak resident memory (MB) of one contender's process for dll and
    for bp on each timed network, measured alike: its comparison's command with one seed, one
    epoch of :data:`dendrisim.paper.MEMORY_STEPS` steps, then its evaluation (torch, the
    dataset, the model, the optimizer and the evaluation included), kept in ``OUT/memory/``."""
    from argparse import Namespace

    found = {}
    by_name = {c.name: c for c in suite}
    for kind, name in TIMED.items():
        if name not in by_name:
            continue
        comparison = by_name[name]
        one = Namespace(**{**vars(args), "seeds": [0], "epochs": 1, "tune": 0, "tune_epochs": 1,
                           "overrides": [*args.overrides, f"training.max_steps_per_epoch={MEMORY_STEPS}"]})
        for rule in ("dll", "bp"):
            folder = args.out / "memory" / f"{kind}-{rule}"
            run_once(command(comparison, Contender(rule, rule), one, folder), folder, f"memory / {kind} / {rule}")
            found.setdefault(kind, {})[rule] = int((folder / "peak_memory_kb").read_text()) / 1024
    return found


#: run by a small interpreter of its own: the command, then the peak memory of its process
#: alone. (Linux counts into a child's ``ru_maxrss`` the memory of the process it was forked
#: from, up to its exec; this process may hold torch and a dataset from checking what
#: loads, so the command is forked from the small one instead.)
_MEASURE = """import os, subprocess, sys
proc = subprocess.Popen(sys.argv[2:])
_, status, usage = os.wait4(proc.pid, 0)
with open(sys.argv[1], "w") as fh:
    fh.write(str(usage.ru_maxrss))
sys.exit(os.waitstatus_to_exitcode(status))
"""


def run_measured(cmd: list[str], log, stdout=None) -> tuple[int, int]:
    """Run ``cmd`` from the repository root with its errors into ``log`` and its output into
    ``stdout`` (default: ``log``); its exit status and the peak resident memory of its
    process in KiB (``wait4``'s resource usage of that child alone, measured by a small
    interpreter in between; 0 where there is no wait4)."""
    stdout = log if stdout is None else stdout
    stderr = subprocess.STDOUT if stdout is log else log
    if not hasattr(os, "wait4"):
        return subprocess.call(cmd, stdout=stdout, stderr=stderr, cwd=ROOT), 0
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        peak = Path(tmp) / "peak"
        code = subprocess.call([sys.executable, "-c", _MEASURE, str(peak), *cmd], stdout=stdout, stderr=stderr,
                               cwd=ROOT)
        return code, int(peak.read_text()) if peak.is_file() else 0


def summarise(results: dict, contender: Contender, text: str) -> dict:
    """One contender's numbers from its compare_rules results.json."""
    runs = list(results["runs"].values())
    metric = results["metric"]
    selected = [r["summary"][f"test_{metric}"] for r in runs]
    others = {m: [r["summary"][f"test_{m}"] for r in runs] for m in results["metrics"] if m != metric}
    return {"rule": contender.rule, "overrides": list(contender.overrides), "what": contender.what,
            "metric": metric, "higher": results["higher"], "test": selected, "other_metrics": others,
            "seeds": [r["seed"] for r in runs], "epochs": [r["summary"]["epochs"] for r in runs],
            "seconds_per_epoch": statistics.mean(statistics.mean(row["seconds"] for row in r["rows"]) for r in runs),
            "tuned": results["rules"][contender.rule]["tuned"],
            "trials": len(results["rules"][contender.rule]["trials"]), "command": text,
            **({"paper": [q.as_dict() for q in contender.paper], "differs": contender.differs} if contender.paper
               or contender.differs else {})}


# ----------------------------------------------------------------------------- reporting
def machine() -> dict:
    import torch

    from dendrisim.host import cpu_name

    cpu = cpu_name()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {"cpu": cpu, "cores": cores, "platform": platform.platform(), "python": platform.python_version(),
            "torch": torch.__version__, "date": datetime.date.today().isoformat()}


def fmt(values: list[float], percent: bool) -> str:
    scale, unit = (100.0, "%") if percent else (1.0, "")
    spec = ".2f" if percent else ".4f"  # accuracies to 0.01 points; bpc, RSE and CORR to 4 decimals
    if len(values) == 1:
        return f"{values[0] * scale:{spec}}{unit}"
    return f"{statistics.mean(values) * scale:{spec}} ± {statistics.stdev(values) * scale:.2g}{unit}"


#: options whose value is a file the reader makes in the working folder (the page says how)
_LOCAL_FILES = ("--text", "--series")


def shown_command(command: str) -> str:
    """The stored command of a report as a page shows it, to be rerun from the root of a
    checkout: input files by name (made in the working folder as the page describes), no
    ``--out`` (where the runs went on the machine that made them; the results do not depend
    on it) and ``--update docs/results.md``, the one page that holds these tables."""
    words = []
    for word in shlex.split(command):  # --key=value as two words
        words += word.split("=", 1) if word.startswith("--") and "=" in word else [word]
    shown, i = [], 0
    while i < len(words):
        word, has_value = words[i], i + 1 < len(words)
        if has_value and word == "--out":
            i += 2
        elif has_value and word in _LOCAL_FILES:
            shown += [word, Path(words[i + 1]).name]
            i += 2
        elif has_value and word == "--update":
            shown += [word, "docs/results.md"]
            i += 2
        else:
            shown.append(word)
            i += 1
    return shlex.join(shown)


def made_by(report: dict) -> str:
    m = report["machine"]
    return (f"Made by `{shown_command(report['command'])}` on {m['date']}: {m['cpu']}, {m['cores']} cores, "
            f"torch {m['torch']}, Python {m['python']}.")


def render(report: dict) -> str:
    """The markdown of a suite's report (the paper suite's: :func:`dendrisim.paper.render`)."""
    if report["suite"] == "paper":
        from .paper import render as render_paper

        return render_paper(report, made_by(report))
    lines = [f"{made_by(report)} Every contender of a table got the same tuning budget (Optuna's TPE sampler over "
             "the learning rate and the rule's declared tunables, trials scored on the validation split only) and "
             "was then trained for the same epochs with its best settings; the test metric is the epoch selected on "
             "the validation split (mean ± std over seeds where there are several).", ""]
    for c in report["comparisons"]:
        lines += [f"**{c['title']}**", ""]
        if c.get("skipped"):
            lines += [f"Skipped here: {c['skipped']}.", ""]
            continue
        first = next(iter(c["contenders"].values()))
        _, _, label = headline_values(first)
        extra = EXTRA.get(first["metric"], [])
        lines += [f"{plural(c['epochs'], 'epoch')}, tuning {plural(c['tune'], 'trial')} × "
                  f"{plural(c['tune_epochs'], 'epoch')}, {plural(len(c['seeds']), 'seed')} "
                  f"({', '.join(map(str, c['seeds']))}).", ""]
        described = any(row["what"] for row in c["contenders"].values())
        lines += [f"| contender |{' what |' if described else ''} test {label} | vs {c['reference']} |"
                  + "".join(f" test {EXTRA_LABEL.get(k, k.upper())} |" for k in extra) + " s / epoch | tuned settings |",
                  "|---" * (5 + described + len(extra)) + "|"]
        ref = c["contenders"].get(c["reference"])
        for name, row in c["contenders"].items():
            values, percent, _ = headline_values(row)
            tuned = ", ".join(f"{k.split('.', 1)[1]} {v:.3g}" for k, v in (row["tuned"] or {}).items()) or "—"
            what = f" {row['what']} |" if described else ""
            lines.append(f"| {name} |{what} {fmt(values, percent)} | {versus(row, ref)} |"
                         + "".join(f" {other(row, k)} |" for k in extra)
                         + f" {row['seconds_per_epoch']:.3g} | {tuned} |")
        lines.append("")
    if report["suite"] == "depth":  # the study's question at a glance: error against depth
        from .depth import error_table

        lines += [error_table(report)]
    return "\n".join(lines).rstrip() + "\n"


# the paper's metrics beside the one a task is tuned for: next-character accuracy beside bits per
# character (char LM), MSE and MAE beside RSE, and the correlation (forecasting)
EXTRA = {"bpc": ["accuracy"], "rse": ["mse", "mae", "corr"]}
EXTRA_LABEL = {"accuracy": "next-char accuracy", "mse": "MSE", "mae": "MAE", "corr": "CORR"}


def other(row: dict, metric: str) -> str:
    """A contender's value of a metric it was not tuned for; "—" where the stored result
    lacks it (made before the metric was reported)."""
    values = row["other_metrics"].get(metric)
    if not values:
        return "—"
    return fmt(values, metric == "accuracy")


def plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def headline_values(row: dict) -> tuple[list[float], bool, str]:
    """What a table shows of a contender, the metric it was tuned for (accuracy, bits per
    character, RSE): its values, whether they are a fraction shown as %, and its name."""
    metric = row["metric"]
    return row["test"], metric == "accuracy", {"rse": "RSE"}.get(metric, metric)


def versus(row: dict, ref: Optional[dict]) -> str:
    """The gap to the reference contender: points for accuracies, a ratio for bpc and RSE."""
    if ref is None or row is ref:
        return "—"
    (mine, percent, _), (theirs, _, _) = headline_values(row), headline_values(ref)
    mine, theirs = statistics.mean(mine), statistics.mean(theirs)
    if percent:
        return f"{(mine - theirs) * 100:+.2f} points"
    return f"{mine / theirs:.2f}×" if theirs else "—"


def page_text(path: Path, suite: str) -> str:
    """The text of the ``--update`` page, checked: UTF-8, with the suite's markers once each,
    begin before end (a FileFormatError naming the page otherwise)."""
    begin, end = markers(suite)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise FileFormatError(f"--update {path}: not a UTF-8 text page ({err}); name the Markdown page of the "
                              "results") from None
    if text.count(begin) != 1 or text.count(end) != 1 or text.index(begin) > text.index(end):
        raise FileFormatError(f"--update {path}: the page needs the results markers of suite {suite} once each, "
                              f"begin before end; put the lines {begin!r} and {end!r} where its tables go "
                              "(nothing was run or written)")
    return text


def update_page(path: Path, report: dict) -> None:
    """Put the suite's markdown between ``path``'s markers for it, and its JSON into
    :func:`results_json` (one entry per suite), so that the page's numbers are this output."""
    begin, end = markers(report["suite"])
    text = page_text(path, report["suite"])
    stored = results_json(path)
    reports = read_json(stored, what="results") if stored.is_file() else {}
    before, rest = text.split(begin, 1)
    _, after = rest.split(end, 1)
    path.write_text(before + begin + "\n" + render(report) + end + after)
    reports[report["suite"]] = report
    stored.write_text(json.dumps(reports, indent=1, ensure_ascii=False) + "\n")


def read_json(path: Path, *, what: str) -> dict:
    """The JSON object in ``path``; a FileFormatError naming it when it is not one (damaged,
    cut off, not UTF-8, or another JSON value)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as err:
        raise FileFormatError(f"{path}: damaged {what} file, not JSON ({str(err)[:200]}); restore it from git, or "
                              "remove it to start it afresh") from None
    except RecursionError:
        raise FileFormatError(f"{path}: damaged {what} file, nested too deeply to read") from None
    if not isinstance(data, dict):
        raise FileFormatError(f"{path}: damaged {what} file: it holds a JSON {type(data).__name__}, not the object "
                              "dendrisim writes; restore it from git, or remove it to start it afresh")
    return data


def results_json(page: Path) -> Path:
    """Where the JSON of a page's results lives: the first ``results.json`` from the page's
    folder upward (``docs/results.md`` -> the repository's), else beside the page."""
    folder = page.resolve().parent
    for candidate in (folder, *folder.parents):
        if (candidate / "results.json").is_file():
            return candidate / "results.json"
    return folder / "results.json"


def page_block(path: Path, suite: str) -> str:
    """The part of ``path`` between the suite's markers (what :func:`update_page` wrote)."""
    begin, end = markers(suite)
    return path.read_text().split(begin, 1)[1].split(end, 1)[0].lstrip("\n")


def main(argv: Optional[Sequence[str]] = None) -> int:
    """``scripts/results.py`` (and ``dendrisim results``): run a suite, write OUT/SUITE.md and
    OUT/SUITE.json, and with ``--update PAGE`` the page's tables; returns the exit status (2
    with one paragraph for a damaged results.json, a page without markers, a path refused)."""
    try:
        return _main(argv)
    except (DendrisimError, OSError) as err:  # an OSError only on a path the user gave (user_error)
        print(f"error: {user_error(err)}", file=sys.stderr)
        return 2


def _main(argv: Optional[Sequence[str]]) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--suite", default="rules", choices=sorted(SUITES), help="the suite to run (default: rules)")
    p.add_argument("--out", type=path_arg("--out"), default="reports/results",
                   help="folder for every contender's runs and SUITE.md, SUITE.json (default: reports/results)")
    p.add_argument("--text", type=path_arg("--text", text=True), help="a UTF-8 text for the char-level language model")
    p.add_argument("--series", type=path_arg("--series", text=True), help="a comma-separated series file for forecasting")
    p.add_argument("--only", type=lambda s: [x for x in s.split(",") if x], help="comparisons to run (names)")
    p.add_argument("--seeds", type=seeds_arg, help="instead of each comparison's")
    p.add_argument("--epochs", type=int, help="instead of each comparison's")
    p.add_argument("--tune", type=int, help="trials per contender, instead of each comparison's (0: no tuning)")
    p.add_argument("--tune-epochs", type=int, help="epochs per trial, instead of each comparison's")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY.PATH=VALUE",
                   help="applied to every run (after the comparison's and the contender's own)")
    p.add_argument("--device", default="cpu", help="device of every run: cpu, cuda, cuda:N or auto (default: cpu)")
    p.add_argument("--data-root", type=path_arg("--data-root", text=True), help="folder with the dataset files (default: ./data)")
    p.add_argument("--update", type=path_arg("--update"), metavar="docs/results.md",
                   help="write the markdown into this page's results part (and the JSON into results.json)")
    argv = list(argv) if argv is not None else sys.argv[1:]
    args = p.parse_args(argv)
    for flag, value in (("--tune", args.tune), ("--tune-epochs", args.tune_epochs), ("--epochs", args.epochs)):
        if value is not None and value < (0 if flag == "--tune" else 1):
            p.error(f"{flag} {value}: give {'0 (no tuning) or more' if flag == '--tune' else 'at least 1'}")
    suite = SUITES[args.suite]
    if args.update:  # before hours of runs: a page it cannot update, a damaged results.json
        page_text(args.update, args.suite)
        if results_json(args.update).is_file():
            read_json(results_json(args.update), what="results")
    if args.only is not None and not args.only:  # '--only ""' or '--only ,': not the whole suite, silently
        p.error(f"--only {argv[argv.index('--only') + 1] if '--only' in argv else ''!r} names no comparison; give "
                f"names of suite {args.suite} ({', '.join(c.name for c in suite)}), or leave --only out to run them all")
    if args.only:
        unknown = sorted(set(args.only) - {c.name for c in suite})
        if unknown:
            p.error(f"--only: {', '.join(unknown)} not in suite {args.suite} ({', '.join(c.name for c in suite)})")
        suite = [c for c in suite if c.name in args.only]
    check_given_files(suite, args)
    report = {"machine": machine(), "suite": args.suite,
              "command": "python scripts/results.py " + shlex.join(argv),
              "comparisons": [], **({"not_run": [list(row) for row in NOT_RUN]} if args.suite == "paper" else {})}
    todo = sum(len(c.contenders) for c in suite)
    count = 0
    for comparison in suite:
        entry = {"name": comparison.name, "title": comparison.title, "model": comparison.model,
                 "epochs": args.epochs or default_epochs(comparison), "tune": tune_trials(comparison, args),
                 "tune_epochs": args.tune_epochs or comparison.tune_epochs or args.epochs or default_epochs(comparison),
                 "seeds": list(args.seeds or comparison.seeds), "reference": comparison.reference, "contenders": {},
                 **({"metrics": list(comparison.metrics)} if comparison.metrics else {})}
        reason = missing(comparison, args)
        if comparison.optional and not (args.only and comparison.name in args.only):
            reason = f"{comparison.optional}; run it with --only {comparison.name}"
        if reason:
            entry["skipped"] = reason
            count += len(comparison.contenders)
            print(f"== {comparison.name}: skipped ({reason})", flush=True)
        else:
            for contender in comparison.contenders:
                count += 1
                entry["contenders"][contender.label] = run_contender(comparison, contender, args,
                                                                     progress=f"[{count}/{todo}] ")
        report["comparisons"].append(entry)
        write(args, report)
    if args.suite == "paper":
        runnable = [c for c in suite if not missing(c, args)]
        report["timing"] = run_timings(args, [c.name for c in runnable])
        report["memory"] = run_memory(args, runnable)
    markdown = write(args, report)
    if args.update:
        update_page(args.update, report)
    print(markdown)
    return 0


def seeds_arg(given: str) -> list[int]:
    """``--seeds 0,1,2``: integers; anything else (``x``, ``,``) a usage error saying what is allowed."""
    try:
        seeds = [int(x) for x in given.split(",") if x.strip()]
    except ValueError:
        seeds = []
    if not seeds:
        raise argparse.ArgumentTypeError(f"{given!r}: give seeds as comma-separated integers, e.g. 0,1,2")
    return seeds


def check_given_files(suite, args) -> None:
    """Before any contender runs (hours, perhaps): each comparison that will run on ``--text``
    or ``--series`` checks its model on that file as ``dendrisim check`` does (the file read,
    the network built on the meta device), so a file it cannot use is one paragraph naming
    the flag, exit 2, instead of a contender failing with its error in a log."""
    from .builder import load_experiment
    from .errors import DataError
    from .inspect import describe

    for comparison in suite:
        flag, key, given = {"text": ("--text", "task.text", args.text),
                            "series": ("--series", "task.file", args.series)}.get(comparison.needs, (None,) * 3)
        if given is None or missing(comparison, args) is not None:
            continue
        overrides = [*comparison.overrides, f"{key}={Path(given).resolve()}", *args.overrides]
        try:
            describe(load_experiment(ROOT / comparison.model, overrides), data_root=args.data_root)
        except DendrisimError as err:
            raise DataError(f"{flag} {given}: comparison {comparison.name} ({comparison.model}) cannot use it, so "
                            f"nothing was run: {err}") from None


def write(args, report: dict) -> str:
    """OUT/SUITE.json and OUT/SUITE.md, after every comparison (a crash keeps what was done)."""
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{args.suite}.json").write_text(json.dumps(report, indent=1))
    markdown = render(report)
    (args.out / f"{args.suite}.md").write_text(markdown)
    return markdown

