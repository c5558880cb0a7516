"""The firmware built for a Cortex-M4F and run end to end on an emulated board (QEMU mps2-an386).

`gesture_classifier` is built with TensorFlow Lite Micro (CMSIS-NN kernels) from the tree at
`../shared/third_party/tflite-micro`, and fed real windows over its emulated UART: two HAPT test
sessions and a synthetic session. Its int8 outputs must equal the `tflite_micro` backend's byte
for byte and its events those of the runner's post-processing on them; bad lines are counted
as the host parser counts them and never shift a window. `imu_stream` plays a recording from
flash at its rate, and `gesturekit emulate` works from the command line.

These tests need `arm-none-eabi-gcc` and `qemu-system-arm` (`.ci/run` installs them) and fail
without them. `pytest -k qemu` selects them.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from gesturekit.device.core.backends import Classifier
from gesturekit.device.core.bundle import load_bundle
from gesturekit.device.core.lineparser import LineParser, format_sample
from gesturekit.device.core.postprocess import PostprocessConfig
from gesturekit.device.core.recording import load_session
from gesturekit.device.core.stream_eval import reference_phase, replay
from gesturekit.device.emulator import firmware, qemu
from gesturekit.device.live.simulate import junk_line
from harness.emulated_board import ClassifierRun, feed_classifier

REPO = Path(__file__).resolve().parents[1]
HAPT = REPO.parent / "shared" / "data" / "hapt" / "RawData"
HAPT_TEST_SESSIONS = ("acc_exp03_user02.txt", "acc_exp07_user04.txt")  # UCI test subjects 2 and 4
SECONDS_PER_SESSION = 16.6  # CI: a subset; bench/firmware_board.py runs every window
GESTUREKIT = str(Path(sys.executable).with_name("gesturekit"))
READ_DEADLINE_S = 120.0
pytestmark = pytest.mark.emulator


LOOSE_POSTPROCESS = {"smoothing_s": 0.0, "threshold": 0.35, "min_on_s": 0.0, "refractory_s": 1.0}


@pytest.fixture(scope="session")
def loose_bundle(quick_bundle, tmp_path_factory) -> Path:
    """`quick_bundle` with looser post-processing in model.json and model_config.h alike (the
    quick model is rarely confident, and the event comparisons need events), and its last
    class a state, never announced (like `walk` in the demo). The header's block is written
    as `calibrate` writes it."""
    from gesturekit.export.carray import postprocess_block, replace_postprocess_block

    out = tmp_path_factory.mktemp("loose") / "bundle"
    shutil.copytree(quick_bundle, out)
    meta = json.loads((out / "model.json").read_text())
    meta["postprocess"] = dict(LOOSE_POSTPROCESS)
    labels = meta["labels"]
    meta["event_classes"] = [x for x in labels[:-1] if x != meta.get("background_label")]
    (out / "model.json").write_text(json.dumps(meta, indent=1))
    block = postprocess_block(load_bundle(out))
    header = replace_postprocess_block((out / "model_config.h").read_text(), block, "loose")
    (out / "model_config.h").write_text(header)
    return out


@pytest.fixture(scope="session")
def classifier_elf(loose_bundle) -> Path:
    firmware.check_tools()  # fails (no skip) without the toolchain: CI installs it
    return firmware.build_firmware("classifier", loose_bundle).elf


def windows_in(samples: int, bundle) -> int:
    """Windows the board classifies in `samples` samples (none holds the reference phase)."""
    return (samples - reference_phase(bundle) - bundle.window) // bundle.hop + 1


def session_samples(path: Path, seconds: float, bundle) -> np.ndarray:
    """The first `seconds` of a session after its reference phase (whatever the hop)."""
    samples = reference_phase(bundle) + round(seconds * bundle.sample_rate_hz)
    data = load_session(path).data
    assert len(data) >= samples, path
    return data[:samples]


def sample_bytes(samples: np.ndarray) -> bytes:
    return b"".join(format_sample(row) for row in samples)


def run_board(elf: Path, stream: bytes, expect_windows: int) -> ClassifierRun:
    run = feed_classifier(elf, stream, deadline_s=READ_DEADLINE_S)
    assert len(run.int8) == expect_windows
    return run


def host_side(bundle, samples: np.ndarray, backend: str):
    """What the runner's code computes on the same samples: {end_sample: int8 outputs},
    window lines and events in the board's format (time = end_sample / rate)."""
    classifier = Classifier(bundle, backend, "int8")
    ends, probs, events = replay(bundle, samples, classifier, PostprocessConfig.for_bundle(bundle))
    q = bundle.quantization["output"]
    int8 = {int(end): np.round(p / np.float32(q["scale"]) + q["zero_point"]).astype(np.int8)
            for end, p in zip(ends, probs, strict=True)}
    lines = {int(end): f"  window @{end}: {bundle.labels[int(np.argmax(p))]} {p.max():.3f}"
             for end, p in zip(ends, probs, strict=True)}
    texts = [f"{e.time:9.2f} s  {e.label:<20} {e.confidence:5.2f}" for e in events]
    return int8, lines, texts


