"""Offline stream evaluation: whole sessions through the runner's windowing and post-processing.

`replay` is the one offline replay: windows cut exactly where the live `StreamWindower` would
emit them (`cut_windows`), each through the same `Classifier` and `EventDetector`, so the
events are those `run` would print for the session played from its start. `evaluate_stream`,
`gesturekit plot` and `gesturekit calibrate` all go through it. Scores are event-level:

- an event of class c is true when its window overlaps a labelled segment of c;
- recall of c is the share of c's segments (runs of consecutive samples) that some event of c
  overlaps; its detection delay is the first such event's time minus the segment's end (the
  moment the gesture is complete, as keyword spotting measures from the keyword's end: negative
  when the event comes before the end), and minus its start as a second figure;
  double counts are the true events per segment found (1.0: each announced once);
- a false event whose window lies mostly outside every event class's segments (the quiet
  time: background, unlabelled samples and states that are not events) counts towards false
  events per hour of quiet time, and of background or of non-event states, whichever of the
  two covers more of its window.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from gesturekit.device.core.backends import Classifier, choose_backend
from gesturekit.device.core.bundle import Bundle
from gesturekit.device.core.frame import StreamFrame, reference_samples
from gesturekit.device.core.model_info import ModelInfo, announced_classes
from gesturekit.device.core.postprocess import Event, EventDetector, PostprocessConfig
from gesturekit.device.core.windowing import UNLABELLED, cut_windows, label_runs, window_starts


@dataclass
class StreamSession:
    name: str
    data: np.ndarray  # (N, C) float32, channels in the bundle's order
    label_ids: np.ndarray  # (N,) int, indices into the `labels` passed along; -1 unlabelled
    turned: bool = False  # data already in the model's frame (from the session's labelled pose)


def window_probabilities(bundle: Bundle, data: np.ndarray, classifier: Classifier,
                         turned: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(window ends (W,), probabilities (W, K)) for a session played from its start (turned
    into the model's reference frame from its first seconds, as the runner does, unless
    `turned`: already in it)."""
    ends, windows = stream_windows(bundle, data, turned)
    probs = np.zeros((len(ends), len(bundle.labels)), np.float32)
    for i, window in enumerate(windows):
        probs[i] = classifier(window)
    return ends, probs


def reference_phase(model: ModelInfo) -> int:
    """The samples at a stream's start that set the reference frame (0 without a pose): the
    runner and the board never put one in a window."""
    pose = model.reference_pose
    return reference_samples(pose.seconds, model.sample_rate_hz) if pose is not None else 0


