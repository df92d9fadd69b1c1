"""Command line of ``scripts/simulate.py``: train and evaluate one model file."""
from __future__ import annotations

import argparse
import contextlib
import json
import signal
import sys
from pathlib import Path
from typing import Optional, Sequence

from .errors import DendrisimError, is_out_of_memory
from .paths import forget, path_arg, user_error

from .bundled import DEFAULT as DEFAULT_MODEL, resolve_model


def parser(prog: str = "simulate.py") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=prog,
        description="Train a dendrisim model file and print a JSON summary as the last line.",
    )
    p.add_argument("model", nargs="?", default=None, type=path_arg("MODEL", text=True),
                   help=f"model YAML file or the name of a bundled model (dendrisim models; default: {DEFAULT_MODEL}, "
                        "or RUN_DIR/model.yaml with --resume)")
    p.add_argument("--plugin", dest="plugins", action="append", default=[], metavar="PATH.py",
                   type=path_arg("--plugin"),
                   help="load plasticity rules, neuron models or settling schemes from a Python file (repeatable); "
                        "model files name them by their registered names")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY.PATH=VALUE",
                   help="override a key of the model file, e.g. --set plasticity.rule=fa (repeatable)")
    p.add_argument("--epochs", type=int, help="shorthand for --set training.epochs=N (with training.phases: the "
                                              "last phase is extended or shortened to make N in all)")
    p.add_argument("--seed", type=int, help="shorthand for --set training.seed=N")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:N or auto (default: cpu, or the resumed run's)")
    p.add_argument("--matmul-precision", choices=["highest", "high", "medium"], default="highest",
                   help="float32 matmul precision: high allows TF32 on NVIDIA GPUs, medium bf16 (default: highest)")
    p.add_argument("--threads", type=int, metavar="N",
                   help="torch's intra-op CPU threads (default: torch's own choice, logged in run.json); "
                        "1 on a machine shared with other jobs")
    p.add_argument("--data-root", type=path_arg("--data-root", text=True),
                   help="folder with the dataset files (default: task.data_root, $DENDRISIM_DATA or ./data)")
    p.add_argument("--dry-run", action="store_true", help="one epoch of a few batches, to check that everything runs")
    p.add_argument("--out", type=path_arg("--out"), help="run directory (default: a new folder under recordings/); "
                                            "a directory holding a run is refused unless --overwrite")
    p.add_argument("--overwrite", action="store_true",
                   help="let --out replace the run in that directory (its files are removed first)")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="show a progress bar (default: only on a terminal)")
    p.add_argument("--check", action="store_true",
                   help="validate the model file and print what it builds, without data or training")
    p.add_argument("--resume", type=path_arg("--resume"), metavar="RUN_DIR",
                   help="continue a stopped or killed run from RUN_DIR/checkpoint.pt, with its own model and options; "
                        "--epochs (and --set of training.epochs, checkpoint_every, guard_every) may change, any "
                        "other change is refused")
    return p


