"""Recording I/O: round trip, durable appends, resume, and a writer killed mid-stream."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from gesturekit.device.core.recording import (
    RecordingSpec,
    RecordingWriter,
    read_recording,
    read_spec,
    write_spec,
)
from gesturekit.errors import UserError

CHANNELS = ["ax", "ay", "az", "gx", "gy", "gz"]


def test_round_trip_keeps_samples_labels_and_time(tmp_path):
    rng = np.random.default_rng(0)
    data = rng.normal(size=(50, 6)).astype(np.float32)
    labels = ["walk"] * 20 + [""] * 10 + ["jump"] * 20
    with RecordingWriter(tmp_path / "s.csv", CHANNELS) as w:
        w.append(data[:30], labels[:30], np.arange(30) / 50)
        w.append(data[30:], labels[30:], np.arange(30, 50) / 50)
    rec = read_recording(tmp_path / "s.csv", RecordingSpec(time_column="t"))
    assert rec.channels == CHANNELS
    np.testing.assert_allclose(rec.data, data, atol=1e-5)
    assert list(rec.labels) == labels
    np.testing.assert_allclose(rec.time, np.arange(50) / 50, atol=1e-5)


def test_unterminated_last_line_is_dropped_and_resume_cuts_it(tmp_path):
    path = tmp_path / "s.csv"
    with RecordingWriter(path, ["ax"], time_column=None) as w:
        w.append(np.array([[1.0], [2.0]]), "walk")
    with open(path, "a") as f:
        f.write("3.0,wa")  # a write cut by a pulled cable
    assert len(read_recording(path).data) == 2
    with RecordingWriter(path, ["ax"], time_column=None) as w:
        assert w.samples_before == 2
        w.append(np.array([[4.0]]), "jump")
    rec = read_recording(path)
    assert rec.data[:, 0].tolist() == [1.0, 2.0, 4.0] and list(rec.labels) == ["walk", "walk", "jump"]


def test_resume_refuses_a_different_header(tmp_path):
    path = tmp_path / "s.csv"
    RecordingWriter(path, ["ax"]).close()
    with pytest.raises(UserError, match="does not match"):
        RecordingWriter(path, ["ax", "ay"])


WRITER = """
import sys, numpy as np
from gesturekit.device.core.recording import RecordingWriter
w = RecordingWriter(sys.argv[1], ["ax", "ay", "az", "gx", "gy", "gz"])
i = 0
while True:
    rows = np.arange(i, i + 7, dtype=float)[:, None].repeat(6, axis=1)
    w.append(rows, "walk", np.arange(i, i + 7) / 50.0)
    i += 7
    if i == 700:
        print("ready", flush=True)
"""


def test_writer_killed_mid_stream_leaves_a_valid_file(tmp_path):
    path = tmp_path / "killed.csv"
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(path)], stdout=subprocess.PIPE)
    assert proc.stdout.readline() == b"ready\n"
    time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    rec = read_recording(path, RecordingSpec(time_column="t"))
    n = len(rec.data)
    assert n >= 700
    # Every sample up to the last full line is there, in order, none duplicated.
    np.testing.assert_allclose(rec.data[:, 0], np.arange(n), atol=1e-4)
    np.testing.assert_allclose(rec.time, np.arange(n) / 50.0, atol=1e-5)


def test_spec_round_trip_and_type_errors(tmp_path):
    spec = RecordingSpec(sample_rate_hz=100.0, channels=CHANNELS, units={"ax": "g"},
                         time_column="t", background_label="idle", subject_pattern=r"s(\d+)")
    write_spec(tmp_path / "dataset.toml", spec)
    assert read_spec(tmp_path / "dataset.toml") == spec
    (tmp_path / "bad.toml").write_text('sample_rate_hz = "fast"\n')
    with pytest.raises(UserError, match="bad.toml: key 'sample_rate_hz' has the wrong type"):
        read_spec(tmp_path / "bad.toml")
    (tmp_path / "bad2.toml").write_text("time_unit = 'us'\n")
    with pytest.raises(UserError, match="time_unit"):
        read_spec(tmp_path / "bad2.toml")