def board_sessions(synth_dataset) -> list[Path]:
    return [HAPT / name for name in HAPT_TEST_SESSIONS] + [synth_dataset / "s02_session1.csv"]


def test_qemu_classifier_equals_tflite_micro_byte_for_byte(classifier_elf, loose_bundle, synth_dataset):
    """Every window of two HAPT test sessions and a synthetic session (a CI subset): the board's
    int8 outputs are the tflite_micro backend's, byte for byte; its window lines and events are
    the runner's. ai_edge_litert's differences are counted and printed, not asserted (its
    XNNPACK kernels round differently; bench/firmware_board.py reports them on every window)."""
    bundle = load_bundle(loose_bundle)
    litert_differs = 0
    total = 0
    events_seen = 0
    for path in board_sessions(synth_dataset):
        samples = session_samples(path, SECONDS_PER_SESSION, bundle)
        board = run_board(classifier_elf, sample_bytes(samples), windows_in(len(samples), bundle))
        # The host reads the same bytes: parse them back, so both sides see the same float32.
        parsed = LineParser(len(bundle.channels), drop_first=False).feed(sample_bytes(samples))
        int8, lines, events = host_side(bundle, parsed, "tflite_micro")
        assert sorted(board.int8) == sorted(int8)
        for end, out in int8.items():
            assert board.int8[end].tobytes() == out.tobytes(), f"{path.name} window @{end}"
        assert board.window_lines == lines
        assert [e.rsplit("  (", 1)[0] for e in board.events] == events, path.name
        events_seen += len(events)
        assert board.stats["samples"] == len(samples)
        assert board.stats["bad_lines"] == 0
        assert board.stats["arena_used"] <= board.stats["arena_bytes"]
        litert, _, _ = host_side(bundle, parsed, "ai_edge_litert")
        diff = [np.abs(litert[e].astype(int) - int8[e].astype(int)).max() for e in int8]
        litert_differs += sum(d > 0 for d in diff)
        total += len(diff)
    assert events_seen >= 3
    print(f"ai_edge_litert differs from the board on {litert_differs} of {total} windows")


def test_qemu_bad_lines_counted_and_skipped_never_shifting_a_window(classifier_elf, loose_bundle):
    """Junk, over-long and wrong-width lines between the samples: the board counts them by the
    host parser's reasons and gives the same windows, byte for byte, as the clean stream."""
    bundle = load_bundle(loose_bundle)
    samples = session_samples(HAPT / HAPT_TEST_SESSIONS[0], 4.0, bundle)
    rng = np.random.default_rng(0)
    stream = bytearray()
    for i, row in enumerate(samples):
        if i % 7 == 3:
            stream += junk_line(row, rng)[1]  # binary, fields, not_numeric, nonfinite, long
        if i % 50 == 10:
            stream += b"1.0,2.0,3.0\r\n"  # wrong channel count
            stream += b"9" * 700 + b"\r\n"  # over-long, without a comma
            stream += b"ax,ay,az,gx,gy,gz\r\n# a comment\r\n\r\n"
            stream += b"1,2,3,4,5,6,7\n" + b"0.1 0.2\t0.3 0.4 0.5 1_0.0\n"  # 7 fields; a sample
        stream += format_sample(row)
    host = LineParser(len(bundle.channels), drop_first=False)
    parsed = host.feed(bytes(stream))
    board = run_board(classifier_elf, bytes(stream), windows_in(len(parsed), bundle))
    stats = board.stats
    expected = host.stats
    assert stats["samples"] == expected.samples
    assert stats["bad_lines"] == expected.bad_lines > 30
    for reason in ("long", "fields", "not_numeric", "nonfinite", "binary"):
        assert stats[reason] == expected.bad_reasons[reason], reason
    assert stats["headers"] == expected.headers
    assert stats["empty"] == expected.empty
    assert stats["comments"] == expected.comments + 2  # and the two commands
    int8, _, _ = host_side(bundle, parsed, "tflite_micro")
    for end, out in int8.items():
        assert board.int8[end].tobytes() == out.tobytes(), f"window @{end}"


