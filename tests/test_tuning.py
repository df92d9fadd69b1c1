"""Equal tuning budgets (#16): Optuna's TPE over each rule's declared tunables, scored on
the validation split only, seeded, stored so that a stopped study continues."""
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

optuna = pytest.importorskip("optuna", reason="the optional extra 'tune' (.ci/run installs it)")

from dendrisim.plasticity import RULES  # noqa: E402
from dendrisim.tuning import TuningRun, finished, report, search_space, trial_records, tune  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
QUICK = ["training.max_steps_per_epoch=6", "task.batch_size=32"]


def run(out, rule="dll", trials=3, **kw) -> TuningRun:
    return TuningRun(model=str(REPO / "models" / "dll_mlp_digits.yaml"), rule=rule, trials=trials, epochs=2, out=out,
                     metric="accuracy", higher=True, overrides=list(QUICK), log=lambda s: None, **kw)


def test_the_search_covers_the_learning_rate_and_each_rules_tunables():
    assert search_space(RULES.get("dll"), 1e-3) == {"optimizer.lr": (1e-4, 1e-2, "log"),
                                                     "plasticity.feedback_lr_scale": (0.01, 1.0, "log"),
                                                     "plasticity.sigma": (0.5, 2.0)}
    assert "plasticity.decay" in search_space(RULES.get("kp"), 1e-3)
    assert {"plasticity.inference_lr", "plasticity.inference_steps"} <= set(search_space(RULES.get("pc"), 1e-3))
    for rule in ("fa", "dfa"):
        assert "plasticity.feedback_init.normal.std" in search_space(RULES.get(rule), 1e-3)
    assert list(search_space(RULES.get("bp"), 1e-3)) == ["optimizer.lr"]


def test_plugin_rules_declare_their_tunables_the_same_way():
    from dendrisim.plasticity.rules import Backprop
    from dendrisim.plugins import contract_problem

    class Damped(Backprop):
        tunables = {"clip_update": (0.1, 10.0, "log")}

    assert contract_problem(Damped, "damped") is None
    assert search_space(Damped, 0.01)["plasticity.clip_update"] == (0.1, 10.0, "log")


def test_tuning_never_reads_the_test_split(tmp_path, monkeypatch):
    from dendrisim.training import Trainer

    seen = []
    real = Trainer.evaluate

    def spy(self, split):
        seen.append("test" if split is self.task.test else "val" if split is self.task.val else "train")
        return real(self, split)

    monkeypatch.setattr(Trainer, "evaluate", spy)
    study = tune(run(tmp_path, trials=2))
    assert len(finished(study)) == 2 and seen and set(seen) == {"val"}


def test_the_same_seed_gives_the_same_trials(tmp_path):
    a = trial_records(tune(run(tmp_path / "a", rule="kp")))
    b = trial_records(tune(run(tmp_path / "b", rule="kp")))
    assert [(t["params"], t["value"], t["state"]) for t in a] == [(t["params"], t["value"], t["state"]) for t in b]
    c = trial_records(tune(run(tmp_path / "c", rule="kp", seed=1)))
    assert [t["params"] for t in c] != [t["params"] for t in a]


def test_a_stopped_study_continues_where_it_stopped(tmp_path):
    first = trial_records(tune(run(tmp_path, trials=2)))
    more = trial_records(tune(run(tmp_path, trials=4)))  # the same folder: the stored study
    assert len(first) == 2 and len(more) == 4
    assert more[:2] == first  # kept, not trained again
    assert len(trial_records(tune(run(tmp_path, trials=4)))) == 4  # the budget is met: nothing to do


def test_the_pruner_stops_a_trial_that_trails(tmp_path):
    class Trial:
        def __init__(self, prune):
            self.prune, self.reports = prune, []

        def report(self, value, step):
            self.reports.append((step, value))

        def should_prune(self):
            return self.prune

    keep = Trial(False)
    report(keep, {"epoch": 1, "val_accuracy": 0.9}, "accuracy")
    assert keep.reports == [(1, 0.9)]
    with pytest.raises(optuna.TrialPruned, match="epoch 2: val_accuracy 0.1000"):
        report(Trial(True), {"epoch": 2, "val_accuracy": 0.1}, "accuracy")


