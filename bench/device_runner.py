"""The live runner under a 100 Hz, 6-channel stream: CPU time per stream second, the
interpreter's share of it, and decision latency.

This script is the board: it writes one HAPT sample line every 10 ms into a real pty, noting
when each was written, while `gesturekit run --json --windows` (a separate process, one
thread) reads it. Post-processing is opened up (threshold 0, no smoothing) so that windows
become events often. Decision latency = the time the runner's line for a window (and for an
event) appears on its stdout minus the time the window's last sample was written to the
port. CPU figures come from the runner's own summary (process time of its loop, and time
inside the interpreter), against two bare pyserial read loops on the same stream: one reads
every line as it comes (what merely reading a 100 Hz port costs here), one naps as long as
the runner may between reads (the floor for any reader; after a nap, a wake-up costs far
more CPU than in a busy loop). Per-window invoke time without the stream:
bench/device_latency.py.

Results: bench/results/device_runner.json. Run:
    .venv/bin/python bench/device_runner.py --bundle BUNDLE [--seconds 30]
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

from gesturekit.device.core.lineparser import format_sample
from gesturekit.device.core.recording import load_session
from gesturekit.device.core.stream_clock import MAX_NAP_GAP_FRACTION, MAX_NAP_S, MAX_NAP_SAMPLES
from gesturekit.device.live.runner import RunOptions
from gesturekit.device.live.simulate import PtySink

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results" / "device_runner.json"
SESSION = REPO.parent / "shared/data/hapt/RawData/acc_exp03_user02.txt"  # test subject 2; --session
RATE_HZ = 100.0


def play_board(sink: PtySink, data: np.ndarray, seconds: float) -> np.ndarray:
    """Write a header, then one sample every 10 ms; returns when each sample went out."""
    sink.wait_reader(60)
    sink.write(b"ax,ay,az,gx,gy,gz\r\n")  # the connect-time first line, dropped by the runner
    written = np.zeros(int(seconds * RATE_HZ) + 1)
    start = time.monotonic()
    for i in range(1, len(written)):
        due = start + i / RATE_HZ
        time.sleep(max(0.0, due - time.monotonic()))
        written[i] = time.monotonic()  # sample i (1-based, as the runner counts) goes out
        sink.write(format_sample(data[i % len(data)]))
    return written


# The baselines: the cheapest possible readers of the same stream (pyserial chunked reads,
# nothing else), so the runner's CPU can be read against what a 100 Hz port costs here. One
# reads every line as it comes; the other naps as long as the runner's longest nap between
# reads, the floor for any reader that wakes as often.
READ_LOOP = """
import sys, time, serial
port = serial.serial_for_url(sys.argv[1], timeout=0.05)
seconds, nap = float(sys.argv[2]), float(sys.argv[3])
cpu, start, lines = time.process_time(), time.monotonic(), 0
while time.monotonic() - start < seconds:
    if nap:
        time.sleep(nap)
    lines += port.read(port.in_waiting or 1).count(b"\\n")
print(time.process_time() - cpu, lines)
"""


def baseline_run(seconds: float, nap: float, session: Path) -> dict:
    sink = PtySink(link=None)
    proc = subprocess.Popen([sys.executable, "-c", READ_LOOP, sink.device, str(seconds), str(nap)],
                            stdout=subprocess.PIPE, text=True)
    play_board(sink, load_session(session).data, seconds)
    out, _ = proc.communicate(timeout=60)
    sink.close()
    cpu_s, lines = out.split()
    return {"nap_s": nap, "cpu_ms_per_stream_s": 1000 * float(cpu_s) / seconds,
            "lines": int(lines)}


def timed_json_lines(run: subprocess.Popen) -> tuple[list[tuple[float, dict]], threading.Thread]:
    """`run --json`'s lines as they arrive, each with its arrival time (a reader thread)."""
    lines: list[tuple[float, dict]] = []

    def read_stdout() -> None:
        for line in run.stdout:
            lines.append((time.monotonic(), json.loads(line)))

    reader = threading.Thread(target=read_stdout, daemon=True)
    reader.start()
    return lines, reader


def stop_runner(run: subprocess.Popen, reader: threading.Thread, sink: PtySink,
                lines: list[tuple[float, dict]]) -> dict:
    """Stop the runner with SIGINT (it prints its summary and exits 0), close the board; the
    summary."""
    run.send_signal(2)
    run.wait(timeout=30)
    reader.join(timeout=10)
    sink.close()
    summary = lines[-1][1]
    assert summary["kind"] == "summary", summary
    return summary


