"""The shared windowing: offline cutting, window labels, normalisation, and the live ring buffer."""

from __future__ import annotations

import numpy as np

from gesturekit.device.core.windowing import (
    UNLABELLED,
    Normalization,
    StreamWindower,
    cut_windows,
    label_runs,
    window_labels,
    window_starts,
)


def test_window_starts_and_cut():
    assert window_starts(10, 4, 3).tolist() == [0, 3, 6]
    assert window_starts(3, 4, 1).tolist() == []
    data = np.arange(20, dtype=np.float32).reshape(10, 2)
    w = cut_windows(data, 4, 3)
    assert w.shape == (3, 4, 2)
    np.testing.assert_array_equal(w[1], data[3:7])


def test_window_labels_majority_and_purity():
    ids = np.array([0] * 6 + [1] * 2 + [UNLABELLED] * 4 + [2] * 4)
    # windows of 4, hop 2: starts 0,2,4,6,8,10,12
    labels = window_labels(ids, 4, 2, n_classes=3, purity=0.75)
    assert labels.tolist() == [0, 0, UNLABELLED, UNLABELLED, UNLABELLED, UNLABELLED, 2]
    assert window_labels(ids, 4, 2, 3, purity=0.5).tolist()[:4] == [0, 0, 0, 1]


def test_normalization_round_trip():
    rng = np.random.default_rng(0)
    x = rng.normal(3.0, 2.0, size=(100, 16, 3)).astype(np.float32)
    x[..., 2] = 5.0  # a constant channel must not divide by zero
    norm = Normalization.fit(x)
    y = norm.apply(x)
    np.testing.assert_allclose(y[..., :2].mean(axis=(0, 1)), 0, atol=1e-5)
    np.testing.assert_allclose(y[..., :2].std(axis=(0, 1)), 1, atol=1e-4)
    assert np.isfinite(y).all()
    again = Normalization.from_dict(norm.to_dict())
    np.testing.assert_array_equal(again.apply(x), y)


def test_stream_windower_emits_exactly_the_offline_windows():
    rng = np.random.default_rng(1)
    data = rng.normal(size=(1000, 6)).astype(np.float32)
    for window, hop in ((128, 64), (50, 7), (16, 16), (10, 25)):
        sw = StreamWindower(window, hop, 6)
        live = [w.copy() for sample in data if (w := sw.push(sample)) is not None]
        np.testing.assert_array_equal(np.array(live), cut_windows(data, window, hop))
        # The same windows from blocks of any size, each with the index of its last sample.
        sw.reset()
        bounds = np.r_[0, np.sort(rng.choice(np.arange(1, 1000), 60, replace=False)), 1000]
        blocks = [(a, sw.extend(data[a:b])) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
        ends = [a + i for a, due in blocks for i, _ in due]
        np.testing.assert_array_equal(np.array([w for _, due in blocks for _, w in due]),
                                      cut_windows(data, window, hop))
        assert ends == [s + window - 1 for s in window_starts(len(data), window, hop)]


def test_stream_windower_restarts_after_a_gap():
    data = np.arange(300, dtype=np.float32).reshape(150, 2)
    sw = StreamWindower(20, 10, 2)
    first = [w.copy() for s in data[:45] if (w := sw.push(s)) is not None]
    sw.reset()
    second = [w.copy() for s in data[45:] if (w := sw.push(s)) is not None]
    np.testing.assert_array_equal(np.array(first), cut_windows(data[:45], 20, 10))
    np.testing.assert_array_equal(np.array(second), cut_windows(data[45:], 20, 10))
    assert all(w[0, 0] >= 90 for w in second)  # nothing from before the gap


def test_label_runs_cover_every_sample_once():
    ids = np.array([-1, -1, 0, 0, 0, 2, -1, 2, 2])
    assert label_runs(ids) == [(0, 2), (2, 5), (5, 6), (6, 7), (7, 9)]
    assert label_runs(np.array(["", "walk", "walk"])) == [(0, 1), (1, 3)]
    assert label_runs(np.array([], dtype=int)) == []