def main(argv: Optional[Sequence[str]] = None, *, prog: str = "simulate.py") -> int:
    forget()
    args = parser(prog).parse_args(argv)
    overrides = list(args.overrides)
    if args.seed is not None:
        overrides.append(f"training.seed={args.seed}")
    try:
        import torch

        torch.set_float32_matmul_precision(args.matmul_precision)
        if args.threads is not None:
            from .host import set_threads

            set_threads(args.threads)
        from .builder import load_experiment
        from .plugins import load_plugins

        load_plugins(args.plugins)
        from .training import RunOptions, Trainer

        argv_list = [sys.argv[0], *(argv if argv is not None else sys.argv[1:])]
        if args.check:
            from .inspect import describe

            source = resolve_model(args.model)
            experiment = load_experiment(source, with_epochs(source, overrides, args.epochs))
            for note in experiment.notes:
                print(f"note: {note}", file=sys.stderr)
            print(describe(experiment, data_root=args.data_root))
            return 0
        from .distributed import from_environment
        from .host import device_of

        if args.device is not None:  # given, even as '': checked here, before any lock or data
            device_of(args.device)
        dist = from_environment("cpu" if args.device is None else args.device)
        say = (lambda line: print(line, flush=True)) if dist.is_main else (lambda line: None)
        if args.resume is not None:
            trainer = _resumed_trainer(args, overrides, argv_list, dist=dist, say=say)
            if trainer is None:  # the run is complete and nothing asks for more
                dist.close()
                return 0
            experiment = trainer.experiment
        else:
            source = resolve_model(args.model)
            experiment = load_experiment(source, with_epochs(source, overrides, args.epochs))
            options = RunOptions(device="cpu" if args.device is None else args.device, data_root=args.data_root, out_dir=args.out,
                                 dry_run=args.dry_run, overwrite=args.overwrite, progress=args.progress if dist.is_main else False,
                                 argv=argv_list, log=say, dist=dist,
                                 plugins=[str(Path(p).resolve()) for p in args.plugins])
            trainer = Trainer(experiment, options)
        if not dist.is_main:
            with graceful_stop(trainer):
                summary = trainer.run()
            dist.close()
            return 0 if "stopped" not in summary else 1
        _announce(trainer, dist)
        with graceful_stop(trainer):
            summary = trainer.run()
        dist.close()
    except (DendrisimError, OSError) as err:  # an OSError only on a path the user gave (user_error)
        print(f"error: {user_error(err)}", file=sys.stderr)
        return 2
    except (MemoryError, RuntimeError) as err:  # an allocation that failed before the loop (building, data)
        if not is_out_of_memory(err):
            raise
        print(f"error: out of memory before training started ({type(err).__name__}: "
              f"{(str(err).strip().splitlines() or [''])[0][:200]}); make the run smaller (task.batch_size, "
              "population sizes, the recording block) or run it where more memory is free", file=sys.stderr)
        return 2
    print(json.dumps(summary), flush=True)
    if "stopped" in summary:
        return {"SIGTERM": 143, "SIGINT": 130}.get(summary["stopped"], 1)
    return 0


def _announce(trainer, dist) -> None:
    """What the main rank prints before training: notes, the network, the rule, the scheme, the recording."""
    experiment = trainer.experiment
    for note in experiment.notes:
        print(f"note: {note}", file=sys.stderr)
    if dist.world > 1:
        print(f"data parallel: {dist.world} ranks x batch {experiment.task.batch_size} "
              f"= global batch {dist.world * experiment.task.batch_size}", flush=True)
    print(trainer.network.summary(), flush=True)
    print(f"rule {experiment.rule.rule}, {trainer.steps_per_epoch} steps/epoch, device {trainer.device}", flush=True)
    if experiment.config.dynamics.mode != "steady":
        print(trainer.scheme.describe(trainer.network)[0], flush=True)
    if trainer.recording_estimate is not None:
        est = trainer.recording_estimate
        print(f"recording: about {est['bytes'] / 2**20:.1f} MiB at most ({est['records']} records, "
              f"{est['weight_records']} projection records; budget {experiment.config.recording.max_gib} GiB)",
              flush=True)