def test_compare_rules_tunes_then_trains_every_seed_with_the_best_settings(tmp_path):
    out = tmp_path / "cmp"
    args = [sys.executable, "scripts/compare_rules.py", "models/dll_mlp_digits.yaml", "--rules", "dll,bp",
            "--seeds", "0,1", "--epochs", "2", "--tune", "3", "--tune-epochs", "1", *sum((["--set", s] for s in QUICK), []),
            "--out", str(out)]
    proc = subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    results = json.loads((out / "results.json").read_text())
    for rule in ("dll", "bp"):
        tuned, trials = results["rules"][rule]["tuned"], results["rules"][rule]["trials"]
        assert len(trials) == 3 and set(tuned) == set(trials[0]["params"])
        assert all(t["value"] is None or 0 <= t["value"] <= 1 for t in trials)
        for seed in (0, 1):  # every seed trained with the tuned learning rate
            model = yaml.safe_load((out / "runs" / f"{rule}-s{seed}" / "model.yaml").read_text())
            assert model["optimizer"]["lr"] == pytest.approx(tuned["optimizer.lr"], rel=1e-12)
    table = (out / "report.md").read_text()
    assert "tuned settings" in table and "3 trials of Optuna's TPE sampler, 1 epochs each" in table
    assert (out / "tuning.png").read_bytes()[:4] == b"\x89PNG"


def test_without_optuna_tune_names_the_extra(tmp_path):
    code = ("import sys; sys.modules['optuna'] = None; sys.argv = ['compare_rules.py', 'models/dll_mlp_digits.yaml', "
            f"'--tune', '2', '--out', {str(tmp_path / 'x')!r}]; import runpy; "
            "runpy.run_path('scripts/compare_rules.py', run_name='__main__')")
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and "--tune needs Optuna, which the optional extra 'tune' installs" in proc.stderr


def test_fixed_keys_stay_out_of_the_search_and_unknown_ones_are_named():
    from dendrisim.errors import ConfigError

    space = search_space(RULES.get("dll"), 1e-3, fixed=("plasticity.feedback_lr_scale",))
    assert list(space) == ["optimizer.lr", "plasticity.sigma"]
    with pytest.raises(ConfigError, match=r"--tune-fix: plasticity\.decay is not searched for rule .*; the search "
                                          r"covers optimizer\.lr, plasticity\.feedback_lr_scale, plasticity\.sigma"):
        search_space(RULES.get("dll"), 1e-3, fixed=("plasticity.decay",))


def test_a_fixed_key_is_held_at_its_configured_value_in_every_trial(tmp_path):
    study = tune(run(tmp_path, trials=2, fixed=("plasticity.sigma",)))
    assert all(set(t.params) == {"optimizer.lr", "plasticity.feedback_lr_scale"} for t in study.trials)


def test_a_phased_model_is_judged_only_after_its_earlier_phases(tmp_path):
    """The pruner waits out a circuit's self-predicting phase (its validation scores do not
    move while the forward weights do not learn) and judges trials from the learning phase on."""
    pytest.importorskip("optuna")
    model = str(REPO / "models" / "microcircuit_digits.yaml")
    run = TuningRun(model=model, rule="mc_basal", trials=0, epochs=25, out=tmp_path, metric="accuracy", higher=True,
                    log=lambda line: None)
    study = tune(run)
    assert study.pruner._n_warmup_steps == 21  # 20 self-predicting epochs, then one of learning
    plain = tune(TuningRun(model=str(REPO / "models" / "dll_mlp_digits.yaml"), rule="dll", trials=0, epochs=2, metric="accuracy", higher=True,
                           out=tmp_path / "plain", log=lambda line: None))
    assert plain.pruner._n_warmup_steps == 1
