"""The search behind `gesturekit calibrate`: every setting of a grid, per event class, scored fast.

Replaying every setting through `EventDetector` and `score_events` would take hours, so this
module restates them for one class at a time on precomputed arrays: the averaged outputs once
per smoothing, the "on" windows once per threshold, then the detector's firing rule and the
scoring rules per setting. It is the same decision and the same count as the real pair, not an
approximation: `tests/test_calibrate_search.py` replays random streams and settings through
`EventDetector` (the class announced alone) and `score_events` and asserts equal figures. What
an event counts as (true, or false in background, states or other events' segments) comes
from `stream_eval.SessionTruth`, the one rule both use.

Settings are in seconds (they survive a change of hop): the grid's times are turned into
window counts at the bundle's hop, duplicates dropped, and written back as count x hop.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np

from gesturekit.device.core.model_info import windows_for
from gesturekit.device.core.postprocess import smoothed
from gesturekit.device.core.stream_eval import SessionTruth

SMOOTHING_S = (0.0, 0.3, 0.6, 1.0, 1.5, 2.0, 3.0)  # averaged outputs of this long
MIN_ON_S = (0.0, 0.3, 0.6, 1.0, 1.5)  # on this long before an event
THRESHOLDS = tuple(round(0.3 + 0.05 * i, 2) for i in range(14)) + (0.97, 0.99)
REFRACTORY_S = (0.0, 0.5, 1.0, 2.0, 4.0, 8.0)
KINDS = ("true", "background", "states", "event_segments")


@dataclass
class Session:
    """One calibration session: per-sample bundle label ids, window ends, outputs (W, K)."""

    ids: np.ndarray
    ends: np.ndarray
    probs: np.ndarray


@dataclass
class Option:
    """One setting of one class and what it scores on the calibration sessions."""

    settings: dict  # in seconds, as model.json holds them
    found: int  # segments with an event
    segments: int
    events: int
    true_events: int
    false_background: int
    false_states: int
    delays: list[float]  # from each found segment's end
    neighbours: float = 0.0  # the objective averaged with the next thresholds down and up

    @property
    def false_events(self) -> int:
        return self.events - self.true_events

    @property
    def recall(self) -> float:
        return self.found / self.segments if self.segments else 0.0

    @property
    def double_counted(self) -> int:
        """True events past the first in a segment: a user hears one gesture twice."""
        return max(0, self.true_events - self.found)

    @property
    def net_recall(self) -> float:
        """Segments found less the second announcements of one, per segment: a gesture heard
        twice costs as much as one missed."""
        return (self.found - self.double_counted) / self.segments if self.segments else 0.0

    @property
    def precision(self) -> float:
        """Events that announce a segment for the first time, per event (a second event in the
        same segment is as wrong to a user as a false one)."""
        return (self.true_events - self.double_counted) / self.events if self.events else 0.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0

    def preference(self) -> tuple:
        """Among equal objectives: a setting whose neighbours score well too (the middle of a
        plateau, not its edge), fewer false events and double counts, earlier, stricter."""
        return (round(self.neighbours, 9), -self.false_events - self.double_counted,
                -float(np.mean(self.delays or [0.0])), self.settings["threshold"])


def grid_counts(hop: int, rate_hz: float) -> tuple[list[int], list[int]]:
    """The distinct smoothing and minimum-on window counts the grid's seconds give at `hop`."""
    smoothing = sorted({windows_for(s, hop, rate_hz) for s in SMOOTHING_S})
    min_on = sorted({windows_for(s, hop, rate_hz) for s in MIN_ON_S})
    return smoothing, min_on


def smoothed_outputs(sessions: list[Session], counts: list[int]) -> dict[int, list]:
    """For each smoothing count, per session: (top class, averaged probabilities) of every
    window, averaged exactly as `EventDetector` does (numpy's float32 mean)."""
    averages = {k: [] for k in counts}
    for s, k in itertools.product(sessions, counts):
        avg = np.array([smoothed(list(s.probs[max(0, i - k + 1): i + 1]))
                        for i in range(len(s.probs))]).reshape(len(s.probs), -1)
        averages[k].append((avg.argmax(axis=1), avg))
    return averages


@dataclass
class _ClassWindows:
    """Per window of one session, for one class: the class's segments it overlaps and what
    an event of the class there would count as (an index into KINDS)."""

    segments: list[tuple[int, int]]  # (first, end) of the class's segments
    overlaps: list[list[int]]
    kinds: np.ndarray


def _class_windows(truth: SessionTruth, ends: np.ndarray, window: int, c: int) -> _ClassWindows:
    segments = [(a, b) for cls, a, b in truth.segments if cls == c]
    overlaps = [[j for j, (first, last) in enumerate(segments) if end - window < last and first < end]
                for end in ends]
    kinds = np.array([KINDS.index(truth.kind(c, int(end) - window, int(end))) for end in ends],
                     np.int8)
    return _ClassWindows(segments, overlaps, kinds)


def fired_windows(on: np.ndarray, times: np.ndarray, n: int, refractory_s: float) -> list[int]:
    """Windows where one class fires, as `EventDetector` decides for it: once `n` windows in a
    row are on, at most once per run of on windows, never within `refractory_s` of the last."""
    fired, last = [], None
    padded = np.concatenate([[False], on, [False]])
    edges = np.flatnonzero(np.diff(padded.astype(np.int8)))
    for first, end in zip(edges[::2], edges[1::2], strict=True):
        for i in range(first + n - 1, end):
            if last is None or times[i] - last >= refractory_s:
                fired.append(i)
                last = times[i]
                break
    return fired


