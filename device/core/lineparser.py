"""The serial line protocol (docs/design.md): bytes from the board in, whole samples out.

One sample per line, values split on commas (or tabs or spaces), `\\n` or `\\r\\n`; an
optional header of channel names; `#` comments; the first line after connecting may be cut
and is dropped. Anything else is a bad line: counted by reason and skipped, never a sample,
so it cannot shift a window.

Accounting, so a fuzzer can check it: every terminated line ends in exactly one of
`samples`, `bad_lines`, `headers`, `comments`, `empty`, `dropped_first`; bytes after the last
newline wait in `pending` until `finish()` or `reset()` counts them as one bad "cut" line.
`feed` never raises on any input.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from itertools import repeat

import numpy as np

MAX_LINE_BYTES = 512
_HEADER_FIELD = re.compile(rb"[A-Za-z_][A-Za-z0-9_.\-]*\Z")
_PRINTABLE = bytes(range(32, 127)) + b"\t"


@dataclass
class ParserStats:
    samples: int = 0
    bad_lines: int = 0
    headers: int = 0
    comments: int = 0
    empty: int = 0
    dropped_first: int = 0
    bad_reasons: Counter = field(default_factory=Counter)  # reason -> lines
    # Field counts of all-numeric lines that had the wrong count since the last reset():
    # tells a stream with another channel count apart from noise.
    wrong_counts: Counter = field(default_factory=Counter)

    @property
    def lines(self) -> int:
        return (self.samples + self.bad_lines + self.headers + self.comments + self.empty
                + self.dropped_first)

    def to_dict(self) -> dict:
        return {"samples": self.samples, "bad_lines": self.bad_lines, "headers": self.headers,
                "comments": self.comments, "empty": self.empty,
                "dropped_first": self.dropped_first, "bad_reasons": dict(self.bad_reasons)}


class LineParser:
    """Incremental parser: `feed(chunk)` returns the good samples (k, C) float32 it completed.

    `n_channels=None` detects the count from the header or the first all-numeric line.
    """

    def __init__(self, n_channels: int | None = None, drop_first: bool = True,
                 max_line_bytes: int = MAX_LINE_BYTES):
        self.n_channels = n_channels
        self.header: list[str] | None = None
        self.max_line_bytes = max_line_bytes
        self.stats = ParserStats()
        self._drop_first = drop_first
        self._pending = b""
        self._skipping = False  # inside an over-long line: discard up to its newline
        self._dropping = drop_first
        self._dropped_line: bytes | None = None  # may name the channels, see below

    @property
    def pending(self) -> bytes:
        return self._pending

    def _bad(self, reason: str) -> None:
        self.stats.bad_lines += 1
        self.stats.bad_reasons[reason] += 1

    def reset(self) -> None:
        """After a disconnect: the partial line is lost and the next line may be cut again.
        `wrong_counts` starts over: it judges the board now connected, not hours of old junk."""
        self.finish()
        self._dropping = self._drop_first
        self.stats.wrong_counts.clear()

    def finish(self) -> None:
        """End of stream: an unterminated last line counts as one bad (cut) line."""
        if self._pending or self._skipping:
            self._bad("long" if self._skipping else "cut")
        self._pending = b""
        self._skipping = False

    def feed(self, chunk: bytes) -> np.ndarray:
        """Parse a chunk of any size; returns the samples of the lines it completed."""
        end = chunk.rfind(b"\n")
        if end < 0:
            self._hold(chunk)
            return self._empty()
        lines = chunk[:end].split(b"\n")
        rest = chunk[end + 1:]
        first = lines[0]
        if self._skipping:  # the over-long line ends here: one line, counted like any other
            self._skipping = False
            if self._dropping:  # the first line after connecting is dropped whatever it is
                self._dropping = False
                self.stats.dropped_first += 1
            else:
                self._bad("long")
            lines = lines[1:]
        else:
            lines[0] = self._pending + first
        self._pending = b""
        rows = self._parse_lines(lines)
        self._hold(rest)
        return rows

    def _hold(self, data: bytes) -> None:
        if self._skipping:
            return
        self._pending += data
        if len(self._pending) > self.max_line_bytes:
            self._pending = b""
            self._skipping = True

    def _empty(self) -> np.ndarray:
        return np.zeros((0, self.n_channels or 0), dtype=np.float32)

    def _parse_lines(self, lines: list[bytes]) -> np.ndarray:
        if self._dropping and lines:
            self._dropping = False
            self.stats.dropped_first += 1
            self._dropped_line = lines[0]
            lines = lines[1:]
        n = self.n_channels
        limit = self.max_line_bytes
        if n is not None and lines and self._dropped_line is None:
            fast = self._parse_clean_block(lines, n)
            if fast is not None:
                return fast
        rows: list[list[float]] = []
        for line in lines:
            if len(line) > limit:
                self._bad("long")
                continue
            fields = line.split(b",") if b"," in line else line.split()
            try:
                values = list(map(float, fields))
            except ValueError:
                self._classify_text(line, fields)
                continue
            if len(values) == n:
                rows.append(values)
            elif n is None and values:
                self.n_channels = n = len(values)
                rows.append(values)
            elif not values:
                self.stats.empty += 1
            else:
                self._bad("fields")
                self.stats.wrong_counts[len(values)] += 1
        if self._dropped_line is not None and self.n_channels is not None:
            self._names_from_dropped_line()
        if not rows:
            return self._empty()
        return self._finish_rows(np.array(rows, dtype=np.float64))

    def _finish_rows(self, rows: np.ndarray) -> np.ndarray:
        """float32 samples of the parsed rows; rows not finite in float32 are bad lines."""
        with np.errstate(over="ignore"):  # values beyond float32 become inf: bad below
            data = rows.astype(np.float32)
        finite = np.isfinite(data).all(axis=1)  # NaN, inf, or too large for float32
        if not finite.all():
            for _ in range(int((~finite).sum())):
                self._bad("nonfinite")
            data = data[finite]
        self.stats.samples += len(data)
        return data

    def _parse_clean_block(self, lines: list[bytes], n: int) -> np.ndarray | None:
        """The common case in one pass: every line n comma-separated numbers. Gives exactly
        what the line-by-line path would, or None to let it sort the block out."""
        if (list(map(bytes.count, lines, repeat(b","))).count(n - 1) != len(lines)
                or max(map(len, lines)) > self.max_line_bytes):
            return None
        try:  # joining with commas keeps every line's fields, in order
            values = list(map(float, b",".join(lines).split(b",")))
        except ValueError:
            return None
        return self._finish_rows(np.array(values, dtype=np.float64).reshape(-1, n))

    def _classify_text(self, line: bytes, fields: list[bytes]) -> None:
        stripped = line.strip()
        if stripped.startswith(b"#"):
            self.stats.comments += 1
        elif not stripped:
            self.stats.empty += 1
        elif stripped.translate(None, _PRINTABLE):
            self._bad("binary")
        elif self._is_header(fields):
            self.header = [f.strip().decode("ascii") for f in fields]
            self.n_channels = self.n_channels or len(fields)
            self.stats.headers += 1
        else:
            self._bad("not_numeric")

    def _names_from_dropped_line(self) -> None:
        """A board that prints its header at connect: the dropped first line still names the
        channels when it looks like a header of the right width (a cut one would not fit)."""
        line, self._dropped_line = self._dropped_line.strip(), None
        fields = line.split(b",") if b"," in line else line.split()
        if self.header is None and line.isascii() and self._is_header(fields):
            self.header = [f.strip().decode("ascii") for f in fields]

    def _is_header(self, fields: list[bytes]) -> bool:
        if self.n_channels is not None and len(fields) != self.n_channels:
            return False
        return all(_HEADER_FIELD.match(f.strip()) for f in fields)


def format_sample(row: np.ndarray) -> bytes:
    """One board line; 9 significant digits give back the same float32."""
    return (",".join(f"{v:.9g}" for v in row.tolist()) + "\r\n").encode("ascii")
