"""New people: windows in seconds from the data, subject folds, the final model on every
subject, per-subject test scores, and the training recipes that target generalisation."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from gesturekit.cli import main
from gesturekit.errors import UserError
from gesturekit.options import parse_length, to_samples
from gesturekit.train.config import TrainConfig, build_config
from gesturekit.train.crossval import final_config, fold_subjects
from gesturekit.train.datasets import load_dataset
from gesturekit.train.fit import mixup
from gesturekit.train.trainer import resolve_window

pytestmark = pytest.mark.trains  # tiny models, but real training: left out of `make check`

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

TINY = {phase: {"epochs": 4, "min_epochs": 4, "patience": 4, "batch_size": 32,
                "learning_rate": 3e-3} for phase in ("cnn", "lstm", "direct")}


def test_lengths_in_samples_or_seconds():
    assert to_samples(128, 50, "--window") == 128
    assert to_samples("128", 50, "--window") == 128
    assert to_samples("2.5s", 50, "--window") == 125
    assert to_samples("0.001s", 50, "--hop") == 1  # never zero samples
    assert parse_length(" 3s", "--window") == (3.0, "s")
    for bad in ("abc", "2.5", "-1", "0s", "nans", "infs"):
        with pytest.raises(UserError, match="--window"):
            to_samples(bad, 50, "--window")


def test_default_window_spans_the_briefest_class_and_hop_is_half(synth_dataset):
    dataset = load_dataset(str(synth_dataset))
    cfg = TrainConfig()
    info = resolve_window(cfg, dataset)
    # The synthetic gestures (jump, punch, turn) last about 2.9 s at 50 Hz.
    assert cfg.window % 8 == 0 and 120 <= cfg.window <= 152
    assert cfg.hop == cfg.window // 2 and cfg.train_hop is None
    assert info["window_samples"] == cfg.window and "median segment of" in info["rule"]
    given = TrainConfig(window="2s", hop="0.5s", train_hop=10)
    resolve_window(given, dataset)
    assert (given.window, given.hop, given.train_hop) == (100, 25, 10)


def test_subject_folds_are_disjoint_seeded_and_cover_everyone():
    subjects = [str(i) for i in range(1, 22)]
    folds = fold_subjects(subjects, 5, seed=3)
    assert sorted(s for f in folds for s in f) == sorted(subjects)
    assert sorted(len(f) for f in folds) == [4, 4, 4, 4, 5]
    assert folds == fold_subjects(subjects, 5, seed=3)
    assert folds != fold_subjects(subjects, 5, seed=4)
    for bad in (1, 22):
        with pytest.raises(UserError, match="--folds"):
            fold_subjects(subjects, bad, seed=0)
    with pytest.raises(UserError, match="--folds"):
        build_config(folds=1)


def test_final_config_fixes_each_phase_at_the_chosen_epochs():
    cfg = build_config(strategy="three-phase")
    final = final_config(cfg, {"cnn": 7, "lstm": 11})
    assert (final.cnn.epochs, final.cnn.min_epochs, final.lstm.epochs) == (7, 7, 11)
    assert cfg.cnn.epochs == 40  # the original is untouched


def test_mixup_keeps_each_window_mostly_itself_and_blends_targets_alike():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((50, 8, 3)).astype(np.float32)
    targets = np.eye(4, dtype=np.float32)[rng.integers(0, 4, 50)]
    weights = rng.uniform(0.5, 2, 50).astype(np.float32)
    mx, mt, mw = mixup(x, targets, weights, 0.4, np.random.default_rng(1))
    assert mx.shape == x.shape and np.allclose(mt.sum(axis=1), 1)
    assert (mt.max(axis=1) >= 0.5 - 1e-6).all()  # lambda >= 0.5: the window's own class leads
    assert mw.min() >= weights.min() - 1e-6 and mw.max() <= weights.max() + 1e-6
    again = mixup(x, targets, weights, 0.4, np.random.default_rng(1))
    assert all(np.array_equal(a, b) for a, b in zip((mx, mt, mw), again, strict=True))


def test_folds_train_the_final_model_on_every_non_test_subject(synth_dataset, tmp_path):
    """A real `gesturekit train --folds 2`: two folds, each reported, then one model on all the
    non-test subjects for the epochs the folds chose; the report shows folds and subjects."""
    config = tmp_path / "tiny.json"
    config.write_text(json.dumps(TINY))
    out = tmp_path / "run"
    assert main(["train", str(synth_dataset), "--out", str(out), "--config", str(config),
                 "--seed", "1", "--test-subjects", "5,6", "--folds", "2", "--skip-sandbox"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    cv = metrics["cross_validation"]
    assert [sorted(f["val_subjects"]) for f in cv["folds"]] == [
        sorted(f) for f in fold_subjects(["1", "2", "3", "4"], 2, 1)]
    assert 1 <= cv["epochs"]["direct"] <= 4
    assert metrics["split"] == {"train": ["1", "2", "3", "4"], "val": [], "test": ["5", "6"]}
    assert metrics["phases"]["direct"]["epochs"] == cv["epochs"]["direct"]
    assert metrics["validation_macro_f1"] == pytest.approx(cv["val_macro_f1_mean"])
    assert set(metrics["test"]["per_subject"]) == {"5", "6"}
    report = (out / "report.md").read_text()
    assert "Cross-validation over 2 subject folds" in report and "subjects.png" in report
    assert (out / "subjects.png").is_file()
