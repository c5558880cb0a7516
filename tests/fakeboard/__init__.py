"""An in-process fake board for runner tests: a pyserial URL handler, `fakeboard://NAME` (like
pyserial's `loop://`), that plays a script of lines on a clock the test controls, or in real
time.

    clock = FakeClock()
    board = FakeBoard("b", clock, clock.sleep)  # serial_for_url("fakeboard://b") opens it
    board.play(rows, 50.0).silence(1.3).line(b"junk\\r\\n").unplug(0.5).play(rows, 50.0)
    Runner(..., RunOptions(port="fakeboard://b"), ..., clock=clock, sleep=clock.sleep).run()

On a `FakeClock` nothing waits: a port read with nothing to return moves the clock to the next
line (or its timeout), so minutes of stream take milliseconds and every time is exact. With
`time.monotonic` and `time.sleep` the board plays in real time (for `gesturekit run` in-process).

Script time 0 is the port's first open. Lines due while the port is closed or unplugged are
lost, as a board's are; an unplugged port fails its reads and cannot be opened until the
board is plugged in again. What a physical board adds (USB latency, a tty's 4 KB buffer) is
not modelled.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

import numpy as np
import serial

from gesturekit.device.core.lineparser import format_sample

BOARDS: dict[str, FakeBoard] = {}  # fakeboard://NAME -> the board

if __name__ not in serial.protocol_handler_packages:
    serial.protocol_handler_packages.append(__name__)  # serial_for_url finds protocol_fakeboard


class FakeClock:
    """Monotonic seconds that move only when something sleeps."""

    def __init__(self, start: float = 1000.0):
        self.now = start

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += max(0.0, seconds)


class FakeBoard:
    """A script of timed lines and outages; `play`, `line`, `silence` and `unplug` append to
    it from where it ends and return the board, so a script reads as one chain."""

    def __init__(self, name: str, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep):
        self.name, self.clock, self.sleep = name, clock, sleep
        self.lines: list[tuple[float, bytes]] = []  # (script time, bytes), in time order
        self.outages: list[tuple[float, float]] = []  # (from, to) script times: unplugged
        self.end = 0.0  # script time where the next part starts
        self.started_at: float | None = None  # clock time of the first open
        self.opens = 0
        BOARDS[name] = self

    @property
    def url(self) -> str:
        return f"fakeboard://{self.name}"

    def play(self, rows: Iterable[np.ndarray], rate_hz: float) -> FakeBoard:
        """One sample line per row, every 1/rate_hz seconds."""
        start, k = self.end, 0
        for k, row in enumerate(rows, 1):
            self.lines.append((start + k / rate_hz, format_sample(row)))
        self.end = start + k / rate_hz
        return self

    def line(self, data: bytes) -> FakeBoard:
        """Bytes as they are (junk, a header, half a line), right after what came before."""
        self.lines.append((self.end, data))
        return self

    def silence(self, seconds: float) -> FakeBoard:
        self.end += seconds
        return self

    def unplug(self, seconds: float) -> FakeBoard:
        """The cable is pulled for `seconds`: the open port fails, a new open fails until then."""
        self.outages.append((self.end, self.end + seconds))
        self.end += seconds
        return self

    def script_time(self) -> float:
        return 0.0 if self.started_at is None else self.clock() - self.started_at

    def unplugged(self, after: float, until: float) -> float | None:
        """Script time of the first pull in (after, until], else None."""
        return next((a for a, _ in self.outages if after < a <= until), None)

    def is_unplugged(self, t: float) -> bool:
        return any(a <= t < b for a, b in self.outages)
