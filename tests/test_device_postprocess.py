"""Post-processing into events, and the one check of its settings."""

from __future__ import annotations

import numpy as np
import pytest

from gesturekit.device.core.postprocess import EventDetector, PostprocessConfig

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


def test_refractory_period_silences_the_same_class_only():
    cfg = PostprocessConfig(smoothing=1, threshold=0.5, min_consecutive=1, refractory_s=1.2)
    d = EventDetector(cfg, LABELS, 0)
    # Windows every 0.5 s: the jump at 1.5 s is within 1.2 s of the one at 0.5 s; a punch
    # right after a jump is another gesture, announced; the run of jumps at 2.5 s fires once
    # it is 1.2 s after the last jump.
    assert run(d, [1, 0, 1, 2, 1, 1, 1]) == [(0, "jump"), (3, "punch"), (4, "jump")]


def test_states_are_never_announced_but_still_decide():
    """`walk` is a state: a run of walk windows is no event, and it breaks a run of jumps."""
    labels = ["idle", "walk", "jump"]
    cfg = PostprocessConfig(smoothing=1, threshold=0.5, min_consecutive=2, refractory_s=0.0,
                            event_classes=["jump"])
    d = EventDetector(cfg, labels, 0)
    assert run(d, [1, 1, 1, 2, 1, 2, 2, 1]) == [(6, "jump")]
    # The background is never an event, even when a config names it.
    cfg = PostprocessConfig(smoothing=1, threshold=0.5, min_consecutive=1, refractory_s=0.0,
                            event_classes=["idle", "jump"])
    assert run(EventDetector(cfg, labels, 0), [0, 2, 0]) == [(1, "jump")]


def test_per_class_settings_apply_to_their_class_only():
    cfg = PostprocessConfig(smoothing=1, threshold=0.5, min_consecutive=1, refractory_s=0.0,
                            per_class={"punch": {"min_consecutive": 3, "threshold": 0.85}})
    d = EventDetector(cfg, LABELS, 0)
    # jump fires on its first window; punch needs three in a row above 0.85.
    assert run(d, [1, 0, 2, 2, 0, 2, 2, 2]) == [(0, "jump"), (7, "punch")]
    assert run(EventDetector(cfg, LABELS, 0), [2, 2, 2], p=0.8) == []
    assert cfg.settings("punch") == {"smoothing": 1, "threshold": 0.85, "min_consecutive": 3,
                                     "refractory_s": 0.0}


def test_two_classes_ready_in_one_window_the_more_confident_first():
    """Different smoothing can make two classes ready at once: one event per window, the
    other follows on the next window its run continues."""
    cfg = PostprocessConfig(smoothing=1, threshold=0.4, min_consecutive=1, refractory_s=0.0,
                            per_class={"punch": {"smoothing": 3, "min_consecutive": 3}})
    d = EventDetector(cfg, LABELS, 0)
    p = [np.array(v, np.float32) for v in ([0.0, 0.05, 0.95], [0.0, 0.05, 0.95], [0.0, 0.6, 0.4],
                                           [0.0, 0.55, 0.45])]
    got = [d.update(x, float(i), i) for i, x in enumerate(p)]
    assert [e and e.label for e in got] == [None, None, "punch", "jump"]


def test_reset_forgets_the_run_across_a_gap():
    cfg = PostprocessConfig(smoothing=2, threshold=0.5, min_consecutive=2, refractory_s=0.0)
    d = EventDetector(cfg, LABELS, 0)
    assert run(d, [1]) == []
    d.reset()
    assert d.update(probs(1), 1.0, 10) is None  # one window after the gap is not two in a row


def test_bundle_defaults_and_flag_overrides(tmp_path):
    from gesturekit.device.core.model_info import ModelInfo
    from gesturekit.device.core.windowing import Normalization
    from gesturekit.errors import UserError

    bundle = ModelInfo(LABELS, "idle", ["a"], {}, 50.0, 8, 4, Normalization(np.zeros(1), np.ones(1)),
                       False)
    cfg = PostprocessConfig.for_bundle(bundle, {"threshold": 0.8, "smoothing_s": None})
    # Seconds become windows once, at the hop: 1 s of 0.08 s hops is 12.5 windows (half up:
    # 13, as model_config.h's Windows() rounds), 0.6 s is 7.5 (8).
    assert (cfg.threshold, cfg.smoothing, cfg.min_consecutive) == (0.8, 13, 8)
    assert PostprocessConfig.for_bundle(bundle, hop=8).smoothing == 6  # 6.25
    with pytest.raises(UserError, match="threshold"):
        PostprocessConfig.for_bundle(bundle, {"threshold": 2.0})


@pytest.mark.parametrize("override", [{"refractory_s": float("nan")}, {"threshold": float("inf")},
                                      {"smoothing_s": -0.5}, {"min_on_s": float("inf")}])
def test_flag_overrides_go_through_the_bundle_check(tmp_path, override):
    from gesturekit.device.core.model_info import ModelInfo
    from gesturekit.device.core.windowing import Normalization
    from gesturekit.errors import UserError

    bundle = ModelInfo(LABELS, "idle", ["a"], {}, 50.0, 8, 4, Normalization(np.zeros(1), np.ones(1)),
                       False)
    with pytest.raises(UserError, match=f"postprocess.{next(iter(override))}"):
        PostprocessConfig.for_bundle(bundle, override)


def test_unknown_postprocess_key_fails_at_load_bundle(tmp_path):
    from gesturekit.device.core.bundle import Bundle, load_bundle, write_model_json
    from gesturekit.device.core.model_info import DEFAULT_POSTPROCESS
    from gesturekit.device.core.windowing import Normalization
    from gesturekit.errors import UserError

    bundle = Bundle(LABELS, "idle", ["a"], {}, 50.0, 8, 4, Normalization(np.zeros(1), np.ones(1)),
                    False, root=tmp_path, files={}, postprocess={**DEFAULT_POSTPROCESS, "smoothin": 5})
    write_model_json(bundle)
    with pytest.raises(UserError, match=r"model.json: unknown postprocess keys \['smoothin'\]"):
        load_bundle(tmp_path)


def test_per_class_smoothed_is_what_the_detector_compares():
    """A calibrated bundle smooths each event class over its own windows: the vector the views
    show holds, for each class, the average the detector checks against its threshold."""
    from gesturekit.device.core.postprocess import class_smoothing, per_class_smoothed

    cfg = PostprocessConfig(smoothing=4, threshold=0.5, min_consecutive=1, refractory_s=0.0,
                            per_class={"jump": {"smoothing": 1}})
    ks = class_smoothing(cfg, LABELS, "idle")
    assert ks == [4, 1, 4]
    recent = [probs(0), probs(0), probs(0), probs(1)]
    shown = per_class_smoothed(recent, ks)
    d = EventDetector(cfg, LABELS, background_index=0)
    events = [d.update(p, i + 1.0, i + 1) for i, p in enumerate(recent)]
    # jump fires on its own newest window at 0.9; the global mean of 4 (0.275) would never
    # reach the threshold, which is what the terminal view used to show.
    assert events[-1].label == "jump" and shown[1] == pytest.approx(events[-1].confidence)
    assert shown[0] == pytest.approx(np.mean(recent, axis=0)[0])
    assert np.mean(recent, axis=0)[1] < 0.5
