"""Window outputs -> gesture events, the same code live (`run`) and offline (`stream_eval`).

Per window: average the last `smoothing` probability vectors, take the top class when its
averaged confidence reaches `threshold`, and announce it once `min_consecutive` windows in a
row agree, at most once per run of agreeing windows and never within `refractory_s` of the
previous event. The background class is never announced.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

from gesturekit.device.bundle import DEFAULT_POSTPROCESS, Bundle, check_postprocess


@dataclass
class PostprocessConfig:
    smoothing: int = DEFAULT_POSTPROCESS["smoothing"]
    threshold: float = DEFAULT_POSTPROCESS["threshold"]
    min_consecutive: int = DEFAULT_POSTPROCESS["min_consecutive"]
    refractory_s: float = DEFAULT_POSTPROCESS["refractory_s"]

    @classmethod
    def for_bundle(cls, bundle: Bundle, overrides: dict | None = None) -> PostprocessConfig:
        """The bundle's `postprocess` with the non-None `overrides` (command-line flags) applied."""
        values = {**bundle.postprocess, **{k: v for k, v in (overrides or {}).items() if v is not None}}
        return cls(**check_postprocess(values))

    def to_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass
class Event:
    label: str
    index: int
    confidence: float  # smoothed probability of `label`
    time: float  # stream seconds at the last sample of the window that fired
    end_sample: int  # index (since the stream or session started) after that window's last sample


class EventDetector:
    """Feed window probabilities in stream order; `update` returns an Event or None."""

    def __init__(self, cfg: PostprocessConfig, labels: list[str], background_index: int | None):
        self.cfg, self.labels, self.background_index = cfg, labels, background_index
        self._recent: deque[np.ndarray] = deque(maxlen=cfg.smoothing)
        self._last_event_time: float | None = None
        self.reset()

    def reset(self) -> None:
        """After a gap: windows on either side never smooth or agree together."""
        self._recent.clear()
        self._candidate: int | None = None
        self._run_length = 0
        self._announced = False

    def update(self, probs: np.ndarray, time: float, end_sample: int) -> Event | None:
        self._recent.append(probs)
        smoothed = np.mean(self._recent, axis=0) if len(self._recent) > 1 else probs
        top = int(np.argmax(smoothed))
        confidence = float(smoothed[top])
        candidate = top if confidence >= self.cfg.threshold else None
        if candidate == self._candidate:
            self._run_length += 1
        else:
            self._candidate, self._run_length, self._announced = candidate, 1, False
        if (candidate is None or candidate == self.background_index or self._announced
                or self._run_length < self.cfg.min_consecutive):
            return None
        if self._last_event_time is not None and time - self._last_event_time < self.cfg.refractory_s:
            return None
        self._announced = True
        self._last_event_time = time
        return Event(self.labels[top], top, confidence, time, end_sample)
