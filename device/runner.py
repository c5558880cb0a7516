"""The live runner: serial port -> line parser -> ring buffer -> model -> events.

One thread. It naps while the samples of the next window pile up in the port's buffer (see
`Runner._nap`), then every read takes what the port has (`read(in_waiting or 1)`, 50 ms
timeout); the parser turns it into whole samples, the `StreamWindower` yields a window every
`hop` samples, the classifier normalises/quantises/invokes, and the `EventDetector` decides. A
vanished port is reopened with back-off until a deadline; the windower and the detector
restart after every gap (a reconnect or a silence), so no window spans one.
"""

from __future__ import annotations

import json
import sys
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Protocol, TextIO

import numpy as np
import serial

from gesturekit.device.backends import Classifier
from gesturekit.device.bundle import Bundle, rate_is_off
from gesturekit.device.lineparser import LineParser
from gesturekit.device.ports import DEFAULT_BAUD, find_port, open_port
from gesturekit.device.postprocess import EventDetector, PostprocessConfig
from gesturekit.device.windowing import StreamWindower
from gesturekit.errors import UserError

RATE_PROBE_S = 2.0  # stream seconds before the measured rate is compared with the model's
RATE_PROBE_SAMPLES = 10  # and at least this many samples
WRONG_COUNT_LINES = 3  # numeric lines of another width, before any good one, that prove a mismatch
STATUS_EVERY_S = 0.5
LATENCY_WINDOWS = 10_000  # latency percentiles cover this many recent windows
# Naps between reads: at most this long (Ctrl-C and the status line stay responsive), a
# quarter of the gap (silences are timed to that), and this many samples piled up unread
# (3.7 KB of 77-byte lines; a tty's line buffer holds 4 KB).
MAX_NAP_S = 0.5
MAX_NAP_GAP_FRACTION = 0.25
MAX_NAP_SAMPLES = 48


@dataclass
class RunOptions:
    port: str
    baudrate: int = DEFAULT_BAUD
    duration_s: float | None = None
    first_line_timeout_s: float = 5.0  # no valid sample within this after (re)connecting: error
    reconnect_timeout_s: float = 10.0  # give up when the port stays away this long
    gap_s: float = 1.0  # a silence this long is a gap: the windower restarts
    match: str | None = None  # VID:PID or description: find the board again after a reconnect
    print_windows: bool = False  # also print every window's top label and probabilities
    rate_hz: float | None = None  # the stream's rate when known; else measured


@dataclass
class RunStats:
    windows: int = 0
    events: int = 0
    gaps: int = 0
    reconnects: int = 0
    # The last LATENCY_WINDOWS only: a run of days keeps flat memory (bench/soak.py).
    latencies_ms: deque = field(default_factory=lambda: deque(maxlen=LATENCY_WINDOWS))
    rate_hz: float | None = None
    ended: str = "duration"


class Output(Protocol):
    """Where the runner reports: `Printer` (lines or JSON) or `view.LiveView` (full screen)."""

    status_on: bool  # False: status() shows nothing, so the runner skips computing health

    def emit(self, record: dict, text: str) -> None: ...  # an event, gap, window or the summary
    def warn(self, message: str) -> None: ...
    def status(self, health: dict) -> None: ...  # every STATUS_EVERY_S, see Runner.health
    def samples(self, block: np.ndarray) -> None: ...  # parsed samples (k, C), hot path
    def window(self, probs: np.ndarray) -> None: ...  # every window's output, hot path
    def close(self) -> None: ...


class Printer:
    """Events, gaps and the summary as text or JSON lines on stdout; a status line on a TTY."""

    def __init__(self, as_json: bool, out: TextIO = sys.stdout, err: TextIO = sys.stderr):
        self.as_json, self.out, self.err = as_json, out, err
        self.status_on = err.isatty()
        self._status_shown = False

    def emit(self, record: dict, text: str) -> None:
        self._clear_status()
        self.out.write((json.dumps(record) if self.as_json else text) + "\n")
        self.out.flush()

    def warn(self, message: str) -> None:
        self._clear_status()
        self.err.write(f"gesturekit run: warning: {message}\n")
        self.err.flush()

    def status(self, health: dict) -> None:
        if self.status_on:
            self.err.write("\r\033[K" + status_text(health))
            self.err.flush()
            self._status_shown = True

    def samples(self, block: np.ndarray) -> None:
        """Lines and JSON show no signal."""

    def window(self, probs: np.ndarray) -> None:
        """Windows are printed through `emit` only with --windows."""

    def close(self) -> None:
        self._clear_status()

    def _clear_status(self) -> None:
        if self._status_shown:
            self.err.write("\r\033[K")
            self._status_shown = False


