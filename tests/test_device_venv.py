"""The runner without TensorFlow: a venv with only `gesturekit[device]`, and the tflite_runtime
backend in the numpy<2 venv, each classifying a stream from a real pty."""

from __future__ import annotations

import json

import numpy as np
import pytest
from test_runner_e2e import SESSION, hapt_session, offline_probs, play_and_run

from gesturekit.device.core.bundle import load_bundle

pytestmark = pytest.mark.skipif(not SESSION.is_file(), reason="shared HAPT data not present")


@pytest.mark.parametrize("int8", [False, True])
def test_device_only_venv_runs_the_exported_bundle(device_python, quick_bundle, tmp_path, int8):
    python = [str(device_python), "-m", "gesturekit.cli"]
    records, sent, _ = play_and_run(SESSION, quick_bundle, tmp_path,
                                    ["--speed", "100", "--garbage", "0.02"],
                                    ["--int8"] if int8 else [], python=python)
    summary = records[-1]
    assert summary["backend"] == "ai_edge_litert" and summary["bad_lines"] == sent["garbage"]
    live = np.array([r["probs"] for r in records if r["kind"] == "window"], dtype=np.float32)
    expected = offline_probs(load_bundle(quick_bundle), hapt_session(SESSION), "ai_edge_litert",
                             "int8" if int8 else "float")[1]
    assert live.shape == expected.shape
    assert np.allclose(live, expected, atol=1e-5)


@pytest.mark.parametrize("kind", ["float", "int8"])
def test_tflite_runtime_backend_in_the_numpy1_venv(tflite_runtime_python, quick_bundle, tmp_path,
                                                   kind):
    python = [str(tflite_runtime_python), "-m", "gesturekit.cli"]
    records, sent, _ = play_and_run(SESSION, quick_bundle, tmp_path,
                                    ["--speed", "100", "--garbage", "0.02"],
                                    ["--backend", "tflite_runtime", *(["--int8"] * (kind == "int8"))],
                                    python=python)
    summary = records[-1]
    assert summary["backend"] == "tflite_runtime" and summary["bad_lines"] == sent["garbage"]
    live = np.array([r["probs"] for r in records if r["kind"] == "window"], dtype=np.float32)
    expected = offline_probs(load_bundle(quick_bundle), hapt_session(SESSION), "ai_edge_litert",
                             kind)[1]
    assert live.shape == expected.shape
    diff = np.abs(live - expected)
    if kind == "float":
        assert diff.max() <= 1e-5
    else:  # another TFLite release (2.14): int8 kernels round differently, a few output steps
        assert diff.mean() <= 1 / 256 and diff.max() <= 8 / 256
        assert (live.argmax(1) == expected.argmax(1)).mean() >= 0.95
    print(json.dumps({"kind": kind, "max_abs_diff": float(np.abs(live - expected).max())}))
