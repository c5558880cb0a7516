"""The board's C++ (firmware_notes/libraries/GestureKit) against gesturekit's Python runner.

The headers are built with the host's g++ into `gk_replay`, which reads commands on stdin and
answers on stdout (numbers as hex floats, so nothing is rounded on the way). Each test drives
the Python side through its real functions (StreamWindower, Normalization, Classifier,
EventDetector, LineParser, the runner's line format) and asserts the board code does exactly
the same. The generated headers of a real export are compiled too. Nothing is flashed.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from gesturekit.device.core.bundle import load_bundle
from gesturekit.device.core.lineparser import LineParser
from gesturekit.device.core.model_info import ModelInfo
from gesturekit.device.core.postprocess import EventDetector, PostprocessConfig, in_windows
from gesturekit.device.core.windowing import Normalization, StreamWindower

REPO = Path(__file__).resolve().parents[1]
FIRMWARE = REPO / "firmware_notes"
LIBRARY_SRC = FIRMWARE / "libraries" / "GestureKit" / "src"
HOST_REPLAY = FIRMWARE / "host" / "gk_replay.cc"
CXX = shutil.which("g++")
CXXFLAGS = ["-std=c++17", "-Wall", "-Wextra", "-Werror", "-O2"]
COMPILE_TIMEOUT_S = 120
RUN_TIMEOUT_S = 120

pytestmark = pytest.mark.skipif(CXX is None, reason="needs g++ (apt-get install g++)")


def compile_cpp(sources: list[Path], out: Path, includes: list[Path], flags=CXXFLAGS) -> Path:
    cmd = [CXX, *flags, *(f"-I{p}" for p in includes), *map(str, sources), "-o", str(out)]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=COMPILE_TIMEOUT_S)
    assert result.returncode == 0, f"{' '.join(cmd)}\n{result.stderr}"
    return out


@pytest.fixture(scope="session")
def replay(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("firmware") / "gk_replay"
    return compile_cpp([HOST_REPLAY], out, [LIBRARY_SRC])


def run_replay(binary: Path, commands: list[str]) -> list[str]:
    result = subprocess.run([str(binary)], input="\n".join(commands) + "\n", capture_output=True,
                            text=True, timeout=RUN_TIMEOUT_S)
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()


def h(value: float) -> str:
    return float(value).hex()


def setup_command(window: int, hop: int, channels: int, classes: int, cfg: PostprocessConfig,
                  background: int | None, in_q=(1.0, 0), out_q=(1.0, 0), mean=None, std=None) -> str:
    mean = np.zeros(channels, np.float32) if mean is None else mean
    std = np.ones(channels, np.float32) if std is None else std
    values = [window, hop, channels, classes, cfg.smoothing, h(cfg.threshold),
              cfg.min_consecutive, h(cfg.refractory_s), -1 if background is None else background,
              h(in_q[0]), in_q[1], h(out_q[0]), out_q[1], *map(h, mean), *map(h, std)]
    return "setup " + " ".join(map(str, values))


def parse_updates(lines: list[str]) -> tuple[list[np.ndarray], list[tuple]]:
    """`probs` and `event` answers -> smoothed inputs seen and events (index, conf, time, end)."""
    probs, events = [], []
    for line in lines:
        kind, *fields = line.split()
        if kind == "probs":
            probs.append(np.array([float.fromhex(f) for f in fields], np.float32))
        elif kind == "event":
            events.append((int(fields[0]), float.fromhex(fields[1]), float.fromhex(fields[2]),
                           int(fields[3])))
    return probs, events


# --- the headers stand alone ------------------------------------------------------------------

@pytest.mark.parametrize("header", sorted(p.name for p in LIBRARY_SRC.glob("gk_*.h")
                                          if p.name not in ("gk_imu.h", "gk_classifier.h")))
def test_each_pure_header_compiles_alone(header, tmp_path):
    """Every pure header includes what it uses (gk_imu.h needs Arduino and gk_classifier.h
    TFLM and the bundle's headers: not pure; the qemu tests build the classifier)."""
    source = tmp_path / "one.cc"
    source.write_text(f'#include "{header}"\n#include "{header}"\nint main() {{ return 0; }}\n')
    compile_cpp([source], tmp_path / "one", [LIBRARY_SRC])


# --- post-processing --------------------------------------------------------------------------

CONFIGS = [
    PostprocessConfig(),  # the bundle defaults
    PostprocessConfig(smoothing=1, threshold=0.5, min_consecutive=1, refractory_s=0.0),
    # 0.7 is above float32(0.7): a confidence of exactly float32(0.7) must not pass, as in Python
    PostprocessConfig(smoothing=1, threshold=0.7, min_consecutive=1, refractory_s=0.0),
    PostprocessConfig(smoothing=4, threshold=0.7, min_consecutive=3, refractory_s=2.5),
    PostprocessConfig(smoothing=2, threshold=0.0, min_consecutive=2, refractory_s=0.3),
]


def random_probability_stream(rng: np.random.Generator, n: int, classes: int) -> np.ndarray:
    """Runs of one dominant class (so events happen), exact ties, and float32(0.7) values."""
    probs = np.empty((n, classes), np.float32)
    top = 0
    for i in range(n):
        if rng.random() < 0.15:
            top = int(rng.integers(classes))
        p = rng.dirichlet(np.full(classes, 0.3)).astype(np.float32)
        if rng.random() < 0.7:
            p = (0.3 * p + 0.7 * np.eye(classes, dtype=np.float32)[top]).astype(np.float32)
        if rng.random() < 0.05:
            p[:] = 0
            p[top] = np.float32(0.7)
            p[(top + 1) % classes] = np.float32(0.3)
        if rng.random() < 0.03:
            p[:] = np.float32(1.0 / classes)  # a tie: the first class wins, as np.argmax
        probs[i] = p
    return probs


def replay_random_stream(replay, cfg: PostprocessConfig, labels: list[str],
                         rng: np.random.Generator, per_class: bool) -> tuple[list, list]:
    """3,000 random probability windows with 20 gaps (idle = background) through the Python
    EventDetector and the C++ replay; returns (Python's events, C++'s events)."""
    probs = random_probability_stream(rng, 3000, len(labels))
    gaps = set(rng.choice(len(probs), 20, replace=False).tolist())
    python = EventDetector(cfg, labels, background_index=0)
    commands = [setup_command(128, 16, 6, len(labels), cfg, background=0)]
    if per_class:
        commands.append(classes_command(cfg, labels, background=0))
    expected = []
    for i, p in enumerate(probs):
        if i in gaps:
            python.reset()
            commands.append("reset")
        end = 128 + 16 * i
        t = end / 50.0
        event = python.update(p, t, end)
        if event is not None:
            expected.append((event.index, event.confidence, event.time, event.end_sample))
        commands.append(f"probs {h(t)} {end} " + " ".join(h(v) for v in p))
    _, events = parse_updates(run_replay(replay, commands))
    return expected, events


@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: f"k{c.smoothing}-t{c.threshold}")
def test_postprocess_matches_python_event_detector(replay, cfg):
    labels = ["idle", "walk", "jump", "punch", "turn"]
    rng = np.random.default_rng(cfg.smoothing)
    expected, events = replay_random_stream(replay, cfg, labels, rng, per_class=False)
    assert len(expected) > 20, "the stream should fire events"
    assert events == expected


