"""End to end over real pseudo-terminals: `gesturekit simulate` plays a HAPT test session,
`gesturekit run` classifies it, and every window equals the same interpreter run on the same
windows cut offline from the file."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from gesturekit.device.core.backends import Classifier
from gesturekit.device.core.bundle import load_bundle
from gesturekit.device.core.postprocess import EventDetector, PostprocessConfig
from gesturekit.device.core.stream_eval import reference_phase, window_probabilities
from gesturekit.device.core.windowing import window_starts

HAPT_RAW = Path("/work/shared/data/hapt/RawData")
if not HAPT_RAW.is_dir():  # CI lays shared/ beside the clone
    HAPT_RAW = Path(__file__).resolve().parents[2] / "shared/data/hapt/RawData"
SESSION = HAPT_RAW / "acc_exp05_user03.txt"  # short session (~16k samples)
GESTUREKIT = [sys.executable, "-m", "gesturekit.cli"]
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}

pytestmark = pytest.mark.skipif(not SESSION.is_file(), reason="shared HAPT data not present")


def start_simulator(recording: Path, *args: str, python: list[str] = GESTUREKIT):
    """Start `simulate --pty`; returns (process, pty path from its first stdout line)."""
    sim = subprocess.Popen([*python, "simulate", str(recording), "--pty", *args],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
    ready, _, _ = select.select([sim.stdout], [], [], 30)
    assert ready, "simulate printed no pty path within 30 s"
    return sim, sim.stdout.readline().strip()


def play_and_run(recording: Path, bundle: Path, tmp_path: Path, sim_args=(), run_args=(),
                 python: list[str] = GESTUREKIT):
    """Returns (records printed by `run --json --windows`, simulate's stats, run's stderr)."""
    stats = tmp_path / "sim_stats.json"
    sim, port = start_simulator(recording, "--stats", str(stats), *sim_args, python=python)
    try:
        # --gap 30: a loaded CI machine may stall the player; that is not what this checks.
        run = subprocess.run([*python, "run", "--port", port, "--model", str(bundle), "--json",
                              "--windows", "--reconnect-timeout", "0", "--gap", "30", *run_args],
                             capture_output=True, text=True, timeout=300, env=ENV)
        sim.wait(timeout=30)
    finally:
        sim.kill()
    assert run.returncode == 0, run.stderr
    assert "Traceback" not in run.stderr
    return [json.loads(line) for line in run.stdout.splitlines()], json.loads(stats.read_text()), \
        run.stderr


def hapt_session(acc: Path) -> np.ndarray:
    """The session as the offline reference reads it, independently of the simulator."""
    gyro = acc.with_name(acc.name.replace("acc_", "gyro_"))
    return np.hstack([np.loadtxt(acc), np.loadtxt(gyro)]).astype(np.float32)


def offline_probs(bundle, data: np.ndarray, backend: str, kind: str) -> tuple[np.ndarray, np.ndarray]:
    """(window ends, probabilities) of the session played from its start, offline (the
    stream's first seconds set the model's frame and are in no window)."""
    return window_probabilities(bundle, data, Classifier(bundle, backend, kind))


def windows_in(bundle, *stretches: int) -> int:
    """Windows over continuous stretches of samples (the windows restart at every gap; the
    first stretch's first seconds set the reference frame and are in no window)."""
    reference = reference_phase(bundle)
    return sum(len(window_starts(n - (reference if i == 0 else 0), bundle.window, bundle.hop))
               for i, n in enumerate(stretches))


@pytest.mark.parametrize("backend, kind, sim_args, hop", [
    ("ai_edge_litert", "float", [], None),
    ("ai_edge_litert", "int8", ["--garbage", "0.02", "--cut-lines", "--seed", "3"], None),
    ("onnxruntime", "onnx", ["--garbage", "0.02", "--seed", "4"], "0.48s"),  # run --hop
])
def test_live_windows_equal_offline_windows(quick_bundle, tmp_path, backend, kind, sim_args, hop):
    flags = ["--backend", backend] + (["--int8"] if kind == "int8" else []) + (
        ["--hop", hop] if hop else [])
    records, sent, stderr = play_and_run(SESSION, quick_bundle, tmp_path,
                                         ["--speed", "100", *sim_args], flags)
    data = hapt_session(SESSION)
    bundle = load_bundle(quick_bundle)
    if hop:  # 0.48 s: 24 samples at 50 Hz, whatever the bundle's own hop
        assert bundle.hop != 24
        bundle.hop = 24
    ends, expected = offline_probs(bundle, data, backend, kind)
    windows = [r for r in records if r["kind"] == "window"]
    summary = records[-1]
    assert summary["kind"] == "summary" and summary["ended"] == "disconnected", summary
    assert summary["samples"] == len(data) == sent["samples"], (summary, sent)
    assert summary["gaps"] == 0, summary
    assert summary["bad_lines"] == sent["garbage"]
    assert (sent["garbage"] > 0) == bool(sim_args)
    assert summary["windows"] == len(windows) == len(expected)
    assert [w["sample"] for w in windows] == ends.tolist()
    live = np.array([w["probs"] for w in windows], dtype=np.float32)
    assert np.array_equal(live, expected)  # bit for bit: same windows, same interpreter
    assert [w["label"] for w in windows] == [bundle.labels[i] for i in expected.argmax(axis=1)]
    # The events `run` printed are those the shared detector gives for the offline windows.
    detector = EventDetector(PostprocessConfig.for_bundle(bundle), bundle.labels,
                             bundle.background_index)
    offline_events = []
    for p, end in zip(expected, ends, strict=True):
        event = detector.update(p, end / bundle.sample_rate_hz, int(end))
        if event is not None:
            offline_events.append((event.label, int(end)))
    live_events = [(r["label"], r["sample"]) for r in records if r["kind"] == "event"]
    assert live_events == offline_events
    assert "expects 50 Hz" in stderr  # played at 100x: the rate warning, not an error
    # The reference pose is announced before anything else, and again once it set the frame.
    pose = bundle.reference_pose
    assert [(r["sample"], r["degrees"] is None) for r in records if r["kind"] == "reference"] == [
        (0, True), (reference_phase(bundle), False)]
    assert records[0]["kind"] == "reference" and pose.label in records[0]["message"]
    # No window holds a sample of the reference phase: the first ends a window after it.
    assert windows[0]["sample"] == reference_phase(bundle) + bundle.window


def read_until(run: subprocess.Popen, kind: str, seconds: float = 60) -> list[dict]:
    """`run --json` records up to the first of `kind` (within a deadline)."""
    records, deadline = [], time.monotonic() + seconds
    while not records or records[-1]["kind"] != kind:
        ready, _, _ = select.select([run.stdout], [], [], max(0.0, deadline - time.monotonic()))
        assert ready, f"run printed no {kind} record within {seconds:g} s: {records[-3:]}"
        records.append(json.loads(run.stdout.readline()))
    return records


def test_sigint_ends_with_a_summary_and_exit_0(quick_bundle, tmp_path):
    """Also SIGUSR1: the reference pose is asked for again, announced, and set again."""
    sim, port = start_simulator(SESSION, "--speed", "5", "--loop")
    try:
        run = subprocess.Popen([*GESTUREKIT, "run", "--port", port, "--model", str(quick_bundle),
                                "--json", "--windows"], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, env=ENV)
        # Signal once the run is classifying (its first window line), not after a guessed sleep.
        records = read_until(run, "window")
        run.send_signal(signal.SIGUSR1)
        asked = read_until(run, "reference")
        records += asked + read_until(run, "reference")
        run.send_signal(signal.SIGINT)
        rest, err = run.communicate(timeout=30)
        out = rest
    finally:
        sim.kill()
    assert run.returncode == 0, err
    frames = [r for r in records if r["kind"] == "reference"]
    assert [r["degrees"] is None for r in frames] == [True, False, True, False], frames
    assert frames[2]["sample"] > 0 and frames[3]["sample"] - frames[2]["sample"] == \
        frames[1]["sample"] - frames[0]["sample"]  # the same seconds of pose, asked for anew
    summary = json.loads(out.splitlines()[-1])
    assert summary["kind"] == "summary" and summary["ended"] == "interrupted"
    assert summary["samples"] > 0 and summary["windows"] > 0
    assert set(summary["latency_ms"]) == {"p50", "p99"}


def test_reconnect_after_a_pulled_cable_never_windows_across_the_gap(quick_bundle, tmp_path):
    link = tmp_path / "board"
    sim, port = start_simulator(SESSION, "--speed", "20", "--link", str(link),
                                "--disconnect-after", "2", "--reconnect-pause", "0.5")
    assert port == str(link)
    try:
        run = subprocess.run([*GESTUREKIT, "run", "--port", port, "--model", str(quick_bundle),
                              "--json", "--duration", "5", "--reconnect-timeout", "5"],
                             capture_output=True, text=True, timeout=60, env=ENV)
    finally:
        sim.kill()
    assert run.returncode == 0, run.stderr
    records = [json.loads(line) for line in run.stdout.splitlines()]
    summary = records[-1]
    gaps = [r for r in records if r["kind"] == "gap"]
    assert summary["reconnects"] == 1 and len(gaps) == 1 and gaps[0]["reason"] == "disconnected"
    # Windows restart after the gap: count them per continuous stretch of samples.
    bundle = load_bundle(quick_bundle)
    stretches = [gaps[0]["sample"], summary["samples"] - gaps[0]["sample"]]
    assert summary["windows"] == windows_in(bundle, *stretches)


def test_a_silence_just_over_the_gap_restarts_the_windows_where_it_began(quick_bundle):
    """The runner naps while a window's samples pile up; a silence that starts and ends during
    its naps must still be a gap, at the sample where the board stopped."""
    from gesturekit.device.core.lineparser import format_sample
    from gesturekit.device.live.simulate import PtySink

    data = hapt_session(SESSION)
    sink = PtySink(link=None)
    run = subprocess.Popen([*GESTUREKIT, "run", "--port", sink.device, "--model", str(quick_bundle),
                            "--json", "--gap", "1", "--duration", "8"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
    try:
        sink.wait_reader(60)
        sink.write(b"ax,ay,az,gx,gy,gz\r\n")  # the connect-time first line, dropped
        for i, pause in ((300, 1.3), (200, 0.0)):  # 3 s of samples, 1.3 s of silence, 2 s
            start = time.monotonic()
            for k in range(i):
                time.sleep(max(0.0, start + k / 100 - time.monotonic()))
                sink.write(format_sample(data[k]))
            time.sleep(pause)
        out, err = run.communicate(timeout=60)
    finally:
        run.kill()
        sink.close()
    assert run.returncode == 0, err
    records = [json.loads(line) for line in out.splitlines()]
    summary, gaps = records[-1], [r for r in records if r["kind"] == "gap"]
    # The stream also stops at the end, before --duration is up: a second gap at 500.
    assert [(g["reason"], g["sample"]) for g in gaps if g["sample"] < 500] == [("silence", 300)]
    bundle = load_bundle(quick_bundle)
    assert summary["samples"] == 500
    assert summary["windows"] == windows_in(bundle, 300, 200)