def test_qemu_imu_stream_plays_a_recording_from_flash_at_its_rate(tmp_path, synth_dataset):
    """imu_stream: the recording's samples in order, 4 decimals, none lost, at about 50 Hz."""
    firmware.check_tools()
    recording = synth_dataset / "s01_session1.csv"
    elf = firmware.build_firmware("stream", recording=recording, out=tmp_path / "fw").elf
    rows = load_session(recording).data
    with qemu.Qemu(elf) as board_qemu:
        board = qemu.BoardPort(board_qemu.pty)
        try:
            parser = LineParser(rows.shape[1])
            got, start = [], None
            deadline = time.monotonic() + 30
            while len(got) < 150 and time.monotonic() < deadline:
                line = board.readline(1.0)
                if line is None:
                    continue
                block = parser.feed(line.encode() + b"\n")
                if len(block) and start is None:
                    start = time.monotonic()
                got.extend(block)
            seconds = time.monotonic() - start
        finally:
            board.close()
    got = np.array(got)
    assert len(got) >= 150
    expected = np.array([[float(f"{v:.4f}") for v in row] for row in rows.tolist()], np.float32)
    first = int(np.flatnonzero((expected == got[0]).all(axis=1))[0])
    assert np.array_equal(got, expected[first:first + len(got)])  # in order, none lost
    rate = (len(got) - 1) / seconds
    # 50 Hz of emulated time; a loaded host can stall QEMU (the board then restarts its
    # schedule with a "# gap" line), so only a clock off by a large factor fails here.
    assert 30 < rate < 60, f"{rate:.1f} samples/s"


