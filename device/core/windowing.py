"""Window cutting, window labels and normalisation: the one implementation that training,
offline evaluation and the live runner all call, so they preprocess identically.

A window starts at sample 0 and every `hop` samples after; a session of N samples gives
1 + (N - window) // hop windows. The live runner's `StreamWindower` emits exactly the windows
`window_starts` cuts from the same samples, and starts again after a gap.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

UNLABELLED = -1


def window_starts(n_samples: int, window: int, hop: int) -> np.ndarray:
    """First sample index of every whole window in a session of `n_samples`."""
    if window <= 0 or hop <= 0:
        raise ValueError(f"window and hop must be positive, got {window} and {hop}")
    if n_samples < window:
        return np.zeros(0, dtype=np.int64)
    return np.arange(0, n_samples - window + 1, hop, dtype=np.int64)


def cut_windows(data: np.ndarray, window: int, hop: int) -> np.ndarray:
    """Windows (W, window, C) of samples (N, C), as a copy."""
    starts = window_starts(len(data), window, hop)
    if len(starts) == 0:
        return np.zeros((0, window, data.shape[1]), dtype=data.dtype)
    view = np.lib.stride_tricks.sliding_window_view(data, window, axis=0)  # (N-w+1, C, w)
    return np.ascontiguousarray(view[starts].transpose(0, 2, 1))


def window_labels(label_ids: np.ndarray, window: int, hop: int, n_classes: int,
                  purity: float) -> np.ndarray:
    """Majority label of each window, or UNLABELLED when it covers less than `purity` of it.

    `label_ids` (N,) holds class indices, UNLABELLED for samples without a class. Windows
    that mix too many labels (or are mostly unlabelled) get UNLABELLED and are left out of
    training; callers count them.
    """
    starts = window_starts(len(label_ids), window, hop)
    if len(starts) == 0:
        return np.zeros(0, dtype=np.int64)
    # Per-class counts inside every window from a cumulative sum: (W, n_classes).
    onehot = np.zeros((len(label_ids) + 1, n_classes), dtype=np.int32)
    labelled = label_ids >= 0
    onehot[1:][labelled, label_ids[labelled]] = 1
    cumulative = np.cumsum(onehot, axis=0)
    counts = cumulative[starts + window] - cumulative[starts]
    best = counts.argmax(axis=1)
    pure = counts[np.arange(len(starts)), best] >= purity * window
    return np.where(pure, best, UNLABELLED)


def label_runs(labels: np.ndarray) -> list[tuple[int, int]]:
    """(first, end) of every run of equal values in `labels` (ids or names), end exclusive."""
    if not len(labels):
        return []
    change = np.flatnonzero(labels[1:] != labels[:-1]) + 1
    starts, ends = np.r_[0, change], np.r_[change, len(labels)]
    return [(int(a), int(b)) for a, b in zip(starts, ends, strict=True)]


@dataclass
class Normalization:
    """Per-channel standardisation with statistics from the training split only."""

    mean: np.ndarray
    std: np.ndarray

    @classmethod
    def fit(cls, data: np.ndarray) -> Normalization:
        """Statistics over every sample of `data` (..., C)."""
        flat = data.reshape(-1, data.shape[-1]).astype(np.float64)
        std = flat.std(axis=0)
        return cls(flat.mean(axis=0).astype(np.float32),
                   np.where(std > 1e-8, std, 1.0).astype(np.float32))

    def apply(self, x: np.ndarray) -> np.ndarray:
        return ((x - self.mean) / self.std).astype(np.float32)

    def to_dict(self) -> dict:
        return {"mean": [float(v) for v in self.mean], "std": [float(v) for v in self.std]}

    @classmethod
    def from_dict(cls, d: dict) -> Normalization:
        return cls(np.asarray(d["mean"], dtype=np.float32), np.asarray(d["std"], dtype=np.float32))


class StreamWindower:
    """Ring buffer for the live stream: push samples, get a window every `hop` samples.

    The first window ends at the `window`-th sample after a (re)start, then every `hop`
    samples, exactly as `window_starts` cuts a recording. `reset()` after a gap, so no window
    ever spans it.
    """

    def __init__(self, window: int, hop: int, n_channels: int):
        self.window, self.hop = window, hop
        # Twice the window, so a whole window is always one contiguous slice.
        self._buf = np.zeros((2 * window, n_channels), dtype=np.float32)
        self.reset()

    def reset(self) -> None:
        self._end = self.window  # write position; the last `window` samples sit before it
        self._until = self.window  # samples still to come before the next window is due

    @property
    def samples_until_window(self) -> int:
        """Samples still to come before the next window is due (1 = the next one)."""
        return self._until

    def extend(self, block: np.ndarray) -> list[tuple[int, np.ndarray]]:
        """Add samples (k, C); returns (i, window) for each window due, `i` the index in
        `block` of the window's last sample and `window` a (window, C) copy."""
        due = []
        i = 0
        while i < len(block):
            take = min(self._until, len(block) - i)  # up to the next window, in one copy
            self._write(block[i: i + take])
            i += take
            self._until -= take
            if self._until == 0:
                due.append((i - 1, self._buf[self._end - self.window: self._end].copy()))
                self._until = self.hop
        return due

    def push(self, sample: np.ndarray) -> np.ndarray | None:
        """Add one sample (C,); returns the window when one is due, else None."""
        due = self.extend(sample[None])
        return due[0][1] if due else None

    def _write(self, rows: np.ndarray) -> None:
        if len(rows) >= self.window:  # only the newest `window` rows can reach a window
            self._buf[: self.window] = rows[-self.window:]
            self._end = self.window
            return
        if self._end + len(rows) > len(self._buf):  # slide the newest window to the front
            self._buf[: self.window] = self._buf[self._end - self.window: self._end]
            self._end = self.window
        self._buf[self._end: self._end + len(rows)] = rows
        self._end += len(rows)
