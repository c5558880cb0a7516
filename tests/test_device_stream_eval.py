"""Offline stream evaluation gives the events `run` prints for the same session played live."""

from __future__ import annotations

import json
import os
import select
import shutil
import subprocess
import sys

import numpy as np
import pytest

from gesturekit.device.core.backends import Classifier
from gesturekit.device.core.bundle import load_bundle
from gesturekit.device.core.postprocess import PostprocessConfig
from gesturekit.device.core.stream_eval import StreamSession, evaluate_stream

GESTUREKIT = [sys.executable, "-m", "gesturekit.cli"]
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}


def test_offline_events_equal_live_events_and_scores_add_up(quick_bundle, synth_dataset, tmp_path):
    """With `walk` a state (not in the bundle's event_classes), neither side announces it."""
    from gesturekit.device.core.bundle import write_model_json
    from gesturekit.train.datasets import load_dataset

    dataset = load_dataset(synth_dataset)
    shutil.copytree(quick_bundle, tmp_path / "bundle")
    bundle = load_bundle(tmp_path / "bundle")
    bundle.event_classes = ["jump", "punch", "turn"]
    write_model_json(bundle)
    quick_bundle = bundle.root
    session = next(s for s in dataset.sessions if s.subject == "4")  # the run's test subject
    # Looser than the bundle's defaults, which a quick model rarely passes on short gestures.
    post = PostprocessConfig.for_bundle(bundle, {"smoothing_s": 0.64, "threshold": 0.4,
                                                 "min_on_s": 0.0, "refractory_s": 1.0})
    result = evaluate_stream(bundle, [StreamSession(session.name, session.data, session.label_ids)],
                             dataset.labels, Classifier(bundle, "ai_edge_litert", "float"), post)

    sim = subprocess.Popen([*GESTUREKIT, "simulate", str(synth_dataset / session.name), "--pty",
                            "--speed", "100"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True, env=ENV)
    try:
        assert select.select([sim.stdout], [], [], 30)[0]
        port = sim.stdout.readline().strip()
        run = subprocess.run([*GESTUREKIT, "run", "--port", port, "--model", str(quick_bundle),
                              "--json", "--reconnect-timeout", "0", "--smoothing", "0.64",
                              "--threshold", "0.4", "--min-on", "0", "--refractory", "1"],
                             capture_output=True, text=True, timeout=300, env=ENV)
    finally:
        sim.kill()
    assert run.returncode == 0, run.stderr
    records = [json.loads(line) for line in run.stdout.splitlines()]
    live = [[r["label"], r["sample"]] for r in records if r["kind"] == "event"]
    assert live == result["events_by_session"][session.name]
    assert records[-1]["windows"] == result["windows"]

    per_class = result["per_class"]
    assert set(per_class) == {"jump", "punch", "turn"}  # no background, no state
    assert live and not any(label == "walk" for label, _ in live)
    for c in per_class.values():
        if c["segments_found"]:
            assert c["double_counts"] >= 1.0
            assert c["delay_s"]["p50"] <= c["delay_s"]["p90"]  # from the end: may be < 0
            assert 0 <= c["delay_from_start_s"]["p50"] <= c["delay_from_start_s"]["p90"]
    assert sum(c["events"] for c in per_class.values()) == result["events"] > 0
    for c in per_class.values():
        assert c["true_events"] <= c["events"] and c["segments_found"] <= c["segments"]
        if c["events"]:
            assert np.isclose(c["precision"], c["true_events"] / c["events"])
    assert result["false_events"] == result["events"] - sum(c["true_events"] for c in per_class.values())
    assert result["false_events"] == (result["false_events_in_background"] + result["false_events_in_states"]
                                      + result["false_events_in_event_segments"])
    assert result["background_hours"] > 0 and result["false_events_per_hour_background"] >= 0
    # A model trained on this data finds most gesture segments of its test subject.
    found = sum(c["segments_found"] for c in per_class.values())
    assert found >= 0.3 * sum(c["segments"] for c in per_class.values())


def test_event_scores_count_delay_double_counts_and_where_false_events_fall(tmp_path):
    """Hand-made events on a hand-made session: every figure checked by hand."""
    from gesturekit.device.core.bundle import Bundle
    from gesturekit.device.core.postprocess import Event
    from gesturekit.device.core.stream_eval import score_events
    from gesturekit.device.core.windowing import Normalization

    labels = ["idle", "walk", "jump"]  # idle: background; walk: a state; jump: the event
    bundle = Bundle(labels, "idle", ["a"], {}, 10.0, 10, 5, Normalization(np.zeros(1), np.ones(1)),
                    False, root=tmp_path, files={}, event_classes=["jump"])
    ids = np.full(400, -1)  # unlabelled = background
    ids[100:200] = 1  # walk
    ids[120:130] = 2  # jump segment 1, starts at 12.0 s
    ids[300:320] = 2  # jump segment 2, starts at 30.0 s
    ids[360:380] = 2  # jump segment 3: missed

    def jump(end: int) -> Event:
        return Event("jump", 2, 0.9, end / 10.0, end)

    events = [jump(135), jump(138),  # both overlap segment 1: one found, counted twice
              jump(170),  # in walk: a false event in a state
              jump(310),  # segment 2, 1.0 s after its start, 1.0 s before its end
              jump(60), jump(250)]  # in unlabelled time: false in background
    result = score_events(bundle, [("s", ids, events)], ["jump"])
    c = result["per_class"]["jump"]
    assert (c["segments"], c["segments_found"], c["events"], c["true_events"]) == (3, 2, 6, 3)
    assert c["recall"] == 2 / 3 and c["precision"] == 0.5 and c["double_counts"] == 1.5
    assert c["delay_s"] == {"p50": -0.25, "p90": 0.35}  # from the ends: 0.5 s and -1.0 s
    assert c["delay_from_start_s"] == {"p50": 1.25, "p90": 1.45}  # 1.5 s and 1.0 s
    assert "walk" not in result["per_class"] and "idle" not in result["per_class"]
    assert (result["false_events_in_background"], result["false_events_in_states"],
            result["false_events_in_event_segments"]) == (2, 1, 0)
    background_h, states_h = (400 - 100 - 40) / 36000, (100 - 10) / 36000
    assert result["background_hours"] == round(background_h, 4)
    assert np.isclose(result["false_events_per_hour_background"], 2 / background_h)
    low, high = result["false_per_hour_background_95"]
    assert np.isclose(low, 0.2422 / background_h, rtol=1e-3)  # Garwood, 2 events
    assert np.isclose(high, 7.225 / background_h, rtol=1e-3)
    assert np.isclose(result["false_events_per_hour_states"], 1 / states_h)
    assert np.isclose(result["false_events_per_hour_quiet"], 3 / (background_h + states_h))


def test_the_false_event_rate_comes_with_its_exact_poisson_interval():
    """Garwood's 95% interval, against the published table (events in 1 h; in 0.5 h, doubled)."""
    from gesturekit.device.core.stream_eval import poisson_interval

    table = {0: (0.0, 3.689), 1: (0.0253, 5.572), 2: (0.2422, 7.225), 10: (4.795, 18.39)}
    for count, (low, high) in table.items():
        got = poisson_interval(count, 1.0)
        assert got == pytest.approx((low, high), abs=1e-3), count
        assert poisson_interval(count, 0.5) == pytest.approx((2 * got[0], 2 * got[1]))
    assert poisson_interval(3, 0.0) is None
