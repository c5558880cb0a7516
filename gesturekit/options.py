"""What a number given by the user may be: one `Range` type for command-line options (argparse
types) and config-file fields (dataclass field metadata), so both refuse the same values with
the same words, before any work starts.

A non-finite number is never a valid setting: NaN slips through every comparison and inf turns
a budget or a duration into "forever".
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from dataclasses import dataclass

from gesturekit.errors import UserError


@dataclass(frozen=True)
class Range:
    """Bounds of a setting; `low_open` and `high_open` exclude a bound (`> 0`, not `>= 0`)."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False

    def __contains__(self, value: float) -> bool:
        if not math.isfinite(value):
            return False
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            return False
        return self.high is None or (value < self.high if self.high_open else value <= self.high)

    def __str__(self) -> str:
        low = "" if self.low is None else f"{'>' if self.low_open else '>='} {self.low:g}"
        if self.high is None:
            return low or "finite"
        if self.low is None:
            return f"{'<' if self.high_open else '<='} {self.high:g}"
        return (f"in {'(' if self.low_open else '['}{self.low:g}, {self.high:g}"
                f"{')' if self.high_open else ']'}")


ANY = Range()
POSITIVE = Range(0, low_open=True)
NON_NEGATIVE = Range(0)
AT_LEAST_ONE = Range(1)
PROBABILITY = Range(0, 1)
SHARE = Range(0, 1, low_open=True)  # a share that must leave something: (0, 1]
OPEN_UNIT = Range(0, 1, low_open=True, high_open=True)


def in_range(bounds: Range) -> dict:
    """Field metadata for a config dataclass: `field(default=..., metadata=in_range(POSITIVE))`."""
    return {"range": bounds}


def expectation(kind: type, bounds: Range) -> str:
    """"an integer >= 1", "a number in [0, 1]": what a value must be, for messages."""
    noun = "an integer" if kind is int else "a number"
    return noun if bounds == ANY else f"{noun} {bounds}"


def _argument(kind: type, bounds: Range) -> Callable[[str], float]:
    """An argparse `type=`: parse `kind` and refuse values outside `bounds` (NaN and inf too)."""

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            value = None
        if value is None or value not in bounds:
            raise argparse.ArgumentTypeError(f"expected {expectation(kind, bounds)}, got {text!r}")
        return value

    return parse


positive_float = _argument(float, POSITIVE)
nonnegative_float = _argument(float, NON_NEGATIVE)
probability = _argument(float, PROBABILITY)
share = _argument(float, SHARE)
open_unit = _argument(float, OPEN_UNIT)
positive_int = _argument(int, AT_LEAST_ONE)
nonnegative_int = _argument(int, NON_NEGATIVE)


def parse_length(value: int | str, flag: str) -> tuple[float, str]:
    """A window or hop length: an int or "128" (samples), or "2.5s" (seconds). Returns
    (amount, "samples" or "s"); a user error naming `flag` when it is neither or not positive."""
    text = str(value).strip()
    unit = "s" if text.endswith("s") else "samples"
    try:
        amount = float(text[:-1]) if unit == "s" else int(text)
    except ValueError:
        raise UserError(f"{flag}: expected a number of samples (128) or seconds (2.5s), "
                        f"got {value!r}") from None
    if not amount > 0 or amount != amount or amount == float("inf"):
        raise UserError(f"{flag}: must be positive (got {value!r})")
    return amount, unit


def to_samples(value: int | str, rate_hz: float, flag: str) -> int:
    """`parse_length` in samples at `rate_hz` (seconds are rounded, at least 1 sample)."""
    amount, unit = parse_length(value, flag)
    return max(1, round(amount * rate_hz)) if unit == "s" else int(amount)
