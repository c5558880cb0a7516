"""Durability: writers killed with SIGKILL at random moments, a torn last line, and a port
that vanishes mid-write. After every kill the file is valid up to its last full line; a
recording resumed after a kill neither duplicates nor loses a sample it had written."""

from __future__ import annotations

import json
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from gesturekit.device.core.recording import RecordingSpec, RecordingWriter, read_recording, write_spec

GESTUREKIT = [sys.executable, "-m", "gesturekit.cli"]
CHANNELS = ["ax", "ay", "az", "gx", "gy", "gz"]
KILLS = 6
TIMED = RecordingSpec(channels=CHANNELS, time_column="t")

# A writer that resumes where the file ends and says after every append how far it got.
WRITER = f"""
import sys, numpy as np
from gesturekit.device.core.recording import RecordingWriter
data = np.load(sys.argv[2])
rng = np.random.default_rng(int(sys.argv[3]))
w = RecordingWriter(sys.argv[1], {CHANNELS!r}, time_column="t")
i = w.samples_before
while i < len(data):
    k = int(rng.integers(1, 50))
    w.append(data[i:i + k], ["walk" if j % 7 else "jump" for j in range(i, min(i + k, len(data)))],
             np.arange(i, min(i + k, len(data))) / 50.0)
    i = min(i + k, len(data))
    print(i, flush=True)
"""


def source_data(n: int, seed: int = 0) -> np.ndarray:
    """A random walk: every row is unique, so a row names its position in the stream."""
    rng = np.random.default_rng(seed)
    return np.cumsum(rng.normal(size=(n, len(CHANNELS))), axis=0).astype(np.float32)


