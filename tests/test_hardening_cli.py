"""Issue #29, classes 8 and 9 outside the data formats: every command given a path it cannot use
(too long, a symlink loop, empty, /proc, a read-only or full folder), an odd --device or
--threads, an optimizer torch refuses, a plugin hook that raises, or a damaged results.json
ends with exit 2 and one paragraph naming what is wrong, never a traceback or the wrong cause."""
import errno
import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from dendrisim import commands

REPO = Path(__file__).resolve().parent.parent
LONG = "a" * 300  # over NAME_MAX (255) of every common file system


def refused(argv, capsys, match: str) -> str:
    """``dendrisim ARGV`` in this process: exit 2 (returned, or argparse's SystemExit), ``match``
    in its stderr, one paragraph and no traceback."""
    try:
        code = commands.main([str(a) for a in argv])
    except SystemExit as stop:
        code = stop.code
    err = capsys.readouterr().err
    assert code == 2, (code, err[-3000:])
    assert "Traceback" not in err, err[-3000:]
    assert re.search(match, err), err[-3000:]
    message = [line for line in err.splitlines() if "error:" in line]
    assert len(message) == 1, err
    return err


def dendrisim_cmd(*args, cwd=REPO, env=None, timeout=300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dendrisim", *map(str, args)], cwd=cwd, capture_output=True,
                          text=True, timeout=timeout, env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})})


@pytest.fixture(scope="module")
def recorded(tmp_path_factory) -> Path:
    """A finished dry run (its recording is what plot reads)."""
    out = tmp_path_factory.mktemp("recorded") / "run"
    assert commands.main(["run", "dll_mlp_digits", "--dry-run", "--out", str(out)]) == 0
    return out


@pytest.fixture
def loop(tmp_path) -> Path:
    link = tmp_path / "loop"
    link.symlink_to("loop")  # a symlink to itself: every lookup through it fails with ELOOP
    return link


# ----------------------------------------------------------------------------- names too long
def test_run_with_a_model_name_too_long(capsys):
    refused(["run", LONG], capsys, r"argument model: 'a{50}\.\.\.\(200 more characters\)\.\.\.a{50}': "
                                    r"File name too long \(ENAMETOOLONG\)")


def test_check_with_a_plugin_path_too_long(tmp_path, capsys):
    refused(["check", "--plugin", tmp_path / LONG / "rule.py"], capsys, r"argument --plugin: .*File name too long")


def test_run_with_an_out_too_long(tmp_path, capsys):
    refused(["run", "--dry-run", "--out", tmp_path / LONG], capsys, r"argument --out: .*File name too long")
    assert list(tmp_path.iterdir()) == []


def test_run_with_a_data_root_too_long(capsys):
    refused(["run", "--dry-run", "--data-root", LONG], capsys, r"argument --data-root: .*File name too long")


def test_a_data_root_too_long_given_by_set(tmp_path, capsys):
    refused(["run", "dll_mlp_fmnist", "--dry-run", "--set", f"task.data_root={LONG}", "--out", tmp_path / "run"],
            capsys, r"error: the data root \(--data-root, task.data_root or \$DENDRISIM_DATA\) 'a+\.\.\..*': "
                    r"File name too long \(ENAMETOOLONG\)")


def test_a_task_file_too_long_given_by_set(tmp_path, capsys):
    refused(["run", "dll_rnn_charlm", "--dry-run", "--set", f"task.text=/{LONG}", "--out", tmp_path / "run"],
            capsys, r"error: task.text: /a+\.\.\..*: File name too long \(ENAMETOOLONG\)")


def test_plot_a_recording_path_too_long(capsys):
    refused(["plot", LONG], capsys, r"argument file: .*File name too long")


def test_sample_a_run_dir_too_long(capsys):
    refused(["sample", LONG], capsys, r"argument run_dir: .*File name too long")


def test_compare_with_an_out_too_long(tmp_path, capsys):
    refused(["compare", "dll_mlp_digits", "--out", tmp_path / LONG], capsys, r"argument --out: .*File name too long")


def test_results_with_an_out_too_long(capsys):
    refused(["results", "--out", LONG], capsys, r"argument --out: .*File name too long")