def class_options(sessions: list[Session], truths: list[SessionTruth], c: int, window: int,
                  hop: int, rate_hz: float, averages: dict) -> list[Option]:
    """Every grid setting of class c, scored on the sessions."""
    hop_s = hop / rate_hz
    smoothing, min_on = grid_counts(hop, rate_hz)
    per_session = [_class_windows(t, s.ends, window, c) for s, t in zip(sessions, truths, strict=True)]
    options = []
    for k, t in itertools.product(smoothing, THRESHOLDS):
        ons = [(top == c) & (conf[:, c] >= t) for top, conf in averages[k]]
        for n, refractory in itertools.product(min_on, REFRACTORY_S):
            settings = {"smoothing_s": round(k * hop_s, 4), "threshold": t,
                        "min_on_s": round(n * hop_s, 4), "refractory_s": refractory}
            options.append(_score(settings, ons, sessions, rate_hz, per_session, n, refractory))
    return options


def _score(settings: dict, ons: list, sessions: list[Session], rate_hz: float,
           per_session: list[_ClassWindows], n: int, refractory: float) -> Option:
    """One setting's figures, counted as `score_events` counts them."""
    found = segments = events = 0
    counts = np.zeros(len(KINDS), int)
    delays: list[float] = []
    for on, s, cw in zip(ons, sessions, per_session, strict=True):
        fired = fired_windows(on, s.ends / rate_hz, n, refractory)
        first_hit: dict[int, int] = {}  # segment -> the first event overlapping it
        for i in fired:
            for j in cw.overlaps[i]:
                first_hit.setdefault(j, i)
        segments += len(cw.segments)
        found += len(first_hit)
        delays += [(int(s.ends[i]) - cw.segments[j][1]) / rate_hz for j, i in first_hit.items()]
        events += len(fired)
        if fired:
            counts += np.bincount(cw.kinds[fired], minlength=len(KINDS))
    return Option(settings, found, segments, events, int(counts[0]), int(counts[1]),
                  int(counts[2]), delays)


def rate_neighbours(options: list[Option], objective) -> None:
    """Set each option's `neighbours`: `objective` averaged over it and the options one step
    away on the threshold, smoothing and minimum-on axes (0 past the grid's ends: an edge is
    no middle). A few calibration people tie many settings; the middle of the plateau holds
    for the next person, its strictest corner does not."""
    axes = [sorted({o.settings[key] for o in options}) for key in ("smoothing_s", "threshold",
                                                                  "min_on_s")]
    grid = {tuple(o.settings.values()): o for o in options}
    for o in options:
        k, t, n, r = o.settings.values()
        at = [axis.index(v) for axis, v in zip(axes, (k, t, n), strict=True)]
        near = []
        for axis, step in itertools.product(range(3), (-1, 1)):
            i = at[axis] + step
            if 0 <= i < len(axes[axis]):
                point = [k, t, n]
                point[axis] = axes[axis][i]
                near.append(objective(grid[(point[0], point[1], point[2], r)]))
            else:
                near.append(0.0)
        o.neighbours = (objective(o) + sum(near)) / (1 + len(near))


def choose(options: dict[str, list[Option]], budget: float | None,
           hours: dict[str, float]) -> tuple[dict[str, Option], bool]:
    """The setting per class and whether the budget holds: best F1 each (no budget), or the
    most net recall (`Option.net_recall`) within the budget of false events per hour of
    background and of non-event states, summed over classes (when no setting keeps within it:
    the fewest false events)."""
    if budget is None:
        for opts in options.values():
            rate_neighbours(opts, lambda o: o.f1)
        return {c: max(opts, key=lambda o: (o.f1, o.preference())) for c, opts in options.items()}, True
    for opts in options.values():
        rate_neighbours(opts, lambda o: o.net_recall)
    # Allowed false events on these sessions; no hours of a kind means none can fall there.
    limit_b = math.floor(budget * hours["background"] + 1e-9)
    limit_s = math.floor(budget * hours["states"] + 1e-9)
    # Knapsack over classes in two budgets: (false in background, in states) -> best so far,
    # scored by (sum of net recall, fewer false events of any kind and double counts, sum of
    # neighbours' net recall).
    best: dict[tuple[int, int], tuple[tuple, dict[str, Option]]] = {(0, 0): ((0.0, 0, 0.0), {})}
    for c, opts in options.items():
        useful: dict[tuple[int, int], Option] = {}  # the best option per false-event cost
        for o in opts:
            key = (o.false_background, o.false_states)
            if key[0] <= limit_b and key[1] <= limit_s and (
                    key not in useful or (o.net_recall, o.preference()) >
                    (useful[key].net_recall, useful[key].preference())):
                useful[key] = o
        step: dict[tuple[int, int], tuple[tuple, dict[str, Option]]] = {}
        for (b, s), (score, picks) in best.items():
            for (ob, os_), o in useful.items():
                key = (b + ob, s + os_)
                if key[0] > limit_b or key[1] > limit_s:
                    continue
                new = (score[0] + o.net_recall, score[1] - o.false_events - o.double_counted,
                       score[2] + o.neighbours)
                if key not in step or new > step[key][0]:
                    step[key] = (new, {**picks, c: o})
        best = step
    if not best:
        fewest = {c: min(opts, key=lambda o: (o.false_background + o.false_states, -o.net_recall))
                  for c, opts in options.items()}
        return fewest, False
    return max(best.values(), key=lambda v: v[0])[1], True
