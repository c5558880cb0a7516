"""The run-folder interface (`train/runs.py`) that export and evaluate build on."""

from __future__ import annotations

import json

import numpy as np
import pytest

from gesturekit.device.core.recording import RecordingSpec, RecordingWriter, write_spec
from gesturekit.device.core.windowing import Normalization
from gesturekit.errors import UserError
from gesturekit.train.datasets import load_dataset, make_windows
from gesturekit.train.model import ModelConfig
from gesturekit.train.runs import RUN_FORMAT_VERSION, load_keras_model, load_run, run_windows

pytestmark = pytest.mark.trains  # tiny models, but real training: left out of `make check`

CHANNELS = ["ax", "ay", "az", "gx", "gy", "gz"]


def tiny_dataset(root, subjects=4, seconds=20, rate=50):
    """Three classes with different frequencies, per subject one session."""
    rng = np.random.default_rng(0)
    root.mkdir(parents=True)
    write_spec(root / "dataset.toml", RecordingSpec(sample_rate_hz=rate, channels=CHANNELS,
                                                    subject_pattern=r"s(\d+)"))
    for s in range(1, subjects + 1):
        with RecordingWriter(root / f"s{s}.csv", CHANNELS, time_column=None) as w:
            for k, label in enumerate(["idle", "walk", "jump"] * 2):
                t = np.arange(seconds * rate // 6) / rate
                wave = np.sin(2 * np.pi * (k % 3 + 1) * t)[:, None] * np.ones(6)
                w.append(wave + 0.1 * rng.standard_normal(wave.shape), label)
    return root


def fake_run(tmp_path):
    """A run folder as `gesturekit train` writes it, with an untrained model."""
    import keras

    from gesturekit.train.model import build_cnn_lstm

    data = tiny_dataset(tmp_path / "data")
    dataset = load_dataset(data)
    split = {"train": ["1", "2"], "val": ["3"], "test": ["4"]}
    train = make_windows(dataset, split["train"], 64, 32, 0.6)
    norm = Normalization.fit(train.x)
    cfg = ModelConfig(conv_filters=[4, 4], pool_after=[1], lstm_units=4)
    run = tmp_path / "run"
    run.mkdir()
    config = {"format_version": RUN_FORMAT_VERSION, "gesturekit_version": "0.1.0",
              "dataset": {"path": str(data), "options": {}}, "strategy": "three-phase",
              "seed": 0, "window": 64, "hop": 32, "purity": 0.6, "split": split,
              "labels": dataset.labels, "channels": dataset.channels, "units": {},
              "sample_rate_hz": 50.0, "background_label": None,
              "normalization": norm.to_dict(), "model": cfg.to_dict()}
    (run / "config.json").write_text(json.dumps(config))
    build_cnn_lstm(keras, cfg, 64, 6, len(dataset.labels)).save(run / "model.keras")
    (run / "metrics.json").write_text(json.dumps({"strategy": "three-phase", "split": split}))
    return run, train, norm


def test_load_run_gives_the_config_and_normalised_windows(tmp_path):
    root, train, norm = fake_run(tmp_path)
    run = load_run(root)
    info = run.model_info
    assert info.labels == ["idle", "jump", "walk"] and info.window == 64 and info.hop == 32
    assert info.stateful and info.channels == CHANNELS and info.background_label is None
    assert run.model_config == ModelConfig(conv_filters=[4, 4], pool_after=[1], lstm_units=4)
    np.testing.assert_array_equal(info.normalization.mean, norm.mean)
    windows = run_windows(run, "train")
    np.testing.assert_array_equal(windows.y, train.y)
    np.testing.assert_allclose(windows.x, norm.apply(train.x))
    assert abs(float(windows.x.mean())) < 0.1  # normalised, not raw
    test = run_windows(run, "test")
    assert set(test.subjects) == {"4"}
    model = load_keras_model(run)
    assert model.output_shape == (None, 3)


def test_load_run_refuses_what_is_not_a_run(tmp_path):
    root, _, _ = fake_run(tmp_path)
    with pytest.raises(UserError, match="not a run folder"):
        load_run(tmp_path / "nothing")
    with pytest.raises(UserError, match="without config.json"):
        load_run(tmp_path / "data")
    (root / "model.keras").rename(root / "moved.keras")
    with pytest.raises(UserError, match="without a model"):
        load_run(root)
    (root / "moved.keras").rename(root / "model.keras")
    # metrics.json is written last: without it the run is incomplete, whatever else is there.
    (root / "metrics.json").rename(root / "moved.json")
    with pytest.raises(UserError, match=r"run: incomplete run \(no metrics.json\); train again"):
        load_run(root)
    (root / "moved.json").rename(root / "metrics.json")
    config = json.loads((root / "config.json").read_text())
    config["format_version"] = RUN_FORMAT_VERSION + 1
    (root / "config.json").write_text(json.dumps(config))
    with pytest.raises(UserError, match="newer"):
        load_run(root)
    # The model's fields get the bundle's check (one ModelInfo reader for both files).
    config["format_version"] = RUN_FORMAT_VERSION
    config["normalization"]["std"] = config["normalization"]["std"][:2]
    (root / "config.json").write_text(json.dumps(config))
    with pytest.raises(UserError, match=r"config.json: normalization.std has 2 values for 6 channels"):
        load_run(root)


def test_corrupt_model_file_is_a_user_error(tmp_path):
    root, _, _ = fake_run(tmp_path)
    (root / "model.keras").write_bytes(b"not a zip at all")
    with pytest.raises(UserError, match="model.keras"):
        load_keras_model(load_run(root))
    with pytest.raises(UserError, match="cnn_head.keras"):
        load_keras_model(load_run(root), "cnn_head")
