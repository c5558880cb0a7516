"""Fuzzing the stream parser (docs/design.md, serial line protocol) with properties, not examples.

Streams are built from lines whose fate is known by construction (a sample, a comment, an
empty line, a header, or a bad line of a given reason), plus a connect-time fragment and an
unterminated tail, and fed in chunks cut anywhere. Properties:

- `feed` never raises, whatever the bytes and the chunking;
- every line ends in exactly one counter: the first line in `dropped_first`, each sample line
  in `samples` (parsed exactly, in order), each bad line in `bad_lines` under its reason, and
  the unterminated tail as one bad "cut" line at `finish()`; so every input byte belongs to
  exactly one counted line;
- the result does not depend on where the chunks were cut;
- windows: per docs/design.md, bad lines are skipped without resetting the window ("bad lines never
  shift a window") and a gap resets it. "Never spans" means: the windows of a stream equal,
  one for one, the windows `cut_windows` cuts from the good samples of each gap-free segment,
  so no window holds a value from a bad line, and none holds samples from both sides of a gap.
"""

from __future__ import annotations

import os
from collections import Counter

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gesturekit.device.core.lineparser import MAX_LINE_BYTES, LineParser
from gesturekit.device.core.windowing import StreamWindower, cut_windows

# Cases per property: 300 in `make test` (derandomized, see conftest.py); `make fuzz` sets
# GK_FUZZ_EXAMPLES=5000 and draws them at random.
FUZZ = settings(max_examples=int(os.environ.get("GK_FUZZ_EXAMPLES", "300")),
                suppress_health_check=[HealthCheck.too_slow])
NAME_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-"


def _parses_as_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


finite32 = st.floats(width=32, allow_nan=False, allow_infinity=False)
number_format = st.sampled_from(["{:.9g}", "{!r}", "{:.9e}", "{:+.9g}"])
line_end = st.sampled_from([b"\n", b"\r\n"])
separator = st.sampled_from([",", ", ", " ,", "\t", " ", "  ", " \t "])
name = st.text(NAME_CHARS, min_size=1, max_size=12).filter(
    lambda s: (s[0].isalpha() or s[0] == "_") and not _parses_as_float(s))


@st.composite
def sample_line(draw, n: int):
    values = np.array(draw(st.lists(finite32, min_size=n, max_size=n)), dtype=np.float32)
    fmt, sep = draw(number_format), draw(separator)
    text = sep.join(fmt.format(float(v)) for v in values)
    pad = draw(st.sampled_from(["", " ", "\t"]))
    return ("sample", values), (pad + text + pad).encode() + draw(line_end)


@st.composite
def bad_line(draw, n: int):
    """(("bad", reason), line bytes with its newline)."""
    reason = draw(st.sampled_from(["fields", "nonfinite", "not_numeric", "binary", "unicode",
                                   "long", "mixed"]))
    values = [f"{v:.9g}" for v in draw(st.lists(finite32, min_size=n, max_size=n))]
    if reason == "fields":
        k = draw(st.integers(1, n + 3).filter(lambda k: k != n))
        body = ",".join((values * 4)[:k]).encode()
    elif reason == "nonfinite":
        values[draw(st.integers(0, n - 1))] = draw(st.sampled_from(
            ["nan", "NaN", "inf", "-inf", "Infinity", "1e39", "-3.5e38"]))
        body = ",".join(values).encode()
    elif reason == "not_numeric":
        values[draw(st.integers(0, n - 1))] = draw(st.sampled_from(["x?1", "1.2.3", "--1", "0x1f",
                                                                   "1e", "+-"] + ([""] if n > 1 else [])))
        body = ",".join(values).encode()
    elif reason in ("binary", "unicode"):
        if reason == "binary":
            body = draw(st.binary(min_size=1, max_size=80).filter(lambda b: b"\n" not in b))
            body += bytes([draw(st.integers(0x80, 0xFF))])
        else:
            text = draw(st.text(min_size=1, max_size=40).filter(lambda t: "\n" not in t))
            body = (text + draw(st.characters(min_codepoint=0x80))).encode("utf-8", "surrogatepass")
        if body.strip().startswith(b"#"):
            body = b"x" + body  # a comment, not junk: covered by the comment lines
        reason = "binary"
    elif reason == "long":
        body = draw(st.binary(min_size=MAX_LINE_BYTES + 1, max_size=3 * MAX_LINE_BYTES)
                    .map(lambda b: b.replace(b"\n", b" ")))
    else:  # commas and tabs mixed in one line: the comma split leaves a field with a tab
        values = values + ["1", "2"]  # at least one comma, whatever n
        body = (values[0] + "\t" + ",".join(values[1:])).encode()
        reason = "not_numeric"
    if len(body) > MAX_LINE_BYTES:
        reason = "long"
    return ("bad", reason), body + draw(line_end)


@st.composite
def other_line(draw, n: int):
    kind = draw(st.sampled_from(["comment", "empty", "header"]))
    if kind == "comment":
        body = b"#" + draw(st.binary(max_size=100).map(lambda b: b.replace(b"\n", b"")))
        body = draw(st.sampled_from([b"", b" ", b"\t"])) + body
    elif kind == "empty":
        body = draw(st.sampled_from([b"", b" ", b"\t", b"  \t ", b"\r"]))
    else:
        body = draw(separator).join(draw(st.lists(name, min_size=n, max_size=n))).encode()
    if len(body) > MAX_LINE_BYTES:
        return ("bad", "long"), body + b"\n"
    return (kind, None), body + draw(line_end)


