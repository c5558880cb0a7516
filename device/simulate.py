"""A board simulator: plays a recording into a real pseudo-terminal (or any pyserial URL) in
the board's line format, at real rate, with optional faults for tests and demos.

Faults: `garbage` inserts a junk line before a sample with that probability (each junk line
is exactly one bad line for the parser and no sample is lost, so windows stay aligned);
`drop` leaves samples out; `cut_lines` writes the byte stream in random pieces that ignore
line ends; `disconnect_after_s` closes the pty mid-stream and opens a new one (a pulled
cable), re-pointing `link` at it so a runner can reconnect to one path.

HAPT sessions (`RawData/acc_expNN_userNN.txt` + its gyro file) are read by `hapt.py`, the
dataset importer's reader, without `gesturekit.train`.
"""

from __future__ import annotations

import fcntl
import json
import os
import pty
import select
import struct
import sys
import termios
import time
import tty
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import serial

from gesturekit.device.hapt import HaptSource
from gesturekit.device.ports import open_port
from gesturekit.device.recording import (
    HAPT_CHANNELS,
    HAPT_RATE_HZ,
    HAPT_SESSION,
    RecordingSpec,
    find_spec,
    rate_from_time,
    read_recording,
    read_spec,
)
from gesturekit.errors import UserError

WRITE_DEADLINE_S = 5.0  # a reader that takes nothing for this long has hung
READER_SETTLE_S = 0.1  # a reader's port open() takes well under this


@dataclass
class Session:
    data: np.ndarray  # (N, C) float32
    channels: list[str]
    sample_rate_hz: float


