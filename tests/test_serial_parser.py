"""The line parser against the serial protocol: every line accounted for, bad lines never
become samples, chunking never matters."""

from __future__ import annotations

import numpy as np
import pytest
import serial
from hypothesis import given, settings
from hypothesis import strategies as st

from gesturekit.device.core.lineparser import LineParser, format_sample
from gesturekit.device.live.simulate import junk_line


def lines_of(data: np.ndarray) -> bytes:
    return b"".join(format_sample(row) for row in data)


def test_formats_separators_and_line_ends():
    parser = LineParser(drop_first=False)
    rows = parser.feed(b"1,2,3\r\n4\t5\t6\n 7  8 9 \n# comment\n\nax,ay,az\n10, 11 ,12\n")
    assert rows.tolist() == [[1, 2, 3], [4, 5, 6], [7, 8, 9], [10, 11, 12]]
    assert parser.n_channels == 3 and parser.header == ["ax", "ay", "az"]
    s = parser.stats
    assert (s.samples, s.comments, s.empty, s.headers, s.bad_lines) == (4, 1, 1, 1, 0)


def test_first_line_after_connect_is_dropped_even_when_it_looks_valid():
    parser = LineParser(3)
    rows = parser.feed(b"3,4.5,6\n1,2,3\n")  # "3,4.5,6" may be the tail of "2.3,4.5,6"
    assert rows.tolist() == [[1, 2, 3]]
    assert parser.stats.dropped_first == 1


@pytest.mark.parametrize("line, reason", [
    (b"1,2\n", "fields"), (b"1,2,3,4\n", "fields"), (b"1,x,3\n", "not_numeric"),
    (b"1,nan,3\n", "nonfinite"), (b"1,inf,3\n", "nonfinite"), (b"1,1e39,3\n", "nonfinite"),
    (b"\xff\xfe\x00\x01\n", "binary"), (b"1,2," + b"3" * 600 + b"\n", "long"),
    (b"1,,3\n", "not_numeric"), (b"ax,ay\n", "not_numeric"),
])
def test_bad_lines_are_counted_and_never_shift_samples(line, reason):
    parser = LineParser(3, drop_first=False)
    rows = parser.feed(b"1,2,3\n" + line + b"4,5,6\n")
    assert rows.tolist() == [[1, 2, 3], [4, 5, 6]]
    assert parser.stats.bad_lines == 1 and parser.stats.bad_reasons == {reason: 1}


def test_long_line_across_chunks_is_one_bad_line_and_memory_stays_bounded():
    parser = LineParser(3, drop_first=False)
    out = [parser.feed(b"1,2,3\n" + b"9" * 300)]
    for _ in range(100):
        out.append(parser.feed(b"9" * 300))
        assert len(parser.pending) <= 512
    out.append(parser.feed(b"99\n4,5,6\n"))
    assert np.concatenate(out).tolist() == [[1, 2, 3], [4, 5, 6]]
    assert parser.stats.bad_reasons == {"long": 1}


def test_cut_line_at_finish_and_reset_is_one_bad_line():
    parser = LineParser(3, drop_first=True)
    parser.feed(b"x\n1,2,3\n4,5")
    parser.reset()  # a disconnect: the partial line is lost, the next first line dropped
    rows = parser.feed(b",6\n7,8,9\n")
    assert rows.tolist() == [[7, 8, 9]]
    s = parser.stats
    assert (s.samples, s.bad_reasons["cut"], s.dropped_first) == (2, 1, 2)


def test_wrong_channel_count_is_recorded_for_the_mismatch_error():
    parser = LineParser(6, drop_first=False)
    parser.feed(b"1,2,3\n4,5,6\n7,8,9\n")
    assert parser.stats.samples == 0 and parser.stats.wrong_counts == {3: 3}


def test_float32_values_survive_the_board_format_exactly():
    data = np.random.default_rng(0).normal(size=(500, 6)).astype(np.float32) * 1e3
    parser = LineParser(6, drop_first=False)
    assert np.array_equal(parser.feed(lines_of(data)), data)


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), garbage=st.floats(0.0, 0.5),
       chunk_sizes=st.lists(st.integers(1, 700), min_size=1, max_size=20))
def test_any_chunking_with_junk_gives_the_same_samples(seed, garbage, chunk_sizes):
    """Junk lines from the simulator are each exactly one bad line, whatever the chunking."""
    rng = np.random.default_rng(seed)
    data = rng.normal(size=(200, 6)).astype(np.float32)
    stream, injected = [], 0
    for row in data:
        if rng.random() < garbage:
            stream.append(junk_line(row, rng)[1])
            injected += 1
        stream.append(format_sample(row))
    raw = b"".join(stream)
    parser = LineParser(6, drop_first=False)
    out, i, k = [], 0, 0
    while i < len(raw):
        size = chunk_sizes[k % len(chunk_sizes)]
        out.append(parser.feed(raw[i:i + size]))
        i, k = i + size, k + 1
    assert np.array_equal(np.concatenate(out), data)
    assert parser.stats.bad_lines == injected
    assert parser.stats.lines == len(data) + injected


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=2000), st.integers(1, 64))
def test_never_raises_and_accounts_for_every_line(raw, chunk):
    parser = LineParser(drop_first=True)
    total = 0
    for i in range(0, len(raw), chunk):
        total += len(parser.feed(raw[i:i + chunk]))
    parser.finish()
    s = parser.stats
    assert total == s.samples
    # Each newline ends one line; unterminated bytes at the end are one more (cut) line.
    assert s.lines == raw.count(b"\n") + (1 if raw and not raw.endswith(b"\n") else 0)


def test_pyserial_loop_url_round_trip():
    """The parser fed by chunked reads from a real pyserial port object."""
    data = np.arange(60, dtype=np.float32).reshape(10, 6)
    port = serial.serial_for_url("loop://", timeout=0.05)
    port.write(b"partial,line\n" + lines_of(data))
    parser = LineParser(6)
    out = []
    while parser.stats.samples < 10:
        chunk = port.read(port.in_waiting or 1)
        assert chunk, "loop:// ran dry before every sample arrived"
        out.append(parser.feed(chunk))
    assert np.array_equal(np.concatenate(out), data)


def test_dropped_first_line_still_names_the_channels_when_it_is_a_whole_header():
    parser = LineParser()
    assert parser.feed(b"ax,ay,az\n1,2,3\n").tolist() == [[1, 2, 3]]
    assert parser.header == ["ax", "ay", "az"] and parser.stats.dropped_first == 1
    cut = LineParser()
    cut.feed(b"y,az\n1,2,3\n")  # a cut header does not fit the data's width: no names
    assert cut.header is None and cut.n_channels == 3


def test_over_long_first_line_is_dropped_the_same_whatever_the_chunking():
    raw = b"\x00" * 600 + b"\n1,2,3\n"
    whole, bytewise = LineParser(3), LineParser(3)
    assert whole.feed(raw).tolist() == [[1, 2, 3]]
    got = [bytewise.feed(raw[i:i + 1]) for i in range(len(raw))]
    assert np.concatenate(got).tolist() == [[1, 2, 3]]
    assert whole.stats.to_dict() == bytewise.stats.to_dict()
    assert whole.stats.dropped_first == 1 and whole.stats.bad_lines == 0
