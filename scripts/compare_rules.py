#!/usr/bin/env python3
"""Train one model file under several plasticity rules and seeds, and report.

    python scripts/compare_rules.py models/dll_mlp_fmnist.yaml --rules dll,bp,fa,dfa,kp --seeds 0,1,2 --out reports/fmnist

Each rule × seed is a separate run (its own run directory under OUT/runs/, recording
off unless --record). OUT/report.md holds a Markdown table (mean ± standard deviation
over seeds of the final and the best test metric, and of the time per epoch),
OUT/learning_curves.png the test metric per epoch (mean ± std band), OUT/results.json
every run's summary and metrics.
"""
import argparse
import json
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from dendrisim.builder import load_experiment  # noqa: E402
from dendrisim.errors import DendrisimError  # noqa: E402
from dendrisim.plugins import load_plugins  # noqa: E402
from dendrisim.tasks import TASKS  # noqa: E402
from dendrisim.training import RunOptions, Trainer  # noqa: E402


def mean_std(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.4f}"
    return f"{statistics.mean(values):.4f} ± {statistics.stdev(values):.4f}"


def main_metric(task_type: str) -> tuple[str, bool]:
    metrics = TASKS.get(task_type).metrics
    higher = [m for m, up in metrics.items() if up]
    return (higher[0], True) if higher else ("loss", False)


def run_all(args) -> dict:
    results = {}
    for rule in args.rules:
        for seed in args.seeds:
            overrides = [*args.overrides, f"plasticity.rule={rule}", f"training.seed={seed}"]
            if args.epochs:
                overrides.append(f"training.epochs={args.epochs}")
            if not args.record:
                overrides.append("recording.enabled=false")
            exp = load_experiment(args.model, overrides)
            run_dir = args.out / "runs" / f"{rule}-s{seed}"
            log = open(args.out / "runs" / f"{rule}-s{seed}.log", "w")
            trainer = Trainer(exp, RunOptions(device=args.device, data_root=args.data_root, out_dir=run_dir,
                                              progress=False, log=lambda line: print(line, file=log, flush=True)))
            summary = trainer.run()
            log.close()
            results[f"{rule}-s{seed}"] = {"rule": rule, "seed": seed, "summary": summary, "rows": trainer.rows}
            write_reports(args, results)  # after every run, so a crash keeps what was done
            print(f"{rule} seed {seed}: " + ", ".join(f"{k} {v:.4f}" for k, v in summary.items()
                                                     if k.startswith("test_")), flush=True)
    return results


def report(results: dict, metric: str, higher: bool, title: str) -> str:
    lines = [f"# {title}", "", f"Test {metric} over seeds (mean ± std); best = best epoch on the test set, "
             "for reference only (model selection uses the validation split); time per training epoch.", "",
             f"| rule | runs | final test {metric} | best test {metric} | selected-epoch test {metric} | s / epoch |",
             "|---|---|---|---|---|---|"]
    rules = list(dict.fromkeys(r["rule"] for r in results.values()))
    for rule in rules:
        runs = [r for r in results.values() if r["rule"] == rule]
        final = [r["rows"][-1][f"test_{metric}"] for r in runs]
        pick = max if higher else min
        best = [pick(row[f"test_{metric}"] for row in r["rows"]) for r in runs]
        selected = [r["summary"][f"test_{metric}"] for r in runs]
        seconds = [statistics.mean(row["seconds"] for row in r["rows"]) for r in runs]
        lines.append(f"| {rule} | {len(runs)} | {mean_std(final)} | {mean_std(best)} | {mean_std(selected)} | "
                     f"{mean_std(seconds)} |")
    return "\n".join(lines) + "\n"


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


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model")
    p.add_argument("--rules", default="dll,bp,fa,dfa", type=lambda s: [r for r in s.split(",") if r])
    p.add_argument("--seeds", default="0,1,2", type=lambda s: [int(x) for x in s.split(",") if x])
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--epochs", type=int)
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY.PATH=VALUE")
    p.add_argument("--device", default="cpu")
    p.add_argument("--data-root")
    p.add_argument("--record", action="store_true", help="keep each run's recording (off by default)")
    p.add_argument("--plugin", dest="plugins", action="append", default=[], metavar="PATH.py",
                   help="load plasticity rules from a Python file (repeatable), to compare them with --rules")
    args = p.parse_args()
    try:
        load_plugins(args.plugins)
        load_experiment(args.model, args.overrides)
        for rule in args.rules:  # every rule name is checked before the first run
            load_experiment(args.model, [*args.overrides, f"plasticity.rule={rule}"])
        (args.out / "runs").mkdir(parents=True, exist_ok=True)
        run_all(args)
    except DendrisimError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print((args.out / "report.md").read_text())
    return 0


def write_reports(args, results: dict) -> None:
    exp = load_experiment(args.model, args.overrides)
    metric, higher = main_metric(exp.task.type)
    title = f"{exp.config.name}: rules {', '.join(args.rules)}, seeds {', '.join(map(str, args.seeds))}"
    (args.out / "report.md").write_text(report(results, metric, higher, title))
    plot(results, metric, args.out / "learning_curves.png")
    (args.out / "results.json").write_text(json.dumps(results, indent=1, default=str))


if __name__ == "__main__":
    sys.exit(main())