def _resumed_trainer(args, overrides: list[str], argv: list[str], *, dist, say):
    """A trainer rebuilt from RUN_DIR (model.yaml, run.json, with the --set/--epochs that a
    resumed run may change) holding the run's lock, with its checkpoint loaded; None when
    the run is already complete and nothing asks for more epochs.

    Nothing the folder says is imported: the plugins run.json names must be given again
    with ``--plugin`` (:func:`_check_plugins`). A run that stopped before its first
    checkpoint (and never finished) starts over from the beginning, with its own model.yaml
    and options, its partial recording and metrics removed under the lock."""
    from . import rundir
    from .builder import load_experiment
    from .errors import ConfigError, FileFormatError
    from .rundir import RunLock
    from .training import CHECKPOINT, RunOptions, Trainer

    run_dir = args.resume
    checkpoint, model_file, run_file = run_dir / CHECKPOINT, run_dir / "model.yaml", run_dir / "run.json"
    if run_dir.is_dir():
        rundir.refuse_links(run_dir)  # nothing of the run is read through a link
    # stopped before its first checkpoint, never finished: started over
    fresh = (not checkpoint.exists() and model_file.is_file()
             and not any((run_dir / n).exists() for n in ("summary.json", "weights.pt")))
    for path in () if fresh else (checkpoint, model_file, run_file):
        if not path.is_file():
            raise ConfigError(f"{path} is missing: {run_dir} is not a run directory that can be resumed", path="--resume")
    if args.out is not None or args.dry_run or args.overwrite:
        raise ConfigError("--out, --dry-run and --overwrite come from the resumed run directory", path="--resume")
    if fresh and not run_file.is_file():  # stopped while writing run.json: only this command line's options exist
        say(f"note: {run_file} was never written (the run stopped before it); starting over with the options of "
            "this command line (--device, --data-root, --plugin) and the run's model.yaml")
        saved = {"dry_run": False, "plugins": [str(Path(p).resolve()) for p in args.plugins]}
    else:
        try:
            saved = json.loads(run_file.read_text())
            if not isinstance(saved, dict) or not isinstance(saved.get("dry_run"), bool):
                raise ValueError("not the object dendrisim writes")
        except (ValueError, UnicodeDecodeError) as err:
            raise FileFormatError(f"{run_file}: damaged ({err})") from None
    plugins = _check_plugins(run_file, saved, args.plugins)
    source = resolve_model(args.model) if args.model else model_file
    experiment = load_experiment(source, with_epochs(source, overrides, args.epochs))
    changed = _check_unchanged(load_experiment(model_file, []), experiment, model_file) if fresh else []
    options = RunOptions(device=saved.get("device", "cpu") if args.device is None else args.device, data_root=args.data_root or saved.get("data_root"),
                         out_dir=run_dir, dry_run=saved["dry_run"], progress=args.progress if dist.is_main else False,
                         argv=argv, log=say, dist=dist, plugins=plugins,
                         resumes=list(saved.get("resumes", [])))
    # held from before the data is loaded and the checkpoint read until the run ends
    lock = RunLock.acquire(run_dir, argv=argv) if dist.is_main else None
    try:
        trainer = Trainer(experiment, options)
    except BaseException:
        if lock is not None:
            lock.release()
        raise
    trainer.lock = lock
    if fresh:
        return _started_over(trainer, run_dir, argv, changed, say=say)
    try:
        trainer.resume(checkpoint)
        if trainer.finished and (run_dir / "summary.json").is_file():
            say(f"{run_dir} is already complete ({len(trainer.rows)} epochs, step {trainer.global_step}); "
                f"nothing to do (give --epochs N to train more)")
            if trainer.lock is not None:
                trainer.lock.release()
            return None
    except BaseException:
        if trainer.lock is not None:
            trainer.lock.release()
        raise
    options.resumes.append({"argv": argv, "changed": {k: _value(experiment.to_dict(), k) for k in trainer.resume_changes}})
    if trainer.resume_changes:
        say(f"applied on resume: {', '.join(f'{k}={_value(experiment.to_dict(), k)}' for k in trainer.resume_changes)} "
            "(written to model.yaml and run.json)")
    say(f"resuming {run_dir} at epoch {trainer.epoch}, step {trainer.global_step}")
    return trainer


def _check_plugins(run_file: Path, saved: dict, given: list[str]) -> list[str]:
    """The plugin files of the resumed run (resolved paths), all given on this command line.

    run.json names the plugins the run was started with, but a run folder never makes
    dendrisim import code: each must be given again with ``--plugin`` (the same file, or
    one that registers the same rules). A plugin run.json names that the command line does
    not give is refused, naming the file and the ``--plugin`` flags to add."""
    import shlex

    from .errors import FileFormatError
    from .plugins import ORIGIN, PluginError

    named, rules = saved.get("plugins", []), saved.get("plugin_rules", {})
    if not (isinstance(named, list) and all(isinstance(p, str) for p in named) and isinstance(rules, dict)):
        raise FileFormatError(f"{run_file}: damaged (plugins is not a list of file names)")
    loaded = [str(Path(p).resolve()) for p in given]
    by_loaded = {name for name, origin in ORIGIN.items() if origin != "dendrisim"
                 and str(Path(origin).resolve()) in loaded}

    def present(path: str) -> bool:
        names = rules.get(path)
        return str(Path(path).resolve()) in loaded or (
            isinstance(names, list) and bool(names) and all(n in by_loaded for n in names))

    missing = [p for p in named if not present(p)]
    if missing:
        what = ", ".join(f"{p} (rules {', '.join(map(str, rules[p]))})" if isinstance(rules.get(p), list)
                         and rules[p] else p for p in missing)  # a file of neuron models or schemes names no rule
        flags = " ".join(f"--plugin {shlex.quote(p)}" for p in missing)
        them = "it" if len(missing) == 1 else "them"
        raise PluginError(f"{run_file} names the plugin file{'s' if len(missing) > 1 else ''} {what}, which this "
                          "command does not load: a run folder never makes dendrisim import code (anyone who can "
                          f"write the folder could name any file). If you trust {them}, give {them} again on the "
                          f"command line: add {flags}", path="--resume")
    return loaded


