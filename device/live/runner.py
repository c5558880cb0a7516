"""The live runner: serial port -> line parser -> ring buffer -> model -> events.

One thread. It naps while the samples of the next window pile up in the port's buffer (see
`StreamClock.nap`), then every read takes what the port has (`read(in_waiting or 1)`, 50 ms
timeout); the parser turns it into whole samples, the `StreamWindower` yields a window every
`hop` samples, the classifier normalises/quantises/invokes, and the `EventDetector` decides. A
vanished port is reopened with back-off until a deadline; the windower and the detector
restart after every gap (a reconnect, or a silence the `StreamClock` finds), so no window
spans one.
"""

from __future__ import annotations

import json
import sys
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol, TextIO

import numpy as np
import serial

from gesturekit.device.core.backends import Classifier
from gesturekit.device.core.bundle import Bundle
from gesturekit.device.core.frame import StreamFrame
from gesturekit.device.core.lineparser import LineParser
from gesturekit.device.core.model_info import channel_order, rate_is_off
from gesturekit.device.core.postprocess import EventDetector, PostprocessConfig
from gesturekit.device.core.stream_clock import StreamClock
from gesturekit.device.core.windowing import StreamWindower
from gesturekit.device.live.ports import DEFAULT_BAUD, find_port, open_port
from gesturekit.errors import UserError

WRONG_COUNT_LINES = 3  # numeric lines of another width, before any good one, that prove a mismatch
STATUS_EVERY_S = 0.5
LATENCY_WINDOWS = 10_000  # latency percentiles cover this many recent windows


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

    def __init__(self, as_json: bool, out: TextIO | None = None, err: TextIO | None = None):
        # sys.stdout and sys.stderr as they are when the run starts (a redirect counts).
        self.as_json, self.out, self.err = as_json, out or sys.stdout, err or sys.stderr
        self.status_on = self.err.isatty()
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


def latency_percentiles(latencies_ms: deque) -> dict:
    """p50 and p99 of window latencies (the summary's, the status line's, the page's)."""
    if not latencies_ms:
        return {"p50": None, "p99": None}
    p50, p99 = np.percentile(latencies_ms, [50, 99])
    return {"p50": round(float(p50), 3), "p99": round(float(p99), 3)}


