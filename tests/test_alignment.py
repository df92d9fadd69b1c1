"""Alignment with exact backprop, measured on a probe batch for any rule."""
import math

import numpy as np
import pytest
import torch

from conftest import model
from dendrisim.alignment import angle
from dendrisim.recording import open_recording
from dendrisim.training import RunOptions, Trainer


def trainer(tmp_path, *overrides):
    exp = model(["training.max_steps_per_epoch=12", "training.alignment={every: 4, probe_size: 64}", *overrides])
    return Trainer(exp, RunOptions(out_dir=tmp_path, progress=False, log=lambda s: None))


def test_angle_oracle():
    a = torch.tensor([1.0, 0.0])
    assert float(angle(a, torch.tensor([0.0, 2.0]))) == pytest.approx(90.0)
    assert float(angle(a, -a)) == pytest.approx(180.0)
    assert float(angle(a, 3 * a)) == pytest.approx(0.0, abs=1e-6)


def test_bp_is_aligned_with_itself(tmp_path):
    tr = trainer(tmp_path, "plasticity.rule=bp")
    tr.train_epoch(1)
    for name, m in tr.last_alignment.items():
        assert m["update_angle"] == pytest.approx(0.0, abs=1e-3) and m["update_norm_ratio"] == pytest.approx(1.0, rel=1e-6)
        assert m["feedback_angle"] == pytest.approx(0.0, abs=1e-3) or math.isnan(m["feedback_angle"])


def test_dll_top_projection_is_bp_times_its_gain(tmp_path):
    tr = trainer(tmp_path, "plasticity.rule=dll", "plasticity.sigma=0.5")
    tr.train_epoch(1)
    top = tr.last_alignment["h2->out"]
    assert top["update_angle"] == pytest.approx(0.0, abs=1e-3)
    assert top["update_norm_ratio"] == pytest.approx(2 / 0.25, rel=1e-5)
    assert math.isnan(tr.last_alignment["input->h1"]["feedback_angle"])
    assert 0 < tr.last_alignment["h1->h2"]["update_angle"] < 180


def test_measuring_does_not_change_training_and_is_recorded(tmp_path):
    plain = Trainer(model(["training.max_steps_per_epoch=12", "plasticity.clip_apical=1e-3"]),
                    RunOptions(out_dir=tmp_path / "a", progress=False, log=lambda s: None))
    probed = trainer(tmp_path / "b", "plasticity.clip_apical=1e-3")
    plain.run()
    probed.run()
    for (n, p), (_, q) in zip(plain.network.named_parameters(), probed.network.named_parameters()):
        assert torch.equal(p, q), n
    assert {k: int(v) for k, v in plain.rule.clip_counts.items()} == {k: int(v) for k, v in probed.rule.clip_counts.items()}
    with open_recording(tmp_path / "b" / "recording.h5") as rec:
        f = rec.file
        assert list(f["alignment/step"][:]) == [4, 8, 12]
        assert np.allclose(f["alignment/h2->out/update_angle"][:], 0, atol=1e-3)
        assert f["alignment/h1->h2/feedback_angle"].attrs["meaning"].startswith("angle")
        measured = rec.alignment
        assert list(measured["step"]) == [4, 8, 12] and list(measured["epoch"]) == [1, 1, 1]
        assert set(measured) == {"step", "epoch", "input->h1", "h1->h2", "h2->out"}
        assert measured["h2->out"]["update_norm_ratio"] == pytest.approx([2.0] * 3, rel=1e-5)
    from dendrisim.recording.plots import plot_all
    made = plot_all(tmp_path / "b" / "recording.h5")
    assert "alignment.png" in {p.name for p in made}, "measured alignment is plotted without recorded matrices"
    with open_recording(tmp_path / "a" / "recording.h5") as rec:
        assert rec.alignment == {}
    header = (tmp_path / "b" / "metrics.csv").read_text().splitlines()[0]
    assert "align_h1->h2_update_angle" in header and "align_h2->out_update_norm_ratio" in header