def _check_unchanged(saved, experiment, model_file: Path) -> list[str]:
    """A run started over by --resume keeps its model: only the keys a resumed run may change
    may differ from its model.yaml (as :func:`dendrisim.observers.checkpoints.read` checks);
    returns those that do."""
    from .errors import ConfigError
    from .observers.checkpoints import resumable, resume_changes

    changed, refused = resume_changes(saved.to_dict(), experiment.to_dict(), saved.config.training)
    if refused:
        raise ConfigError(
            f"{model_file} is the run's model, and this command changes it: {refused}; a resumed run can change "
            f"only {', '.join(resumable(saved.config.training))} (resume with the run directory's own model.yaml "
            "and those keys, or start a new run)", path="--resume")
    return changed


def _started_over(trainer, run_dir: Path, argv: list[str], changed: list[str], *, say):
    """The trainer of a run that stopped before its first checkpoint, set to start it over
    from the beginning in its own folder: what it wrote (recording, metrics) is removed
    under the lock; model.yaml and run.json stay until the new run rewrites them."""
    from . import rundir

    if trainer.lock is not None:
        try:
            rundir.clear_partial(run_dir)
        except BaseException:
            trainer.lock.release()
            raise
    trainer.resumed = True  # the folder holds this run: not refused as another's
    values = trainer.experiment.to_dict()
    trainer.options.resumes.append({"argv": argv, "changed": {k: _value(values, k) for k in changed},
                                    "started_over": True})
    if trainer.dist.is_main:
        print(f"note: {run_dir} has no checkpoint (the run stopped before its first one), so it starts over from "
              "the beginning with its own model.yaml and options; its partial recording and metrics are replaced",
              file=sys.stderr, flush=True)
    say(f"starting {run_dir} over at epoch 1, step 0")
    return trainer


def with_epochs(source, overrides: list[str], epochs: Optional[int]) -> list[str]:
    """``overrides`` with ``--epochs N``: ``training.epochs=N`` and, for a model with
    ``training.phases``, the last phase's epochs so that they add up to N (more epochs extend
    the last phase; the earlier phases keep theirs)."""
    if epochs is None:
        return overrides
    from .config.loader import read_model
    from .errors import ConfigError

    data, file = read_model(source, overrides)
    training = data.get("training") if isinstance(data, dict) else None
    phases = training.get("phases") if isinstance(training, dict) else None
    extra = [f"training.epochs={epochs}"]
    if isinstance(phases, list) and phases and all(isinstance(p, dict) and isinstance(p.get("epochs"), int)
                                                   for p in phases):
        before = sum(p["epochs"] for p in phases[:-1])
        if epochs <= before:
            raise ConfigError(f"--epochs {epochs} would end before the last phase starts at epoch {before + 1}: with "
                              "training.phases, --epochs sets the run's total and only the last phase takes the "
                              f"change; give more than {before}", file=file, path="--epochs")
        extra.append(f"training.phases.{len(phases) - 1}.epochs={epochs - before}")
    return [*overrides, *extra]


def _value(data: dict, dotted: str):
    for part in dotted.split("."):
        data = data[int(part)] if isinstance(data, list) else data[part]
    return data


@contextlib.contextmanager
def graceful_stop(trainer):
    """SIGINT/SIGTERM ask the trainer to stop after the current step; a second Ctrl-C aborts."""
    def handler(signum, frame):
        name = signal.Signals(signum).name
        print(f"\n{name}: finishing the current step, then closing the recording (Ctrl-C again to abort)",
              file=sys.stderr, flush=True)
        trainer.request_stop(name)
        signal.signal(signal.SIGINT, signal.default_int_handler)

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
