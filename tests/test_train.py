"""Training for real on the synthetic dataset (tiny models, few epochs): the run folder, the
phases, reproducibility, the sandbox gate, bad input, evaluate, and tf.distribute."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest

from gesturekit.cli import main
from gesturekit.device.core.recording import RecordingSpec, RecordingWriter, write_spec
from gesturekit.errors import UserError
from gesturekit.train.config import build_config
from gesturekit.train.runs import load_keras_model, load_run, run_windows

pytestmark = pytest.mark.trains  # tiny models, but real training: left out of `make check`

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

TINY = {**{phase: {"epochs": 8, "min_epochs": 8, "patience": 8, "batch_size": 16,
                   "learning_rate": 3e-3} for phase in ("cnn", "lstm", "direct")},
        "sandbox_phase": {"windows_per_class": 16, "epochs": 80}}


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    from gesturekit.train.synth import SynthConfig, write_synthetic_dataset

    return write_synthetic_dataset(tmp_path_factory.mktemp("synth") / "data",
                                   SynthConfig(seed=0, subjects=6, minutes=5))


@pytest.fixture(scope="module")
def tiny_config(tmp_path_factory):
    path = tmp_path_factory.mktemp("cfg") / "tiny.json"
    path.write_text(json.dumps(TINY))
    return str(path)


@pytest.fixture(scope="module")
def run(synth, tiny_config, tmp_path_factory):
    """One quick three-phase run through the CLI, shared by the tests that read it."""
    out = tmp_path_factory.mktemp("runs") / "run"
    assert main(["train", str(synth), "--out", str(out), "--config", tiny_config,
                 "--seed", "3", "--strategy", "three-phase", "--test-subjects", "5,6",
                 "--val-subjects", "4"]) == 0
    return out


def test_run_folder_has_what_design_lists(run):
    metrics = json.loads((run / "metrics.json").read_text())
    for key in ("strategy", "dataset", "seed", "split", "phases", "test", "seconds"):
        assert key in metrics
    assert metrics["split"] == {"train": ["1", "2", "3"], "val": ["4"], "test": ["5", "6"]}
    assert metrics["phases"]["sandbox"]["passed"] is True
    assert {"cnn", "lstm"} <= set(metrics["phases"])
    test = metrics["test"]
    assert set(test["per_class"]) == {"idle", "jump", "punch", "turn", "walk"}
    assert sum(c["support"] for c in test["per_class"].values()) == np.sum(test["confusion"])
    assert test["balanced_accuracy"] > 0.4  # twice chance after eight epochs of a tiny model
    for name in ("config.json", "model.keras", "cnn_head.keras", "report.md", "confusion.png",
                 "learning_curves.png", "phases/cnn.json", "phases/lstm.json",
                 "phases/sandbox.json", "phases/cnn.weights.h5"):
        assert (run / name).is_file(), name
    history = json.loads((run / "phases" / "lstm.json").read_text())["history"]
    assert len(history["val_macro_f1"]) == 8
    report = (run / "report.md").read_text()
    assert "| punch |" in report and "confusion.png" in report
    config = json.loads((run / "config.json").read_text())
    assert config["lstm_weights"] == "inverse" and config["seed"] == 3
    assert config["cnn"]["epochs"] == 8 and config["model"]["lstm_units"] == 32


def test_saved_model_reproduces_the_test_metrics(run):
    info = load_run(run)
    test = run_windows(info, "test")
    pred = load_keras_model(info).predict(test.x, verbose=0).argmax(axis=1)
    confusion = json.loads((run / "metrics.json").read_text())["test"]["confusion"]
    from gesturekit.train.metrics import confusion_matrix

    np.testing.assert_array_equal(confusion_matrix(test.y, pred, len(info.model_info.labels)),
                                  confusion)


def test_evaluate_gives_the_same_report_on_a_dataset(run, synth, tmp_path, capsys):
    out = tmp_path / "eval"
    assert main(["evaluate", str(run), str(synth), "--subjects", "5,6", "--out", str(out),
                 "--json"]) == 0
    scores = json.loads(capsys.readouterr().out)
    metrics = json.loads((run / "metrics.json").read_text())
    assert scores["confusion"] == metrics["test"]["confusion"]
    assert (out / "report.md").is_file() and (out / "confusion.png").is_file()


@pytest.mark.parametrize("failure", ["late", "no test subjects"])
def test_train_force_that_fails_keeps_the_previous_run(run, synth, tmp_path, capsys, monkeypatch,
                                                       failure):
    """`train --force` over a run, failing after the fit (a scoring error; or `--test-subjects
    ""`, which once trained in full and failed at the test): the earlier run is untouched,
    and nothing half-written is left beside it."""
    from gesturekit.train import trainer

    previous = tmp_path / "run"
    shutil.copytree(run, previous)
    before = {p.relative_to(previous): p.read_bytes() for p in previous.rglob("*") if p.is_file()}
    flags = ["--test-subjects", ""] if failure == "no test subjects" else []
    if failure == "late":
        def fail(*_):
            raise UserError("scoring failed")

        monkeypatch.setattr(trainer, "per_group_scores", fail)
    assert main(["train", str(synth), "--out", str(previous), "--force", "--quick",
                 "--skip-sandbox", *flags]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
    assert {p.relative_to(previous): p.read_bytes() for p in previous.rglob("*")
            if p.is_file()} == before
    assert [p.name for p in tmp_path.iterdir()] == ["run"]
    assert load_run(previous).metrics == json.loads((run / "metrics.json").read_text())


def test_evaluate_stream_hands_a_bundle_to_the_live_side(run, synth, tmp_path, capsys):
    import tensorflow as tf
    import tf2onnx

    from gesturekit.device.core.bundle import Bundle, write_model_json

    info = load_run(run)
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    spec = [tf.TensorSpec([None, info.model_info.window, len(info.model_info.channels)], tf.float32,
                          name="window")]
    tf2onnx.convert.from_keras(load_keras_model(info), input_signature=spec,
                               output_path=str(bundle / "model.onnx"))
    model = replace(info.model_info, stateful=False)
    write_model_json(Bundle(**vars(model), root=bundle, files={"onnx": "model.onnx"}))
    assert main(["evaluate", str(bundle), str(synth), "--stream", "--subjects", "5,6",
                 "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["sessions"] == 4 and result["windows"] > 0 and result["events"] > 0
    assert main(["evaluate", str(run), str(synth), "--stream"]) == 2  # a run is not a bundle


def test_phase3_leaves_the_cnn_weights_bit_identical(synth, monkeypatch):
    import keras

    from gesturekit.device.core.windowing import Normalization
    from gesturekit.train import phases
    from gesturekit.train.config import apply_values
    from gesturekit.train.datasets import load_dataset, make_windows
    from gesturekit.train.fit import Arrays
    from gesturekit.train.model import feature_layers

    cfg = apply_values(build_config(seed=1, strategy="three-phase"), TINY, "test")
    data = load_dataset(synth)
    train = make_windows(data, ["1", "2", "3"], 128, 64, 0.6)
    val = make_windows(data, ["4"], 128, 64, 0.6)
    norm = Normalization.fit(train.x)
    keras.utils.set_random_seed(1)
    ctx = phases.Context(keras, cfg, Arrays(train.x, train.y), Arrays(val.x, val.y), data.labels,
                         norm.apply, contextlib.nullcontext, ([], norm.std),
                         progress=lambda _: None)
    head, _ = phases.train_cnn_head(ctx)
    def conv_weights(model):
        return {f"{layer.name}/{i}": w for layer in feature_layers(model)
                for i, w in enumerate(layer.get_weights())}

    before = conv_weights(head)
    lstm_start = []  # the LSTM weights phase 3 starts from, captured as it builds its model
    build = phases.build_cnn_lstm

    def build_and_capture(*args, **kwargs):
        built = build(*args, **kwargs)
        lstm_start.extend(w.copy() for w in built.get_layer("lstm").get_weights())
        return built

    monkeypatch.setattr(phases, "build_cnn_lstm", build_and_capture)
    model, _ = phases.train_lstm(ctx, head)
    after = conv_weights(model)
    assert len(before) == 6 and before.keys() == after.keys()  # 3 conv layers: kernel, bias
    for name, value in before.items():
        assert np.array_equal(value, after[name]), name  # bit-identical, not just close
    # ...while the LSTM did train: every weight moved away from where phase 3 started.
    lstm_after = model.get_layer("lstm").get_weights()
    assert len(lstm_start) == len(lstm_after) == 3  # kernel, recurrent kernel, bias
    for start, end in zip(lstm_start, lstm_after, strict=True):
        assert not np.allclose(start, end)


def test_same_seed_same_metrics(synth, tiny_config, tmp_path):
    flags = ["--config", tiny_config, "--seed", "7", "--skip-sandbox", "--strategy", "direct",
             "--weights", "none", "--loss", "focal", "--test-subjects", "5"]
    for name in ("a", "b"):
        assert main(["train", str(synth), "--out", str(tmp_path / name), *flags]) == 0
    a, b = (json.loads((tmp_path / n / "metrics.json").read_text()) for n in ("a", "b"))
    assert a["strategy"] == "direct" and set(a["phases"]) == {"sandbox", "direct"}
    assert a["phases"]["direct"]["weight_mode"] == "none"
    assert a["test"] == b["test"]
    assert a["phases"]["direct"]["best_val_macro_f1"] == b["phases"]["direct"]["best_val_macro_f1"]
    assert not (tmp_path / "a" / "cnn_head.keras").exists()


def _write(root, sessions: dict[str, list[tuple[str, np.ndarray]]]):
    """A recording-format folder: file name -> [(label, samples (N, 6))]."""
    root.mkdir(parents=True, exist_ok=True)
    write_spec(root / "dataset.toml", RecordingSpec(sample_rate_hz=50, subject_pattern=r"s(\d+)"))
    for name, parts in sessions.items():
        with RecordingWriter(root / name, ["ax", "ay", "az", "gx", "gy", "gz"], None) as w:
            for label, data in parts:
                w.append(data, label)
    return root


def test_sandbox_gate_stops_with_exit_3_on_unlearnable_labels(tmp_path, tiny_config, capsys):
    # Pure noise with labels that carry no signal: the model can only memorise the subset,
    # never beat chance on unseen subjects.
    rng = np.random.default_rng(0)
    sessions = {f"s{k}.csv": [(lab, rng.standard_normal((640, 6)))
                              for lab in ["a", "b", "c", "d"] * 6] for k in range(1, 6)}
    data = _write(tmp_path / "noise", sessions)
    code = main(["train", str(data), "--out", str(tmp_path / "run"), "--config", tiny_config,
                 "--test-subjects", "5", "--val-subjects", "4"])
    err = capsys.readouterr().err
    assert code == 3, err
    assert "sandbox gate failed" in err and "--skip-sandbox" in err and len(err.splitlines()) == 1


@pytest.mark.parametrize("flags, message", [  # unknown --strategy/--weights/--loss: test_cli.py
    (["--window", "100000"], "longer than every session"),
    (["--test-subjects", "1,2,3"], "no windows in the training split"),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path, flags, message, capsys):
    rng = np.random.default_rng(0)
    # "rare" occurs only for subject 1..3, so with them as test subjects it is absent from training.
    sessions = {f"s{k}.csv": [("walk", rng.standard_normal((900, 6))),
                              ("idle", rng.standard_normal((900, 6)))]
                + ([("rare", rng.standard_normal((900, 6)))] if k <= 3 else [])
                for k in range(1, 7)}
    data = _write(tmp_path / "data", sessions)
    code = main(["train", str(data), "--out", str(tmp_path / "run"), *flags])
    err = capsys.readouterr().err
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err


def test_one_class_dataset_is_refused(tmp_path, capsys):
    rng = np.random.default_rng(0)
    data = _write(tmp_path / "one", {f"s{k}.csv": [("walk", rng.standard_normal((900, 6)))]
                                     for k in range(1, 5)})
    assert main(["train", str(data), "--out", str(tmp_path / "run")]) == 2
    assert "training needs at least 2" in capsys.readouterr().err


def test_config_file_toml_and_flags_override_it(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('strategy = "three-phase"\nseed = 5\n[cnn]\nepochs = 2\n[augment]\njitter = 0.1\n')
    cfg = build_config(str(path), quick=True, seed=9)
    assert (cfg.strategy, cfg.seed, cfg.cnn.epochs, cfg.augment.jitter) == ("three-phase", 9, 2, 0.1)
    assert cfg.lstm.epochs == 6  # --quick budget where the file says nothing
    path.write_text("[cnn]\nepoch = 2\n")
    with pytest.raises(Exception, match="unknown key"):
        build_config(str(path))


def test_mirrored_strategy_on_two_logical_cpus(synth, tiny_config, tmp_path):
    # Logical devices must be set before TensorFlow initialises: a fresh interpreter.
    script = f"""
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from gesturekit.train.config import build_config
from gesturekit.train.trainer import train_run
cfg = build_config({tiny_config!r}, seed=0, distribute="mirrored", sandbox=False,
                   strategy="three-phase",
                   test_subjects=["5"], cnn={{"epochs": 2, "min_epochs": 2}},
                   lstm={{"epochs": 2, "min_epochs": 2}})
train_run({str(synth)!r}, {str(tmp_path / "run")!r}, cfg, progress=lambda _: None)
"""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["distribute"] == {"strategy": "mirrored", "replicas": 2}
    assert metrics["phases"]["lstm"]["epochs"] == 2 and metrics["test"]["windows"] > 0