def classes_command(cfg: PostprocessConfig, labels: list[str], background: int | None) -> str:
    """Per-class settings and event flags, as model_config.h's kClass* and kIsEventClass."""
    events = set(cfg.event_classes) - {labels[background] if background is not None else None}
    values = []
    for label in labels:
        s = cfg.settings(label)
        values += [s["smoothing"], h(s["threshold"]), s["min_consecutive"], h(s["refractory_s"]),
                   int(label in events)]
    return "classes " + " ".join(map(str, values))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_per_class_postprocess_and_event_classes_match_python(replay, seed):
    """Random per-class settings (smoothing 1-5 apart per class, thresholds on the float32
    edge), a state that is never announced, the background named as an event (ignored), and
    gaps: the C++ detector announces exactly the Python detector's events."""
    labels = ["idle", "walk", "jump", "punch", "turn"]
    rng = np.random.default_rng(100 + seed)
    per_class = {label: {"smoothing": int(rng.integers(1, 6)),
                         "threshold": float(rng.choice([0.0, 0.4, 0.55, 0.7, 0.85])),
                         "min_consecutive": int(rng.integers(1, 4)),
                         "refractory_s": float(rng.choice([0.0, 0.3, 1.0, 2.5]))}
                 for label in labels[1:]}
    cfg = PostprocessConfig(smoothing=2, threshold=0.6, min_consecutive=2, refractory_s=1.0,
                            per_class=per_class, event_classes=["idle", "jump", "punch", "turn"])
    expected, events = replay_random_stream(replay, cfg, labels, rng, per_class=True)
    assert len(expected) > 20, "the stream should fire events"
    assert {e[0] for e in expected} <= {2, 3, 4}  # never idle (background) or walk (a state)
    assert events == expected