def test_bench_with_a_model_too_long(capsys):
    refused(["bench", "--model", LONG], capsys, r"argument --model: .*File name too long")


def test_rules_with_a_plugin_too_long(capsys):
    refused(["rules", "--plugin", LONG], capsys, r"argument --plugin: .*File name too long")


# ----------------------------------------------------------------------------- symlink loops, empty, /proc, read-only
def test_out_through_a_symlink_loop(loop, capsys):
    refused(["run", "--dry-run", "--out", loop / "run"], capsys,
            r"argument --out: '.*loop/run': Too many levels of symbolic links \(ELOOP\)")


def test_a_model_that_is_a_symlink_loop(loop, capsys):
    refused(["check", loop], capsys, r"argument model: '.*loop': Too many levels of symbolic links \(ELOOP\)")


def test_an_empty_out_is_refused_not_the_working_folder(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    refused(["run", "--dry-run", "--out", ""], capsys, r"argument --out: an empty path \(it would silently mean "
                                                       r"the working folder\)")
    assert list(tmp_path.iterdir()) == []


def test_out_in_proc(capsys):
    refused(["run", "--dry-run", "--out", "/proc/dendrisim-run"], capsys,
            r"error: cannot create the run directory /proc/dendrisim-run: No such file or directory \(ENOENT\)")


def test_out_under_a_read_only_folder(tmp_path, capsys, monkeypatch):
    """As root no permission bit stops a write: the read-only file system is simulated at os.mkdir."""
    read_only = tmp_path / "ro"
    read_only.mkdir()
    real = os.mkdir

    def mkdir(path, *args, **kwargs):
        if str(path).startswith(str(read_only)):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))
        return real(path, *args, **kwargs)

    monkeypatch.setattr(os, "mkdir", mkdir)
    refused(["run", "--dry-run", "--out", read_only / "run"], capsys,
            r"error: cannot create the run directory .*/ro/run: Read-only file system \(EROFS\)")


def test_an_oserror_later_on_a_given_path_names_it(tmp_path, capsys):
    """The generic mechanism: an OSError met on a path the user gave becomes one paragraph."""
    refused(["results", "--only", "charlm", "--out", tmp_path / "out", "--update", tmp_path / "nope.md"], capsys,
            r"error: --update: .*nope.md: No such file or directory \(ENOENT\)")


def test_an_oserror_on_another_path_stays_a_traceback(tmp_path):
    """Precision: a file dendrisim opens on its own is not blamed on the user's paths."""
    from dendrisim.paths import forget, path_arg, user_error

    forget()
    path_arg("--out")(str(tmp_path / "out"))
    with pytest.raises(FileNotFoundError):
        user_error(FileNotFoundError(errno.ENOENT, "No such file or directory", "/nonexistent/internal.yaml"))
    assert "--out" in str(user_error(PermissionError(errno.EACCES, "Permission denied", str(tmp_path / "out" / "x"))))
    path_arg("--data-root")("/")  # every file lies under /: it counts only for / itself
    with pytest.raises(PermissionError):
        user_error(PermissionError(errno.EACCES, "Permission denied", "/etc/dendrisim-internal"))


# ----------------------------------------------------------------------------- plot's output folder
def test_plot_into_an_empty_out_is_refused(recorded, capsys):
    refused(["plot", recorded, "--out", ""], capsys, r"argument --out: an empty path")


@pytest.mark.parametrize("code", [errno.EROFS, errno.ENOSPC])
def test_plot_into_a_read_only_or_full_folder_blames_the_folder_not_the_recording(recorded, tmp_path, capsys,
                                                                                  monkeypatch, code):
    import matplotlib.figure

    def savefig(self, fname, *args, **kwargs):
        raise OSError(code, os.strerror(code), str(fname)) if code == errno.EROFS else OSError(code, os.strerror(code))

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", savefig)
    err = refused(["plot", recorded, "--out", tmp_path / "figs"], capsys,
                  rf"error: cannot write the figures to .*figs: {os.strerror(code)} \({errno.errorcode[code]}\)")
    assert "damaged" not in err and "not a dendrisim recording" not in err


