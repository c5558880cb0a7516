"""`calibrate`'s fast search scores every setting exactly as `EventDetector` and `score_events`
would: random labelled streams and random window outputs, every setting of a random slice of
the grid, compared figure for figure with the real detector's replay (the class announced
alone, as the search decides classes) and the real scoring."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from gesturekit.device.core.model_info import ModelInfo
from gesturekit.device.core.postprocess import PostprocessConfig
from gesturekit.device.core.stream_eval import SessionTruth, _percentiles, detect, score_events
from gesturekit.device.core.windowing import Normalization, window_starts
from gesturekit.export.event_search import (
    MIN_ON_S,
    REFRACTORY_S,
    SMOOTHING_S,
    THRESHOLDS,
    Session,
    class_options,
    grid_counts,
    smoothed_outputs,
)

LABELS = ["background", "sit", "jump", "punch"]  # sit is a state; jump and punch are events
EVENTS = ["jump", "punch"]


def model(window: int, hop: int) -> ModelInfo:
    return ModelInfo(LABELS, "background", ["a"], {}, 50.0, window, hop,
                     Normalization(np.zeros(1), np.ones(1)), False, event_classes=EVENTS)


def random_session(rng: np.random.Generator, window: int, hop: int) -> Session:
    """Runs of random labels (unlabelled -1 among them) and outputs that follow them loosely."""
    runs = rng.integers(5, 80, size=rng.integers(3, 14))
    ids = np.concatenate([np.full(n, rng.integers(-1, len(LABELS))) for n in runs]).astype(int)
    ids = np.concatenate([ids, np.full(window, ids[-1])])
    ends = window_starts(len(ids), window, hop) + window
    logits = rng.normal(0, 1.5, (len(ends), len(LABELS)))
    logits[np.arange(len(ends)), np.maximum(ids[ends - 1], 0)] += rng.uniform(0, 3)
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return Session(ids, ends, probs.astype(np.float32))


@settings(max_examples=12)
@given(st.integers(0, 2**32 - 1), st.sampled_from([(16, 4), (24, 8), (20, 20)]))
def test_search_equals_the_detectors_replay_and_scoring(seed, shape):
    window, hop = shape
    rng = np.random.default_rng(seed)
    bundle = model(window, hop)
    sessions = [random_session(rng, window, hop) for _ in range(rng.integers(1, 4))]
    is_event = np.isin(np.arange(len(LABELS)), [LABELS.index(e) for e in EVENTS])
    truths = [SessionTruth(bundle, s.ids, is_event) for s in sessions]
    averages = smoothed_outputs(sessions, grid_counts(hop, bundle.sample_rate_hz)[0])
    for label in EVENTS:
        c = LABELS.index(label)
        options = class_options(sessions, truths, c, window, hop, bundle.sample_rate_hz, averages)
        for i in rng.choice(len(options), size=25, replace=False):
            o = options[i]
            bundle.postprocess = {**o.settings, "per_class": {}}
            bundle.event_classes = [label]  # announced alone; the other event class is no state
            cfg = PostprocessConfig.for_bundle(bundle)
            scored = [(str(j), s.ids, detect(bundle, s.ends, s.probs, cfg))
                      for j, s in enumerate(sessions)]
            real = score_events(bundle, scored, EVENTS)
            got = real["per_class"][label]
            assert (o.events, o.true_events, o.segments, o.found) == (
                got["events"], got["true_events"], got["segments"], got["segments_found"]), o.settings
            assert (o.false_background, o.false_states) == (
                real["false_events_in_background"], real["false_events_in_states"]), o.settings
            assert _percentiles(o.delays) == got["delay_s"], o.settings


def test_grid_settings_are_seconds_that_convert_back_to_their_counts():
    """Written as count x hop, each setting is the same window count at the calibrated hop,
    and scales with the hop: a bundle run at half the hop averages twice the windows."""
    from gesturekit.device.core.model_info import windows_for

    for hop in (4, 16, 64):
        smoothing, min_on = grid_counts(hop, 50.0)
        assert smoothing[0] == min_on[0] == 1
        assert len(smoothing) <= len(SMOOTHING_S) and len(min_on) <= len(MIN_ON_S)
        for k in smoothing:
            seconds = round(k * hop / 50.0, 4)
            assert windows_for(seconds, hop, 50.0) == k
            if hop % 2 == 0:
                assert windows_for(seconds, hop // 2, 50.0) == 2 * k
    assert 0.0 in REFRACTORY_S and THRESHOLDS == tuple(sorted(THRESHOLDS))