def test_qemu_emulate_cli_events_equal_the_runner_with_tflite_micro(loose_bundle, classifier_elf,
                                                                    synth_dataset, tmp_path):
    """`gesturekit emulate BUNDLE` prints the pty first; `gesturekit simulate REC --port PTY`
    feeds it; its events equal `gesturekit run --backend tflite_micro` on the same recording."""
    firmware.check_tools()
    recording = tmp_path / "rec" / "s02.csv"  # 30 s of a synthetic test session
    recording.parent.mkdir()
    lines = (synth_dataset / "s02_session1.csv").read_text().splitlines(keepends=True)
    recording.write_text("".join(lines[:1501]))
    (recording.parent / "dataset.toml").write_text((synth_dataset / "dataset.toml").read_text())
    emu = subprocess.Popen([GESTUREKIT, "emulate", str(loose_bundle), "--duration", "120"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        pty_path = emu.stdout.readline().strip()
        assert pty_path.startswith("/dev/"), emu.stderr.read() if emu.poll() is not None else pty_path
        assert emu.stdout.readline().endswith("; ready\n")
        subprocess.run([GESTUREKIT, "simulate", str(recording), "--port", pty_path, "--speed", "2"],
                       check=True, timeout=120)
        time.sleep(3)  # the board's last windows
    finally:
        emu.terminate()
        out, err = emu.communicate(timeout=30)
    assert emu.returncode == 0, err
    board_events = [line.rsplit("  (", 1)[0] for line in out.splitlines() if " s  " in line]
    sim = subprocess.Popen([GESTUREKIT, "simulate", str(recording), "--pty", "--speed", "2"],
                           stdout=subprocess.PIPE, text=True)
    try:
        host_pty = sim.stdout.readline().strip()
        run = subprocess.run([GESTUREKIT, "run", "--port", host_pty, "--model", str(loose_bundle),
                              "--backend", "tflite_micro", "--json", "--rate", "50", "--duration",
                              "30", "--reconnect-timeout", "0"],  # stop when the recording ends
                             capture_output=True, text=True, timeout=120,
                             env={**os.environ, "PYTHONUNBUFFERED": "1"})
    finally:
        sim.terminate()
        sim.wait(timeout=10)
    records = [json.loads(line) for line in run.stdout.splitlines()]
    runner_events = [f"{r['sample'] / 50:9.2f} s  {r['label']:<20} {r['confidence']:5.2f}"
                     for r in records if r["kind"] == "event"]
    assert board_events, out
    assert board_events == runner_events, (run.stderr, records[-1])


def test_qemu_emulate_without_toolchain_is_one_line_with_the_apt_command(quick_bundle, tmp_path):
    env = {**os.environ, "PATH": str(tmp_path)}  # no arm-none-eabi-g++, no qemu-system-arm
    result = subprocess.run([GESTUREKIT, "emulate", str(quick_bundle)], capture_output=True,
                            text=True, timeout=60, env=env)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert "apt-get install gcc-arm-none-eabi" in result.stderr and "qemu-system-arm" in result.stderr


def random_stream(rng: np.random.Generator, lines: int) -> bytes:
    """Lines of every kind the host parser tells apart, in many spellings of numbers."""
    spellings = ["{:.9g}", "{:.3f}", " {:g} ", "{:e}", "{:+.2E}", "{:.0f}.", "{:.1f}_5"]
    words = [b"inf", b"-Infinity", b"nan", b"+NaN", b"1__0", b"1_", b"_1", b"0x10", b".", b"1e",
             b"1e+_3", b"--1", b"", b" ", b"1.5.", b"\xc2\xb5", b"1\x00"]
    out = bytearray()
    for _ in range(lines):
        kind = rng.integers(10)
        values = rng.normal(0, 10.0 ** rng.integers(-3, 4), 6)
        if kind < 4:  # a sample, maybe spelled oddly or with a bad word in it
            fields = [spellings[rng.integers(len(spellings))].format(v).encode() for v in values]
            if kind == 3:
                fields[rng.integers(6)] = words[rng.integers(len(words))]
            sep = [b",", b", ", b" ", b"\t", b" \t "][rng.integers(5)]
            out += sep.join(fields)
        elif kind == 4:
            out += junk_line(values.astype(np.float32), rng)[1].rstrip(b"\r\n")
        elif kind == 5:
            out += [b"ax,ay,az,gx,gy,gz", b"ax ay az gx gy gz", b"a b c", b"1ax,ay,az,gx,gy,gz",
                    b"ax,ay,az,gx,gy,g-z.1"][rng.integers(5)]
        elif kind == 6:
            out += [b"# comment", b"  #x", b"", b"   ", b"\t\r", b"\x0b\x0c"][rng.integers(6)]
        elif kind == 7:
            out += b"9" * int(rng.integers(505, 520)) + b","[: rng.integers(2)]
        elif kind == 8:
            out += ",".join(f"{v:.4f}" for v in values[: rng.integers(1, 9)]).encode()
        else:
            out += bytes(rng.integers(0, 256, int(rng.integers(1, 30)), dtype=np.uint8)).replace(b"\n", b"")
        out += [b"\n", b"\r\n"][rng.integers(2)]
    return bytes(out)


def test_qemu_board_parser_is_the_host_parser(tmp_path):
    """gk_lineparser.h (built for the host) against device/core/lineparser.py on seeded random
    streams: the same samples to the last bit and the same counts by reason."""
    from test_firmware import CXX, CXXFLAGS, FIRMWARE, LIBRARY_SRC, compile_cpp

    assert CXX, "needs g++"
    binary = compile_cpp([FIRMWARE / "host" / "gk_parse.cc"], tmp_path / "gk_parse", [LIBRARY_SRC],
                         CXXFLAGS)
    for seed in range(20):
        stream = random_stream(np.random.default_rng(seed), 400)
        result = subprocess.run([str(binary), "6"], input=stream, capture_output=True, timeout=60)
        lines = result.stdout.decode().splitlines()
        board = np.array([[float.fromhex(v) for v in line.split()[1:]] for line in lines[:-1]],
                         np.float32).reshape(-1, 6)
        host = LineParser(6)
        samples = host.feed(stream)
        assert np.array_equal(board.view(np.uint32), samples.view(np.uint32)), f"seed {seed}"
        s, r = host.stats, host.stats.bad_reasons
        expected = [s.samples, s.headers, s.comments, s.empty, s.dropped_first, r["long"],
                    r["fields"], r["not_numeric"], r["nonfinite"], r["binary"]]
        assert list(map(int, lines[-1].split()[1:])) == expected, f"seed {seed}"
        assert min(expected) > 0, f"seed {seed}: the stream misses a kind of line"