# ----------------------------------------------------------------------------- devices, threads, optimizer
@pytest.mark.parametrize("device", ["mps", "meta", "xla"])
def test_devices_dendrisim_does_not_train_on(device, tmp_path, capsys):
    refused(["run", "--dry-run", "--device", device, "--out", tmp_path / "run"], capsys,
            rf"--device {device}: dendrisim trains on cpu or cuda devices only, not {device}; use cpu, cuda, "
            r"cuda:N or auto")
    assert not (tmp_path / "run").exists()


def test_a_device_that_is_no_device(tmp_path, capsys):
    refused(["run", "--dry-run", "--device", "gpu0", "--out", tmp_path / "run"], capsys,
            r"--device 'gpu0' is not a device; use cpu, cuda, cuda:N or auto")


def test_threads_far_over_the_cores_are_refused_not_a_crash(tmp_path):
    proc = dendrisim_cmd("run", "--dry-run", "--threads", "100000", "--out", tmp_path / "run")
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-2000:])
    assert "Traceback" not in proc.stderr
    assert re.search(rf"--threads: 100000 threads: this machine has {os.cpu_count()} CPU cores; give 1 to "
                     rf"{4 * os.cpu_count()}", proc.stderr), proc.stderr


def test_nesterov_without_momentum_names_the_key_and_torchs_reason(tmp_path, capsys):
    refused(["run", "--dry-run", "--out", tmp_path / "run", "--set", "optimizer.type=momentum", "--set",
             "optimizer.momentum=0", "--set", "optimizer.nesterov=true"], capsys,
            r"error: optimizer.nesterov: True with optimizer.momentum 0.0 is refused by torch.optim for optimizer "
            r"type momentum: Nesterov momentum requires a momentum and zero dampening")
    assert not (tmp_path / "run").exists()


def test_any_optimizer_refusal_names_its_key():
    from dendrisim.config.schema import OptimizerConfig
    from dendrisim.optim import refused as optimizer_refused

    err = optimizer_refused(ValueError("Invalid beta parameter at index 1: 1.0"), OptimizerConfig())
    assert str(err) == ("optimizer.betas: (0.9, 0.999) is refused by torch.optim for optimizer type adam: "
                        "Invalid beta parameter at index 1: 1.0")


# ----------------------------------------------------------------------------- plugin and observer hooks
HOOKY = """\
import dendrisim
from dendrisim.plasticity.rules import Backprop


@dendrisim.register_rule("hooky")
class Hooky(Backprop):
    def start_epoch(self, epoch):
        if {hook!r} == "start_epoch" and epoch >= 2:
            raise ValueError("start_epoch failed on purpose")

    def after_update(self, network):
        if {hook!r} == "after_update":
            raise RuntimeError("after_update failed on purpose")

    def epoch_summary(self):
        if {hook!r} == "epoch_summary" and self.epochs_seen:
            raise KeyError("epoch_summary failed on purpose")
        self.epochs_seen = True
        return {{}}

    epochs_seen = False
"""


@pytest.mark.parametrize("hook, exception, epochs_kept", [
    ("start_epoch", "ValueError", 1), ("after_update", "RuntimeError", 0), ("epoch_summary", "KeyError", 1)])
def test_a_plugin_hook_that_raises_stops_the_run_with_one_paragraph_and_keeps_the_recording(
        tmp_path, hook, exception, epochs_kept):
    plugin = tmp_path / "hooky.py"
    plugin.write_text(HOOKY.format(hook=hook))
    out = tmp_path / "run"
    proc = dendrisim_cmd("run", "--plugin", plugin, "--set", "plasticity.rule=hooky", "--epochs", "2", "--out", out)
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-3000:])
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert re.search(rf"error: rule 'hooky' \(in .*hooky.py\): {hook} raised {exception}: .*failed on purpose",
                     proc.stderr), proc.stderr
    from dendrisim.recording.reader import Recording

    with Recording(out / "recording.h5") as rec:  # closed properly: it opens, and holds what was done
        assert not rec.complete and list(rec.metrics["epoch"]) == list(range(1, epochs_kept + 1))


