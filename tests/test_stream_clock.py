"""The runner's timing (device/core/stream_clock.py) on made-up times: naps, silences, stalls, late
reads, the first-line deadline and the arrival rate measured again after every gap."""

from __future__ import annotations

import pytest

from gesturekit.device.core.stream_clock import (
    MAX_NAP_S,
    MAX_NAP_SAMPLES,
    RATE_PROBE_S,
    StreamClock,
)

MODEL_HZ = 50.0
GAP_S = 1.0


def clock(gap_s: float = GAP_S, first_line_timeout_s: float = 5.0, at: float = 100.0) -> StreamClock:
    c = StreamClock(MODEL_HZ, gap_s, first_line_timeout_s)
    c.connected(at)
    return c


def stream(c: StreamClock, start: float, seconds: float, rate_hz: float, every_s: float = 0.2,
           ) -> tuple[float, list]:
    """A board at `rate_hz` read every `every_s` from `start`: (time of the last read, the
    arrivals). Reads land on whole samples, as a napping reader's do."""
    arrivals, t, sent = [], start, 0
    while t < start + seconds - 1e-9:
        t += every_s
        due = round((t - start) * rate_hz)
        arrivals.append(c.samples(due - sent, t))
        sent = due
        assert c.read_done(t) is None
    return t, arrivals


def measured(arrivals: list) -> list[float]:
    return [a.rate_hz for a in arrivals if a.rate_hz is not None]


def test_naps_end_before_the_sample_that_completes_a_window():
    c = clock(gap_s=4.0)
    # Unmeasured: the stream may run at twice the model's rate.
    assert c.nap(20) == pytest.approx(18.5 / (2 * MODEL_HZ))
    assert c.nap(2) == 0.0  # less than a sample period to wait: read at once
    assert c.nap(1) == 0.0
    assert c.nap(1000) == pytest.approx(MAX_NAP_SAMPLES / (2 * MODEL_HZ))  # a tty's buffer
    assert c.nap(20, left_s=0.05) == pytest.approx(0.05)  # --duration ends first
    assert c.nap(20, left_s=-1.0) == 0.0
    assert clock(gap_s=0.4).nap(40) == pytest.approx(0.1)  # a quarter of the gap
    assert clock(gap_s=10.0).nap(1000) == pytest.approx(min(MAX_NAP_S, MAX_NAP_SAMPLES / 100))


def test_naps_follow_the_measured_rate_but_never_slower_than_the_models():
    fast = clock(gap_s=4.0)
    stream(fast, 100.0, 3.0, 200.0)
    assert fast.rate_hz == pytest.approx(200.0)
    assert fast.nap(20) == pytest.approx(18.5 / 200)
    slow = clock(gap_s=4.0)
    stream(slow, 100.0, 3.0, 20.0)
    assert slow.rate_hz == pytest.approx(20.0)
    assert slow.nap(20) == pytest.approx(18.5 / MODEL_HZ)  # not 18.5 / 20


def test_the_rate_is_measured_after_the_probe_and_without_the_first_chunk():
    c = clock()
    # The first read brings 40 samples that piled up long before it (a late first read).
    arrival = c.samples(40, 100.8)
    assert arrival == (None, None) and c.read_done(100.8) is None
    t, arrivals = stream(c, 100.8, 3.0, 50.0)
    rates = measured(arrivals)
    assert rates == [pytest.approx(50.0)]  # 40 extra samples would have made it 63 Hz
    assert c.rate_hz == rates[0]
    # Once: the first read at or after RATE_PROBE_S past the first chunk.
    first = next(i for i, a in enumerate(arrivals) if a.rate_hz is not None)
    assert 0.2 * (first + 1) == pytest.approx(RATE_PROBE_S)


def test_too_few_samples_measure_no_rate():
    c = clock(gap_s=10.0)
    _, arrivals = stream(c, 100.0, 5.0, 1.0)  # 5 samples in 5 s
    assert measured(arrivals) == [] and c.rate_hz is None


def test_a_steady_stream_is_never_a_gap_whatever_the_read_size():
    c = clock()
    for every_s in (0.02, 0.25, 0.9):
        _, arrivals = stream(c, c.last_read, 5.0, 50.0, every_s)
        assert all(a.silence_s is None for a in arrivals)


def test_a_stall_reading_a_full_chunk_late_is_no_silence():
    c = clock()
    t, _ = stream(c, 100.0, 3.0, 50.0)
    # The runner was descheduled for 3 s (three gaps' worth); the board kept sending.
    arrival = c.samples(150, t + 3.0)
    assert arrival.silence_s is None
    assert c.read_done(t + 3.0) is None
    assert c.last_data == pytest.approx(t + 3.0)


def test_a_silence_that_ended_during_a_nap_came_before_the_samples_read():
    c = clock()
    t, _ = stream(c, 100.0, 3.0, 50.0)  # the rate is measured: 50 Hz
    # The board stops right after the read at t, stays silent 1.3 s, then sends 10 samples
    # (0.2 s) by the next read: the reader could not see the silence, it sees 10 samples late.
    now = t + 1.5
    arrival = c.samples(10, now)
    assert arrival.silence_s == pytest.approx(1.3)  # timed to when the first of them came
    assert c.read_done(now) is None  # one gap, not two


def test_a_late_read_of_few_samples_means_the_board_stopped_after_them():
    c = clock()
    t, _ = stream(c, 100.0, 3.0, 50.0)
    # 5 samples (0.1 s) read 0.9 s later: they came right after the read at t, then silence.
    assert c.samples(5, t + 0.9).silence_s is None
    assert c.last_data == pytest.approx(t + 0.1)
    assert c.read_done(t + 1.05) is None
    silence = c.read_done(t + 1.15)  # 1.05 s after the last sample: a gap, timed from it
    assert silence == pytest.approx(1.05)


