"""Offline stream evaluation: whole sessions through the runner's windowing and post-processing.

Windows are cut exactly where the live `StreamWindower` would emit them (`cut_windows`), each
goes through the same `Classifier` and `EventDetector`, so the events are those `run` would
print for the session played from its start. Scores are event-level:

- an event of class c is true when its window overlaps a labelled segment of c;
- recall of c is the share of c's segments (runs of consecutive samples) that some event of c
  overlaps;
- a false event whose window lies mostly in background (the bundle's background class or
  unlabelled samples) counts towards false events per hour of background.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gesturekit.device.backends import Classifier, choose_backend
from gesturekit.device.bundle import Bundle
from gesturekit.device.postprocess import EventDetector, PostprocessConfig
from gesturekit.device.windowing import UNLABELLED, cut_windows, label_runs, window_starts


@dataclass
class StreamSession:
    name: str
    data: np.ndarray  # (N, C) float32, channels in the bundle's order
    label_ids: np.ndarray  # (N,) int, indices into the `labels` passed along; -1 unlabelled


def evaluate_stream(bundle: Bundle, sessions: list[StreamSession], labels: list[str],
                    classifier: Classifier | None = None,
                    postprocess: PostprocessConfig | None = None) -> dict:
    """Event precision/recall per class and false events per hour of background.

    `labels` name the sessions' label ids (matched to the bundle's labels by name); session
    data must already be in the bundle's channel order. Without `classifier`, the float model
    on the first installed backend; without `postprocess`, the bundle's settings.
    """
    classifier = classifier or Classifier(bundle, *choose_backend(bundle, None, int8=False))
    cfg = postprocess or PostprocessConfig.for_bundle(bundle)
    # Dataset label index -> bundle output index (by name; classes the model lacks: -1).
    to_bundle = np.array([bundle.labels.index(n) if n in bundle.labels else -1 for n in labels])
    background = bundle.background_index
    n = len(bundle.labels)
    true_events, events = np.zeros(n, int), np.zeros(n, int)
    hit_segments, segments = np.zeros(n, int), np.zeros(n, int)
    false_in_background, background_samples, total_samples, windows = 0, 0, 0, 0
    by_session: dict[str, list] = {}  # session -> [label, end sample] per event, as `run` prints
    rate = bundle.sample_rate_hz
    for s in sessions:
        ids = np.where(s.label_ids >= 0, to_bundle[np.maximum(s.label_ids, 0)], UNLABELLED)
        total_samples += len(ids)
        is_background = (ids == UNLABELLED) | (ids == background)
        background_samples += int(is_background.sum())
        detector = EventDetector(cfg, bundle.labels, background)
        starts = window_starts(len(s.data), bundle.window, bundle.hop)
        session_events = []
        for start, window in zip(starts, cut_windows(s.data, bundle.window, bundle.hop), strict=True):
            end = int(start) + bundle.window
            event = detector.update(classifier(window), end / rate, end)
            windows += 1
            if event is not None:
                session_events.append((event.index, end - bundle.window, end))
        by_session[s.name] = [[bundle.labels[c], b] for c, _, b in session_events]
        runs = [(int(ids[a]), a, b) for a, b in label_runs(ids) if ids[a] >= 0 and ids[a] != background]
        for cls, first, end in runs:
            segments[cls] += 1
            if any(e == cls and a < end and first < b for e, a, b in session_events):
                hit_segments[cls] += 1
        for cls, a, b in session_events:
            events[cls] += 1
            if (ids[a:b] == cls).any():
                true_events[cls] += 1
            elif is_background[a:b].mean() > 0.5:
                false_in_background += 1
    background_hours = background_samples / rate / 3600.0
    per_class = {}
    for i, name in enumerate(bundle.labels):
        if i == background:
            continue
        per_class[name] = {
            "precision": float(true_events[i] / events[i]) if events[i] else None,
            "recall": float(hit_segments[i] / segments[i]) if segments[i] else None,
            "events": int(events[i]), "true_events": int(true_events[i]),
            "segments": int(segments[i]), "segments_found": int(hit_segments[i]),
        }
    return {
        "per_class": per_class,
        "events": int(events.sum()),
        "false_events": int(events.sum() - true_events.sum()),
        "false_events_in_background": false_in_background,
        "background_hours": round(background_hours, 4),
        "false_events_per_hour_background": (false_in_background / background_hours
                                              if background_hours else None),
        "hours": round(total_samples / rate / 3600.0, 4),
        "windows": windows,
        "sessions": len(sessions),
        "postprocess": cfg.to_dict(),
        "events_by_session": by_session,
        "backend": classifier.backend,
        "model": classifier.kind,
    }
