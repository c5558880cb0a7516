"""The recorder: a labelled session from a board into the recording format.

Channels come from the stream's header (else `channels`, else ch1..chN); the rate is lines
per second over the whole session, rounded to whole Hz, unless `rate_hz` is given. Samples
are appended through `RecordingWriter` every quarter second, so a kill or a pulled cable
leaves a valid file up to the last full line. A new dataset's `dataset.toml` (channels, the
time column, the rate when given) is on disk before the session's first sample, so a session
cut short by a kill is readable as it is (its rate from its time column); at the end the
measured rate is added. Keys typed while recording switch the label: `1`..`9` pick from
`labels`, `0` goes back to the first label. Labels the recording format cannot hold are refused
before the port is opened; a refused session leaves no file behind.
"""

from __future__ import annotations

import os
import select
import sys
import termios
import time
import tty
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import serial

from gesturekit.device.core.lineparser import LineParser
from gesturekit.device.core.recording import (
    DATASET_TOML,
    RecordingSpec,
    RecordingWriter,
    label_problem,
    read_spec,
    write_spec,
)
from gesturekit.device.live.ports import DEFAULT_BAUD, open_port
from gesturekit.errors import UserError

MIN_SAMPLES_FOR_RATE = 20
FLUSH_EVERY_S = 0.25


@dataclass
class RecordOptions:
    port: str
    out: Path
    label: str
    labels: list[str]  # keys 1..9
    session: str
    seconds: float | None = None
    samples: int | None = None
    channels: list[str] | None = None
    rate_hz: float | None = None
    baudrate: int = DEFAULT_BAUD
    first_line_timeout_s: float = 5.0


class KeyReader:
    """Single keys from stdin without waiting for Enter (cbreak on a TTY; a pipe works too)."""

    def __init__(self, stream=sys.stdin):
        self._fd = stream.fileno() if stream is not None and not stream.closed else None
        self._saved = None
        if self._fd is not None and os.isatty(self._fd):
            self._saved = termios.tcgetattr(self._fd)
            tty.setcbreak(self._fd)

    def keys(self) -> str:
        if self._fd is None or not select.select([self._fd], [], [], 0)[0]:
            return ""
        data = os.read(self._fd, 64)
        if not data:
            self._fd = None  # end of input: no more keys
        return data.decode("ascii", "replace")

    def close(self) -> None:
        if self._saved is not None:
            termios.tcsetattr(self._fd, termios.TCSADRAIN, self._saved)


def check_labels(label: str, labels: list[str]) -> None:
    """Refuse, before anything is recorded, a label the recording format cannot hold."""
    for option, name in [("--label", label)] + [("--labels", name) for name in labels]:
        problem = label_problem(name)
        if problem:
            raise UserError(f"{option} {name!r}: {problem}; a label must read back as written")