def test_generated_header_holds_per_class_settings_and_event_classes(tmp_path):
    """model_config.h's post-processing block (what `calibrate` rewrites) compiles and holds
    the per-class settings and event flags, each class's own or the default."""
    from gesturekit.export.carray import postprocess_block

    labels = ["idle", "walk", "jump", "punch"]
    post = {"smoothing_s": 0.96, "threshold": 0.6, "min_on_s": 0.64, "refractory_s": 1.0,
            "per_class": {"jump": {"smoothing_s": 1.6, "threshold": 0.7000000000000001},
                          "punch": {"refractory_s": 2.56, "min_on_s": 0.0}}}
    header = tmp_path / "post.h"
    model = ModelInfo(labels, "idle", ["a"], {}, 50.0, 64, 16, Normalization(np.zeros(1), np.ones(1)),
                      True, postprocess=post, event_classes=["jump", "punch"])
    header.write_text("constexpr int kNumClasses = 4;\nconstexpr int kHop = 16;\n"
                      + postprocess_block(model))
    main = tmp_path / "dump.cc"
    main.write_text(r"""
#include <cstdio>
#include "post.h"
int main() {
  std::printf("%d %d %a %d %a\n", kMaxSmoothing, kSmoothing, kThreshold, kMinConsecutive, kRefractoryS);
  for (int c = 0; c < kNumClasses; ++c)
    std::printf("%d %d %a %d %a\n", kIsEventClass[c] ? 1 : 0, kClassSmoothing[c], kClassThreshold[c],
                kClassMinConsecutive[c], kClassRefractoryS[c]);
  return 0;
}
""")
    binary = compile_cpp([main], tmp_path / "dump", [tmp_path], flags=["-std=c++17", "-Wall", "-Werror"])
    out = subprocess.run([str(binary)], capture_output=True, text=True, check=True,
                         timeout=RUN_TIMEOUT_S).stdout
    rows = [[float.fromhex(x) if "x" in x else int(x) for x in line.split()]
            for line in out.splitlines()]
    assert rows[0] == [5, 3, 0.6, 2, 1.0]  # seconds in windows of 0.32 s, as gesturekit counts
    for label, row in zip(labels, rows[1:], strict=True):
        s = in_windows({**post, **post["per_class"].get(label, {})}, 16, 50.0)
        assert row == [int(label in ("jump", "punch")), s["smoothing"], s["threshold"],
                       s["min_consecutive"], s["refractory_s"]]


def test_smoothed_probabilities_are_bitwise_numpy_means(replay):
    """The moving average is numpy's float32 mean to the last bit, not just close."""
    cfg = PostprocessConfig(smoothing=3, threshold=1.0, min_consecutive=1, refractory_s=0.0)
    rng = np.random.default_rng(7)
    probs = rng.random((500, 4)).astype(np.float32)
    commands = [setup_command(8, 8, 1, 4, cfg, background=None)]
    commands += [f"probs {h(i)} {i} " + " ".join(h(v) for v in p) for i, p in enumerate(probs)]
    lines = run_replay(replay, commands)
    detector = EventDetector(cfg, list("abcd"), None)
    for i, p in enumerate(probs):
        detector.update(p, float(i), i)
        expected = np.mean(detector._recent, axis=0) if len(detector._recent) > 1 else p
        smoothed = [line for line in lines if line.startswith("smoothed")][i]
        got = np.array([float.fromhex(f) for f in smoothed.split()[1:]], np.float32)
        np.testing.assert_array_equal(got, expected)


# --- event, gap and sample lines --------------------------------------------------------------

