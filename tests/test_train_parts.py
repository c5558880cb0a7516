"""The numpy parts of training: class weights, augmentation, thinning (on real HAPT), metrics."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from gesturekit.device.core import frame
from gesturekit.errors import UserError
from gesturekit.train.augment import AugmentConfig, augment, random_rotations
from gesturekit.train.imbalance import class_weights, imbalance_ratio, thin_to_ratio
from gesturekit.train.metrics import scores

HAPT = Path(__file__).resolve().parents[2] / "shared" / "data" / "hapt"
COUNTS = np.array([1000, 100, 10])


def test_inverse_weights_balance_the_classes_and_keep_mean_one():
    w = class_weights(COUNTS, "inverse")
    np.testing.assert_allclose(w * COUNTS, (w * COUNTS)[0])  # every class carries equal weight
    assert np.isclose((w * COUNTS).sum() / COUNTS.sum(), 1.0)


def test_softened_weights_sit_between_none_and_inverse():
    spread = {m: class_weights(COUNTS, m).max() / class_weights(COUNTS, m).min()
              for m in ("none", "cbrt", "sqrt", "inverse")}
    assert spread["none"] == 1.0 < spread["cbrt"] < spread["sqrt"] < spread["inverse"]
    assert np.isclose(spread["sqrt"], 10.0) and np.isclose(spread["inverse"], 100.0)
    eff = class_weights(COUNTS, "effective", beta=0.99)
    assert 1.0 < eff.max() / eff.min() < spread["inverse"]  # effective numbers saturate
    assert class_weights(np.array([5, 0, 5]), "inverse")[1] == 0.0  # absent class


def test_unknown_weight_mode_is_a_user_error():
    with pytest.raises(UserError, match="unknown class-weight mode"):
        class_weights(COUNTS, "log")


def test_rotation_turns_acc_and_gyro_by_the_same_rotation():
    rng = np.random.default_rng(0)
    channels = ["ax", "ay", "az", "gx", "gy", "gz"]
    triads = frame.triads(channels)
    assert triads == [[0, 1, 2], [3, 4, 5]]
    assert frame.triads(["acc_x", "acc_y", "acc_z"]) == [[0, 1, 2]]
    x = rng.standard_normal((20, 64, 6)).astype(np.float32)
    out = augment(x, AugmentConfig(rotation_deg=30), np.random.default_rng(1), triads, np.ones(6))
    for t in triads:  # lengths kept, directions changed
        np.testing.assert_allclose(np.linalg.norm(out[..., t], axis=-1),
                                   np.linalg.norm(x[..., t], axis=-1), rtol=1e-5)
        assert not np.allclose(out[..., t], x[..., t])
    # the same rotation for both triads: solve R from acc and check it maps gyro too
    r_acc = np.linalg.lstsq(x[0, :, :3], out[0, :, :3], rcond=None)[0]
    np.testing.assert_allclose(x[0, :, 3:] @ r_acc, out[0, :, 3:], atol=1e-4)
    rot = random_rotations(np.random.default_rng(2), 50, 15.0)
    angles = np.degrees(np.arccos(np.clip((np.trace(rot, axis1=1, axis2=2) - 1) / 2, -1, 1)))
    assert angles.max() <= 15.0 + 1e-6


def test_augmentation_is_seeded_and_warp_keeps_shape():
    x = np.random.default_rng(0).standard_normal((4, 128, 6)).astype(np.float32)
    cfg = AugmentConfig(jitter=0.1, scaling=0.1, rotation_deg=10, time_warp=0.2)
    triads = [[0, 1, 2], [3, 4, 5]]
    a = augment(x, cfg, np.random.default_rng(5), triads, np.ones(6))
    b = augment(x, cfg, np.random.default_rng(5), triads, np.ones(6))
    c = augment(x, cfg, np.random.default_rng(6), triads, np.ones(6))
    assert a.shape == x.shape and np.array_equal(a, b) and not np.array_equal(a, c)
    with pytest.raises(UserError, match="triads"):
        augment(x, AugmentConfig(rotation_deg=10), np.random.default_rng(0), [], np.ones(6))


@pytest.mark.skipif(not HAPT.is_dir(), reason="needs the shared HAPT data")
def test_thinning_hapt_reaches_50x_in_fitting_subjects_only():
    from gesturekit.train.datasets import load_dataset

    data = load_dataset(HAPT)
    transitions = data.labels[6:]
    test = ["2", "4", "9", "10", "12", "13", "18", "20", "24"]
    fit = [s for s in data.subjects if s not in test]
    assert imbalance_ratio(data, fit) < 20
    thinned, keep = thin_to_ratio(data, transitions, fit, 50, seed=0)
    assert imbalance_ratio(thinned, fit) >= 50 and 0 < keep < 1
    assert imbalance_ratio(thinned, test) == imbalance_ratio(data, test)  # test untouched
    again, _ = thin_to_ratio(data, transitions, fit, 50, seed=0)
    assert all(np.array_equal(a.label_ids, b.label_ids)
               for a, b in zip(thinned.sessions, again.sessions, strict=True))


def test_scores_and_collapse_detection():
    y = np.array([0] * 90 + [1] * 5 + [2] * 5)
    s = scores(y, np.zeros_like(y), ["walk", "jump", "punch"])
    assert s["collapsed"] and s["collapsed_classes"] == ["jump", "punch"]
    assert np.isclose(s["balanced_accuracy"], 1 / 3) and s["accuracy"] == 0.9
    good = scores(y, y, ["walk", "jump", "punch"])
    assert good["macro_f1"] == 1.0 and not good["collapsed"] and not good["collapsed_classes"]
    assert good["confusion"] == [[90, 0, 0], [0, 5, 0], [0, 0, 5]]


def test_train_force_replaces_only_a_run_folder_and_only_after_the_data_loads(tmp_path, capsys):
    from gesturekit.cli import main

    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "notes.txt").write_text("keep me")
    missing = str(tmp_path / "no-such-data")
    assert main(["train", missing, "--out", str(precious), "--force", "--quick"]) == 2
    assert "not a run folder (no config.json)" in capsys.readouterr().err
    assert (precious / "notes.txt").read_text() == "keep me"

    old_run = tmp_path / "run"
    old_run.mkdir()
    (old_run / "config.json").write_text("{}")
    assert main(["train", missing, "--out", str(old_run), "--force", "--quick"]) == 2
    assert "no such dataset" in capsys.readouterr().err
    assert (old_run / "config.json").read_text() == "{}"  # a bad dataset keeps the old run


def test_stream_evaluation_checks_the_sample_rate(monkeypatch):
    from types import SimpleNamespace

    import gesturekit.device.core.bundle
    from gesturekit.train.datasets import Dataset, Session
    from gesturekit.train.evaluate import evaluate_bundle_stream

    bundle = SimpleNamespace(sample_rate_hz=100.0, channels=["ax"], labels=["a"], root="b")
    monkeypatch.setattr(gesturekit.device.core.bundle, "load_bundle", lambda _: bundle)
    ds = Dataset("d", "d", 50.0, ["ax"], {}, ["a"], None,
                 [Session("s", "1", np.zeros((10, 1), np.float32), np.zeros(10, np.int16))])
    with pytest.raises(UserError, match="d: sample rate 50 Hz, the model was trained at 100 Hz"):
        evaluate_bundle_stream("b", ds, None)
    ds.channels = ["gx"]
    ds.sample_rate_hz = 102.0  # within 5%: on to the (shared) channel check
    with pytest.raises(UserError, match="no channel\\(s\\) ax; the model needs ax"):
        evaluate_bundle_stream("b", ds, None)


def test_export_plot_is_decorative_and_uses_the_run_rate(tmp_path, monkeypatch, synth_dataset):
    from types import SimpleNamespace

    import gesturekit.train.plots
    from gesturekit.export import build, report

    calls = []

    def fake_plot(path, out, model=None, rate_hz=None, **_):
        calls.append(rate_hz)
        raise UserError(f"{path}: cannot plot")

    monkeypatch.setattr(gesturekit.train.plots, "plot_recording", fake_plot)
    run = SimpleNamespace(config={"dataset": {"path": str(synth_dataset), "options": {}}},
                          split={"test": ["1"]}, model_info=SimpleNamespace(sample_rate_hz=50.0))
    result = build._plot_test_session(run, tmp_path)
    assert calls == [50.0]
    assert result["skipped"].endswith(": cannot plot")
    run.config["dataset"]["path"] = str(tmp_path / "moved")
    assert "no such dataset" in build._plot_test_session(run, tmp_path)["skipped"]

    section = "\n".join(report.session_plot_lines(result))
    assert "No plot of a test session" in section and "cannot plot" in section
    assert "![" not in section
    shown = report.session_plot_lines({"session": "s", "file": "test_session.png", "events": 2})
    assert "![test session](test_session.png)" in shown