def status_text(health: dict) -> str:
    rate = f"{health['rate_hz']:.0f} Hz" if health["rate_hz"] else "-- Hz"
    lat = health["latency_ms"]
    p = f"p50 {lat['p50']:.1f} / p99 {lat['p99']:.1f} ms" if lat["p50"] is not None else ""
    return (f"{rate} | {health['samples']} samples | {health['bad_lines']} bad | "
            f"{health['windows']} windows | {health['events']} events | {p}")


class Runner:
    """Runs one model on one stream until the duration ends, `stop()` is called or the port
    stays away past the reconnect deadline."""

    def __init__(self, bundle: Bundle, classifier: Classifier, postprocess: PostprocessConfig,
                 options: RunOptions, printer: Output):
        self.bundle, self.classifier, self.options, self.printer = bundle, classifier, options, printer
        self.parser = LineParser(len(bundle.channels))
        self.windower = StreamWindower(bundle.window, bundle.hop, len(bundle.channels))
        self.detector = EventDetector(postprocess, bundle.labels, bundle.background_index)
        self.stats = RunStats()
        self._stop = False
        self._samples_at_connect = 0
        self._arrival_rate_hz: float | None = None  # measured, whatever --rate says
        self._header_checked = False

    def stop(self) -> None:
        """Ask the loop to finish (safe from a signal handler)."""
        self._stop = True

    def run(self) -> dict:
        """Process the stream; returns the summary (also printed)."""
        opts = self.options
        self._port = open_port(opts.port, opts.baudrate)
        self._start = time.monotonic()
        cpu_start = time.process_time()
        end = self._start + opts.duration_s if opts.duration_s is not None else None
        # When the port (re)opened, the newest byte came (estimated) and the last read was.
        self._connected_at = self._last_data = self._last_read = self._start
        self._first_sample_time: float | None = None
        next_status = self._start
        try:
            while not self._stop:
                now = time.monotonic()
                if end is not None and now >= end:
                    break
                try:
                    # Bytes already waiting: the stream runs faster than the nap assumes
                    # (a board that sped up); read at once instead of falling behind.
                    if not self._port.in_waiting:
                        time.sleep(self._nap(None if end is None else end - now))
                    chunk = self._port.read(self._port.in_waiting or 1)
                    if chunk and self._port.in_waiting:  # the rest of the line that woke us
                        chunk += self._port.read(self._port.in_waiting)
                except (serial.SerialException, OSError):
                    if not self._reconnect("disconnected"):
                        break
                    continue
                now = time.monotonic()  # after the nap and the read
                if chunk:
                    self._process(chunk, now, time.perf_counter())
                self._last_read = now
                self._check_deadlines(now)  # junk keeps coming but no sample: the same deadline
                if now >= next_status and self.printer.status_on:
                    self.printer.status(self.health())
                    next_status = now + STATUS_EVERY_S
        finally:
            self._port.close()
        if self._stop:
            self.stats.ended = "interrupted"
        self.parser.finish()
        return self._summary(time.process_time() - cpu_start)

    def _nap(self, left_s: float | None) -> float:
        """Seconds to let samples pile up in the port's buffer before reading: none when the
        next sample completes a window (it is read at once), else until about one and a half
        sample periods before that sample is due. Each wake-up costs about as much CPU as
        parsing a hundred lines, so a window's samples are read in a few large reads, with no
        added decision latency. `left_s`: what remains of --duration."""
        # Never slower than the model's rate: a rate measured low (a silence while measuring)
        # must not make the last sample of a window wait. Until it is measured, assume the
        # stream may run at twice the model's rate.
        model = self.bundle.sample_rate_hz
        rate = max(self._arrival_rate_hz, model) if self._arrival_rate_hz else 2 * model
        samples = min(self.windower.samples_until_window - 1.5, MAX_NAP_SAMPLES)
        if samples < 1:  # a nap shorter than a sample period saves no read
            return 0.0
        longest = min(MAX_NAP_S, MAX_NAP_GAP_FRACTION * self.options.gap_s,
                      left_s if left_s is not None else MAX_NAP_S)
        return max(0.0, min(samples / rate, longest))

    # --- per chunk ---------------------------------------------------------------------------

    def _process(self, chunk: bytes, now: float, t_read: float) -> None:
        """`now`: monotonic time of the read; `t_read`: the same on the latency clock."""
        lines = self.parser.stats.lines
        samples = self.parser.feed(chunk)
        self._check_stream()
        if not len(samples):
            if self.parser.stats.lines != lines:  # a whole junk line; a cut one is not data yet
                self._last_data = now
            return
        # Naps hide when samples came, so it is estimated from their number at the stream's
        # rate. A silence that ended during a nap came before these samples (naps are shorter
        # than a gap, so the ones before it were read already): timed to when the first of
        # them came, the windows restart first. A runner that was merely late to read (a
        # stall) reads a full chunk, so it never looks like a silent board.
        period = 1.0 / (self._arrival_rate_hz or self.bundle.sample_rate_hz)
        self._check_silence(max(now - len(samples) * period, self._last_read),
                            self.parser.stats.samples - len(samples))
        # And the last of them came right after the previous read when they are fewer than
        # the time since gives (the board stopped after them), else now.
        # (Never before a gap's reset, which would switch silence checks off.)
        self._last_data = max(self._connected_at + 1e-6,
                              min(now, self._last_read + len(samples) * period))
        self.printer.samples(samples)
        if self._first_sample_time is None:
            # The rate counts the samples after this first chunk: its own samples may have
            # piled up during a nap, long before `now`.
            self._first_sample_time = now
            self._first_sample_index = self.parser.stats.samples
        self._check_rate(now)
        rate = self.bundle.sample_rate_hz
        for i, window in self.windower.extend(samples):
            end_sample = self.parser.stats.samples - len(samples) + i + 1
            probs = self.classifier(window)
            self.printer.window(probs)
            event = self.detector.update(probs, end_sample / rate, end_sample)
            latency_ms = (time.perf_counter() - t_read) * 1000.0
            self.stats.windows += 1
            self.stats.latencies_ms.append(latency_ms)
            if self.options.print_windows:
                top = int(np.argmax(probs))
                self.printer.emit(
                    {"kind": "window", "sample": end_sample, "label": self.bundle.labels[top],
                     "confidence": float(probs[top]), "probs": [float(p) for p in probs]},
                    f"  window @{end_sample}: {self.bundle.labels[top]} {probs[top]:.3f}")
            if event is not None:
                self.stats.events += 1
                t = time.monotonic() - self._start
                self.printer.emit(
                    {"kind": "event", "time": round(t, 3), "label": event.label,
                     "confidence": round(event.confidence, 4), "latency_ms": round(latency_ms, 3),
                     "sample": end_sample},
                    f"{t:9.2f} s  {event.label:<20} {event.confidence:5.2f}  "
                    f"({latency_ms:.1f} ms)")

    def _check_stream(self) -> None:
        """Channel mismatch (an error) and header names (a warning), from what the parser saw."""
        stats = self.parser.stats
        if stats.samples == self._samples_at_connect and stats.wrong_counts:
            width, lines = stats.wrong_counts.most_common(1)[0]
            if lines >= WRONG_COUNT_LINES:
                raise UserError(
                    f"port {self.options.port} sends {width} values per line but the model "
                    f"{self.bundle.root} expects {len(self.bundle.channels)} "
                    f"({', '.join(self.bundle.channels)})")
        if self.parser.header and not self._header_checked:
            self._header_checked = True
            if self.parser.header != self.bundle.channels:
                self.printer.warn(f"stream header {self.parser.header} differs from the model's "
                                  f"channels {self.bundle.channels}; using the column order")

    def _check_rate(self, now: float) -> None:
        """The stream's rate: --rate when given, else measured. The runner times its naps
        and silences by the measured rate either way (a demo plays 4x faster than --rate)."""
        if self._arrival_rate_hz is not None:
            return
        if self.stats.rate_hz is None and self.options.rate_hz:
            self.stats.rate_hz = self.options.rate_hz
            self._warn_rate()
        # Samples after the first chunk, over the time since it was read.
        received = self.parser.stats.samples - self._first_sample_index
        if now - self._first_sample_time < RATE_PROBE_S or received < RATE_PROBE_SAMPLES:
            return
        self._arrival_rate_hz = received / (now - self._first_sample_time)
        if self.stats.rate_hz is None:
            self.stats.rate_hz = self._arrival_rate_hz
            self._warn_rate()

    def _warn_rate(self) -> None:
        model = self.bundle.sample_rate_hz
        if rate_is_off(self.stats.rate_hz, model):
            self.printer.warn(f"stream runs at about {self.stats.rate_hz:.1f} Hz but the model "
                              f"expects {model:g} Hz; events may be wrong")

    def _check_deadlines(self, now: float) -> None:
        if self.parser.stats.samples == self._samples_at_connect:
            if now - self._connected_at > self.options.first_line_timeout_s:
                self._no_valid_line()
        else:
            self._check_silence(now)

    def _check_silence(self, now: float, sample: int | None = None) -> None:
        """No data for --gap seconds since data flowed: a gap, the windows restart."""
        if self._last_data > self._connected_at and now - self._last_data > self.options.gap_s:
            self._gap("silence", now - self._last_data, sample)
            self._connected_at = self._last_data = now

    def _no_valid_line(self) -> None:
        s = self.parser.stats
        seen = (f"{s.bad_lines} bad lines ({', '.join(f'{k}: {v}' for k, v in s.bad_reasons.items())})"
                if s.bad_lines else "nothing parseable")
        raise UserError(f"port {self.options.port}: no valid sample line within "
                        f"{self.options.first_line_timeout_s:g} s ({seen}); check the baud rate "
                        f"(--baud) and that the board prints one line of "
                        f"{len(self.bundle.channels)} numbers per sample")

    # --- gaps and reconnects ------------------------------------------------------------------

    def _gap(self, reason: str, seconds: float, sample: int | None = None) -> None:
        """`sample`: where the stream stopped, when samples after the gap are already parsed."""
        sample = self.parser.stats.samples if sample is None else sample
        self.windower.reset()
        self.detector.reset()
        self.stats.gaps += 1
        t = time.monotonic() - self._start
        self.printer.emit({"kind": "gap", "time": round(t, 3), "reason": reason,
                           "seconds": round(seconds, 3), "sample": sample},
                          f"{t:9.2f} s  -- gap ({reason}, {seconds:.1f} s): windows restart --")

    def _reconnect(self, reason: str) -> bool:
        """Reopen the port with back-off; False when it stays away past the deadline."""
        lost = time.monotonic()
        self._port.close()
        self.parser.reset()
        delay = 0.05
        while not self._stop and time.monotonic() - lost < self.options.reconnect_timeout_s:
            url = (find_port(self.options.match) if self.options.match else None) or self.options.port
            try:
                self._port = open_port(url, self.options.baudrate)
            except UserError:
                time.sleep(delay)
                delay = min(2 * delay, 1.0)
                continue
            self.stats.reconnects += 1
            self._gap(reason, time.monotonic() - lost)
            self._connected_at = self._last_data = self._last_read = time.monotonic()
            self._samples_at_connect = self.parser.stats.samples
            return True
        self.stats.ended = reason
        return False

    # --- reporting ----------------------------------------------------------------------------

    def _percentiles(self) -> dict:
        if not self.stats.latencies_ms:
            return {"p50": None, "p99": None}
        p50, p99 = np.percentile(self.stats.latencies_ms, [50, 99])
        return {"p50": round(float(p50), 3), "p99": round(float(p99), 3)}

    def health(self) -> dict:
        """The stream's numbers so far, for the status line and the view."""
        s = self.parser.stats
        return {"samples": s.samples, "bad_lines": s.bad_lines, "windows": self.stats.windows,
                "events": self.stats.events, "gaps": self.stats.gaps,
                "reconnects": self.stats.reconnects, "rate_hz": self.stats.rate_hz,
                "latency_ms": self._percentiles()}

    def _summary(self, cpu_s: float) -> dict:
        s = self.parser.stats
        summary = {
            "kind": "summary", "samples": s.samples, "bad_lines": s.bad_lines,
            "windows": self.stats.windows, "events": self.stats.events,
            "latency_ms": self._percentiles(), "gaps": self.stats.gaps,
            "reconnects": self.stats.reconnects, "ended": self.stats.ended,
            "seconds": round(time.monotonic() - self._start, 3),
            "rate_hz": round(self.stats.rate_hz, 2) if self.stats.rate_hz else None,
            "backend": self.classifier.backend, "model": self.classifier.kind,
            "cpu_s": round(cpu_s, 4), "invoke_s": round(self.classifier.invoke_seconds, 4),
            "lines": s.to_dict(),
        }
        lat = summary["latency_ms"]
        self.printer.emit(summary, (
            f"summary: {s.samples} samples, {s.bad_lines} bad lines, {self.stats.windows} windows,"
            f" {self.stats.events} events, latency p50 {lat['p50']} ms p99 {lat['p99']} ms, "
            f"{self.stats.gaps} gaps, {self.stats.reconnects} reconnects ({self.stats.ended})"))
        return summary