class Recorder:
    def __init__(self, opts: RecordOptions, keys: KeyReader, log=sys.stderr,
                 on_samples: Callable[[np.ndarray, str, list[str]], None] | None = None):
        """`on_samples(rows, label, channels)`: told what is appended (the live page)."""
        self.opts, self.keys, self.log, self.on_samples = opts, keys, log, on_samples
        self.label = opts.label
        self.parser = LineParser(len(opts.channels) if opts.channels else None)
        self.rate_hz = opts.rate_hz
        self.writer: RecordingWriter | None = None
        self.samples = 0
        self.label_counts: dict[str, int] = {}
        self._stop = False
        self._created: list[Path] = []  # what this session made (undone when it is refused)

    def stop(self) -> None:
        self._stop = True

    def run(self) -> dict:
        """Record until seconds/samples are reached, `stop()`, or the port goes away."""
        opts = self.opts
        port = open_port(opts.port, opts.baudrate)
        start = last_read = time.monotonic()
        first_sample = last_sample = None
        batch, labels, times = [], [], []
        next_flush = start + FLUSH_EVERY_S
        ended = "done"
        try:
            while not self._stop:
                now = time.monotonic()
                if (opts.seconds is not None and first_sample is not None
                        and now - first_sample >= opts.seconds):
                    break
                if opts.samples is not None and self.samples >= opts.samples:
                    break
                self._switch_label(self.keys.keys())
                try:
                    chunk = port.read(port.in_waiting or 1)
                except (serial.SerialException, OSError):
                    ended = "disconnected"
                    break
                arrived, previous_read = time.monotonic(), last_read
                last_read = arrived
                rows = self.parser.feed(chunk) if chunk else np.zeros((0, 0), np.float32)
                if len(rows):
                    # The time column holds host arrival times, the only clock a recorder sees
                    # (the board sends no timestamps, and index / rate would hide stalls and
                    # lost lines). A chunk's samples came in after the previous read returned,
                    # so they are spread evenly over that interval, the last at its arrival:
                    # each sample has its own, increasing time instead of a staircase.
                    stamps = previous_read + (arrived - previous_read) * (
                        np.arange(1, len(rows) + 1) / len(rows))
                    if first_sample is None:
                        first_sample = float(stamps[0])
                    last_sample = arrived
                    if opts.samples is not None:
                        rows = rows[: opts.samples - self.samples]
                    batch.append(rows)
                    labels += [self.label] * len(rows)
                    times += (stamps[: len(rows)] - first_sample).tolist()
                    self.samples += len(rows)
                    self.label_counts[self.label] = self.label_counts.get(self.label, 0) + len(rows)
                    if self.on_samples is not None:
                        self.on_samples(rows, self.label, self._channels())
                elif first_sample is None and now - start > opts.first_line_timeout_s:
                    raise UserError(f"port {opts.port}: no valid sample line within "
                                    f"{opts.first_line_timeout_s:g} s; check the baud rate (--baud)")
                if batch and (now >= next_flush):
                    self._write(batch, labels, times)
                    batch, labels, times = [], [], []
                    next_flush = now + FLUSH_EVERY_S
        finally:
            port.close()
            if batch:
                self._write(batch, labels, times)
            if self.writer:
                self.writer.close()
        return self._finish(first_sample, last_sample, ended)

    def _finish(self, first_sample: float | None, last_sample: float | None, ended: str) -> dict:
        """After the port closed: the rate measured from the arrival times when not given
        (too few samples: the session is discarded), and the summary."""
        opts = self.opts
        if self.writer is None:
            raise UserError(f"port {opts.port}: no samples recorded")
        if self.rate_hz is None:
            if self.samples < MIN_SAMPLES_FOR_RATE or last_sample <= first_sample:
                self._discard()
                raise UserError(f"port {opts.port}: {self.samples} samples are too few to measure "
                                f"the sample rate; record longer or give --rate (nothing kept)")
            # Samples after the first, over the time they took to arrive (whole session).
            self.rate_hz = float(round((self.samples - 1) / (last_sample - first_sample)))
            self._add_rate()
        return {"path": str(self.writer.path), "samples": self.samples,
                "sample_rate_hz": self.rate_hz, "channels": self._channels(),
                "labels": self.label_counts, "bad_lines": self.parser.stats.bad_lines,
                "ended": "interrupted" if self._stop else ended}

    def _switch_label(self, keys: str) -> None:
        for key in keys:
            if key == "0":
                new = self.opts.label
            elif key.isdigit() and int(key) <= len(self.opts.labels):
                new = self.opts.labels[int(key) - 1]
            else:
                continue
            if new != self.label:
                self.label = new
                print(f"record: label -> {new} (at sample {self.samples})", file=self.log,
                      flush=True)

    def _channels(self) -> list[str]:
        if self.opts.channels:
            return self.opts.channels
        if self.parser.header:
            return self.parser.header
        return [f"ch{i + 1}" for i in range(self.parser.n_channels or 0)]

    def _write(self, batch: list[np.ndarray], labels: list[str], times: list[float]) -> None:
        if self.writer is None:
            self._prepare_dataset()
            path = self.opts.out / f"{self.opts.session}.csv"
            self.writer = RecordingWriter(path, self._channels(), time_column="t")
        self.writer.append(np.concatenate(batch), labels, np.array(times))

    def _prepare_dataset(self) -> None:
        """Before the first sample: an existing dataset must have the same channels; a new
        one gets its dataset.toml now, so whatever is recorded can be read even if this process
        dies (the rate comes from the time column until the end adds the measured one)."""
        out = self.opts.out
        toml = out / DATASET_TOML
        if toml.is_file():
            spec = read_spec(toml)
            if spec.channels and spec.channels != self._channels():
                raise UserError(f"{toml}: channels {spec.channels} differ from the stream's "
                                f"{self._channels()}; record into another folder")
            return
        if not out.exists():
            out.mkdir(parents=True)
            self._created.append(out)
        write_spec(toml, self._spec())
        self._created.append(toml)

    def _spec(self) -> RecordingSpec:
        return RecordingSpec(sample_rate_hz=self.rate_hz, channels=self._channels(),
                             label_column="label", time_column="t", time_unit="s")

    def _add_rate(self) -> None:
        """The measured rate into the dataset.toml this session wrote (one another session or
        the user wrote is theirs: left alone)."""
        toml = self.opts.out / DATASET_TOML
        if toml in self._created:
            write_spec(toml, self._spec())

    def _discard(self) -> None:
        """Undo a refused session: its samples (the file, when it made it), and the
        dataset.toml and folder it made when no other session is there."""
        self.writer.discard()
        for path in reversed(self._created):  # the dataset.toml, then the folder
            if path.is_dir() and not any(path.iterdir()):
                path.rmdir()
            elif path.is_file() and not any(path.parent.glob("*.csv")):
                path.unlink()
