"""The runner on an in-process fake board (tests/fakeboard, `fakeboard://`) in virtual time:
minutes of stream in a fraction of a second, with exact times. Gaps, reconnects, bad lines,
the rate warning and events; tests/test_runner_e2e.py runs the same over real ptys."""

from __future__ import annotations

import io
import json
import signal
from pathlib import Path

import numpy as np
import pytest
from fakeboard import FakeBoard, FakeClock
from test_runner_e2e import windows_in

from gesturekit.device.core.backends import Classifier
from gesturekit.device.core.bundle import load_bundle
from gesturekit.device.core.model_info import rate_is_off
from gesturekit.device.core.postprocess import EventDetector, PostprocessConfig
from gesturekit.device.core.recording import load_session
from gesturekit.device.core.stream_eval import window_probabilities
from gesturekit.device.live.runner import Printer, Runner, RunOptions
from gesturekit.device.live.simulate import junk_line
from gesturekit.errors import UserError

HEADER = b"ax,ay,az,gx,gy,gz\r\n"  # what a board prints at connect; the runner drops that line
END = 3600.0  # scripts end with the cable pulled for good: the run ends "disconnected"
EAGER = {"threshold": 0.4, "min_on_s": 0.0}  # the quick model's events, often enough to count


@pytest.fixture(scope="module")
def bundle(quick_bundle):
    return load_bundle(quick_bundle)


@pytest.fixture(scope="module")
def session(synth_dataset) -> np.ndarray:
    """A synthetic session (3 min at 50 Hz, the quick model's rate) with gestures in it."""
    return load_session(sorted(Path(synth_dataset).rglob("*.csv"))[0]).data


def run(bundle, board: FakeBoard, clock: FakeClock, sleep=None, **options) -> tuple[list[dict], str]:
    """`gesturekit run --json --threshold 0.4 --min-on 0` on the board; returns
    (records, stderr). `sleep`: the runner's, when it is not the clock's."""
    out, err = io.StringIO(), io.StringIO()
    opts = RunOptions(port=board.url, **{"reconnect_timeout_s": 0.0, **options})
    runner = Runner(bundle, Classifier(bundle, "ai_edge_litert", "float"),
                    PostprocessConfig.for_bundle(bundle, EAGER), opts, Printer(True, out, err),
                    clock=clock, sleep=sleep or clock.sleep)
    runner.run()
    return [json.loads(line) for line in out.getvalue().splitlines()], err.getvalue()


def test_windows_and_events_equal_offline_through_junk_and_cut_lines(bundle, session):
    clock = FakeClock()
    board = FakeBoard("junk", clock, clock.sleep).line(HEADER)
    rng = np.random.default_rng(0)
    eaten = np.arange(97, len(session), 97)  # a cut line before these eats the sample
    for start, end in zip([0, *eaten], [*eaten, len(session)], strict=True):
        board.play(session[start:end], bundle.sample_rate_hz)
        if end < len(session):
            board.line(junk_line(session[start], rng)[1])
            board.line(b"0.5,0.25,")  # half a sample line; the next sample ends it: one bad line
    records, err = run(bundle, board.unplug(END), clock)
    summary = records[-1]
    assert summary["ended"] == "disconnected" and summary["gaps"] == 0, summary
    assert summary["samples"] == len(session) - len(eaten)
    assert summary["bad_lines"] == 2 * len(eaten)
    assert summary["rate_hz"] == pytest.approx(bundle.sample_rate_hz, rel=0.02)
    assert err == ""  # no rate warning, no traceback
    # The offline reference: the same samples, without the ones the cut lines ate, turned into
    # the model's frame from their first seconds as the runner turns them.
    data = np.delete(session, eaten, axis=0)
    ends, probs = window_probabilities(bundle, data, Classifier(bundle, "ai_edge_litert", "float"))
    detector = EventDetector(PostprocessConfig.for_bundle(bundle, EAGER), bundle.labels,
                             bundle.background_index)
    offline = []
    for p, end in zip(probs, ends, strict=True):
        event = detector.update(p, end / bundle.sample_rate_hz, int(end))
        if event is not None:
            offline.append((event.label, int(end)))
    events = [r for r in records if r["kind"] == "event"]
    assert summary["windows"] == len(ends)
    assert len(offline) >= 3 and [(e["label"], e["sample"]) for e in events] == offline
    # The nap ends before the sample that completes a window: each event is decided when
    # that sample comes (virtual time, so exactly), the k-th sample read being row kept[k-1].
    kept = np.delete(np.arange(len(session)), eaten)
    for e in events:
        due = (kept[e["sample"] - 1] + 1) / bundle.sample_rate_hz
        assert e["time"] == pytest.approx(due, abs=0.0015)


