"""Checkpoints written before a presentation's state became a value (issue 27) resume.

``tests/data/run_before_issue27`` is a run directory written by dendrisim at commit 4f4c1d7
(``dendrisim run --epochs 2 --set training.max_steps_per_epoch=6 --set populations.h1.size=12
--set populations.h2.size=8 --set recording.every=3 --set recording.samples=2``). The same
command with ``--epochs 4`` at that commit ended with test loss 2.296826885935324: resuming
the two-epoch run to four epochs now must end there, bit for bit."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
OLD_RUN = Path(__file__).resolve().parent / "data" / "run_before_issue27"


def test_a_run_checkpointed_before_issue_27_resumes_to_the_same_numbers(tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(OLD_RUN, run_dir)
    proc = subprocess.run([sys.executable, "-m", "dendrisim", "run", "--resume", str(run_dir), "--epochs", "4",
                           "--no-progress"], cwd=tmp_path, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert summary["epochs"] == 4 and summary["test_loss"] == 2.296826885935324, summary