def one_run(bundle: str, flags: list[str], seconds: float, session: Path) -> dict:
    data = load_session(session).data
    sink = PtySink(link=None)
    run = subprocess.Popen([sys.executable, "-m", "gesturekit.cli", "run", "--port", sink.device,
                            "--model", bundle, "--json", "--windows", "--threshold", "0",
                            "--smoothing", "0", "--min-on", "0", "--refractory", "0",
                            *flags],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines, reader = timed_json_lines(run)
    written = play_board(sink, data, seconds)
    time.sleep(0.5)  # the last lines arrive
    summary = stop_runner(run, reader, sink, lines)
    window_ms = [1000 * (t - written[r["sample"]]) for t, r in lines if r["kind"] == "window"]
    event_ms = [1000 * (t - written[r["sample"]]) for t, r in lines if r["kind"] == "event"]
    stream_s = summary["seconds"]
    return {
        "flags": flags, "backend": summary["backend"], "model": summary["model"],
        "stream_seconds": stream_s, "samples": summary["samples"], "windows": summary["windows"],
        "events": summary["events"],
        "cpu_ms_per_stream_s": 1000 * summary["cpu_s"] / stream_s,
        "invoke_ms_per_stream_s": 1000 * summary["invoke_s"] / stream_s,
        "interpreter_share": summary["invoke_s"] / summary["cpu_s"],
        "invoke_us_per_window": 1e6 * summary["invoke_s"] / max(summary["windows"], 1),
        "runner_overhead_us_per_window": 1e6 * (summary["cpu_s"] - summary["invoke_s"])
        / max(summary["windows"], 1),
        "decision_ms_window": {"p50": float(np.percentile(window_ms, 50)),
                               "p99": float(np.percentile(window_ms, 99))},
        "decision_ms_event": {"p50": float(np.percentile(event_ms, 50)),
                              "p99": float(np.percentile(event_ms, 99))} if event_ms else None,
        "runner_latency_ms": summary["latency_ms"],
        "decision_ms_windows_all": [round(v, 3) for v in window_ms],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bundle", required=True)
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--session", type=Path, default=SESSION,
                    help="HAPT session file, RawData/acc_expNN_userNN.txt of the UCI data "
                         "(https://archive.ics.uci.edu/dataset/341)")
    args = ap.parse_args()
    configs = [["--backend", "ai_edge_litert"], ["--backend", "ai_edge_litert", "--int8"],
               ["--backend", "onnxruntime"]]
    # The longest nap the runner takes with its defaults.
    nap_s = min(MAX_NAP_S, MAX_NAP_GAP_FRACTION * RunOptions(port="").gap_s,
                MAX_NAP_SAMPLES / RATE_HZ)
    base = baseline_run(args.seconds, 0.0, args.session)
    floor = baseline_run(args.seconds, nap_s, args.session)
    rows = [one_run(args.bundle, flags, args.seconds, args.session) for flags in configs]
    print(f"baselines on the same 100 Hz stream: a bare pyserial read loop uses "
          f"{base['cpu_ms_per_stream_s']:.2f} ms CPU per second; one read every {nap_s:.2f} s "
          f"{floor['cpu_ms_per_stream_s']:.2f} ms")
    print(f"{'backend':<16} {'model':<6} {'CPU ms/s':>8} {'vs base':>7} {'vs floor':>8} {'interp':>7} "
          f"{'invoke µs/w':>11} {'other µs/w':>10} {'decision p50/p99 ms (windows)':>30} "
          f"{'events p50/p99 ms':>18}")
    for r in rows:
        w, e = r["decision_ms_window"], r["decision_ms_event"] or {"p50": 0, "p99": 0}
        r["cpu_vs_read_loop"] = r["cpu_ms_per_stream_s"] / base["cpu_ms_per_stream_s"]
        r["cpu_vs_napping_read_loop"] = r["cpu_ms_per_stream_s"] / floor["cpu_ms_per_stream_s"]
        print(f"{r['backend']:<16} {r['model']:<6} {r['cpu_ms_per_stream_s']:>8.2f} "
              f"{r['cpu_vs_read_loop']:>6.2f}x {r['cpu_vs_napping_read_loop']:>7.2f}x "
              f"{100 * r['interpreter_share']:>6.1f}% {r['invoke_us_per_window']:>11.0f} "
              f"{r['runner_overhead_us_per_window']:>10.0f} {w['p50']:>14.2f} / {w['p99']:<13.2f}"
              f"{e['p50']:>8.2f} / {e['p99']:.2f}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({"bundle": args.bundle, "rate_hz": RATE_HZ, "channels": 6,
                                   "baseline_read_loop": base,
                                   "baseline_napping_read_loop": floor,
                                   "python": platform.python_version(), "rows": rows},
                                  indent=2) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