@pytest.mark.parametrize("silence_s, gaps", [(0.9, []), (1.3, [300])])
def test_a_silence_over_the_gap_restarts_the_windows_where_it_began(bundle, session, silence_s,
                                                                    gaps):
    clock = FakeClock()
    rate = bundle.sample_rate_hz
    board = FakeBoard("silence", clock, clock.sleep).line(HEADER).play(session[:300], rate)
    board.silence(silence_s).play(session[300:600], rate).unplug(END)
    records, _ = run(bundle, board, clock, gap_s=1.0)
    found = [r for r in records if r["kind"] == "gap"]
    assert [g["sample"] for g in found if g["reason"] == "silence"] == gaps
    summary = records[-1]
    assert summary["samples"] == 600
    assert summary["windows"] == windows_in(bundle, *([300, 300] if gaps else [600]))
    if gaps:  # found within a nap (a quarter of --gap) and a read of the gap's length
        assert 1.0 < found[0]["seconds"] <= 1.0 + 0.25 + 0.05
        # and timed from the last sample before it (estimated: within a sample period)
        assert found[0]["time"] == pytest.approx(300 / rate + found[0]["seconds"], abs=1.01 / rate)


def test_a_runner_stalled_through_a_silence_finds_one_gap_before_the_samples_it_reads(bundle,
                                                                                   session):
    """The runner is descheduled for 4 s from 6.1 s; the board is silent from 6 s to 8 s,
    then sends again. The first read brings 2.1 s of samples: one gap before them, and their
    windows stay (the runner before StreamClock dated them before the gap's end and found a
    second gap right after them, restarting the windows after them)."""
    clock = FakeClock()
    rate = bundle.sample_rate_hz
    board = FakeBoard("stall", clock, clock.sleep).line(HEADER).play(session[:300], rate)
    board.silence(2.0).play(session[300:600], rate).unplug(END)
    stalled = []

    def sleep(seconds: float) -> None:
        if not stalled and clock() - board.started_at >= 6.1:
            stalled.append(clock())
            clock.sleep(4.0)
        clock.sleep(seconds)

    records, _ = run(bundle, board, clock, sleep, gap_s=1.0)
    assert stalled
    gaps = [r for r in records if r["kind"] == "gap"]
    assert [(g["reason"], g["sample"]) for g in gaps] == [("silence", 300)]
    assert gaps[0]["seconds"] == pytest.approx(2.0, abs=1.01 / rate)  # timed to the gap
    assert records[-1]["samples"] == 600
    assert records[-1]["windows"] == windows_in(bundle, 300, 300)


def test_a_reconnect_restarts_the_windows_and_measures_the_rate_again(bundle, session):
    clock = FakeClock()
    board = FakeBoard("replug", clock, clock.sleep).line(HEADER)
    board.play(session[:300], bundle.sample_rate_hz).unplug(0.5).line(HEADER)
    board.play(session[300:900], 80.0).unplug(END)  # it comes back at 80 Hz
    records, err = run(bundle, board, clock, reconnect_timeout_s=5.0)
    summary = records[-1]
    gaps = [r for r in records if r["kind"] == "gap"]
    assert summary["reconnects"] == 1 and summary["ended"] == "disconnected"
    assert [(g["reason"], g["sample"]) for g in gaps] == [("disconnected", 300)]
    # Found within two naps of the pull at 6 s; tries after 0.05, 0.15, 0.35, 0.75 s
    # (back-off) until the cable is back at 6.5 s; the lines before the reopen went to no one.
    reopened = gaps[0]["time"]
    assert gaps[0]["seconds"] in (0.05, 0.15, 0.35, 0.75)
    assert 6.5 <= reopened < 6.5 + 0.4 and 6.0 < reopened - gaps[0]["seconds"] < 6.0 + 0.55
    heard = 600 - (reopened - 6.5) * 80  # of the 600 after the pull
    assert abs(summary["samples"] - (300 + heard - 1)) <= 1  # -1: the first line is dropped
    assert summary["windows"] == windows_in(bundle, 300, summary["samples"] - 300)
    assert summary["rate_hz"] == pytest.approx(80.0, rel=0.02)
    assert err.count("warning:") == 1 and "stream runs at about 80" in err
    assert board.opens == 2