class Runner:
    """Runs one model on one stream until the duration ends, `stop()` is called or the port
    stays away past the reconnect deadline. `clock` and `sleep` are the time it runs on
    (a test's virtual time runs minutes of stream in milliseconds)."""

    def __init__(self, bundle: Bundle, classifier: Classifier, postprocess: PostprocessConfig,
                 options: RunOptions, printer: Output, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep):
        self.bundle, self.classifier, self.options, self.printer = bundle, classifier, options, printer
        self.parser = LineParser(len(bundle.channels))
        self.windower = StreamWindower(bundle.window, bundle.hop, len(bundle.channels))
        self.detector = EventDetector(postprocess, bundle.labels, bundle.background_index)
        self.timing = StreamClock(bundle.sample_rate_hz, options.gap_s, options.first_line_timeout_s)
        self.stats = RunStats()
        self._clock, self._sleep = clock, sleep
        self._port: serial.Serial | None = None
        self._start = 0.0  # when the run began, on `clock`
        self._stop = False
        self._header_checked = False
        self._columns: list[int] | None = None  # the model's channels in a reordered stream
        # The model's reference-pose frame: set from the stream's first seconds, again on request
        self.frame = (StreamFrame(bundle.reference_pose, bundle.channels, bundle.units,
                                  bundle.sample_rate_hz) if bundle.reference_pose else None)
        self._frame_requested = False

    def stop(self) -> None:
        """Ask the loop to finish (safe from a signal handler)."""
        self._stop = True

    def request_frame(self) -> None:
        """Set the reference-pose frame again from the next samples: the user holds the pose
        once more (safe from a signal handler; `run` maps SIGUSR1 here)."""
        self._frame_requested = True

    def run(self) -> dict:
        """Process the stream; returns the summary (also printed)."""
        opts = self.options
        self._port = open_port(opts.port, opts.baudrate)
        self._start = next_status = self._clock()
        cpu_start = time.process_time()
        end = self._start + opts.duration_s if opts.duration_s is not None else None
        self.timing.connected(self._start)
        self._announce_frame(0)
        try:
            while not self._stop:
                now = self._clock()
                if end is not None and now >= end:
                    break
                try:
                    # Bytes already waiting: the stream runs faster than the nap assumes
                    # (a board that sped up); read at once instead of falling behind.
                    if not self._port.in_waiting:
                        self._sleep(self.timing.nap(self.windower.samples_until_window,
                                                    None if end is None else end - now))
                    chunk = self._port.read(self._port.in_waiting or 1)
                    if chunk and self._port.in_waiting:  # the rest of the line that woke us
                        chunk += self._port.read(self._port.in_waiting)
                except (serial.SerialException, OSError):
                    if not self._reconnect("disconnected"):
                        break
                    continue
                now = self._clock()  # after the nap and the read
                if chunk:
                    self._process(chunk, now, time.perf_counter())
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

    # --- per chunk ---------------------------------------------------------------------------

    def _process(self, chunk: bytes, now: float, t_read: float) -> None:
        """`now`: the time of the read on `clock`; `t_read`: the same on the latency clock."""
        lines = self.parser.stats.lines
        samples = self.parser.feed(chunk)
        self._check_stream(len(samples))
        if self._columns is not None:
            samples = samples[:, self._columns]
        if not len(samples):
            if self.parser.stats.lines != lines:  # a whole junk line; a cut one is not data yet
                self.timing.junk_line(now)
            return
        first = self.parser.stats.samples - len(samples)  # the stream's index of samples[0]
        arrival = self.timing.samples(len(samples), now)
        if arrival.silence_s is not None:  # the silence came before these samples
            self._gap("silence", arrival.silence_s, first)
        held = 0  # samples at the head that set the reference frame: no window holds them
        if self.frame is not None:
            samples, held = self._turn(samples, first)
        self.printer.samples(samples)
        self._check_rate(arrival.rate_hz)
        rate = self.bundle.sample_rate_hz
        if held:  # windows start afresh in the (new) frame, as after a gap
            self.windower.reset()
            self.detector.reset()
            samples, first = samples[held:], first + held
        for i, window in self.windower.extend(samples):
            end_sample = first + i + 1
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
                t = self._clock() - self._start
                self.printer.emit(
                    {"kind": "event", "time": round(t, 3), "label": event.label,
                     "confidence": round(event.confidence, 4), "latency_ms": round(latency_ms, 3),
                     "sample": end_sample},
                    f"{t:9.2f} s  {event.label:<20} {event.confidence:5.2f}  "
                    f"({latency_ms:.1f} ms)")

    def _turn(self, samples: np.ndarray, first: int) -> tuple[np.ndarray, int]:
        """Samples into the reference-pose frame, and how many at their head set the frame
        (as they are); announces when the frame is set (or asked for again)."""
        if self._frame_requested:
            self._frame_requested = False
            self.frame.restart()
            self._announce_frame(first)
        remaining = self.frame.remaining
        samples = self.frame.apply(samples)
        if remaining and self.frame.degrees is not None:
            self._announce_frame(first + remaining)
        return samples, min(remaining, len(samples))

    def _announce_frame(self, sample: int) -> None:
        if self.frame is None:
            return
        pose, t = self.bundle.reference_pose, round(self._clock() - self._start, 3)
        if self.frame.degrees is None:
            message = (f"reference pose: hold {pose.label} still for {pose.seconds:g} s (sets "
                       "the sensor's frame)")
        else:
            message = (f"reference pose set: the sensor sits {self.frame.degrees:.0f} degrees "
                       "from the training frame; turning every sample")
        self.printer.emit({"kind": "reference", "time": t, "sample": sample,
                           "degrees": self.frame.degrees, "message": message},
                          f"{t:9.2f} s  -- {message}")

    def _check_stream(self, new_samples: int) -> None:
        """Channel mismatch (an error) and header names, from what the parser saw: a header
        naming the model's channels in another order reorders the columns; other names are a
        warning and the columns are taken in order."""
        stats = self.parser.stats
        if not self.timing.sampled and not new_samples and stats.wrong_counts:
            width, lines = stats.wrong_counts.most_common(1)[0]
            if lines >= WRONG_COUNT_LINES:
                raise UserError(
                    f"port {self.options.port} sends {width} values per line but the model "
                    f"{self.bundle.root} expects {len(self.bundle.channels)} "
                    f"({', '.join(self.bundle.channels)})")
        header = self.parser.header
        if header and not self._header_checked:
            self._header_checked = True
            if set(self.bundle.channels) <= set(header):  # by name, as for every named source
                columns = channel_order(self.bundle.channels, header, f"port {self.options.port}")
                self._columns = None if columns == list(range(len(header))) else columns
            else:  # a sketch's own names, or a first line cut short: by position, as unnamed
                self.printer.warn(f"stream header {header} does not name the model's channels "
                                  f"{self.bundle.channels}; using the column order")

    def _check_rate(self, measured_hz: float | None) -> None:
        """The stream's rate: --rate when given, else the latest measurement (`StreamClock`
        measures it again after every gap and times naps and silences by it either way: a
        demo plays 4x faster than --rate). A rate that turns far from the model's is a warning."""
        if self.options.rate_hz:
            if self.stats.rate_hz is None:
                self.stats.rate_hz = self.options.rate_hz
                self._warn_rate()
        elif measured_hz is not None:
            was_off = self.stats.rate_hz is not None and rate_is_off(self.stats.rate_hz,
                                                                      self.bundle.sample_rate_hz)
            self.stats.rate_hz = measured_hz
            if not was_off:
                self._warn_rate()

    def _warn_rate(self) -> None:
        model = self.bundle.sample_rate_hz
        if rate_is_off(self.stats.rate_hz, model):
            self.printer.warn(f"stream runs at about {self.stats.rate_hz:.1f} Hz but the model "
                              f"expects {model:g} Hz; events may be wrong")

    def _check_deadlines(self, now: float) -> None:
        silence_s = self.timing.read_done(now)
        if silence_s is not None:
            self._gap("silence", silence_s)
        elif self.timing.first_line_overdue(now):
            self._no_valid_line()

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
        t = self._clock() - self._start
        self.printer.emit({"kind": "gap", "time": round(t, 3), "reason": reason,
                           "seconds": round(seconds, 3), "sample": sample},
                          f"{t:9.2f} s  -- gap ({reason}, {seconds:.1f} s): windows restart --")

    def _reconnect(self, reason: str) -> bool:
        """Reopen the port with back-off; False when it stays away past the deadline."""
        lost = self._clock()
        self._port.close()
        self.parser.reset()
        delay = 0.05
        while not self._stop and self._clock() - lost < self.options.reconnect_timeout_s:
            url = (find_port(self.options.match) if self.options.match else None) or self.options.port
            try:
                self._port = open_port(url, self.options.baudrate)
            except UserError:
                self._sleep(delay)
                delay = min(2 * delay, 1.0)
                continue
            self.stats.reconnects += 1
            self._gap(reason, self._clock() - lost)
            self.timing.connected(self._clock())
            return True
        self.stats.ended = reason
        return False

    # --- reporting ----------------------------------------------------------------------------

    def health(self) -> dict:
        """The stream's numbers so far, for the status line and the view."""
        s = self.parser.stats
        return {"samples": s.samples, "bad_lines": s.bad_lines, "windows": self.stats.windows,
                "events": self.stats.events, "gaps": self.stats.gaps,
                "reconnects": self.stats.reconnects, "rate_hz": self.stats.rate_hz,
                "latency_ms": latency_percentiles(self.stats.latencies_ms)}

    def _summary(self, cpu_s: float) -> dict:
        s = self.parser.stats
        summary = {
            "kind": "summary", "samples": s.samples, "bad_lines": s.bad_lines,
            "windows": self.stats.windows, "events": self.stats.events,
            "latency_ms": latency_percentiles(self.stats.latencies_ms), "gaps": self.stats.gaps,
            "reconnects": self.stats.reconnects, "ended": self.stats.ended,
            "seconds": round(self._clock() - self._start, 3),
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
