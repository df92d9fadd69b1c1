#!/usr/bin/env python3
"""What recording costs: training throughput with and without the recorder, and the
recorder's memory over a long run.

The default workload is the issue's: the Fashion-MNIST MLP (784-1024-512-256-10, DLL),
recording soma, basal and apical of every hidden population every 10 steps for 16
samples. Rounds with and without the recorder alternate in one process, so machine
noise hits both; the headline is the ratio of the medians. With ``--checksum`` a third
recorder, whose datasets carry no fletcher32 checksum, joins the rotation, and the
ratio of the recorders' medians is fletcher32's cost.

    python scripts/bench_recording.py                 # throughput, then memory over 5000 steps
    python scripts/bench_recording.py --model models/dll_mlp_digits.yaml --steps 200 --memory-steps 1000
    python scripts/bench_recording.py --checksum --memory-steps 0   # fletcher32's cost
"""
import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from dendrisim.builder import load_experiment  # noqa: E402
from dendrisim.training import RunOptions, Trainer  # noqa: E402


def rss_mib() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def run_steps(tr: Trainer, steps: int) -> float:
    """Seconds for ``steps`` training steps (whole epochs of ``max_steps_per_epoch``)."""
    t0 = time.perf_counter()
    done, epoch = 0, 0
    while done < steps:
        epoch += 1
        tr.train_epoch(epoch)
        done += tr.steps_per_epoch
    if tr.recorder is not None:
        tr.recorder.flush()
    return time.perf_counter() - t0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="models/dll_mlp_fmnist.yaml", help="model file to train (default: %(default)s)")
    p.add_argument("--every", type=int, default=10, help="record activity every N steps (default: %(default)s)")
    p.add_argument("--samples", type=int, default=16, help="samples of each batch recorded (default: %(default)s)")
    p.add_argument("--steps", type=int, default=400, help="steps per timed round")
    p.add_argument("--rounds", type=int, default=5, help="alternated rounds with and without the recorder (default: %(default)s)")
    p.add_argument("--memory-steps", type=int, default=5000,
                   help="steps of the memory run, whose resident memory is sampled as it goes (0: skip it; default: %(default)s)")
    p.add_argument("--data-root", help="folder with the dataset files (default: task.data_root, $DENDRISIM_DATA or ./data)")
    p.add_argument("--json", action="store_true", help="print one JSON line instead of the table")
    p.add_argument("--checksum", action="store_true",
                   help="also time a recorder without fletcher32 checksums (their cost as a ratio)")
    args = p.parse_args()

    block = ("recording={every: %d, samples: %d, at_epoch_end: false, "
             "populations: {%s}}")
    exp0 = load_experiment(args.model)
    hidden = [n for n, pc in exp0.config.populations.items()
              if pc.type == "pyramidal" and any(pr.source == n for pr in exp0.config.projections)]
    pops = ", ".join(f"{h}: [soma, basal, apical]" for h in hidden)
    exp = load_experiment(args.model, [block % (args.every, args.samples, pops),
                                       f"training.max_steps_per_epoch={min(args.steps, 100)}"])
    tr = Trainer(exp, RunOptions(data_root=args.data_root, progress=False, log=lambda s: None))
    from dendrisim.recording import layout as layout_module

    with tempfile.TemporaryDirectory() as tmp:
        tr._open_recorder(Path(tmp))
        recorder = tr.recorder
        bare = None
        if args.checksum:  # the same recorder without checksums, in a folder of its own
            (Path(tmp) / "bare").mkdir()
            layout_module.FLETCHER32 = False
            try:
                tr._open_recorder(Path(tmp) / "bare")
            finally:
                layout_module.FLETCHER32 = True
            bare = tr.recorder
            tr.recorder = bare
            run_steps(tr, 50)
        tr.recorder = recorder
        run_steps(tr, 50)  # warm-up, both paths
        tr.recorder = None
        run_steps(tr, 50)
        plain, rec, rec_bare = [], [], []
        for _ in range(args.rounds):
            tr.recorder = None
            plain.append(run_steps(tr, args.steps))
            tr.recorder = recorder
            rec.append(run_steps(tr, args.steps))
            if bare is not None:
                tr.recorder = bare
                rec_bare.append(run_steps(tr, args.steps))
        ratio = statistics.median(rec) / statistics.median(plain)
        # memory: a long run without, then with the recorder, RSS sampled every 500 steps
        memory = {}
        for label, rec_on in (("without", None), ("with", recorder)):
            tr.recorder = rec_on
            samples = [round(rss_mib(), 1)]
            for _ in range(0, args.memory_steps, 500):
                run_steps(tr, 500)
                samples.append(round(rss_mib(), 1))
            memory[label] = samples
        size = os.path.getsize(recorder.path)
        recorder.close(complete=True)
        if bare is not None:
            bare.close(complete=True)
    steps_per_s = args.steps / statistics.median(plain)
    result = {
        "model": exp.config.name, "rule": exp.rule.rule, "every": args.every, "samples": args.samples,
        "populations": hidden, "steps_per_round": args.steps, "rounds": args.rounds,
        "median_s_plain": round(statistics.median(plain), 3), "median_s_recording": round(statistics.median(rec), 3),
        "overhead_pct": round(100 * (ratio - 1), 2), "steps_per_s_plain": round(steps_per_s, 1),
        "rss_mib_every_500_steps_without": memory["without"],
        "rss_mib_every_500_steps_with": memory["with"],
        "rss_growth_mib_without": round(memory["without"][-1] - memory["without"][0], 1),
        "rss_growth_mib_with": round(memory["with"][-1] - memory["with"][0], 1),
        "file_mib": round(size / 2**20, 2),
    }
    if rec_bare:
        result["median_s_recording_no_checksum"] = round(statistics.median(rec_bare), 3)
        result["fletcher32_ratio"] = round(statistics.median(rec) / statistics.median(rec_bare), 4)
        result["overhead_pct_no_checksum"] = round(100 * (statistics.median(rec_bare) / statistics.median(plain) - 1), 2)
    if args.json:
        print(json.dumps(result))
    else:
        for k, v in result.items():
            print(f"{k:>26}: {v}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