# A connect-time fragment or an unterminated tail: short, or around the line limit.
partial_line = st.one_of(st.binary(max_size=40),
                         st.binary(min_size=MAX_LINE_BYTES - 2, max_size=MAX_LINE_BYTES + 200)
                         ).map(lambda b: b.replace(b"\n", b""))


@st.composite
def stream(draw):
    """(n_channels, first fragment, [(fate, line)], unterminated tail)."""
    n = draw(st.integers(1, 8))
    lines = draw(st.lists(st.one_of(sample_line(n), sample_line(n), bad_line(n), other_line(n)),
                          max_size=60))
    fragment, tail = draw(partial_line), draw(partial_line)
    return n, fragment + b"\n", lines, tail


def feed_in_chunks(parser: LineParser, raw: bytes, sizes: list[int]) -> np.ndarray:
    out, i, k = [], 0, 0
    while i < len(raw):
        size = sizes[k % len(sizes)]
        rows = parser.feed(raw[i:i + size])
        if len(rows):
            out.append(rows)
        i, k = i + size, k + 1
    return np.concatenate(out) if out else np.zeros((0, parser.n_channels or 0), np.float32)


chunk_sizes = st.lists(st.integers(1, 1500), min_size=1, max_size=12)


@FUZZ
@given(stream(), chunk_sizes)
def test_every_line_has_exactly_one_fate_and_samples_are_exact(s, sizes):
    n, fragment, lines, tail = s
    raw = fragment + b"".join(line for _, line in lines) + tail
    parser = LineParser(n, drop_first=True)
    got = feed_in_chunks(parser, raw, sizes)
    parser.finish()

    fates = [fate for fate, _ in lines]
    expected = [v for (kind, v) in fates if kind == "sample"]
    want = np.array(expected, dtype=np.float32).reshape(len(expected), n)
    assert got.shape == want.shape and np.array_equal(got, want)
    s = parser.stats
    bad = [reason for kind, reason in fates if kind == "bad"]
    if tail:  # an unterminated tail is one bad line: over-long already, else cut
        bad.append("long" if len(tail) > MAX_LINE_BYTES else "cut")
    assert s.dropped_first == 1
    assert s.samples == len(expected)
    assert s.bad_lines == len(bad) and s.bad_reasons == Counter(bad)
    assert s.comments == sum(kind == "comment" for kind, _ in fates)
    assert s.empty == sum(kind == "empty" for kind, _ in fates)
    assert s.headers == sum(kind == "header" for kind, _ in fates)
    # Every byte is in one line: each newline closes one, the tail is one more.
    assert s.lines == raw.count(b"\n") + (1 if tail else 0)
    assert parser.pending == b""


@FUZZ
@given(st.one_of(st.binary(max_size=3000),
                 st.builds(bytes.__add__, partial_line, st.binary(max_size=1000))),
       chunk_sizes, st.sampled_from([None, 1, 3, 6]))
def test_random_bytes_never_raise_and_chunking_never_matters(raw, sizes, n):
    whole = LineParser(n)
    once = whole.feed(raw)
    whole.finish()
    chunked = LineParser(n)
    got = feed_in_chunks(chunked, raw, sizes)
    chunked.finish()
    assert np.array_equal(got.reshape(-1), once.reshape(-1))
    assert chunked.stats.to_dict() == whole.stats.to_dict()
    assert whole.stats.lines == raw.count(b"\n") + (0 if raw.endswith(b"\n") or not raw else 1)
    assert np.isfinite(once).all()


@FUZZ
@given(stream(), st.integers(1, 1500))
def test_one_byte_chunks_equal_one_chunk(s, size):
    """The per-byte extreme: a board that trickles, against everything in one read."""
    n, fragment, lines, tail = s
    raw = fragment + b"".join(line for _, line in lines) + tail
    a, b = LineParser(n), LineParser(n)
    got_a = feed_in_chunks(a, raw, [1])
    got_b = feed_in_chunks(b, raw, [size])
    a.finish()
    b.finish()
    assert np.array_equal(got_a, got_b) and a.stats.to_dict() == b.stats.to_dict()


@st.composite
def segments(draw):
    """Gap-free segments of a 3-channel stream, each with junk between its sample lines."""
    out = []
    for _ in range(draw(st.integers(1, 4))):
        lines = draw(st.lists(st.one_of(sample_line(3), sample_line(3), sample_line(3),
                                        bad_line(3), other_line(3)), max_size=80))
        cut, tail = draw(partial_line), draw(partial_line)
        out.append((cut + b"\n", lines, tail))
    return out


@FUZZ
@given(segments(), st.integers(1, 12), st.integers(1, 12), chunk_sizes)
def test_windows_skip_bad_lines_and_restart_at_gaps(segs, window, hop, sizes):
    """The parser and the StreamWindower as the runner wires them: bad lines drop out, a gap
    (disconnect: parser.reset + windower.reset) starts the windows over."""
    parser = LineParser(3)
    windower = StreamWindower(window, hop, 3)
    got, want = [], []
    for fragment, lines, tail in segs:
        good = np.array([v for (kind, v), _ in lines if kind == "sample"],
                        dtype=np.float32).reshape(-1, 3)
        want += list(cut_windows(good, window, hop))
        raw = fragment + b"".join(line for _, line in lines) + tail
        for sample in feed_in_chunks(parser, raw, sizes):
            w = windower.push(sample)
            if w is not None:
                got.append(w.copy())
        parser.reset()  # the port vanished: the tail is one cut line, the next first line dropped
        windower.reset()
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        assert np.array_equal(g, w)