def test_a_disconnect_past_the_reconnect_deadline_ends_the_run(bundle, session):
    clock = FakeClock()
    board = FakeBoard("gone", clock, clock.sleep).line(HEADER)
    board.play(session[:200], bundle.sample_rate_hz).unplug(END)
    start = clock()
    records, _ = run(bundle, board, clock, reconnect_timeout_s=3.0)
    assert records[-1]["ended"] == "disconnected" and records[-1]["reconnects"] == 0
    assert clock() - start == pytest.approx(200 / bundle.sample_rate_hz + 3.0, abs=1.01)


@pytest.mark.parametrize("rate_hz", [44.4, 45.6, 54.4, 55.6])
def test_the_rate_warning_threshold(bundle, session, rate_hz):
    clock = FakeClock()
    board = FakeBoard("rate", clock, clock.sleep).line(HEADER).play(session[:400], rate_hz)
    records, err = run(bundle, board.unplug(END), clock)
    # One sample more or less in the RATE_PROBE_S seconds measured: 0.5 Hz.
    assert abs(records[-1]["rate_hz"] - rate_hz) <= 0.5 + 0.005
    warned = "warning: stream runs at about" in err
    assert warned == rate_is_off(rate_hz, bundle.sample_rate_hz)
    assert warned == (abs(rate_hz - bundle.sample_rate_hz) > 5)  # 10% of the model's 50 Hz


def test_junk_only_hits_the_first_line_deadline_on_time(bundle):
    clock = FakeClock()
    board = FakeBoard("junkonly", clock, clock.sleep)
    for _ in range(100):
        board.line(b"\x00\xff garbage \xfe\r\n").silence(0.1)
    start = clock()
    with pytest.raises(UserError, match=r"no valid sample line within 2 s \(\d+ bad lines \(binary"):
        run(bundle, board, clock, first_line_timeout_s=2.0)
    assert 2.0 < clock() - start <= 2.0 + 0.25 + 0.05  # at the first read after the deadline


def test_gesturekit_run_plays_a_fake_board_in_real_time(quick_bundle, session, capsys):
    """The handler through the CLI and the real clock: `gesturekit run --port fakeboard://rt`."""
    from gesturekit.cli import main

    board = FakeBoard("rt").line(HEADER).play(session[:200], 100.0)  # then silent
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        code = main(["run", "--port", board.url, "--model", str(quick_bundle), "--json",
                     "--duration", "3.5", "--gap", "1"])
    finally:
        for sig, handler in handlers.items():  # `run` takes Ctrl-C; give it back to pytest
            signal.signal(sig, handler)
    out, err = capsys.readouterr()
    assert code == 0, err
    records = [json.loads(line) for line in out.splitlines()]
    summary = records[-1]
    assert summary["ended"] == "duration" and summary["samples"] == 200, summary
    assert [(r["reason"], r["sample"]) for r in records if r["kind"] == "gap"] == [("silence", 200)]


def test_a_header_naming_the_channels_in_another_order_is_read_by_name(bundle, session):
    """The one channel rule: a stream whose header names the model's channels is mapped by
    name (here every column reversed), so its windows and events equal the model-order stream's;
    a header of other names is a warning and the columns are taken in order."""
    order = list(reversed(range(len(bundle.channels))))
    named = ",".join(bundle.channels[i] for i in order).encode() + b"\r\n"

    def events(header: bytes, data: np.ndarray) -> tuple[list, str]:
        clock = FakeClock()
        board = FakeBoard("order", clock, clock.sleep).line(b"# hello\r\n").line(header)
        records, err = run(bundle, board.play(data, bundle.sample_rate_hz).unplug(END), clock)
        return [(r["label"], r["sample"]) for r in records if r["kind"] == "event"], err

    reference, err = events(",".join(bundle.channels).encode() + b"\r\n", session)
    assert err == "" and len(reference) >= 3
    assert events(named, session[:, order]) == (reference, "")
    renamed, err = events(b"a,b,c,d,e,f\r\n", session)
    assert renamed == reference and "does not name the model's channels" in err
