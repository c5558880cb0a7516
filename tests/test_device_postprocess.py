"""Post-processing into events, and the one check of its settings."""

from __future__ import annotations

import numpy as np
import pytest

from gesturekit.device.postprocess import EventDetector, PostprocessConfig

LABELS = ["idle", "jump", "punch"]


def probs(top: int, p: float = 0.9) -> np.ndarray:
    out = np.full(3, (1 - p) / 2, dtype=np.float32)
    out[top] = p
    return out


def run(detector: EventDetector, tops: list[int], hop_s: float = 0.5, p: float = 0.9):
    events = []
    for i, top in enumerate(tops):
        event = detector.update(probs(top, p), (i + 1) * hop_s, (i + 1) * 10)
        if event is not None:
            events.append((i, event.label))
    return events


def test_needs_consecutive_agreement_and_announces_once_per_run():
    cfg = PostprocessConfig(smoothing=1, threshold=0.6, min_consecutive=2, refractory_s=0.0)
    d = EventDetector(cfg, LABELS, background_index=0)
    assert run(d, [1, 2, 1, 1, 1, 1, 2, 2]) == [(3, "jump"), (7, "punch")]


def test_background_is_never_announced():
    cfg = PostprocessConfig(smoothing=1, threshold=0.5, min_consecutive=1, refractory_s=0.0)
    d = EventDetector(cfg, LABELS, background_index=0)
    assert run(d, [0, 0, 0, 1, 0]) == [(3, "jump")]


def test_threshold_applies_to_the_smoothed_confidence():
    cfg = PostprocessConfig(smoothing=1, threshold=0.95, min_consecutive=1, refractory_s=0.0)
    assert run(EventDetector(cfg, LABELS, 0), [1, 1, 2], p=0.9) == []
    cfg = PostprocessConfig(smoothing=3, threshold=0.6, min_consecutive=1, refractory_s=0.0)
    # One confident "punch" between "jump"s: averaged over 3 windows it never wins.
    assert run(EventDetector(cfg, LABELS, 0), [1, 1, 2, 1, 1]) == [(0, "jump")]


def test_refractory_period_silences_following_events():
    cfg = PostprocessConfig(smoothing=1, threshold=0.5, min_consecutive=1, refractory_s=1.2)
    d = EventDetector(cfg, LABELS, 0)
    # Windows every 0.5 s: jump at 0.5 s, punch at 1.0 s and 1.5 s are inside the refractory.
    assert run(d, [1, 2, 2, 0, 2]) == [(0, "jump"), (4, "punch")]


def test_reset_forgets_the_run_across_a_gap():
    cfg = PostprocessConfig(smoothing=2, threshold=0.5, min_consecutive=2, refractory_s=0.0)
    d = EventDetector(cfg, LABELS, 0)
    assert run(d, [1]) == []
    d.reset()
    assert d.update(probs(1), 1.0, 10) is None  # one window after the gap is not two in a row


def test_bundle_defaults_and_flag_overrides(tmp_path):
    from gesturekit.device.bundle import Bundle
    from gesturekit.device.windowing import Normalization
    from gesturekit.errors import UserError

    bundle = Bundle(tmp_path, LABELS, "idle", ["a"], {}, 50.0, 8, 4,
                    Normalization(np.zeros(1), np.ones(1)), False, {})
    cfg = PostprocessConfig.for_bundle(bundle, {"threshold": 0.8, "smoothing": None})
    assert (cfg.threshold, cfg.smoothing) == (0.8, bundle.postprocess["smoothing"])
    with pytest.raises(UserError, match="threshold"):
        PostprocessConfig.for_bundle(bundle, {"threshold": 2.0})


@pytest.mark.parametrize("override", [{"refractory_s": float("nan")}, {"threshold": float("inf")},
                                      {"smoothing": 2.5}, {"min_consecutive": 0}])
def test_flag_overrides_go_through_the_bundle_check(tmp_path, override):
    from gesturekit.device.bundle import Bundle
    from gesturekit.device.windowing import Normalization
    from gesturekit.errors import UserError

    bundle = Bundle(tmp_path, LABELS, "idle", ["a"], {}, 50.0, 8, 4,
                    Normalization(np.zeros(1), np.ones(1)), False, {})
    with pytest.raises(UserError, match=f"postprocess.{next(iter(override))}"):
        PostprocessConfig.for_bundle(bundle, override)


def test_unknown_postprocess_key_fails_at_load_bundle(tmp_path):
    from gesturekit.device.bundle import DEFAULT_POSTPROCESS, Bundle, load_bundle, write_model_json
    from gesturekit.device.windowing import Normalization
    from gesturekit.errors import UserError

    bundle = Bundle(tmp_path, LABELS, "idle", ["a"], {}, 50.0, 8, 4,
                    Normalization(np.zeros(1), np.ones(1)), False, {},
                    postprocess={**DEFAULT_POSTPROCESS, "smoothin": 5})
    write_model_json(bundle)
    with pytest.raises(UserError, match=r"model.json: unknown postprocess keys \['smoothin'\]"):
        load_bundle(tmp_path)