def stream_windows(model: ModelInfo, data: np.ndarray,
                   turned: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(window ends (W,), windows (W, window, C)) the runner cuts from a session played from
    its start: after the reference phase, turned into the frame the phase sets (unless
    `turned`: already in the model's frame)."""
    skip = min(reference_phase(model), len(data))
    if model.reference_pose is not None and not turned:
        data = StreamFrame(model.reference_pose, model.channels, model.units,
                           model.sample_rate_hz).apply(data)
    data = data[skip:]
    ends = skip + window_starts(len(data), model.window, model.hop) + model.window
    return ends, cut_windows(data, model.window, model.hop)


def detect(bundle: Bundle, ends: np.ndarray, probs: np.ndarray,
           postprocess: PostprocessConfig) -> list[Event]:
    """The events `run` announces for these window outputs (a fresh detector per session)."""
    detector = EventDetector(postprocess, bundle.labels, bundle.background_index)
    rate = bundle.sample_rate_hz
    return [e for end, p in zip(ends, probs, strict=True)
            if (e := detector.update(p, int(end) / rate, int(end))) is not None]


def replay(bundle: Bundle, data: np.ndarray, classifier: Classifier, postprocess: PostprocessConfig,
           turned: bool = False) -> tuple[np.ndarray, np.ndarray, list[Event]]:
    """(window ends, probabilities, events) of a session through the runner's code."""
    ends, probs = window_probabilities(bundle, data, classifier, turned)
    return ends, probs, detect(bundle, ends, probs, postprocess)


def bundle_label_ids(bundle: Bundle, label_ids: np.ndarray, labels: list[str]) -> np.ndarray:
    """Dataset label ids -> the bundle's output indices (by name); unknown classes unlabelled."""
    to_bundle = np.array([bundle.labels.index(n) if n in bundle.labels else -1 for n in labels]
                         + [UNLABELLED])  # index -1 (unlabelled) maps through the appended one
    return to_bundle[label_ids]


def score_events(bundle: Bundle, sessions: list[tuple[str, np.ndarray, list[Event]]],
                 event_classes: list[str]) -> dict:
    """Event-level scores of (name, per-sample bundle label ids, events) per session."""
    tally = _EventTally(bundle, event_classes)
    for name, ids, session_events in sessions:
        tally.add(name, ids, session_events)
    return tally.scores()


class SessionTruth:
    """One session's labels as `score_events` judges events against them: the background
    (unlabelled or the background class), the states (labelled, not an event class) and the
    segments of each event class. `kind` is the one rule for what an event is."""

    def __init__(self, bundle: Bundle, ids: np.ndarray, is_event_class: np.ndarray):
        self.ids = ids
        self.background = (ids == UNLABELLED) | (ids == bundle.background_index)
        self.states = ~self.background & ~is_event_class[np.maximum(ids, 0)]
        self.segments = [(int(ids[a]), a, b) for a, b in label_runs(ids)
                         if ids[a] >= 0 and is_event_class[ids[a]]]  # (class, first, end)

    def kind(self, cls: int, a: int, b: int) -> str:
        """An event of `cls` whose window is samples [a, b): "true" when the window holds a
        sample of its class, else a false event charged to "background" or "states" (whichever
        covers more of a window that is mostly quiet) or to "event_segments"."""
        if (self.ids[a:b] == cls).any():
            return "true"
        background, states = self.background[a:b], self.states[a:b]
        if (background | states).mean() > 0.5:
            return "background" if background.sum() >= states.sum() else "states"
        return "event_segments"


class _EventTally:
    """What `score_events` counts, session by session, per class of the bundle.

    A labelled segment of an event class is found when an event of its class overlaps it (the
    delay runs from the segment's end, and from its first sample, to the end of the first such
    event's window); an event is true or false by `SessionTruth.kind`.
    """

    def __init__(self, bundle: Bundle, event_classes: list[str]):
        n = len(bundle.labels)
        self.bundle, self.event_classes = bundle, list(event_classes)
        self.is_event_class = np.isin(np.arange(n), [bundle.labels.index(c) for c in event_classes])
        self.true_events, self.events = np.zeros(n, int), np.zeros(n, int)
        self.hit_segments, self.segments = np.zeros(n, int), np.zeros(n, int)
        self.delays: list[list[float]] = [[] for _ in range(n)]  # from the segments' ends
        self.delays_from_start: list[list[float]] = [[] for _ in range(n)]
        self.false = {"background": 0, "states": 0, "event_segments": 0}
        self.samples = {"background": 0, "states": 0, "total": 0}
        self.by_session: dict[str, list] = {}  # session -> [label, end sample] per event, as `run` prints

    def add(self, name: str, ids: np.ndarray, session_events: list[Event]) -> None:
        truth = SessionTruth(self.bundle, ids, self.is_event_class)
        self.samples["background"] += int(truth.background.sum())
        self.samples["states"] += int(truth.states.sum())
        self.samples["total"] += len(ids)
        window = self.bundle.window
        spans = [(e.index, e.end_sample - window, e.end_sample) for e in session_events]
        self.by_session[name] = [[e.label, e.end_sample] for e in session_events]
        self._find_segments(truth, spans)
        for cls, a, b in spans:
            self.events[cls] += 1
            kind = truth.kind(cls, a, b)
            if kind == "true":
                self.true_events[cls] += 1
            else:
                self.false[kind] += 1

    def _find_segments(self, truth: SessionTruth, spans: list[tuple[int, int, int]]) -> None:
        rate = self.bundle.sample_rate_hz
        for cls, first, end in truth.segments:
            self.segments[cls] += 1
            hits = [b for e, a, b in spans if e == cls and a < end and first < b]
            if hits:
                self.hit_segments[cls] += 1
                self.delays[cls].append((hits[0] - end) / rate)
                self.delays_from_start[cls].append((hits[0] - first) / rate)

    def _class_scores(self, i: int) -> dict:
        events, true, found, segments = (self.events[i], self.true_events[i],
                                         self.hit_segments[i], self.segments[i])
        return {
            "precision": float(true / events) if events else None,
            "recall": float(found / segments) if segments else None,
            "events": int(events), "true_events": int(true),
            "segments": int(segments), "segments_found": int(found),
            "double_counts": float(true / found) if found else None,
            "delay_s": _percentiles(self.delays[i]),
            "delay_from_start_s": _percentiles(self.delays_from_start[i]),
        }

    def scores(self) -> dict:
        hours = {k: v / self.bundle.sample_rate_hz / 3600.0 for k, v in self.samples.items()}
        false, found, segments = self.false, self.hit_segments.sum(), self.segments.sum()
        return {
            "event_classes": self.event_classes,
            "per_class": {name: self._class_scores(i) for i, name in enumerate(self.bundle.labels)
                          if self.is_event_class[i]},
            "events": int(self.events.sum()),
            "false_events": int(self.events.sum() - self.true_events.sum()),
            "false_events_in_background": false["background"],
            "false_events_in_states": false["states"],
            "false_events_in_event_segments": false["event_segments"],
            "background_hours": round(hours["background"], 4),
            "state_hours": round(hours["states"], 4),
            "false_events_per_hour_background": _per_hour(false["background"], hours["background"]),
            "false_per_hour_background_95": poisson_interval(false["background"], hours["background"]),
            "false_events_per_hour_states": _per_hour(false["states"], hours["states"]),
            "false_events_per_hour_quiet": _per_hour(false["background"] + false["states"],
                                                     hours["background"] + hours["states"]),
            "recall": float(found / segments) if segments else None,
            "double_counts": float(self.true_events.sum() / found) if found else None,
            "delay_s": _percentiles([d for per in self.delays for d in per]),
            "delay_from_start_s": _percentiles([d for per in self.delays_from_start for d in per]),
            "hours": round(hours["total"], 4),
            "events_by_session": self.by_session,
        }


def _per_hour(count: int, hours: float) -> float | None:
    return count / hours if hours else None


def poisson_interval(count: int, hours: float, level: float = 0.95) -> tuple[float, float] | None:
    """The exact (Garwood) two-sided interval of an event rate per hour, from `count` events
    in `hours`: the rates under which seeing at most / at least `count` has probability
    (1 - level) / 2. None without hours."""
    if not hours:
        return None
    tail = (1 - level) / 2

    def at_least(k: int, rate: float) -> float:  # P(N >= k) for N ~ Poisson(rate > 0)
        return 1.0 - sum(math.exp(j * math.log(rate) - rate - math.lgamma(j + 1)) for j in range(k))

    def solve(rises, lo: float, hi: float) -> float:  # where a rising function crosses 0
        for _ in range(200):
            mid = (lo + hi) / 2
            lo, hi = (lo, mid) if rises(mid) > 0 else (mid, hi)
        return (lo + hi) / 2

    high = count + 10 * math.sqrt(count + 1) + 10
    upper = solve(lambda r: at_least(count + 1, r) - (1 - tail), 0.0, high)  # P(N <= count) = tail
    lower = 0.0 if count == 0 else solve(lambda r: at_least(count, r) - tail, 0.0, high)
    return lower / hours, upper / hours


def _percentiles(values: list[float]) -> dict:
    if not values:
        return {"p50": None, "p90": None}
    p50, p90 = np.percentile(values, [50, 90])
    return {"p50": round(float(p50), 3), "p90": round(float(p90), 3)}


def evaluate_stream(bundle: Bundle, sessions: list[StreamSession], labels: list[str],
                    classifier: Classifier | None = None,
                    postprocess: PostprocessConfig | None = None) -> dict:
    """Event precision/recall, delay and double counts per event class, and false events per
    hour of background and of non-event states.

    `labels` name the sessions' label ids (matched to the bundle's labels by name); session
    data must already be in the bundle's channel order. Without `classifier`, the float model
    on the first installed backend; without `postprocess`, the bundle's settings.
    """
    classifier = classifier or Classifier(bundle, *choose_backend(bundle, None, int8=False))
    cfg = postprocess or PostprocessConfig.for_bundle(bundle)
    scored, windows = [], 0
    for s in sessions:
        ends, _, events = replay(bundle, s.data, classifier, cfg, s.turned)
        windows += len(ends)
        scored.append((s.name, bundle_label_ids(bundle, s.label_ids, labels), events))
    event_classes = announced_classes(bundle.labels, bundle.background_label,
                                      cfg.event_classes or bundle.events)
    return {**score_events(bundle, scored, event_classes), "windows": windows,
            "sessions": len(sessions), "postprocess": cfg.to_dict(),
            "backend": classifier.backend, "model": classifier.kind}
