"""pyserial's handler for `fakeboard://NAME`: the port side of a `FakeBoard` (see __init__)."""

from __future__ import annotations

import bisect
import errno
from urllib.parse import urlsplit

from serial.serialutil import PortNotOpenError, SerialBase, SerialException

from . import BOARDS, FakeBoard


class Serial(SerialBase):
    """Reads return the board's lines that are due; they wait (on the board's clock) up to the
    timeout for the next one, like a tty's."""

    def open(self) -> None:
        if self.is_open:
            raise SerialException("Port is already open.")
        name = urlsplit(self.port).netloc
        board: FakeBoard | None = BOARDS.get(name)
        t = board.script_time() if board else 0.0
        if board is None or board.is_unplugged(t):
            raise SerialException(errno.ENOENT, f"could not open port {self.port}: No such file")
        if board.started_at is None:
            board.started_at = board.clock()
        board.opens += 1
        self._board, self._opened, self._buffer = board, t, bytearray()
        # Lines due before this open went to no one.
        self._next = bisect.bisect_left(board.lines, t, key=lambda line: line[0])
        self.is_open = True

    def close(self) -> None:
        self.is_open = False

    def _reconfigure_port(self, *args, **kwargs) -> None:
        """Baud rate and the rest change nothing here."""

    def _due(self, waited_until: float = 0.0, fail: bool = True) -> None:
        """Move the lines due by now into the buffer; once those that came before a pulled
        cable are read, reads fail for good (like a pty's whose other side closed; its
        `in_waiting` says 0). `waited_until`: the script time a wait was for (the clock's
        float may fall just short)."""
        if not self.is_open:
            raise PortNotOpenError()
        t = max(self._board.script_time(), waited_until)
        pulled = self._board.unplugged(self._opened, t)
        lines, until = self._board.lines, t if pulled is None else pulled
        while self._next < len(lines) and lines[self._next][0] <= until:
            self._buffer += lines[self._next][1]
            self._next += 1
        if pulled is not None and not self._buffer and fail:
            raise SerialException("device reports readiness to read but returned no data "
                                  "(device disconnected or multiple access on port?)")

    @property
    def in_waiting(self) -> int:
        self._due(fail=False)
        return len(self._buffer)

    def read(self, size: int = 1) -> bytes:
        self._due()
        board = self._board
        if not self._buffer and size > 0:
            # Wait for the next line, a pulled cable or the timeout, whichever comes first.
            t = board.script_time()
            wake = t + (self._timeout if self._timeout is not None else float("inf"))
            if self._next < len(board.lines):
                wake = min(wake, board.lines[self._next][0])
            pulled = board.unplugged(t, wake)
            if pulled is not None:
                wake = pulled
            board.sleep(wake - t)
            self._due(wake)
        data = bytes(self._buffer[:size])
        del self._buffer[:size]
        return data

    def write(self, data: bytes) -> int:
        self._due()
        return len(data)  # the board ignores what the host sends

    def reset_input_buffer(self) -> None:
        self._due()
        self._buffer.clear()

    def reset_output_buffer(self) -> None:
        """Nothing is buffered towards the board."""
