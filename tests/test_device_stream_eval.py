"""Offline stream evaluation gives the events `run` prints for the same session played live."""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys

import numpy as np

from gesturekit.device.backends import Classifier
from gesturekit.device.bundle import load_bundle
from gesturekit.device.postprocess import PostprocessConfig
from gesturekit.device.stream_eval import StreamSession, evaluate_stream

GESTUREKIT = [sys.executable, "-m", "gesturekit.cli"]
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}


def test_offline_events_equal_live_events_and_scores_add_up(quick_bundle, synth_dataset):
    from gesturekit.train.datasets import load_dataset

    dataset = load_dataset(synth_dataset)
    bundle = load_bundle(quick_bundle)
    session = next(s for s in dataset.sessions if s.subject == "4")  # the run's test subject
    # Looser than the bundle's defaults, which a quick model rarely passes on short gestures.
    post = PostprocessConfig(smoothing=2, threshold=0.4, min_consecutive=1, refractory_s=1.0)
    result = evaluate_stream(bundle, [StreamSession(session.name, session.data, session.label_ids)],
                             dataset.labels, Classifier(bundle, "ai_edge_litert", "float"), post)

    sim = subprocess.Popen([*GESTUREKIT, "simulate", str(synth_dataset / session.name), "--pty",
                            "--speed", "100"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True, env=ENV)
    try:
        assert select.select([sim.stdout], [], [], 30)[0]
        port = sim.stdout.readline().strip()
        run = subprocess.run([*GESTUREKIT, "run", "--port", port, "--model", str(quick_bundle),
                              "--json", "--reconnect-timeout", "0", "--smoothing", "2",
                              "--threshold", "0.4", "--min-consecutive", "1", "--refractory", "1"],
                             capture_output=True, text=True, timeout=300, env=ENV)
    finally:
        sim.kill()
    assert run.returncode == 0, run.stderr
    records = [json.loads(line) for line in run.stdout.splitlines()]
    live = [[r["label"], r["sample"]] for r in records if r["kind"] == "event"]
    assert live == result["events_by_session"][session.name]
    assert records[-1]["windows"] == result["windows"]

    per_class = result["per_class"]
    assert "idle" not in per_class  # the background class is never scored as events
    assert sum(c["events"] for c in per_class.values()) == result["events"] > 0
    for c in per_class.values():
        assert c["true_events"] <= c["events"] and c["segments_found"] <= c["segments"]
        if c["events"]:
            assert np.isclose(c["precision"], c["true_events"] / c["events"])
    assert result["false_events"] == result["events"] - sum(c["true_events"] for c in per_class.values())
    assert result["background_hours"] > 0 and result["false_events_per_hour_background"] >= 0
    # A model trained on this data finds most gesture segments of its test subject.
    found = sum(c["segments_found"] for c in per_class.values())
    assert found >= 0.3 * sum(c["segments"] for c in per_class.values())