def test_writer_killed_at_random_moments_then_resumed(tmp_path):
    data = source_data(20_000)
    np.save(tmp_path / "data.npy", data)
    reference = tmp_path / "reference.csv"
    subprocess.run([sys.executable, "-c", WRITER, str(reference), str(tmp_path / "data.npy"), "0"],
                   check=True, capture_output=True, timeout=120)
    full = read_recording(reference, TIMED)
    assert len(full.data) == len(data)

    path = tmp_path / "killed.csv"
    rng = np.random.default_rng(1)
    survived = 0
    for kill in range(KILLS + 1):
        proc = subprocess.Popen([sys.executable, "-c", WRITER, str(path),
                                 str(tmp_path / "data.npy"), str(kill)],
                                stdout=subprocess.PIPE, text=True)
        acked = 0
        if kill < KILLS:  # kill once it passes a random point of the stream, mid-flight
            target = int(rng.integers(len(data) * kill // KILLS, len(data) * (kill + 1) // KILLS))
            deadline = time.monotonic() + 60
            while acked < target and time.monotonic() < deadline:
                ready, _, _ = select.select([proc.stdout], [], [], 1.0)
                line = proc.stdout.readline() if ready else ""
                acked = int(line) if line.strip() else acked
            proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=120)
        rec = read_recording(path, TIMED)  # valid after every kill: no UserError
        n = len(rec.data)
        assert n >= acked  # every append that returned is on disk
        assert np.array_equal(rec.data, full.data[:n]), "not a prefix of the stream"
        assert rec.labels.tolist() == full.labels[:n].tolist()
        assert np.array_equal(rec.time, full.time[:n])
        if kill < KILLS and kill % 2:
            with open(path, "ab") as f:  # a torn write: half a line at the end
                f.write(b"0.12345,1.2,")
        survived += proc.returncode == -signal.SIGKILL
    assert survived == KILLS
    assert path.read_bytes() == reference.read_bytes()  # resumed: nothing lost, nothing twice


def start(*args: str) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen([*GESTUREKIT, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    ready, _, _ = select.select([proc.stdout], [], [], 30)
    assert ready, "simulate printed no port path within 30 s"
    return proc, proc.stdout.readline().strip()


def stream_positions(recorded: np.ndarray, data: np.ndarray) -> np.ndarray:
    """Index in `data` of every recorded row (the board prints 9 significant digits and
    the recorder keeps 5 decimals, so match to that precision)."""
    index = {tuple(np.round(row.astype(np.float64), 3)): i for i, row in enumerate(data)}
    return np.array([index[tuple(np.round(row.astype(np.float64), 3))] for row in recorded])


@pytest.fixture
def board(tmp_path) -> tuple[Path, np.ndarray]:
    data = source_data(6000, seed=2)
    root = tmp_path / "board"
    with RecordingWriter(root / "s.csv", CHANNELS, time_column=None) as w:
        w.append(data, "walk")
    write_spec(root / "dataset.toml", RecordingSpec(sample_rate_hz=50.0, channels=CHANNELS))
    return root / "s.csv", read_recording(root / "s.csv").data


def test_record_killed_and_restarted_on_a_live_stream(board, tmp_path):
    """`gesturekit record` SIGKILLed at random moments on a live pty, then started again on
    the same session: each time the file is valid; in the end every recorded sample is a
    distinct sample of the stream, in stream order, with breaks only where a kill was."""
    recording, data = board
    sim, port = start("simulate", str(recording), "--pty", "--speed", "10", "--no-header",
                      "--cut-lines", "--garbage", "0.05")
    out = tmp_path / "dataset"
    session = out / "take.csv"
    rng = np.random.default_rng(3)
    record = [*GESTUREKIT, "record", "--port", port, "--label", "walk", "--out", str(out),
              "--session", "take", "--channels", ",".join(CHANNELS), "--rate", "50"]
    try:
        kills = 0
        for _ in range(4):
            proc = subprocess.Popen(record, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            time.sleep(float(rng.uniform(0.8, 1.6)))
            proc.send_signal(signal.SIGKILL)
            proc.communicate(timeout=30)
            kills += proc.returncode == -signal.SIGKILL
            if session.exists():
                read_recording(session, TIMED)  # valid up to its last full line
        final = subprocess.run([*record, "--seconds", "1"], capture_output=True, text=True,
                               timeout=60)
        assert final.returncode == 0, final.stderr
    finally:
        sim.kill()
        sim.communicate(timeout=30)
    rec = read_recording(session, TIMED)
    pos = stream_positions(rec.data, data)
    steps = np.diff(pos)
    assert (steps > 0).all(), "a sample recorded twice or out of order"
    assert kills == 4
    assert (steps > 1).sum() <= kills  # breaks only across kills (the runs in between are whole)
    assert len(pos) > 1000


def test_port_vanishing_mid_write_leaves_a_valid_recording(board, tmp_path):
    """The cable is pulled while bytes are in flight (lines cut in pieces): `record` ends
    cleanly ("disconnected") with every whole line it got, and no half line."""
    recording, data = board
    sim, port = start("simulate", str(recording), "--pty", "--speed", "10", "--cut-lines",
                      "--disconnect-after", "2.5")
    out = tmp_path / "dataset"
    result = subprocess.run([*GESTUREKIT, "record", "--port", port, "--label", "walk", "--out",
                             str(out), "--session", "take", "--rate", "50"],
                            capture_output=True, text=True, timeout=60)
    sim.kill()
    sim.communicate(timeout=30)
    assert result.returncode == 0, result.stderr
    assert "disconnected" in result.stdout
    rec = read_recording(out / "take.csv", TIMED)
    pos = stream_positions(rec.data, data)
    assert len(pos) > 500 and (np.diff(pos) == 1).all()  # one unbroken run of the stream
    assert json.dumps(rec.channels) == json.dumps(CHANNELS)
    assert (out / "take.csv").read_bytes().endswith(b"\n")


def test_a_folder_replaced_from_inside_it(tmp_path, monkeypatch):
    """`calibrate .` inside the bundle, `train --out .` in an empty folder: the folder named
    "." is swapped whole like any other (a rename of "." itself fails with EBUSY)."""
    from gesturekit.device.core.files import replace_folder

    (tmp_path / "old.txt").write_text("old")
    monkeypatch.chdir(tmp_path)

    def build(work: Path) -> str:
        (work / "new.txt").write_text("new")
        return "built"

    assert replace_folder(".", build) == "built"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["new.txt"]
    assert not [p for p in tmp_path.parent.iterdir() if ".partial-" in p.name]
