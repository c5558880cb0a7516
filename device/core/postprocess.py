"""Window outputs -> gesture events, the same code live (`run`) and offline (`stream_eval`).

The bundle gives the settings in seconds (so they survive a change of hop); `for_bundle`
turns them into window counts once, at the hop the detector runs at (`windows_for`), and
`PostprocessConfig` holds those counts.

Only event classes are announced (the bundle's `event_classes`; by default every class but the
background). The others are states: they take part in every decision (a window of `walk`
is not a `jump`) but are never announced. Each event class c has its own settings, the
bundle's defaults unless `postprocess.per_class` (from `gesturekit calibrate`) overrides them:

- average the last `smoothing` probability vectors (`smoothing_s` of windows); c is "on" in
  a window when it is the top class of that average and its averaged confidence reaches
  `threshold`;
- announce c once `min_consecutive` windows in a row are on (`min_on_s` of windows), at
  most once per run of on windows, and never within `refractory_s` of c's previous event.

Classes are decided independently (so each can be calibrated alone); when two fire in the
same window, which needs different smoothing, the more confident one is announced and the
other fires on the next window its run continues. With the same settings for every class
exactly one class can be on at a time.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import numpy as np

from gesturekit.device.core.model_info import (
    DEFAULT_POSTPROCESS,
    ModelInfo,
    announced_classes,
    check_postprocess,
    windows_for,
)


@dataclass
class PostprocessConfig:
    """The detector's settings in windows at one hop (`for_bundle` converts the seconds)."""

    smoothing: int = 3  # windows averaged
    threshold: float = DEFAULT_POSTPROCESS["threshold"]
    min_consecutive: int = 2  # windows in a row that must be on
    refractory_s: float = DEFAULT_POSTPROCESS["refractory_s"]
    per_class: dict[str, dict] = field(default_factory=dict)  # label -> overrides of the four
    event_classes: list[str] | None = None  # None: every class but the background

    @classmethod
    def for_bundle(cls, bundle: ModelInfo, overrides: dict | None = None,
                   hop: int | None = None) -> PostprocessConfig:
        """The bundle's `postprocess` and `event_classes` (seconds), with the non-None
        `overrides` (command-line flags, seconds too) applied, in windows at `hop` (default
        the bundle's); a flag sets its setting for every class."""
        given = {k: v for k, v in (overrides or {}).items() if v is not None}
        values = {**bundle.postprocess, **given}
        values["per_class"] = {label: {k: v for k, v in s.items() if k not in given}
                               for label, s in bundle.postprocess.get("per_class", {}).items()}
        check_postprocess(values, labels=bundle.labels)
        hop, rate = hop or bundle.hop, bundle.sample_rate_hz
        base = in_windows({k: values[k] for k in DEFAULT_POSTPROCESS}, hop, rate)
        per_class = {label: in_windows(s, hop, rate) for label, s in values["per_class"].items()}
        return cls(**base, per_class=per_class, event_classes=bundle.events)

    def settings(self, label: str) -> dict:
        """The four settings that apply to `label`."""
        return {**{k: getattr(self, k) for k in WINDOW_KEYS}, **self.per_class.get(label, {})}

    def to_dict(self) -> dict:
        return {**{k: getattr(self, k) for k in WINDOW_KEYS},
                "per_class": {k: dict(v) for k, v in self.per_class.items()},
                "event_classes": self.event_classes}


WINDOW_KEYS = ("smoothing", "threshold", "min_consecutive", "refractory_s")


def in_windows(settings: dict, hop: int, rate_hz: float) -> dict:
    """Settings in seconds (all four or some) -> the detector's: times that count windows
    become window counts at `hop`; the threshold and the refractory time stay as they are."""
    out = {k: v for k, v in settings.items() if k in ("threshold", "refractory_s")}
    for seconds_key, count_key in (("smoothing_s", "smoothing"), ("min_on_s", "min_consecutive")):
        if seconds_key in settings:
            out[count_key] = windows_for(settings[seconds_key], hop, rate_hz)
    return out


@dataclass
class Event:
    label: str
    index: int
    confidence: float  # smoothed probability of `label`
    time: float  # stream seconds at the last sample of the window that fired
    end_sample: int  # index (since the stream or session started) after that window's last sample


def smoothed(recent: list[np.ndarray]) -> np.ndarray:
    """The mean of the newest probability vectors (numpy's float32 mean; one vector as is)."""
    return np.mean(recent, axis=0) if len(recent) > 1 else recent[-1]


def class_smoothing(cfg: PostprocessConfig, labels: list[str], background: str | None) -> list[int]:
    """Windows averaged for each class: an event class's own `smoothing` (calibrated per
    class), every other class (states, the background) the default."""
    events = set(announced_classes(labels, background, cfg.event_classes))
    return [cfg.settings(label)["smoothing"] if label in events else cfg.smoothing
            for label in labels]


def per_class_smoothed(recent: list[np.ndarray], smoothing: list[int]) -> np.ndarray:
    """Each class's probability as the detector compares it with its threshold: class c
    averaged over its newest `smoothing[c]` windows of `recent` (oldest first, not empty).
    The views show this vector; one global average is wrong for a calibrated bundle."""
    out = np.empty(len(smoothing), np.float32)
    for k in set(smoothing):
        classes = [c for c, kc in enumerate(smoothing) if kc == k]
        out[classes] = smoothed(recent[-k:])[classes]
    return out


class EventDetector:
    """Feed window probabilities in stream order; `update` returns an Event or None."""

    def __init__(self, cfg: PostprocessConfig, labels: list[str], background_index: int | None):
        self.cfg, self.labels, self.background_index = cfg, labels, background_index
        background = labels[background_index] if background_index is not None else None
        events = announced_classes(labels, background, cfg.event_classes)
        self._settings = {labels.index(e): cfg.settings(e) for e in events}
        # Event classes grouped by their smoothing: one average per distinct k per window.
        self._by_smoothing: dict[int, list[int]] = {}
        for c, s in self._settings.items():
            self._by_smoothing.setdefault(s["smoothing"], []).append(c)
        self._recent: deque[np.ndarray] = deque(maxlen=max(self._by_smoothing, default=1))
        self._last_event_time: dict[int, float] = {}
        self.reset()

    def reset(self) -> None:
        """After a gap: windows on either side never smooth or agree together."""
        self._recent.clear()
        self._run_length = dict.fromkeys(self._settings, 0)
        self._announced = dict.fromkeys(self._settings, False)

    def update(self, probs: np.ndarray, time: float, end_sample: int) -> Event | None:
        self._recent.append(probs)
        recent = list(self._recent)
        ready = []  # (confidence, class) ready to fire in this window
        for k, classes in self._by_smoothing.items():
            average = smoothed(recent[-k:])
            top = int(np.argmax(average))
            for c in classes:
                s = self._settings[c]
                if c == top and float(average[c]) >= s["threshold"]:
                    self._run_length[c] += 1
                else:
                    self._run_length[c], self._announced[c] = 0, False
                    continue
                last = self._last_event_time.get(c)
                if (not self._announced[c] and self._run_length[c] >= s["min_consecutive"]
                        and (last is None or time - last >= s["refractory_s"])):
                    ready.append((float(average[c]), c))
        if not ready:
            return None
        confidence, c = max(ready, key=lambda r: (r[0], -r[1]))  # ties: the first class
        self._announced[c] = True
        self._last_event_time[c] = time
        return Event(self.labels[c], c, confidence, time, end_sample)
