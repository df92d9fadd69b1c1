#!/usr/bin/env python3
"""Train one model file under several plasticity rules and seeds, and report.

    dendrisim compare dll_mlp_fmnist --rules dll,bp,fa,dfa,kp --seeds 0,1,2 --out reports/fmnist

    dendrisim compare dll_mlp_digits --rules dll,bp,fa --tune 20 --tune-epochs 5 --out reports/tuned

(``python scripts/compare_rules.py`` in a checkout is the same.)

Each rule × seed is a separate run (its own run directory under OUT/runs/, recording
off unless --record). OUT/report.md holds a Markdown table (mean ± standard deviation
over seeds of the final and the best test metric, and of the time per epoch),
OUT/learning_curves.png the test metric per epoch (mean ± std band), OUT/results.json
every run's summary and metrics ("runs") and, per rule, the settings it ran with and
every tuning trial ("rules").

With --tune N every rule first gets the same budget: N trials of Optuna's TPE sampler
over the learning rate and the rule's own tunables, each trial --tune-epochs epochs long,
scored on the validation split only (a median pruner stops hopeless trials); every seed
then trains with the rule's best settings. The studies are stored in OUT/tuning.journal,
so an interrupted tuning continues (see dendrisim/tuning.py); OUT/tuning.png shows each
rule's validation score per trial. Needs the extra 'tune': pip install -e '.[tune]'.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path
from typing import Optional, Sequence

from .builder import load_experiment
from .bundled import resolve_model
from .errors import DendrisimError
from .paths import path_arg
from .plugins import load_plugins
from .training import RunOptions, Trainer
from .tuning import TuningRun, best_overrides, main_metric, require_optuna, trial_records, tune


def mean_std(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.4f}"
    return f"{statistics.mean(values):.4f} ± {statistics.stdev(values):.4f}"


def run_all(args, tuned: dict) -> dict:
    results = {}
    for rule in args.rules:
        for seed in args.seeds:
            overrides = [*args.overrides, f"plasticity.rule={rule}", f"training.seed={seed}",
                         *(best_overrides(tuned[rule]["study"]) if rule in tuned else [])]
            if args.epochs:
                overrides.append(f"training.epochs={args.epochs}")
            if not args.record:
                overrides.append("recording.enabled=false")
            exp = load_experiment(args.model, overrides)
            run_dir = args.out / "runs" / f"{rule}-s{seed}"
            log = open(args.out / "runs" / f"{rule}-s{seed}.log", "w")
            trainer = Trainer(exp, RunOptions(device=args.device, data_root=args.data_root, out_dir=run_dir,
                                              overwrite=True,  # a rerun comparison redoes its own runs
                                              progress=False, log=lambda line: print(line, file=log, flush=True)))
            summary = trainer.run()
            log.close()
            results[f"{rule}-s{seed}"] = {"rule": rule, "seed": seed, "summary": summary, "rows": trainer.rows}
            write_reports(args, results, tuned)  # after every run, so a crash keeps what was done
            print(f"{rule} seed {seed}: " + ", ".join(f"{k} {v:.4f}" for k, v in summary.items()
                                                     if k.startswith("test_")), flush=True)
    return results


def report(results: dict, metric: str, higher: bool, title: str, tuned: dict) -> str:
    lines = [f"# {title}", "", f"Test {metric} over seeds (mean ± std); best = best epoch on the test set, "
             "for reference only (model selection uses the validation split); time per training epoch.", ""]
    if tuned:
        first = next(iter(tuned.values()))
        lines += [f"Every rule was tuned with the same budget: {first['budget']} trials of Optuna's TPE sampler, "
                  f"{first['epochs']} epochs each, scored on the validation split ({first['metric']}); the tuned "
                  "settings are the best trial's (tuning.png: the validation score of every trial).", ""]
    tuned_col = " tuned settings |" if tuned else ""
    lines += [f"| rule | runs | final test {metric} | best test {metric} | selected-epoch test {metric} | s / epoch |"
              + tuned_col, "|---|---|---|---|---|---|" + ("---|" if tuned else "")]
    rules = list(dict.fromkeys(r["rule"] for r in results.values()))
    for rule in rules:
        runs = [r for r in results.values() if r["rule"] == rule]
        final = [r["rows"][-1][f"test_{metric}"] for r in runs]
        pick = max if higher else min
        best = [pick(row[f"test_{metric}"] for row in r["rows"]) for r in runs]
        selected = [r["summary"][f"test_{metric}"] for r in runs]
        seconds = [statistics.mean(row["seconds"] for row in r["rows"]) for r in runs]
        settings = ""
        if tuned:
            params = tuned[rule]["tuned"] if rule in tuned else {}
            settings = " " + (", ".join(f"{k.split('.', 1)[1]} {v:.3g}" for k, v in params.items()) or "untuned") + " |"
        lines.append(f"| {rule} | {len(runs)} | {mean_std(final)} | {mean_std(best)} | {mean_std(selected)} | "
                     f"{mean_std(seconds)} |" + settings)
    return "\n".join(lines) + "\n"


def plot_tuning(tuned: dict, path: Path) -> None:
    """Each rule's validation score per trial (dots; pruned trials hollow) and its best so far."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for i, (rule, t) in enumerate(tuned.items()):
        colour = f"C{i % 10}"
        done = [r for r in t["trials"] if r["state"] in ("COMPLETE", "PRUNED")]
        values = [r["value"] if r["value"] is not None else list(r["intermediate"].values())[-1] for r in done]
        numbers = [r["number"] for r in done]
        pruned = [r["state"] == "PRUNED" for r in done]
        ax.scatter([n for n, p in zip(numbers, pruned) if not p], [v for v, p in zip(values, pruned) if not p],
                   color=colour, label=rule)
        ax.scatter([n for n, p in zip(numbers, pruned) if p], [v for v, p in zip(values, pruned) if p],
                   facecolors="none", edgecolors=colour)
        best, running = [], None
        for r, v in zip(done, values):
            if r["state"] == "COMPLETE":
                running = v if running is None else (max if t["higher"] else min)(running, v)
            best.append(running)
        ax.step(numbers, best, where="post", color=colour, alpha=0.6)
    ax.set_xlabel("trial")
    ax.set_ylabel(next(iter(tuned.values()))["metric"] if tuned else "")
    ax.set_title("validation score per tuning trial (hollow: pruned; line: best so far)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot(results: dict, metric: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for rule in dict.fromkeys(r["rule"] for r in results.values()):
        curves = [[row[f"test_{metric}"] for row in r["rows"]] for r in results.values() if r["rule"] == rule]
        n = min(len(c) for c in curves)
        data = np.array([c[:n] for c in curves])
        epochs = np.arange(1, n + 1)
        mean, std = data.mean(0), data.std(0)
        ax.plot(epochs, mean, marker="o", label=rule)
        ax.fill_between(epochs, mean - std, mean + std, alpha=0.2)
    ax.set_xlabel("epoch")
    ax.set_ylabel(f"test {metric}")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def parser(prog: str = "compare_rules.py") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", type=path_arg("MODEL", text=True), help="model YAML file or the name of a bundled model (dendrisim models)")
    p.add_argument("--rules", default="dll,bp,fa,dfa", type=lambda s: [r for r in s.split(",") if r],
                   metavar="RULE,...", help="the rules to compare, comma-separated (default: dll,bp,fa,dfa)")
    p.add_argument("--seeds", default="0,1,2", type=lambda s: [int(x) for x in s.split(",") if x],
                   metavar="SEED,...", help="training seeds of each rule, comma-separated (default: 0,1,2)")
    p.add_argument("--out", type=path_arg("--out"), required=True,
                   help="folder for report.md, learning_curves.png, results.json and runs/")
    p.add_argument("--epochs", type=int, help="shorthand for --set training.epochs=N (default: the file's)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY.PATH=VALUE",
                   help="override a key of the model file for every run (repeatable)")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto (default: cpu)")
    p.add_argument("--threads", type=int, metavar="N",
                   help="torch's intra-op CPU threads (default: torch's own choice; 1 on a shared machine)")
    p.add_argument("--data-root", type=path_arg("--data-root", text=True),
                   help="folder with the dataset files (default: task.data_root, $DENDRISIM_DATA or ./data)")
    p.add_argument("--record", action="store_true", help="keep each run's recording (off by default)")
    p.add_argument("--plugin", dest="plugins", action="append", default=[], metavar="PATH.py",
                   type=path_arg("--plugin"),
                   help="load plasticity rules (or neuron models, settling schemes) from a Python file "
                        "(repeatable), to compare them with --rules")
    p.add_argument("--tune", type=int, metavar="N", help="first tune every rule with N trials (equal budgets)")
    p.add_argument("--tune-fix", default=(), type=lambda s: tuple(k for k in s.split(",") if k), metavar="KEY,...",
                   help="keys to keep out of the search, held at the file's or --set value "
                        "(e.g. plasticity.feedback_lr_scale)")
    p.add_argument("--tune-epochs", type=int, metavar="E", help="epochs of each tuning trial (default: --epochs or "
                   "the file's)")
    return p


def main(argv: Optional[Sequence[str]] = None, *, prog: str = "compare_rules.py") -> int:
    args = parser(prog).parse_args(argv)
    try:
        from .host import device_of

        if args.threads is not None:
            from .host import set_threads

            set_threads(args.threads)
        args.model = str(resolve_model(args.model))
        load_plugins(args.plugins)
        exp = load_experiment(args.model, args.overrides)
        for rule in args.rules:  # every rule name is checked before the first run
            load_experiment(args.model, [*args.overrides, f"plasticity.rule={rule}"])
        if args.tune:
            require_optuna()
        device_of(args.device)  # a device refused before any folder is made
        (args.out / "runs").mkdir(parents=True, exist_ok=True)
        tuned = tune_all(args, exp) if args.tune else {}
        run_all(args, tuned)
    except DendrisimError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print((args.out / "report.md").read_text())
    return 0


def tune_all(args, exp) -> dict:
    """Every rule's study, with the same budget; rule -> its record for the reports."""
    metric, higher = main_metric(exp.task.type)
    epochs = args.tune_epochs or args.epochs or exp.config.training.epochs
    tuned = {}
    for rule in args.rules:
        study = tune(TuningRun(model=args.model, rule=rule, trials=args.tune, epochs=epochs, out=args.out,
                               metric=metric, higher=higher, seed=args.seeds[0], overrides=args.overrides,
                               fixed=args.tune_fix,
                               device=args.device, data_root=args.data_root))
        tuned[rule] = {"study": study, "tuned": study.best_params, "trials": trial_records(study), "budget": args.tune,
                       "epochs": epochs, "metric": f"val_{metric}", "higher": higher}
        print(f"{rule} tuned: " + ", ".join(f"{k} {v:.4g}" for k, v in study.best_params.items())
              + f" (val_{metric} {study.best_value:.4f})", flush=True)
    plot_tuning(tuned, args.out / "tuning.png")
    return tuned


def write_reports(args, results: dict, tuned: dict) -> None:
    exp = load_experiment(args.model, args.overrides)
    metric, higher = main_metric(exp.task.type)
    title = f"{exp.config.name}: rules {', '.join(args.rules)}, seeds {', '.join(map(str, args.seeds))}"
    (args.out / "report.md").write_text(report(results, metric, higher, title, tuned))
    plot(results, metric, args.out / "learning_curves.png")
    rules = {rule: {"tuned": tuned[rule]["tuned"] if rule in tuned else None,
                    "trials": tuned[rule]["trials"] if rule in tuned else []} for rule in args.rules}
    from .tasks import TASKS

    metrics = list(TASKS.get(exp.task.type).metrics)
    (args.out / "results.json").write_text(json.dumps({"runs": results, "rules": rules, "metric": metric,
                                                       "higher": higher, "metrics": metrics}, indent=1, default=str))

