"""Defects noted in a session's closing note: ``--device ''`` taken as cpu, ``bench`` on an
own-data image model, a char LM fed ids through a dense projection, a word2vec header that
claims fewer words than its file holds, and how-to pages that showed ``python scripts/...``."""
import pytest

from dendrisim.commands import main as dendrisim

REPO_MODEL = "dll_mlp_digits"


# ------------------------------------------------------------------ 1. --device ''
@pytest.mark.parametrize("command", [
    ["run", REPO_MODEL, "--dry-run"],
    ["run", "--resume", "no-such-run"],
    ["compare", REPO_MODEL, "--rules", "bp", "--seeds", "0", "--epochs", "1"],
    ["bench", "--model", REPO_MODEL, "--no-epoch", "--steps", "1", "--repeats", "1", "--warmup", "0"],
])
def test_an_empty_device_is_refused_not_taken_as_cpu(command, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    if command[0] in ("compare",) or "--dry-run" in command:
        command = [*command, "--out", str(tmp_path / "out")]
    assert dendrisim([*command, "--device", ""]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --device '' is not a device; use cpu, cuda, cuda:N or auto"), err
    assert "Traceback" not in err and not (tmp_path / "out" / "recording.h5").exists()
