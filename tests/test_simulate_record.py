"""`simulate` into real ptys and pyserial URLs, and `record` from them into the recording format."""

from __future__ import annotations

import json
import os
import select
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import serial

from gesturekit.device.core.lineparser import LineParser
from gesturekit.device.core.recording import (
    RecordingSpec,
    RecordingWriter,
    read_recording,
    read_spec,
    write_spec,
)

GESTUREKIT = [sys.executable, "-m", "gesturekit.cli"]
CHANNELS = ["ax", "ay", "az", "gx", "gy", "gz"]


@pytest.fixture
def recording(tmp_path) -> tuple[Path, np.ndarray]:
    """A 50 Hz, 6-channel session CSV with its dataset.toml."""
    rng = np.random.default_rng(1)
    data = np.cumsum(rng.normal(size=(400, 6)), axis=0).astype(np.float32)
    root = tmp_path / "dataset"
    with RecordingWriter(root / "s1.csv", CHANNELS, time_column=None) as w:
        w.append(data, "walk")
    write_spec(root / "dataset.toml", RecordingSpec(sample_rate_hz=50.0, channels=CHANNELS))
    return root / "s1.csv", read_recording(root / "s1.csv").data


def start(*args: str) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen([*GESTUREKIT, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    ready, _, _ = select.select([proc.stdout], [], [], 30)
    assert ready, "no port path printed within 30 s"
    return proc, proc.stdout.readline().strip()


def wait_for(condition, what: str, deadline_s: float = 30) -> None:
    """Poll `condition()` until it is true; fail naming `what` after `deadline_s`."""
    end = time.monotonic() + deadline_s
    while not condition():
        assert time.monotonic() < end, f"{what} within {deadline_s:g} s"
        time.sleep(0.02)


def has_samples(path: Path) -> bool:
    """The recorder has flushed its header and at least one sample line to `path`."""
    return path.is_file() and path.read_text().count("\n") >= 2


def read_all(port: serial.Serial, parser: LineParser, deadline_s: float = 30) -> np.ndarray:
    """Chunked reads until the simulator hangs up. The hang-up (EIO) can surface in `read`
    (pyserial's SerialException) or in `in_waiting` (a bare OSError); both are OSErrors."""
    out, end = [], time.monotonic() + deadline_s
    while time.monotonic() < end:
        try:
            chunk = port.read(port.in_waiting or 1)
        except OSError:
            break
        out.append(parser.feed(chunk))
    return np.concatenate(out)


@pytest.mark.parametrize("args", [[], ["--no-header"], ["--cut-lines", "--garbage", "0.1"]])
def test_simulate_pty_plays_every_sample_in_order(recording, tmp_path, args):
    path, data = recording
    stats_file = tmp_path / "stats.json"
    sim, pty_path = start("simulate", str(path), "--pty", "--speed", "20",
                          "--stats", str(stats_file), *args)
    port = serial.serial_for_url(pty_path, timeout=0.05)
    # No connect-time cut here (the simulator waits for its reader), so keep the first line.
    parser = LineParser(6, drop_first=False)
    got = read_all(port, parser)
    port.close()
    assert sim.wait(timeout=30) == 0
    stats = json.loads(stats_file.read_text())
    assert np.array_equal(got, data)
    assert parser.stats.headers == (0 if "--no-header" in args else 1)
    assert parser.stats.bad_lines == stats["garbage"] and stats["samples"] == len(data)


def test_simulate_plays_at_the_requested_rate(recording):
    path, data = recording
    sim, pty_path = start("simulate", str(path), "--pty", "--speed", "4")  # 200 Hz: 2 s
    port = serial.serial_for_url(pty_path, timeout=0.05)
    start_time = time.monotonic()
    got = read_all(port, LineParser(6, drop_first=False))
    elapsed = time.monotonic() - start_time
    port.close()
    sim.wait(timeout=30)
    assert len(got) == len(data)
    # 2 s of samples: never faster than real rate; the upper bound leaves room for a loaded
    # 2-core machine yet stays far below the 0.1 s a simulator ignoring its clock would take.
    assert 1.8 < elapsed < 8.0, elapsed


def test_simulate_drop_leaves_samples_out(recording, tmp_path):
    path, data = recording
    stats_file = tmp_path / "stats.json"
    sim, pty_path = start("simulate", str(path), "--pty", "--speed", "20", "--drop", "0.1",
                          "--stats", str(stats_file))
    port = serial.serial_for_url(pty_path, timeout=0.05)
    got = read_all(port, LineParser(6, drop_first=False))
    port.close()
    sim.wait(timeout=30)
    dropped = json.loads(stats_file.read_text())["dropped"]
    assert dropped > 10 and len(got) == len(data) - dropped


def test_simulate_to_a_socket_url(recording):
    """Any pyserial URL: here socket://, served by a listening socket in the test."""
    path, data = recording
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(30)
    port_number = server.getsockname()[1]
    sim = subprocess.Popen([*GESTUREKIT, "simulate", str(path), "--port",
                            f"socket://127.0.0.1:{port_number}", "--speed", "20"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    conn, _ = server.accept()
    conn.settimeout(5)
    raw = b""
    while chunk := conn.recv(65536):
        raw += chunk
    conn.close()
    server.close()
    assert sim.wait(timeout=30) == 0
    parser = LineParser(6, drop_first=False)
    assert np.array_equal(parser.feed(raw), data)


def test_simulate_reads_a_hapt_session_without_the_training_code():
    from test_runner_e2e import HAPT_RAW

    from gesturekit.device.core.recording import load_session

    acc = HAPT_RAW / "acc_exp01_user01.txt"
    if not acc.is_file():
        pytest.skip("shared HAPT data not present")
    session = load_session(acc)
    assert session.data.shape == (20598, 6) and session.sample_rate_hz == 50.0
    assert session.data[0, 0] == np.float32(0.9180555898766518)


def test_simulate_missing_file_is_a_user_error(tmp_path):
    result = subprocess.run([*GESTUREKIT, "simulate", str(tmp_path / "nope.csv"), "--pty"],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 2 and "no such recording" in result.stderr
    assert "Traceback" not in result.stderr


def test_record_with_label_keys_writes_a_dataset(recording, tmp_path):
    path, data = recording
    sim, pty_path = start("simulate", str(path), "--pty", "--speed", "2")  # 100 Hz, 4 s
    out = tmp_path / "recorded"
    rec = subprocess.Popen([*GESTUREKIT, "record", "--port", pty_path, "--label", "idle",
                            "--labels", "walk,jump", "--out", str(out), "--session", "take1",
                            "--samples", "300"],
                           stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True)
    # Keys only once samples flow (so each label gets some); the recorder reports each switch.
    wait_for(lambda: has_samples(out / "take1.csv"), "no sample recorded")
    rec.stdin.write("2")  # jump
    rec.stdin.flush()
    time.sleep(0.3)
    rec.stdin.write("1")  # walk
    rec.stdin.flush()
    out_text, err = rec.communicate(timeout=60)
    sim.kill()
    assert rec.returncode == 0, err
    assert "label -> jump" in err and "label -> walk" in err
    got = read_recording(out / "take1.csv", read_spec(out / "dataset.toml"))
    assert got.channels == CHANNELS  # from the simulator's header
    # The header was the connect-time first line (dropped), so samples start at the file's first.
    assert np.array_equal(got.data, data[:300])
    labels = list(dict.fromkeys(got.labels.tolist()))
    assert labels == ["idle", "jump", "walk"]
    # Every sample has its own time (no staircase of equal times per read), near 100 Hz.
    assert got.time[0] == 0.0 and (np.diff(got.time) > 0).all()
    assert 0.005 < np.median(np.diff(got.time)) < 0.02
    spec = read_spec(out / "dataset.toml")
    assert spec.sample_rate_hz == 100.0 and spec.channels == CHANNELS

    from gesturekit.train.datasets import load_dataset

    dataset = load_dataset(out)
    assert dataset.sample_rate_hz == 100.0 and set(dataset.labels) == {"idle", "jump", "walk"}


def test_record_killed_midway_leaves_a_valid_file(recording, tmp_path):
    path, _ = recording
    sim, pty_path = start("simulate", str(path), "--pty", "--speed", "1", "--loop")
    out = tmp_path / "recorded"
    rec = subprocess.Popen([*GESTUREKIT, "record", "--port", pty_path, "--label", "walk",
                            "--out", str(out), "--session", "cut", "--rate", "50"],
                           stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    wait_for(lambda: (out / "cut.csv").is_file()
             and (out / "cut.csv").read_text().count("\n") > 60, "not 60 samples recorded")
    os.kill(rec.pid, signal.SIGKILL)
    rec.wait(timeout=10)
    sim.kill()
    got = read_recording(out / "cut.csv")
    assert len(got.data) > 50 and set(got.labels.tolist()) == {"walk"}


def test_record_ctrl_c_finishes_cleanly(recording, tmp_path):
    path, _ = recording
    sim, pty_path = start("simulate", str(path), "--pty", "--speed", "1", "--loop")
    out = tmp_path / "recorded"
    rec = subprocess.Popen([*GESTUREKIT, "record", "--port", pty_path, "--label", "walk",
                            "--out", str(out), "--session", "s"],
                           stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True)
    # 3 s of samples (as many as a fixed sleep gave) to measure 50 Hz, then Ctrl-C.
    wait_for(lambda: (out / "s.csv").is_file() and (out / "s.csv").read_text().count("\n") > 150,
             "not 150 samples recorded")
    rec.send_signal(signal.SIGINT)
    out_text, err = rec.communicate(timeout=30)
    sim.kill()
    assert rec.returncode == 0, err
    assert "interrupted" in out_text
    assert read_spec(out / "dataset.toml").sample_rate_hz == 50.0


def test_simulate_to_a_socket_that_closes_is_a_one_line_error(recording):
    """The peer of a socket:// URL goes away mid-stream (Broken pipe): exit 2, no traceback."""
    path, _ = recording
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(30)
    sim = subprocess.Popen([*GESTUREKIT, "simulate", str(path), "--port",
                            f"socket://127.0.0.1:{server.getsockname()[1]}", "--speed", "20",
                            "--loop"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    conn, _ = server.accept()
    conn.settimeout(30)
    assert conn.recv(100)  # the stream has started
    conn.close()
    server.close()
    _, err = sim.communicate(timeout=30)
    assert sim.returncode == 2, err
    assert "Traceback" not in err and "error: simulate: writing to socket://" in err


def test_simulate_time_column_that_does_not_increase_is_a_user_error(tmp_path):
    from gesturekit.device.core.recording import load_session
    from gesturekit.errors import UserError

    root = tmp_path / "ds"
    with RecordingWriter(root / "s.csv", CHANNELS, time_column="t") as w:
        w.append(np.zeros((5, 6), np.float32), "walk", np.zeros(5))
    write_spec(root / "dataset.toml", RecordingSpec(channels=CHANNELS, time_column="t"))
    with pytest.raises(UserError, match="time column 't' does not increase"):
        load_session(root / "s.csv")


# --- labels and refusals: what record accepts reads back; what it refuses leaves nothing ----


def test_record_label_with_a_comma_and_quotes_reads_back(recording, tmp_path):
    """The issue's `--label 'a,b'`: written unquoted, the session was unreadable (exit 0)."""
    path, data = recording
    sim, pty_path = start("simulate", str(path), "--pty", "--speed", "4")
    out = tmp_path / "recorded"
    try:  # no --rate: the rate is the time column's (the simulator's 200 Hz, at --speed 4)
        result = subprocess.run([*GESTUREKIT, "record", "--port", pty_path, "--label", "a,b",
                                 "--out", str(out), "--session", "s", "--samples", "200"],
                                stdin=subprocess.DEVNULL, capture_output=True, text=True,
                                timeout=60)
    finally:
        sim.kill()
        sim.communicate(timeout=30)
    assert result.returncode == 0, result.stderr
    from gesturekit.train.datasets import load_dataset

    dataset = load_dataset(out)
    assert dataset.labels == ["a,b"]
    assert np.array_equal(dataset.sessions[0].data, data[:200])
    assert '"a,b"' in (out / "s.csv").read_text().splitlines()[1]  # quoted, as CSV says


@pytest.mark.parametrize("option, label", [("--label", " walk"), ("--label", "a\nb"),
                                           ("--labels", "walk,jump\tx\x07")])
def test_record_refuses_a_label_it_could_not_read_back(tmp_path, capsys, option, label):
    """Refused before the port is opened (this one does not exist): one line, nothing written."""
    from gesturekit.cli import main

    out = tmp_path / "recorded"
    args = ["--label", "walk", "--labels", label] if option == "--labels" else ["--label", label]
    assert main(["record", "--port", str(tmp_path / "no_port"), *args, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{option} " in err and "read back" in err, err
    assert not out.exists()


def test_a_refused_record_leaves_no_file(recording, tmp_path):
    """Too few samples to measure the rate: refused, and neither the session file nor the
    dataset.toml and folder it made stay behind; a dataset it recorded into is as it was."""
    path, _ = recording
    sim, pty_path = start("simulate", str(path), "--pty", "--speed", "4", "--loop")
    new, existing = tmp_path / "new", tmp_path / "existing"
    existing.mkdir()
    (existing / "dataset.toml").write_text('channels = ["ax", "ay", "az", "gx", "gy", "gz"]\n')
    (existing / "old.csv").write_text("ax,ay,az,gx,gy,gz,label\n1,2,3,4,5,6,walk\n")
    before = {p.name: p.read_bytes() for p in existing.iterdir()}
    try:
        for out in (new, existing):
            result = subprocess.run([*GESTUREKIT, "record", "--port", pty_path, "--label", "walk",
                                     "--out", str(out), "--session", "take", "--samples", "5",
                                     "--channels", ",".join(CHANNELS)],
                                    capture_output=True, text=True, timeout=60)
            assert result.returncode == 2 and "too few to measure" in result.stderr
            assert result.stderr.count("\n") == 1
    finally:
        sim.kill()
        sim.communicate(timeout=30)
    assert not new.exists()
    assert {p.name: p.read_bytes() for p in existing.iterdir()} == before