def test_event_and_gap_lines_match_the_runner_format(replay):
    """The runner's f-strings (device/live/runner.py), including ties Python rounds half to even."""
    rng = np.random.default_rng(3)
    cases = [(1.005, "jump", 0.625, 12.25), (2.675, "walk", 0.875, 0.05), (0.0, "a", 1.0, 0.0),
             (123456.125, "a_long_label_over_twenty_chars", 0.125, 99999.95)]
    cases += [(float(rng.uniform(0, 5000)), "punch", float(np.float32(rng.random())),
               float(rng.uniform(0, 200))) for _ in range(300)]
    cases += [(k / 100 + 0.005, "turn", float(np.float32(k / 256)), k / 20 + 0.05)
              for k in range(257)]
    commands, expected = [], []
    for t, label, confidence, latency in cases:
        commands.append(f"eventline {h(t)} {label} {h(confidence)} {h(latency)}")
        expected.append(f"{t:9.2f} s  {label:<20} {confidence:5.2f}  ({latency:.1f} ms)")
        commands.append(f"gapline {h(t)} overrun {h(latency)}")
        expected.append(f"{t:9.2f} s  -- gap (overrun, {latency:.1f} s): windows restart --")
    assert run_replay(replay, commands) == expected


def test_sample_lines_parse_back_through_the_line_parser(replay):
    """What imu_stream prints is what `gesturekit run`/`record` read, value for value."""
    rng = np.random.default_rng(5)
    samples = np.concatenate([rng.normal(0, 2, (400, 6)), rng.normal(0, 30, (100, 6)),
                              [[0.0, -0.0, 1e-6, -1e-6, 0.00005, 2000.0]]]).astype(np.float32)
    commands = ["sampleline 4 " + " ".join(h(v) for v in s) for s in samples]
    lines = run_replay(replay, commands)
    for line, sample in zip(lines, samples, strict=True):
        assert line == ",".join(f"{float(v):.4f}" for v in sample)
    parser = LineParser(drop_first=True)
    stream = "ax,ay,az,gx,gy,gz\r\n# imu LSM9DS1, 50 Hz\r\n" + "\r\n".join(lines) + "\r\n"
    parsed = parser.feed(("12,3.4\r\n" + stream).encode())  # a cut first line, as at connect
    assert parser.header == ["ax", "ay", "az", "gx", "gy", "gz"]
    assert parser.stats.bad_lines == 0 and parser.stats.comments == 1
    printed = np.array([[float(v) for v in line.split(",")] for line in lines], np.float32)
    np.testing.assert_array_equal(parsed, printed)
    assert np.abs(printed - samples).max() <= 0.5e-4 + np.spacing(np.float32(2000.0))


# --- pacing -----------------------------------------------------------------------------------

def test_pacer_keeps_the_rate_across_the_micros_wrap(replay):
    """140 s at 50 Hz from a clock polled every 700 us, starting 5 s before micros() wraps:
    exactly one sample per 20 ms deadline, none late, no gap."""
    start = 2**32 - 5_000_000
    elapsed = range(0, 140_000_000, 700)
    clock = [(start + t) % 2**32 for t in elapsed]
    actions, late = run_replay(replay, ["pace 50 5 " + " ".join(map(str, clock))])[0].split()
    assert actions.count("s") == elapsed[-1] // 20_000 + 1
    assert "g" not in actions and late == "0"