def test_a_plugin_rule_s_hooks_are_wrapped_and_dendrisims_are_not():
    from dendrisim.plasticity.rules import Backprop
    from dendrisim.plugins import _guard

    class Mine(Backprop):
        def start_epoch(self, epoch):
            raise ValueError("boom")

    Mine.__module__ = "my_plugin"
    _guard(Mine, "mine", "my_plugin.py")
    assert getattr(Mine.start_epoch, "_dendrisim_hook", False) and getattr(Mine.compute_updates, "_dendrisim_hook")
    assert not getattr(Mine.after_update, "_dendrisim_hook", False)  # dendrisim's own: never wrapped
    from dendrisim.plugins import PluginError

    with pytest.raises(PluginError, match=r"rule 'mine' \(in my_plugin.py\): start_epoch raised ValueError: boom"):
        Mine.start_epoch(object.__new__(Mine), 2)


def test_a_user_settling_scheme_that_raises_is_named(tmp_path):
    """Registering a scheme changes this process's registry: it runs in a fresh one."""
    code = textwrap.dedent(f"""
        import dendrisim
        from dendrisim.plugins import PluginError
        from dendrisim.settling import SCHEMES, SteadyState

        @SCHEMES.register("shaky")
        class Shaky(SteadyState):
            def _present(self, network, rule, target, capture):
                raise ArithmeticError("shaky on purpose")

        trainer = dendrisim.Trainer(dendrisim.load("dll_mlp_digits", ["dynamics.mode=shaky", "training.epochs=1"]),
                                    out={str(tmp_path / "run")!r})
        try:
            trainer.fit()
        except PluginError as err:
            print(err)
    """)
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert proc.stdout.strip() == ("settling scheme 'shaky' (in __main__): _present raised ArithmeticError: "
                                   "shaky on purpose"), proc.stdout


# ----------------------------------------------------------------------------- dendrisim results
MARKED = ("<!-- results rules: begin (scripts/results.py --suite rules writes this part) -->\n"
          "<!-- results rules: end -->\n")


def test_results_update_of_a_page_without_markers(tmp_path, capsys):
    page = tmp_path / "page.md"
    page.write_text("# Results\n")
    refused(["results", "--only", "charlm", "--out", tmp_path / "out", "--update", page], capsys,
            r"error: --update .*page.md: the page needs the results markers of suite rules once each, begin before "
            r"end; .*\(nothing was run or written\)")
    assert page.read_text() == "# Results\n" and not (tmp_path / "out").exists()


@pytest.mark.parametrize("content, match", [
    ('{"rules": ', r"damaged results file, not JSON \(Expecting value"),
    ("[1, 2]", r"damaged results file: it holds a JSON list, not the object dendrisim writes"),
    (b"\xff\xfe", r"damaged results file, not JSON \(.*codec can't decode"),
])
def test_results_update_with_a_damaged_results_json(tmp_path, capsys, content, match):
    page = tmp_path / "page.md"
    page.write_text(MARKED)
    stored = tmp_path / "results.json"
    stored.write_bytes(content if isinstance(content, bytes) else content.encode())
    refused(["results", "--only", "charlm", "--out", tmp_path / "out", "--update", page], capsys,
            rf"error: .*results.json: {match}")
    assert page.read_text() == MARKED


def test_a_contenders_damaged_results_json_names_it(tmp_path):
    from dendrisim import results as results_module
    from dendrisim.errors import FileFormatError

    folder = tmp_path / "digits" / "dll"
    folder.mkdir(parents=True)
    comparison = results_module.SUITES["rules"][0]
    contender = comparison.contenders[0]
    args = results_module.argparse.Namespace(out=tmp_path, epochs=1, seeds=[0], tune=1, tune_epochs=1, device="cpu",
                                             data_root=None, overrides=[], text=None, series=None)
    folder = tmp_path / comparison.name / contender.label
    folder.mkdir(parents=True, exist_ok=True)
    import shlex

    (folder / "done").write_text(shlex.join(results_module.command(comparison, contender, args, folder)[1:]))
    (folder / "results.json").write_text(json.dumps({"runs": {}}))
    with pytest.raises(FileFormatError, match=r"results.json: not the results compare_rules writes \(KeyError: "
                                              r"'metric'\); remove .*done to run"):
        results_module.run_contender(comparison, contender, args)
