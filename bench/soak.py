"""Soak and fault matrix: hours of a 100 Hz, 6-channel board compressed into minutes, over
real pseudo-terminals, into `gesturekit run --json --windows` (a separate process).

This script is the board. It plays the synthetic 100 Hz dataset in a loop as fast as the
runner takes it (`--speed` caps it), and on a seeded schedule of stream time it injects:
bursts of junk lines (each exactly one bad line: binary, wrong count, not numeric, NaN,
over-long), samples the board skips, writes cut into pieces that split lines, a rate that
halves for a while, silences longer than the runner's `--gap` (the stream stops), and
pulled cables (the pty closes mid-line and a new one appears behind the same symlink).
Before a cable is pulled the runner is let to read what was sent, so every whole sample
line reached it; the cut-off line and the first line after a reconnect are the only lines
it may drop, by contract.

Checks, from the runner's JSON lines and its summary:
- it kept going to the end (exit 0 after SIGINT, summary printed);
- samples lost = whole sample lines written - samples the runner counted = 0;
- bad lines = junk lines + lines cut by a pulled cable; every line accounted for;
- one gap per silence and per reconnect, at exactly the sample where the board stopped;
- no window spans a gap: every window ends `window + k * hop` samples after the last gap (or
  after the reference phase, the first seconds that set the model's frame),
  and the number of windows is what the gap-free segments give;
- RSS (VmRSS from /proc) flat: sampled every second; start = after 5% of the stream; from
  20% on (the runner's latency ring of 10,000 windows is full) it grows less than 1 MB.

Results: bench/results/soak.json. Run:
    .venv/bin/python bench/soak.py --bundle BUNDLE [--hours 10] [--speed 600] [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from gesturekit.device.core.bundle import load_bundle
from gesturekit.device.core.lineparser import format_sample
from gesturekit.device.core.recording import DATASET_TOML, read_recording, read_spec
from gesturekit.device.core.stream_eval import reference_phase
from gesturekit.device.live.simulate import PtySink, junk_line
from gesturekit.train.synth import SynthConfig, write_synthetic_dataset

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results" / "soak.json"
RATE_HZ = 100
BLOCK = 200  # sample lines per write: 2 s of stream
GAP_S = 1.0  # the runner's --gap
SILENCE_S = 2.5  # a stopped stream: well over GAP_S, so the runner must report it
RUNNER_DEADLINE_S = 60.0  # for the runner to start, reconnect, and exit after SIGINT


@dataclass
class Board:
    """What the board sent, and where it stopped (sample counts the runner must report)."""

    samples: int = 0  # whole sample lines written
    junk: int = 0
    junk_kinds: dict = field(default_factory=dict)
    skipped: int = 0  # samples the board never sent
    cut_writes: int = 0
    slow_blocks: int = 0
    disconnects: int = 0
    cut_at_disconnect: int = 0  # lines the pulled cable cut (one bad line each)
    silences: int = 0
    first_lines: int = 0  # connect-time fragments (dropped by contract)
    headers: int = 0
    unheard_writes: int = 0  # writes made while no reader had the port open (must be 0)
    gap_samples: list = field(default_factory=list)  # sample count at every gap, in order


def synth_stream(seed: int) -> np.ndarray:
    """A 10-minute 100 Hz session of the built-in synthetic dataset, (N, 6) float32."""
    with tempfile.TemporaryDirectory() as tmp:
        root = write_synthetic_dataset(Path(tmp) / "ds", SynthConfig(
            seed=seed, subjects=1, minutes=20.0, sample_rate_hz=RATE_HZ))
        return read_recording(sorted(root.glob("*.csv"))[0], read_spec(root / DATASET_TOML)).data


def rss_kb(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


class RssSampler(threading.Thread):
    def __init__(self, pid: int):
        super().__init__(daemon=True)
        self.pid, self.samples, self.stop = pid, [], threading.Event()

    def run(self) -> None:
        while not self.stop.wait(1.0):
            kb = rss_kb(self.pid)
            if kb is not None:
                self.samples.append((time.monotonic(), kb))


def play(sink: PtySink, lines: list[bytes], data: np.ndarray, total: int, speed: float,
         rng: np.random.Generator, board: Board, progress) -> None:
    """Write `total` samples (cycling `lines`) with faults; returns when all were read."""
    sink.wait_reader(RUNNER_DEADLINE_S)
    send(sink, b"3,0.0125,-0.98\r\n", board)  # the connect-time fragment: dropped by contract
    send(sink, b"ax,ay,az,gx,gy,gz\r\n", board)
    board.first_lines, board.headers = 1, 1
    # Fault schedule in stream blocks (2 s each): ~every 20 min a pulled cable, ~every 30 min
    # a silence, ~every 2 min a junk burst, ~every hour a half-rate stretch of 5 min.
    p_disconnect, p_silence = BLOCK / (RATE_HZ * 1200), BLOCK / (RATE_HZ * 1800)
    p_junk, p_slow = BLOCK / (RATE_HZ * 120), BLOCK / (RATE_HZ * 3600)
    slow_left, i, start = 0, 0, time.monotonic()
    while board.samples + board.skipped < total:
        n = min(BLOCK, total - board.samples - board.skipped)
        out: list[bytes] = []
        burst = int(rng.integers(1, 60)) if rng.random() < p_junk else 0
        burst_at = int(rng.integers(n))
        for k in range(n):
            if k == burst_at:
                for _ in range(burst):
                    kind, line = junk_line(data[i % len(data)], rng)
                    out.append(line)
                    board.junk += 1
                    board.junk_kinds[kind] = board.junk_kinds.get(kind, 0) + 1
            if rng.random() < 0.001:
                board.skipped += 1  # the board missed a sample: never sent
            else:
                out.append(lines[i % len(lines)])
                board.samples += 1
            i += 1
        raw = b"".join(out)
        if rng.random() < 0.1:  # bytes in pieces that ignore line ends
            board.cut_writes += 1
            cuts = np.sort(rng.integers(1, len(raw), size=8))
            for a, b in zip([0, *cuts], [*cuts, len(raw)], strict=True):
                send(sink, raw[a:b], board)
        else:
            send(sink, raw, board)
        if slow_left == 0 and rng.random() < p_slow:
            slow_left = 150  # 5 minutes of stream at half rate
        rate = speed * RATE_HZ * (0.5 if slow_left else 1.0)
        board.slow_blocks += bool(slow_left)
        slow_left = max(0, slow_left - 1)
        start += n / rate  # pace in stream time; backpressure from the runner slows us too
        time.sleep(max(0.0, start - time.monotonic()))
        if rng.random() < p_silence:
            sink.drain()  # the runner has every sample before the stream stops
            time.sleep(SILENCE_S)
            board.silences += 1
            board.gap_samples.append(board.samples)
            start = time.monotonic()
        elif rng.random() < p_disconnect:
            pull_cable(sink, lines[i % len(lines)], board)
            start = time.monotonic()
        progress(board)
    sink.drain()


def send(sink: PtySink, data: bytes, board: Board) -> None:
    """Write to the port; a write nobody heard (no reader) is counted, not hidden."""
    if not sink.write(data):
        board.unheard_writes += 1


def pull_cable(sink: PtySink, line: bytes, board: Board) -> None:
    """Half a line goes out, then the port vanishes; a new one appears behind the link."""
    sink.drain()
    send(sink, line[: len(line) // 2], board)
    sink.drain()  # the runner holds the half line: one cut line when it notices the loss
    board.cut_at_disconnect += 1
    sink.reopen()
    board.disconnects += 1
    board.gap_samples.append(board.samples)
    sink.wait_reader(RUNNER_DEADLINE_S)
    send(sink, line[len(line) // 2:], board)  # a board mid-line at connect: the dropped first line
    board.first_lines += 1


def expected_windows(segment_samples: list[int], window: int, hop: int) -> int:
    return sum(1 + (n - window) // hop for n in segment_samples if n >= window)


def check(records: list[dict], board: Board, window: int, hop: int, reference: int) -> dict:
    """The run's records against what the board did; `reference`: the first samples, which set
    the model's frame and are in no window."""
    summary = records[-1] if records and records[-1].get("kind") == "summary" else None
    gaps = [r["sample"] for r in records if r["kind"] == "gap"]
    windows = [r["sample"] for r in records if r["kind"] == "window"]
    spans = 0
    last_gap, g = reference, 0
    for end in windows:
        while g < len(gaps) and gaps[g] < end:
            last_gap, g = gaps[g], g + 1
        since = end - last_gap
        spans += since < window or (since - window) % hop != 0
    bounds = [reference, *gaps, board.samples]
    segments = [b - a for a, b in zip(bounds, bounds[1:], strict=False)]
    checks = {"summary printed": summary is not None}
    if summary is None:
        return checks
    lines = summary["lines"]
    checks.update({
        "every write reached the port": board.unheard_writes == 0,
        "samples lost == 0": summary["samples"] == board.samples,
        "bad lines == junk + cut": summary["bad_lines"] == board.junk + board.cut_at_disconnect,
        "dropped first lines == connects": lines["dropped_first"] == board.first_lines,
        "reconnects == disconnects": summary["reconnects"] == board.disconnects,
        "gaps at the board's stops": gaps == board.gap_samples,
        "no window spans a gap": spans == 0,
        "windows == gap-free segments give": len(windows) == summary["windows"]
        == expected_windows(segments, window, hop),
        "events counted": summary["events"] == sum(r["kind"] == "event" for r in records),
    })
    return checks


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bundle", required=True, help="model bundle (6 channels)")
    ap.add_argument("--hours", type=float, default=10.0, help="hours of 100 Hz stream")
    ap.add_argument("--speed", type=float, default=600.0, help="at most this many times real rate")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--backend", default="ai_edge_litert")
    ap.add_argument("--out", default=str(RESULTS))
    ap.add_argument("--min-disconnects", type=int, default=0,
                    help="force at least this many pulled cables and silences (short runs)")
    args = ap.parse_args()

    bundle = load_bundle(args.bundle)
    data = synth_stream(args.seed)
    lines = [format_sample(row) for row in data]
    total = int(args.hours * 3600 * RATE_HZ)
    rng = np.random.default_rng(args.seed)
    board = Board()
    with tempfile.TemporaryDirectory() as tmp:
        link = str(Path(tmp) / "board")
        sink = PtySink(link)
        out_path = Path(tmp) / "run.jsonl"
        err_path = Path(tmp) / "run.err"
        with open(out_path, "w") as out, open(err_path, "w") as err:
            runner = subprocess.Popen(
                [sys.executable, "-m", "gesturekit.cli", "run", "--port", link, "--model",
                 args.bundle, "--json", "--windows", "--backend", args.backend,
                 "--gap", str(GAP_S), "--reconnect-timeout", "30", "--first-line-timeout", "30"],
                stdout=out, stderr=err, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
        rss = RssSampler(runner.pid)
        rss.start()
        wall = time.monotonic()
        state = {"rss_start": None, "rss_warm": None, "next": 0.0, "forced": 0}

        def progress(b: Board) -> None:
            if runner.poll() is not None:
                raise RuntimeError(f"the runner exited ({runner.returncode}): "
                                   f"{err_path.read_text()[-500:]}")
            done = (b.samples + b.skipped) / total
            if state["rss_start"] is None and done >= 0.05 and rss.samples:
                state["rss_start"] = rss.samples[-1][1]
            if state["rss_warm"] is None and done >= 0.2 and rss.samples:
                state["rss_warm"] = rss.samples[-1][1]  # the latency ring is full by now
            # Short runs: force faults evenly so every kind happens.
            due = args.min_disconnects and done >= (state["forced"] + 0.5) / (args.min_disconnects + 1)
            if due and state["forced"] < args.min_disconnects:
                state["forced"] += 1
                sink.drain()
                time.sleep(SILENCE_S)
                b.silences += 1
                b.gap_samples.append(b.samples)
                pull_cable(sink, lines[0], b)
            if done >= state["next"]:
                print(f"soak: {done:5.1%} {b.samples} samples, {b.disconnects} disconnects, "
                      f"{b.silences} silences, {b.junk} junk, RSS "
                      f"{rss.samples[-1][1] if rss.samples else '?'} kB, "
                      f"{time.monotonic() - wall:.0f} s", file=sys.stderr, flush=True)
                state["next"] += 0.1

        try:
            play(sink, lines, data, total, args.speed, rng, board, progress)
            time.sleep(2 * GAP_S)  # the stream stops for good: the runner reports a gap
            board.silences += 1
            board.gap_samples.append(board.samples)
            rss_end = rss_kb(runner.pid)
            runner.send_signal(signal.SIGINT)
            code = runner.wait(timeout=RUNNER_DEADLINE_S)
        finally:
            if runner.poll() is None:
                runner.kill()
            rss.stop.set()
            sink.close()
        wall = time.monotonic() - wall
        records = [json.loads(x) for x in out_path.read_text().splitlines() if x.startswith("{")]
        stderr = err_path.read_text()
        reference = reference_phase(bundle)
        checks = {"exit code 0": code == 0, **check(records, board, bundle.window, bundle.hop,
                                                    reference)}
        if args.hours >= 1:  # long enough to tell a leak from warm-up
            checks["RSS flat after 20% (< 1 MB)"] = (
                state["rss_warm"] is not None and rss_end - state["rss_warm"] < 1024)
        if not all(checks.values()):  # keep the runner's lines for a post-mortem
            shutil.copy(out_path, Path(args.out).with_suffix(".failed.jsonl"))

    summary = records[-1] if records and records[-1].get("kind") == "summary" else {}
    rss_values = [kb for _, kb in rss.samples]
    result = {
        "hours": round((board.samples + board.skipped) / RATE_HZ / 3600, 3), "rate_hz": RATE_HZ,
        "wall_s": round(wall, 1), "compression": round(board.samples / RATE_HZ / wall, 1),
        "seed": args.seed, "bundle": str(args.bundle), "window": bundle.window, "hop": bundle.hop,
        "backend": args.backend, "board": board.__dict__,
        "runner": {k: summary.get(k) for k in ("samples", "bad_lines", "windows", "events",
                                                "gaps", "reconnects", "ended", "lines",
                                                "latency_ms", "cpu_s", "invoke_s")},
        "runner_gap_samples": [x["sample"] for x in records if x["kind"] == "gap"],
        "samples_lost": board.samples - summary.get("samples", 0),
        "rss_kb": {"start": state["rss_start"] or (rss_values or [None])[0],
                   "at_20pct": state["rss_warm"], "end": rss_end,
                   "min": min(rss_values, default=None), "max": max(rss_values, default=None)},
        "checks": checks, "passed": all(checks.values()),
        "stderr_tail": stderr[-2000:],
        "machine": {"python": platform.python_version(), "cpu": platform.processor(),
                    "cores": os.cpu_count()},
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print_table(result)
    return 0 if result["passed"] else 1


def print_table(r: dict) -> None:
    b, run = r["board"], r["runner"]
    rows = [
        ("stream soaked", f"{r['hours']} h at {r['rate_hz']} Hz in {r['wall_s']} s "
                          f"({r['compression']}x)"),
        ("sample lines written whole", b["samples"]),
        ("samples the runner counted", run["samples"]),
        ("samples lost", r["samples_lost"]),
        ("junk lines / cut by cable / bad counted",
         f"{b['junk']} / {b['cut_at_disconnect']} / {run['bad_lines']}"),
        ("disconnects / reconnects", f"{b['disconnects']} / {run['reconnects']}"),
        ("silences / gaps reported", f"{b['silences']} / {run['gaps']}"),
        ("windows / events", f"{run['windows']} / {run['events']}"),
        ("RSS at 5% / 20% / end (kB)",
         f"{r['rss_kb']['start']} / {r['rss_kb']['at_20pct']} / {r['rss_kb']['end']}"),
    ]
    width = max(len(k) for k, _ in rows)
    for k, v in rows:
        print(f"{k:<{width}}  {v}")
    for name, ok in r["checks"].items():
        print(f"{'ok  ' if ok else 'FAIL'} {name}")


if __name__ == "__main__":
    sys.exit(main())
