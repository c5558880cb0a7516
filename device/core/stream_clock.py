"""The runner's timing: how long to nap before a read, when a silence is a gap, and the rate
the stream's samples arrive at.

Pure: every method takes the time (seconds of a monotonic clock) as an argument; nothing here
sleeps or reads a port. The runner tells it what each read brought (`samples`, `junk_line`,
`read_done`) and a (re)connect (`connected`), and asks how long to nap (`nap`).

Naps hide when samples came, so it is estimated from their number at the arrival rate: a
silence that ended during a nap came before the samples just read (naps are shorter than a
gap, so the ones before it were read already), and a runner that was merely late to read (a
stall) reads a full chunk, so it never looks like a silent board.
"""

from __future__ import annotations

from typing import NamedTuple

RATE_PROBE_S = 2.0  # stream seconds before the arrival rate is measured
RATE_PROBE_SAMPLES = 10  # and at least this many samples
# Naps between reads: at most this long (Ctrl-C and the status line stay responsive), a
# quarter of the gap (silences are timed to that), and this many samples piled up unread
# (3.7 KB of 77-byte lines; a tty's line buffer holds 4 KB).
MAX_NAP_S = 0.5
MAX_NAP_GAP_FRACTION = 0.25
MAX_NAP_SAMPLES = 48


class Arrival(NamedTuple):
    """What one read's samples say about the stream."""

    silence_s: float | None  # a gap ended just before these samples: how long it lasted
    rate_hz: float | None  # the arrival rate, when these samples complete a measurement


class StreamClock:
    """The timing of one stream across its (re)connects and gaps (silences over `gap_s`)."""

    def __init__(self, model_rate_hz: float, gap_s: float, first_line_timeout_s: float):
        self.model_rate_hz = model_rate_hz
        self.gap_s = gap_s
        self.first_line_timeout_s = first_line_timeout_s
        self.connected_at = 0.0  # when the port last (re)opened
        self.last_read = 0.0  # when the last read returned
        self.last_data = 0.0  # when the newest line came (estimated), or the last gap ended
        self.sampled = False  # a sample came since the port (re)opened
        self.flowing = False  # a line (sample or junk) came since the (re)connect or gap
        self.rate_hz: float | None = None  # the arrival rate; the previous gap's until measured
        self._probing = False  # measuring the rate since the last gap
        self._probe_start: float | None = None  # when the first chunk after the gap was read
        self._probe_samples = 0  # samples read after that chunk

    def connected(self, now: float) -> None:
        """The port (re)opened: the first-line deadline starts again, and the stream restarts."""
        self.connected_at = self.last_read = now
        self.sampled = False
        self._restart(now)

    def nap(self, samples_until_window: int, left_s: float | None = None) -> float:
        """Seconds to let samples pile up in the port's buffer before reading: none when the
        next sample completes a window (it is read at once), else until about one and a half
        sample periods before that sample is due. Each wake-up costs about as much CPU as
        parsing a hundred lines, so a window's samples are read in a few large reads, with no
        added decision latency. `left_s`: what remains of --duration."""
        # Never slower than the model's rate: a rate measured low (a silence shorter than a
        # gap while measuring) must not make the last sample of a window wait. Until it is
        # measured, assume the stream may run at twice the model's rate.
        model = self.model_rate_hz
        rate = max(self.rate_hz, model) if self.rate_hz else 2 * model
        samples = min(samples_until_window - 1.5, MAX_NAP_SAMPLES)
        if samples < 1:  # a nap shorter than a sample period saves no read
            return 0.0
        longest = min(MAX_NAP_S, MAX_NAP_GAP_FRACTION * self.gap_s,
                      left_s if left_s is not None else MAX_NAP_S)
        return max(0.0, min(samples / rate, longest))

    def samples(self, count: int, now: float) -> Arrival:
        """`count` samples came in the read that returned at `now`."""
        period = 1.0 / (self.rate_hz or self.model_rate_hz)
        # A silence that ended during the nap came before these samples: timed to when the
        # first of them came (no earlier than the previous read), so the windows restart first.
        first_at = max(now - count * period, self.last_read)
        silence = self._silence(first_at)
        # And the last of them came right after the previous read (after the gap, when one
        # ended) when they are fewer than the time since gives (the board stopped after
        # them), else now.
        start = self.last_read if silence is None else first_at
        self.last_data = min(now, start + count * period)
        self.sampled = self.flowing = True
        return Arrival(silence, self._measure(count, now))

    def junk_line(self, now: float) -> None:
        """A whole line that is no sample came (junk, a header): the board is not silent."""
        self.last_data = now
        self.flowing = True

    def read_done(self, now: float) -> float | None:
        """A read returned at `now`, with or without data; the silence's length when the stream
        has been silent for over `gap_s` (a gap: the stream restarts at `now`), else None."""
        self.last_read = now
        return self._silence(now)

    def first_line_overdue(self, now: float) -> bool:
        """No sample within `first_line_timeout_s` of the (re)connect, junk or not."""
        return not self.sampled and now - self.connected_at > self.first_line_timeout_s

    def _silence(self, now: float) -> float | None:
        # Only once samples flowed since the (re)connect: before the first one the first-line
        # deadline applies, and a gap would restart nothing.
        if not (self.sampled and self.flowing) or now - self.last_data <= self.gap_s:
            return None
        seconds = now - self.last_data
        self._restart(now)
        return seconds

    def _restart(self, now: float) -> None:
        """A (re)connect or a gap at `now`: silences count from here, the rate is measured again."""
        self.last_data = now
        self.flowing = False
        self._probing = True
        self._probe_start = None
        self._probe_samples = 0

    def _measure(self, count: int, now: float) -> float | None:
        """The arrival rate once RATE_PROBE_S and RATE_PROBE_SAMPLES have passed since the
        first chunk after the last gap; it counts the samples after that chunk, whose own
        samples may have piled up during a nap, long before `now`."""
        if not self._probing:
            return None
        if self._probe_start is None:
            self._probe_start = now
            return None
        self._probe_samples += count
        if now - self._probe_start < RATE_PROBE_S or self._probe_samples < RATE_PROBE_SAMPLES:
            return None
        self._probing = False
        self.rate_hz = self._probe_samples / (now - self._probe_start)
        return self.rate_hz