def load_session(path: str | os.PathLike, rate_hz: float | None = None) -> Session:
    """A recording-format CSV (rate from a nearby dataset.toml, the time column or `rate_hz`)
    or a HAPT raw session file."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such recording file")
    if HAPT_SESSION.search(path.name):  # its gyro file beside it
        return Session(HaptSource(path.parent).session(path.name), list(HAPT_CHANNELS), HAPT_RATE_HZ)
    toml = find_spec(path)
    spec = read_spec(toml) if toml else RecordingSpec()
    rec = read_recording(path, spec)
    rate = rate_hz or spec.sample_rate_hz or rate_from_time([rec.time], spec, str(path), rec.channels)
    return Session(rec.data, rec.channels, float(rate))


def format_sample(row: np.ndarray) -> bytes:
    """One board line; 9 significant digits give back the same float32."""
    return (",".join(f"{v:.9g}" for v in row.tolist()) + "\r\n").encode("ascii")


def junk_line(row: np.ndarray, rng: np.random.Generator) -> tuple[str, bytes]:
    """One line the parser must count as exactly one bad line: (kind, bytes with newline)."""
    kind = ("binary", "fields", "not_numeric", "nonfinite", "long")[rng.integers(5)]
    values = [f"{v:.9g}" for v in row.tolist()]
    if kind == "binary":
        body = bytes(rng.integers(0x80, 0x100, size=int(rng.integers(3, 40)), dtype=np.uint8))
    elif kind == "fields":
        body = ",".join(values[:-1]).encode()
    elif kind == "not_numeric":
        values[int(rng.integers(len(values)))] = "x?1"
        body = ",".join(values).encode()
    elif kind == "nonfinite":
        values[int(rng.integers(len(values)))] = "nan"
        body = ",".join(values).encode()
    else:
        body = b"1.0," * 150  # 600 bytes, over the 512-byte line limit
    return kind, body + b"\r\n"


@dataclass
class SimOptions:
    speed: float = 1.0
    garbage: float = 0.0
    drop: float = 0.0
    cut_lines: bool = False
    disconnect_after_s: float | None = None
    reconnect_pause_s: float = 0.5
    header: bool = True
    loop: bool = False
    seed: int = 0
    wait_reader_s: float = 60.0  # a pty waits this long for the first reader


@dataclass
class SimStats:
    lines: int = 0
    samples: int = 0
    garbage: int = 0
    garbage_kinds: dict = field(default_factory=dict)
    dropped: int = 0
    unheard: int = 0  # lines written while no reader had the pty open (a board does not wait)
    disconnects: int = 0

    def to_dict(self) -> dict:
        return dict(self.__dict__)


class PtySink:
    """The master side of a pseudo-terminal; the slave path is what a runner opens."""

    def __init__(self, link: str | None):
        self.link = link
        self._open()

    def _open(self) -> None:
        self.master, slave = pty.openpty()
        os.set_blocking(self.master, False)
        tty.setraw(slave)  # no echo, no newline translation
        self.device = os.ttyname(slave)
        os.close(slave)  # while no one has the slave open, poll() reports POLLHUP
        if self.link:
            tmp = f"{self.link}.tmp{os.getpid()}"
            os.symlink(self.device, tmp)
            os.replace(tmp, self.link)  # atomic: a reconnecting runner never sees no link

    @property
    def path(self) -> str:
        return self.link or self.device

    def has_reader(self) -> bool:
        events = select.poll()
        events.register(self.master, select.POLLHUP)
        return not any(ev & select.POLLHUP for _, ev in events.poll(0))

    def wait_reader(self, deadline_s: float) -> None:
        end = time.monotonic() + deadline_s
        while not self.has_reader():
            if time.monotonic() > end:
                raise UserError(f"simulate: nobody opened {self.path} within {deadline_s:g} s")
            time.sleep(0.01)
        # pyserial's open() ends by flushing the input queue (tcflush): bytes written between
        # the reader's os.open() and that flush are discarded (bench/soak.py lost one line
        # per ~100 reconnects that way). Let its open() finish first.
        time.sleep(READER_SETTLE_S)

    def write(self, data: bytes) -> bool:
        """Write all of `data`; False (data dropped) when no reader has the port open."""
        if not self.has_reader():
            return False
        view = memoryview(data)
        while view:
            _, writable, _ = select.select([], [self.master], [], WRITE_DEADLINE_S)
            if not writable:
                raise UserError(f"simulate: the reader of {self.path} took nothing for "
                                f"{WRITE_DEADLINE_S:g} s")
            try:  # non-blocking: a reader that stops mid-write cannot hang us past the deadline
                view = view[os.write(self.master, view):]
            except BlockingIOError:
                continue
            except OSError:  # EIO: the reader closed the port mid-write
                return False
        return True

    def reopen(self) -> None:
        """Pull the cable: close this pty and open a new one (the link follows)."""
        os.close(self.master)
        self._open()

    def drain(self, deadline_s: float = WRITE_DEADLINE_S) -> None:
        """Wait until the reader has taken every byte: closing the master discards the rest."""
        fd = os.open(self.device, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        try:
            end = time.monotonic() + deadline_s
            empty_since = None
            while time.monotonic() < end:
                waiting = struct.unpack("I", fcntl.ioctl(fd, termios.FIONREAD, b"\0" * 4))[0]
                now = time.monotonic()
                # The kernel moves bytes to the reader's queue asynchronously: an empty queue
                # counts only once it has stayed empty for a while.
                empty_since = (empty_since or now) if not waiting else None
                if empty_since is not None and now - empty_since > 0.5:
                    return
                time.sleep(0.01)
        finally:
            os.close(fd)

    def close(self) -> None:
        os.close(self.master)
        if self.link and os.path.islink(self.link) and os.readlink(self.link) == self.device:
            os.unlink(self.link)


class PortSink:
    """Any pyserial URL (a real port with a loopback cable, `socket://`, ...)."""

    def __init__(self, url: str):
        self.path = url
        self._port = open_port(url)

    def wait_reader(self, deadline_s: float) -> None:
        """A port has no notion of a reader: start at once."""

    def write(self, data: bytes) -> bool:
        try:
            self._port.write(data)
        except (serial.SerialException, OSError) as e:  # e.g. a socket:// peer closed
            raise UserError(f"simulate: writing to {self.path} failed ({e}); "
                            "is the other end still listening?") from None
        return True

    def reopen(self) -> None:
        self._port.close()
        self._port.open()

    def drain(self) -> None:
        self._port.flush()

    def close(self) -> None:
        self._port.close()


def play(session: Session, sink: PtySink | PortSink, opts: SimOptions, stats: SimStats,
         announce=lambda path: None) -> None:
    """Play `session` into `sink` at `speed` x real rate, counting what was sent in `stats`."""
    rng = np.random.default_rng(opts.seed)
    announce(sink.path)
    sink.wait_reader(opts.wait_reader_s)
    period = 1.0 / (session.sample_rate_hz * opts.speed)
    start = time.monotonic()
    disconnect_at = start + opts.disconnect_after_s if opts.disconnect_after_s else None
    pending = [(",".join(session.channels) + "\r\n").encode()] if opts.header else []
    sent = 0  # samples played (sent or dropped) since start: the clock
    while True:
        for row in session.data:
            if rng.random() < opts.drop:
                stats.dropped += 1
            else:
                if opts.garbage and rng.random() < opts.garbage:
                    kind, line = junk_line(row, rng)
                    pending.append(line)
                    stats.garbage += 1
                    stats.garbage_kinds[kind] = stats.garbage_kinds.get(kind, 0) + 1
                pending.append(format_sample(row))
                stats.samples += 1
            sent += 1
            due = start + sent * period
            now = time.monotonic()
            if now < due:
                _flush(sink, pending, opts, rng, stats)
                time.sleep(max(0.0, due - time.monotonic()))
            if disconnect_at is not None and time.monotonic() >= disconnect_at:
                _flush(sink, pending, opts, rng, stats)
                disconnect_at = None
                stats.disconnects += 1
                sink.reopen()
                announce(sink.path)
                time.sleep(opts.reconnect_pause_s)
                start += opts.reconnect_pause_s  # the board was away: keep its clock
        _flush(sink, pending, opts, rng, stats)
        if not opts.loop:
            sink.drain()
            return


def _flush(sink, pending: list[bytes], opts: SimOptions, rng: np.random.Generator,
           stats: SimStats) -> None:
    if not pending:
        return
    data = b"".join(pending)
    lines = len(pending)
    pending.clear()
    if opts.cut_lines:
        cuts = np.sort(rng.integers(1, len(data), size=min(3, len(data) - 1)))
        pieces = [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]
    else:
        pieces = [data]
    heard = True
    for piece in pieces:
        heard = sink.write(piece) and heard
        if opts.cut_lines:
            time.sleep(0.001)  # let the reader see the cut
    stats.lines += lines
    if not heard:
        stats.unheard += lines


def write_stats(path: str | None, stats: SimStats) -> None:
    text = json.dumps(stats.to_dict())
    if path:
        Path(path).write_text(text + "\n", encoding="utf-8")
    print(f"simulate: {text}", file=sys.stderr)