def test_pacer_catches_up_then_declares_a_gap(replay):
    """119 Hz, a fractional period (8403.36 us): deadlines land on start + floor(k * 1e6 / 119);
    a 3-period stall is caught up sample by sample (2 of them late); a 10-period stall, past
    max_late 5, is a gap that restarts the schedule from that moment."""
    clock = [15 + k * 1_000_000 // 119 for k in range(100)]
    stall = clock[-1] + 3 * 8404  # 2 us past the third deadline after the last on-time one
    later = stall + 10 * 8403
    clock += [stall] * 4 + [later, later + 1, later + 8403]
    actions, late = run_replay(replay, ["pace 119 5 " + " ".join(map(str, clock))])[0].split()
    assert actions == "s" * 100 + "sssw" + "gws"
    assert late == "2"


# --- a real export: preprocessing, model outputs, headers -------------------------------------

@pytest.fixture(scope="module")
def bundle(quick_bundle):
    return load_bundle(quick_bundle)


@pytest.fixture(scope="module")
def stream(synth_dataset) -> np.ndarray:
    """Samples of a real recording, in raw units (g, rad/s), as the board would read them."""
    from gesturekit.train.datasets import load_dataset

    return load_dataset(synth_dataset).sessions[0].data[:4000]


def test_ring_buffer_normalisation_and_quantisation_match_the_runner(replay, bundle, stream):
    """Same windows, same int8 input bytes as Classifier.quantize(Normalization.apply(window)),
    across gaps."""
    from gesturekit.device.core.backends import Classifier

    classifier = Classifier(bundle, "ai_edge_litert", "int8")
    q = bundle.quantization
    cfg = PostprocessConfig.for_bundle(bundle)
    commands = [setup_command(bundle.window, bundle.hop, len(bundle.channels), len(bundle.labels),
                              cfg, bundle.background_index,
                              (q["input"]["scale"], q["input"]["zero_point"]),
                              (q["output"]["scale"], q["output"]["zero_point"]),
                              bundle.normalization.mean, bundle.normalization.std)]
    windower = StreamWindower(bundle.window, bundle.hop, len(bundle.channels))
    expected = []
    gaps = {700, 701, 2222}
    for i, sample in enumerate(stream):
        if i in gaps:
            windower.reset()
            commands.append("reset")
        commands.append("sample " + " ".join(h(v) for v in sample))
        window = windower.push(sample)
        if window is not None:
            expected.append(classifier.quantize(bundle.normalization.apply(window)).ravel())
    lines = run_replay(replay, commands)
    got = [np.array(line.split()[1:], dtype=np.int64) for line in lines]
    assert len(got) == len(expected) > 40
    for g, e in zip(got, expected, strict=True):
        np.testing.assert_array_equal(g, e.astype(np.int64))


def test_model_outputs_to_events_match_the_runner(replay, bundle, stream):
    """The int8 model's real outputs, dequantised and post-processed on both sides: the same
    probabilities to the bit and the same events."""
    from gesturekit.device.core.backends import Classifier

    classifier = Classifier(bundle, "ai_edge_litert", "int8")
    q = bundle.quantization
    scale, zero = q["output"]["scale"], q["output"]["zero_point"]
    cfg = PostprocessConfig.for_bundle(bundle)
    # A short stream of a quick model: any non-background top class counts, so events happen.
    cfg.threshold, cfg.min_consecutive, cfg.refractory_s = 0.0, 1, 0.5
    commands = [setup_command(bundle.window, bundle.hop, len(bundle.channels), len(bundle.labels),
                              cfg, bundle.background_index, (1.0, 0), (scale, zero))]
    detector = EventDetector(cfg, bundle.labels, bundle.background_index)
    windower = StreamWindower(bundle.window, bundle.hop, len(bundle.channels))
    expected_probs, expected_events = [], []
    for i, sample in enumerate(np.concatenate([stream, stream[::-1]])):
        window = windower.push(sample)
        if window is None:
            continue
        probs = classifier(window)
        int8 = np.round(probs / np.float32(scale) + zero).astype(np.int64)  # the model's bytes
        end = i + 1
        event = detector.update(probs, end / bundle.sample_rate_hz, end)
        expected_probs.append(probs)
        if event is not None:
            expected_events.append((event.index, event.confidence, event.time, event.end_sample))
        commands.append(f"output {h(end / bundle.sample_rate_hz)} {end} "
                        + " ".join(map(str, int8)))
    lines = run_replay(replay, commands)
    raw = [np.array([float.fromhex(f) for f in line.split()[1:]], np.float32)
           for line in lines if line.startswith("probs")]
    np.testing.assert_array_equal(np.array(raw), np.array(expected_probs))
    _, events = parse_updates(lines)
    assert events == expected_events and len(events) > 0


def test_exported_headers_compile_and_hold_the_bundle(bundle, tmp_path):
    """model_data.h/.cc and model_config.h of a real export build with -Wall -Werror, the array
    is the int8 .tflite byte for byte at a 16-byte boundary, and every constant is the bundle's
    (float literals round-trip to the same float32)."""
    main = tmp_path / "dump.cc"
    main.write_text(r"""
#include <cstdint>
#include <cstdio>
#include "model_config.h"
#include "model_data.h"
using namespace gesturekit;
int main() {
  std::printf("aligned %d\n", static_cast<int>(reinterpret_cast<std::uintptr_t>(g_model_data) % 16));
  std::printf("len %u\n", g_model_data_len);
  for (unsigned i = 0; i < g_model_data_len; ++i) std::printf("%02x", g_model_data[i]);
  std::printf("\nshape %d %d %d %d %d %d\n", kNumClasses, kNumChannels, kWindow, kHop,
              kBackgroundClass, kStateful ? 1 : 0);
  for (int k = 0; k < kNumClasses; ++k) std::printf("label %s\n", kLabels[k]);
  for (int c = 0; c < kNumChannels; ++c)
    std::printf("channel %s %s %a %a\n", kChannels[c], kUnits[c], (double)kMean[c], (double)kStd[c]);
  std::printf("quant %a %d %a %d\n", (double)kInputScale, kInputZeroPoint, (double)kOutputScale,
              kOutputZeroPoint);
  std::printf("rate %a arena %d ops %d\n", (double)kSampleRateHz, kTensorArenaBytes, kNumOps);
  std::printf("post %d %a %d %a\n", kSmoothing, kThreshold, kMinConsecutive, kRefractoryS);
  return 0;
}
""")
    binary = compile_cpp([main, bundle.root / "model_data.cc"], tmp_path / "dump", [bundle.root],
                         flags=["-std=c++17", "-Wall", "-Werror"])
    lines = subprocess.run([str(binary)], capture_output=True, text=True, check=True,
                           timeout=RUN_TIMEOUT_S).stdout.splitlines()
    model = bundle.path("int8").read_bytes()
    assert lines[0] == "aligned 0" and lines[1] == f"len {len(model)}"
    assert bytes.fromhex(lines[2]) == model
    assert lines[3].split()[1:] == list(map(str, [
        len(bundle.labels), len(bundle.channels), bundle.window, bundle.hop,
        -1 if bundle.background_index is None else bundle.background_index, int(bundle.stateful)]))
    assert [x.split(" ", 1)[1] for x in lines if x.startswith("label ")] == bundle.labels
    channels = [x.split()[1:] for x in lines if x.startswith("channel ")]
    assert [c[0] for c in channels] == bundle.channels
    assert [c[1] for c in channels] == [bundle.units[c] for c in bundle.channels]
    np.testing.assert_array_equal([np.float32(float.fromhex(c[2])) for c in channels],
                                  bundle.normalization.mean)
    np.testing.assert_array_equal([np.float32(float.fromhex(c[3])) for c in channels],
                                  bundle.normalization.std)
    quant = next(x for x in lines if x.startswith("quant")).split()[1:]
    q = bundle.quantization
    assert np.float32(float.fromhex(quant[0])) == np.float32(q["input"]["scale"])
    assert int(quant[1]) == q["input"]["zero_point"]
    assert np.float32(float.fromhex(quant[2])) == np.float32(q["output"]["scale"])
    assert int(quant[3]) == q["output"]["zero_point"]
    rate = next(x for x in lines if x.startswith("rate")).split()
    assert float.fromhex(rate[1]) == bundle.sample_rate_hz
    assert int(rate[5]) == len(bundle.ops[bundle.files["int8"]])
    post = next(x for x in lines if x.startswith("post")).split()[1:]
    cfg = PostprocessConfig.for_bundle(bundle)
    assert (int(post[0]), float.fromhex(post[1]), int(post[2]), float.fromhex(post[3])) == \
        (cfg.smoothing, cfg.threshold, cfg.min_consecutive, cfg.refractory_s)


def test_tflm_runs_the_exported_model_like_the_runner(replay, bundle, stream):
    """The real TensorFlow Lite Micro interpreter (tflite-micro's host build) runs the bundle's
    int8 model on the board's quantised windows, variables reset before each like the sketch,
    and picks the runner's class; its arena fits the kTensorArenaBytes the export wrote."""
    runtime = pytest.importorskip("tflite_micro.python.tflite_micro.runtime",
                                  reason="pip install tflite-micro")
    from gesturekit.device.core.backends import Classifier

    classifier = Classifier(bundle, "ai_edge_litert", "int8")
    q = bundle.quantization
    cfg = PostprocessConfig.for_bundle(bundle)
    commands = [setup_command(bundle.window, bundle.hop, len(bundle.channels), len(bundle.labels),
                              cfg, bundle.background_index,
                              (q["input"]["scale"], q["input"]["zero_point"]), (1.0, 0),
                              bundle.normalization.mean, bundle.normalization.std)]
    commands += ["sample " + " ".join(h(v) for v in s) for s in stream]
    windows = [np.array(list(map(int, line.split()[1:])), np.int8).reshape(1, bundle.window, -1)
               for line in run_replay(replay, commands)]
    header = (bundle.root / "model_config.h").read_text()
    arena = int(header.split("kTensorArenaBytes = ")[1].split(";")[0])
    with pytest.raises(RuntimeError, match="allocate"):  # the size check below means something
        runtime.Interpreter.from_file(str(bundle.path("int8")), arena_size=arena // 8)
    tflm = runtime.Interpreter.from_file(str(bundle.path("int8")), arena_size=arena)
    windower = StreamWindower(bundle.window, bundle.hop, len(bundle.channels))
    runner_top = [int(np.argmax(classifier(w))) for s in stream
                  if (w := windower.push(s)) is not None]
    tflm_top = []
    for x in windows:
        tflm.reset()
        tflm.set_input(x, 0)
        tflm.invoke()
        out = tflm.get_output(0)[0].astype(np.int64)
        tflm_top.append(int(np.argmax(out)))
    agreement = np.mean(np.array(tflm_top) == np.array(runner_top))
    assert len(tflm_top) == len(runner_top) > 40
    assert agreement >= 0.98, f"TFLM picks the runner's class on {agreement:.1%} of windows"


FRAME_MAIN = r"""
#include <stdio.h>
#include <stdlib.h>
#include "gk_frame.h"
// stdin: samples, target x y z, rows; then rows of 6 hex floats. stdout: the turned rows.
int main() {
  int samples, rows;
  double target[3];
  if (scanf("%d %la %la %la %d", &samples, &target[0], &target[1], &target[2], &rows) != 5) return 1;
  static const int kTriads[2][3] = {{0, 1, 2}, {3, 4, 5}};
  gk::ReferenceFrame frame(samples, target, kTriads, 2, 0);
  float in[6], out[6];
  for (int r = 0; r < rows; ++r) {
    for (int c = 0; c < 6; ++c)
      if (scanf("%a", &in[c]) != 1) return 1;
    frame.apply(in, out, 6);
    for (int c = 0; c < 6; ++c) printf("%a%c", out[c], c == 5 ? '\n' : ' ');
  }
  printf("degrees %a\n", frame.degrees());
  return 0;
}
"""


def test_the_board_turns_a_stream_exactly_as_the_runner(tmp_path):
    """gk::ReferenceFrame (gk_frame.h) against device.core.frame.StreamFrame: the same float32
    bits for every value of a tilted stream, and the same angle."""
    from gesturekit.device.core.frame import ReferencePose, StreamFrame, rotation_onto

    source = tmp_path / "frame_main.cc"
    source.write_text(FRAME_MAIN)
    binary = compile_cpp([source], tmp_path / "frame_main", [LIBRARY_SRC])
    rng = np.random.default_rng(7)
    tilt = rotation_onto(np.array([0.0, 0.0, 1.0]), np.array([0.3, -0.2, 0.93]) / np.linalg.norm(
        [0.3, -0.2, 0.93]))
    data = np.hstack([(rng.normal(0, 0.3, (500, 3)) + [0, 0, 1]) @ tilt.T,
                      rng.normal(0, 2.0, (500, 3))]).astype(np.float32)
    pose = ReferencePose("still", 3.0, (0.1, -0.15, 0.98) / np.linalg.norm([0.1, -0.15, 0.98]))
    channels = ["ax", "ay", "az", "gx", "gy", "gz"]
    units = {**dict.fromkeys(channels[:3], "g"), **dict.fromkeys(channels[3:], "rad/s")}
    frame = StreamFrame(pose, channels, units, 50.0)
    expected = frame.apply(data)
    stdin = " ".join([str(frame.samples), *map(h, pose.gravity), str(len(data))]) + "\n" + "\n".join(
        " ".join(h(v) for v in row) for row in data) + "\n"
    result = subprocess.run([str(binary)], input=stdin, capture_output=True, text=True,
                            timeout=RUN_TIMEOUT_S)
    assert result.returncode == 0, result.stderr
    *rows, degrees = result.stdout.splitlines()
    board = np.array([[float.fromhex(v) for v in row.split()] for row in rows], np.float32)
    assert board.shape == expected.shape
    assert np.array_equal(board[:150], data[:150])  # the reference phase passes as it is
    differ = np.flatnonzero((board != expected).any(axis=1))
    assert differ.size == 0, f"{differ.size} rows differ, first {board[differ[0]]} vs {expected[differ[0]]}"
    assert float.fromhex(degrees.split()[1]) == pytest.approx(frame.degrees, abs=1e-9)