def test_a_silence_between_reads_is_one_gap_and_the_next_needs_data_first():
    c = clock()
    t, _ = stream(c, 100.0, 2.0, 50.0)
    reads = [t + 0.05 * k for k in range(1, 60)]  # 3 s of empty reads (50 ms timeouts)
    gaps = [(r, s) for r in reads if (s := c.read_done(r)) is not None]
    assert len(gaps) == 1
    r, silence = gaps[0]
    assert silence > GAP_S and r - t == pytest.approx(silence)
    assert r - t <= GAP_S + 0.05 + 1e-9  # found within one read of the gap's length
    assert not c.flowing
    # The board speaks again, then falls silent again: a second gap.
    c.samples(5, t + 3.2)
    assert c.read_done(t + 3.2) is None
    assert c.read_done(t + 4.5) == pytest.approx(4.5 - 3.05)  # the 5 came after the read at t + 2.95


def test_the_samples_that_end_a_gap_are_dated_after_it():
    """Found with its samples, a gap ends when the first of them came and they follow it at
    the stream's rate: a late read of more than --gap of them is one gap, not a second one
    right after, which would restart the windows after them (a bug of the runner before
    StreamClock), and silences are checked again (the runner used `_connected_at + 1e-6`)."""
    c = clock()
    t, _ = stream(c, 100.0, 3.0, 50.0)
    # 100 samples (2 s at 50 Hz) read 5 s later: the gap ended 2 s before this read.
    now = t + 5.0
    assert c.samples(100, now).silence_s == pytest.approx(3.0)
    assert c.last_data == pytest.approx(now)
    assert c.flowing
    assert c.read_done(now) is None
    assert c.read_done(now + 1.0) is None
    assert c.read_done(now + 1.05) == pytest.approx(1.05)
    # A gap found with fewer samples than the time since gives: they came right after it.
    t, _ = stream(c, now + 1.05, 3.0, 50.0)
    assert c.samples(5, t + 2.0).silence_s == pytest.approx(2.0 - 0.1)
    assert c.last_data == pytest.approx(t + 2.0)
    assert c.read_done(t + 2.0) is None
    assert c.samples(1, t + 2.9).silence_s is None  # 0.9 s later: the board is slow, not silent
    assert c.read_done(t + 2.9) is None


def test_junk_lines_keep_a_stream_from_looking_silent():
    c = clock()
    t, _ = stream(c, 100.0, 2.0, 50.0)
    for k in range(1, 10):  # a line of junk every 0.5 s, no sample, for 4.5 s
        c.junk_line(t + 0.5 * k)
        assert c.read_done(t + 0.5 * k) is None
    assert c.read_done(t + 4.5 + 1.1) == pytest.approx(1.1)


def test_no_sample_within_the_first_line_timeout_is_overdue_junk_or_not():
    c = clock(first_line_timeout_s=5.0, at=100.0)
    c.junk_line(101.0)
    assert c.read_done(101.0) is None
    assert not c.first_line_overdue(105.0)
    assert c.first_line_overdue(105.01)
    c.samples(1, 105.02)
    assert not c.first_line_overdue(200.0)  # silences are gaps from here on
    c.connected(300.0)  # a reconnect: the deadline starts again
    assert not c.first_line_overdue(304.9) and c.first_line_overdue(305.1)


def test_junk_then_silence_before_the_first_sample_is_no_gap():
    """Before the first sample the first-line deadline applies; a gap would restart nothing
    (the runner used to emit one when the first samples came after junk and a silence)."""
    c = clock()
    c.junk_line(100.5)
    assert c.read_done(102.0) is None
    assert c.samples(10, 102.3).silence_s is None
    assert c.read_done(102.3) is None


def test_the_rate_is_measured_again_after_every_gap():
    c = clock()
    t, arrivals = stream(c, 100.0, 3.0, 50.0)
    assert measured(arrivals) == [pytest.approx(50.0)]
    # A silence gap, then the board comes back at 80 Hz.
    assert c.read_done(t + 1.2) is not None
    t, arrivals = stream(c, t + 1.2, 1.8, 80.0)
    assert measured(arrivals) == []  # not yet RATE_PROBE_S since the first chunk after the gap
    assert c.rate_hz == pytest.approx(50.0)  # until then the previous measurement times naps
    t, arrivals = stream(c, t, 1.0, 80.0)
    assert measured(arrivals) == [pytest.approx(80.0)] and c.rate_hz == pytest.approx(80.0)
    # A reconnect, then 40 Hz: measured again too.
    c.connected(t + 0.5)
    t, arrivals = stream(c, t + 0.5, 3.0, 40.0)
    assert measured(arrivals) == [pytest.approx(40.0)]


def test_a_silence_while_measuring_restarts_the_measurement():
    c = clock()
    t, _ = stream(c, 100.0, 1.0, 50.0)
    assert c.rate_hz is None
    assert c.read_done(t + 1.1) is not None  # a gap in the middle of the probe
    t, arrivals = stream(c, t + 1.1, 3.0, 50.0)
    # Counted across the gap the first estimate would have been about 38 Hz.
    assert measured(arrivals) == [pytest.approx(50.0)]


def test_a_gap_found_with_its_samples_starts_the_probe_at_them():
    c = clock()
    t, _ = stream(c, 100.0, 3.0, 50.0)
    now = t + 2.0
    arrival = c.samples(10, now)
    assert arrival.silence_s is not None and arrival.rate_hz is None
    assert c.read_done(now) is None
    t, arrivals = stream(c, now, 2.4, 100.0)
    # Those 10 samples are the new probe's first chunk: counted after them, 100 Hz exactly.
    assert measured(arrivals) == [pytest.approx(100.0)]
